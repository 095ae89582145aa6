"""Opening the database safely: check the file, back it up, migrate it.

A database file that is corrupt, locked by another program, not ours, or
written by a newer mspbill is refused with a sentence a person can act on,
and is never written to.  Every migration of an existing database is preceded
by a backup.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from mspbill.db.engine import PG_LOCK_TIMEOUT_MS, PG_WRITE_LOCK_KEY, Database

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_HEADER = b"SQLite format 3\x00"
BACKUPS_KEPT = 30


class DatabaseOpenError(RuntimeError):
    """The database cannot be used; the message says why and what to do."""


class DatabaseCorruptError(DatabaseOpenError):
    pass


class DatabaseLockedError(DatabaseOpenError):
    pass


class DatabaseTooNewError(DatabaseOpenError):
    pass


class NotAnMspbillDatabaseError(DatabaseOpenError):
    pass


class DatabaseServerError(DatabaseOpenError):
    """The database server cannot be reached, refuses the credentials, or lacks the database."""


class DatabaseMovedError(DatabaseOpenError):
    """The office was moved to another database (`mspbill db copy`): this one is the copy left behind.

    `moved_to` is where it went, as shown (postgresql://user@host:port/db or a file's path; no password),
    `moved_at` when (UTC).  The message says both and how to work there, or to reclaim this one
    (mspbill.db.moves)."""

    def __init__(self, message: str, moved_to: str, moved_at: dt.datetime, url: str = ""):
        super().__init__(message)
        self.moved_to = moved_to
        self.moved_at = moved_at
        self.url = url  # this database (may carry a password: never show it; mspbill.db.server.shown)


def check_server(db: Database) -> None:
    """Connect once to a database server, so that the first problem is said plainly."""
    from sqlalchemy import text

    from mspbill.db.server import explain

    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        sentence = explain(exc, db.url)
        if sentence is None:
            raise DatabaseServerError(f"mspbill cannot open the database {db.describe()}: "
                                      f"{getattr(exc, 'orig', None) or exc}") from exc
        raise DatabaseServerError(sentence) from exc


def alembic_config(db: Database) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # '%' must be doubled for ConfigParser; the URL may carry a password.
    cfg.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    head = script.get_current_head()
    assert head is not None
    return head


def known_revisions() -> set[str]:
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    return {rev.revision for rev in script.walk_revisions()}


def check_sqlite_file(path: Path) -> None:
    """Refuse a file that is not a healthy SQLite database, without writing to it."""
    if not path.exists() or path.stat().st_size == 0:
        return
    try:
        with path.open("rb") as fh:
            header = fh.read(len(SQLITE_HEADER))
    except PermissionError as exc:
        raise DatabaseLockedError(
            f"mspbill cannot read its database {path}: {exc.strerror}. "
            "Close any program that has it open, or check the file's permissions.") from exc
    if header != SQLITE_HEADER:
        raise DatabaseCorruptError(
            f"The file {path} is not an mspbill database (it is not SQLite at all, or it is damaged). "
            "mspbill has not changed it. Restore a backup from the 'backups' folder beside it, "
            "or move the file away to start afresh.")
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=5)
        # quick_check may quote damaged bytes that are not UTF-8.
        conn.text_factory = lambda raw: raw.decode("utf-8", "replace")
        try:
            result = conn.execute("PRAGMA quick_check").fetchone()
        finally:
            conn.close()
    except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
        # UnicodeDecodeError: SQLite's own error message quoted garbage from the file.
        if "locked" in str(exc).lower():
            raise _locked(path) from exc
        raise DatabaseCorruptError(
            f"The database {path} is damaged ({exc}). mspbill has not changed it. "
            "Restore a backup from the 'backups' folder beside it.") from exc
    if not result or result[0] != "ok":
        raise DatabaseCorruptError(
            f"The database {path} is damaged (integrity check: {result[0] if result else 'no answer'}). "
            "mspbill has not changed it. Restore a backup from the 'backups' folder beside it.")


def _locked(path: Path) -> DatabaseLockedError:
    return DatabaseLockedError(
        f"The database {path} is locked by another program. Close the other program "
        "(or another copy of mspbill, or a backup tool holding the file) and try again.")


def check_sqlite_writable(path: Path, timeout_s: float = 3.0) -> None:
    """Take and release the write lock once, so a lock held elsewhere is found now."""
    if not path.exists():
        return
    try:
        conn = sqlite3.connect(str(path), timeout=timeout_s, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
        finally:
            conn.close()
    except sqlite3.OperationalError as exc:
        msg = str(exc).lower()
        if "locked" in msg or "busy" in msg:
            raise _locked(path) from exc
        if "readonly" in msg or "read-only" in msg:
            raise DatabaseLockedError(
                f"The database {path} is read-only. Check the file's permissions.") from exc
        raise DatabaseOpenError(f"mspbill cannot open {path}: {exc}") from exc


def backup_sqlite(src: Path, backup_dir: Path, reason: str) -> Path:
    """A consistent, checked copy made with SQLite's online backup API (safe in WAL mode), named by
    mspbill in `backup_dir`; the automatic ones beyond the office's keep-N setting are pruned
    (mspbill.backups).  A failure raises mspbill.backups.BackupError (an OSError's sentence)."""
    from mspbill.backups import take_backup

    return take_backup(src, backup_dir, reason)


def _prune_backups(backup_dir: Path, keep: int = BACKUPS_KEPT) -> None:
    from mspbill.backups import prune

    prune(backup_dir, keep)


def current_revision(db: Database) -> tuple[str | None, bool]:
    """(revision, has_other_tables) of the database as it is now."""
    try:
        with db.engine.connect() as conn:
            rev = MigrationContext.configure(conn).get_current_revision()
            tables = set(inspect(conn).get_table_names())
    except OperationalError as exc:
        msg = str(exc.orig).lower() if exc.orig else str(exc).lower()
        if "locked" in msg:
            raise DatabaseLockedError(
                f"The database {db.describe()} is locked by another program. Close it and try again.") from exc
        raise DatabaseOpenError(f"mspbill cannot read the database {db.describe()}: {exc.orig}") from exc
    return rev, bool(tables - {"alembic_version"})


def peek_sqlite_revision(path: Path) -> tuple[str | None, bool]:
    """(revision, has_other_tables) read through a read-only connection.

    The engine's connections switch the file to WAL, which rewrites its
    header; a file we are about to refuse must be read without that.
    """
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            tables = {row[0] for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
            rev = None
            if "alembic_version" in tables:
                row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
                rev = row[0] if row else None
        finally:
            conn.close()
    except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
        if "locked" in str(exc).lower():
            raise _locked(path) from exc
        raise DatabaseOpenError(f"mspbill cannot read the database {path}: {exc}") from exc
    return rev, bool(tables - {"alembic_version"})


def refuse_unusable(rev: str | None, has_tables: bool, where: str) -> None:
    """Raise if the database is someone else's or from a newer mspbill."""
    if rev is None and has_tables:
        raise NotAnMspbillDatabaseError(
            f"{where} holds tables but is not an mspbill database. mspbill has not changed it. "
            "Choose another data folder (--data-dir) or database (--db).")
    if rev is not None and rev not in known_revisions():
        raise DatabaseTooNewError(
            f"This database was written by a newer version of mspbill (schema {rev}). "
            "Install the newer version to open it; this version has not changed it.")


def upgrade(db: Database, backup_dir: Path | None) -> str | None:
    """Bring the database to the head revision; returns the backup made, if any."""
    rev, has_tables = current_revision(db)
    head = head_revision()
    refuse_unusable(rev, has_tables, db.describe())
    if rev == head:
        return None
    backup: Path | None = None
    if rev is not None and db.sqlite_path is not None and backup_dir is not None:
        backup = backup_sqlite(db.sqlite_path, backup_dir, "before-migration")
    cfg = alembic_config(db)
    try:
        with db.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Two workstations opening a shared database after an update: one migrates, the other
                # waits for it (the writers' lock) and then finds nothing left to do.
                conn.exec_driver_sql(f"SET LOCAL lock_timeout = {PG_LOCK_TIMEOUT_MS}")
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_WRITE_LOCK_KEY})")
                if MigrationContext.configure(conn).get_current_revision() == head:
                    return None
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except SQLAlchemyError as exc:
        from mspbill.db.server import explain

        hint = f" A backup taken just before is at {backup}." if backup else ""
        sentence = explain(exc, db.url)
        if sentence is not None:  # a server: busy (another workstation), gone, or no right to change tables
            raise DatabaseServerError(f"The database was not brought up to date: {sentence}") from exc
        raise DatabaseOpenError(f"Updating the database failed and was rolled back: {exc}.{hint}") from exc
    log.info("database migrated from %s to %s", rev, head)
    return str(backup) if backup else None


def open_database(url: str, backup_dir: Path | None, *, migrate: bool = True,
                  moved_ok: bool = False) -> Database:
    """Check, back up and migrate; the one way the app and CLI open their data.

    A database the office was moved away from is refused with DatabaseMovedError (after migrating: the
    marker's table must exist) unless `moved_ok` (mspbill.db.moves.reclaim)."""
    db = Database(url)
    path = db.sqlite_path
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        check_sqlite_file(path)
        check_sqlite_writable(path)
        if path.exists() and path.stat().st_size > 0:
            # Before the engine's first connection, which would switch the file to WAL.
            refuse_unusable(*peek_sqlite_revision(path), str(path))
    try:
        if path is None and not db.is_sqlite:
            check_server(db)
        if migrate:
            upgrade(db, backup_dir)
        else:
            rev, _ = current_revision(db)
            if rev != head_revision():
                raise DatabaseOpenError(
                    f"The database is at schema {rev or 'none'}, not {head_revision()}; run `mspbill db upgrade`.")
        if not moved_ok:
            from mspbill.db.moves import refuse_if_moved

            refuse_if_moved(db)
    except BaseException:
        db.dispose()
        raise
    return db
