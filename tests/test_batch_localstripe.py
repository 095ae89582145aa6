"""A month-end run end to end through the real StripeGateway (stripe-python over HTTP) against
localstripe on 127.0.0.1: four autopay clients whose cards are saved at "Stripe", one of which
declines every charge (4000 0000 0000 0341, Stripe's "attaches, then charges fail" card).

localstripe reports a decline as a bare `card_declined` (no decline code), which is a soft
decline: retried on the schedule, 3 days after the first failure.  Hard declines, unknown
outcomes and crashes are tested on the sandbox processor (tests/test_batch_crash.py), which
has what localstripe lacks (idempotency, decline codes, ACH, Checkout)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

pytest.importorskip("localstripe", reason="localstripe (PyPI) is needed for the Stripe HTTP end-to-end run")
stripe = pytest.importorskip("stripe", reason="stripe-python is needed for the Stripe gateway")

from billing_helpers import make_agreement, make_client, setup_office

from mspbill.agreements import LineDraft
from mspbill.batch.plan import LeftOutReason, judge_open_invoices
from mspbill.batch.run import RunOptions, run_batch
from mspbill.db.models import (
    BatchRunStatus,
    ChargeAttempt,
    ChargeAttemptStatus,
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentMethod,
)
from mspbill.payments.gateway import ChargeRequest, ProcessorMode
from mspbill.payments.methods import ensure_customer, store_method
from mspbill.payments.processor import PaymentSettingsDraft, save_settings
from mspbill.payments.stripe_gateway import StripeGateway
from mspbill.periods import Month
from tests.localstripe_server import TEST_KEY, LocalStripe

DECLINING_CARD = "4000000000000341"   # localstripe: attaching succeeds, every charge is declined
GOOD_CARDS = ("4242424242424242", "5555555555554444", "4000056655665556")


class LocalstripeGateway(StripeGateway):
    """StripeGateway minus the PaymentIntent parameters localstripe refuses ("Unexpected
    allowed_payment_method_types"); tests/test_stripe_gateway.py checks on its stub that they are sent."""

    def _payment_intent_params(self, request: ChargeRequest) -> Any:
        params = dict(super()._payment_intent_params(request))
        for name in ("allowed_payment_method_types", "description", "statement_descriptor_suffix"):
            params.pop(name, None)
        return params


@pytest.fixture(scope="module")
def localstripe() -> Iterator[LocalStripe]:
    with LocalStripe.start() as server:
        yield server


@pytest.fixture
def ls(localstripe: LocalStripe) -> LocalStripe:
    localstripe.flush()
    return localstripe


def _stripe(ls: LocalStripe) -> Any:
    return stripe.StripeClient(TEST_KEY, base_addresses={"api": ls.url}, max_network_retries=0)


def _save_card(db, ls: LocalStripe, gateway: StripeGateway, client_id: int, number: str) -> str:
    """What the client's setup page does at Stripe (a card saved to their customer), then what
    mspbill keeps of it (the method's facts, never the number)."""
    customer_id = ensure_customer(db, gateway, client_id)
    direct = _stripe(ls)
    method = direct.v1.payment_methods.create(params={
        "type": "card", "card": {"number": number, "exp_month": 12, "exp_year": dt.date.today().year + 3,
                                 "cvc": "123"}})
    direct.v1.payment_methods.attach(method.id, params={"customer": customer_id})
    facts = gateway.get_method(method.id)
    with db.write_session() as s, s.begin():
        store_method(s, client_id, gateway.mode, facts, customer_id, "test", make_default=True)
    return method.id


def test_a_month_end_run_through_stripe_charges_the_good_cards_and_schedules_a_retry_for_the_decline(
        db, ls: LocalStripe, tmp_path: Path) -> None:
    today = dt.date.today()
    month = Month.of(today)
    setup_office(db, invoice_number_pattern="INV-{n:05d}")
    with db.write_session() as s, s.begin():
        save_settings(s, PaymentSettingsDraft("stripe"))
    gateway = LocalstripeGateway(TEST_KEY, api_base=ls.url, max_network_retries=0)
    assert gateway.mode is ProcessorMode.TEST
    start = month.shift(-1).first_day
    clients: dict[int, str] = {}
    for n, number in enumerate((*GOOD_CARDS, DECLINING_CARD)):
        name = f"Stripe Client {n + 1}" + (" (declines)" if number == DECLINING_CARD else "")
        client_id = make_client(db, name, billing_emails=f"ap{n}@client{n}.example", autopay=True)
        make_agreement(db, client_id, start.isoformat(), [LineDraft("Managed seats", str(n + 2), f"{95 + n}.50")])
        _save_card(db, ls, gateway, client_id, number)
        clients[client_id] = number
    declining = next(c for c, number in clients.items() if number == DECLINING_CARD)

    report = run_batch(db, gateway, month, backup_dir=tmp_path / "backups", options=RunOptions(resolve_pause=0))

    assert report.status is BatchRunStatus.FINISHED, report.message
    assert report.mode is ProcessorMode.TEST
    assert (report.generated, report.issued) == (4, 4)
    if db.is_sqlite:  # a server is backed up with its own tools
        assert report.backup_path and Path(report.backup_path).exists()
    assert report.counts() == {"succeeded": 3, "processing": 0, "failed": 1, "unknown": 0, "not_charged": 0,
                               "left_out": 0, "not_started": 0}
    assert report.problems == []
    with db.session() as s:
        invoices = {i.client_id: i for i in s.scalars(select(Invoice))}
        payments = {p.invoice_id: p for p in s.scalars(select(Payment))}
        attempts = {a.client_id: a for a in s.scalars(select(ChargeAttempt))}
    lines = {ln.client_id: ln for ln in report.lines}
    assert set(lines) == set(clients)
    direct = _stripe(ls)
    for client_id in clients:
        inv, line, attempt = invoices[client_id], lines[client_id], attempts[client_id]
        assert (line.invoice_id, line.invoice_number, line.amount_cents) == (inv.id, inv.number, inv.total_cents)
        assert attempt.batch_run_id == report.run_id and attempt.origin == "batch"
        if client_id == declining:
            continue
        # Paid: a Payment for the PaymentIntent Stripe made, the invoice closed.
        payment = payments[inv.id]
        assert inv.status is InvoiceStatus.PAID and inv.paid_cents == inv.total_cents
        assert (payment.method, payment.amount_cents, payment.currency) == (PaymentMethod.CARD, inv.total_cents,
                                                                            inv.currency)
        assert payment.processor_intent_id and payment.processor_intent_id == attempt.intent_id
        assert line.status == "succeeded" and line.message == attempt.message
        assert line.method_label.endswith(clients[client_id][-4:])
        intent = direct.v1.payment_intents.retrieve(payment.processor_intent_id)
        assert (intent.status, intent.amount, intent.currency) == ("succeeded", inv.total_cents, "usd")
        assert intent.metadata["mspbill_invoice_id"] == str(inv.id)
        assert intent.metadata["mspbill_attempt_key"] == attempt.idempotency_key

    # The declining card: declined with Stripe's code, soft, retried 3 days after the failure.
    inv, line, attempt = invoices[declining], lines[declining], attempts[declining]
    assert inv.id not in payments and inv.status is InvoiceStatus.OPEN and inv.paid_cents == 0
    assert attempt.status is ChargeAttemptStatus.DECLINED
    assert (attempt.decline_code, attempt.decline_hard) == ("card_declined", False)
    assert line.status == "failed" and not line.hard
    assert line.message == "The bank refused it (“Your card was declined”)."
    failed_on = (attempt.resolved_at or attempt.created_at).astimezone().date()
    assert line.next_retry_on == failed_on + dt.timedelta(days=3)
    assert report.setup_links_sent == []     # a soft decline keeps the card
    charges = direct.v1.charges.list(params={"customer": attempt.customer_id}).data
    assert [(c.status, c.amount) for c in charges] == [("failed", inv.total_cents)]
    assert report.headline() == (f"The {month.label} run finished: 4 invoice(s) issued, 3 charged "
                                 f"({_money(report.collected())}), 1 declined.")
    assert report.collected() == {"USD": sum(invoices[c].total_cents for c in clients if c != declining)}
    with db.session() as s:
        charges_due, left_out = judge_open_invoices(s, ProcessorMode.TEST, today)
    assert charges_due == []
    assert [(lo.target.client_id, lo.reason) for lo in left_out] == [(declining, LeftOutReason.RETRY_LATER)]
    assert left_out[0].next_retry_on == line.next_retry_on

    # Run again the same day: nothing is charged twice, the decline is not retried early.
    intents_before = len(direct.v1.payment_intents.list().data)
    again = run_batch(db, gateway, month, backup_dir=tmp_path / "backups", options=RunOptions(resolve_pause=0))
    assert again.status is BatchRunStatus.FINISHED
    assert (again.generated, again.issued, again.lines) == (0, 0, [])
    assert [(lo.target.client_id, lo.reason) for lo in again.left_out] == [(declining, LeftOutReason.RETRY_LATER)]
    assert len(direct.v1.payment_intents.list().data) == intents_before


def _money(totals: dict[str, int]) -> str:
    from mspbill.batch.plan import money_text

    return money_text(totals)
