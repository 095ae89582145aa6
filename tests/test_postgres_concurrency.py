"""Several workstations on one PostgreSQL database, against a real server started by the tests.

On PostgreSQL every write transaction first takes one office-wide advisory lock (mspbill.db.engine),
so writers take turns as they do on SQLite and each reads what the one before it committed.  The
thread tests below hold one workstation's transaction open at the moment that matters, wait until the
other is seen waiting (or done), then commit: without the lock each of them loses or doubles something
(a payment, an invoice number, an e-mail).

The process tests run real `mspbill --db URL batch run` processes, each made to believe it runs on its
own computer (socket.gethostname), sharing one sandbox "Stripe account" (its ledger file):

* two workstations start the month-end run at the same moment: one runs, the other is told which
  workstation's run is under way; every invoice is charged once, in the ledger and in the database;
* a workstation's run is killed mid-charging: another workstation waits while its heartbeat is fresh,
  takes over once it is stale, resolves the charges left in flight and charges the rest, once each.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from mspbill.batch.run import BatchBusyError, acquire_run
from mspbill.clients import ClientDraft, create_client
from mspbill.company import CompanyDraft, save_company
from mspbill.db.engine import Database
from mspbill.db.models import (
    AuditEntry,
    BatchRun,
    BatchRunStatus,
    ChargeAttempt,
    ChargeAttemptStatus,
    Invoice,
    InvoiceKind,
    OutboxMessage,
    OutboxStatus,
    Payment,
    utcnow,
)
from mspbill.invoicing import (
    ItemDraft,
    OneTimeDraft,
    create_credit_note,
    create_one_time_invoice,
    issue_invoices,
)
from mspbill.payments.gateway import ProcessorMode
from mspbill.validation import ValidationError
from tests.batch_office import (
    REPO_ROOT,
    Office,
    batch_command,
    build_office,
    child_env,
    ledger_check,
)
from tests.pg_server import PgServer

CLIENTS = 24
# `mspbill` as it runs on another computer: socket.gethostname() answers MSPBILL_TEST_HOST.
HOST_SHIM = ("import os, socket; socket.gethostname = lambda: os.environ['MSPBILL_TEST_HOST']; "
             "from mspbill.cli import main; raise SystemExit(main())")
DEADLINE_S = 60


def _until(condition: Callable[[], bool], what: str, deadline_s: float = DEADLINE_S) -> None:
    """Poll until `condition` holds (a safety deadline, not a timing assertion)."""
    end = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < end, f"gave up waiting for {what}"
        time.sleep(0.01)


def _lock_waiters(db: Database) -> int:
    """Sessions of this database waiting for a lock (the writers' lock or a row's)."""
    with db.engine.connect() as conn:
        return int(conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()")).scalar_one())


class Workstation(threading.Thread):
    """Another workstation's job on its own thread (its own connection); keeps its result or error."""

    def __init__(self, job: Callable[[], object]):
        super().__init__(daemon=True)
        self.job = job
        self.result: object = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.job()
        except BaseException as exc:  # noqa: BLE001 -- the test looks at it
            self.error = exc


def _while_holding(db: Database, hold: Callable[[Session], object], other: Workstation) -> object:
    """Run `hold(session)` in a write transaction; before committing it, start `other` and wait until it
    waits for a lock (or has finished without waiting: then nothing made it take its turn)."""
    with db.write_session() as s, s.begin():
        held = hold(s)
        s.flush()
        other.start()
        _until(lambda: _lock_waiters(db) >= 1 or not other.is_alive(), "the other workstation to wait or finish")
    other.join(DEADLINE_S)
    assert not other.is_alive()
    return held


# --- a small office on the test database -----------------------------------------------------------


def _office(db: Database, clients: int = 2, *, mail: bool = False) -> list[int]:
    from mspbill.mail.settings import MailSettingsDraft, save_mail_settings

    with db.write_session() as s, s.begin():
        save_company(s, CompanyDraft(name="Two Desks IT", currency="USD", invoice_number_pattern="INV-{n:05d}"))
        if mail:
            save_mail_settings(s, MailSettingsDraft(host="smtp.twodesks.invalid", port="587",
                                                    from_address="billing@twodesks.example"))
        return [create_client(s, ClientDraft(legal_name=f"Client {n}", billing_emails=f"ap{n}@c{n}.example")).id
                for n in range(clients)]


def _drafts(db: Database, client_ids: list[int], count: int) -> list[int]:
    with db.write_session() as s, s.begin():
        return [create_one_time_invoice(s, OneTimeDraft(
            client_id=client_ids[n % len(client_ids)], title=f"Project {n}",
            lines=[ItemDraft("Consulting", "1", f"{100 + n}.00", taxable=False)])).id for n in range(count)]


def _issue(db: Database, ids: list[int]) -> list[str]:
    with db.write_session() as s, s.begin():
        return issue_invoices(s, ids, dt.date.today())


# --- writers take turns --------------------------------------------------------------------------


def test_two_workstations_recording_payments_on_one_invoice_both_count(pg_db: Database) -> None:
    from mspbill.payments.manual import record_payment

    client_ids = _office(pg_db)
    [invoice_id] = _drafts(pg_db, client_ids, 1)   # 100.00
    _issue(pg_db, [invoice_id])
    today = dt.date.today()

    def second() -> object:
        with pg_db.write_session() as s, s.begin():
            return record_payment(s, invoice_id, "50.00", "wire", today=today).id

    other = Workstation(second)
    _while_holding(pg_db, lambda s: record_payment(s, invoice_id, "30.00", "check", today=today), other)
    assert other.error is None, other.error
    with pg_db.session() as s:
        inv = s.get(Invoice, invoice_id)
        assert inv is not None
        payments = list(s.scalars(select(Payment).where(Payment.invoice_id == invoice_id)))
        # Both payments count: the second read the first's (a lost update would leave 50.00 paid).
        assert sorted(p.amount_cents for p in payments) == [3000, 5000]
        assert inv.paid_cents == 8000 and inv.balance_cents == 2000


def test_two_workstations_issuing_the_same_drafts_number_them_once(pg_db: Database) -> None:
    client_ids = _office(pg_db)
    ids = _drafts(pg_db, client_ids, 4)
    other = Workstation(lambda: _issue(pg_db, ids))
    numbers = _while_holding(pg_db, lambda s: issue_invoices(s, ids, dt.date.today()), other)
    assert numbers == [f"INV-{n:05d}" for n in range(1, 5)]
    # The second workstation is told, and numbers nothing (no gap, no draft numbered twice).
    assert isinstance(other.error, ValidationError), other.error or other.result
    assert "already issued" in other.error.issues[0].message
    with pg_db.session() as s:
        assert sorted(n or 0 for n in s.scalars(select(Invoice.number_seq))) == [1, 2, 3, 4]
        issued = Counter(s.scalars(select(AuditEntry.entity_id).where(AuditEntry.action == "invoice.issued")))
        assert issued == Counter(ids)


def test_two_workstations_sending_the_outbox_send_each_email_once(pg_db: Database,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Every workstation's app sends the outbox now and then: one message is claimed by one of them."""
    from mspbill.mail import outbox

    client_ids = _office(pg_db, mail=True)
    [invoice_id] = _drafts(pg_db, client_ids, 1)
    _issue(pg_db, [invoice_id])
    with pg_db.write_session() as s, s.begin():
        message_id = outbox.queue_invoice_email(s, invoice_id)
    now = utcnow() + dt.timedelta(seconds=1)
    # Workstation A pauses inside its claim, after reading the message, until B has had its go.
    a_read, b_went = threading.Event(), threading.Event()
    real = outbox._claimable

    def claimable(m: OutboxMessage, when: dt.datetime, *, explicit: bool) -> bool:
        answer = real(m, when, explicit=explicit)
        if threading.current_thread().name == "ws-a":
            a_read.set()
            assert b_went.wait(DEADLINE_S)
        return answer

    monkeypatch.setattr(outbox, "_claimable", claimable)
    a = Workstation(lambda: outbox._claim(pg_db, message_id, now, False))
    a.name = "ws-a"
    b = Workstation(lambda: outbox._claim(pg_db, message_id, now, False))
    a.start()
    try:
        assert a_read.wait(DEADLINE_S)
        b.start()
        _until(lambda: _lock_waiters(pg_db) >= 1 or not b.is_alive(), "workstation B to wait or finish")
    finally:
        b_went.set()
    a.join(DEADLINE_S)
    b.join(DEADLINE_S)
    assert a.error is None and b.error is None, (a.error, b.error)
    claims = [w.result for w in (a, b) if w.result is not None]
    assert len(claims) == 1, "both workstations claimed the e-mail: it would be sent twice"
    with pg_db.session() as s:
        assert s.get(OutboxMessage, message_id).status is OutboxStatus.SENDING  # type: ignore[union-attr]


def test_invoice_and_credit_note_numbers_stay_gapless_with_many_issuers(pg_db: Database) -> None:
    client_ids = _office(pg_db, clients=3)
    threads, per_thread = 4, 6
    drafts = _drafts(pg_db, client_ids, threads * per_thread)
    start = threading.Barrier(threads + 1)
    today = dt.date.today()

    def issuer(mine: list[int]) -> list[str]:
        start.wait(DEADLINE_S)
        numbers: list[str] = []
        for invoice_id in mine:   # one transaction each: the most interleaving
            numbers += _issue(pg_db, [invoice_id])
            if invoice_id % 2:    # and a credit note on every other one, from the same desk
                with pg_db.write_session() as s, s.begin():
                    numbers.append(str(create_credit_note(s, invoice_id, "Goodwill", "1.00", today).number))
        return numbers

    workers = [Workstation(lambda i=i: issuer(drafts[i::threads])) for i in range(threads)]  # type: ignore[misc]
    for w in workers:
        w.start()
    start.wait(DEADLINE_S)
    for w in workers:
        w.join(DEADLINE_S)
    assert [w.error for w in workers] == [None] * threads
    with pg_db.session() as s:
        rows = list(s.execute(select(Invoice.kind, Invoice.number_seq, Invoice.number)))
    invoices = sorted(seq or 0 for kind, seq, _ in rows if kind is InvoiceKind.INVOICE)
    notes = sorted(seq or 0 for kind, seq, _ in rows if kind is InvoiceKind.CREDIT_NOTE)
    assert invoices == list(range(1, len(drafts) + 1))                          # unique, no gap
    assert notes == list(range(1, sum(1 for d in drafts if d % 2) + 1))
    said = sorted(n for w in workers for n in w.result)  # type: ignore[attr-defined]
    assert said == sorted(number or "" for _, _, number in rows)                  # each issued once, as told


# --- month-end runs from two workstations ---------------------------------------------------------


@pytest.fixture(scope="module")
def pg_office(pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Office, str]]:
    """A batch-ready office on a database of its own: the template each test's database is cloned from."""
    name = pg_server.new_database()
    try:
        office = build_office(tmp_path_factory.mktemp("pgoffice") / "office", clients=CLIENTS, over_cap=0,
                              db_url=pg_server.url(name))
        yield office, name
    finally:
        pg_server.drop_database(name)


@pytest.fixture
def office(pg_office: tuple[Office, str], pg_server: PgServer, tmp_path: Path) -> Iterator[Office]:
    template, template_name = pg_office
    name = pg_server.new_database(template=template_name)
    data_dir = tmp_path / "office"
    shutil.copytree(template.data_dir, data_dir)   # the sandbox ledger: one "Stripe account" for every desk
    try:
        yield replace(template, data_dir=data_dir, db_url=pg_server.url(name))
    finally:
        pg_server.drop_database(name)


def _on(host: str, office: Office, latency_ms: int = 30, *more: str) -> subprocess.Popen[str]:
    """`mspbill --db URL --data-dir D batch …` as workstation `host` runs it."""
    command = batch_command(office, *more) if more else batch_command(office)
    env = child_env({"MSPBILL_TEST_HOST": host, "MSPBILL_SANDBOX_LATENCY_MS": str(latency_ms)})
    return subprocess.Popen([sys.executable, "-c", HOST_SHIM, *command[3:]], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO_ROOT, stdin=subprocess.DEVNULL)


def _attempts(office: Office) -> list[ChargeAttempt]:
    db = office.open_db()
    try:
        with db.session() as s:
            rows = list(s.scalars(select(ChargeAttempt).order_by(ChargeAttempt.id)))
            s.expunge_all()
            return rows
    finally:
        db.dispose()


def _charged_once(office: Office) -> None:
    """The ledger and the database agree; every chargeable invoice charged (or debited) exactly once."""
    check = ledger_check(office)
    assert check.double_charges == [] and check.problems == [] and check.unbacked == [], check
    assert check.succeeded == len(office.client_ids("paid"))
    assert check.processing == len(office.client_ids("processing"))
    attempts = _attempts(office)
    assert [a.id for a in attempts if a.status in (ChargeAttemptStatus.PENDING, ChargeAttemptStatus.UNKNOWN)] == []
    took = Counter(a.invoice_id for a in attempts
                   if a.status in (ChargeAttemptStatus.SUCCEEDED, ChargeAttemptStatus.PROCESSING))
    assert set(took.values()) == {1}
    assert len(took) == len(office.client_ids("paid", "processing"))


def test_two_workstations_start_the_month_end_run_at_once(office: Office) -> None:
    procs = {host: _on(host, office) for host in ("front-desk", "back-office")}
    outputs = {host: p.communicate(timeout=180) for host, p in procs.items()}
    codes = {host: p.returncode for host, p in procs.items()}
    db = office.open_db()
    try:
        with db.session() as s:
            runs = list(s.scalars(select(BatchRun)))
    finally:
        db.dispose()
    if sorted(codes.values()) == [0, 3]:
        waited = next(h for h, c in codes.items() if c == 3)
        ran = next(h for h, c in codes.items() if c == 0)
        err = outputs[waited][1]
        # Told which workstation's run is under way, and when it would be taken over.
        assert f"already under way on {ran}" in err and "takes over 180 seconds" in err, err
        assert "Traceback" not in err
        assert len(runs) == 1 and runs[0].host == ran and runs[0].status is BatchRunStatus.FINISHED
        print(f"\ntwo workstations at once: {ran} ran, {waited} was told: {err.strip().splitlines()[-1]}")
    else:
        # Only if the second started after the first had finished: it then found nothing left to charge.
        assert list(codes.values()) == [0, 0], outputs
        assert len({a.batch_run_id for a in _attempts(office)}) == 1
    _charged_once(office)


def test_a_killed_workstations_run_is_taken_over_only_when_its_heartbeat_is_stale(office: Office) -> None:
    db = office.open_db()
    try:
        # The first workstation's run, slowed by the processor, is killed while it charges.
        first = _on("front-desk", office, 120)
        try:
            def attempts_written() -> bool:
                assert first.poll() is None, first.communicate()
                with db.session() as s:
                    return len(s.scalars(select(ChargeAttempt.id)).all()) >= 6
            _until(attempts_written, "the first run to start charging")
            first.send_signal(signal.SIGKILL)
            first.wait(DEADLINE_S)
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
        with db.session() as s:
            killed = s.scalars(select(BatchRun)).one()
            in_flight = {a.id for a in s.scalars(select(ChargeAttempt).where(
                ChargeAttempt.status.in_([ChargeAttemptStatus.PENDING, ChargeAttemptStatus.UNKNOWN])))}
        assert killed.status is BatchRunStatus.RUNNING and killed.host == "front-desk"

        # Another workstation cannot tell a dead run from a live one whose heartbeat is fresh: it waits.
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(socket, "gethostname", lambda: "back-office")
            with pytest.raises(BatchBusyError, match="already under way on front-desk"):
                acquire_run(db, office.month, ProcessorMode.SANDBOX)

        # Three minutes on, the heartbeat is stale: the next run takes over.
        with db.write_session() as s, s.begin():
            s.execute(update(BatchRun).where(BatchRun.id == killed.id)
                      .values(heartbeat_at=utcnow() - dt.timedelta(minutes=5)))
        third = _on("back-office", office)
        out, err = third.communicate(timeout=180)
        assert third.returncode in (0, 1), err
        report = json.loads(out)
        assert report["status"] == "finished" and report["resumed_run_id"] == killed.id, report
        with db.session() as s:
            assert s.get(BatchRun, killed.id).status is BatchRunStatus.INTERRUPTED  # type: ignore[union-attr]
            resolved = {a.id: a.status for a in s.scalars(select(ChargeAttempt).where(
                ChargeAttempt.id.in_(in_flight)))} if in_flight else {}
    finally:
        db.dispose()
    # What the killed run had in flight was found out (at the processor, by its key), not charged again.
    assert all(status not in (ChargeAttemptStatus.PENDING, ChargeAttemptStatus.UNKNOWN)
               for status in resolved.values())
    _charged_once(office)


# --- the server goes away; a newer schema; a writer that waits too long ----------------------------


def test_a_server_that_goes_away_mid_run_is_said_plainly_and_nothing_is_charged_twice(
        office: Office, pg_server: PgServer) -> None:
    db = office.open_db()
    stopped = False
    try:
        # A slow processor: charges are in flight when the server stops (as a crash: "immediate").
        run = _on("front-desk", office, 400)
        try:
            def charging() -> bool:
                assert run.poll() is None, run.communicate()
                with db.session() as s:
                    return len(s.scalars(select(ChargeAttempt.id)).all()) >= 4
            _until(charging, "the run to start charging")
            db.dispose()
            pg_server.stop("immediate")
            stopped = True
            out, err = run.communicate(timeout=120)
        finally:
            if run.poll() is None:
                run.kill()
                run.communicate()
        # One sentence a person can act on; no traceback, no JSON document claiming a result.
        assert run.returncode == 1, (out, err)
        assert "Traceback" not in err and out == "", (out, err)
        last = err.strip().splitlines()[-1]
        assert last.startswith(f"mspbill: The connection to the database server at {pg_server.host}:"
                               f"{pg_server.port} was lost"), err
        assert "was not saved; what was saved before is safe" in last
    finally:
        if stopped:
            pg_server.start()
    try:
        with db.session() as s:
            invoices = s.scalars(select(Invoice.number_seq).where(Invoice.number_seq.is_not(None))).all()
            in_flight = s.scalars(select(ChargeAttempt.id).where(
                ChargeAttempt.status.in_([ChargeAttemptStatus.PENDING, ChargeAttemptStatus.UNKNOWN]))).all()
        # Nothing half-saved: the month's invoices were issued in one transaction, numbered without a gap.
        assert sorted(n or 0 for n in invoices) == list(range(1, len(office.clients) + 1))
        # Back up: the next run takes over the dead one, finds out about the charges it left in flight (by
        # their keys, at the processor) and charges what is left.
        again = _on("front-desk", office, 0)
        out, err = again.communicate(timeout=180)
        assert again.returncode in (0, 1), err
        assert json.loads(out)["status"] == "finished", out
    finally:
        db.dispose()
    _charged_once(office)
    print(f"\nserver gone mid-run: {len(in_flight)} charge(s) in flight when it stopped; said: {last}")


def _snapshot(db: Database) -> tuple[object, ...]:
    with db.engine.connect() as conn:
        return (conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all(),
                conn.execute(text("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"))
                .scalar_one(),
                conn.execute(text("SELECT count(*) FROM audit_log")).scalar_one())


def test_a_database_of_a_newer_schema_is_refused_and_left_alone(pg_url: str, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = Database(pg_url)
    try:
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = 'f00dfeedbeef'"))
        before = _snapshot(db)
        done = cli("--db", pg_url, "--data-dir", str(tmp_path / "d"), "clients", "list")
        assert done.returncode == 2, done.stderr
        assert "written by a newer version of mspbill (schema f00dfeedbeef)" in done.stderr
        assert "Traceback" not in done.stderr and done.stdout == ""
        assert _snapshot(db) == before
    finally:
        db.dispose()


def test_a_writer_kept_waiting_too_long_is_told_and_writes_nothing(
        pg_db: Database, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from mspbill import cli
    from mspbill.db import engine
    from mspbill.db.server import explain
    from mspbill.payments.manual import record_payment

    client_ids = _office(pg_db)
    [invoice_id] = _drafts(pg_db, client_ids, 1)
    [number] = _issue(pg_db, [invoice_id])
    monkeypatch.setattr(engine, "PG_LOCK_TIMEOUT_MS", 200)
    # Another workstation's write transaction stays open (a long import, say) while this one writes.
    with pg_db.write_session() as holder, holder.begin():
        holder.execute(text("SELECT 1"))
        with pytest.raises(Exception) as caught, pg_db.write_session() as s, s.begin():
            record_payment(s, invoice_id, "10.00", "check", today=dt.date.today())
        sentence = explain(caught.value, pg_url)
        assert sentence is not None and sentence.startswith("Another workstation kept the office database busy")
        # The command line says the same, in one line, and exits 1.
        code = cli.main(["--db", pg_url, "--data-dir", str(tmp_path / "d"), "payments", "record", number,
                         "--amount", "10.00", "--method", "check"])
        err = capsys.readouterr().err
        assert code == 1 and err.strip() == f"mspbill: {sentence}", err
    with pg_db.session() as s:
        assert s.scalars(select(Payment)).all() == []
        assert s.get(Invoice, invoice_id).paid_cents == 0  # type: ignore[union-attr]
