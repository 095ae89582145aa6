"""Engine and session factory.

SQLite gets WAL, foreign keys and a busy timeout on every connection, and
SQLAlchemy (not pysqlite) decides when a transaction begins, so that
`with session.begin():` really is one transaction (SQLAlchemy's documented
recipe for pysqlite).

PostgreSQL (a shared office database) gets the same rule for writers that
SQLite's BEGIN IMMEDIATE gives: a write transaction first takes one
office-wide lock (a transaction-scoped advisory lock), so writers from every
workstation take turns and each sees what the one before it committed. The
services were written for that rule (read, then write from what was read);
under PostgreSQL's READ COMMITTED without it, two workstations recording a
payment on one invoice at the same moment would lose one of them. Readers
never wait, and each reading session sees one consistent moment (REPEATABLE
READ), as a SQLite read transaction does. A writer that waits longer than the lock timeout gets a
"database is busy" error instead of hanging.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 5000
WRITE_OPTION = "mspbill_write"
# PostgreSQL: the key of the office-wide writers' lock (any fixed number; "mspb") and how long a writer
# waits for it. Longer than SQLite's: another workstation's write goes over the network.
PG_WRITE_LOCK_KEY = 0x6D737062
PG_LOCK_TIMEOUT_MS = 20_000
PG_CONNECT_TIMEOUT_S = 10
PG_IDLE_WRITE_TIMEOUT_MS = 120_000
# TCP keepalives: a server that vanished (network gone, power cut) is noticed in about a minute.
PG_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}


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


def _on_pg_begin(conn: Any) -> None:
    # See the module docstring: writers take turns, office-wide.
    if conn.get_execution_options().get(WRITE_OPTION):
        # A charge's attempt is committed before the processor is called; a server set to
        # synchronous_commit=off loses commits it has acknowledged when it crashes, and the attempt
        # lost, the charge made would be made again under a new key.  Every write waits for its WAL.
        # A workstation that falls asleep or off the network inside a write would hold everyone's lock
        # until the server noticed the dead socket (hours): the server ends a write left idle this long.
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = {PG_LOCK_TIMEOUT_MS}; SET LOCAL synchronous_commit = on; "
                             f"SET LOCAL idle_in_transaction_session_timeout = {PG_IDLE_WRITE_TIMEOUT_MS}")
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_WRITE_LOCK_KEY})")


def create_db_engine(url: str, **kwargs: Any) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        connect_args = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        engine = create_engine(url, connect_args=connect_args, **kwargs)
        event.listen(engine, "connect", _on_sqlite_connect)
        event.listen(engine, "begin", _on_sqlite_begin)
        return engine
    if parsed.get_backend_name() == "postgresql":
        # A server that does not answer is reported after 10 s, not the driver's default of forever;
        # the application name shows in pg_stat_activity, for whoever looks after the server.
        pg_args: dict[str, Any] = {"connect_timeout": PG_CONNECT_TIMEOUT_S, "application_name": "mspbill",
                                   **PG_KEEPALIVES}
        engine = create_engine(url, pool_pre_ping=True, connect_args=pg_args, **kwargs)
        event.listen(engine, "begin", _on_pg_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


class Database:
    """One engine and its session factory; sessions are per thread (rule 3)."""

    def __init__(self, url: str, engine: Engine | None = None):
        self.url = url
        self.engine = engine or create_db_engine(url)
        # Readers see one moment, as a SQLite read transaction does: on PostgreSQL a report's several
        # queries must not mix the state before and after another workstation's payment. (A read-only
        # REPEATABLE READ transaction never fails to serialize; writers use write_session.)
        readers = (self.engine.execution_options(isolation_level="REPEATABLE READ")
                   if self.engine.dialect.name == "postgresql" else self.engine)
        self.Session = sessionmaker(readers, expire_on_commit=False)
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
        url = make_url(self.url)._replace(password=None)  # .set(password=None) keeps it
        if url.get_backend_name() == "postgresql":
            url = url.set(drivername="postgresql")  # as a person types it, whatever the driver
        return url.render_as_string(hide_password=False)
