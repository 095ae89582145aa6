"""A real PostgreSQL server for the tests, started by the tests in a temporary folder.

`initdb` + `pg_ctl` from the server's own binaries (Debian's `postgresql` package puts them under
/usr/lib/postgresql/N/bin).  PostgreSQL refuses to run as root, so when the tests run as root (CI)
the server runs as the `postgres` system user, which the Debian package creates.  The superuser
has a password and the server asks for it (scram-sha-256), so the credential paths are real.

Each test gets its own database, cloned from a migrated template (CREATE DATABASE … TEMPLATE is a
file copy: about 0.1 s instead of running every migration again).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

SUPERUSER = "mspbill_test"
SUPERUSER_PASSWORD = "pg-test-pässword"  # non-ASCII on purpose: the URL must quote it
DRIVER = "postgresql+psycopg"
TEMPLATE_DB = "mspbill_template"


def find_pg_bindir() -> Path | None:
    """The folder holding initdb and pg_ctl, or None when the server is not installed."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(os.path.realpath(found)).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                      key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    return versions[-1].parent if versions else None


def why_no_server() -> str | None:
    """A reason to skip, or None when a server can be started here."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install -e '.[test]')"
    if find_pg_bindir() is None:
        return "the PostgreSQL server is not installed (apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            import pwd
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run the server as"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PgServer:
    """One running server; `url(db)` names a database on it."""

    root: Path
    bindir: Path
    port: int = field(default_factory=_free_port)
    host: str = "127.0.0.1"
    _names: count = field(default_factory=lambda: count(1))

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def _as_server_user(self, argv: list[str]) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *argv]
        return argv

    def _run(self, argv: list[str], timeout: float = 120) -> None:
        done = subprocess.run(self._as_server_user(argv), capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:2])} failed: {done.stdout}\n{done.stderr}")

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        pwfile = self.root / "pw"
        pwfile.write_text(SUPERUSER_PASSWORD + "\n", encoding="utf-8")
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            shutil.chown(pwfile, "postgres")
        self._run([str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER,
                   "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C", "--no-sync"])
        pwfile.unlink()

    def start(self) -> None:
        # fsync off: a test server's data need not survive a power cut, and it halves the time.
        opts = (f"-p {self.port} -k {self.root} -c listen_addresses={self.host} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=60")
        self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-o", opts,
                   "-l", str(self.root / "server.log"), "-w", "-t", "60", "start"])

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: 'fast' ends sessions cleanly, 'immediate' is a crash."""
        self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop"])

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str, *, password: str | None = SUPERUSER_PASSWORD, user: str = SUPERUSER) -> str:
        from sqlalchemy.engine import URL

        return URL.create(DRIVER, username=user, password=password, host=self.host, port=self.port,
                          database=database).render_as_string(hide_password=False)

    def admin(self, *statements: str) -> None:
        """Run statements outside a transaction (CREATE/DROP DATABASE) on the maintenance database."""
        import psycopg

        with psycopg.connect(host=self.host, port=self.port, user=SUPERUSER, password=SUPERUSER_PASSWORD,
                             dbname="postgres", autocommit=True, connect_timeout=10) as conn:
            for statement in statements:
                conn.execute(statement)  # type: ignore[arg-type]

    def new_database(self, *, template: str | None = TEMPLATE_DB) -> str:
        name = f"t{os.getpid()}_{next(self._names)}"
        self.admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return name

    def drop_database(self, name: str) -> None:
        self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def prepare_template(self) -> None:
        """A migrated, empty mspbill database that each test's database is cloned from."""
        from mspbill.db.schema import open_database

        self.admin(f'CREATE DATABASE "{TEMPLATE_DB}"')
        db = open_database(self.url(TEMPLATE_DB), None)
        db.dispose()


def start_server() -> PgServer:
    bindir = find_pg_bindir()
    assert bindir is not None
    # A short path: the server's unix socket lives here too (108-byte limit).
    root = Path(tempfile.mkdtemp(prefix="msppg-"))
    os.chmod(root, 0o755)  # the server may run as another user (root → postgres)
    server = PgServer(root=root / "pg", bindir=bindir)
    try:
        server.init()
        server.start()
        deadline = time.monotonic() + 30
        while True:
            try:
                server.admin("SELECT 1")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        server.prepare_template()
    except BaseException:
        server.destroy()
        shutil.rmtree(root, ignore_errors=True)
        raise
    return server
