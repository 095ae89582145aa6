"""Payment methods, charges and refunds through the processor, on the sandbox processor and a
real SQLite file: setup links, linking a customer, charging once and only once, declines,
ACH settling, unknown outcomes found out, refunds with and without a credit note."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from billing_helpers import invoice, issue_ids, make_client, one_time, setup_office
from sqlalchemy import func, select

from mspbill.aging import open_items
from mspbill.db.models import (
    AuditEntry,
    ChargeAttempt,
    ChargeAttemptStatus,
    InvoiceStatus,
    Payment,
    PaymentMethod,
    ProcessorKind,
    SavedMethodStatus,
    SavedPaymentMethod,
    SetupLink,
    SetupLinkStatus,
)
from mspbill.payments import charges, methods, refunds
from mspbill.payments.gateway import ChargeStatus, ProcessorMode
from mspbill.payments.processor import PaymentSettingsDraft, save_settings
from mspbill.payments.sandbox import SandboxGateway
from mspbill.validation import ValidationError


class Clock:
    """The sandbox's and the services' 'now', moved by the tests."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += dt.timedelta(**kwargs)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sandbox(tmp_path: Path, clock: Clock) -> SandboxGateway:
    return SandboxGateway(tmp_path / "sandbox.sqlite3", clock=clock)


@pytest.fixture
def client_id(db) -> int:
    setup_office(db)
    with db.write_session() as s, s.begin():
        save_settings(s, PaymentSettingsDraft("sandbox"))
    return make_client(db, "Cascade Dental", billing_emails="ap@cascade.example, owner@cascade.example",
                       autopay=True)


def _open_invoice(db, client_id: int, amount: str = "100.00") -> int:
    inv_id = one_time(db, client_id, ("Project", "1", amount))
    issue_ids(db, [inv_id], dt.date.today())
    return inv_id


def _save_method(db, sandbox: SandboxGateway, client_id: int, token: str = "pm_card_visa") -> str:
    """What the client does: open the setup link and save a method; then the app polls."""
    link = methods.create_setup_link(db, sandbox, client_id)
    sandbox.complete_setup_session(_session_id(db, link.link_id), token)
    report = methods.poll_setup_links(db, sandbox)
    assert len(report.completed) == 1, report
    return report.completed[0]


def _session_id(db, link_id: int) -> str:
    with db.session() as s:
        return s.get(SetupLink, link_id).session_id


def _attempts(db, invoice_id: int) -> list[ChargeAttempt]:
    with db.session() as s:
        return list(s.scalars(select(ChargeAttempt).where(ChargeAttempt.invoice_id == invoice_id)
                              .order_by(ChargeAttempt.id)))


def _payments(db, invoice_id: int) -> list[Payment]:
    with db.session() as s:
        return list(s.scalars(select(Payment).where(Payment.invoice_id == invoice_id)))


def _ledger_for(sandbox: SandboxGateway, invoice_id: int) -> list:
    return [c for c in sandbox.ledger_charges() if c.metadata.get("mspbill_invoice_id") == str(invoice_id)]


# --- payment methods -------------------------------------------------------------------


def test_a_setup_link_saves_the_clients_card_as_the_default(db, sandbox, client_id) -> None:
    link = methods.create_setup_link(db, sandbox, client_id)
    assert link.url.startswith("https://sandbox.mspbill.invalid/setup/")
    with db.session() as s:
        profile = methods.payment_profile(s, client_id, ProcessorMode.SANDBOX)
    assert profile.open_link is not None and profile.methods == []
    assert any("no card or bank account" in w for w in profile.warnings)

    assert methods.poll_setup_links(db, sandbox).completed == []  # the client has not opened it yet
    sandbox.complete_setup_session(_session_id(db, link.link_id), "pm_card_visa")
    report = methods.poll_setup_links(db, sandbox)
    assert report.completed == ["Cascade Dental: Visa ending 4242"]

    with db.session() as s:
        profile = methods.payment_profile(s, client_id, ProcessorMode.SANDBOX)
        assert s.get(SetupLink, link.link_id).status is SetupLinkStatus.COMPLETE
        stored = s.scalars(select(SavedPaymentMethod)).one()
    assert profile.default_method is not None and profile.default_method.label == "Visa ending 4242"
    assert profile.open_link is None and profile.warnings == []
    # Only the id and the display facts are kept.
    assert (stored.brand, stored.last4, stored.kind) == ("visa", "4242", "card")
    assert stored.method_id.startswith("pm_")
    # The processor's customer has it as its default too.
    assert sandbox.get_customer(stored.customer_id).default_method_id == stored.method_id


def test_a_new_link_replaces_the_open_one_and_an_unused_link_expires(db, sandbox, client_id, clock) -> None:
    first = methods.create_setup_link(db, sandbox, client_id)
    second = methods.create_setup_link(db, sandbox, client_id)
    with db.session() as s:
        assert s.get(SetupLink, first.link_id).status is SetupLinkStatus.CANCELED
    clock.advance(hours=25)
    report = methods.poll_setup_links(db, sandbox, now=clock.now)
    assert report.expired == 1 and report.completed == []
    with db.session() as s:
        assert s.get(SetupLink, second.link_id).status is SetupLinkStatus.EXPIRED


def test_the_setup_link_email_goes_to_the_billing_addresses_through_the_outbox(db, sandbox, client_id) -> None:
    from mspbill.db.models import OutboxMessage
    from mspbill.mail.settings import MailSettingsDraft, save_mail_settings

    link = methods.create_setup_link(db, sandbox, client_id)
    with db.write_session() as s, s.begin():
        with pytest.raises(ValidationError, match="not set up yet"):
            methods.queue_setup_link_email(s, link.link_id)
    with db.write_session() as s, s.begin():
        save_mail_settings(s, MailSettingsDraft(host="127.0.0.1", port="2525", security="none",
                                                from_address="billing@acme.example"))
        message_id = methods.queue_setup_link_email(s, link.link_id)
    with db.session() as s:
        msg = s.get(OutboxMessage, message_id)
        assert (msg.kind, msg.to_addrs, msg.cc_addrs) == ("setup_link", "ap@cascade.example", "owner@cascade.example")
        assert link.url in msg.body and "Acme IT" in msg.subject


def test_an_existing_customer_is_found_by_email_and_linked_with_its_default_method(db, sandbox, client_id) -> None:
    existing = sandbox.create_customer(name="Cascade Dental LLC", email="AP@cascade.example", metadata={},
                                       idempotency_key="k-existing")
    sandbox.attach_test_method(existing.customer_id, "pm_card_mastercard")
    choices = methods.find_existing_customers(db, sandbox, client_id)
    assert [(c.customer_id, c.default_method_label) for c in choices] == [
        (existing.customer_id, "Mastercard ending 4444")]

    result = methods.link_existing_customer(db, sandbox, client_id, existing.customer_id)
    assert result.default_label == "Mastercard ending 4444" and result.replaced_customer is None
    other = make_client(db, "Other Co")
    with pytest.raises(ValidationError, match="already linked to Cascade Dental"):
        methods.link_existing_customer(db, sandbox, other, existing.customer_id)
    with pytest.raises(ValidationError, match="starts with cus_"):
        methods.link_existing_customer(db, sandbox, other, "ap@cascade.example")


def test_cards_expiring_before_the_next_run_are_warned_about(db, sandbox, client_id) -> None:
    _save_method(db, sandbox, client_id, "pm_card_visa_expiring")
    with db.session() as s:
        profile = methods.payment_profile(s, client_id, ProcessorMode.SANDBOX)
    assert profile.default_method.expires_before_next_run and not profile.default_method.expired
    assert any("before the next autopay run" in w for w in profile.warnings)


def test_removing_the_default_detaches_it_and_promotes_the_other(db, sandbox, client_id) -> None:
    _save_method(db, sandbox, client_id, "pm_card_visa")
    _save_method(db, sandbox, client_id, "pm_card_mastercard")
    with db.session() as s:
        rows = {r.last4: r for r in s.scalars(select(SavedPaymentMethod))}
    assert rows["4444"].is_default and not rows["4242"].is_default
    text = methods.remove_method(db, sandbox, rows["4444"].id)
    assert "Visa ending 4242 is now the default" in text
    assert rows["4444"].method_id not in {m.method_id for m in sandbox.list_methods(rows["4444"].customer_id)}
    with db.session() as s:
        assert s.get(SavedPaymentMethod, rows["4444"].id).status is SavedMethodStatus.REMOVED


def test_a_customer_deleted_in_the_dashboard_is_unlinked_on_refresh(db, sandbox, client_id) -> None:
    _save_method(db, sandbox, client_id)
    with db.session() as s:
        customer_id = methods.customer_row(s, client_id, ProcessorMode.SANDBOX).customer_id
    sandbox.delete_customer(customer_id)
    report = methods.refresh_methods(db, sandbox, client_id)
    assert report.customer_deleted and report.removed == ["Visa ending 4242"]
    with db.session() as s:
        assert methods.payment_profile(s, client_id, ProcessorMode.SANDBOX).methods == []


# --- charges ----------------------------------------------------------------------------


def test_charging_an_invoice_records_one_payment_and_never_charges_twice(db, sandbox, client_id) -> None:
    _save_method(db, sandbox, client_id)
    inv_id = _open_invoice(db, client_id, "250.00")
    outcome = charges.charge_invoice(db, sandbox, inv_id)
    assert outcome.status is ChargeAttemptStatus.SUCCEEDED
    assert "Charged $250.00 to Visa ending 4242" in outcome.message
    inv = invoice(db, inv_id)
    assert inv.status is InvoiceStatus.PAID and inv.balance_cents == 0
    [payment] = _payments(db, inv_id)
    assert (payment.method, payment.amount_cents, payment.processor_intent_id) == (
        PaymentMethod.CARD, 25000, outcome.intent_id)
    with pytest.raises(ValidationError, match="nothing left to pay"):
        charges.charge_invoice(db, sandbox, inv_id)
    assert len(_ledger_for(sandbox, inv_id)) == 1
    # The key was written before the call, and the processor saw it.
    [attempt] = _attempts(db, inv_id)
    assert _ledger_for(sandbox, inv_id)[0].metadata["mspbill_attempt_key"] == attempt.idempotency_key


def test_a_second_attempt_cannot_start_while_one_is_in_flight(db, sandbox, client_id) -> None:
    _save_method(db, sandbox, client_id)
    inv_id = _open_invoice(db, client_id)
    charges.start_attempt(db, sandbox, inv_id)  # written and committed; the "other window" is calling Stripe
    with pytest.raises(ValidationError, match="under way"):
        charges.charge_invoice(db, sandbox, inv_id)
    assert _ledger_for(sandbox, inv_id) == []


def test_the_database_refuses_two_attempts_in_flight_for_one_invoice(db, sandbox, client_id) -> None:
    """Even code that skips the plan's check cannot start a second one (partial unique index)."""
    from sqlalchemy.exc import IntegrityError

    _save_method(db, sandbox, client_id)
    inv_id = _open_invoice(db, client_id)
    charges.start_attempt(db, sandbox, inv_id)
    [first] = _attempts(db, inv_id)
    with pytest.raises(IntegrityError), db.write_session() as s, s.begin():
        s.add(ChargeAttempt(invoice_id=inv_id, client_id=client_id, mode=first.mode, idempotency_key="other",
                            amount_cents=100, currency="USD", customer_id=first.customer_id,
                            method_id=first.method_id, method_kind="card", status=ChargeAttemptStatus.UNKNOWN))


@pytest.mark.parametrize(("token", "code", "hard"), [
    ("pm_card_visa_chargeDeclinedInsufficientFunds", "insufficient_funds", False),
    ("pm_card_visa_chargeDeclinedLostCard", "lost_card", True),
    ("pm_card_chargeDeclinedExpiredCard", "expired_card", True),
    ("pm_card_authenticationRequired", "authentication_required", True),
])
def test_declines_are_recorded_with_their_code_and_hard_ones_stop_the_method(
        db, sandbox, client_id, token: str, code: str, hard: bool) -> None:
    _save_method(db, sandbox, client_id, token)
    inv_id = _open_invoice(db, client_id)
    outcome = charges.charge_invoice(db, sandbox, inv_id)
    assert outcome.status is ChargeAttemptStatus.DECLINED and outcome.hard_decline is hard
    [attempt] = _attempts(db, inv_id)
    assert attempt.decline_code == code
    assert invoice(db, inv_id).status is InvoiceStatus.OPEN and _payments(db, inv_id) == []
    with db.session() as s:
        plan = charges.plan_charge(s, inv_id, ProcessorMode.SANDBOX)
    if hard:
        assert "will not be retried" in outcome.message
        assert any("declined for good" in p for p in plan.problems)
    else:
        assert "retried later" in outcome.message and plan.problems == []


def test_a_bank_debit_stays_processing_until_it_settles(db, sandbox, client_id, clock) -> None:
    _save_method(db, sandbox, client_id, "pm_usBankAccount_success")
    inv_id = _open_invoice(db, client_id)
    outcome = charges.charge_invoice(db, sandbox, inv_id)
    assert outcome.status is ChargeAttemptStatus.PROCESSING
    assert invoice(db, inv_id).status is InvoiceStatus.OPEN
    with pytest.raises(ValidationError, match="still processing"):
        charges.charge_invoice(db, sandbox, inv_id)
    assert charges.sync_charges(db, sandbox, now=clock.now).still_processing == 1
    clock.advance(days=4, minutes=1)
    report = charges.sync_charges(db, sandbox, now=clock.now)
    assert len(report.succeeded) == 1
    [payment] = _payments(db, inv_id)
    assert payment.method is PaymentMethod.BANK_DEBIT
    assert invoice(db, inv_id).status is InvoiceStatus.PAID


def test_a_bank_debit_that_bounces_is_a_decline(db, sandbox, client_id, clock) -> None:
    _save_method(db, sandbox, client_id, "pm_usBankAccount_accountClosed")
    inv_id = _open_invoice(db, client_id)
    charges.charge_invoice(db, sandbox, inv_id)
    clock.advance(days=5)
    report = charges.sync_charges(db, sandbox, now=clock.now)
    assert len(report.failed) == 1 and _payments(db, inv_id) == []
    [attempt] = _attempts(db, inv_id)
    assert (attempt.status, attempt.decline_code, attempt.decline_hard) == (
        ChargeAttemptStatus.DECLINED, "account_closed", True)


def test_a_timeout_after_the_charge_is_unknown_then_found_and_recorded_once(db, sandbox, client_id, clock) -> None:
    _save_method(db, sandbox, client_id)
    inv_id = _open_invoice(db, client_id)
    sandbox.inject_failure("charge", "timeout_after")
    outcome = charges.charge_invoice(db, sandbox, inv_id)
    assert outcome.status is ChargeAttemptStatus.UNKNOWN
    assert invoice(db, inv_id).status is InvoiceStatus.OPEN  # never recorded as a failure, nor as paid
    assert [c.status for c in _ledger_for(sandbox, inv_id)] == [ChargeStatus.SUCCEEDED]
    with pytest.raises(ValidationError, match="no known outcome"):
        charges.charge_invoice(db, sandbox, inv_id)

    report = charges.sync_charges(db, sandbox, now=clock.now)
    assert len(report.succeeded) == 1
    assert invoice(db, inv_id).status is InvoiceStatus.PAID
    assert len(_payments(db, inv_id)) == 1 and len(_ledger_for(sandbox, inv_id)) == 1
    # Asking again changes nothing.
    charges.sync_charges(db, sandbox, now=clock.now)
    assert len(_payments(db, inv_id)) == 1


def test_a_timeout_before_the_charge_is_resent_with_the_same_key(db, sandbox, client_id, clock) -> None:
    _save_method(db, sandbox, client_id)
    inv_id = _open_invoice(db, client_id)
    sandbox.inject_failure("charge", "timeout_before")
    assert charges.charge_invoice(db, sandbox, inv_id).status is ChargeAttemptStatus.UNKNOWN
    assert _ledger_for(sandbox, inv_id) == []
    [attempt] = _attempts(db, inv_id)
    outcome = charges.resolve_attempt(db, sandbox, attempt.id, now=clock.now)
    assert outcome.status is ChargeAttemptStatus.SUCCEEDED
    [charge] = _ledger_for(sandbox, inv_id)
    assert charge.metadata["mspbill_attempt_key"] == attempt.idempotency_key
    assert len(_attempts(db, inv_id)) == 1


def test_an_attempt_left_pending_by_a_crash_is_finished_without_a_second_charge(db, sandbox, client_id,
                                                                                 clock) -> None:
    _save_method(db, sandbox, client_id)
    inv_id = _open_invoice(db, client_id)
    attempt_id, request = charges.start_attempt(db, sandbox, inv_id)
    sandbox.charge(request)  # the processor charged; the app died before writing the answer
    clock.advance(minutes=11)
    outcome = charges.resolve_attempt(db, sandbox, attempt_id, now=clock.now)
    assert outcome.status is ChargeAttemptStatus.SUCCEEDED
    assert len(_ledger_for(sandbox, inv_id)) == 1 and len(_payments(db, inv_id)) == 1


def test_an_unknown_attempt_that_never_reached_the_processor_is_closed_after_a_day(db, sandbox, client_id,
                                                                                   clock) -> None:
    _save_method(db, sandbox, client_id)
    inv_id = _open_invoice(db, client_id)
    sandbox.inject_failure("charge", "server_error")
    charges.charge_invoice(db, sandbox, inv_id)
    clock.advance(hours=25)
    [attempt] = _attempts(db, inv_id)
    outcome = charges.resolve_attempt(db, sandbox, attempt.id, now=clock.now)
    assert outcome.status is ChargeAttemptStatus.NOT_CHARGED and _ledger_for(sandbox, inv_id) == []
    # Now it can be charged again, with a new key.
    assert charges.charge_invoice(db, sandbox, inv_id).status is ChargeAttemptStatus.SUCCEEDED
    keys = {a.idempotency_key for a in _attempts(db, inv_id)}
    assert len(keys) == 2


def test_a_rate_limited_charge_charged_nothing_and_can_be_tried_again(db, sandbox, client_id) -> None:
    _save_method(db, sandbox, client_id)
    inv_id = _open_invoice(db, client_id)
    sandbox.inject_failure("charge", "rate_limit")
    outcome = charges.charge_invoice(db, sandbox, inv_id)
    assert outcome.status is ChargeAttemptStatus.NOT_CHARGED and "slow down" in outcome.message
    assert charges.charge_invoice(db, sandbox, inv_id).status is ChargeAttemptStatus.SUCCEEDED


def test_a_customer_deleted_at_the_processor_is_a_clear_refusal(db, sandbox, client_id) -> None:
    _save_method(db, sandbox, client_id)
    inv_id = _open_invoice(db, client_id)
    with db.session() as s:
        sandbox.delete_customer(methods.customer_row(s, client_id, ProcessorMode.SANDBOX).customer_id)
    outcome = charges.charge_invoice(db, sandbox, inv_id)
    assert outcome.status is ChargeAttemptStatus.NOT_CHARGED
    assert "deleted" in outcome.message.lower() or "no longer" in outcome.message.lower()


def test_an_invoice_above_the_autopay_cap_needs_approval(db, sandbox, client_id) -> None:
    from mspbill.clients import client_draft, update_client

    with db.write_session() as s, s.begin():
        client = s.get(__import__("mspbill.db.models", fromlist=["Client"]).Client, client_id)
        draft = client_draft(client)
        draft.autopay_cap = "500"
        update_client(s, client_id, draft)
    _save_method(db, sandbox, client_id)
    inv_id = _open_invoice(db, client_id, "750.00")
    with db.session() as s:
        plan = charges.plan_charge(s, inv_id, ProcessorMode.SANDBOX)
    assert plan.over_cap and plan.cap_cents == 50000
    with pytest.raises(ValidationError, match="autopay cap"):
        charges.charge_invoice(db, sandbox, inv_id)
    assert _attempts(db, inv_id) == []
    assert charges.charge_invoice(db, sandbox, inv_id, approve_over_cap=True).status is ChargeAttemptStatus.SUCCEEDED


def test_without_a_method_nothing_is_attempted(db, sandbox, client_id) -> None:
    inv_id = _open_invoice(db, client_id)
    with pytest.raises(ValidationError, match="no card or bank account on file"):
        charges.charge_invoice(db, sandbox, inv_id)
    assert _attempts(db, inv_id) == []


# --- refunds ----------------------------------------------------------------------------


def _paid_by_card(db, sandbox, client_id, amount: str = "200.00") -> tuple[int, int]:
    _save_method(db, sandbox, client_id)
    inv_id = _open_invoice(db, client_id, amount)
    outcome = charges.charge_invoice(db, sandbox, inv_id)
    return inv_id, outcome.payment_id  # type: ignore[return-value]


def test_a_full_refund_with_a_credit_note_leaves_the_invoice_settled(db, sandbox, client_id) -> None:
    inv_id, payment_id = _paid_by_card(db, sandbox, client_id)
    outcome = refunds.refund_payment(db, sandbox, payment_id, amount=None, reason="Service cancelled",
                                     credit_note=True)
    assert outcome.amount_cents == 20000 and outcome.credit_note_number
    inv = invoice(db, inv_id)
    assert (inv.status, inv.balance_cents, inv.paid_cents, inv.credited_cents) == (InvoiceStatus.PAID, 0, 0, 20000)
    assert [r.amount_cents for r in sandbox.ledger_refunds()] == [20000]
    with pytest.raises(ValidationError, match="refunded in full"):
        refunds.refund_payment(db, sandbox, payment_id, amount="1", reason="again", credit_note=False)


def test_a_partial_refund_without_a_credit_note_reopens_the_invoice(db, sandbox, client_id) -> None:
    inv_id, payment_id = _paid_by_card(db, sandbox, client_id)
    outcome = refunds.refund_payment(db, sandbox, payment_id, amount="50.00", reason="Wrong seat count",
                                     credit_note=False)
    assert "now shows $50.00 due again" in outcome.message
    inv = invoice(db, inv_id)
    assert (inv.status, inv.balance_cents) == (InvoiceStatus.OPEN, 5000)
    # Aging agrees with the invoice: the refund counts from its day.
    with db.session() as s:
        items = [i for i in open_items(s, dt.date.today()) if i.invoice_id == inv_id]
    assert [i.balance_cents for i in items] == [5000]
    with pytest.raises(ValidationError, match=r"At most \$150.00"):
        refunds.refund_payment(db, sandbox, payment_id, amount="150.01", reason="too much", credit_note=False)
    with pytest.raises(ValidationError, match="why"):
        refunds.refund_payment(db, sandbox, payment_id, amount="1", reason="  ", credit_note=False)


def test_a_refund_credit_note_matches_the_refund_exactly_with_tax(db, sandbox) -> None:
    setup_office(db)
    with db.write_session() as s, s.begin():
        save_settings(s, PaymentSettingsDraft("sandbox"))
    client_id = make_client(db, "Taxed Co", tax_rate="8.875", autopay=True)
    inv_id, payment_id = _paid_by_card(db, sandbox, client_id, "333.33")
    for amount in ("10.01", "57.77", "0.99"):
        outcome = refunds.refund_payment(db, sandbox, payment_id, amount=amount, reason="goodwill", credit_note=True)
        assert outcome.credit_note_number
    inv = invoice(db, inv_id)
    assert inv.balance_cents == 0 and inv.status is InvoiceStatus.PAID


def test_an_unknown_refund_is_found_out_before_the_invoice_changes(db, sandbox, client_id, clock) -> None:
    from mspbill.db.models import Refund, RefundStatus
    from mspbill.payments.sync import sync_all

    inv_id, payment_id = _paid_by_card(db, sandbox, client_id)
    sandbox.inject_failure("refund", "timeout_after")
    outcome = refunds.refund_payment(db, sandbox, payment_id, amount=None, reason="dispute", credit_note=False)
    assert outcome.status is RefundStatus.UNKNOWN
    assert invoice(db, inv_id).status is InvoiceStatus.PAID  # untouched until known
    report = sync_all(db, sandbox, now=clock.now)
    assert report.refunds_settled == 1
    assert invoice(db, inv_id).balance_cents == 20000
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Refund).where(
            Refund.status == RefundStatus.SUCCEEDED)) == 1
    assert len(sandbox.ledger_refunds()) == 1


def test_a_hand_recorded_payment_cannot_be_refunded_through_the_processor(db, sandbox, client_id) -> None:
    from mspbill.payments.manual import record_payment

    inv_id = _open_invoice(db, client_id)
    with db.write_session() as s, s.begin():
        pid = record_payment(s, inv_id, "100", "check", reference="1001").id
    with pytest.raises(ValidationError, match="not taken through Stripe"):
        refunds.refund_payment(db, sandbox, pid, amount=None, reason="x", credit_note=False)


def test_every_step_leaves_an_audit_entry(db, sandbox, client_id) -> None:
    _, payment_id = _paid_by_card(db, sandbox, client_id)
    refunds.refund_payment(db, sandbox, payment_id, amount="1", reason="test", credit_note=False)
    with db.session() as s:
        actions = set(s.scalars(select(AuditEntry.action)))
    assert {"client.setup_link", "client.method_saved", "invoice.charge_started", "payment.charged",
            "payment.refund_started", "payment.refunded"} <= actions


# --- autopay settings per client --------------------------------------------------------


def test_a_clients_own_autopay_discount_overrides_the_companys(db) -> None:
    from billing_helpers import generate, make_agreement

    from mspbill.agreements import LineDraft
    from mspbill.db.models import Invoice, LineKind
    from mspbill.periods import Month

    setup_office(db, autopay_discount_percent="2")
    own = make_client(db, "Own Discount", autopay=True, autopay_discount="5")
    none = make_client(db, "No Discount", autopay=True, autopay_discount="0")
    default = make_client(db, "Company Discount", autopay=True)
    for cid in (own, none, default):
        make_agreement(db, cid, "2026-01-01", [LineDraft("Managed seats", "10", "100.00", True)])
    generate(db, Month(2026, 2))
    with db.session() as s:
        discounts = {inv.client_id: [ln.amount_cents for ln in inv.lines if ln.kind is LineKind.DISCOUNT]
                     for inv in s.scalars(select(Invoice))}
    assert discounts == {own: [-5000], none: [], default: [-2000]}


def test_autopay_discount_and_cap_are_validated(db) -> None:
    setup_office(db)
    with pytest.raises(ValidationError) as info:
        make_client(db, "Bad", autopay_discount="60", autopay_cap="-5")
    assert {i.field for i in info.value.issues} == {"autopay_discount", "autopay_cap"}


def test_the_processor_choice_is_validated(db) -> None:
    from mspbill.payments.processor import validate_settings

    _, issues = validate_settings(PaymentSettingsDraft("paypal", "http://example.com", "48"))
    assert {i.field for i in issues} == {"processor", "setup_success_url", "setup_link_hours"}
    values, issues = validate_settings(PaymentSettingsDraft("Stripe", "https://msp.example/thanks", "12"))
    assert issues == [] and values["processor"] is ProcessorKind.STRIPE


# --- what the client's documents say ------------------------------------------------------


def _pdf_text(data: bytes) -> str:
    import io

    import pypdf

    return " ".join(" ".join(p.extract_text().split()) for p in pypdf.PdfReader(io.BytesIO(data)).pages)


def test_the_invoice_pdf_names_the_card_before_and_after_the_charge_and_shows_refunds(db, sandbox,
                                                                                      client_id) -> None:
    from mspbill.pdf.invoice import invoice_pdf

    _save_method(db, sandbox, client_id)
    inv_id = _open_invoice(db, client_id, "200.00")
    with db.session() as s:
        before = _pdf_text(invoice_pdf(s, inv_id).data)
    assert "Will be charged automatically on" in before and "to Visa ending 4242" in before

    payment_id = charges.charge_invoice(db, sandbox, inv_id).payment_id
    with db.session() as s:
        after = _pdf_text(invoice_pdf(s, inv_id).data)
    assert "Paid by Visa ending 4242 on" in after

    refunds.refund_payment(db, sandbox, payment_id, amount="30", reason="Seat removed", credit_note=False)
    with db.session() as s:
        refunded = _pdf_text(invoice_pdf(s, inv_id).data)
    assert "Refund" in refunded and "to Visa ending 4242" in refunded and "$30.00" in refunded
    assert "Balance due $30.00" in refunded


def test_the_statement_shows_the_refund_and_still_balances(db, sandbox, client_id) -> None:
    from mspbill.aging import open_items
    from mspbill.clients import credit_balance
    from mspbill.pdf.statement import statement_document

    _save_method(db, sandbox, client_id)
    inv_id = _open_invoice(db, client_id, "200.00")
    payment_id = charges.charge_invoice(db, sandbox, inv_id).payment_id
    refunds.refund_payment(db, sandbox, payment_id, amount="30", reason="Seat removed", credit_note=False)
    today = dt.date.today()
    with db.session() as s:
        doc = statement_document(s, client_id, today - dt.timedelta(days=30), today)
        owed = sum(i.balance_cents for i in open_items(s, today, client_id))
        credit = credit_balance(s, client_id)
    kinds = [a.kind for a in doc.activity]
    assert kinds == ["invoice", "payment", "refund"]
    assert doc.closing_cents == owed - credit == 3000


@pytest.mark.parametrize(("token", "charge", "expected_pdf", "expected_mail"), [
    (None, False, "Automatic payment is not set up yet. Please pay as follows",
     "We have no payment method on file that we can charge"),
    ("pm_card_visa_chargeDeclinedLostCard", True, "The automatic payment from Visa ending 9987 cannot be made.",
     "We have no payment method on file that we can charge"),
    ("pm_card_visa_chargeDeclinedInsufficientFunds", True,
     "The automatic charge to Visa ending 9995 on", "did not go through"),
    ("pm_usBankAccount_success", True, "A bank debit from STRIPE TEST BANK ending 6789 is in progress",
     "A bank debit for the balance is in progress"),
])
def test_an_autopay_invoice_says_what_will_really_happen(db, sandbox, client_id, token, charge, expected_pdf,
                                                         expected_mail) -> None:
    """No method, a method declined for good, a soft decline, a debit settling: never "nothing to do"
    when nothing will charge it."""
    from mspbill.mail.templates import invoice_values
    from mspbill.pdf.invoice import invoice_pdf

    if token:
        _save_method(db, sandbox, client_id, token)
    inv_id = _open_invoice(db, client_id)
    if charge:
        charges.charge_invoice(db, sandbox, inv_id)
    with db.session() as s:
        text = _pdf_text(invoice_pdf(s, inv_id).data)
        mail = invoice_values(s, s.get(__import__("mspbill.db.models", fromlist=["Invoice"]).Invoice, inv_id))
    assert expected_pdf in text
    assert expected_mail in mail["payment_method"]
    if "not set up" in expected_pdf or "cannot be made" in expected_pdf:
        assert "nothing for you to do" not in text
