"""The database on disk: migrations, drift, pragmas, refusing bad files, backups, settings."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

import mspbill.db.schema as schema
from mspbill.clients import ClientDraft, create_client
from mspbill.db.models import Agreement, Base, Client
from mspbill.db.schema import (
    BACKUPS_KEPT,
    DatabaseCorruptError,
    DatabaseLockedError,
    DatabaseOpenError,
    DatabaseTooNewError,
    NotAnMspbillDatabaseError,
    alembic_config,
    backup_sqlite,
    current_revision,
    head_revision,
    open_database,
    upgrade,
)
from mspbill.demo import create_demo_office
from mspbill.settings import Settings

APP_TABLES = {"audit_log", "clients", "client_contacts", "company_profile", "agreements", "agreement_lines"}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


def _filled_database(path: Path, clients: int = 8) -> bytes:
    """A healthy mspbill database with some data, closed; returns its bytes."""
    db = open_database(_url(path), path.parent / "setup-backups")
    try:
        with db.session() as session, session.begin():
            create_demo_office(session, clients=clients, seed=7)
    finally:
        db.dispose()
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    return path.read_bytes()


def _assert_refused(path: Path, error: type[DatabaseOpenError], *fragments: str) -> DatabaseOpenError:
    before = _sha(path)
    backups = path.parent / "backups"
    with pytest.raises(error) as excinfo:
        open_database(_url(path), backups)
    message = str(excinfo.value)
    for fragment in fragments:
        assert fragment in message, message
    assert _sha(path) == before, "a refused database file must not be written to"
    assert not backups.exists() or not any(backups.iterdir())
    return excinfo.value


# --- migrations and drift -------------------------------------------------------


def test_migrates_an_empty_file_to_head(tmp_path: Path) -> None:
    path = tmp_path / "new" / "mspbill.sqlite3"
    db = open_database(_url(path), tmp_path / "backups")
    try:
        assert path.exists()
        assert current_revision(db) == (head_revision(), True)
        assert APP_TABLES <= set(inspect(db.engine).get_table_names())
        # A brand-new database needs no backup.
        assert not (tmp_path / "backups").exists() or not any((tmp_path / "backups").iterdir())
    finally:
        db.dispose()
    # Opening again is a no-op at head.
    db = open_database(_url(path), tmp_path / "backups")
    db.dispose()


def test_a_zero_byte_file_is_treated_as_new(tmp_path: Path) -> None:
    path = tmp_path / "empty.sqlite3"
    path.touch()
    db = open_database(_url(path), tmp_path / "backups")
    try:
        assert current_revision(db)[0] == head_revision()
    finally:
        db.dispose()


def test_downgrade_to_base_and_upgrade_again(db) -> None:
    cfg = alembic_config(db)
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
    assert current_revision(db) == (None, False)
    assert upgrade(db, None) is None  # nothing to back up when there was no schema
    assert current_revision(db) == (head_revision(), True)


def test_models_and_migrations_do_not_drift(db) -> None:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], f"models.py and the migrations disagree; write a migration: {diff}"


def test_the_drift_check_can_fail(db) -> None:
    changed = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["clients"].append_column(Column("loyalty_points", Integer, nullable=True))
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), changed)
    assert any(op[0] == "add_column" and op[3].name == "loyalty_points" for op in diff)


def _plain(value: Any) -> Any:
    """Reflected partial-index conditions are TextClause objects, equal only to themselves."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if hasattr(value, "text") and not isinstance(value, str):
        return str(value.text)
    return value


@pytest.mark.sqlite_only('compares with a schema built on SQLite')
def test_constraints_match_a_schema_built_from_the_models(db, tmp_path: Path) -> None:
    """Autogenerate ignores CHECK constraints; compare them (and the rest) by reflection."""
    reference = create_engine(_url(tmp_path / "reference.sqlite3"))
    Base.metadata.create_all(reference)
    try:
        migrated, modelled = inspect(db.engine), inspect(reference)
        for table in sorted(Base.metadata.tables):
            for aspect in ("get_check_constraints", "get_indexes", "get_foreign_keys",
                           "get_unique_constraints", "get_pk_constraint"):
                got, want = (_plain(getattr(migrated, aspect)(table)), _plain(getattr(modelled, aspect)(table)))
                if isinstance(got, list):
                    got, want = sorted(got, key=repr), sorted(want, key=repr)
                assert got == want, (table, aspect)
            cols = [(c["name"], str(c["type"]), c["nullable"]) for c in migrated.get_columns(table)]
            want_cols = [(c["name"], str(c["type"]), c["nullable"]) for c in modelled.get_columns(table)]
            # Migrations add columns at the end; order is not part of the schema.
            assert sorted(cols) == sorted(want_cols), table
    finally:
        reference.dispose()


# --- connection settings ---------------------------------------------------------


@pytest.mark.sqlite_only('SQLite pragmas')
def test_every_connection_has_wal_foreign_keys_and_busy_timeout(db) -> None:
    for _ in range(2):  # the pool hands out more than one connection over time
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
        db.dispose()
    # The file itself is in WAL mode (header bytes 18-19 are 2 for WAL).
    assert db.sqlite_path is not None
    assert db.sqlite_path.read_bytes()[18:20] == b"\x02\x02"


def test_foreign_keys_are_enforced(db) -> None:
    import datetime as dt

    with db.session() as session:
        with pytest.raises(IntegrityError):
            with session.begin():
                session.add(Agreement(client_id=424242, name="Orphan", start_date=dt.date(2026, 1, 1)))
        # RESTRICT: a client with agreements cannot be deleted out from under them.
        with session.begin():
            client = create_client(session, ClientDraft(legal_name="Has Agreements"))
            session.add(Agreement(client_id=client.id, name="A", start_date=dt.date(2026, 1, 1)))
        with pytest.raises(IntegrityError):
            with session.begin():
                session.execute(text("DELETE FROM clients"))


def test_session_begin_is_one_transaction(db, count_rows) -> None:
    """SQLAlchemy, not pysqlite, decides when the transaction begins (see engine.py)."""
    with pytest.raises(RuntimeError):
        with db.session() as session, session.begin():
            create_client(session, ClientDraft(legal_name="First"))
            session.flush()
            raise RuntimeError("crash between two writes")
    assert count_rows(db, Client) == 0


# --- refusing files that are not healthy mspbill databases -----------------------------


def test_random_bytes_are_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "mspbill.sqlite3"
    path.write_bytes(random.Random(1).randbytes(64 * 1024))
    _assert_refused(path, DatabaseCorruptError, str(path), "has not changed it", "backup")


def test_a_text_file_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "mspbill.sqlite3"
    path.write_text("clients,agreements\nAcme,1\n", encoding="utf-8")
    _assert_refused(path, DatabaseCorruptError, "not an mspbill database")


def test_a_truncated_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "mspbill.sqlite3"
    data = _filled_database(path)
    path.write_bytes(data[: len(data) // 2])
    _assert_refused(path, DatabaseCorruptError, "damaged", "has not changed it")


def test_a_garbled_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "mspbill.sqlite3"
    data = bytearray(_filled_database(path, clients=20))
    page = 4096
    assert len(data) > 10 * page
    rng = random.Random(42)
    # Scribble over the data pages, leaving the header and schema page intact.
    for offset in range(3 * page, len(data), page):
        for _ in range(64):
            data[offset + rng.randrange(page)] = rng.randrange(256)
    path.write_bytes(bytes(data))
    _assert_refused(path, DatabaseCorruptError, "damaged")


def test_a_corrupt_header_page_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "mspbill.sqlite3"
    data = bytearray(_filled_database(path))
    data[100:4096] = random.Random(3).randbytes(4096 - 100)
    path.write_bytes(bytes(data))
    _assert_refused(path, DatabaseCorruptError, "damaged")


def test_a_newer_schema_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "mspbill.sqlite3"
    _filled_database(path)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'f00dfeedbeef'")
    conn.close()
    _assert_refused(path, DatabaseTooNewError, "newer version", "f00dfeedbeef", "has not changed it")


def test_a_newer_schema_in_rollback_journal_mode_is_not_switched_to_wal(tmp_path: Path) -> None:
    """Refusing must not even rewrite the header (journal mode) of the file."""
    path = tmp_path / "mspbill.sqlite3"
    _filled_database(path)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.execute("UPDATE alembic_version SET version_num = 'f00dfeedbeef'")
    conn.commit()
    conn.close()
    assert path.read_bytes()[18:20] == b"\x01\x01"
    _assert_refused(path, DatabaseTooNewError)


def test_someone_elses_sqlite_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "inventory.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript("CREATE TABLE parts (id INTEGER PRIMARY KEY, name TEXT);"
                       "INSERT INTO parts (name) VALUES ('bolt'), ('nut');")
    conn.commit()
    conn.close()
    _assert_refused(path, NotAnMspbillDatabaseError, "not an mspbill database", "has not changed it")
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM parts").fetchone() == (2,)
        assert "clients" not in {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()


def test_a_missing_file_in_a_read_only_folder_is_reported(tmp_path: Path) -> None:
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        pytest.skip("root ignores directory permissions")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(DatabaseOpenError):
            open_database(_url(folder / "mspbill.sqlite3"), None)
    finally:
        folder.chmod(0o700)


_LOCK_HOLDER = textwrap.dedent("""
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    sys.stdin.read()          # hold the lock until the test closes our stdin
    conn.execute("ROLLBACK")
    conn.close()
""")


@contextmanager
def _locked_by_another_process(path: Path) -> Iterator[subprocess.Popen[str]]:
    holder = subprocess.Popen([sys.executable, "-c", _LOCK_HOLDER, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked", holder.stderr
        yield holder
    finally:
        if holder.stdin:
            holder.stdin.close()
        holder.wait(timeout=20)


def test_a_database_locked_by_another_process_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "mspbill.sqlite3"
    _filled_database(path)
    with _locked_by_another_process(path):
        _assert_refused(path, DatabaseLockedError, "locked by another program", "try again")
    # Once the other program lets go, the database opens normally.
    db = open_database(_url(path), tmp_path / "backups")
    try:
        with db.session() as session:
            assert session.query(Client).count() == 8
    finally:
        db.dispose()


def test_a_rollback_journal_database_locked_exclusively_is_refused(tmp_path: Path) -> None:
    """In rollback-journal mode an exclusive lock blocks even the read-only check."""
    path = tmp_path / "mspbill.sqlite3"
    _filled_database(path)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.close()
    holder = subprocess.Popen(
        [sys.executable, "-c", _LOCK_HOLDER.replace('conn.execute("BEGIN EXCLUSIVE")',
                                                    'conn.execute("BEGIN EXCLUSIVE"); '
                                                    'conn.execute("DELETE FROM audit_log")'), str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        _assert_refused(path, DatabaseLockedError, "locked by another program")
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=20)


# --- backups --------------------------------------------------------------------


def test_backup_is_a_consistent_copy(tmp_path: Path) -> None:
    path = tmp_path / "mspbill.sqlite3"
    _filled_database(path, clients=5)
    backup = backup_sqlite(path, tmp_path / "backups", "before-test")
    assert backup.parent == tmp_path / "backups"
    assert backup.name.startswith("mspbill-") and backup.name.endswith("-before-test.sqlite3")
    assert not list((tmp_path / "backups").glob("*.partial"))
    with sqlite3.connect(f"{backup.as_uri()}?mode=ro", uri=True) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT count(*) FROM clients").fetchone() == (5,)
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (head_revision(),)
    conn.close()
    # The backup opens as an mspbill database in its own right.
    restored = open_database(_url(backup), None)
    restored.dispose()


@pytest.mark.sqlite_only("SQLite's WAL")
def test_backup_includes_writes_still_in_the_wal(db) -> None:
    """The online backup API sees committed data that has not been checkpointed yet."""
    with db.session() as session, session.begin():
        create_client(session, ClientDraft(legal_name="Only In The WAL"))
    assert db.sqlite_path is not None
    backup = backup_sqlite(db.sqlite_path, db.sqlite_path.parent / "bk", "wal")
    with sqlite3.connect(backup) as conn:
        assert conn.execute("SELECT legal_name FROM clients").fetchall() == [("Only In The WAL",)]
    conn.close()


def test_old_backups_are_pruned(tmp_path: Path) -> None:
    path = tmp_path / "mspbill.sqlite3"
    _filled_database(path, clients=1)
    backups = tmp_path / "backups"
    backups.mkdir()
    for i in range(BACKUPS_KEPT + 5):  # older ones, made by earlier runs
        (backups / f"mspbill-20200101-000000-{i:06d}-old.sqlite3").write_bytes(b"old")
    (backups / "notes.txt").write_text("not a backup")
    newest = backup_sqlite(path, backups, "new")
    kept = sorted(backups.glob("mspbill-*.sqlite3"))
    assert len(kept) == BACKUPS_KEPT
    assert newest in kept
    assert (backups / "notes.txt").exists()
    assert not (backups / "mspbill-20200101-000000-000000-old.sqlite3").exists()


def test_upgrade_at_head_takes_no_backup(db, tmp_path: Path) -> None:
    backups = tmp_path / "upgrade-backups"
    assert upgrade(db, backups) is None
    assert not backups.exists()


@pytest.fixture
def newer_migrations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A copy of the real migrations plus one more revision, as the next release would ship."""
    def install(body: str) -> str:
        copy = tmp_path / "migrations"
        shutil.copytree(schema.MIGRATIONS_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
        source = "\n".join([
            "import sqlalchemy as sa",
            "from alembic import op",
            "",
            'revision = "0002nextrel"',
            f'down_revision = "{head_revision()}"',
            "branch_labels = None",
            "depends_on = None",
            "",
            "def upgrade():",
            textwrap.indent(textwrap.dedent(body).strip(), "    "),
            "",
            "def downgrade():",
            '    op.drop_table("next_release")',
            "",
        ])
        (copy / "versions" / "0002_next.py").write_text(source, encoding="utf-8")
        monkeypatch.setattr(schema, "MIGRATIONS_DIR", copy)
        assert head_revision() == "0002nextrel"
        return "0002nextrel"
    return install


def test_migrating_an_existing_database_backs_it_up_first(tmp_path: Path, newer_migrations) -> None:
    path = tmp_path / "mspbill.sqlite3"
    old_bytes = _filled_database(path, clients=3)
    old_rev = head_revision()
    newer_migrations("""
        op.create_table("next_release", sa.Column("id", sa.Integer, primary_key=True))
        op.execute("INSERT INTO next_release (id) VALUES (1)")
    """)
    db = open_database(_url(path), tmp_path / "backups")
    try:
        assert current_revision(db)[0] == "0002nextrel"
        assert "next_release" in inspect(db.engine).get_table_names()
    finally:
        db.dispose()
    backups = list((tmp_path / "backups").glob("*-before-migration.sqlite3"))
    assert len(backups) == 1
    with sqlite3.connect(backups[0]) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (old_rev,)
        assert conn.execute("SELECT count(*) FROM clients").fetchone() == (3,)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "next_release" not in tables
    conn.close()
    assert old_bytes  # the original content lives on in the backup


def test_a_failing_migration_rolls_back_and_names_the_backup(tmp_path: Path, newer_migrations) -> None:
    path = tmp_path / "mspbill.sqlite3"
    _filled_database(path, clients=2)
    old_rev = head_revision()
    newer_migrations("""
        op.create_table("next_release", sa.Column("id", sa.Integer, primary_key=True))
        op.execute("INSERT INTO no_such_table VALUES (1)")
    """)
    with pytest.raises(DatabaseOpenError) as excinfo:
        open_database(_url(path), tmp_path / "backups")
    message = str(excinfo.value)
    assert "rolled back" in message and "backup" in message
    backup = next((tmp_path / "backups").glob("*-before-migration.sqlite3"))
    assert str(backup) in message
    with sqlite3.connect(path) as conn:  # the half-done migration left nothing behind
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (old_rev,)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "next_release" not in tables
        assert conn.execute("SELECT count(*) FROM clients").fetchone() == (2,)
    conn.close()


def test_open_without_migrating_refuses_an_old_schema(tmp_path: Path, newer_migrations) -> None:
    path = tmp_path / "mspbill.sqlite3"
    _filled_database(path, clients=1)
    newer_migrations('op.create_table("next_release", sa.Column("id", sa.Integer, primary_key=True))')
    with pytest.raises(DatabaseOpenError, match="mspbill db upgrade"):
        open_database(_url(path), tmp_path / "backups", migrate=False)
    assert not (tmp_path / "backups").exists()


# --- settings -------------------------------------------------------------------


def test_settings_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "config" / "settings.json"
    settings = Settings(path)
    assert settings.get("theme") is None and settings.get("theme", "light") == "light"
    settings.set("theme", "dark")
    settings.set("recent_periods", ["2026-10", "2026-11"])
    settings.set("company_city", "Zürich")
    again = Settings(path)
    assert again.get("theme") == "dark"
    assert again.get("recent_periods") == ["2026-10", "2026-11"]
    assert again.get("company_city") == "Zürich"
    assert json.loads(path.read_text(encoding="utf-8"))["theme"] == "dark"


def test_settings_write_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    settings = Settings(path)
    settings.set("theme", "dark")
    before = path.read_bytes()
    with pytest.raises(TypeError):
        settings.set("window", object())  # cannot be written as JSON: fails half-way through dumping
    assert path.read_bytes() == before, "a failed save must leave the old file whole"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["settings.json"], "no temp file left behind"
    assert Settings(path).get("theme") == "dark"
    # The failed value is not kept in memory to poison every later save.
    assert settings.get("window") is None
    settings.set("language", "de")
    assert Settings(path).get("language") == "de"


@pytest.mark.parametrize("key", ["stripe_secret_key", "smtp_password", "SMTP_PASSWORD", "api_key",
                                 "oauth_token", "StripeSecret"])
def test_settings_refuse_secret_looking_keys(tmp_path: Path, key: str) -> None:
    path = tmp_path / "settings.json"
    settings = Settings(path)
    with pytest.raises(ValueError, match="keyring"):
        settings.set(key, "sk_test_123")
    assert not path.exists() or "sk_test_123" not in path.read_text(encoding="utf-8")
    assert settings.get(key) is None


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2, 3]", b"", b"\x00\x01", b"null",
                                     b"\xff\xfe{\x00}\x00",  # UTF-16 from a Windows editor
                                     b"{\"theme\": \"dark\"\xe9}"])  # Latin-1, not UTF-8
def test_broken_settings_file_is_moved_aside(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "settings.json"
    path.write_bytes(content)
    settings = Settings(path)
    assert settings.get("theme") is None
    broken = tmp_path / "settings.broken.json"
    assert broken.read_bytes() == content  # kept for support
    assert not path.exists()
    settings.set("theme", "light")
    assert Settings(path).get("theme") == "light"
