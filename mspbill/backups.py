"""Backups and restore of the SQLite database.

Backups are made with SQLite's online backup API, so a copy is consistent while the
app, a month-end run or another workstation writes (in WAL mode the API reads one
snapshot, committed data still in the -wal file included).  Each copy is written to
a temporary file beside its destination, switched to a rollback journal (so that it
is one self-contained file), checked with `PRAGMA quick_check`, then renamed: a full
disk or an unwritable folder leaves no partial file, only a sentence.

Automatic backups (once a day at start, before every month-end run, before every
migration) are named `mspbill-YYYYMMDD-HHMMSS-ffffff-REASON.sqlite3` in the backups
folder; only those are pruned, keeping the last N (Settings -> Data, 1-365, default 30).
A manual backup there (`-manual`) and the one taken before a restore are kept; files
mspbill did not name are never touched.

A restore first checks the file (SQLite, undamaged, an mspbill database, not from a
newer mspbill, not empty) and changes nothing when it is refused.  Then it backs up the
current database (`-before-restore`, so the restore can be undone), prepares the copy
beside the database (migrated to this version's schema, an interrupted month-end run in
it released, the audit entry `database.restored` written), and puts it in place with
the backup API *into* the live file: SQLite's own locking makes every connection --
this process's pool, another window, another program -- see either the old database or
the new one, never a mix, and the -wal/-shm files stay SQLite's business.  Only a live
file that is damaged or not an mspbill database is moved aside instead (it is kept) and
the copy renamed into its place.

PostgreSQL is backed up with the server's own tools (pg_dump); this module says so.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from mspbill.db.schema import (
    SQLITE_HEADER,
    DatabaseOpenError,
    head_revision,
    known_revisions,
)

log = logging.getLogger(__name__)

KEEP_SETTING = "backups.keep"
KEEP_DEFAULT, KEEP_MIN, KEEP_MAX = 30, 1, 365
DAILY, MANUAL, BEFORE_RESTORE, BEFORE_MIGRATION = "daily", "manual", "before-restore", "before-migration"
RESTORED_ACTION = "database.restored"
RECONCILED_ACTION = "database.restore_reconciled"
# A payments sync looked at the processor after a restore, but some charges named invoices the
# restored database does not have (yet: the month-end run may re-create them); the run finishes it.
LOOKED_ACTION = "database.restore_looked"
# Tables every mspbill database has had since its first schema.
CORE_TABLES = frozenset({"alembic_version", "clients", "agreements", "audit_log"})
BACKUP_NAME = re.compile(r"^mspbill-(\d{8})-(\d{6})-(\d{6})-([a-z0-9][a-z0-9-]*)\.sqlite3$")
# Made at a person's request: never pruned (the one before a restore is how a restore is undone).
KEPT_REASONS = frozenset({"manual", "before-restore"})
_PARTIAL_NAME = re.compile(r"^mspbill-\d{8}-\d{6}-\d{6}-[a-z0-9-]+\.partial$")
PARTIAL_STALE = dt.timedelta(hours=6)
POSTGRES_TEXT = ("This office's data is on a database server ({where}). mspbill backs up and restores only its own "
                 "SQLite file; back up a PostgreSQL server with the server's own tools (pg_dump, and pg_restore "
                 "to restore). Nothing was done.")


class BackupError(DatabaseOpenError):
    """A backup or restore that cannot be done; the message says why and what to do (`why`: the
    short cause, such as "the disk is full", for a caller that words its own sentence)."""

    def __init__(self, message: str, why: str = ""):
        super().__init__(message)
        self.why = why


class RestoreRefused(BackupError):
    """The file offered for a restore is not one; nothing was changed."""


class NotSqliteError(BackupError):
    """The office's database is a server (PostgreSQL): backed up with its own tools."""


# --- naming and the keep-N setting ----------------------------------------------------------------


def backup_name(reason: str, now: dt.datetime | None = None) -> str:
    stamp = (now or dt.datetime.now()).strftime("%Y%m%d-%H%M%S-%f")
    return f"mspbill-{stamp}-{reason}.sqlite3"


def suggested_file_name(today: dt.date | None = None) -> str:
    """The name offered for "Back up now to a file…" and `backup --out DIR`."""
    return f"mspbill-backup-{(today or dt.date.today()).isoformat()}.sqlite3"


def parse_name(name: str) -> tuple[dt.datetime, str] | None:
    """(local time taken, reason) of a file mspbill named, else None."""
    m = BACKUP_NAME.match(name)
    if m is None:
        return None
    try:
        when = dt.datetime.strptime(f"{m[1]}{m[2]}{m[3]}", "%Y%m%d%H%M%S%f")
    except ValueError:
        return None
    return when, m[4]


def is_automatic(reason: str) -> bool:
    """daily, before-migration, before-batch-YYYY-MM (and any other reason mspbill gives by itself)."""
    return reason not in KEPT_REASONS


def parse_keep(text: str | int) -> int:
    from mspbill.validation import Issue, ValidationError

    try:
        value = int(str(text).strip())
    except ValueError:
        value = 0
    if not KEEP_MIN <= value <= KEEP_MAX:
        raise ValidationError([Issue("keep", f"Keep between {KEEP_MIN} and {KEEP_MAX} automatic backups "
                                             "(a whole number).")])
    return value


def keep_setting(settings: Any) -> int:
    """The keep-N setting of a mspbill.settings.Settings; the default when unset or unusable."""
    from mspbill.validation import ValidationError

    try:
        return parse_keep(settings.get(KEEP_SETTING, KEEP_DEFAULT))
    except ValidationError:
        return KEEP_DEFAULT


def settings_file_for(backup_dir: Path) -> Path:
    """The settings file of the office whose backups folder this is.

    The month-end run and the migration know only the backups folder: with --data-dir
    (or MSPBILL_DATA_DIR) everything is in one folder; otherwise platformdirs decides."""
    from mspbill.paths import resolve_paths

    default = resolve_paths(None)
    try:
        if default.backup_dir.resolve() == backup_dir.resolve():
            return default.settings_file
    except OSError:
        pass
    return resolve_paths(backup_dir.parent).settings_file


def keep_for(backup_dir: Path) -> int:
    from mspbill.settings import Settings

    path = settings_file_for(backup_dir)
    if not path.exists():
        return KEEP_DEFAULT
    try:
        return keep_setting(Settings(path))
    except OSError:
        return KEEP_DEFAULT


# --- writing a backup --------------------------------------------------------------------------


def _connect_target(path: Path) -> sqlite3.Connection:
    """The connection a copy is written through (a test narrows it to simulate a full disk)."""
    return sqlite3.connect(str(path), timeout=30)


def _readonly(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    # quick_check may quote damaged bytes that are not UTF-8.
    conn.text_factory = lambda raw: raw.decode("utf-8", "replace")
    return conn


def _quick_check(conn: sqlite3.Connection) -> str:
    row = conn.execute("PRAGMA quick_check").fetchone()
    return str(row[0]) if row else "no answer"


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    text = str(exc)
    if "disk is full" in text or "database or disk is full" in text:
        return "the disk is full"
    if "unable to open" in text or "readonly" in text or "read-only" in text:
        return "the folder cannot be written to"
    return text


def write_copy(src: Path, dest: Path, *, overwrite: bool = False) -> None:
    """A checked, self-contained copy of the SQLite database `src` at `dest` (all or nothing)."""
    if not src.exists() or src.stat().st_size == 0:
        raise BackupError(f"There is no database at {src} to back up yet.")
    try:
        if dest.resolve() == src.resolve():
            raise BackupError("A backup cannot be written over the database itself; choose another file.")
    except OSError:
        pass
    if dest.is_dir():
        raise BackupError(f"{dest} is a folder; give a file name such as {dest / suggested_file_name()}.")
    if dest.exists() and not overwrite:
        raise BackupError(f"{dest} already exists; choose another name (or delete it first).")
    folder = dest.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"The backup could not be written: the folder {folder} cannot be created "
                          f"({_why(exc)}). Nothing was written.", why=_why(exc)) from exc
    tmp = folder / (dest.name[: -len(".sqlite3")] + ".partial" if dest.name.endswith(".sqlite3")
                    else f".{dest.name}.partial")
    try:
        source = _readonly(src)
        try:
            problem = None
            target = _connect_target(tmp)
            try:
                source.backup(target)
                # One self-contained file: the source's WAL flag would otherwise make every reader of the
                # copy create -wal and -shm files beside it.
                target.execute("PRAGMA journal_mode = DELETE")
                result = _quick_check(target)
                if result != "ok":
                    problem = result
            finally:
                target.close()
        finally:
            source.close()
        if problem is not None:
            raise BackupError(f"The database {src} is damaged ({problem}); a copy of it would not be a backup. "
                              "Restore an earlier backup (Settings → Data, or `mspbill restore FILE`).")
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BackupError:
        _remove(tmp)
        raise
    except (OSError, sqlite3.Error) as exc:
        _remove(tmp)
        text = str(exc).lower()
        if "not a database" in text or "malformed" in text or "corrupt" in text:
            raise BackupError(f"The database {src} is damaged ({exc}); it cannot be backed up. Restore an "
                              "earlier backup (Settings → Data, or `mspbill restore FILE`).") from exc
        if "locked" in text or "busy" in text:
            raise BackupError(f"The database {src} stayed locked by another program; try the backup again in a "
                              "moment. Nothing was written.") from exc
        raise BackupError(f"The backup could not be written to {folder} ({_why(exc)}). Nothing was written; "
                          "free some space or choose another folder.", why=_why(exc)) from exc


def _remove(path: Path) -> None:
    for p in (path, Path(f"{path}-journal"), Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            p.unlink(missing_ok=True)
        except OSError:
            log.warning("could not remove %s", p)


def take_backup(src: Path, backup_dir: Path, reason: str, *, keep: int | None = None,
                now: dt.datetime | None = None) -> Path:
    """A backup named by mspbill in the backups folder; the automatic ones beyond `keep` are pruned."""
    dest = backup_dir / backup_name(reason, now)
    write_copy(src, dest)
    prune(backup_dir, keep if keep is not None else keep_for(backup_dir))
    log.info("backed up %s to %s (%s)", src, dest, reason)
    return dest


def prune(backup_dir: Path, keep: int, now: dt.datetime | None = None) -> list[Path]:
    """Delete the automatic backups beyond the newest `keep` (and partial files a crash left); nothing else."""
    keep = max(KEEP_MIN, keep)
    automatic: list[tuple[dt.datetime, str, Path]] = []
    stale: list[Path] = []
    try:
        entries = list(backup_dir.iterdir())
    except OSError:
        return []
    cutoff = (now or dt.datetime.now()).timestamp() - PARTIAL_STALE.total_seconds()
    for path in entries:
        parsed = parse_name(path.name)
        if parsed is not None and is_automatic(parsed[1]) and path.is_file():
            automatic.append((parsed[0], path.name, path))
        elif _PARTIAL_NAME.match(path.name) and path.is_file():
            try:
                if path.stat().st_mtime < cutoff:
                    stale.append(path)
            except OSError:
                pass
    automatic.sort()
    removed = [p for _when, _name, p in automatic[:-keep]] + stale
    for path in removed:
        try:
            path.unlink()
        except OSError as exc:
            log.warning("could not prune the old backup %s: %s", path, exc)
    return removed


def taken_today(backup_dir: Path, today: dt.date) -> bool:
    """Whether an automatic backup (of any reason) carries today's date."""
    try:
        names = [p.name for p in backup_dir.iterdir()]
    except OSError:
        return False
    for name in names:
        parsed = parse_name(name)
        if parsed is not None and is_automatic(parsed[1]) and parsed[0].date() == today:
            return True
    return False


# --- where the database is ---------------------------------------------------------------------


def sqlite_file(url: str) -> Path:
    """The SQLite file of a database URL; NotSqliteError (a sentence) for a server."""
    from mspbill.db.server import shown

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        raise NotSqliteError(POSTGRES_TEXT.format(where=shown(url)))
    if not parsed.database or parsed.database == ":memory:":
        raise BackupError("This database lives in memory only; there is nothing to back up.")
    return Path(parsed.database)


def backup_now(paths: Any, url: str, *, out: Path | None = None, overwrite: bool = False,
               reason: str = MANUAL, now: dt.datetime | None = None, keep: int | None = None) -> Path:
    """`Back up now`: into the backups folder (named by mspbill) or to `out`."""
    src = sqlite_file(url)
    if out is not None:
        write_copy(src, out, overwrite=overwrite)
        log.info("backed up %s to %s", src, out)
        return out
    return take_backup(src, paths.backup_dir, reason, keep=keep, now=now)


def daily_backup(paths: Any, url: str, *, keep: int | None = None, now: dt.datetime | None = None) -> Path | None:
    """Once a day at start: a backup unless an automatic one was already taken today (None then, and
    for a database server or an office with no database yet)."""
    now = now or dt.datetime.now()
    try:
        src = sqlite_file(url)
    except BackupError:
        return None
    if not src.exists() or src.stat().st_size == 0 or taken_today(paths.backup_dir, now.date()):
        return None
    return take_backup(src, paths.backup_dir, DAILY, keep=keep, now=now)


# --- looking at a database file ------------------------------------------------------------------


@dataclass(frozen=True)
class DatabaseFacts:
    """What a person needs to recognise a database or a backup of one."""

    path: str
    size_bytes: int
    taken_at: dt.datetime | None        # local time the backup was taken (its name, else the file's time)
    reason: str                          # daily, manual, before-batch-2026-11, … ; "" for another file
    revision: str | None
    clients: int | None
    invoices: int | None
    payments: int | None
    last_change: dt.datetime | None     # UTC of the newest audit entry in it
    problem: str = ""                    # why it could not be read ("" when fine)

    @property
    def automatic(self) -> bool:
        return bool(self.reason) and is_automatic(self.reason)

    @property
    def reason_text(self) -> str:
        if not self.reason:
            return "copied in"
        if self.reason.startswith("before-batch-"):
            return f"before the month-end run {self.reason[len('before-batch-'):]}"
        return {DAILY: "daily", MANUAL: "made by hand", BEFORE_RESTORE: "before a restore",
                BEFORE_MIGRATION: "before a database update"}.get(self.reason, self.reason.replace("-", " "))

    @property
    def counts_text(self) -> str:
        if self.clients is None:
            return "contents unknown"
        return f"{self.clients} client(s), {self.invoices} invoice(s), {self.payments} payment(s)"


def _parse_stamp(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        when = value
    else:
        try:
            when = dt.datetime.fromisoformat(str(value))
        except ValueError:
            return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _read_facts(conn: sqlite3.Connection) -> dict[str, Any]:
    tables = {row[0] for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
    out: dict[str, Any] = {"tables": tables, "revision": None, "clients": None, "invoices": None,
                           "payments": None, "last_change": None}
    if "alembic_version" in tables:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        out["revision"] = row[0] if row else None
    for table in ("clients", "invoices", "payments"):
        if table in tables:
            out[table] = int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # fixed table names
    if "audit_log" in tables:
        out["last_change"] = _parse_stamp(conn.execute("SELECT max(at) FROM audit_log").fetchone()[0])
    return out


def facts_of(path: Path) -> DatabaseFacts:
    """Facts about a database file, read through a read-only connection; `problem` says what is wrong."""
    parsed = parse_name(path.name)
    try:
        stat = path.stat()
    except OSError as exc:
        return DatabaseFacts(str(path), 0, None, "", None, None, None, None, None, _why(exc))
    taken = parsed[0] if parsed else dt.datetime.fromtimestamp(stat.st_mtime)
    reason = parsed[1] if parsed else ""
    base: dict[str, Any] = {"path": str(path), "size_bytes": stat.st_size, "taken_at": taken, "reason": reason}
    try:
        with path.open("rb") as fh:
            header = fh.read(len(SQLITE_HEADER))
        if header != SQLITE_HEADER:
            return DatabaseFacts(**base, revision=None, clients=None, invoices=None, payments=None,
                                 last_change=None, problem="not an SQLite database")
        conn = _readonly(path)
        try:
            facts = _read_facts(conn)
        finally:
            conn.close()
    except (OSError, sqlite3.Error) as exc:
        return DatabaseFacts(**base, revision=None, clients=None, invoices=None, payments=None,
                             last_change=None, problem=_why(exc))
    return DatabaseFacts(**base, revision=facts["revision"], clients=facts["clients"], invoices=facts["invoices"],
                         payments=facts["payments"], last_change=facts["last_change"])


def list_backups(backup_dir: Path) -> list[DatabaseFacts]:
    """The backups in the backups folder, newest first: mspbill's and any .sqlite3 file copied there."""
    try:
        files = [p for p in backup_dir.iterdir()
                 if p.is_file() and (p.suffix in (".sqlite3", ".sqlite", ".db"))]
    except OSError:
        return []
    facts = [facts_of(p) for p in files]
    return sorted(facts, key=lambda f: (f.taken_at or dt.datetime.min, f.path), reverse=True)


def check_backup_file(path: Path) -> DatabaseFacts:
    """Everything a restore needs to be true of the file, or RestoreRefused with a sentence."""
    where = f"The file {path}"
    if not path.exists():
        raise RestoreRefused(f"{where} does not exist.")
    if path.is_dir():
        raise RestoreRefused(f"{path} is a folder; choose a backup file.")
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            header = fh.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise RestoreRefused(f"{where} cannot be read ({_why(exc)}). Nothing was changed.") from exc
    if size == 0:
        raise RestoreRefused(f"{where} is empty; it is not a backup. Nothing was changed.")
    if header != SQLITE_HEADER:
        raise RestoreRefused(f"{where} is not an mspbill backup (it is not an SQLite database at all). "
                             "Nothing was changed.")
    try:
        conn = _readonly(path)
        try:
            result = _quick_check(conn)
            facts = _read_facts(conn) if result == "ok" else None
        finally:
            conn.close()
    except (sqlite3.Error, UnicodeDecodeError) as exc:
        raise RestoreRefused(f"{where} is damaged ({exc}); it cannot be restored. Nothing was changed. "
                             "Choose another backup.") from exc
    if facts is None:
        raise RestoreRefused(f"{where} is damaged (integrity check: {result}); it cannot be restored. "
                             "Nothing was changed. Choose another backup.")
    tables, rev = facts["tables"], facts["revision"]
    if not tables:
        raise RestoreRefused(f"{where} is an empty database; there is nothing in it to restore. Nothing was changed.")
    if rev is not None and rev not in known_revisions():
        if "clients" in tables and "audit_log" in tables:
            raise RestoreRefused(f"{where} was written by a newer version of mspbill (schema {rev}). Install that "
                                 "version to restore it; nothing was changed.")
        raise RestoreRefused(f"{where} is not an mspbill database (it belongs to another program). "
                             "Nothing was changed.")
    if rev is None or not CORE_TABLES <= tables:
        raise RestoreRefused(f"{where} is not an mspbill database (it holds other tables: "
                             f"{', '.join(sorted(tables)[:5])}). Nothing was changed.")
    return facts_of(path)


# --- restore ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CurrentState:
    facts: DatabaseFacts | None       # None: there is no database yet
    problem: str = ""                 # the live database is damaged / not ours: it is moved aside, kept
    running_batch: str = ""           # a month-end run under way: the restore is refused


@dataclass(frozen=True)
class RestorePlan:
    """What a restore would do, for the confirmation."""

    source: DatabaseFacts
    current: CurrentState
    database: str
    migrates: bool
    # The current database's audit entries newer than the backup's data: what the restore undoes.
    undone_count: int = 0
    undone: tuple[str, ...] = ()     # the latest UNDONE_KEPT, "2026-11-21 14:02 jane: Voided INV-000286 …"

    def confirmation(self, *, terminal: bool = True) -> list[str]:
        """The paragraphs of the confirmation (the window's and the terminal's say the same)."""
        src, cur = self.source, self.current
        when = src.taken_at.strftime("%Y-%m-%d %H:%M") if src.taken_at else "an unknown date"
        lines = [f"Restore the backup {Path(src.path).name} taken {when} ({src.reason_text}): {src.counts_text}."]
        if cur.facts is None:
            lines.append(f"There is no database at {self.database} yet; the backup becomes it.")
        elif cur.problem:
            lines.append(f"The current database {self.database} cannot be read ({cur.problem}); it is moved aside "
                         "(kept beside it) and replaced.")
        else:
            change = cur.facts.last_change
            last = change.astimezone().strftime("%Y-%m-%d %H:%M") if change else "unknown"
            lines.append(f"It replaces the current database ({cur.facts.counts_text}; last change {last}). "
                         "The current database is backed up first (\"before a restore\"), so this can be undone.")
            if self.undone_count:
                shown = "; ".join(self.undone[:UNDONE_SHOWN])
                hidden = self.undone_count - min(len(self.undone), UNDONE_SHOWN)
                more = f"; and {hidden} more" if hidden > 0 else ""
                lines.append(f"{self.undone_count} change(s) recorded since the backup will be undone "
                             f"(they stay listed in the audit trail's restore entry): {shown}{more}.")
        sync = ("Afterwards run `mspbill batch sync`" if terminal else
                "Afterwards mspbill checks the processor in the background")
        lines.append("Charges, payments and e-mails recorded after the backup was taken will no longer be in "
                     "mspbill (the money moved and the e-mails went out all the same). "
                     f"{sync}; check the processor's dashboard for payments taken since. Before charging again "
                     "(the next month-end run, or Charge now on an invoice) mspbill looks at the processor for "
                     "charges made since the backup and records them, so that no invoice is charged twice.")
        if self.migrates:
            lines.append("The backup was made by an earlier version of mspbill; it is updated to this version's "
                         "database as it is restored.")
        return lines


def current_state(url: str) -> CurrentState:
    """The live database as a restore would find it (works when it is damaged)."""
    from mspbill.db.schema import (
        DatabaseCorruptError,
        DatabaseLockedError,
        check_sqlite_file,
        peek_sqlite_revision,
    )
    from mspbill.db.schema import DatabaseOpenError as OpenError

    path = sqlite_file(url)
    if not path.exists() or path.stat().st_size == 0:
        return CurrentState(None)
    try:
        check_sqlite_file(path)
        rev, has_tables = peek_sqlite_revision(path)
        if rev is None and has_tables:
            raise OpenError("not an mspbill database")
        if rev is not None and rev not in known_revisions():
            raise OpenError(f"written by a newer mspbill, schema {rev}")
    except OpenError as exc:
        if isinstance(exc, DatabaseLockedError) or "locked" in str(exc).lower():
            raise BackupError(f"The database {path} is locked by another program; close it and try again. "
                              "Nothing was changed.") from exc
        problem = "it is damaged" if isinstance(exc, DatabaseCorruptError) else str(exc)
        return CurrentState(facts_of(path), problem=problem)
    return CurrentState(facts_of(path), running_batch=_running_batch(url))


def _running_batch(url: str) -> str:
    """The sentence of a month-end run under way on the live database ("" when none)."""
    from mspbill.batch.run import busy_text, live_run
    from mspbill.db.engine import Database

    db = Database(url)
    try:
        with db.session() as s:
            run = live_run(s)
            return busy_text(run) if run is not None else ""
    except SQLAlchemyError as exc:
        log.warning("could not look for a month-end run before a restore: %s", exc)
        return ""
    finally:
        db.dispose()


def plan_restore(url: str, source: Path) -> RestorePlan:
    """Check the file and the live database; RestoreRefused / BackupError say why not (nothing changed)."""
    live = sqlite_file(url)
    try:
        if source.resolve() == live.resolve():
            raise RestoreRefused("That file is the current database itself; choose a backup.")
    except OSError:
        pass
    facts = check_backup_file(source)
    current = current_state(url)
    if current.running_batch:
        raise BackupError(current.running_batch.replace(
            "Wait for it to finish", "A restore now would lose what it records; wait for it to finish", 1)
            + " Nothing was changed.")
    count, latest = _changes_since(live, facts) if current.facts is not None and not current.problem else (0, [])
    return RestorePlan(facts, current, str(live), migrates=facts.revision != head_revision(),
                       undone_count=count, undone=tuple(latest))


UNDONE_SHOWN = 6       # in the confirmation
UNDONE_KEPT = 500      # in the restore's audit entry


def _changes_since(live: Path, backup: DatabaseFacts) -> tuple[int, list[str]]:
    """(how many, the latest first) audit entries of the live database newer than the backup's data."""
    since = backup.last_change
    if since is None and backup.taken_at is not None:
        since = backup.taken_at.astimezone(dt.UTC)
    if since is None:
        return 0, []
    try:
        conn = _readonly(live)
        try:
            # `at` is stored as naive UTC text; compare like with like.
            bound = since.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
            count = int(conn.execute("SELECT count(*) FROM audit_log WHERE at > ?", (bound,)).fetchone()[0])
            rows = conn.execute("SELECT at, actor, summary FROM audit_log WHERE at > ? ORDER BY at DESC, id DESC "
                                "LIMIT ?", (bound, UNDONE_KEPT)).fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        log.warning("could not list the changes a restore would undo: %s", exc)
        return 0, []
    out = []
    for at, actor, summary in rows:
        when = _parse_stamp(at)
        stamp = when.astimezone().strftime("%Y-%m-%d %H:%M") if when else str(at)[:16]
        out.append(f"{stamp} {actor}: {summary}")
    return count, out


@dataclass(frozen=True)
class RestoreReport:
    source: str
    database: str
    backup_taken_at: dt.datetime | None
    before_restore: str | None      # the backup of the database replaced (None: there was none to keep)
    moved_aside: str | None         # a damaged database kept under this name
    migrated_from: str | None
    clients: int | None
    invoices: int | None
    payments: int | None
    released_runs: list[int] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [(f"Restored {self.source} into {self.database}: {self.clients} client(s), "
                f"{self.invoices} invoice(s), {self.payments} payment(s).")]
        if self.migrated_from:
            out.append(f"The backup was updated from schema {self.migrated_from} to this version's.")
        if self.before_restore:
            out.append(f"The database it replaced was backed up to {self.before_restore}; restore that file to undo.")
        if self.moved_aside:
            out.append(f"The damaged database was kept as {self.moved_aside}.")
        if self.released_runs:
            out.append(f"The backup was taken during month-end run {', '.join(map(str, self.released_runs))}; "
                       "run the month again to finish it (nothing is charged twice).")
        out.append("The payment processor is asked about charges made since the backup at the next payments sync "
                   "(the app does it within minutes; or run `mspbill payments sync`); until then reminders and late "
                   "fees wait, and Charge now and the month-end run look first.")
        return out


def restore(paths: Any, url: str, source: Path, *, now: dt.datetime | None = None,
            plan: RestorePlan | None = None) -> RestoreReport:
    """Replace the live database with the backup `source` (see the module docstring)."""
    from mspbill.db.schema import check_sqlite_file

    plan = plan_restore(url, source) if plan is None else plan
    live = Path(plan.database)
    now = now or dt.datetime.now()
    stamp = now.strftime("%Y%m%d-%H%M%S-%f")
    staging = live.parent / f".mspbill-restore-{stamp}.sqlite3"
    before: Path | None = None
    moved: Path | None = None
    try:
        # 1. The copy, prepared beside the live file: nothing about the live database changes yet.
        try:
            write_copy(source, staging)
            # The file may have changed since it was checked: the copy is what is restored, so check that.
            check_backup_file(staging)
        except RestoreRefused as exc:
            raise RestoreRefused(str(exc).replace(str(staging), str(source))) from exc
        healthy = plan.current.facts is not None and not plan.current.problem
        if healthy:
            _match_page_size(staging, live)
        migrated_from, released = _prepare(staging, plan, now)
        # 2. The current database, kept so that the restore can be undone.
        if healthy:
            before = take_backup(live, paths.backup_dir, BEFORE_RESTORE, now=now)
        # 3. In place.
        if healthy:
            _copy_into(staging, live)
        else:
            moved = _move_aside(live, stamp) if plan.current.facts is not None else None
            for side in (Path(f"{live}-wal"), Path(f"{live}-shm"), Path(f"{live}-journal")):
                side.unlink(missing_ok=True)
            os.replace(staging, live)
        check_sqlite_file(live)
    except (OSError, sqlite3.Error) as exc:
        raise BackupError(f"The restore could not be completed ({_why(exc)}); the current database was not "
                          "replaced." + (f" It was backed up to {before}." if before else "")) from exc
    finally:
        _remove(staging)
    facts = facts_of(live)
    report = RestoreReport(str(source), str(live), plan.source.taken_at, str(before) if before else None,
                           str(moved) if moved else None, migrated_from, facts.clients, facts.invoices,
                           facts.payments, released)
    log.info("restored %s into %s (before-restore backup %s)", source, live, before)
    return report


def _match_page_size(staging: Path, live: Path) -> None:
    """The backup API cannot change a WAL database's page size: give the copy the live file's."""
    conn = _readonly(live)
    try:
        live_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
    finally:
        conn.close()
    conn = sqlite3.connect(str(staging), isolation_level=None)
    try:
        if int(conn.execute("PRAGMA page_size").fetchone()[0]) != live_size:
            conn.execute(f"PRAGMA page_size = {live_size}")
            conn.execute("VACUUM")
    finally:
        conn.close()


def _prepare(staging: Path, plan: RestorePlan, now: dt.datetime) -> tuple[str | None, list[int]]:
    """Migrate the copy, release a month-end run it caught mid-way, record the restore in it."""
    from mspbill import audit
    from mspbill.db.engine import Database
    from mspbill.db.models import BatchRun, BatchRunStatus
    from mspbill.db.schema import upgrade

    db = Database(f"sqlite:///{staging}")
    try:
        rev = plan.source.revision
        upgrade(db, None)
        with db.write_session() as s, s.begin():
            released: list[int] = []
            for run in s.scalars(select(BatchRun).where(BatchRun.status == BatchRunStatus.RUNNING)):
                # No process runs it on this database: the next run takes it over and resumes it
                # at once (pid 0 is never alive; the heartbeat is as old as the run).
                run.pid, run.heartbeat_at = 0, run.started_at
                released.append(run.id)
            src = plan.source
            previous = plan.current.facts
            audit.record(s, RESTORED_ACTION, "database", None,
                         f"Database restored from {Path(src.path).name}"
                         + (f" (taken {src.taken_at:%Y-%m-%d %H:%M})" if src.taken_at else ""),
                         {"file": src.path, "backup_taken_at": src.taken_at.isoformat() if src.taken_at else None,
                          "data_until": src.last_change.isoformat() if src.last_change else None,
                          "schema_before": rev, "restored_at": now.isoformat(),
                          "replaced": None if previous is None else {
                              "clients": previous.clients, "invoices": previous.invoices,
                              "payments": previous.payments,
                              "last_change": previous.last_change.isoformat() if previous.last_change else None,
                              "problem": plan.current.problem},
                          "undone_count": plan.undone_count, "undone": list(plan.undone),
                          "interrupted_runs": released})
    except SQLAlchemyError as exc:
        raise BackupError(f"The backup could not be updated to this version's database ({exc}); nothing was "
                          "changed.") from exc
    finally:
        db.dispose()
    conn = sqlite3.connect(str(staging), isolation_level=None)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode = DELETE")
        result = _quick_check(conn)
    finally:
        conn.close()
    if result != "ok":
        raise BackupError(f"The prepared copy failed its check ({result}); nothing was changed.")
    return (rev if rev != head_revision() else None), released


def _copy_into(staging: Path, live: Path) -> None:
    """The backup API from the prepared copy into the live file: one write transaction under SQLite's
    locks, so every connection sees the old database or the new one."""
    source = _readonly(staging)
    try:
        target = sqlite3.connect(str(live), timeout=30, isolation_level=None)
        try:
            target.execute("PRAGMA busy_timeout = 30000")
            deadline = time.monotonic() + 60
            while True:
                try:
                    source.backup(target)
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc).lower() and "busy" not in str(exc).lower():
                        raise
                    if time.monotonic() > deadline:
                        raise BackupError("The database stayed busy (another program is writing); the restore "
                                          "did not happen. Try again in a moment.") from exc
                    time.sleep(0.2)
            try:
                target.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.OperationalError:
                pass  # a reader elsewhere: the checkpoint happens later
            result = _quick_check(target)
        finally:
            target.close()
    finally:
        source.close()
    if result != "ok":
        raise BackupError(f"The restored database failed its check ({result}). Restore the before-restore backup.")


def _move_aside(live: Path, stamp: str) -> Path:
    aside = live.with_name(f"{live.name}.damaged-{stamp}")
    os.replace(live, aside)
    for suffix in ("-wal", "-shm"):
        side = Path(f"{live}{suffix}")
        if side.exists():
            os.replace(side, Path(f"{aside}{suffix}"))
    return aside


# --- after a restore: charges the processor made that the restored database does not know ---------


@dataclass(frozen=True)
class RestoreMark:
    entry_id: int
    since: dt.datetime          # UTC: the restored data's last change (or the backup's time)
    file: str


def pending_restore(session: Any, *, looked_counts: bool = False) -> RestoreMark | None:
    """The latest restore, unless the processor has been looked at since (RECONCILED_ACTION; with
    `looked_counts`, also a payments sync's look, LOOKED_ACTION)."""
    from mspbill.db.models import AuditEntry

    ends = [RECONCILED_ACTION, LOOKED_ACTION] if looked_counts else [RECONCILED_ACTION]
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action.in_([RESTORED_ACTION, *ends]))
                           .order_by(AuditEntry.id.desc()).limit(1))
    if entry is None or entry.action != RESTORED_ACTION:
        return None
    details = entry.details or {}
    candidates = [_parse_stamp(details.get("data_until"))]
    taken = details.get("backup_taken_at")
    if taken:
        local = dt.datetime.fromisoformat(taken)
        candidates.append(local.astimezone(dt.UTC) if local.tzinfo is None else local)
    known = [c for c in candidates if c is not None]
    since = min(known) if known else entry.at
    return RestoreMark(entry.id, since, str(details.get("file", "")))


def reconcile_after_restore(db: Any, gateway: Any, *, finish: bool = True, now: dt.datetime | None = None,
                            client_ids: Sequence[int] | None = None, from_sync: bool = False) -> list[str]:
    """After a restore: bring in the charges the processor made since the backup's data.

    Each of the office's processor customers is asked once for its PaymentIntents since then;
    one carrying an attempt key the database does not know, for an invoice that is in it (same id,
    number and client), becomes that invoice's attempt and is recorded as the processor says (a
    payment, a debit processing, a decline) -- so the month-end run does not charge it again.  One
    for an invoice the database does not have is reported.  With `finish` and no processor error,
    the restore is marked as looked after (one pass, by the month-end run after its invoicing).
    `client_ids` limits the look to those clients' customers (a charge by hand asks about its own
    client first, without `finish`).  `from_sync` (a payments sync): one look per restore; when
    charges name invoices the database lacks, the month-end run (which may re-create them) finishes."""
    from mspbill import audit
    from mspbill.db.models import ChargeAttempt, Invoice, ProcessorCustomer
    from mspbill.money import format_amount
    from mspbill.payments.charges import CLOCK_SKEW
    from mspbill.payments.gateway import ProcessorError
    from mspbill.payments.processor import to_db_mode

    with db.session() as s:
        mark = pending_restore(s, looked_counts=from_sync)
        if mark is None:
            return []
        query = select(ProcessorCustomer.customer_id, ProcessorCustomer.client_id).where(
            ProcessorCustomer.mode == to_db_mode(gateway.mode))
        if client_ids is not None:
            query = query.where(ProcessorCustomer.client_id.in_(list(client_ids)))
        customers = list(s.execute(query))
        known_keys = set(s.scalars(select(ChargeAttempt.idempotency_key)))
    problems: list[str] = []
    adopted = 0
    errors = False
    missing = 0
    for customer_id, _client_id in customers:
        try:
            found = gateway.find_charges(customer_id=customer_id, created_since=mark.since - CLOCK_SKEW, metadata={})
        except ProcessorError as exc:
            problems.append(f"After the restore, the processor could not be asked about {customer_id}'s charges: "
                            f"{exc.message}")
            errors = True
            continue
        for result in sorted(found, key=lambda r: r.created or dt.datetime.min.replace(tzinfo=dt.UTC)):
            key = result.metadata.get("mspbill_attempt_key", "")
            if not key or key in known_keys:
                continue
            amount = format_amount(result.amount_cents, result.currency.upper() or "USD")
            with db.session() as s:
                inv = _invoice_for(s, Invoice, result.metadata)
                if inv is None:
                    problems.append(f"The processor has a charge of {amount} ({result.intent_id}, "
                                    f"{result.status.value}) for invoice {result.metadata.get('mspbill_invoice_number')}"
                                    " made after the restored backup; that invoice is not in mspbill now. Check it in "
                                    "the processor's dashboard (refund it, or record it by hand).")
                    missing += 1
                    known_keys.add(key)
                    continue
            try:
                _adopt(db, gateway, inv.id, inv.client_id, customer_id, key, result)
                adopted += 1
            except Exception as exc:  # a constraint (another attempt in flight): say so, never guess
                log.exception("could not adopt %s after a restore", result.intent_id)
                problems.append(f"The charge {result.intent_id} of {amount} on {inv.number} (made after the restored "
                                f"backup) could not be recorded ({exc}); check it in the processor's dashboard.")
                errors = True
            known_keys.add(key)
    if from_sync and not errors and missing:
        with db.write_session() as s, s.begin():
            audit.record(s, LOOKED_ACTION, "database", None,
                         f"Charges at the processor since the restored backup looked up: {adopted} brought in; "
                         f"{missing} for invoices not in mspbill, left for the next month-end run",
                         {"restore_entry": mark.entry_id, "adopted": adopted, "problems": problems[:50]})
    elif finish and not errors:
        with db.write_session() as s, s.begin():
            audit.record(s, RECONCILED_ACTION, "database", None,
                         f"Charges at the processor since the restored backup looked up: {adopted} brought in, "
                         f"{len(problems)} to check",
                         {"restore_entry": mark.entry_id, "adopted": adopted, "problems": problems[:50]})
    return problems


def _invoice_for(s: Any, invoice_model: Any, metadata: Any) -> Any:
    try:
        invoice_id = int(metadata.get("mspbill_invoice_id", ""))
        client_id = int(metadata.get("mspbill_client_id", ""))
    except ValueError:
        return None
    inv = s.get(invoice_model, invoice_id)
    if inv is None or inv.client_id != client_id or inv.number != metadata.get("mspbill_invoice_number"):
        return None
    s.expunge(inv)
    return inv


def _adopt(db: Any, gateway: Any, invoice_id: int, client_id: int, customer_id: str, key: str, result: Any) -> None:
    from mspbill import audit
    from mspbill.db.models import (
        ChargeAttempt,
        ChargeAttemptStatus,
        SavedPaymentMethod,
        utcnow,
    )
    from mspbill.payments.charges import record_result
    from mspbill.payments.methods import method_label
    from mspbill.payments.processor import to_db_mode

    now = utcnow()
    with db.write_session() as s, s.begin():
        method = s.scalar(select(SavedPaymentMethod).where(SavedPaymentMethod.method_id == (result.method_id or ""),
                                                           SavedPaymentMethod.mode == to_db_mode(gateway.mode)))
        label = method_label(method) if method is not None else "the client's method"
        attempt = ChargeAttempt(
            invoice_id=invoice_id, client_id=client_id, mode=to_db_mode(gateway.mode), idempotency_key=key,
            amount_cents=result.amount_cents, currency=(result.currency or "").upper()[:3] or "USD",
            customer_id=customer_id, method_id=result.method_id or "", method_kind=method.kind if method else "card",
            method_label=label[:100], status=ChargeAttemptStatus.UNKNOWN, decline_code="",
            message="Made before the database was restored; found at the processor.", origin="restore",
            batch_run_id=None, actor=audit.current_actor(), created_at=result.created or now, updated_at=now)
        s.add(attempt)
        s.flush()
        attempt_id = attempt.id
        audit.record(s, "invoice.charge_found", "invoice", invoice_id,
                     f"A charge made before the database was restored was found at the processor ({result.intent_id})",
                     {"attempt_id": attempt_id, "intent_id": result.intent_id, "idempotency_key": key})
    record_result(db, attempt_id, result)


