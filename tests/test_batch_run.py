"""The month-end run (mspbill.batch.run), in-process, on a real SQLite file and the sandbox
processor: preview and run agree, a second run does nothing, the backup comes first, mail is
queued, declines are followed up, and every fault (429, 5xx, timeouts before and after the work,
a revoked key, Cancel, a locked database, a run already under way or dead, a slept attempt)
ends in a clear message and records that match the processor's ledger.

The office is built by tests/test_batch_plan.py's helpers."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from billing_helpers import generate, issue
from sqlalchemy import select, update
from test_batch_plan import MONTH, TODAY, Office, make_office

from mspbill.batch import run as run_module
from mspbill.batch.emails import KIND_RECEIPT
from mspbill.batch.plan import LeftOutReason, approve_over_cap
from mspbill.batch.run import (
    HEARTBEAT_STALE,
    SEND_DEADLINE,
    BatchBusyError,
    BatchProgress,
    BatchReport,
    RunOptions,
    _Charger,
    _Tally,
    acquire_run,
    batch_sync,
    list_runs,
    run_batch,
    run_report,
)
from mspbill.batch.throttle import TokenBucket
from mspbill.db.engine import Database
from mspbill.db.models import (
    BatchRun,
    BatchRunStatus,
    ChargeAttempt,
    ChargeAttemptStatus,
    Client,
    Invoice,
    InvoiceStatus,
    OutboxMessage,
    Payment,
    PaymentMethod,
    SavedPaymentMethod,
    SetupLink,
    SetupLinkStatus,
    utcnow,
)
from mspbill.db.schema import DatabaseOpenError
from mspbill.mail.outbox import KIND_INVOICE
from mspbill.payments.charges import start_attempt, sync_charges
from mspbill.payments.gateway import (
    AuthenticationFailed,
    ChargeRequest,
    ChargeResult,
    ChargeStatus,
    ProcessorMode,
)
from mspbill.payments.methods import KIND_SETUP_LINK
from mspbill.payments.processor import PaymentSettingsDraft, save_settings
from mspbill.payments.sandbox import SandboxConfig, SandboxGateway
from mspbill.periods import Month
from mspbill.validation import ValidationError

NO_GATEWAY = object()


def run(office: Office, gateway: Any = None, *, progress: Callable[[BatchProgress], None] | None = None,
        cancel: threading.Event | None = None, backup_dir: Path | None = None, month: Month = MONTH,
        workers: int = 4, **options: Any) -> BatchReport:
    """run_batch for the office: fast (1,000 requests a second, no pause before the final pass)."""
    gw = None if gateway is NO_GATEWAY else (gateway or office.sandbox)
    opts = RunOptions(today=TODAY, rate_per_second=options.pop("rate_per_second", 1000.0), workers=workers,
                      resolve_pause=0, **options)
    return run_batch(office.db, gw, month, backup_dir=backup_dir or office.backup_dir, progress=progress,
                     cancel=cancel, options=opts)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SandboxGateway]:
    gateway = SandboxGateway(tmp_path / "sandbox-processor.sqlite3")
    yield gateway
    gateway.close()


@pytest.fixture
def office(db: Database, sandbox: SandboxGateway) -> Office:
    return make_office(db, sandbox)


def configure_mail(db: Database) -> None:
    from mspbill.mail.settings import MailSettingsDraft, save_mail_settings

    with db.write_session() as s, s.begin():
        save_mail_settings(s, MailSettingsDraft(host="127.0.0.1", port="2525", security="none",
                                                from_address="billing@acme.example"))


def ledger_problems(db: Database, sandbox: SandboxGateway) -> list[str]:
    """Every invoice charged at most once by the processor, and the office's records exactly the ledger's."""
    ledger = sandbox.ledger_charges()
    problems = []
    taken = Counter(i.metadata["mspbill_invoice_id"] for i in ledger
                    if i.status in (ChargeStatus.SUCCEEDED, ChargeStatus.PROCESSING))
    problems += [f"invoice {inv} charged {n} times" for inv, n in taken.items() if n > 1]
    with db.session() as s:
        payments = {p.processor_intent_id: (p.invoice_id, p.amount_cents) for p in s.scalars(
            select(Payment).where(Payment.processor_intent_id.is_not(None)))}
        attempts = {a.idempotency_key: a for a in s.scalars(select(ChargeAttempt))}
        local_status = {a.intent_id: a.status for a in attempts.values() if a.intent_id}
    succeeded = {i.intent_id: (int(i.metadata["mspbill_invoice_id"]), i.amount_cents) for i in ledger
                 if i.status is ChargeStatus.SUCCEEDED}
    if payments != succeeded:
        problems.append(f"payments {payments} != ledger {succeeded}")
    expected = {ChargeStatus.SUCCEEDED: ChargeAttemptStatus.SUCCEEDED, ChargeStatus.PROCESSING:
                ChargeAttemptStatus.PROCESSING, ChargeStatus.DECLINED: ChargeAttemptStatus.DECLINED,
                ChargeStatus.REQUIRES_ACTION: ChargeAttemptStatus.DECLINED}
    for intent in ledger:
        attempt = attempts.get(intent.metadata["mspbill_attempt_key"])
        if attempt is None or attempt.intent_id != intent.intent_id or attempt.status is not expected[intent.status]:
            problems.append(f"{intent.intent_id} ({intent.status.value}) is recorded as "
                            f"{attempt and (attempt.intent_id, attempt.status.value)}")
    for intent_id, status in local_status.items():
        if status in (ChargeAttemptStatus.SUCCEEDED, ChargeAttemptStatus.PROCESSING) and intent_id not in {
                i.intent_id for i in ledger}:
            problems.append(f"{intent_id} is {status.value} here but unknown to the processor")
    return problems


def invoices_charged(sandbox: SandboxGateway) -> Counter[int]:
    return Counter(int(i.metadata["mspbill_invoice_id"]) for i in sandbox.ledger_charges())


def good_clients(office: Office, n: int, prefix: str = "Client") -> list[int]:
    tokens = ("pm_card_visa", "pm_card_mastercard", "pm_card_amex")
    return [office.client(f"{prefix} {i:02d}", tokens[i % 3], amount=f"{100 + i}.{i:02d}") for i in range(n)]


def attempts_of(db: Database) -> list[ChargeAttempt]:
    with db.session() as s:
        return list(s.scalars(select(ChargeAttempt).order_by(ChargeAttempt.id)))


def outbox(db: Database) -> list[OutboxMessage]:
    with db.session() as s:
        return list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def run_row(db: Database, run_id: int) -> BatchRun:
    with db.session() as s:
        row = s.get(BatchRun, run_id)
        assert row is not None
        return row


def issued_count(db: Database) -> int:
    with db.session() as s:
        return len(list(s.scalars(select(Invoice.id).where(Invoice.number.is_not(None)))))


# --- a whole run ---------------------------------------------------------------------------


@pytest.fixture
def mixed(office: Office) -> dict[str, int]:
    """An office with one of everything the run meets."""
    from mspbill.generation import generate_period

    ids = {
        "good": office.client("Alpha Accounting", "pm_card_visa", amount="120.00"),
        "good2": office.client("Beta Builders", "pm_card_mastercard", amount="230.50"),
        "ach": office.client("Bank Debit Bakery", "pm_usBankAccount_success", amount="99.00"),
        "soft": office.client("Tight Budget Co", "pm_card_visa_chargeDeclinedInsufficientFunds", amount="75.00"),
        "hard": office.client("Lost Card Legal", "pm_card_visa_chargeDeclinedLostCard", amount="60.00"),
        "bare": office.client("Bare Metal", None, amount="50.00"),
        "cap": office.client("Big Spender", "pm_card_visa", amount="900.00", cap="500.00"),
        "off": office.client("Abacus Pays By Check", "pm_card_visa", autopay=False, amount="40.00"),
        "credit": office.client("Part Paid Partners", "pm_card_visa", amount="100.00"),
        "order": office.client("Order Matters", "pm_card_visa", amount="100.00"),
    }
    office.open_invoice(ids["good"], "80.00")            # an earlier invoice, charged with the new one
    office.give_credit(ids["credit"], 3000)
    # A draft of this month waits to be issued; another agreement of the same client is new.
    with office.db.write_session() as s, s.begin():
        generate_period(s, MONTH)
    from mspbill.agreements import AgreementDraft, LineDraft, create_agreement

    with office.db.write_session() as s, s.begin():
        create_agreement(s, AgreementDraft(client_id=ids["order"], name="Zulu Backup", start_date=MONTH.first_day,
                                           lines=[LineDraft("Cloud backup", "1", "60.00", taxable=False)]))
    office.give_credit(ids["order"], 5000)
    return ids


def test_the_run_charges_exactly_what_the_preview_said(office: Office, mixed: dict[str, int]) -> None:
    preview = office.preview()
    report = run(office)
    assert report.status is BatchRunStatus.FINISHED and report.message == ""
    assert report.issued == len(preview.invoices)
    assert report.generated == len([i for i in preview.invoices if i.draft_id is None]) == 1
    assert report.not_started == 0 and report.problems[:0] == []

    planned = sorted((c.target.client_id, c.target.amount_cents) for c in preview.charges)
    charged = sorted((ln.client_id, ln.amount_cents) for ln in report.lines)
    assert planned == charged
    assert not report.by_status("not_charged") and not report.by_status("unknown")
    status = {ln.client_id: ln.status for ln in report.lines if ln.amount_cents != 8000}
    assert status[mixed["good"]] == status[mixed["good2"]] == status[mixed["credit"]] == "succeeded"
    assert status[mixed["ach"]] == "processing"
    assert status[mixed["soft"]] == "failed" and status[mixed["hard"]] == "failed"
    [hard] = [ln for ln in report.lines if ln.client_id == mixed["hard"]]
    assert hard.hard and hard.next_retry_on is None
    [credit] = [ln for ln in report.lines if ln.client_id == mixed["credit"]]
    assert credit.amount_cents == 7000

    # The run leaves out the same autopay invoices as the preview (not the ones it never charges
    # by rule: autopay off, or covered by credit and so paid on issue).
    expected = {(lo.target.client_id, lo.reason) for lo in preview.left_out
                if lo.reason not in (LeftOutReason.AUTOPAY_OFF, LeftOutReason.PAID_BY_CREDIT)}
    assert {(lo.target.client_id, lo.reason) for lo in report.left_out} == expected
    assert ledger_problems(office.db, office.sandbox) == []
    assert report.collected() == {"USD": sum(ln.amount_cents for ln in report.by_status("succeeded"))}
    assert report.headline().startswith(f"The {MONTH.label} run finished: {report.issued} invoice(s) issued, "
                                        f"{len(report.by_status('succeeded'))} charged")

    # Read back from the database, the account is the same.
    with office.db.session() as s:
        again = run_report(s, report.run_id)
        rows = list_runs(s)
    assert again.lines == report.lines and again.status is BatchRunStatus.FINISHED
    assert rows[0].id == report.run_id and rows[0].succeeded == len(report.by_status("succeeded"))


def test_a_second_run_does_nothing(office: Office, mixed: dict[str, int]) -> None:
    first = run(office)
    charged = invoices_charged(office.sandbox)
    assert office.preview().nothing_to_do
    second = run(office)
    assert second.status is BatchRunStatus.FINISHED
    assert (second.issued, second.generated, second.lines, second.not_started) == (0, 0, [], 0)
    assert invoices_charged(office.sandbox) == charged
    assert first.run_id != second.run_id
    assert ledger_problems(office.db, office.sandbox) == []


@pytest.mark.sqlite_only('the backup before a run is of the SQLite file (a server keeps its own)')
def test_a_backup_is_written_before_anything_changes(office: Office) -> None:
    good_clients(office, 2)
    report = run(office)
    backup = Path(report.backup_path)
    assert backup.exists() and backup.parent == office.backup_dir and f"before-batch-{MONTH}" in backup.name
    assert run_row(office.db, report.run_id).backup_path == report.backup_path
    with sqlite3.connect(backup) as conn:
        issued_then = conn.execute("SELECT count(*) FROM invoices WHERE number IS NOT NULL").fetchone()[0]
        attempts_then = conn.execute("SELECT count(*) FROM charge_attempts").fetchone()[0]
    assert (issued_then, attempts_then) == (0, 0)
    assert issued_count(office.db) == 2


@pytest.mark.sqlite_only('the backup before a run is of the SQLite file')
def test_a_backup_that_cannot_be_written_stops_the_run_before_anything(office: Office, tmp_path: Path) -> None:
    good_clients(office, 1)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the backup folder should be")
    with pytest.raises(ValidationError) as caught:
        run(office, backup_dir=blocker)
    assert caught.value.issues[0].message.startswith(f"The backup before the run could not be written to {blocker}")
    assert "nothing was done" in caught.value.issues[0].message
    with office.db.session() as s:
        [row] = s.scalars(select(BatchRun)).all()
    assert row.status is BatchRunStatus.STOPPED and "could not be written" in row.message
    assert issued_count(office.db) == 0 and office.sandbox.ledger_charges() == []
    assert run(office).status is BatchRunStatus.FINISHED  # the lock was given back


def test_a_bad_period_is_refused_before_the_lock(office: Office) -> None:
    with pytest.raises(ValidationError, match="too far ahead"):
        run(office, month=MONTH.shift(2))
    with office.db.session() as s:
        assert s.scalars(select(BatchRun)).all() == []


# --- mail and follow-up ---------------------------------------------------------------------


def test_receipts_invoices_and_a_new_setup_link_are_queued_when_mail_is_set_up(office: Office, db: Database) -> None:
    configure_mail(db)
    good = office.client("Alpha Accounting", "pm_card_visa", amount="120.00")
    soft = office.client("Tight Budget Co", "pm_card_visa_chargeDeclinedInsufficientFunds")
    hard = office.client("Lost Card Legal", "pm_card_visa_chargeDeclinedLostCard")
    off = office.client("Abacus Pays By Check", None, autopay=False)
    report = run(office)
    assert (report.mail.receipts, report.mail.invoices, report.mail.not_configured) == (1, 3, False)
    assert report.setup_links_sent == ["Lost Card Legal"] and report.problems == []
    with db.session() as s:
        numbers = {i.client_id: i.number for i in s.scalars(select(Invoice))}
        hard_method = s.scalars(select(SavedPaymentMethod).where(SavedPaymentMethod.client_id == hard)).one()
        links = list(s.scalars(select(SetupLink).where(SetupLink.client_id == hard)))
    messages = {(m.kind, m.client_id) for m in outbox(db)}
    assert messages == {(KIND_RECEIPT, good), (KIND_INVOICE, soft), (KIND_INVOICE, hard), (KIND_INVOICE, off),
                        (KIND_SETUP_LINK, hard)}
    [receipt] = [m for m in outbox(db) if m.kind == KIND_RECEIPT]
    assert receipt.subject == f"Receipt for {numbers[good]}: $120.00 paid"
    assert receipt.attach_invoice_pdf and receipt.to_addrs == "ap@alpha.example"
    assert "charged to your Visa ending 4242" in receipt.body and "paid in full" in receipt.body
    # The card declined for good is flagged, and the client has a fresh link to give a new one.
    assert hard_method.hard_declined_at is not None and "lost_card" in hard_method.hard_decline_reason
    assert [link.status for link in links] == [SetupLinkStatus.OPEN]
    # Nothing is queued twice by a second run.
    run(office)
    assert len(outbox(db)) == 5


def test_nothing_is_queued_when_mail_is_not_set_up(office: Office, db: Database) -> None:
    office.client("Alpha Accounting", "pm_card_visa")
    hard = office.client("Lost Card Legal", "pm_card_visa_chargeDeclinedLostCard")
    report = run(office)
    assert report.mail.not_configured and (report.mail.receipts, report.mail.invoices) == (0, 0)
    assert outbox(db) == []
    # The link is made all the same; the office is told it was not e-mailed.
    assert report.setup_links_sent == []
    [problem] = report.problems
    assert problem.startswith("New setup link for Lost Card Legal: created, not e-mailed — ")
    with db.session() as s:
        assert s.scalars(select(SetupLink.status).where(SetupLink.client_id == hard)).all() == [SetupLinkStatus.OPEN]
    with db.session() as s:
        assert run_report(s, report.run_id).mail.not_configured


def test_a_soft_decline_is_retried_three_days_after_it(office: Office) -> None:
    office.client("Tight Budget Co", "pm_card_visa_chargeDeclinedInsufficientFunds")
    report = run(office)
    [line] = report.lines
    [attempt] = attempts_of(office.db)
    assert attempt.resolved_at is not None
    assert (line.status, line.hard, line.next_retry_on) == ("failed", False, attempt.resolved_at.date()
                                                             + dt.timedelta(days=3))
    assert "insufficient funds" in line.message.lower()
    assert "1 declined" in report.headline()


def test_approved_invoices_above_the_cap_are_charged(office: Office, db: Database) -> None:
    planned = office.client("Big Spender", "pm_card_visa", amount="900.00", cap="500.00")
    earlier = office.client("Bigger Spender", "pm_card_visa", amount=None, cap="500.00")
    old = office.open_invoice(earlier, "750.00")
    preview = office.preview()
    assert {lo.reason for lo in preview.left_out} == {LeftOutReason.OVER_CAP}
    with db.write_session() as s, s.begin():
        for lo in preview.left_out:
            approve_over_cap(s, lo.target)
    report = run(office)
    assert sorted((ln.client_id, ln.amount_cents, ln.status) for ln in report.lines) == sorted(
        [(planned, 90000, "succeeded"), (earlier, 75000, "succeeded")])
    with db.session() as s:
        paid = s.get(Invoice, old)
        assert paid is not None and paid.status is InvoiceStatus.PAID
    assert report.left_out == []


def test_without_a_processor_the_invoices_are_issued_and_nothing_charged(office: Office, db: Database) -> None:
    configure_mail(db)
    cid = office.client("Alpha Accounting", "pm_card_visa")
    with db.write_session() as s, s.begin():
        save_settings(s, PaymentSettingsDraft("none"))
    report = run(office, NO_GATEWAY)
    assert report.status is BatchRunStatus.FINISHED and report.mode is None and report.issued == 1
    assert [(lo.target.client_id, lo.reason) for lo in report.left_out] == [(cid, LeftOutReason.NO_PROCESSOR)]
    assert report.mail.invoices == 1 and office.sandbox.ledger_charges() == []


# --- the processor's faults ----------------------------------------------------------------


def test_429s_slow_the_bucket_and_the_charges_still_go_through(office: Office, monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    slowed: list[float] = []
    real_slow_down = TokenBucket.slow_down

    def spy(self: TokenBucket, seconds: float = 10.0) -> None:
        real_slow_down(self, seconds)
        slowed.append(self.rate)

    monkeypatch.setattr(TokenBucket, "slow_down", spy)
    good_clients(office, 4)
    office.sandbox.inject_failure("charge", "rate_limit", count=3)
    report = run(office, rate_per_second=40.0, workers=4)
    assert [ln.status for ln in report.lines] == ["succeeded"] * 4
    assert len(slowed) == 3 and min(slowed) < 40.0  # each 429 halved the rate
    assert sorted(invoices_charged(office.sandbox).values()) == [1] * 4
    assert ledger_problems(office.db, office.sandbox) == []


@pytest.mark.parametrize("fault", ["timeout_after", "server_error", "timeout_before"])
def test_an_unknown_outcome_is_found_out_in_the_same_run_and_charged_once(office: Office, fault: str) -> None:
    good_clients(office, 5)
    office.sandbox.inject_failure("charge", fault, count=2)
    snapshots: list[BatchProgress] = []
    report = run(office, progress=snapshots.append)
    charging = [p for p in snapshots if p.stage == "charging"]
    assert charging[-1].unknown == 2  # two charges came back without an answer…
    assert "resolving-new" in {p.stage for p in snapshots}
    # … and the final pass found out: made after the work (found by its key) or never made (sent again
    # with the same key): either way once.
    assert [ln.status for ln in report.lines] == ["succeeded"] * 5
    assert sorted(invoices_charged(office.sandbox).values()) == [1] * 5
    assert len(attempts_of(office.db)) == 5
    assert ledger_problems(office.db, office.sandbox) == []


def test_a_processor_failing_again_and_again_stops_the_run_and_a_later_run_finishes(office: Office) -> None:
    good_clients(office, 10)
    office.sandbox.inject_failure("charge", "timeout_before", count=30)
    report = run(office, workers=1)
    assert report.status is BatchRunStatus.STOPPED
    assert report.message.startswith("The processor failed 8 charges in a row")
    assert report.not_started == 2 and len(report.by_status("unknown")) == 8
    assert office.sandbox.ledger_charges() == []
    office.sandbox.clear_injected_failures()
    later = run(office)
    assert later.status is BatchRunStatus.FINISHED
    assert sorted(invoices_charged(office.sandbox).values()) == [1] * 10
    assert len(attempts_of(office.db)) == 10  # the 8 unknown ones were sent again with their own keys
    assert ledger_problems(office.db, office.sandbox) == []


class RevokedKey:
    """The real sandbox until the office's key is revoked at the processor, after `good` charges:
    from then on every call is refused with a 401, as Stripe answers a rolled key."""

    MESSAGE = "The processor refused the secret key (it was revoked or rolled)."

    def __init__(self, inner: SandboxGateway, good: int) -> None:
        self.inner, self.left, self.revoked = inner, good, False
        self.lock = threading.Lock()
        self.refused = 0

    @property
    def mode(self) -> ProcessorMode:
        return self.inner.mode

    @property
    def config(self) -> SandboxConfig:
        return self.inner.config

    def _refuse(self) -> None:
        self.refused += 1
        raise AuthenticationFailed(self.MESSAGE, code="invalid_api_key")

    def charge(self, request: ChargeRequest) -> ChargeResult:
        with self.lock:
            self.revoked = self.revoked or self.left <= 0
            self.left -= 1
        if self.revoked:
            self._refuse()
        return self.inner.charge(request)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.revoked:
                self._refuse()
            return attr(*args, **kwargs)

        return call


def test_a_key_revoked_mid_run_stops_it_and_a_later_run_resumes(office: Office) -> None:
    good_clients(office, 6)
    revoked = RevokedKey(office.sandbox, good=3)
    report = run(office, revoked, workers=1)
    assert report.status is BatchRunStatus.STOPPED
    assert report.message == (f"The processor refused the key: {RevokedKey.MESSAGE} The run stopped; nothing more "
                              "was charged. Fix the key in Settings → Payments and run again.")
    counts = report.counts()
    assert (counts["succeeded"], counts["not_charged"], counts["not_started"]) == (3, 1, 2)
    assert revoked.refused == 1  # nothing more was even tried
    assert len(office.sandbox.ledger_charges()) == 3
    assert run_row(office.db, report.run_id).message == report.message
    later = run(office)
    assert later.status is BatchRunStatus.FINISHED and len(later.by_status("succeeded")) == 3
    assert sorted(invoices_charged(office.sandbox).values()) == [1] * 6
    assert ledger_problems(office.db, office.sandbox) == []


# --- Cancel ---------------------------------------------------------------------------------


def test_cancel_stops_new_charges_and_a_later_run_charges_the_rest(office: Office) -> None:
    good_clients(office, 8)
    cancel = threading.Event()

    def progress(p: BatchProgress) -> None:
        if p.stage == "charging" and p.done >= 3:
            cancel.set()

    report = run(office, progress=progress, cancel=cancel, workers=1)
    assert report.status is BatchRunStatus.CANCELLED
    assert report.message == ("Cancelled: the charges in flight finished and were recorded; 5 were not started. "
                              "Run again to charge them.")
    assert (len(report.by_status("succeeded")), report.not_started) == (3, 5)
    assert "5 not started" in report.headline()
    assert len(office.sandbox.ledger_charges()) == 3
    later = run(office)
    assert later.status is BatchRunStatus.FINISHED and len(later.by_status("succeeded")) == 5
    assert sorted(invoices_charged(office.sandbox).values()) == [1] * 8
    assert ledger_problems(office.db, office.sandbox) == []


def test_cancel_with_charges_in_flight_records_every_one_of_them(office: Office, tmp_path: Path) -> None:
    good_clients(office, 12)
    slow = SandboxGateway(office.sandbox.ledger_path, SandboxConfig(latency_seconds=0.05))
    cancel = threading.Event()

    def progress(p: BatchProgress) -> None:
        if p.stage == "charging" and p.done >= 2:
            cancel.set()

    report = run(office, slow, progress=progress, cancel=cancel, workers=4)
    assert report.status is BatchRunStatus.CANCELLED
    charged = len(report.lines)
    assert charged >= 2 and charged + report.not_started == 12
    assert {a.status for a in attempts_of(office.db)} == {ChargeAttemptStatus.SUCCEEDED}
    assert len(office.sandbox.ledger_charges()) == charged
    assert ledger_problems(office.db, office.sandbox) == []


def test_cancel_before_the_charges_counts_them_all_as_not_started(office: Office) -> None:
    good_clients(office, 3)
    cancel = threading.Event()

    def progress(p: BatchProgress) -> None:
        if p.stage == "invoicing":
            cancel.set()

    report = run(office, progress=progress, cancel=cancel)
    assert report.status is BatchRunStatus.CANCELLED and report.issued == 3
    assert (report.lines, report.not_started) == ([], 3)
    assert "3 were not started" in report.message


# --- the database locked by another program ------------------------------------------------------


def _lock(db_path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(db_path), isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("BEGIN IMMEDIATE")
    return conn


@pytest.mark.sqlite_only("SQLite's file lock")
def test_a_database_locked_when_the_run_starts_is_said_plainly(office: Office, db_path: Path) -> None:
    good_clients(office, 2)
    holder = _lock(db_path)  # another workstation's long write (a backup tool, an import)
    try:
        with pytest.raises(DatabaseOpenError) as caught:
            run(office)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "stayed locked by another program or workstation" in str(caught.value)
    assert "the month-end run did not start and nothing changed" in str(caught.value)
    with office.db.session() as s:
        assert s.scalars(select(BatchRun)).all() == []
    assert issued_count(office.db) == 0 and office.sandbox.ledger_charges() == []
    assert run(office).status is BatchRunStatus.FINISHED


@pytest.fixture
def short_busy_timeout(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """A one-second SQLite busy timeout (5 s in the app) for the tests that wait it out twice."""
    from mspbill.db import engine as engine_module

    monkeypatch.setattr(engine_module, "SQLITE_BUSY_TIMEOUT_MS", 1000)
    db.engine.dispose()  # new connections take the shorter timeout


@pytest.mark.sqlite_only("SQLite's file lock")
def test_a_database_locked_mid_run_stops_it_cleanly(office: Office, db_path: Path, short_busy_timeout: None,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    good_clients(office, 3)
    held: list[sqlite3.Connection] = []

    def progress(p: BatchProgress) -> None:
        if p.stage == "invoicing" and not held:
            held.append(_lock(db_path))

    real_finish = run_module._finish

    def finish(*args: Any, **kwargs: Any) -> None:
        # The other program lets go just as the run records how it ended.
        for conn in held:
            conn.execute("ROLLBACK")
            conn.close()
        real_finish(*args, **kwargs)

    monkeypatch.setattr(run_module, "_finish", finish)
    with pytest.raises(DatabaseOpenError) as caught:
        run(office, progress=progress)
    assert "stayed locked by another program or workstation; the run stopped" in str(caught.value)
    with office.db.session() as s:
        [row] = s.scalars(select(BatchRun)).all()
    assert row.status is BatchRunStatus.STOPPED and row.message == str(caught.value)
    assert issued_count(office.db) == 0 and office.sandbox.ledger_charges() == []
    monkeypatch.setattr(run_module, "_finish", real_finish)
    assert len(run(office).by_status("succeeded")) == 3


@pytest.mark.sqlite_only("SQLite's file lock")
def test_a_run_that_could_not_record_its_end_does_not_hold_the_lock(office: Office, db_path: Path,
                                                                    short_busy_timeout: None) -> None:
    """The database stayed locked past the end of the run: its row still says `running`.  The run is
    over, so the next one (same process: the app's window) takes over at once instead of waiting."""
    good_clients(office, 2)
    held: list[sqlite3.Connection] = []

    def progress(p: BatchProgress) -> None:
        if p.stage == "invoicing" and not held:
            held.append(_lock(db_path))

    with pytest.raises(DatabaseOpenError):
        run(office, progress=progress)
    held[0].execute("ROLLBACK")
    held[0].close()
    with office.db.session() as s:
        [stuck] = s.scalars(select(BatchRun)).all()
    assert stuck.status is BatchRunStatus.RUNNING
    report = run(office)
    assert report.resumed_run_id == stuck.id and report.status is BatchRunStatus.FINISHED
    assert run_row(office.db, stuck.id).status is BatchRunStatus.INTERRUPTED
    assert len(report.by_status("succeeded")) == 2


# --- the run lock -----------------------------------------------------------------------------


def test_a_run_under_way_refuses_a_second_one(office: Office) -> None:
    good_clients(office, 1)
    run_id, taken_over = acquire_run(office.db, MONTH, ProcessorMode.SANDBOX)
    assert taken_over is None
    with pytest.raises(BatchBusyError) as caught:
        run(office)
    row = run_row(office.db, run_id)
    text = str(caught.value)
    assert text.startswith(f"A month-end run for {MONTH.label} is already under way on this computer")
    assert f"(started {row.started_at.astimezone():%Y-%m-%d %H:%M} by {row.actor or 'someone'})" in text
    assert "Wait for it to finish; its result shows under Month-end." in text
    # Another workstation with a fresh heartbeat: the same, naming it.
    with office.db.write_session() as s, s.begin():
        s.execute(update(BatchRun).values(host="frontdesk-pc", pid=4242))
    with pytest.raises(BatchBusyError, match="already under way on frontdesk-pc") as caught:
        run(office)
    assert "takes over 180 seconds after it last checked in" in str(caught.value)
    with office.db.session() as s:
        assert len(s.scalars(select(BatchRun)).all()) == 1
    assert issued_count(office.db) == 0 and office.sandbox.ledger_charges() == []


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _crashed_run(office: Office, *, charged_at_processor: bool) -> tuple[int, int, int]:
    """A run that issued the month, wrote an attempt (its key committed) and died: (run, attempt, invoice)."""
    generate(office.db, MONTH)
    issue(office.db, MONTH, TODAY)
    run_id, _ = acquire_run(office.db, MONTH, ProcessorMode.SANDBOX)
    with office.db.session() as s:
        invoice_id = s.scalars(select(Invoice.id).where(Invoice.number.is_not(None)).order_by(Invoice.id)).first()
    assert invoice_id is not None
    attempt_id, request = start_attempt(office.db, office.sandbox, invoice_id, origin="batch", batch_run_id=run_id)
    if charged_at_processor:
        office.sandbox.charge(request)  # the processor charged; the process died before hearing it
    return run_id, attempt_id, invoice_id


def test_a_run_whose_process_died_on_this_computer_is_taken_over(office: Office) -> None:
    good_clients(office, 3)
    dead_run, attempt_id, invoice_id = _crashed_run(office, charged_at_processor=True)
    with office.db.write_session() as s, s.begin():
        s.execute(update(BatchRun).where(BatchRun.id == dead_run).values(pid=_dead_pid()))  # fresh heartbeat
    report = run(office)
    assert report.resumed_run_id == dead_run and report.status is BatchRunStatus.FINISHED
    dead = run_row(office.db, dead_run)
    assert dead.status is BatchRunStatus.INTERRUPTED and dead.finished_at is not None
    assert "a later run took over" in dead.message
    # Its pending attempt was found at the processor by its key and recorded once; not charged again.
    [charge] = [c for c in office.sandbox.ledger_charges() if c.metadata["mspbill_invoice_id"] == str(invoice_id)]
    with office.db.session() as s:
        attempt = s.get(ChargeAttempt, attempt_id)
        payments = list(s.scalars(select(Payment).where(Payment.invoice_id == invoice_id)))
    assert attempt is not None and attempt.status is ChargeAttemptStatus.SUCCEEDED
    assert attempt.intent_id == charge.intent_id and [p.processor_intent_id for p in payments] == [charge.intent_id]
    assert sorted(invoices_charged(office.sandbox).values()) == [1] * 3
    assert sorted(ln.status for ln in report.lines) == ["succeeded"] * 3  # its line is in the account
    assert ledger_problems(office.db, office.sandbox) == []


def test_a_run_elsewhere_that_stopped_checking_in_is_taken_over(office: Office) -> None:
    good_clients(office, 2)
    dead_run, attempt_id, invoice_id = _crashed_run(office, charged_at_processor=False)
    with office.db.write_session() as s, s.begin():
        s.execute(update(BatchRun).where(BatchRun.id == dead_run).values(
            host="frontdesk-pc", pid=4242, heartbeat_at=utcnow() - HEARTBEAT_STALE - dt.timedelta(seconds=1)))
    report = run(office)
    assert report.resumed_run_id == dead_run
    assert run_row(office.db, dead_run).status is BatchRunStatus.INTERRUPTED
    # Never sent: sent now with the very same key, once.
    with office.db.session() as s:
        attempt = s.get(ChargeAttempt, attempt_id)
    assert attempt is not None and attempt.status is ChargeAttemptStatus.SUCCEEDED
    [charge] = [c for c in office.sandbox.ledger_charges() if c.metadata["mspbill_invoice_id"] == str(invoice_id)]
    assert charge.metadata["mspbill_attempt_key"] == attempt.idempotency_key
    assert sorted(invoices_charged(office.sandbox).values()) == [1] * 2
    assert ledger_problems(office.db, office.sandbox) == []


def test_an_attempt_that_waited_too_long_is_not_sent_by_its_run(office: Office) -> None:
    """The computer slept between writing the attempt and sending it: another run may have found it
    meanwhile, so the sleeper leaves it to be found out (same key) instead of sending it."""
    [cid] = good_clients(office, 1)
    generate(office.db, MONTH)
    issue(office.db, MONTH, TODAY)
    run_id, _ = acquire_run(office.db, MONTH, ProcessorMode.SANDBOX)
    with office.db.session() as s:
        invoice_id = s.scalars(select(Invoice.id).where(Invoice.client_id == cid)).one()
    attempt_id, request = start_attempt(office.db, office.sandbox, invoice_id, origin="batch", batch_run_id=run_id)
    charger = _Charger(office.db, office.sandbox, TokenBucket(100), run_id, threading.Event(), _Tally(),
                       lambda: None)
    late = SEND_DEADLINE + dt.timedelta(seconds=1)
    outcome, fault = charger._send(attempt_id, request, (utcnow() - late, time.monotonic() - late.total_seconds()))
    assert outcome.status is ChargeAttemptStatus.UNKNOWN and not fault
    assert outcome.message.startswith("No clear answer from the processor")
    assert office.sandbox.ledger_charges() == []
    # Just in time, it is sent.
    invoice_2 = office.open_invoice(cid)
    attempt_2, request_2 = start_attempt(office.db, office.sandbox, invoice_2, origin="batch", batch_run_id=run_id)
    in_time = SEND_DEADLINE - dt.timedelta(seconds=10)
    outcome_2, _ = charger._send(attempt_2, request_2, (utcnow() - in_time, time.monotonic() - in_time.total_seconds()))
    assert outcome_2.status is ChargeAttemptStatus.SUCCEEDED
    # The one left unknown is found out later, charged once with its own key.
    sync_charges(office.db, office.sandbox, idle_run_ids={run_id})
    with office.db.session() as s:
        attempt = s.get(ChargeAttempt, attempt_id)
    assert attempt is not None and attempt.status is ChargeAttemptStatus.SUCCEEDED
    assert sorted(invoices_charged(office.sandbox).values()) == [1, 1]
    assert ledger_problems(office.db, office.sandbox) == []


# --- progress ---------------------------------------------------------------------------------


def test_progress_counts_up_and_says_how_long_is_left(office: Office) -> None:
    good_clients(office, 30)
    snapshots: list[BatchProgress] = []
    lock = threading.Lock()

    def progress(p: BatchProgress) -> None:
        with lock:
            snapshots.append(p)

    report = run(office, progress=progress, workers=8)
    stages = list(dict.fromkeys(p.stage for p in snapshots))
    assert stages == ["backup", "resolving", "invoicing", "charging", "mail", "done"]
    charging = [p for p in snapshots if p.stage == "charging"]
    dones = [p.done for p in charging]
    # 0 when charging starts, then counting up to 30 (two charges recorded at once may show one count twice).
    assert dones[0] == 0 and dones[-1] == 30 and dones == sorted(dones) and len(dones) == 31
    assert {p.total for p in charging} == {30}
    assert all(p.seconds_left is not None and p.seconds_left >= 0 for p in charging if p.done)
    assert charging[-1].seconds_left == 0 and charging[-1].succeeded == 30
    assert charging[-1].collected == report.collected()
    collected = [sum(p.collected.values()) for p in charging]
    assert collected == sorted(collected)


# --- batch sync -------------------------------------------------------------------------------


def test_batch_sync_settles_bank_debits_then_queues_their_receipts(office: Office, db: Database) -> None:
    configure_mail(db)
    cid = office.client("Bank Debit Bakery", "pm_usBankAccount_success", amount="99.00")
    settling = SandboxGateway(office.sandbox.ledger_path,
                              SandboxConfig.from_env({"MSPBILL_SANDBOX_ACH_SETTLE_SECONDS": "0"}))
    report = run(office, settling)
    [line] = report.lines
    assert line.status == "processing" and report.mail.receipts == 0 and report.mail.invoices == 1
    synced = batch_sync(db, settling)
    assert synced.receipts_queued == 1
    lines = synced.lines()
    assert any(text.startswith("Paid — ") for text in lines)
    assert lines[-1] == "1 receipt(s) queued for charges that went through"
    with db.session() as s:
        [payment] = s.scalars(select(Payment).where(Payment.client_id == cid)).all()
        number = s.get(Invoice, line.invoice_id).number  # type: ignore[union-attr]
    assert payment.method is PaymentMethod.BANK_DEBIT
    receipts = [m for m in outbox(db) if m.kind == KIND_RECEIPT]
    assert [m.subject for m in receipts] == [f"Receipt for {number}: $99.00 paid"]
    assert batch_sync(db, settling).receipts_queued == 0
    assert ledger_problems(db, office.sandbox) == []


def test_a_refusal_is_not_an_outage_it_is_recorded_at_once_and_the_run_goes_on(
        office: Office, monkeypatch: pytest.MonkeyPatch) -> None:
    """The processor refusing a charge (a customer deleted in its dashboard, say) answered: nothing was
    charged, and waiting and asking again cannot change that.  Eight such in a row are not "the
    processor failed 8 charges in a row"."""
    from mspbill.payments.methods import customer_row

    refused = good_clients(office, 9, prefix="Deleted")
    good = good_clients(office, 2, prefix="Good")
    with office.db.session() as s:
        customers = [customer_row(s, cid, ProcessorMode.SANDBOX).customer_id for cid in refused]  # type: ignore[union-attr]
    for customer_id in customers:
        office.sandbox.delete_customer(customer_id)
    slept: list[float] = []
    real_init = _Charger.__init__

    def init(self: _Charger, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        self.sleep = slept.append  # the pauses it would make before asking again

    monkeypatch.setattr(_Charger, "__init__", init)
    report = run(office, workers=1)
    assert report.status is BatchRunStatus.FINISHED and report.message == ""
    assert sorted(ln.client_id for ln in report.by_status("not_charged")) == sorted(refused)
    assert sorted(ln.client_id for ln in report.by_status("succeeded")) == sorted(good)
    assert all("deleted" in ln.message for ln in report.by_status("not_charged"))
    assert slept == []
    assert ledger_problems(office.db, office.sandbox) == []


def test_a_double_click_starts_one_run(office: Office) -> None:
    """The second click arrives while the first run is charging: it is refused, nothing charged twice."""
    good_clients(office, 4)
    second: dict[str, BaseException | BatchReport] = {}

    def click_again() -> None:
        try:
            second["result"] = run(office)
        except BaseException as exc:  # noqa: BLE001 -- looked at below
            second["result"] = exc

    def progress(p: BatchProgress) -> None:
        if p.stage == "charging" and "result" not in second:
            other = threading.Thread(target=click_again)
            other.start()
            other.join()

    first = run(office, progress=progress)
    assert isinstance(second["result"], BatchBusyError) and "already under way" in str(second["result"])
    assert first.status is BatchRunStatus.FINISHED and len(first.by_status("succeeded")) == 4
    assert sorted(invoices_charged(office.sandbox).values()) == [1] * 4
    with office.db.session() as s:
        assert len(s.scalars(select(BatchRun)).all()) == 1


# --- asking for a new method after a hard decline -------------------------------------------------


def test_a_bank_debit_that_bounces_for_good_gets_a_setup_link_from_the_sync(office: Office, db: Database) -> None:
    """The run only sees `processing`; the sync learns the account is closed and asks for a new method."""
    configure_mail(db)
    cid = office.client("Closed Account Cafe", "pm_usBankAccount_accountClosed", amount="75.00")
    settling = SandboxGateway(office.sandbox.ledger_path,
                              SandboxConfig.from_env({"MSPBILL_SANDBOX_ACH_SETTLE_SECONDS": "0"}))
    report = run(office, settling)
    assert [ln.status for ln in report.lines] == ["processing"] and report.setup_links_sent == []
    synced = batch_sync(db, settling)
    assert synced.setup_links_sent == ["Closed Account Cafe"]
    assert "Declined for good — a new payment setup link was e-mailed to Closed Account Cafe" in synced.lines()
    assert [(m.kind, m.client_id) for m in outbox(db) if m.kind == KIND_SETUP_LINK] == [(KIND_SETUP_LINK, cid)]
    # Once per decline: the next syncs ask nothing more.
    assert batch_sync(db, settling).setup_links_sent == []
    assert len([m for m in outbox(db) if m.kind == KIND_SETUP_LINK]) == 1


def test_a_setup_link_made_while_mail_was_off_is_e_mailed_once_mail_is_set_up(office: Office, db: Database) -> None:
    cid = office.client("Lost Card Legal", "pm_card_visa_chargeDeclinedLostCard")
    report = run(office)
    assert report.setup_links_sent == []
    assert any("created, not e-mailed" in p for p in report.problems)
    with db.session() as s:
        [link] = s.scalars(select(SetupLink).where(SetupLink.client_id == cid)).all()
    assert link.sent_to == "" and outbox(db) == []
    # Later syncs without mail neither make another link nor repeat the problem.
    assert batch_sync(db, office.sandbox).setup_links_sent == []
    configure_mail(db)
    assert batch_sync(db, office.sandbox).setup_links_sent == ["Lost Card Legal"]
    with db.session() as s:
        assert [ln.id for ln in s.scalars(select(SetupLink).where(SetupLink.client_id == cid))] == [link.id]
    assert [(m.kind, m.client_id) for m in outbox(db)] == [(KIND_SETUP_LINK, cid)]
    assert batch_sync(db, office.sandbox).setup_links_sent == []


# --- never "not charged" while a request with the key may still succeed -------------------------


def test_a_replay_that_is_rate_limited_stays_unknown_and_is_never_charged_with_a_new_key(office: Office) -> None:
    """A run took over a dead one; its replay of the dead run's key gets a 429.  Marking the attempt
    "not charged" would let a new key charge the invoice while the first request may still land."""
    good_clients(office, 1)
    dead_run, attempt_id, invoice_id = _crashed_run(office, charged_at_processor=False)
    with office.db.write_session() as s, s.begin():
        s.execute(update(BatchRun).where(BatchRun.id == dead_run).values(pid=_dead_pid()))
    office.sandbox.inject_failure("charge", "rate_limit", count=1)
    report = run(office)
    with office.db.session() as s:
        attempts = list(s.scalars(select(ChargeAttempt).where(ChargeAttempt.invoice_id == invoice_id)))
    # Found out at the end of the same run (the same key again), or still unknown: never a second key.
    assert [a.id for a in attempts] == [attempt_id]
    assert attempts[0].status in (ChargeAttemptStatus.UNKNOWN, ChargeAttemptStatus.SUCCEEDED)
    sync_charges(office.db, office.sandbox, idle_run_ids={report.run_id})
    assert sorted(invoices_charged(office.sandbox).values()) == [1]
    assert ledger_problems(office.db, office.sandbox) == []


def test_an_attempt_never_sent_is_not_sent_once_the_client_left_autopay(office: Office) -> None:
    [cid] = good_clients(office, 1)
    dead_run, attempt_id, _ = _crashed_run(office, charged_at_processor=False)
    with office.db.write_session() as s, s.begin():
        s.execute(update(BatchRun).where(BatchRun.id == dead_run).values(pid=_dead_pid()))
        s.get(Client, cid).autopay = False  # type: ignore[union-attr]
    report = run(office)
    with office.db.session() as s:
        attempt = s.get(ChargeAttempt, attempt_id)
    assert attempt is not None and attempt.status is ChargeAttemptStatus.NOT_CHARGED
    assert attempt.message == "Not sent: the client is no longer on autopay."
    assert office.sandbox.ledger_charges() == [] and report.by_status("succeeded") == []


def test_an_idempotency_conflict_is_an_unknown_outcome_not_a_refusal(office: Office) -> None:
    [cid] = good_clients(office, 1)
    generate(office.db, MONTH)
    issue(office.db, MONTH, TODAY)
    run_id, _ = acquire_run(office.db, MONTH, ProcessorMode.SANDBOX)
    with office.db.session() as s:
        invoice_id = s.scalars(select(Invoice.id).where(Invoice.client_id == cid)).one()
    attempt_id, request = start_attempt(office.db, office.sandbox, invoice_id, origin="batch", batch_run_id=run_id)
    office.sandbox.charge(request)  # the same key, first with these parameters...
    clash = dataclasses.replace(request, amount_cents=request.amount_cents + 1)  # ...then with others
    charger = _Charger(office.db, office.sandbox, TokenBucket(100), run_id, threading.Event(), _Tally(),
                       lambda: None)
    outcome, _ = charger._send(attempt_id, clash, (utcnow(), time.monotonic()))
    assert outcome is not None and outcome.status is ChargeAttemptStatus.UNKNOWN
    sync_charges(office.db, office.sandbox, idle_run_ids={run_id})
    with office.db.session() as s:
        assert s.get(ChargeAttempt, attempt_id).status is ChargeAttemptStatus.SUCCEEDED  # type: ignore[union-attr]
    assert ledger_problems(office.db, office.sandbox) == []
