"""Engine and session factory.

SQLite gets WAL, foreign keys and a busy timeout on every connection, and
SQLAlchemy (not pysqlite) decides when a transaction begins, so that
`with session.begin():` really is one transaction (SQLAlchemy's documented
recipe for pysqlite).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 5000
WRITE_OPTION = "mspbill_write"


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Hand transaction control to SQLAlchemy (see module docstring).
    dbapi_connection.isolation_level = None
    cur = dbapi_connection.cursor()
    cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys = ON")
    cur.execute("PRAGMA journal_mode = WAL")
    cur.execute("PRAGMA synchronous = NORMAL")
    cur.close()


def _on_sqlite_begin(conn: Any) -> None:
    # A write transaction takes SQLite's write lock up front (BEGIN IMMEDIATE):
    # a deferred one that reads, then writes, fails at once with "database is
    # locked" if another writer committed meanwhile, instead of waiting its turn.
    write = conn.get_execution_options().get(WRITE_OPTION)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def create_db_engine(url: str, **kwargs: Any) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        connect_args = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        engine = create_engine(url, connect_args=connect_args, **kwargs)
        event.listen(engine, "connect", _on_sqlite_connect)
        event.listen(engine, "begin", _on_sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


class Database:
    """One engine and its session factory; sessions are per thread (rule 3)."""

    def __init__(self, url: str, engine: Engine | None = None):
        self.url = url
        self.engine = engine or create_db_engine(url)
        self.Session = sessionmaker(self.engine, expire_on_commit=False)
        self.WriteSession = sessionmaker(self.engine.execution_options(**{WRITE_OPTION: True}),
                                         expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @property
    def sqlite_path(self) -> Path | None:
        if not self.is_sqlite:
            return None
        db = make_url(self.url).database
        return Path(db) if db and db != ":memory:" else None

    def session(self) -> Session:
        return self.Session()

    def write_session(self) -> Session:
        """A session for a transaction that writes (on SQLite: BEGIN IMMEDIATE)."""
        return self.WriteSession()

    def dispose(self) -> None:
        self.engine.dispose()

    def describe(self) -> str:
        """Where the data is, for the status bar and error messages (no password)."""
        if self.sqlite_path:
            return str(self.sqlite_path)
        return make_url(self.url).render_as_string(hide_password=True)
