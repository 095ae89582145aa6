"""A month-end office for the batch's process-level tests, and what they check afterwards.

`build_office(data_dir)` makes, through the app's own services, an office on the
sandbox processor: a company, N autopay clients with one monthly agreement each
starting before the current month, and a saved sandbox method per client (mostly
good cards; some soft declines, two hard declines, bank accounts that stay
`processing`), plus clients the run must leave out for a stated reason (no
method, over the autopay cap, autopay off).  The period is the current month.

`ledger_check(office)` compares the sandbox's ledger with the office's records
and returns what does not match (the crash, two-runs and sleeping-laptop tests
share it).

`batch_command(office)` is `mspbill batch run` for it, as a child process runs it.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

from sqlalchemy import select

from mspbill.agreements import AgreementDraft, LineDraft, create_agreement
from mspbill.clients import ClientDraft, create_client
from mspbill.company import CompanyDraft, save_company
from mspbill.db.engine import Database
from mspbill.db.models import (
    BatchRun,
    ChargeAttempt,
    ChargeAttemptStatus,
    Invoice,
    InvoiceStatus,
    Payment,
)
from mspbill.db.schema import open_database
from mspbill.paths import DB_FILENAME
from mspbill.payments.gateway import ChargeResult, ChargeStatus
from mspbill.payments.processor import (
    PaymentSettingsDraft,
    sandbox_ledger_path,
    save_settings,
)
from mspbill.periods import Month

REPO_ROOT = Path(__file__).resolve().parent.parent

# The methods that are not plain good cards, and what the run must make of them.
SPECIAL_METHODS: tuple[tuple[str, str], ...] = (
    ("pm_card_visa_chargeDeclinedInsufficientFunds", "soft"),
    ("pm_usBankAccount_success", "processing"),
    ("pm_card_chargeDeclinedProcessingError", "soft"),
    ("pm_card_visa_chargeDeclinedLostCard", "hard"),
    ("pm_card_chargeCustomerFail", "soft"),
    ("pm_usBankAccount_success", "processing"),
    ("pm_card_authenticationRequired", "hard"),
    ("pm_usBankAccount_insufficientFunds", "processing"),   # fails only when it settles, days later
    ("pm_card_visa_chargeDeclinedInsufficientFunds", "soft"),
)
GOOD_CARDS = ("pm_card_visa", "pm_card_mastercard", "pm_card_amex", "pm_card_visa_debit")
# Clients the run leaves out (their expectation is the plan.LeftOutReason value it must give), besides
# the `over_cap` ones (their invoice is above their autopay cap; approving it lets the next run charge it).
LEFT_OUT = ("no_method", "autopay_off")


@dataclass(frozen=True)
class OfficeClient:
    client_id: int
    name: str
    token: str | None    # the sandbox test token behind its default method; None: no method
    expect: str          # paid, soft, hard, processing, no_method, over_cap, autopay_off


@dataclass(frozen=True)
class Office:
    data_dir: Path
    month: Month
    clients: tuple[OfficeClient, ...]
    db_url: str | None = None    # a PostgreSQL office's database (None: the SQLite file in data_dir)

    @property
    def database_file(self) -> Path:
        return self.data_dir / DB_FILENAME

    @property
    def ledger_path(self) -> Path:
        return sandbox_ledger_path(self.data_dir)

    def open_db(self) -> Database:
        return Database(self.db_url or f"sqlite:///{self.database_file}")

    def client_ids(self, *expect: str) -> set[int]:
        return {c.client_id for c in self.clients if c.expect in expect}

    @property
    def chargeable(self) -> set[int]:
        """Clients whose invoice the run sends to the processor."""
        return self.client_ids("paid", "soft", "hard", "processing")


def _amount(i: int) -> str:
    # Different amounts, so a payment recorded on the wrong invoice would show.
    return f"{150 + (i * 37) % 1900}.{(i * 13) % 100:02d}"


def build_office(data_dir: Path, *, clients: int = 120, over_cap: int = 1, mail: bool = True,
                 today: dt.date | None = None, db_url: str | None = None) -> Office:
    """A fresh office in `data_dir` (see the module docstring); its month is today's.  With `mail`
    an SMTP server is set up (never reached: the tests only look at what is queued).  `db_url`: its
    database on a PostgreSQL server instead (the sandbox ledger stays in `data_dir`)."""
    from mspbill.mail.settings import MailSettingsDraft, save_mail_settings
    from mspbill.payments.methods import ensure_customer, store_method
    from mspbill.payments.sandbox import SandboxGateway

    today = today or dt.date.today()
    month = Month.of(today)
    start = month.shift(-1).first_day
    data_dir.mkdir(parents=True, exist_ok=True)
    db = open_database(db_url or f"sqlite:///{data_dir / DB_FILENAME}", data_dir / "backups")
    gateway = SandboxGateway(sandbox_ledger_path(data_dir))   # no latency, no faults: this is set-up
    made: list[OfficeClient] = []
    try:
        with db.write_session() as s, s.begin():
            save_company(s, CompanyDraft(name="Crashproof IT", currency="USD", invoice_number_pattern="INV-{n:06d}"))
            save_settings(s, PaymentSettingsDraft("sandbox"))
            if mail:
                save_mail_settings(s, MailSettingsDraft(host="smtp.crashproof.invalid", port="587",
                                                        from_address="billing@crashproof.example"))
        plan: list[tuple[str, str | None, str]] = []   # (expect, token, name)
        for n in range(clients):
            if n % 11 == 5 and n // 11 < len(SPECIAL_METHODS):
                token, expect = SPECIAL_METHODS[n // 11]
            else:
                token, expect = GOOD_CARDS[n % len(GOOD_CARDS)], "paid"
            plan.append((expect, token, f"Client {n + 1:04d} {expect.replace('_', ' ').title()}"))
        for n in range(over_cap):
            plan.append(("over_cap", GOOD_CARDS[n % len(GOOD_CARDS)], f"Client Over Cap {n + 1:02d}"))
        for expect in LEFT_OUT:
            plan.append((expect, "pm_card_visa" if expect == "autopay_off" else None,
                         f"Client Left Out {expect.replace('_', ' ').title()}"))
        ids: list[int] = []
        with db.write_session() as s, s.begin():
            for i, (expect, _token, name) in enumerate(plan):
                client = create_client(s, ClientDraft(
                    legal_name=name, billing_emails=f"ap{i}@client{i}.example", autopay=expect != "autopay_off",
                    autopay_cap="100.00" if expect == "over_cap" else ""))
                create_agreement(s, AgreementDraft(
                    client_id=client.id, name="Managed IT", start_date=start, frequency="monthly",
                    lines=[LineDraft("Managed seats", str(3 + i % 9), _amount(i)),
                           LineDraft("Backup", "1", "49.00", taxable=False)]))
                ids.append(client.id)
        for client_id, (expect, token, name) in zip(ids, plan, strict=True):
            if token is not None:
                customer_id = ensure_customer(db, gateway, client_id)
                facts = gateway.attach_test_method(customer_id, token)
                with db.write_session() as s, s.begin():
                    store_method(s, client_id, gateway.mode, facts, customer_id, "test", make_default=True)
            made.append(OfficeClient(client_id, name, token, expect))
    finally:
        gateway.close()
        db.dispose()
    return Office(data_dir, month, tuple(made), db_url)


def copy_office(office: Office, data_dir: Path) -> Office:
    """The same office in another folder (building one takes seconds; copying it, milliseconds)."""
    shutil.copytree(office.data_dir, data_dir)
    return replace(office, data_dir=data_dir)


# --- `mspbill batch …` in a child process ----------------------------------------------------


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child `mspbill`: nothing inherited that would point it elsewhere or change
    the sandbox's behaviour, plus `extra`."""
    env = dict(os.environ)
    for name in ("MSPBILL_DATA_DIR", "MSPBILL_DATABASE_URL", "MSPBILL_SANDBOX_LATENCY_MS",
                 "MSPBILL_SANDBOX_FAILURES", "MSPBILL_SANDBOX_SEED", "MSPBILL_SANDBOX_RATE_LIMIT",
                 "MSPBILL_SANDBOX_ACH_SETTLE_SECONDS"):
        env.pop(name, None)
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(extra or {})
    return env


def batch_command(office: Office, action: str = "run", *more: str) -> list[str]:
    """`mspbill --data-dir DIR batch run --period YYYY-MM --yes --json` (or another batch command)."""
    args = ["--data-dir", str(office.data_dir), "batch", action]
    if office.db_url:
        args = ["--db", office.db_url, *args]
    if action == "run":
        args += ["--period", str(office.month), "--yes", "--json"]
    return [sys.executable, "-m", "mspbill", *args, *more]


# --- what the tests check ---------------------------------------------------------------


@dataclass
class LedgerCheck:
    double_charges: list[str] = field(default_factory=list)   # invoices the processor charged more than once
    unbacked: list[str] = field(default_factory=list)         # payments recorded without that charge at the processor
    problems: list[str] = field(default_factory=list)         # records that do not match the processor's
    intents: int = 0
    succeeded: int = 0
    processing: int = 0
    declined: int = 0


def ledger_intents(office: Office) -> list[ChargeResult]:
    from mspbill.payments.sandbox import SandboxGateway

    with SandboxGateway(office.ledger_path) as sandbox:
        return sandbox.ledger_charges()


def double_charges(ledger: list[ChargeResult]) -> list[str]:
    """Invoices with more than one PaymentIntent that took (or is taking) money."""
    taken: dict[str, list[str]] = defaultdict(list)
    for intent in ledger:
        if intent.status in (ChargeStatus.SUCCEEDED, ChargeStatus.PROCESSING):
            taken[intent.metadata.get("mspbill_invoice_id", "?")].append(intent.intent_id or "")
    return [f"invoice {invoice_id} was charged {len(ids)} times: {ids}" for invoice_id, ids in taken.items()
            if len(ids) > 1]


def ledger_check(office: Office) -> LedgerCheck:
    """Every invoice charged at most once at the processor, and the office's records matching the
    processor's ledger exactly: its succeeded PaymentIntents are the office's processor payments
    (same ids, amounts, invoices) and every PaymentIntent belongs to an attempt that says what it is."""
    ledger = ledger_intents(office)
    out = LedgerCheck(double_charges=double_charges(ledger), intents=len(ledger))
    counts = Counter(i.status for i in ledger)
    out.succeeded, out.processing = counts[ChargeStatus.SUCCEEDED], counts[ChargeStatus.PROCESSING]
    out.declined = counts[ChargeStatus.DECLINED] + counts[ChargeStatus.REQUIRES_ACTION]
    ledger_paid = {i.intent_id: (i.amount_cents, i.metadata.get("mspbill_invoice_id")) for i in ledger
                   if i.status is ChargeStatus.SUCCEEDED}
    expected_status = {ChargeStatus.SUCCEEDED: ChargeAttemptStatus.SUCCEEDED,
                       ChargeStatus.PROCESSING: ChargeAttemptStatus.PROCESSING,
                       ChargeStatus.DECLINED: ChargeAttemptStatus.DECLINED,
                       ChargeStatus.REQUIRES_ACTION: ChargeAttemptStatus.DECLINED}
    db = office.open_db()
    try:
        with db.session() as s:
            local_paid = {p.processor_intent_id: (p.amount_cents, str(p.invoice_id)) for p in s.scalars(
                select(Payment).where(Payment.processor_intent_id.is_not(None)))}
            attempts = {a.idempotency_key: a for a in s.scalars(select(ChargeAttempt))}
            out.unbacked = sorted(f"{k}: {v}" for k, v in local_paid.items() if ledger_paid.get(k) != v)
            if ledger_paid != local_paid:
                missing = sorted(set(ledger_paid) - set(local_paid))
                extra = sorted(set(local_paid) - set(ledger_paid))
                wrong = sorted(k for k in set(ledger_paid) & set(local_paid) if ledger_paid[k] != local_paid[k])
                out.problems.append(f"payments differ from the ledger: not recorded {missing}, not at the processor "
                                    f"{extra}, other amount or invoice {wrong}")
            for intent in ledger:
                key = intent.metadata.get("mspbill_attempt_key", "")
                attempt = attempts.get(key)
                if attempt is None:
                    out.problems.append(f"{intent.intent_id} has no attempt with its key {key!r}")
                    continue
                if str(attempt.invoice_id) != intent.metadata.get("mspbill_invoice_id"):
                    out.problems.append(f"{intent.intent_id} names invoice {intent.metadata.get('mspbill_invoice_id')}"
                                        f", its attempt {attempt.invoice_id}")
                if attempt.amount_cents != intent.amount_cents:
                    out.problems.append(f"{intent.intent_id}: {intent.amount_cents} at the processor, "
                                        f"{attempt.amount_cents} in its attempt")
                if attempt.status is not expected_status.get(intent.status) or attempt.intent_id not in (
                        None, intent.intent_id):
                    out.problems.append(f"{intent.intent_id} is {intent.status.value} at the processor; its attempt "
                                        f"{attempt.id} says {attempt.status.value} ({attempt.intent_id})")
            # No attempt that says it took money without a PaymentIntent to show for it.
            ledger_ids = {i.intent_id for i in ledger}
            for a in attempts.values():
                if a.status in (ChargeAttemptStatus.SUCCEEDED, ChargeAttemptStatus.PROCESSING) \
                        and a.intent_id not in ledger_ids:
                    out.problems.append(f"attempt {a.id} is {a.status.value} with {a.intent_id}, unknown to the ledger")
            for inv in s.scalars(select(Invoice).where(Invoice.number.is_not(None))):
                paid = sum(v[0] for v in local_paid.values() if v[1] == str(inv.id))
                if paid and (inv.paid_cents != paid or inv.status is not InvoiceStatus.PAID):
                    out.problems.append(f"{inv.number}: {paid} charged but paid_cents {inv.paid_cents}, "
                                        f"status {inv.status.value}")
    finally:
        db.dispose()
    return out


def runs_of(office: Office) -> list[BatchRun]:
    db = office.open_db()
    try:
        with db.session() as s:
            rows = list(s.scalars(select(BatchRun).order_by(BatchRun.id)))
            s.expunge_all()
            return rows
    finally:
        db.dispose()
