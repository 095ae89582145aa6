"""Moving an office's data from one database to another (`mspbill db copy --to URL`, Settings → Data).

The usual move: this computer's SQLite file onto the office's PostgreSQL server.  The other way (a server's
data into a new SQLite file, to leave the server) works the same way.

Rules, in the order the copy meets them:

- The target must be empty: no tables at all (an empty `alembic_version` aside), or "touched but empty":
  a workstation opened the empty database before the copy, so the migrations created mspbill's tables
  there -- only mspbill's tables, at the current schema, with no row but the ones the migrations seed
  (the collection settings and the default reminder schedule).  Anything else is refused with what is
  there and what to do; nothing is ever dropped or overwritten.  A database that already holds a copy of
  an office (its audit log says it was copied, or its clients are this office's) is refused with how to
  use it instead.
- The source is read under its writers' lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: the office-wide advisory
  lock), held until the copy is committed: no other window, process or workstation saves anything meanwhile,
  so the copy is one consistent moment of the office and nothing saved "during" the copy is left behind.
  The source is only read until the copy is committed; then, still under that lock, the move is recorded
  in it (mspbill.db.moves): the copy left behind is refused when opened, on every workstation, until it
  is reclaimed on purpose -- otherwise going back to it would bill and charge again what was billed and
  charged at the new place.  Nothing else in it is changed or deleted.
- Everything on the target happens in ONE transaction (PostgreSQL's DDL is transactional): take the writers'
  lock, create the tables by running the migrations (a touched-but-empty target has them already), empty
  the rows the migrations seed (the default reminder schedule: the office's own replaces it), copy every table in foreign-key order in batches, move the id
  sequences past the copied ids, then check every table's row count and totals against the source.  Only if
  every table matches is it committed, with one audit entry saying where the data came from; otherwise it is
  rolled back and the target is as empty as it was.
- `database_moves` (where the office went from a database) is not copied: the target starts unmoved.
- The checks, per table: the row count and the sum of the ids, of every integer money column (`*_cents`) and
  of every integer quantity column, summed by each database itself (the report lists the money and
  quantity columns as "totals checked"; the ids are checked too, but are not totals); and the sum of every exact-decimal column
  (tax rates, percentages), read back as Decimals (PostgreSQL keeps 6 decimal places: a value with more
  would show up here instead of being rounded silently).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    JSON,
    Connection,
    Engine,
    Integer,
    Table,
    func,
    inspect,
    null,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session

from mspbill.db.engine import WRITE_OPTION, Database, create_db_engine
from mspbill.db.models import AuditEntry, Base, Client, DatabaseMove
from mspbill.db.moves import (
    current_move,
    moved_sentence,
    read_only_connection,
    record_move,
)
from mspbill.db.schema import MIGRATIONS_DIR, DatabaseOpenError, head_revision
from mspbill.db.server import (
    DatabaseUrlError,
    explain,
    is_server,
    normalise,
    parse,
    server_name,
    shown,
    with_saved_password,
)
from mspbill.db.types import ExactDecimal, Int64

log = logging.getLogger(__name__)

BATCH_ROWS = 1000
AUDIT_ACTION = "database.copied"
# Tables that stay behind: where the office went from the source is the source's own business.
NOT_COPIED = frozenset({DatabaseMove.__tablename__})
# Tables the migrations fill with default rows (collection settings, the default reminder schedule): a
# database that holds only these rows is as empty as one without tables.
SEEDED = frozenset({"collection_settings", "reminder_steps"})


def copied_tables() -> list[Table]:
    """mspbill's tables that a copy carries, in foreign-key order."""
    return [t for t in Base.metadata.sorted_tables if t.name not in NOT_COPIED]


class CopyRefusedError(RuntimeError):
    """The copy was not made (target not empty, unreachable, not at our schema …); nothing was written.

    `kind` says which, for a caller that offers a next step: "address" (the URL), "password" (the server
    wants one, or refused it), "server" (unreachable, no such database, no privilege), "not_empty",
    "already_copied" (the target holds a copy of an office already: use it instead), "source" (the
    office's own database: moved away, at another schema, a run under way), "failed" (an error while
    copying), "mismatch" (the check)."""

    def __init__(self, message: str, kind: str = "failed"):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class TableCheck:
    table: str
    source_rows: int
    target_rows: int
    # column -> (source sum, target sum) for the id, every *_cents and every integer quantity column
    # (the id's sum is checked like the others, but shown apart: it is not a total)
    totals: dict[str, tuple[int, int]] = field(default_factory=dict)
    # column -> (source sum, target sum) for every exact-decimal column (rates, percentages)
    decimal_totals: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)

    @property
    def matches(self) -> bool:
        return (self.source_rows == self.target_rows
                and all(a == b for a, b in self.totals.values())
                and all(a == b for a, b in self.decimal_totals.values()))

    @property
    def checked(self) -> list[str]:
        """The money and quantity totals compared, as a person reads them ("total", not "total_cents";
        "quantity", not "quantity_e4").  Not the id: its sum is checked too, but it is no total."""
        names = [name.removesuffix("_cents").removesuffix("_e4") for name in self.totals if name != "id"]
        return names + list(self.decimal_totals)

    def differences(self) -> list[str]:
        """What differs, in words: "rows 12 → 11", "total_cents 1234 → 1200"."""
        out = [] if self.source_rows == self.target_rows else [f"rows {self.source_rows} → {self.target_rows}"]
        out += [f"{c} {a} → {b}" for c, (a, b) in self.totals.items() if a != b]
        out += [f"{c} {a} → {b}" for c, (a, b) in self.decimal_totals.items() if a != b]
        return out


@dataclass(frozen=True)
class CopyReport:
    source: str          # where from, as shown to a person (no password)
    target: str          # where to, as shown to a person (no password)
    tables: list[TableCheck]
    seconds: float
    # The target's URL as a person types it (postgresql://user@host:port/db; no password), for `mspbill db use`.
    target_url: str = ""
    # The move recorded in the source (mspbill.db.moves), so that the copy left behind is not used as the
    # office; when that failed, why (the copy itself is good and committed).
    source_marked: bool = True
    mark_problem: str = ""

    @property
    def rows(self) -> int:
        return sum(t.target_rows for t in self.tables)

    @property
    def matches(self) -> bool:
        return all(t.matches for t in self.tables)

    def summary(self) -> str:
        return (f"Copied {self.rows:,} rows in {len(self.tables)} tables to {self.target} in {self.seconds:.1f} s; "
                "every table's count and totals match.")

    def warning(self) -> str:
        """When the source could not be marked as moved: what that means and what to do (else "")."""
        if self.source_marked:
            return ""
        return (f"WARNING: {self.source} could NOT be marked as moved ({self.mark_problem}). It still opens as "
                f"if it were the office: do not work in it any more -- what is billed or charged there would be "
                f"billed or charged twice. Switch every workstation to {self.target} now, and move or delete "
                f"{self.source}.")

    def lines(self) -> list[str]:
        """The per-table check (table, rows, totals checked) and the summary, as plain text lines."""
        rows = [("Table", "Rows", "Totals checked")]
        rows += [(t.table, f"{t.target_rows:,}", ", ".join(t.checked) or "-") for t in self.tables]
        width0 = max(len(r[0]) for r in rows)
        width1 = max(len(r[1]) for r in rows)
        out = [f"{r[0].ljust(width0)}  {r[1].rjust(width1)}  {r[2]}".rstrip() for r in rows]
        warning = self.warning()
        return [*out, "", self.summary(), *(["", warning] if warning else [])]


# progress(done_rows, total_rows, text)
Progress = Callable[[int, int, str], None]


def _no_progress(_done: int, _total: int, _text: str) -> None:
    pass


# --- what is checked ----------------------------------------------------------------------

def checked_columns(table: Table) -> list[str]:
    """The integer columns whose sums are compared: the id, money (*_cents) and quantities."""
    return [c.name for c in table.columns
            if isinstance(c.type, (Integer, Int64)) and (c.name == "id" or c.name.endswith("_cents") or "quantity" in c.name)]


def decimal_columns(table: Table) -> list[str]:
    return [c.name for c in table.columns if isinstance(c.type, ExactDecimal)]


def measure(conn: Connection, table: Table) -> tuple[int, dict[str, int], dict[str, Decimal]]:
    """(rows, {column: sum} of the checked integer columns, {column: sum} of the decimal columns).

    Integer sums are the database's own (exact on both); decimals are summed here, as Decimals, because
    SQLite keeps them as text and would sum them as floats."""
    ints = checked_columns(table)
    row = conn.execute(select(func.count(), *(func.coalesce(func.sum(table.c[c]), 0) for c in ints))
                       .select_from(table)).one()
    decimals: dict[str, Decimal] = {}
    for name in decimal_columns(table):
        total = Decimal(0)
        for value in conn.execute(select(table.c[name]).where(table.c[name].is_not(None))).scalars():
            total += value
        decimals[name] = total
    return int(row[0]), {c: int(v) for c, v in zip(ints, row[1:], strict=True)}, decimals


# --- the target ----------------------------------------------------------------------------

def _shown(url: str) -> str:
    if is_server(url):
        return shown(url)
    return _sqlite_path(url) or url


def _sqlite_path(url: str) -> str | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return parsed.database


def _suggested_name(database: str) -> str:
    return "mspbill_office" if database != "mspbill_office" else "mspbill_office2"


def _what_to_do(url: str) -> str:
    if is_server(url):
        parsed = parse(url)
        return (f"Ask whoever looks after the server for a new, empty database (for example CREATE DATABASE "
                f"\"{_suggested_name(str(parsed.database))}\" OWNER \"{parsed.username}\";) and copy to that.")
    return "Copy to a new file name instead."


def _where(url: str) -> str:
    return f"The database {server_name(url)}" if is_server(url) else f"The file {_sqlite_path(url)}"


def _how_to_use(url: str) -> str:
    if is_server(url):
        return f"`mspbill db use {shown(url)}` (or Settings → Data → Database → Change…)"
    return f"`mspbill --db sqlite:///{_sqlite_path(url)}`"


def _not_empty_message(conn: Connection, url: str, names: list[str]) -> str:
    ours = {t.name for t in Base.metadata.sorted_tables} | {"alembic_version"}
    if "clients" in names or "invoices" in names:
        counts = []
        for name, label in (("clients", "client"), ("invoices", "invoice")):
            if name not in names:
                continue
            try:
                with conn.begin_nested():
                    n = int(conn.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one())
            except SQLAlchemyError:
                continue
            counts.append(f"{n:,} {label}{'' if n == 1 else 's'}")
        has = (f"already holds mspbill's tables with {' and '.join(counts)}"
               if counts and not all(c.startswith("0 ") for c in counts)
               else "already holds mspbill's tables (without clients or invoices, but not as mspbill sets them "
                    "up: at another schema, or with other rows)")
        others = sorted(set(names) - ours)
        if others:
            has += f" and {len(others)} other table{'s' if len(others) > 1 else ''}"
    else:
        listed = ", ".join(sorted(names)[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        has = f"holds {len(names)} other table{'s' if len(names) > 1 else ''}: {listed}"
    return (f"{_where(url)} {has}. mspbill copies only into an empty database, so that nothing there is "
            f"overwritten; nothing was changed. {_what_to_do(url)}")


def _existing_tables(conn: Connection) -> list[str]:
    """What makes the target not empty: every table and view (an empty alembic_version aside)."""
    insp = inspect(conn)
    names = list(insp.get_table_names()) + list(insp.get_view_names())
    if "alembic_version" in names and conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 0:
        names.remove("alembic_version")
    return names


EMPTY, TOUCHED = "empty", "touched"


def _touched_but_empty(conn: Connection, names: list[str]) -> bool:
    """Only mspbill's tables, at the current schema, without a row but the ones the migrations seed: a
    workstation (or "Use the empty database anyway") opened the empty database before the copy."""
    if set(names) != set(Base.metadata.tables) | {"alembic_version"}:
        return False
    if MigrationContext.configure(conn).get_current_revision() != head_revision():
        return False
    for table in Base.metadata.sorted_tables:
        if table.name not in SEEDED and conn.execute(select(text("1")).select_from(table).limit(1)).first():
            return False
    return True


def _client_names(conn: Connection) -> list[str]:
    return sorted(conn.execute(select(Client.__table__.c.legal_name)).scalars())


def _already_copied(conn: Connection, url: str, names: list[str],
                    source_clients: Callable[[], list[str]]) -> str | None:
    """When the target holds a copy of an office already (an earlier `db copy`): what to say instead of
    "ask for a new empty database" -- it is to be used, not copied into again."""
    ending = "mspbill copies only into an empty database, so nothing was changed there."
    try:
        with conn.begin_nested():
            if "audit_log" in names:
                log_table = AuditEntry.__table__
                row = conn.execute(select(log_table.c.at, log_table.c.summary, log_table.c.details)
                                   .where(log_table.c.action == AUDIT_ACTION)
                                   .order_by(log_table.c.id.desc()).limit(1)).first()
                if row is not None:
                    details = row.details if isinstance(row.details, dict) else {}
                    came_from = details.get("source") or row.summary
                    when = row.at.astimezone().strftime("%Y-%m-%d %H:%M")
                    return (f"{_where(url)} already holds a copy of an office (copied from {came_from} on "
                            f"{when}): to use it, {_how_to_use(url)}. {ending}")
            if "clients" in names:
                theirs = _client_names(conn)
                if theirs and theirs == source_clients():
                    return (f"{_where(url)} already holds this office's clients (the same {len(theirs):,}): it "
                            f"seems to hold a copy of this office already. To use it, {_how_to_use(url)}. {ending}")
    except SQLAlchemyError:
        log.info("could not tell whether %s holds a copy already", _shown(url), exc_info=True)
    return None


def _target_state(conn: Connection, url: str, source_clients: Callable[[], list[str]]) -> str:
    """EMPTY or TOUCHED (touched but empty); CopyRefusedError for anything else, with what is there."""
    names = _existing_tables(conn)
    if not names:
        return EMPTY
    if _touched_but_empty(conn, names):
        return TOUCHED
    already = _already_copied(conn, url, names, source_clients)
    if already:
        raise CopyRefusedError(already, kind="already_copied")
    raise CopyRefusedError(_not_empty_message(conn, url, names), kind="not_empty")


def _server_error(exc: BaseException, url: str, doing: str) -> CopyRefusedError:
    """A database error on the target in a sentence, and which kind of refusal it is."""
    sentence = explain(exc, url)
    if sentence is not None:
        lowered = sentence.lower()
        kind = "password" if ("refused user" in lowered or "asks for a password" in lowered) else "server"
        if "was lost" in lowered:
            kind = "failed"
            sentence += " Nothing of the copy was kept there; run it again."
        return CopyRefusedError(sentence, kind=kind)
    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    detail = str(orig).strip().splitlines()
    first = detail[0] if detail else type(exc).__name__
    context = getattr(getattr(orig, "diag", None), "context", None)
    if context:  # PostgreSQL says which row and column: "COPY clients, line 12, column legal_name: …"
        first += f"; {context.strip().splitlines()[0][:300]}"
    return CopyRefusedError(f"{doing} failed ({first}), so the copy was rolled back: {_shown(url)} is as it was "
                            "and the office's own database is unchanged.", kind="failed")


# --- the source ----------------------------------------------------------------------------

@contextlib.contextmanager
def _source_snapshot(source: Database) -> Iterator[Connection]:
    """A connection in one read transaction under the source's writers' lock (see the module docstring)."""
    engine = source.engine.execution_options(**{WRITE_OPTION: True})
    try:
        conn = engine.connect()
        conn.begin()
    except SQLAlchemyError as exc:
        sentence = explain(exc, source.url)
        if sentence is None:
            msg = str(getattr(exc, "orig", None) or exc).lower()
            if "locked" in msg or "busy" in msg:
                sentence = (f"Another window or program is saving to {source.describe()} right now; try the copy "
                            "again in a moment. Nothing was copied.")
            else:
                sentence = f"mspbill cannot read {source.describe()}: {getattr(exc, 'orig', None) or exc}."
        raise CopyRefusedError(sentence, kind="source") from exc
    try:
        yield conn
    finally:
        conn.rollback()  # it only read
        conn.close()


def _check_source_schema(conn: Connection, where: str, tables: list[Table]) -> None:
    """At the current schema, and every table with every column this version reads and writes."""
    rev = MigrationContext.configure(conn).get_current_revision()
    if rev != head_revision():
        raise CopyRefusedError(
            f"The office database {where} is at schema {rev or 'none'}, not {head_revision()}; open it with "
            "this version of mspbill first (`mspbill db upgrade`), then copy.", kind="source")
    insp = inspect(conn)
    present = set(insp.get_table_names())
    missing = []
    for table in tables:
        if table.name not in present:
            missing.append(f"the table {table.name}")
            continue
        have = {c["name"] for c in insp.get_columns(table.name)}
        missing += [f"{table.name}.{c.name}" for c in table.columns if c.name not in have]
    if missing:
        raise CopyRefusedError(
            f"The office database {where} says it is at the current schema but lacks {', '.join(missing[:5])}"
            f"{' and more' if len(missing) > 5 else ''} (was it made by a test build of mspbill?). Nothing was "
            "copied; restore a backup made by a released version, or report this.", kind="source")


def _refuse_if_run_under_way(conn: Connection, where: str) -> None:
    """A month-end run still charging would carry on writing to the old database after the move."""
    from sqlalchemy.orm import Session

    from mspbill.batch.run import busy_text, live_run

    with Session(bind=conn) as session:
        run = live_run(session)
        if run is not None:
            raise CopyRefusedError(f"{busy_text(run)} Copy the office after it has finished: its charges would "
                                   f"be recorded only in {where}.", kind="source")


# --- copying -------------------------------------------------------------------------------

def _label(table: Table) -> str:
    return table.name.replace("_", " ")


def _self_references(table: Table) -> list[str]:
    return [fk.parent.name for fk in table.foreign_keys if fk.column.table is table]


def copy_table(src: Connection, dst: Connection, table: Table, on_batch: Callable[[int], None]) -> None:
    """Copy one table's rows in id order, BATCH_ROWS at a time.

    A row pointing at a row of its own table that comes later (a credit note's invoice, in principle) is
    inserted without that link and linked once the table is complete."""
    names = [c.name for c in table.columns]
    id_at = names.index("id")
    self_refs = [names.index(name) for name in _self_references(table)]
    later: list[tuple[int, str, Any]] = []
    write = _row_writer(dst, table)
    # yield_per on the statement: Connection.execution_options() would change `src` for good (a server-side
    # cursor for every later statement, the move's INSERT included).
    result = src.execute(select(table).order_by(*table.primary_key.columns),
                         execution_options={"yield_per": BATCH_ROWS})
    for batch in result.partitions():
        rows: list[Sequence[Any]] = list(batch)  # values in the table's column order
        if self_refs:
            rows = [list(row) for row in rows]
            for row in rows:
                for at in self_refs:
                    if row[at] is not None and row[at] >= row[id_at]:
                        later.append((row[id_at], names[at], row[at]))
                        row[at] = None  # type: ignore[index]
        write(rows)
        on_batch(len(rows))
    for row_id, col, value in later:
        dst.execute(table.update().where(table.c.id == row_id).values({col: value}))


def _row_writer(dst: Connection, table: Table) -> Callable[[list[Sequence[Any]]], None]:
    """How a batch of rows (values in the table's column order) goes in.

    PostgreSQL: COPY … FROM STDIN (an INSERT per row, even pipelined, is several times slower), each value
    first through its column type's own bind processing -- the very conversion an INSERT would apply
    (exact decimals, UTC datetimes, enums by value, JSON).  Elsewhere: an executemany INSERT.
    A NULL stays NULL in a JSON column (not the JSON value null)."""
    columns = list(table.columns)
    names = [c.name for c in columns]
    if dst.dialect.name != "postgresql":
        json_at = [i for i, c in enumerate(columns) if isinstance(c.type, JSON)]

        def insert(rows: list[Sequence[Any]]) -> None:
            params = []
            for row in rows:
                values = dict(zip(names, row, strict=True))
                for i in json_at:
                    if row[i] is None:
                        values[names[i]] = null()
                params.append(values)
            dst.execute(table.insert(), params)

        return insert
    dialect = dst.dialect
    processors = [c.type.dialect_impl(dialect).bind_processor(dialect) for c in columns]
    statement = f'COPY "{table.name}" ({", ".join(chr(34) + n + chr(34) for n in names)}) FROM STDIN'

    def copy(rows: list[Sequence[Any]]) -> None:
        raw = dst.connection.driver_connection
        assert raw is not None
        try:
            with raw.cursor() as cursor, cursor.copy(statement) as pipe:
                for row in rows:
                    pipe.write_row([value if value is None or proc is None else proc(value)
                                    for value, proc in zip(row, processors)])
        except dialect.loaded_dbapi.Error as exc:
            raise DBAPIError.instance(statement, None, exc, dialect.loaded_dbapi.Error) from exc

    return copy


def _reset_sequences(dst: Connection, tables: list[Table]) -> None:
    """PostgreSQL: each id sequence continues after the highest copied id (new rows must not collide)."""
    if dst.dialect.name != "postgresql":
        return  # SQLite's INTEGER PRIMARY KEY takes max(id) + 1 by itself
    for table in tables:
        if "id" not in table.c:
            continue
        dst.execute(text(f"SELECT setval(pg_get_serial_sequence(:name, 'id'), "
                         f"COALESCE((SELECT MAX(id) FROM \"{table.name}\"), 0) + 1, false)"),
                    {"name": f'"{table.name}"'})


def _migrate(dst: Connection) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = dst  # in our transaction: env.py joins it
    command.upgrade(cfg, "head")


def _clear_seeded_rows(dst: Connection, tables: list[Table]) -> None:
    """The migrations seed a few settings rows (the default reminder schedule); the office's own replace them.
    These rows were written moments ago in this same transaction: nothing of anybody's is deleted."""
    for table in reversed(tables):
        if dst.execute(select(func.count()).select_from(table)).scalar_one():
            dst.execute(table.delete())


def _record_audit(dst: Connection, source_shown: str, report_rows: int, checks: list[TableCheck]) -> None:
    from mspbill.audit import current_actor, record

    actor = current_actor()
    summary = (f"Copied from {source_shown} on {socket.gethostname()} by {actor}: "
               f"{report_rows:,} rows in {len(checks)} tables")
    with Session(bind=dst) as session:  # joins the connection's transaction; commits nothing itself
        record(session, AUDIT_ACTION, "database", None, summary,
               {"source": source_shown, "host": socket.gethostname(), "rows": report_rows,
                "tables": {c.table: c.target_rows for c in checks}})
        session.flush()


def _connect_target(engine: Engine, url: str) -> Connection:
    try:
        return engine.connect()
    except SQLAlchemyError as exc:
        raise _server_error(exc, url, "Connecting to the target") from exc


def _prepare_sqlite_target(url: str, source_clients: Callable[[], list[str]]) -> Path | None:
    """A new SQLite file: its folder must exist; an existing file must be empty (or touched but empty).
    Returns the path when the copy creates the file."""
    path_text = _sqlite_path(url)
    if path_text is None:
        raise CopyRefusedError("Copy to a database server (postgresql://USER@SERVER/DATABASE) or to a new SQLite "
                               "file (sqlite:///PATH).", kind="address")
    path = Path(path_text)
    if not path.parent.is_dir():
        raise CopyRefusedError(f"The folder {path.parent} does not exist; nothing was copied.", kind="address")
    if path.exists() and path.stat().st_size > 0:
        # Read-only: the engine's first connection would switch the file to WAL.
        try:
            with read_only_connection(url) as conn:
                _target_state(conn, url, source_clients)
        except (SQLAlchemyError, DatabaseOpenError) as exc:
            raise CopyRefusedError(f"The file {path} is not an empty database "
                                   f"({getattr(exc, 'orig', None) or exc}); nothing was changed. "
                                   f"{_what_to_do(url)}", kind="not_empty") from exc
    return None if path.exists() else path


def _remove_new_file(path: Path) -> None:
    for extra in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(OSError):
            Path(str(path) + extra).unlink()


def copy_database(source: Database, target_url: str, progress: Progress | None = None) -> CopyReport:
    """Copy every table of `source` into the empty database at `target_url` (migrated there first), check
    every table's row count and money totals, and commit only if all match; then mark `source` as moved
    (report.source_marked says whether that worked).  CopyRefusedError otherwise, with nothing written.

    `target_url` may name a PostgreSQL server (its password from the URL, else this computer's keyring)
    or a new SQLite file.  progress(done_rows, total_rows, text) is called per batch of rows."""
    started = time.perf_counter()
    report = progress or _no_progress
    try:
        url = with_saved_password(normalise(target_url))
    except DatabaseUrlError as exc:
        raise CopyRefusedError(str(exc), kind="address") from exc
    target_shown = _shown(url)
    source_shown = shown(source.url) if is_server(source.url) else source.describe()

    def source_clients() -> list[str]:
        with source.engine.connect() as conn:
            return _client_names(conn)

    new_file = None if is_server(url) else _prepare_sqlite_target(url, source_clients)
    tables = copied_tables()
    engine = create_db_engine(url)
    committed = False
    try:
        # First a quick look at the target, before the office's database is locked: an unreachable server,
        # a wrong password or a database that is not empty is said at once.
        with _connect_target(engine, url) as probe:
            try:
                _target_state(probe, url, source_clients)
            except SQLAlchemyError as exc:
                raise _server_error(exc, url, "Looking at the target") from exc
        report(0, 0, "Reading the office's database…")
        with _source_snapshot(source) as src:
            try:
                _check_source_schema(src, source_shown, [*tables, Base.metadata.tables[DatabaseMove.__tablename__]])
                move = current_move(src)
                if move is not None:  # copying the copy left behind would make a second stale office
                    raise CopyRefusedError(moved_sentence(move, source.url), kind="source")
                _refuse_if_run_under_way(src, source_shown)
                before = {t.name: measure(src, t) for t in tables}
            except SQLAlchemyError as exc:
                raise CopyRefusedError(f"mspbill cannot read the office database {source_shown} "
                                       f"({getattr(exc, 'orig', None) or exc}); nothing was copied.",
                                       kind="source") from exc
            total = sum(m[0] for m in before.values())
            done = 0
            doing = "Creating the tables"
            dst = _connect_target(engine.execution_options(**{WRITE_OPTION: True}), url)
            try:
                with dst.begin():
                    # The writers' lock is taken by the engine as the transaction begins (engine.py).
                    # Again, under the lock: another copy may have just finished.
                    state = _target_state(dst, url, lambda: _client_names(src))
                    report(0, total, f"Creating the tables on {target_shown}…")
                    if state == EMPTY:
                        _migrate(dst)
                    _clear_seeded_rows(dst, tables)  # touched but empty: the seeded rows, and nothing else
                    for table in tables:
                        if not before[table.name][0]:
                            continue
                        label = f"Copying {_label(table)}…"
                        doing = f"Copying the table {table.name}"
                        report(done, total, label)

                        def advanced(n: int, label: str = label) -> None:
                            nonlocal done
                            done += n
                            report(done, total, label)

                        copy_table(src, dst, table, advanced)
                    doing = "Checking the copy"
                    _reset_sequences(dst, tables)
                    report(done, total, "Checking every table's count and totals…")
                    checks = []
                    for table in tables:
                        rows, ints, decimals = before[table.name]
                        t_rows, t_ints, t_decimals = measure(dst, table)
                        checks.append(TableCheck(
                            table.name, rows, t_rows, {c: (ints[c], t_ints[c]) for c in ints},
                            {c: (decimals[c], t_decimals[c]) for c in decimals}))
                    bad = [c for c in checks if not c.matches]
                    if bad:
                        detail = "; ".join(f"{c.table}: {', '.join(c.differences())}" for c in bad)
                        raise CopyRefusedError(
                            f"The copy on {target_shown} did not match the office's database ({detail}), so it "
                            "was rolled back: the target is as it was and the office's own database is "
                            "unchanged. Please report this, with the log file.", kind="mismatch")
                    rows_copied = sum(c.target_rows for c in checks)
                    _record_audit(dst, source_shown, rows_copied, checks)
                committed = True
            except SQLAlchemyError as exc:
                raise _server_error(exc, url, doing) from exc
            finally:
                dst.close()
            marked, problem = _mark_moved(src, source, url, rows_copied)
    finally:
        engine.dispose()
        if new_file is not None and not committed:
            _remove_new_file(new_file)
    seconds = time.perf_counter() - started
    report(total, total, "Done.")
    log.info("copied %s rows from %s to %s in %.1f s", rows_copied, source_shown, target_shown, seconds)
    return CopyReport(source=source_shown, target=target_shown, tables=checks, seconds=seconds,
                      target_url=shown(url) if is_server(url) else f"sqlite:///{_sqlite_path(url)}",
                      source_marked=marked, mark_problem=problem)


def moved_to_text(url: str) -> str:
    """Where the office went, as recorded in the source: the server as shown, or the file's full path."""
    return shown(url) if is_server(url) else str(Path(_sqlite_path(url) or "").resolve())


def _mark_moved(src: Connection, source: Database, url: str, rows: int) -> tuple[bool, str]:
    """Record the move in the source, in the transaction that has held its writers' lock since it was read
    (no write slipped in between).  The copy is committed already: a failure here is reported, not raised."""
    try:
        record_move(src, moved_to_text(url), f"{rows:,} rows copied")
        src.commit()
    except SQLAlchemyError as exc:
        with contextlib.suppress(SQLAlchemyError):
            src.rollback()
        problem = explain(exc, source.url) or str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        log.error("the copy to %s is committed, but %s was not marked as moved: %s", _shown(url),
                  source.describe(), exc)
        return False, problem
    return True, ""
