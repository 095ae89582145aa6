"""The copy left behind by a move: marked, refused when opened, reclaimed only on purpose.

`mspbill db copy --to URL` (Settings → Data → Copy) copies the office into another database -- this
computer's file onto the office's server, or a server's data into a file -- and the office works there
from then on.  The database it came from still holds the office as it was at that moment.  Opened again
(`mspbill db use --local`, the start-up dialog's "Use this computer's own file" while the server is
down), it would look like the office, and the next month-end run would bill and charge every autopay
client a second time for what was billed and charged after the move: new idempotency keys, nothing
catches it.

So the copy records the move in the database it came from (a row in `database_moves`, in the same
transaction that held that database's writers' lock while it was read), and
mspbill.db.schema.open_database refuses a database with a move not reclaimed (DatabaseMovedError, whose
sentence says where the office went and how to work there).  Every workstation is refused alike: a
server the office left is refused on the other workstations too.

To make the copy left behind the office again anyway (the server is gone for good, say):
`mspbill db use --local --reclaim`, `mspbill db use postgresql://… --reclaim`, `mspbill --db URL db
reclaim`, or `reclaim(url)` from the app's dialog.  The move's row stays (reclaimed_at/by set) and the
audit log says who did it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, create_engine, func, inspect, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from mspbill.db.engine import Database, create_db_engine
from mspbill.db.models import AuditEntry, DatabaseMove
from mspbill.db.schema import DatabaseMovedError, DatabaseOpenError, open_database
from mspbill.db.server import (
    DatabaseUrlError,
    explain,
    is_server,
    normalise,
    parse,
    server_name,
    shown,
)
from mspbill.paths import DB_FILENAME

MOVED_ACTION = "database.moved"
RECLAIMED_ACTION = "database.reclaimed"
TABLE = DatabaseMove.__tablename__


@dataclass(frozen=True)
class Move:
    """Where the office went from this database, and when (never a password)."""

    id: int
    moved_to: str          # postgresql://user@host:port/db, or a file's path
    moved_at: dt.datetime  # UTC
    actor: str
    host: str

    @property
    def to_server(self) -> bool:
        return self.moved_to.startswith(("postgresql://", "postgres://"))

    def when(self) -> str:
        """The moment in this computer's local time, to the minute: "2026-11-22 14:05"."""
        return self.moved_at.astimezone().strftime("%Y-%m-%d %H:%M")


def _move_of(row: DatabaseMove) -> Move:
    return Move(id=row.id, moved_to=row.moved_to, moved_at=row.moved_at, actor=row.actor, host=row.host)


def _latest(conn: Connection) -> Move | None:
    if not inspect(conn).has_table(TABLE):
        return None  # a database older than moves (it cannot have been moved)
    with Session(bind=conn) as session:
        row = session.scalars(select(DatabaseMove).where(DatabaseMove.reclaimed_at.is_(None))
                              .order_by(DatabaseMove.id.desc()).limit(1)).first()
        return _move_of(row) if row is not None else None


def current_move(db: Database | Connection | Session) -> Move | None:
    """The move not reclaimed of this database (the latest), or None: it is the office."""
    if isinstance(db, Session):
        return _latest(db.connection())
    if isinstance(db, Connection):
        return _latest(db)
    with db.engine.connect() as conn:
        return _latest(conn)


# --- the sentence -----------------------------------------------------------------------------------

def _sqlite_path(url: str) -> str:
    return str(parse(url).database or "")


def reclaim_command(url: str) -> str:
    """How a person makes the database at `url` the office again, as a command."""
    if is_server(url):
        return f"`mspbill db use {shown(url)} --reclaim`"
    path = _sqlite_path(url)
    if Path(path).name == DB_FILENAME:
        return "`mspbill db use --local --reclaim`"
    return f"`mspbill --db sqlite:///{path} db reclaim`"


def moved_sentence(move: Move, url: str) -> str:
    """What DatabaseMovedError says: where the office went, that this is the copy left behind, what to do."""
    if is_server(url):
        this = f"this database ({server_name(url)}) is the copy left behind"
        again = "To make this database the office again anyway"
    else:
        this = "this file is the copy left behind"
        again = "To make this file the office again anyway"
    if move.to_server:
        where = move.moved_to
        work = f"Work on the server: `mspbill db use {move.moved_to}` (or Settings → Data → Database)."
    else:
        on = f" (on the computer {move.host})" if move.host else ""
        where = f"the file {move.moved_to}{on}"
        work = (f"Work from that file: `mspbill --db sqlite:///{move.moved_to}` on that computer (or `mspbill db "
                "use --local` if it is that computer's own file).")
    return (f"This office was moved to {where} on {move.when()} by {move.actor} (mspbill db copy); {this} and "
            f"lacks everything done there since. {work} {again}: {reclaim_command(url)}.")


def moved_error(move: Move, url: str, extra: str = "") -> DatabaseMovedError:
    sentence = moved_sentence(move, url) + (f" {extra}" if extra else "")
    return DatabaseMovedError(sentence, move.moved_to, move.moved_at, url)


def refuse_if_moved(db: Database) -> None:
    """DatabaseMovedError when the office was moved away from `db` (open_database calls this)."""
    try:
        move = current_move(db)
    except SQLAlchemyError as exc:
        sentence = explain(exc, db.url)
        raise DatabaseOpenError(sentence or f"mspbill cannot read the database {db.describe()}: "
                                            f"{getattr(exc, 'orig', None) or exc}") from exc
    if move is not None:
        raise moved_error(move, db.url)


# --- recording a move (mspbill.db.copy) --------------------------------------------------------------

def record_move(conn: Connection, moved_to: str, summary_from: str = "") -> Move:
    """Mark the database on `conn` as moved to `moved_to` (as shown: no password), with an audit entry.

    In the caller's transaction (the copy's, holding the writers' lock): commits nothing itself."""
    from mspbill.audit import current_actor, record

    host = socket.gethostname()[:255]
    actor = current_actor()
    with Session(bind=conn) as session:
        row = DatabaseMove(moved_to=moved_to[:1000], actor=actor, host=host, reclaimed_by="")
        session.add(row)
        session.flush()
        record(session, MOVED_ACTION, "database", row.id,
               f"Office moved to {moved_to} by {actor} on {host}: this database is the copy left behind"
               + (f" ({summary_from})" if summary_from else ""),
               {"moved_to": moved_to, "host": host})
        session.flush()
        return _move_of(row)


# --- looking without opening (db status, db use) ------------------------------------------------------

@contextlib.contextmanager
def read_only_connection(url: str) -> Iterator[Connection]:
    """A connection that writes nothing: a SQLite file read-only (the engine would switch it to WAL), a
    server as it is (the keyring's password added)."""
    if is_server(url):
        from mspbill.context import connectable_url

        engine = create_db_engine(connectable_url(url))
    else:
        path = Path(_sqlite_path(url))
        uri = f"{path.resolve().as_uri()}?mode=ro"
        engine = create_engine("sqlite://", creator=lambda: sqlite3.connect(uri, uri=True, timeout=5))
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def peek_move(url: str) -> Move | None:
    """The move of the database at `url` without opening it as the app does (read-only; nothing written).

    None when it was not moved, or for a file that does not exist yet.  DatabaseOpenError (a sentence)
    when it cannot be read."""
    try:
        url = normalise(url)
    except DatabaseUrlError as exc:
        raise DatabaseOpenError(str(exc)) from exc
    if not is_server(url):
        path = Path(_sqlite_path(url))
        if not path.is_file() or path.stat().st_size == 0:
            return None
    try:
        with read_only_connection(url) as conn:
            return _latest(conn)
    except SQLAlchemyError as exc:
        where = shown(url) if is_server(url) else _sqlite_path(url)
        raise DatabaseOpenError(explain(exc, url) or f"mspbill cannot read the database {where}: "
                                f"{getattr(exc, 'orig', None) or exc}") from exc


def status_of(url: str) -> dict[str, object]:
    """For `mspbill db status`: {} when the database was not moved, else what to show instead."""
    move = peek_move(url)
    if move is None:
        return {}
    return {"state": "moved", "moved_to": move.moved_to, "moved_at": move.moved_at.isoformat(),
            "moved_by": move.actor, "status": moved_sentence(move, url)}


def what_it_lacks(move: Move) -> str:
    """What was saved where the office went since the move, looked at there if it can be (best effort)."""
    target = move.moved_to if move.to_server else f"sqlite:///{move.moved_to}"
    since = move.moved_at
    try:
        if not move.to_server and not Path(move.moved_to).is_file():
            raise FileNotFoundError(move.moved_to)
        with read_only_connection(target) as conn:
            entries = AuditEntry.__table__

            def count(*actions: str) -> int:
                stmt = select(func.count()).select_from(entries).where(entries.c.at > since)
                if actions:
                    stmt = stmt.where(entries.c.action.in_(actions))
                return int(conn.execute(stmt).scalar_one())

            changes = count() - count("database.copied")
            issued = count("invoice.issued")
            paid = count("payment.recorded", "payment.charged", "payment.settled")
    except (OSError, SQLAlchemyError, DatabaseOpenError) as exc:
        why = (explain(exc, target) if isinstance(exc, SQLAlchemyError) else None) or str(exc)
        return (f"Everything saved at {move.moved_to} since {move.when()} is missing here (mspbill could not look "
                f"there now to count it: {why.split('. ')[0].rstrip('.')}).")
    if not changes:
        return f"Nothing was saved at {move.moved_to} since the move on {move.when()}."
    return (f"Since the move on {move.when()}, {changes:,} change{'s were' if changes != 1 else ' was'} saved at "
            f"{move.moved_to} (among them {issued:,} invoice{'s' if issued != 1 else ''} issued and {paid:,} "
            f"payment{'s' if paid != 1 else ''} recorded or charged); none of them are here, and what was billed "
            "or charged there would be billed or charged again from here.")


# --- reclaiming ----------------------------------------------------------------------------------------

def reclaim_database(db: Database) -> Move | None:
    """Make `db` the office again: its moves are marked reclaimed, with an audit entry.  Returns the move
    that was reclaimed (None: it was not moved, and nothing is written)."""
    from mspbill.audit import current_actor, record

    actor = current_actor()
    with db.write_session() as session, session.begin():
        move = current_move(session)
        if move is None:
            return None
        session.execute(update(DatabaseMove).where(DatabaseMove.reclaimed_at.is_(None))
                        .values(reclaimed_at=dt.datetime.now(dt.UTC), reclaimed_by=actor))
        record(session, RECLAIMED_ACTION, "database", move.id,
               f"Made the office again by {actor} on {socket.gethostname()}, although the office was moved to "
               f"{move.moved_to} on {move.when()}: what was saved there since is not here",
               {"moved_to": move.moved_to, "moved_at": move.moved_at.isoformat(), "host": socket.gethostname()})
    return move


def reclaim_url(url: str) -> Move | None:
    """reclaim(), returning the move reclaimed (None: the database was not moved; nothing written)."""
    from mspbill.context import connectable_url

    full = connectable_url(url)
    if peek_move(full) is None:
        return None
    db = open_database(full, None, migrate=False, moved_ok=True)
    try:
        return reclaim_database(db)
    finally:
        db.dispose()


def reclaim(url: str) -> None:
    """Make the database at `url` the office again although the office was moved away from it (the app's
    start-up dialog).  Opened without the moved check; DatabaseOpenError when it cannot be opened."""
    reclaim_url(url)


def before_use(url: str, reclaim_it: bool) -> Move | None:
    """`mspbill db use`: the database about to be used was moved away from?  Without `reclaim_it` that is
    refused (DatabaseMovedError; nothing changed); with it the move is returned, to reclaim_saying()."""
    move = peek_move(url)
    if move is not None and not reclaim_it:
        raise moved_error(move, url, "Nothing was changed: this computer still uses what it used before.")
    return move


def reclaim_saying(url: str, move: Move, say: Callable[[str], None]) -> None:
    """Say what the copy left behind lacks, then reclaim it, then say so."""
    where = "This database" if is_server(url) else "This file"
    say(f"{where} is the copy left behind when the office moved to {move.moved_to} on {move.when()} "
        f"(by {move.actor}). {what_it_lacks(move)}")
    reclaim_url(url)
    say(f"{where} is the office again (reclaimed; the audit log says by whom). If the office still works at "
        f"{move.moved_to}, stop: two offices would bill and charge the same clients.")
