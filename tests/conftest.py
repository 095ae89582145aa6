"""Shared fixtures for the core tests: real SQLite files, real keyring daemons.

Nothing here imports Qt; the Qt tests live in tests/gui/ with their own conftest.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mspbill.db.engine import Database
from mspbill.db.schema import open_database
from tests.pg_server import PgServer, start_server, why_no_server

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "t.sqlite3"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Modules marked both_databases run every test that uses `db` on SQLite and on PostgreSQL.
    if "db" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_databases") \
            and not os.environ.get("MSPBILL_TEST_DB"):
        metafunc.parametrize("db_backend", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def db_backend(request: pytest.FixtureRequest) -> str:
    """Which database `db` is: the test's parameter, else MSPBILL_TEST_DB, else SQLite."""
    return str(getattr(request, "param", None) or os.environ.get("MSPBILL_TEST_DB") or "sqlite")


@pytest.fixture
def db(request: pytest.FixtureRequest, db_backend: str, tmp_path: Path, db_path: Path) -> Iterator[Database]:
    """A real SQLite file, checked and migrated exactly as the app opens it.

    On PostgreSQL (MSPBILL_TEST_DB=postgresql, or a module marked both_databases) a fresh database of
    the test server instead.
    """
    if db_backend == "postgresql":
        marker = request.node.get_closest_marker("sqlite_only")
        if marker is not None:
            pytest.skip(f"SQLite only: {marker.args[0] if marker.args else 'tests the SQLite file itself'}")
        yield request.getfixturevalue("pg_db")
        return
    database = open_database(f"sqlite:///{db_path}", tmp_path / "backups")
    try:
        yield database
    finally:
        database.dispose()


# --- PostgreSQL: a real server started by the tests (tests/pg_server.py) -----

@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One server for the whole run; skipped with the reason when it cannot run here."""
    reason = why_no_server()
    if reason:
        pytest.skip(reason)
    server = start_server()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """The URL (with password) of a fresh, migrated mspbill database of this test's own."""
    name = pg_server.new_database()
    try:
        yield pg_server.url(name)
    finally:
        pg_server.drop_database(name)


@pytest.fixture
def pg_db(pg_url: str, tmp_path: Path) -> Iterator[Database]:
    database = open_database(pg_url, tmp_path / "backups")
    try:
        yield database
    finally:
        database.dispose()


def _count_rows(database: Database, model: type) -> int:
    """Rows of `model` as a fresh session sees them (what was really committed)."""
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


@pytest.fixture
def count_rows():
    """count_rows(db, Model) -> int, read in a new session."""
    return _count_rows


# --- the CLI as a real process ---------------------------------------------

def _run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60,
            cwd: Path | None = None, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m mspbill ARGS` in a child process, capturing stdout and stderr apart."""
    child_env = dict(os.environ)
    # The child must not inherit a database or data dir from the developer's shell.
    child_env.pop("MSPBILL_DATA_DIR", None)
    child_env.pop("MSPBILL_DATABASE_URL", None)
    child_env["PYTHONIOENCODING"] = "utf-8"
    if env:
        child_env.update(env)
    return subprocess.run([sys.executable, "-m", "mspbill", *args], capture_output=True, text=True,
                          encoding="utf-8", env=child_env, timeout=timeout, cwd=cwd or REPO_ROOT,
                          input=input if input is not None else "")


@pytest.fixture(scope="session")
def cli():
    """cli(*args, env=None) -> CompletedProcess of `python -m mspbill ARGS`."""
    return _run_cli


# --- GNOME Keyring on a private D-Bus session -------------------------------

def _keyring_daemon_pid(bus_address: str) -> int | None:
    """The pid of whoever owns org.freedesktop.secrets on our private bus."""
    from jeepney import DBusAddress, new_method_call
    from jeepney.io.blocking import open_dbus_connection

    bus = DBusAddress("/org/freedesktop/DBus", bus_name="org.freedesktop.DBus",
                      interface="org.freedesktop.DBus")
    from jeepney import MessageType

    deadline = time.monotonic() + 10
    with open_dbus_connection(bus_address) as conn:
        while True:
            reply = conn.send_and_get_reply(
                new_method_call(bus, "GetConnectionUnixProcessID", "s", ("org.freedesktop.secrets",)),
                timeout=5)
            if reply.header.message_type is MessageType.method_return:
                return int(reply.body[0])
            if time.monotonic() > deadline:  # the daemon never claimed the name
                return None
            time.sleep(0.05)


def _stop(pid: int | None) -> None:
    if not pid:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
            # Daemons are reparented to init; a zombie waiting to be reaped is gone for us.
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return
        except (ProcessLookupError, FileNotFoundError):
            return
        time.sleep(0.02)


@pytest.fixture(scope="module")
def secret_service_env() -> Iterator[dict[str, str]]:
    """Start dbus-daemon and an unlocked gnome-keyring-daemon; yield their environment.

    Both are private to the test module: their own bus, HOME and runtime dir,
    so the developer's own keyring is never touched.
    """
    for binary in ("dbus-daemon", "gnome-keyring-daemon"):
        if shutil.which(binary) is None:
            pytest.skip(f"{binary} is not installed (apt-get install dbus gnome-keyring); "
                        "the Secret Service tests need a real GNOME Keyring")
    pytest.importorskip("secretstorage", reason="SecretStorage is needed for keyring's SecretService backend")
    # A short path under /tmp: the daemons' unix sockets have a 108-byte limit.
    root = Path(tempfile.mkdtemp(prefix="mspkr-"))
    home, data, runtime = root / "home", root / "data", root / "run"
    for d in (home, data):
        d.mkdir(mode=0o700)
    runtime.mkdir(mode=0o700)
    os.chmod(runtime, 0o700)
    env = dict(os.environ)
    env.update(HOME=str(home), XDG_DATA_HOME=str(data), XDG_RUNTIME_DIR=str(runtime),
               XDG_CONFIG_HOME=str(home / ".config"), XDG_CACHE_HOME=str(home / ".cache"))
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    env.pop("GNOME_KEYRING_CONTROL", None)
    dbus_pid: int | None = None
    keyring_pid: int | None = None
    try:
        out = subprocess.run(
            ["dbus-daemon", "--session", "--fork", "--print-address=1", "--print-pid=1", "--nopidfile"],
            capture_output=True, text=True, env=env, timeout=20, check=True).stdout.split()
        address, dbus_pid = out[0], int(out[1])
        env["DBUS_SESSION_BUS_ADDRESS"] = address
        started = subprocess.run(
            ["gnome-keyring-daemon", "--unlock", "--components=secrets", "--daemonize"],
            input="test-keyring-password", capture_output=True, text=True, env=env, timeout=20)
        if started.returncode != 0:
            pytest.skip(f"gnome-keyring-daemon did not start: {started.stderr.strip()}")
        for line in started.stdout.splitlines():
            key, _, value = line.partition("=")
            if key and value:
                env[key] = value
        keyring_pid = _keyring_daemon_pid(address)
        if keyring_pid is None:
            pytest.skip("gnome-keyring-daemon started but did not claim org.freedesktop.secrets "
                        f"within 10 s: {started.stderr.strip()}")
        yield {k: env[k] for k in ("HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME",
                                   "XDG_CACHE_HOME", "DBUS_SESSION_BUS_ADDRESS")}
    finally:
        _stop(keyring_pid)
        _stop(dbus_pid)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def secret_service(secret_service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The private Secret Service, visible to this test's process through its environment."""
    for key, value in secret_service_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("GNOME_KEYRING_CONTROL", raising=False)
    return secret_service_env
