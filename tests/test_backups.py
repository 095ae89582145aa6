"""Backups and restore (mspbill.backups) on real SQLite files: consistent copies while another
connection writes, no partial file on a full disk, keep-N pruning of mspbill's own automatic
files only, the daily backup once a day, refusals that change nothing, a restore that
connections already open see, older backups migrated, and a backup taken in the middle of a
real month-end run that restores to a consistent office whose next run charges nothing twice."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import func, select

from mspbill import backups
from mspbill.backups import (
    BackupError,
    RestoreRefused,
    daily_backup,
    keep_for,
    list_backups,
    plan_restore,
    prune,
    restore,
    take_backup,
    write_copy,
)
from mspbill.clients import ClientDraft, create_client
from mspbill.db.engine import Database
from mspbill.db.models import AuditEntry, BatchRun, BatchRunStatus, Client, utcnow
from mspbill.db.schema import (
    alembic_config,
    head_revision,
    open_database,
)
from mspbill.demo import create_demo_office
from mspbill.paths import AppPaths, resolve_paths
from mspbill.settings import Settings

NOW = dt.datetime(2026, 11, 21, 9, 30)
TODAY = NOW.date()


def _sha(*paths: Path) -> list[str | None]:
    return [hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None for p in paths]


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


def _count(path: Path, table: str = "clients") -> int:
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo office's data folder (copied by each test that changes it)."""
    root = tmp_path_factory.mktemp("template")
    paths = resolve_paths(root)
    paths.ensure()
    db = open_database(paths.default_database_url, paths.backup_dir)
    try:
        with db.write_session() as s, s.begin():
            create_demo_office(s, clients=6, seed=3)
    finally:
        db.dispose()
    return root


@pytest.fixture
def office(template: Path, tmp_path: Path) -> AppPaths:
    shutil.copytree(template, tmp_path / "office")
    return resolve_paths(tmp_path / "office")


def _add_clients(paths: AppPaths, *names: str) -> None:
    db = Database(paths.default_database_url)
    try:
        with db.write_session() as s, s.begin():
            for name in names:
                create_client(s, ClientDraft(legal_name=name))
    finally:
        db.dispose()


# --- writing backups ----------------------------------------------------------------------------


def test_backups_taken_while_another_connection_writes_are_consistent(office: AppPaths) -> None:
    """The writer adds clients in pairs, one transaction a pair: every copy holds whole pairs only."""
    db = Database(office.default_database_url)
    stop = threading.Event()
    written = [0]

    def writer() -> None:
        while not stop.is_set():
            with db.write_session() as s, s.begin():
                n = written[0]
                create_client(s, ClientDraft(legal_name=f"Pair {n:05d} A"))
                s.flush()
                create_client(s, ClientDraft(legal_name=f"Pair {n:05d} B"))
            written[0] += 1

    thread = threading.Thread(target=writer)
    thread.start()
    copies: list[Path] = []
    try:
        while len(copies) < 6:
            if written[0] >= 3 * (len(copies) + 1):   # copies at different moments of the writing
                copies.append(take_backup(office.database_file, office.backup_dir, "daily",
                                          now=NOW + dt.timedelta(seconds=len(copies))))
    finally:
        stop.set()
        thread.join()
        db.dispose()
    assert written[0] >= 18
    seen: list[int] = []
    for copy in copies:
        conn = sqlite3.connect(f"{copy.as_uri()}?mode=ro", uri=True)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)  # one self-contained file
            names = [r[0] for r in conn.execute("SELECT legal_name FROM clients WHERE legal_name LIKE 'Pair %'")]
        finally:
            conn.close()
        pairs = {n[:10] for n in names}
        assert len(names) == 2 * len(pairs), f"{copy.name} holds half a transaction"
        seen.append(len(pairs))
    assert seen == sorted(seen) and seen[-1] > seen[0]
    assert not [p for p in office.backup_dir.iterdir() if not p.name.endswith(".sqlite3")]


def test_a_full_disk_or_an_unwritable_folder_leaves_no_file_and_says_so(office: AppPaths,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    real_connect = backups._connect_target

    def small_disk(path: Path) -> sqlite3.Connection:
        conn = real_connect(path)
        conn.execute("PRAGMA max_page_count = 4")  # SQLite's own "database or disk is full"
        return conn

    monkeypatch.setattr(backups, "_connect_target", small_disk)
    with pytest.raises(BackupError, match="the disk is full.*Nothing was written"):
        take_backup(office.database_file, office.backup_dir, "daily", now=NOW)
    assert list(office.backup_dir.iterdir()) == []
    monkeypatch.setattr(backups, "_connect_target", real_connect)

    blocker = office.data_dir / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(BackupError, match="cannot be created"):
        write_copy(office.database_file, blocker / "b.sqlite3")
    existing = office.data_dir / "mine.sqlite3"
    existing.write_bytes(b"keep me")
    with pytest.raises(BackupError, match="already exists"):
        write_copy(office.database_file, existing)
    assert existing.read_bytes() == b"keep me"
    with pytest.raises(BackupError, match="over the database itself"):
        write_copy(office.database_file, office.database_file, overwrite=True)
    assert sorted(p.name for p in office.data_dir.iterdir() if "partial" in p.name) == []


def test_only_mspbills_own_automatic_backups_are_pruned(tmp_path: Path) -> None:
    folder = tmp_path / "data" / "backups"
    folder.mkdir(parents=True)
    automatic = [f"mspbill-202611{d:02d}-080000-000000-{r}.sqlite3"
                 for d, r in [(1, "daily"), (2, "before-batch-2026-11"), (3, "before-migration"), (4, "daily"),
                              (5, "daily"), (6, "before-batch-2026-12")]]
    kept_anyway = ["mspbill-20261101-070000-000000-manual.sqlite3",
                   "mspbill-20261101-070000-000001-before-restore.sqlite3",
                   "my-own-backup.sqlite3", "mspbill-backup-2026-11-01.sqlite3", "notes.txt",
                   "mspbill-20261101-070000-000002-daily.partial"]  # a crash's leftover, but new
    for name in automatic + kept_anyway:
        (folder / name).write_bytes(b"x")
    old_partial = folder / "mspbill-20261001-070000-000000-daily.partial"
    old_partial.write_bytes(b"x")
    os.utime(old_partial, (0, 0))
    elsewhere = tmp_path / "mspbill-20261101-080000-000000-daily.sqlite3"  # not in the folder
    elsewhere.write_bytes(b"x")
    # The keep-N setting of this office (--data-dir: the settings file is in the data folder).
    Settings(tmp_path / "data" / "settings.json").set(backups.KEEP_SETTING, 3)
    assert keep_for(folder) == 3
    removed = prune(folder, keep_for(folder), now=NOW)
    assert sorted(p.name for p in removed) == sorted(automatic[:3] + [old_partial.name])
    assert sorted(p.name for p in folder.iterdir()) == sorted(automatic[3:] + kept_anyway)
    assert elsewhere.exists()


def test_the_daily_backup_is_taken_once_a_day(office: AppPaths) -> None:
    url = office.default_database_url
    first = daily_backup(office, url, now=NOW)
    assert first is not None and first.name.endswith("-daily.sqlite3")
    assert daily_backup(office, url, now=NOW + dt.timedelta(hours=5)) is None
    tomorrow = NOW + dt.timedelta(days=1)
    # A month-end run's backup that day counts as the day's backup.
    take_backup(office.database_file, office.backup_dir, "before-batch-2026-11", now=tomorrow)
    assert daily_backup(office, url, now=tomorrow + dt.timedelta(hours=1)) is None
    # A backup made by hand does not: it is not one of the automatic ones.
    later = NOW + dt.timedelta(days=2)
    take_backup(office.database_file, office.backup_dir, "manual", now=later)
    assert daily_backup(office, url, now=later + dt.timedelta(minutes=1)) is not None
    assert daily_backup(office, "postgresql://u:p@db.example/office", now=later) is None
    listed = list_backups(office.backup_dir)
    assert [f.reason for f in listed] == ["daily", "manual", "before-batch-2026-11", "daily"]
    assert listed[0].clients == 6 and listed[0].invoices and listed[0].revision == head_revision()


# --- refusing what is not a backup -----------------------------------------------------------


def _corrupt(path: Path) -> None:
    with path.open("r+b") as fh:
        fh.seek(4096 * 2)
        fh.write(os.urandom(4096 * 8))


def test_files_that_are_not_good_backups_are_refused_and_nothing_changes(office: AppPaths, tmp_path: Path) -> None:
    good = take_backup(office.database_file, office.backup_dir, "manual", now=NOW)
    live = [office.database_file, Path(f"{office.database_file}-wal")]
    before = _sha(*live)
    backups_before = sorted(p.name for p in office.backup_dir.iterdir())

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.sqlite3").write_bytes(b"")
    (bad / "text.sqlite3").write_text("Company,Email\nAcme,ap@acme.example\n")
    shutil.copy(good, bad / "corrupt.sqlite3")
    _corrupt(bad / "corrupt.sqlite3")
    foreign = sqlite3.connect(bad / "foreign.sqlite3")
    foreign.execute("CREATE TABLE songs (title TEXT)")
    foreign.commit()
    foreign.close()
    sqlite3.connect(bad / "no-tables.sqlite3").execute("PRAGMA user_version = 1").connection.close()
    shutil.copy(good, bad / "newer.sqlite3")
    newer = sqlite3.connect(bad / "newer.sqlite3")
    newer.execute("UPDATE alembic_version SET version_num = 'f00dcafe0001'")
    newer.commit()
    newer.close()
    expected = {"empty.sqlite3": "is empty", "text.sqlite3": "not an SQLite database at all",
                "corrupt.sqlite3": "is damaged", "foreign.sqlite3": "not an mspbill database",
                "no-tables.sqlite3": "empty database", "newer.sqlite3": "newer version of mspbill (schema f00dcafe0001)",
                "missing.sqlite3": "does not exist"}
    for name, words in expected.items():
        with pytest.raises(RestoreRefused, match=r"(?s)" + words.replace("(", r"\(").replace(")", r"\)")) as exc:
            restore(office, office.default_database_url, bad / name, now=NOW)
        assert "changed" in str(exc.value) or name == "missing.sqlite3"
        assert _sha(*live) == before, name
    assert sorted(p.name for p in office.backup_dir.iterdir()) == backups_before  # not even a before-restore
    assert sorted(p.name for p in office.data_dir.iterdir() if p.name.startswith(".mspbill-restore")) == []
    with pytest.raises(RestoreRefused, match="current database itself"):
        plan_restore(office.default_database_url, office.database_file)
    with pytest.raises(BackupError, match="pg_dump"):
        plan_restore("postgresql://u:secret@db.example/office", good)


def test_a_restore_is_refused_while_a_month_end_run_is_under_way(office: AppPaths) -> None:
    good = take_backup(office.database_file, office.backup_dir, "manual", now=NOW)
    runner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    db = Database(office.default_database_url)
    try:
        with db.write_session() as s, s.begin():
            s.add(BatchRun(period="2026-11", status=BatchRunStatus.RUNNING, actor="pat", host=socket.gethostname(),
                           pid=runner.pid, started_at=utcnow(), heartbeat_at=utcnow(), summary={}))
        before = _sha(office.database_file)
        with pytest.raises(BackupError, match="already under way.*Nothing was changed"):
            restore(office, office.default_database_url, good, now=NOW)
        assert _sha(office.database_file) == before
    finally:
        runner.kill()
        runner.wait()
        db.dispose()
    # Its process gone, the run is dead: the restore goes ahead.
    assert restore(office, office.default_database_url, good, now=NOW).clients == 6


# --- restoring ---------------------------------------------------------------------------------


def test_a_restore_replaces_the_database_under_open_connections_and_can_be_undone(office: AppPaths) -> None:
    backup = take_backup(office.database_file, office.backup_dir, "manual", now=NOW)
    _add_clients(office, "Added After The Backup", "Another One")
    db = Database(office.default_database_url)   # the app's engine, with a pooled connection open
    try:
        with db.session() as s:
            assert s.scalar(select(func.count()).select_from(Client)) == 8
        report = restore(office, office.default_database_url, backup, now=NOW + dt.timedelta(minutes=5))
        with db.session() as s:  # the same engine reads the restored database
            assert s.scalar(select(func.count()).select_from(Client)) == 6
            entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "database.restored"))
            assert entry is not None and entry.actor and entry.details is not None
            assert entry.details["file"] == str(backup)
            assert entry.details["backup_taken_at"] == NOW.isoformat()
            assert entry.details["replaced"]["clients"] == 8
        with db.write_session() as s, s.begin():   # and writes to it
            create_client(s, ClientDraft(legal_name="After The Restore"))
    finally:
        db.dispose()
    assert report.clients == 6 and report.before_restore and report.moved_aside is None
    conn = sqlite3.connect(office.database_file)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
    # Undo: the database as it was before the restore comes back.
    before_restore = Path(report.before_restore)
    assert before_restore.name.endswith("-before-restore.sqlite3") and _count(before_restore) == 8
    restore(office, office.default_database_url, before_restore, now=NOW + dt.timedelta(minutes=9))
    assert _count(office.database_file) == 8
    open_database(office.default_database_url, office.backup_dir).dispose()


def test_an_older_backup_is_brought_to_this_versions_schema(office: AppPaths, tmp_path: Path) -> None:
    base = _first_revision()
    old = tmp_path / "old.sqlite3"
    old_db = Database(_url(old))
    try:
        with old_db.engine.begin() as conn:
            cfg = alembic_config(old_db)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, base)
    finally:
        old_db.dispose()
    old_conn = sqlite3.connect(old)
    old_conn.execute("INSERT INTO audit_log (at, actor, action, entity_type, summary) VALUES "
                     "('2025-01-01 10:00:00.000000', 'pat', 'client.created', 'client', 'old office')")
    old_conn.commit()
    old_conn.close()
    plan = plan_restore(office.default_database_url, old)
    assert plan.migrates and any("earlier version" in p for p in plan.confirmation())
    report = restore(office, office.default_database_url, old, plan=plan, now=NOW)
    assert report.migrated_from == base != head_revision()
    db = open_database(office.default_database_url, office.backup_dir, migrate=False)  # already at head
    db.dispose()


def _first_revision() -> str:
    from alembic.script import ScriptDirectory

    from mspbill.db.schema import MIGRATIONS_DIR

    return ScriptDirectory(str(MIGRATIONS_DIR)).get_base() or ""


def test_a_damaged_database_is_moved_aside_and_replaced(office: AppPaths) -> None:
    backup = take_backup(office.database_file, office.backup_dir, "manual", now=NOW)
    shutil.copy(office.database_file, office.data_dir / "reference")
    _corrupt(office.database_file)
    damaged = office.database_file.read_bytes()
    plan = plan_restore(office.default_database_url, backup)
    assert plan.current.problem and any("moved aside" in p for p in plan.confirmation())
    report = restore(office, office.default_database_url, backup, plan=plan, now=NOW)
    assert report.before_restore is None and report.moved_aside is not None
    assert Path(report.moved_aside).read_bytes() == damaged
    assert _count(office.database_file) == 6
    open_database(office.default_database_url, office.backup_dir).dispose()


# --- a backup taken during a running month-end run ----------------------------------------------


@pytest.fixture(scope="module")
def batch_template(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from tests.batch_office import build_office

    return build_office(tmp_path_factory.mktemp("batch") / "office", clients=30, mail=False, today=TODAY)


def test_a_backup_taken_during_a_month_end_run_restores_to_a_consistent_office(
        batch_template, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from mspbill.batch.run import RunOptions, batch_sync, run_batch
    from mspbill.db.models import (
        ChargeAttempt,
        Invoice,
        InvoiceLine,
        InvoiceStatus,
        Payment,
    )
    from mspbill.collections.run import run_collections
    from mspbill.payments.charges import charge_invoice
    from mspbill.payments.sync import sync_all
    from mspbill.payments.sandbox import SandboxConfig, SandboxGateway
    from mspbill.validation import ValidationError
    from tests.batch_office import copy_office, ledger_check

    office = copy_office(batch_template, tmp_path / "office")
    paths = resolve_paths(office.data_dir)
    db = open_database(paths.default_database_url, paths.backup_dir)
    gateway = SandboxGateway(office.ledger_path, SandboxConfig(latency_seconds=0.03))
    backup: list[Path] = []
    once = threading.Lock()

    def progress(p) -> None:  # type: ignore[no-untyped-def]
        # On a charging thread, a few charges in: the other worker keeps charging (and writing) meanwhile.
        if p.stage == "charging" and p.done >= 4 and once.acquire(blocking=False):
            backup.append(take_backup(office.database_file, paths.backup_dir, "manual"))

    try:
        run_batch(db, gateway, office.month, backup_dir=paths.backup_dir, progress=progress,
                  options=RunOptions(today=TODAY, workers=2, rate_per_second=40, send_mail=False))
    finally:
        gateway.close()
        db.dispose()
    assert len(backup) == 1
    assert ledger_check(office).double_charges == []

    # Another data folder; the processor's ledger is the processor's (it saw the whole run).
    other = resolve_paths(tmp_path / "restored")
    other.ensure()
    write_copy(office.ledger_path, other.data_dir / office.ledger_path.name)  # a consistent copy (WAL)
    report = restore(other, other.default_database_url, backup[0])
    assert len(report.released_runs) == 1
    conn = sqlite3.connect(other.database_file)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()
    restored = open_database(other.default_database_url, other.backup_dir)
    try:
        with restored.session() as s:
            issued = list(s.scalars(select(Invoice).where(Invoice.number.is_not(None))))
            assert issued
            for inv in issued:
                lines = list(s.scalars(select(InvoiceLine).where(InvoiceLine.invoice_id == inv.id)))
                assert sum(ln.amount_cents for ln in lines) == inv.subtotal_cents, inv.number
                assert inv.subtotal_cents + inv.tax_cents == inv.total_cents, inv.number
                paid = sum(p.applied_cents for p in s.scalars(select(Payment).where(Payment.invoice_id == inv.id)))
                assert paid == inv.paid_cents, inv.number
            invoice_ids = {inv.id for inv in s.scalars(select(Invoice))}
            assert {p.invoice_id for p in s.scalars(select(Payment))} <= invoice_ids
            attempts = list(s.scalars(select(ChargeAttempt)))
            assert attempts and {a.invoice_id for a in attempts} <= invoice_ids
            run_row = s.scalar(select(BatchRun))
            assert run_row is not None and run_row.status is BatchRunStatus.RUNNING and run_row.pid == 0
            open_before = s.scalar(select(func.count()).select_from(Invoice).where(
                Invoice.status == InvoiceStatus.OPEN)) or 0
        assert open_before > 0   # the backup was taken with charges still to make
        # An invoice the run charged after the backup was taken, open again in the restored office.
        orig = sqlite3.connect(office.database_file)
        try:
            charged = {row[0] for row in orig.execute(
                "SELECT invoice_id FROM charge_attempts WHERE status IN ('succeeded', 'processing')")}
        finally:
            orig.close()
        with restored.session() as s:
            known = set(s.scalars(select(ChargeAttempt.invoice_id)))
            charged_later = sorted(inv.id for inv in s.scalars(select(Invoice).where(
                Invoice.status == InvoiceStatus.OPEN, Invoice.id.in_(charged))) if inv.id not in known)
        assert charged_later, "no invoice was charged after the backup"
        sandbox = SandboxGateway(other.data_dir / office.ledger_path.name)
        try:
            # A charge by hand first looks for the charge made after the backup, and so does not charge again.
            with pytest.raises(ValidationError, match="nothing left to pay|under way"):
                charge_invoice(restored, sandbox, charged_later[0])
            # Until a payments sync has asked the processor, reminders and fees wait (those invoices look unpaid).
            assert run_collections(restored, TODAY).held
            sync_all(restored, sandbox)
            with restored.session() as s:
                statuses = {s.get(Invoice, i).status for i in charged_later[1:]}  # type: ignore[union-attr]
            assert len(charged_later) > 1 and statuses <= {InvoiceStatus.PAID, InvoiceStatus.OPEN}
            assert InvoiceStatus.PAID in statuses, "the sync did not bring in the charges made after the backup"
            assert not run_collections(restored, TODAY).held
            # `batch sync` then the month again, as the restore tells the office to do.
            batch_sync(restored, sandbox)
            again = run_batch(restored, sandbox, office.month, backup_dir=other.backup_dir,
                              options=RunOptions(today=TODAY, workers=2, rate_per_second=40, send_mail=False))
        finally:
            sandbox.close()
        assert again.resumed_run_id == run_row.id
        with restored.session() as s:
            looked = s.scalar(select(AuditEntry).where(AuditEntry.action == "database.restore_reconciled"))
            assert looked is not None and (looked.details or {}).get("adopted", 0) > 0, "no charge was made after the backup"
    finally:
        restored.dispose()
    check = ledger_check(dataclasses.replace(office, data_dir=other.data_dir))
    assert check.double_charges == [] and check.problems == [] and check.unbacked == []


def test_without_a_restore_the_run_does_not_ask_the_processor_about_earlier_charges(office: AppPaths) -> None:
    from mspbill.backups import pending_restore, reconcile_after_restore

    class NoCalls:
        def find_charges(self, **_kw: object) -> list[object]:
            raise AssertionError("asked the processor")

    db = Database(office.default_database_url)
    try:
        with db.session() as s:
            assert pending_restore(s) is None
        assert reconcile_after_restore(db, NoCalls()) == []
    finally:
        db.dispose()


@pytest.fixture(autouse=True)
def _no_data_dir_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("MSPBILL_DATA_DIR", raising=False)
    yield
