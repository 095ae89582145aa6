"""The month-end preview (mspbill.batch.plan) on a small office built with the app's own services
and the sandbox processor: who is charged, who is left out and why, approvals above the cap,
credits, retries, totals, the periods a run may bill, and the CSV export.

The helpers here (`Office`, the `office` fixture) serve tests/test_batch_run.py too."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from billing_helpers import change_agreement, issue_ids, one_time, setup_office
from sqlalchemy import select

from mspbill.agreements import AgreementDraft, LineDraft, create_agreement
from mspbill.batch.plan import (
    CSV_HEADERS,
    BatchPreview,
    ChargeKind,
    InvoiceToIssue,
    LeftOutCharge,
    LeftOutReason,
    PlannedCharge,
    Target,
    approve_over_cap,
    check_period,
    judge_open_invoices,
    preview_batch,
    preview_csv,
)
from mspbill.batch.settings import save_batch_settings
from mspbill.clients import ClientDraft, create_client
from mspbill.db.engine import Database
from mspbill.db.models import ChargeApproval, ChargeAttempt, ChargeAttemptStatus
from mspbill.payments import charges
from mspbill.payments.gateway import ProcessorMode
from mspbill.payments.manual import record_payment
from mspbill.payments.methods import ensure_customer, store_method
from mspbill.payments.processor import PaymentSettingsDraft, save_settings
from mspbill.payments.sandbox import SandboxGateway
from mspbill.periods import Month
from mspbill.validation import ValidationError

# Run on SQLite and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.both_databases

TODAY = dt.date.today()
MONTH = Month.of(TODAY)
TITLE = f"Managed IT — {MONTH.label}"


class Office:
    """A small office on the sandbox processor, built through the services a person's clicks call."""

    def __init__(self, db: Database, sandbox: SandboxGateway) -> None:
        self.db, self.sandbox = db, sandbox
        self.month, self.today = MONTH, TODAY
        self.backup_dir = Path(db.sqlite_path or ".").parent / "batch-backups"  # where a run backs up first

    def client(self, name: str, token: str | None = None, *, amount: str | None = "100.00", autopay: bool = True,
               cap: str = "", currency: str = "USD", email: str | None = None) -> int:
        """A client with (unless `amount` is None) a monthly agreement billing `amount` from this month,
        and (with `token`) a saved sandbox method as its default."""
        with self.db.write_session() as s, s.begin():
            client = create_client(s, ClientDraft(
                legal_name=name, billing_emails=email if email is not None else f"ap@{name.split()[0].lower()}.example",
                autopay=autopay, autopay_cap=cap, currency=currency))
            if amount is not None:
                create_agreement(s, AgreementDraft(client_id=client.id, name="Managed IT",
                                                   start_date=self.month.first_day, frequency="monthly",
                                                   lines=[LineDraft("Managed seats", "1", amount, taxable=False)]))
            client_id = client.id
        if token is not None:
            self.save_method(client_id, token)
        return client_id

    def save_method(self, client_id: int, token: str) -> None:
        customer_id = ensure_customer(self.db, self.sandbox, client_id)
        facts = self.sandbox.attach_test_method(customer_id, token)
        with self.db.write_session() as s, s.begin():
            store_method(s, client_id, ProcessorMode.SANDBOX, facts, customer_id, "test", make_default=True)

    def open_invoice(self, client_id: int, amount: str = "80.00", title: str = "Project work") -> int:
        """An earlier one-time invoice, issued today and still open."""
        inv_id = one_time(self.db, client_id, ("Project", "1", amount, False), title=title)
        issue_ids(self.db, [inv_id], self.today)
        return inv_id

    def charge(self, invoice_id: int) -> charges.ChargeOutcome:
        return charges.charge_invoice(self.db, self.sandbox, invoice_id)

    def give_credit(self, client_id: int, cents: int) -> None:
        """Client credit, as an overpayment by check leaves it."""
        inv_id = one_time(self.db, client_id, ("Small item", "1", "1.00", False), title="Credit source")
        issue_ids(self.db, [inv_id], self.today)
        with self.db.write_session() as s, s.begin():
            record_payment(s, inv_id, f"{(cents + 100) / 100:.2f}", "check", credit_excess=True)

    def preview(self, month: Month | None = None, **kwargs: object) -> BatchPreview:
        with self.db.session() as s:
            return preview_batch(s, month or self.month, today=kwargs.pop("today", self.today), **kwargs)  # type: ignore[arg-type]

    def attempts(self, invoice_id: int) -> list[ChargeAttempt]:
        with self.db.session() as s:
            return list(s.scalars(select(ChargeAttempt).where(ChargeAttempt.invoice_id == invoice_id)
                                  .order_by(ChargeAttempt.id)))


def make_office(db: Database, sandbox: SandboxGateway) -> Office:
    """A company on the sandbox processor, no clients yet."""
    setup_office(db)
    with db.write_session() as s, s.begin():
        save_settings(s, PaymentSettingsDraft("sandbox"))
    return Office(db, sandbox)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SandboxGateway]:
    gateway = SandboxGateway(tmp_path / "sandbox-processor.sqlite3")
    yield gateway
    gateway.close()


@pytest.fixture
def office(db: Database, sandbox: SandboxGateway) -> Office:
    return make_office(db, sandbox)


def left_out_by_client(preview: BatchPreview, client_id: int) -> list[LeftOutCharge]:
    return [lo for lo in preview.left_out if lo.target.client_id == client_id]


def charges_of(preview: BatchPreview, client_id: int) -> list[PlannedCharge]:
    return [c for c in preview.charges if c.target.client_id == client_id]


def only_left_out(preview: BatchPreview, client_id: int) -> LeftOutCharge:
    [lo] = left_out_by_client(preview, client_id)
    assert charges_of(preview, client_id) == []
    return lo


# --- who is charged ----------------------------------------------------------------------


def test_a_client_with_a_good_card_is_invoiced_and_charged(office: Office) -> None:
    cid = office.client("Cascade Dental", "pm_card_visa", amount="250.00")
    preview = office.preview()
    [inv] = preview.invoices
    assert (inv.client_id, inv.title, inv.total_cents, inv.autopay, inv.draft_id) == (cid, TITLE, 25000, True, None)
    [charge] = preview.charges
    assert (charge.kind, charge.method_label, charge.method_kind, charge.target.amount_cents) == (
        ChargeKind.NEW, "Visa ending 4242", "card", 25000)
    t = charge.target
    assert (t.invoice_id, t.number, t.period_start, t.currency) == (None, TITLE, MONTH.first_day, "USD")
    assert t.agreement_id is not None
    assert preview.left_out == [] and preview.mode is ProcessorMode.SANDBOX
    assert preview.summary() == (f"{MONTH.label}: 1 invoice(s) to issue ($250.00); 1 charge(s) of $250.00 in "
                                 f"{ProcessorMode.SANDBOX.label}.")


def test_every_reason_to_leave_an_autopay_invoice_out_is_given(office: Office, sandbox: SandboxGateway) -> None:
    off = office.client("Abacus Pays By Check", "pm_card_visa", autopay=False)
    bare = office.client("Bare Metal", None)
    big = office.client("Big Spender", "pm_card_visa", amount="900.00", cap="500.00")
    tiny = office.client("Tiny Tools", "pm_card_visa", amount="0.40")
    ahead = office.client("Ahead Accounting", "pm_card_visa", amount="100.00")
    office.give_credit(ahead, 15000)

    lost = office.client("Lost Card Legal", "pm_card_visa_chargeDeclinedLostCard")
    lost_old = office.open_invoice(lost)
    assert office.charge(lost_old).hard_decline

    bank = office.client("Bank Debit Bakery", "pm_usBankAccount_success")
    bank_old = office.open_invoice(bank)
    assert office.charge(bank_old).status is ChargeAttemptStatus.PROCESSING

    fog = office.client("Foggy Freight", "pm_card_visa")
    fog_old = office.open_invoice(fog)
    sandbox.inject_failure("charge", "timeout_after")
    assert office.charge(fog_old).status is ChargeAttemptStatus.UNKNOWN

    tight = office.client("Tight Budget Co", "pm_card_visa_chargeDeclinedInsufficientFunds")
    tight_old = office.open_invoice(tight)
    assert office.charge(tight_old).status is ChargeAttemptStatus.DECLINED

    broke = office.client("Broke Brewery", "pm_card_visa_chargeDeclinedInsufficientFunds")
    broke_old = office.open_invoice(broke)
    for _ in range(4):  # the first charge and three retries, all declined
        assert office.charge(broke_old).status is ChargeAttemptStatus.DECLINED

    preview = office.preview()

    lo = only_left_out(preview, off)
    assert (lo.reason, lo.target.number, lo.target.amount_cents) == (LeftOutReason.AUTOPAY_OFF, TITLE, 10000)
    assert lo.reason.label == "Pays by invoice (autopay off)"

    lo = only_left_out(preview, bare)
    assert lo.reason is LeftOutReason.NO_METHOD
    assert lo.detail == f"No card or bank account on file in {ProcessorMode.SANDBOX.label}; send a payment setup link."

    lo = only_left_out(preview, big)
    assert (lo.reason, lo.approvable, lo.method_label) == (LeftOutReason.OVER_CAP, True, "Visa ending 4242")
    assert lo.detail == "$900.00 is above the client's autopay cap of $500.00; approve it to charge it."

    lo = only_left_out(preview, tiny)
    assert lo.reason is LeftOutReason.TOO_SMALL and not lo.approvable
    assert lo.detail.startswith("$0.40 is below the processor's minimum charge of $0.50")

    lo = only_left_out(preview, ahead)
    assert (lo.reason, lo.target.amount_cents) == (LeftOutReason.PAID_BY_CREDIT, 0)

    # The hard decline flagged the card: the new invoice and the old one both wait for a new method.
    lost_out = left_out_by_client(preview, lost)
    assert {lo.target.number for lo in lost_out} == {TITLE, _number(office, lost_old)}
    assert {lo.reason for lo in lost_out} == {LeftOutReason.HARD_DECLINE}
    assert all("declined for good" in lo.detail for lo in lost_out)
    assert charges_of(preview, lost) == []

    # A bank debit settling: that invoice is not charged again; the client's new invoice is.
    [lo] = left_out_by_client(preview, bank)
    assert (lo.reason, lo.target.invoice_id) == (LeftOutReason.PROCESSING, bank_old)
    assert lo.detail.startswith("A bank debit of $80.00 is settling")
    assert [(c.kind, c.target.number) for c in charges_of(preview, bank)] == [(ChargeKind.NEW, TITLE)]

    [lo] = left_out_by_client(preview, fog)
    assert (lo.reason, lo.target.invoice_id) == (LeftOutReason.UNKNOWN, fog_old)
    assert "asks the processor first" in lo.detail

    [lo] = left_out_by_client(preview, tight)
    failed_on = _failure_day(office, tight_old)
    assert (lo.reason, lo.target.invoice_id, lo.next_retry_on) == (
        LeftOutReason.RETRY_LATER, tight_old, failed_on + dt.timedelta(days=3))
    assert lo.detail == f"Declined 1 time(s); the next retry is on {failed_on + dt.timedelta(days=3)}."
    assert [c.kind for c in charges_of(preview, tight)] == [ChargeKind.NEW]  # its new invoice is charged

    [lo] = left_out_by_client(preview, broke)
    assert (lo.reason, lo.target.invoice_id, lo.next_retry_on) == (LeftOutReason.RETRIES_USED, broke_old, None)
    assert lo.detail.startswith("Declined 4 times since")

    # Summary and totals leave the covered invoice's zero out of nothing.
    # Those who pay by invoice are e-mailed as usual: counted apart from the autopay invoices left out.
    assert (f"1 pay by invoice (e-mailed); {len(preview.left_out) - 1} autopay invoice(s) left out"
            in preview.summary())
    assert preview.left_out_totals()["USD"] == sum(
        lo.target.amount_cents for lo in preview.left_out if lo.reason is not LeftOutReason.PAID_BY_CREDIT)


def _number(office: Office, invoice_id: int) -> str:
    from mspbill.db.models import Invoice

    with office.db.session() as s:
        inv = s.get(Invoice, invoice_id)
        assert inv is not None and inv.number
        return inv.number


def _failure_day(office: Office, invoice_id: int) -> dt.date:
    first = next(a for a in office.attempts(invoice_id) if a.status is ChargeAttemptStatus.DECLINED)
    assert first.resolved_at is not None
    return first.resolved_at.date()


def test_without_a_processor_autopay_invoices_are_left_out_and_e_mailed(office: Office, db: Database) -> None:
    cid = office.client("Cascade Dental", "pm_card_visa")
    with db.write_session() as s, s.begin():
        save_settings(s, PaymentSettingsDraft("none"))
    preview = office.preview()
    assert preview.mode is None and preview.charges == []
    lo = only_left_out(preview, cid)
    assert lo.reason is LeftOutReason.NO_PROCESSOR and "e-mailed instead" in lo.detail
    assert "in no processor" in preview.summary()


def test_a_card_that_expires_before_the_run_is_left_out(office: Office) -> None:
    cid = office.client("Expiring Co", "pm_card_visa_expiring")  # good through the end of this month
    assert charges_of(office.preview(), cid) != []
    next_month = MONTH.shift(1)
    preview = office.preview(next_month, today=next_month.first_day)
    lo = only_left_out(preview, cid)
    assert lo.reason is LeftOutReason.EXPIRED and lo.method_label == "Visa ending 4242"
    assert lo.detail.startswith(f"Visa ending 4242 expired ({MONTH.month:02d}/{MONTH.year})")


def test_a_hard_decline_on_one_invoice_leaves_it_out_even_once_the_card_flag_is_cleared(office: Office,
                                                                                       db: Database) -> None:
    """Retry rule and method flag are separate: the invoice's own hard decline never retries that card."""
    from mspbill.db.models import SavedPaymentMethod

    cid = office.client("Lost Card Legal", "pm_card_visa_chargeDeclinedLostCard", amount=None)
    old = office.open_invoice(cid)
    office.charge(old)
    with db.write_session() as s, s.begin():
        for m in s.scalars(select(SavedPaymentMethod)):
            m.hard_declined_at = None
    lo = only_left_out(office.preview(), cid)
    assert lo.reason is LeftOutReason.HARD_DECLINE and "declined for good on this invoice" in lo.detail


def test_a_new_method_after_a_decline_charges_the_invoice_at_once(office: Office) -> None:
    cid = office.client("Tight Budget Co", "pm_card_visa_chargeDeclinedInsufficientFunds", amount=None)
    old = office.open_invoice(cid)
    office.charge(old)
    assert only_left_out(office.preview(), cid).reason is LeftOutReason.RETRY_LATER
    office.save_method(cid, "pm_card_mastercard")
    [charge] = office.preview().charges
    assert (charge.target.invoice_id, charge.kind, charge.method_label, charge.retry_number) == (
        old, ChargeKind.OPEN, "Mastercard ending 4444", 0)


def test_due_retries_are_listed_as_retries_on_their_day(office: Office) -> None:
    cid = office.client("Tight Budget Co", "pm_card_visa_chargeDeclinedInsufficientFunds", amount=None)
    old = office.open_invoice(cid)
    office.charge(old)
    first = _failure_day(office, old)
    assert office.preview(today=first + dt.timedelta(days=2)).retries == []
    preview = office.preview(Month.of(first + dt.timedelta(days=3)), today=first + dt.timedelta(days=3))
    [retry] = preview.retries
    assert (retry.kind, retry.retry_number, retry.target.invoice_id) == (ChargeKind.RETRY, 1, old)
    assert "of which 1 retry" in preview.summary()
    # The second retry falls 5 days after the first failure, whenever the first retry was made.
    office.charge(old)
    assert only_left_out(office.preview(today=first + dt.timedelta(days=4)), cid).next_retry_on == \
        first + dt.timedelta(days=5)


def test_the_retry_schedule_comes_from_the_settings(office: Office, db: Database) -> None:
    cid = office.client("Tight Budget Co", "pm_card_visa_chargeDeclinedInsufficientFunds", amount=None)
    old = office.open_invoice(cid)
    office.charge(old)
    with db.write_session() as s, s.begin():
        save_batch_settings(s, "10, 20", 25, 100, 10)
    assert only_left_out(office.preview(), cid).next_retry_on == _failure_day(office, old) + dt.timedelta(days=10)
    with db.write_session() as s, s.begin():
        save_batch_settings(s, "", 25, 100, 10)
    assert only_left_out(office.preview(), cid).reason is LeftOutReason.RETRIES_USED


# --- credit -------------------------------------------------------------------------------


def test_client_credit_reduces_the_planned_charge(office: Office) -> None:
    cid = office.client("Part Paid Partners", "pm_card_visa", amount="100.00")
    office.give_credit(cid, 3000)
    preview = office.preview()
    [inv] = preview.invoices
    assert inv.total_cents == 10000  # the invoice is for the whole amount; the credit pays part of it
    [charge] = preview.charges
    assert charge.target.amount_cents == 7000
    assert preview.charge_totals() == {"USD": 7000}


def test_credit_goes_to_the_invoices_in_the_order_the_run_issues_them(office: Office, db: Database) -> None:
    """A client with a waiting draft and a new invoice: the preview must give the credit to the same
    invoice as issuing does, or it would plan the wrong amounts (and the wrong one above the cap)."""
    from mspbill.generation import generate_period
    from mspbill.invoicing import drafts_for_month, issue_invoices

    cid = office.client("Order Matters", "pm_card_visa", amount="100.00")
    with db.write_session() as s, s.begin():
        generate_period(s, MONTH)   # "Managed IT — …" waits as a draft
        # Its title sorts after the waiting draft's, though generation lists it first.
        create_agreement(s, AgreementDraft(client_id=cid, name="Zulu Backup", start_date=MONTH.first_day,
                                           lines=[LineDraft("Cloud backup", "1", "60.00", taxable=False)]))
    office.give_credit(cid, 5000)
    planned = {c.target.number: c.target.amount_cents for c in office.preview().charges}
    with db.write_session() as s, s.begin():
        generate_period(s, MONTH)
        ids = drafts_for_month(s, MONTH)
        issue_invoices(s, ids, TODAY)
    with db.session() as s:
        planned_after, _ = judge_open_invoices(s, ProcessorMode.SANDBOX, TODAY, new_invoice_ids=ids)
        from mspbill.db.models import Invoice

        titles = {i.id: i.title for i in s.scalars(select(Invoice).where(Invoice.id.in_(ids)))}
    actual = {titles[c.target.invoice_id or 0]: c.target.amount_cents for c in planned_after}
    assert planned == actual


# --- over the cap -----------------------------------------------------------------------


def test_approving_a_planned_invoice_over_the_cap_lets_it_be_charged(office: Office, db: Database) -> None:
    cid = office.client("Big Spender", "pm_card_visa", amount="900.00", cap="500.00")
    lo = only_left_out(office.preview(), cid)
    with db.write_session() as s, s.begin():
        approval = approve_over_cap(s, lo.target)
        assert (approval.invoice_id, approval.agreement_id, approval.period_start, approval.amount_cents) == (
            None, lo.target.agreement_id, MONTH.first_day, 90000)
    [charge] = office.preview().charges
    assert charge.over_cap_approved and charge.target.amount_cents == 90000
    assert "Above cap, approved" in preview_csv(office.preview())

    # Once issued, the same approval covers the invoice the run charges.
    from mspbill.generation import generate_period
    from mspbill.invoicing import drafts_for_month, issue_invoices

    with db.write_session() as s, s.begin():
        generate_period(s, MONTH)
        ids = drafts_for_month(s, MONTH)
        issue_invoices(s, ids, TODAY)
    with db.session() as s:
        planned, left = judge_open_invoices(s, ProcessorMode.SANDBOX, TODAY, new_invoice_ids=ids)
    assert [(c.target.invoice_id, c.over_cap_approved, c.kind) for c in planned] == [(ids[0], True, ChargeKind.NEW)]
    assert left == []


def test_a_larger_amount_than_approved_is_left_out_again(office: Office, db: Database) -> None:
    cid = office.client("Big Spender", "pm_card_visa", amount="900.00", cap="500.00")
    with db.write_session() as s, s.begin():
        approve_over_cap(s, only_left_out(office.preview(), cid).target)

    def raise_price(draft: AgreementDraft) -> None:
        draft.lines[0].unit_price = "950.00"

    change_agreement(db, _agreement_of(db, cid), raise_price, MONTH.first_day)
    lo = only_left_out(office.preview(), cid)
    assert lo.reason is LeftOutReason.OVER_CAP and lo.target.amount_cents == 95000
    # Approving again raises the approval to the new amount (one approval per period).
    with db.write_session() as s, s.begin():
        approve_over_cap(s, lo.target)
    with db.session() as s:
        assert [a.amount_cents for a in s.scalars(select(ChargeApproval))] == [95000]
    assert office.preview().charges[0].over_cap_approved


def _agreement_of(db: Database, client_id: int) -> int:
    from mspbill.db.models import Agreement

    with db.session() as s:
        return s.scalars(select(Agreement.id).where(Agreement.client_id == client_id)).one()


def test_approving_an_issued_invoice_over_the_cap(office: Office, db: Database) -> None:
    cid = office.client("Big Spender", "pm_card_visa", amount=None, cap="500.00")
    old = office.open_invoice(cid, "750.00")
    lo = only_left_out(office.preview(), cid)
    assert (lo.reason, lo.target.invoice_id) == (LeftOutReason.OVER_CAP, old)
    with db.write_session() as s, s.begin():
        approval = approve_over_cap(s, lo.target)
        assert (approval.invoice_id, approval.agreement_id, approval.period_start) == (old, None, None)
    [charge] = office.preview().charges
    assert (charge.target.invoice_id, charge.over_cap_approved, charge.kind) == (old, True, ChargeKind.OPEN)


def test_a_waiting_instalment_over_the_cap_can_be_approved(office: Office, db: Database) -> None:
    """The preview offers approval for every over-cap invoice; an instalment draft has no agreement."""
    from mspbill.invoicing import split_into_instalments

    cid = office.client("Instalment Inc", "pm_card_visa", amount=None, cap="500.00")
    draft = one_time(db, cid, ("Server", "1", "1200.00", False), title="New server")
    with db.write_session() as s, s.begin():
        split_into_instalments(s, draft, 2, MONTH)
    lo = only_left_out(office.preview(), cid)
    assert lo.reason is LeftOutReason.OVER_CAP and lo.approvable and lo.target.amount_cents == 60000
    with db.write_session() as s, s.begin():
        approve_over_cap(s, lo.target)
    [charge] = office.preview().charges
    assert charge.over_cap_approved and charge.target.client_id == cid


# --- totals, nothing to do, periods -------------------------------------------------------


def test_totals_are_kept_per_currency(office: Office) -> None:
    office.client("Dollar Dental", "pm_card_visa", amount="100.00")
    office.client("Euro Engineering", "pm_card_visa", amount="200.00", currency="EUR")
    office.client("Euro Offline", None, amount="50.00", currency="EUR")
    preview = office.preview()
    assert preview.invoice_totals() == {"USD": 10000, "EUR": 25000}
    assert preview.charge_totals() == {"USD": 10000, "EUR": 20000}
    assert preview.left_out_totals() == {"EUR": 5000}
    assert "(€250.00 + $100.00)" in preview.summary() and "of €200.00 + $100.00" in preview.summary()


def test_a_period_with_nothing_to_do_says_so(office: Office) -> None:
    preview = office.preview()
    assert preview.nothing_to_do and preview.invoices == [] and preview.charges == []
    assert preview.summary() == f"Nothing to do for {MONTH.label}: no invoice to issue and no charge due."
    cid = office.client("Big Spender", "pm_card_visa", amount=None, cap="500.00")
    office.open_invoice(cid, "750.00")
    preview = office.preview()
    assert preview.nothing_to_do
    assert preview.summary() == (f"Nothing to do for {MONTH.label}: no invoice to issue and no charge due "
                                 "(1 invoice(s) left out, with the reasons).")


@pytest.mark.parametrize("shift", [-1, 0, 1])
def test_the_current_the_coming_and_a_late_month_may_be_run(shift: int) -> None:
    check_period(Month(2026, 11).shift(shift), dt.date(2026, 11, 15))


def test_a_month_too_far_ahead_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        check_period(Month(2027, 1), dt.date(2026, 11, 15))
    [issue] = caught.value.issues
    assert issue.field == "period"
    assert issue.message == ("January 2027 is too far ahead: a month-end run bills the current or the coming month "
                             "(December 2026 at the latest). Run it when that month comes.")


def test_a_month_long_past_is_refused() -> None:
    check_period(Month(2026, 8), dt.date(2026, 11, 30))  # ended 91 days before
    with pytest.raises(ValidationError) as caught:
        check_period(Month(2026, 7), dt.date(2026, 11, 15))
    [issue] = caught.value.issues
    assert issue.message.startswith("July 2026 is long past: a month-end run charges cards today, for the current "
                                    "or the coming month. Bill a past month from Invoices → Generate")


def test_the_preview_refuses_a_bad_period_too(office: Office) -> None:
    with pytest.raises(ValidationError, match="too far ahead"):
        office.preview(MONTH.shift(2))


# --- CSV ----------------------------------------------------------------------------------


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_the_preview_exports_as_csv_with_every_section(office: Office) -> None:
    office.client("Cascade Dental", "pm_card_visa", amount="1234.56")
    office.client("=HYPERLINK(\"http://evil.example\",\"click\")", None, amount="10.00", email="ap@evil.example")
    text = preview_csv(office.preview())
    assert text.endswith("\r\n")
    rows = _rows(text)
    assert rows[0] == CSV_HEADERS
    by_section = {(r[0], r[1]): r for r in rows[1:]}
    cascade = by_section[("Invoice to issue", "Cascade Dental")]
    assert cascade[2:5] == [TITLE, "1234.56", "USD"] and cascade[7] == "Autopay"
    charge = by_section[("Charge", "Cascade Dental")]
    assert charge[3] == "1234.56" and charge[5:8] == ["Visa ending 4242", ProcessorMode.SANDBOX.label, "Charge"]
    evil = by_section[("Left out", "'=HYPERLINK(\"http://evil.example\",\"click\")")]
    assert evil[3] == "10.00" and evil[7] == "No payment method on file"
    assert not any(cell.startswith(("=", "+", "@")) for row in rows for cell in row)


def test_csv_amounts_are_plain_numbers_in_the_currencys_own_units() -> None:
    def target(cents: int, currency: str) -> Target:
        return Target(1, "Client", None, "Invoice", None, None, cents, currency)

    preview = BatchPreview(MONTH, ProcessorMode.TEST, TODAY, invoices=[
        InvoiceToIssue(1, "Credit Co", "Adjustments", -1250, "USD", True, None, "adjustments only"),
        InvoiceToIssue(2, "Yen Co", "Managed IT", 123456, "JPY", True, None)],
        charges=[PlannedCharge(target(5, "USD"), ChargeKind.RETRY, "Visa ending 4242", "card", retry_number=2)],
        left_out=[LeftOutCharge(target(0, "USD"), LeftOutReason.RETRY_LATER, "-later", "Visa ending 4242",
                                dt.date(2026, 11, 4))])
    rows = _rows(preview_csv(preview))
    assert [r[3] for r in rows[1:]] == ["-12.50", "123456", "0.05", "0.00"]
    assert rows[3][7] == "Retry 2"
    assert rows[4][8:] == ["'-later", "2026-11-04"]  # the detail text is neutralised; numbers are not

