"""The sandbox processor (mspbill/payments/sandbox.py) on real SQLite ledger files.

Time is moved with an injected clock (ACH settling, idempotency keys forgotten,
setup pages expiring); concurrency is real threads and real processes.  No mocks.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mspbill.payments.gateway import (
    AccountInfo,
    ChargeRequest,
    ChargeResult,
    ChargeStatus,
    CustomerInfo,
    Gateway,
    IdempotencyConflict,
    InvalidRequest,
    MethodFacts,
    MethodKind,
    NotFound,
    ProcessorMode,
    ProcessorUnavailable,
    RateLimited,
    RefundStatus,
    SetupStatus,
)
from mspbill.payments.sandbox import (
    SETUP_URL_PREFIX,
    TEST_TOKENS,
    SandboxConfig,
    SandboxGateway,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
START = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)
INVOICE = {"invoice": "INV-000001", "attempt": "1"}


class Clock:
    """The sandbox's clock, moved by hand."""

    def __init__(self, now: dt.datetime = START) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    return tmp_path / "sandbox-ledger.sqlite3"


@pytest.fixture
def gw(ledger: Path, clock: Clock) -> Iterator[SandboxGateway]:
    gateway = SandboxGateway(ledger, clock=clock)
    yield gateway
    gateway.close()


def make_customer(gw: SandboxGateway, key: str = "customer-1", email: str = "ap@cascade.example",
                  name: str = "Cascade Dental") -> CustomerInfo:
    return gw.create_customer(name=name, email=email, metadata={"client_id": "7"}, idempotency_key=key)


def with_method(gw: SandboxGateway, token: str = "pm_card_visa", key: str = "customer-1") -> MethodFacts:
    customer = make_customer(gw, key=key)
    return gw.attach_test_method(customer.customer_id, token)


def charge_request(method: MethodFacts, key: str = "INV-000001/1", amount_cents: int = 12_345,
                   currency: str = "usd", metadata: dict[str, str] | None = None) -> ChargeRequest:
    assert method.customer_id is not None
    return ChargeRequest(customer_id=method.customer_id, method_id=method.method_id, method_kind=method.kind,
                         amount_cents=amount_cents, currency=currency, idempotency_key=key,
                         metadata=INVOICE if metadata is None else metadata)


# --- the basics ------------------------------------------------------------------------------


def test_is_a_gateway_in_sandbox_mode(gw: SandboxGateway) -> None:
    assert isinstance(gw, Gateway)
    assert gw.mode is ProcessorMode.SANDBOX
    assert not gw.mode.moves_money
    assert gw.account() == AccountInfo(mode=ProcessorMode.SANDBOX, account_id="acct_sandbox",
                                       display_name="mspbill sandbox")


def test_ids_look_like_stripe_ids_with_a_sandbox_marker(gw: SandboxGateway) -> None:
    method = with_method(gw)
    session = gw.create_setup_session(customer_id=method.customer_id or "", currency="usd", success_url=None,
                                      metadata={}, idempotency_key="setup-1")
    charge = gw.charge(charge_request(method))
    refund = gw.refund(intent_id=charge.intent_id or "", amount_cents=100, idempotency_key="refund-1", metadata={})
    assert (method.customer_id or "").startswith("cus_sbx_")
    assert method.method_id.startswith("pm_sbx_")
    assert session.session_id.startswith("cs_sbx_")
    assert (charge.intent_id or "").startswith("pi_sbx_")
    assert (refund.refund_id or "").startswith("re_sbx_")


def test_clock_must_be_timezone_aware(ledger: Path) -> None:
    gateway = SandboxGateway(ledger, clock=lambda: dt.datetime(2026, 11, 1, 12, 0))
    with pytest.raises(ValueError, match="timezone-aware"):
        make_customer(gateway)


# --- customers ---------------------------------------------------------------------------------


def test_create_and_get_customer(gw: SandboxGateway) -> None:
    created = make_customer(gw)
    assert created.name == "Cascade Dental" and created.email == "ap@cascade.example"
    assert created.metadata == {"client_id": "7"} and created.created == START and not created.deleted
    assert gw.get_customer(created.customer_id) == created
    with pytest.raises(NotFound):
        gw.get_customer("cus_sbx_nobody")


def test_create_customer_is_idempotent_by_key(gw: SandboxGateway) -> None:
    first = make_customer(gw, key="customer-1")
    assert make_customer(gw, key="customer-1") == first
    assert gw.find_customers("ap@cascade.example") == [first]
    with pytest.raises(IdempotencyConflict) as conflict:
        make_customer(gw, key="customer-1", name="Someone Else")
    assert conflict.value.nothing_happened
    assert make_customer(gw, key="customer-2").customer_id != first.customer_id


def test_find_customers_ignores_case_and_lists_newest_first(gw: SandboxGateway, clock: Clock) -> None:
    older = make_customer(gw, key="c1", email="AP@Cascade.example")
    clock.advance(minutes=5)
    newer = make_customer(gw, key="c2", email="ap@cascade.EXAMPLE")
    make_customer(gw, key="c3", email="billing@other.example")
    assert [c.customer_id for c in gw.find_customers("Ap@Cascade.Example")] == [newer.customer_id,
                                                                                 older.customer_id]
    assert gw.find_customers("nobody@example.com") == []
    gw.delete_customer(newer.customer_id)
    assert [c.customer_id for c in gw.find_customers("ap@cascade.example")] == [older.customer_id]


def test_update_customer(gw: SandboxGateway) -> None:
    customer = make_customer(gw)
    visa = gw.attach_test_method(customer.customer_id, "pm_card_visa")
    amex = gw.attach_test_method(customer.customer_id, "pm_card_amex", make_default=False)
    assert gw.get_customer(customer.customer_id).default_method_id == visa.method_id

    updated = gw.update_customer(customer.customer_id, name="Cascade Dental LLC", email="pay@cascade.example",
                                 default_method_id=amex.method_id)
    assert (updated.name, updated.email, updated.default_method_id) == (
        "Cascade Dental LLC", "pay@cascade.example", amex.method_id)
    assert gw.find_customers("PAY@cascade.example") == [updated]

    other = make_customer(gw, key="customer-2")
    foreign = gw.attach_test_method(other.customer_id, "pm_card_mastercard")
    with pytest.raises(InvalidRequest, match="does not have a payment method"):
        gw.update_customer(customer.customer_id, default_method_id=foreign.method_id)
    assert gw.get_customer(customer.customer_id).default_method_id == amex.method_id


def test_deleted_customer(gw: SandboxGateway) -> None:
    method = with_method(gw)
    customer_id = method.customer_id or ""
    gw.delete_customer(customer_id)

    got = gw.get_customer(customer_id)
    assert got.deleted and got.customer_id == customer_id
    with pytest.raises(NotFound, match="deleted"):
        gw.charge(charge_request(method))
    with pytest.raises(NotFound, match="deleted"):
        gw.update_customer(customer_id, name="x")
    with pytest.raises(NotFound):
        gw.list_methods(customer_id)
    with pytest.raises(NotFound):
        gw.attach_test_method(customer_id, "pm_card_visa")
    assert gw.ledger_charges() == []


# --- payment methods -------------------------------------------------------------------------------

@pytest.mark.parametrize(("token", "kind", "brand", "last4", "label"), [
    ("pm_card_visa", MethodKind.CARD, "visa", "4242", "Visa ending 4242"),
    ("pm_card_mastercard", MethodKind.CARD, "mastercard", "4444", "Mastercard ending 4444"),
    ("pm_card_amex", MethodKind.CARD, "amex", "8431", "American Express ending 8431"),
    ("pm_card_visa_debit", MethodKind.CARD, "visa", "5556", "Visa ending 5556"),
    ("pm_usBankAccount_success", MethodKind.US_BANK_ACCOUNT, "", "6789", "STRIPE TEST BANK ending 6789"),
])
def test_test_methods_carry_what_a_person_recognises(gw: SandboxGateway, token: str, kind: MethodKind,
                                                     brand: str, last4: str, label: str) -> None:
    method = with_method(gw, token)
    assert (method.kind, method.brand, method.last4, method.label) == (kind, brand, last4, label)
    assert gw.get_method(method.method_id) == method
    if kind is MethodKind.CARD:
        # Valid test cards are good for years.
        assert not method.expires_before(START.date() + dt.timedelta(days=2 * 365))
    else:
        assert method.bank_name == "STRIPE TEST BANK" and method.exp_year is None


def test_every_test_token_attaches(gw: SandboxGateway) -> None:
    customer = make_customer(gw)
    for token in TEST_TOKENS:
        gw.attach_test_method(customer.customer_id, token)
    assert len(gw.list_methods(customer.customer_id)) == len(TEST_TOKENS)


def test_expiring_card_expires_this_month(gw: SandboxGateway) -> None:
    method = with_method(gw, "pm_card_visa_expiring")
    assert (method.exp_month, method.exp_year) == (11, 2026)
    assert not method.expires_before(dt.date(2026, 11, 30))
    assert method.expires_before(dt.date(2026, 12, 1))   # before the next monthly run
    assert gw.charge(charge_request(method)).status is ChargeStatus.SUCCEEDED   # still good today


def test_unknown_test_token_names_the_valid_ones(gw: SandboxGateway) -> None:
    customer = make_customer(gw)
    with pytest.raises(InvalidRequest, match="pm_card_visa_chargeDeclinedLostCard") as refused:
        gw.attach_test_method(customer.customer_id, "tok_visa")
    assert "tok_visa" in str(refused.value) and "pm_usBankAccount_success" in str(refused.value)


def test_list_methods_newest_first_and_default_choice(gw: SandboxGateway, clock: Clock) -> None:
    customer = make_customer(gw)
    visa = gw.attach_test_method(customer.customer_id, "pm_card_visa")
    clock.advance(minutes=1)
    bank = gw.attach_test_method(customer.customer_id, "pm_usBankAccount_success", make_default=False)
    assert [m.method_id for m in gw.list_methods(customer.customer_id)] == [bank.method_id, visa.method_id]
    assert gw.get_customer(customer.customer_id).default_method_id == visa.method_id


def test_detached_method(gw: SandboxGateway) -> None:
    method = with_method(gw)
    customer_id = method.customer_id or ""
    gw.detach_method(method.method_id)
    gw.detach_method(method.method_id)   # again: not an error

    assert gw.get_method(method.method_id).customer_id is None
    assert gw.list_methods(customer_id) == []
    assert gw.get_customer(customer_id).default_method_id is None
    with pytest.raises(InvalidRequest, match="detached"):
        gw.charge(charge_request(method))
    with pytest.raises(NotFound):
        gw.detach_method("pm_sbx_nothing")
    with pytest.raises(NotFound):
        gw.get_method("pm_sbx_nothing")
    assert gw.ledger_charges() == []


# --- setup pages ---------------------------------------------------------------------------------------


def _session(gw: SandboxGateway, customer_id: str, key: str = "setup-1", **kw: object):  # type: ignore[no-untyped-def]
    return gw.create_setup_session(customer_id=customer_id, currency="usd",
                                   success_url="https://example.com/thanks", metadata={"client_id": "7"},
                                   idempotency_key=key, **kw)  # type: ignore[arg-type]


def test_setup_session_open_then_complete(gw: SandboxGateway) -> None:
    customer = make_customer(gw)
    session = _session(gw, customer.customer_id)
    assert session.status is SetupStatus.OPEN and session.method_id is None
    assert session.url == SETUP_URL_PREFIX + session.session_id
    assert session.url.startswith("https://sandbox.mspbill.invalid/setup/cs_sbx_")
    assert session.expires_at == START + dt.timedelta(hours=24)
    assert _session(gw, customer.customer_id) == session   # same key: the same page

    done = gw.complete_setup_session(session.session_id, "pm_usBankAccount_success")
    assert done.status is SetupStatus.COMPLETE and done.method_id is not None and done.url is None
    assert gw.get_setup_session(session.session_id) == done
    assert gw.get_customer(customer.customer_id).default_method_id == done.method_id
    assert gw.get_method(done.method_id).label == "STRIPE TEST BANK ending 6789"

    with pytest.raises(InvalidRequest, match="already completed"):
        gw.complete_setup_session(session.session_id)
    assert gw.expire_setup_session(session.session_id) == done   # a finished page comes back as it is


def test_setup_session_expires(gw: SandboxGateway, clock: Clock) -> None:
    customer = make_customer(gw)
    session = _session(gw, customer.customer_id, expires_at=START + dt.timedelta(hours=2))
    assert session.expires_at == START + dt.timedelta(hours=2)
    clock.advance(hours=2)
    expired = gw.get_setup_session(session.session_id)
    assert expired.status is SetupStatus.EXPIRED and expired.url is None
    with pytest.raises(InvalidRequest, match="expired"):
        gw.complete_setup_session(session.session_id)

    other = _session(gw, customer.customer_id, key="setup-2")
    assert gw.expire_setup_session(other.session_id).status is SetupStatus.EXPIRED
    assert gw.get_setup_session(other.session_id).status is SetupStatus.EXPIRED
    with pytest.raises(InvalidRequest):
        gw.complete_setup_session(other.session_id)
    assert gw.list_methods(customer.customer_id) == []


def test_setup_session_lifetime_and_lookups(gw: SandboxGateway) -> None:
    customer = make_customer(gw)
    with pytest.raises(InvalidRequest, match="24 hours"):
        _session(gw, customer.customer_id, expires_at=START + dt.timedelta(hours=25))
    with pytest.raises(InvalidRequest, match="30 minutes"):
        _session(gw, customer.customer_id, key="setup-2", expires_at=START + dt.timedelta(minutes=5))
    with pytest.raises(ValueError, match="timezone-aware"):
        _session(gw, customer.customer_id, key="setup-3", expires_at=dt.datetime(2026, 11, 2))
    with pytest.raises(NotFound):
        gw.get_setup_session("cs_sbx_nothing")
    with pytest.raises(NotFound):
        _session(gw, "cus_sbx_nobody", key="setup-4")


# --- charges ---------------------------------------------------------------------------------------------


def test_card_charge_succeeds(gw: SandboxGateway) -> None:
    method = with_method(gw)
    result = gw.charge(charge_request(method, currency="USD"))
    assert result.status is ChargeStatus.SUCCEEDED and result.decline is None
    assert (result.amount_cents, result.currency, result.method_id) == (12_345, "usd", method.method_id)
    assert result.created == START and result.metadata == INVOICE
    assert gw.get_charge(result.intent_id or "") == result
    assert gw.ledger_charges() == [result]


@pytest.mark.parametrize(("token", "status", "code", "decline_code", "hard"), [
    ("pm_card_chargeCustomerFail", ChargeStatus.DECLINED, "card_declined", "generic_decline", False),
    ("pm_card_visa_chargeDeclinedInsufficientFunds", ChargeStatus.DECLINED, "card_declined", "insufficient_funds",
     False),
    ("pm_card_chargeDeclinedProcessingError", ChargeStatus.DECLINED, "processing_error", None, False),
    ("pm_card_visa_chargeDeclinedLostCard", ChargeStatus.DECLINED, "card_declined", "lost_card", True),
    ("pm_card_visa_chargeDeclinedStolenCard", ChargeStatus.DECLINED, "card_declined", "stolen_card", True),
    ("pm_card_chargeDeclinedExpiredCard", ChargeStatus.DECLINED, "expired_card", None, True),
    ("pm_card_authenticationRequired", ChargeStatus.REQUIRES_ACTION, "authentication_required",
     "authentication_required", True),
])
def test_declines_as_stripe_reports_them(gw: SandboxGateway, token: str, status: ChargeStatus, code: str,
                                         decline_code: str | None, hard: bool) -> None:
    method = with_method(gw, token)
    result = gw.charge(charge_request(method))
    assert result.status is status and result.decline is not None
    assert (result.decline.code, result.decline.decline_code, result.decline.hard) == (code, decline_code, hard)
    assert result.decline.message
    assert gw.get_charge(result.intent_id or "") == result
    assert gw.ledger_charges() == [result]   # a decline is a PaymentIntent too


@pytest.mark.parametrize(("token", "status", "code", "hard"), [
    ("pm_usBankAccount_success", ChargeStatus.SUCCEEDED, None, None),
    ("pm_usBankAccount_insufficientFunds", ChargeStatus.DECLINED, "insufficient_funds", False),
    ("pm_usBankAccount_accountClosed", ChargeStatus.DECLINED, "account_closed", True),
])
def test_ach_processing_then_settling(gw: SandboxGateway, clock: Clock, token: str, status: ChargeStatus,
                                      code: str | None, hard: bool | None) -> None:
    method = with_method(gw, token)
    first = gw.charge(charge_request(method))
    assert first.status is ChargeStatus.PROCESSING and first.decline is None
    clock.advance(hours=1)
    assert gw.charge(charge_request(method)) == first   # the same key: Stripe's first answer again
    clock.advance(days=4, hours=-1, seconds=-1)
    assert gw.get_charge(first.intent_id or "").status is ChargeStatus.PROCESSING
    clock.advance(seconds=1)
    settled = gw.get_charge(first.intent_id or "")
    assert settled.status is status
    if code is None:
        assert settled.decline is None
    else:
        assert settled.decline is not None and (settled.decline.code, settled.decline.hard) == (code, hard)
    assert gw.find_charges(customer_id=method.customer_id or "", created_since=START, metadata=INVOICE) == [settled]


def test_ach_settles_with_settle_due_and_config(ledger: Path, clock: Clock) -> None:
    gw = SandboxGateway(ledger, SandboxConfig(ach_settle_after=dt.timedelta(seconds=30)), clock=clock)
    ok = gw.charge(charge_request(with_method(gw, "pm_usBankAccount_success")))
    bad = gw.charge(charge_request(with_method(gw, "pm_usBankAccount_accountClosed", key="c2"), key="k2"))
    assert gw.settle_due() == 0
    clock.advance(seconds=30)
    assert gw.settle_due() == 2
    assert gw.settle_due() == 0
    by_id = {c.intent_id: c.status for c in gw.ledger_charges()}
    assert by_id == {ok.intent_id: ChargeStatus.SUCCEEDED, bad.intent_id: ChargeStatus.DECLINED}


def test_charge_refusals_record_nothing(gw: SandboxGateway) -> None:
    method = with_method(gw)
    bank = gw.attach_test_method(method.customer_id or "", "pm_usBankAccount_success")
    other = with_method(gw, key="customer-2")
    with pytest.raises(InvalidRequest, match="does not belong"):
        gw.charge(ChargeRequest(method.customer_id or "", other.method_id, MethodKind.CARD, 1000, "usd", "k1"))
    with pytest.raises(InvalidRequest, match="not a us_bank_account"):
        gw.charge(ChargeRequest(method.customer_id or "", method.method_id, MethodKind.US_BANK_ACCOUNT, 1000, "usd",
                                "k2"))
    with pytest.raises(InvalidRequest, match="USD"):
        gw.charge(charge_request(bank, key="k3", currency="eur"))
    with pytest.raises(InvalidRequest) as small:
        gw.charge(charge_request(method, key="k4", amount_cents=49))
    assert small.value.code == "amount_too_small"
    with pytest.raises(InvalidRequest, match="currency"):
        gw.charge(charge_request(method, key="k5", currency="dollars"))
    with pytest.raises(NotFound):
        gw.charge(ChargeRequest("cus_sbx_nobody", method.method_id, MethodKind.CARD, 1000, "usd", "k6"))
    with pytest.raises(NotFound):
        gw.get_charge("pi_sbx_nothing")
    assert gw.ledger_charges() == []


def test_find_charges_by_customer_time_and_metadata(gw: SandboxGateway, clock: Clock) -> None:
    method = with_method(gw)
    other = with_method(gw, key="customer-2")
    early = gw.charge(charge_request(method, key="a", metadata={"invoice": "INV-1"}))
    clock.advance(hours=1, seconds=0.5)
    since = clock.now   # half-way through a second: Stripe's `created` is whole seconds
    late = gw.charge(charge_request(method, key="b", metadata={"invoice": "INV-2", "attempt": "1"}))
    clock.advance(minutes=1)
    later = gw.charge(charge_request(method, key="c", metadata={"invoice": "INV-2", "attempt": "2"}))
    gw.charge(charge_request(other, key="d", metadata={"invoice": "INV-2", "attempt": "1"}))

    customer_id = method.customer_id or ""
    assert late.created == since.replace(microsecond=0)
    assert gw.find_charges(customer_id=customer_id, created_since=since, metadata={"invoice": "INV-2"}) == [
        later, late]
    assert gw.find_charges(customer_id=customer_id, created_since=since,
                           metadata={"invoice": "INV-2", "attempt": "1"}) == [late]
    assert gw.find_charges(customer_id=customer_id, created_since=since, metadata={"invoice": "INV-1"}) == []
    assert gw.find_charges(customer_id=customer_id, created_since=START, metadata={"invoice": "INV-1"}) == [early]
    assert gw.find_charges(customer_id="cus_sbx_nobody", created_since=START, metadata={}) == []
    with pytest.raises(ValueError, match="timezone-aware"):
        gw.find_charges(customer_id=customer_id, created_since=dt.datetime(2026, 11, 1), metadata={})


# --- idempotency ----------------------------------------------------------------------------------------------


def test_same_key_same_result_one_charge(gw: SandboxGateway) -> None:
    method = with_method(gw)
    first = gw.charge(charge_request(method))
    assert gw.charge(charge_request(method)) == first
    assert gw.charge(charge_request(method)) == first
    assert [c.intent_id for c in gw.ledger_charges()] == [first.intent_id]


def test_a_decline_is_replayed_not_retried(gw: SandboxGateway) -> None:
    method = with_method(gw, "pm_card_visa_chargeDeclinedInsufficientFunds")
    first = gw.charge(charge_request(method))
    assert first.status is ChargeStatus.DECLINED
    assert gw.charge(charge_request(method)) == first
    assert len(gw.ledger_charges()) == 1


def test_same_key_other_parameters_is_a_conflict(gw: SandboxGateway) -> None:
    method = with_method(gw)
    gw.charge(charge_request(method))
    for changed in (charge_request(method, amount_cents=12_346), charge_request(method, currency="cad"),
                    charge_request(method, metadata={"invoice": "INV-000002"})):
        with pytest.raises(IdempotencyConflict, match="other parameters") as conflict:
            gw.charge(changed)
        assert conflict.value.nothing_happened
    with pytest.raises(IdempotencyConflict, match="another kind of request"):
        make_customer(gw, key="INV-000001/1")
    assert len(gw.ledger_charges()) == 1


def test_a_refused_request_does_not_use_up_its_key(gw: SandboxGateway) -> None:
    method = with_method(gw)
    with pytest.raises(InvalidRequest):
        gw.charge(charge_request(method, amount_cents=10))
    assert gw.charge(charge_request(method)).status is ChargeStatus.SUCCEEDED


def test_key_is_forgotten_after_the_ttl(gw: SandboxGateway, clock: Clock) -> None:
    method = with_method(gw)
    first = gw.charge(charge_request(method))
    clock.advance(hours=24, seconds=-1)
    assert gw.charge(charge_request(method)) == first
    clock.advance(seconds=1)
    again = gw.charge(charge_request(method))   # Stripe no longer knows the key: a second charge
    assert again.status is ChargeStatus.SUCCEEDED and again.intent_id != first.intent_id
    assert len(gw.ledger_charges()) == 2


def test_ttl_comes_from_the_config(ledger: Path, clock: Clock) -> None:
    gw = SandboxGateway(ledger, SandboxConfig(idempotency_ttl=dt.timedelta(minutes=10)), clock=clock)
    first = make_customer(gw)
    clock.advance(minutes=10)
    assert make_customer(gw).customer_id != first.customer_id


def test_eight_threads_one_key_one_charge(gw: SandboxGateway) -> None:
    method = with_method(gw)
    barrier = threading.Barrier(8)
    results: list[ChargeResult] = []
    errors: list[BaseException] = []

    def send() -> None:
        try:
            barrier.wait()
            results.append(gw.charge(charge_request(method)))
        except BaseException as exc:  # noqa: BLE001 -- reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(results) == 8 and len({r.intent_id for r in results}) == 1
    assert results[0].status is ChargeStatus.SUCCEEDED
    assert len(gw.ledger_charges()) == 1


# --- faults ----------------------------------------------------------------------------------------------------


def test_timeout_before_nothing_was_done(gw: SandboxGateway) -> None:
    method = with_method(gw)
    gw.inject_failure("charge", "timeout_before")
    lost = gw.charge(charge_request(method))
    assert lost.status is ChargeStatus.UNKNOWN and lost.intent_id is None and "not known" in lost.message
    assert gw.ledger_charges() == []
    assert gw.find_charges(customer_id=method.customer_id or "", created_since=START, metadata=INVOICE) == []
    assert gw.charge(charge_request(method)).status is ChargeStatus.SUCCEEDED   # the injection was used up


def test_timeout_after_the_charge_was_made(gw: SandboxGateway) -> None:
    method = with_method(gw)
    gw.inject_failure("charge", "timeout_after")
    lost = gw.charge(charge_request(method))
    assert lost.status is ChargeStatus.UNKNOWN and lost.intent_id is None

    [made] = gw.ledger_charges()
    assert made.status is ChargeStatus.SUCCEEDED and made.metadata == INVOICE
    assert gw.find_charges(customer_id=method.customer_id or "", created_since=START,
                           metadata={"invoice": "INV-000001"}) == [made]
    assert gw.charge(charge_request(method)) == made   # the same key answers what was done
    assert len(gw.ledger_charges()) == 1


def test_server_error(gw: SandboxGateway) -> None:
    method = with_method(gw)
    gw.inject_failure("charge", "server_error")
    assert gw.charge(charge_request(method)).status is ChargeStatus.UNKNOWN
    assert gw.ledger_charges() == []

    gw.inject_failure("create_customer", "server_error")
    with pytest.raises(ProcessorUnavailable) as write_error:
        make_customer(gw, key="customer-2", email="new@example.com")
    assert not write_error.value.nothing_happened
    assert gw.find_customers("new@example.com") == []

    gw.inject_failure("get_charge", "server_error")
    with pytest.raises(ProcessorUnavailable) as read_error:
        gw.get_charge("pi_sbx_whatever")
    assert read_error.value.nothing_happened


def test_timeout_after_on_other_writes(gw: SandboxGateway) -> None:
    gw.inject_failure("create_customer", "timeout_after")
    with pytest.raises(ProcessorUnavailable) as lost:
        make_customer(gw)
    assert not lost.value.nothing_happened
    [made] = gw.find_customers("ap@cascade.example")
    assert make_customer(gw) == made

    method = gw.attach_test_method(made.customer_id, "pm_card_visa")
    gw.inject_failure("detach_method", "timeout_after")
    with pytest.raises(ProcessorUnavailable):
        gw.detach_method(method.method_id)
    assert gw.get_method(method.method_id).customer_id is None


def test_rate_limited_by_injection(gw: SandboxGateway) -> None:
    method = with_method(gw)
    gw.inject_failure("charge", "rate_limit", count=2)
    for _ in range(2):
        with pytest.raises(RateLimited) as limited:
            gw.charge(charge_request(method))
        assert limited.value.nothing_happened and limited.value.retry_after > 0
    assert gw.ledger_charges() == []
    assert gw.charge(charge_request(method)).status is ChargeStatus.SUCCEEDED


def test_injection_for_any_operation(gw: SandboxGateway) -> None:
    gw.inject_failure("*", "server_error", count=2)
    for _ in range(2):
        with pytest.raises(ProcessorUnavailable):
            gw.account()
    assert gw.account().mode is ProcessorMode.SANDBOX
    gw.inject_failure("refund", "server_error")
    gw.clear_injected_failures()
    assert gw.account().mode is ProcessorMode.SANDBOX


def test_inject_failure_checks_its_arguments(gw: SandboxGateway) -> None:
    with pytest.raises(ValueError, match="unknown operation"):
        gw.inject_failure("charges", "timeout_after")
    with pytest.raises(ValueError, match="unknown failure"):
        gw.inject_failure("charge", "explode")
    with pytest.raises(ValueError, match="positive"):
        gw.inject_failure("charge", "timeout_after", count=0)


def test_rate_limiter_is_a_sliding_window_shared_by_threads(ledger: Path) -> None:
    gw = SandboxGateway(ledger, SandboxConfig(rate_limit_per_second=4))
    barrier = threading.Barrier(8)
    admitted: list[bool] = []
    limited: list[RateLimited] = []

    def call() -> None:
        barrier.wait()
        try:
            gw.account()
            admitted.append(True)
        except RateLimited as exc:
            limited.append(exc)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(admitted) == 4 and len(limited) == 4
    assert all(0 < exc.retry_after <= 1 and exc.nothing_happened for exc in limited)
    time.sleep(max(exc.retry_after for exc in limited))
    assert gw.account().mode is ProcessorMode.SANDBOX


def test_random_failures_follow_the_seed(tmp_path: Path) -> None:
    def outcomes(name: str) -> list[str]:
        config = SandboxConfig(server_error_rate=0.3, rate_limit_rate=0.2, seed=7)
        gw = SandboxGateway(tmp_path / name, config)
        seen = []
        for _ in range(30):
            try:
                gw.account()
                seen.append("ok")
            except RateLimited:
                seen.append("429")
            except ProcessorUnavailable:
                seen.append("5xx")
        return seen

    first = outcomes("a.sqlite3")
    assert first == outcomes("b.sqlite3")
    assert {"ok", "429", "5xx"} <= set(first)


def test_failure_rates_of_one(tmp_path: Path) -> None:
    always_after = SandboxGateway(tmp_path / "after.sqlite3", SandboxConfig(timeout_after_rate=1.0))
    with pytest.raises(ProcessorUnavailable):
        make_customer(always_after)
    # Every answer is lost, yet the work was done: a fault-free view of the same ledger sees it.
    assert len(SandboxGateway(tmp_path / "after.sqlite3").find_customers("ap@cascade.example")) == 1

    always_500 = SandboxGateway(tmp_path / "500.sqlite3", SandboxConfig(server_error_rate=1.0))
    with pytest.raises(ProcessorUnavailable):
        make_customer(always_500)
    assert SandboxGateway(tmp_path / "500.sqlite3").find_customers("ap@cascade.example") == []


def test_latency_is_felt_on_every_call(ledger: Path) -> None:
    gw = SandboxGateway(ledger, SandboxConfig(latency_seconds=0.05))
    method = with_method(gw)   # attaching is not an API call; creating the customer is
    started = time.perf_counter()
    gw.charge(charge_request(method))
    assert time.perf_counter() - started >= 0.05
    started = time.perf_counter()
    gw.account()
    assert time.perf_counter() - started >= 0.05


# --- refunds --------------------------------------------------------------------------------------------------


def test_refunds_never_exceed_what_was_charged(gw: SandboxGateway) -> None:
    charge = gw.charge(charge_request(with_method(gw)))
    intent_id = charge.intent_id or ""
    with pytest.raises(InvalidRequest, match="greater than"):
        gw.refund(intent_id=intent_id, amount_cents=12_346, idempotency_key="r0", metadata={})
    part = gw.refund(intent_id=intent_id, amount_cents=2_345, idempotency_key="r1", metadata={"credit": "CN-1"},
                     reason="requested_by_customer")
    assert (part.status, part.amount_cents) == (RefundStatus.SUCCEEDED, 2_345)
    rest = gw.refund(intent_id=intent_id, amount_cents=10_000, idempotency_key="r2", metadata={"credit": "CN-2"})
    assert rest.status is RefundStatus.SUCCEEDED
    with pytest.raises(InvalidRequest, match="greater than"):
        gw.refund(intent_id=intent_id, amount_cents=1, idempotency_key="r3", metadata={})

    assert gw.get_refund(part.refund_id or "") == part
    assert gw.find_refunds(intent_id=intent_id, metadata={"credit": "CN-2"}) == [rest]
    assert gw.find_refunds(intent_id=intent_id, metadata={}) == [rest, part]
    assert gw.ledger_refunds() == [part, rest]
    assert gw.get_charge(intent_id).status is ChargeStatus.SUCCEEDED


def test_refund_is_idempotent(gw: SandboxGateway) -> None:
    intent_id = gw.charge(charge_request(with_method(gw))).intent_id or ""
    first = gw.refund(intent_id=intent_id, amount_cents=12_345, idempotency_key="r1", metadata={"credit": "CN-1"})
    assert gw.refund(intent_id=intent_id, amount_cents=12_345, idempotency_key="r1",
                     metadata={"credit": "CN-1"}) == first
    with pytest.raises(IdempotencyConflict):
        gw.refund(intent_id=intent_id, amount_cents=100, idempotency_key="r1", metadata={"credit": "CN-1"})
    assert len(gw.ledger_refunds()) == 1


def test_only_a_succeeded_charge_is_refunded(gw: SandboxGateway) -> None:
    declined = gw.charge(charge_request(with_method(gw, "pm_card_chargeCustomerFail")))
    with pytest.raises(InvalidRequest, match="succeeded"):
        gw.refund(intent_id=declined.intent_id or "", amount_cents=100, idempotency_key="r1", metadata={})
    with pytest.raises(NotFound):
        gw.refund(intent_id="pi_sbx_nothing", amount_cents=100, idempotency_key="r2", metadata={})
    succeeded = gw.charge(charge_request(with_method(gw, key="customer-2"), key="k2"))
    with pytest.raises(InvalidRequest):
        gw.refund(intent_id=succeeded.intent_id or "", amount_cents=0, idempotency_key="r3", metadata={})
    with pytest.raises(InvalidRequest, match="reason"):
        gw.refund(intent_id=succeeded.intent_id or "", amount_cents=1, idempotency_key="r4", metadata={},
                  reason="changed_mind")
    with pytest.raises(TypeError):
        gw.refund(intent_id=succeeded.intent_id or "", amount_cents=1.5, idempotency_key="r5",  # type: ignore[arg-type]
                  metadata={})
    assert gw.ledger_refunds() == []


def test_ach_refund_pending_then_succeeded(gw: SandboxGateway, clock: Clock) -> None:
    charge = gw.charge(charge_request(with_method(gw, "pm_usBankAccount_success")))
    intent_id = charge.intent_id or ""
    with pytest.raises(InvalidRequest, match="processing"):   # not settled yet
        gw.refund(intent_id=intent_id, amount_cents=100, idempotency_key="r1", metadata={})
    clock.advance(days=4)
    refund = gw.refund(intent_id=intent_id, amount_cents=100, idempotency_key="r2", metadata={})
    assert refund.status is RefundStatus.PENDING
    clock.advance(days=4)
    assert gw.get_refund(refund.refund_id or "").status is RefundStatus.SUCCEEDED


def test_refund_timeout_after_is_unknown_then_found(gw: SandboxGateway) -> None:
    intent_id = gw.charge(charge_request(with_method(gw))).intent_id or ""
    gw.inject_failure("refund", "timeout_after")
    lost = gw.refund(intent_id=intent_id, amount_cents=500, idempotency_key="r1", metadata={"credit": "CN-1"})
    assert lost.status is RefundStatus.UNKNOWN and lost.refund_id is None
    [made] = gw.find_refunds(intent_id=intent_id, metadata={"credit": "CN-1"})
    assert made.status is RefundStatus.SUCCEEDED
    assert gw.refund(intent_id=intent_id, amount_cents=500, idempotency_key="r1", metadata={"credit": "CN-1"}) == made


# --- the ledger file: other instances, other processes -------------------------------------------------------


def test_ledger_survives_a_new_instance(ledger: Path, clock: Clock) -> None:
    first_gw = SandboxGateway(ledger, clock=clock)
    method = with_method(first_gw)
    charge = first_gw.charge(charge_request(method))
    first_gw.inject_failure("account", "server_error")
    first_gw.close()
    assert first_gw.get_charge(charge.intent_id or "") == charge   # a closed gateway opens the file again
    first_gw.close()

    second_gw = SandboxGateway(ledger, clock=clock)
    assert second_gw.get_customer(method.customer_id or "").default_method_id == method.method_id
    assert second_gw.charge(charge_request(method)) == charge
    assert second_gw.ledger_charges() == [charge]
    with pytest.raises(ProcessorUnavailable):
        second_gw.account()


_CHILD = """
import json, sys
from pathlib import Path
from mspbill.payments.gateway import ChargeRequest, MethodKind
from mspbill.payments.sandbox import SandboxGateway

ledger, customer_id, method_id, key = sys.argv[1:5]
result = SandboxGateway(Path(ledger)).charge(ChargeRequest(
    customer_id, method_id, MethodKind.CARD, 12345, "usd", key, metadata={"invoice": "INV-000001", "attempt": "1"}))
print(json.dumps({"status": result.status.value, "intent_id": result.intent_id}))
"""


def _child(ledger: Path, method: MethodFacts, key: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.Popen([sys.executable, "-c", _CHILD, str(ledger), method.customer_id or "", method.method_id,
                             key], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _answer(process: subprocess.Popen[str]) -> dict[str, str]:
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    answer: dict[str, str] = json.loads(out)
    return answer


def test_processes_sending_one_key_make_one_charge(ledger: Path) -> None:
    # The real clock: a child process has no other, and keys are kept by time.
    gw = SandboxGateway(ledger)
    method = with_method(gw)
    children = [_child(ledger, method, "INV-000001/1") for _ in range(3)]
    here = gw.charge(charge_request(method))
    answers = [_answer(child) for child in children]
    assert {a["intent_id"] for a in answers} == {here.intent_id}
    assert {a["status"] for a in answers} == {"succeeded"}
    assert [c.intent_id for c in gw.ledger_charges()] == [here.intent_id]


def test_injected_failure_reaches_another_process(ledger: Path) -> None:
    gw = SandboxGateway(ledger)
    method = with_method(gw)
    gw.inject_failure("charge", "timeout_after")
    assert _answer(_child(ledger, method, "INV-000001/1")) == {"status": "unknown", "intent_id": None}
    [made] = gw.ledger_charges()
    assert gw.charge(charge_request(method)) == made


# --- configuration from the environment -------------------------------------------------------------------------


def test_from_env_reads_every_setting() -> None:
    config = SandboxConfig.from_env({
        "MSPBILL_SANDBOX_LATENCY_MS": "250",
        "MSPBILL_SANDBOX_RATE_LIMIT": "25",
        "MSPBILL_SANDBOX_FAILURES": "timeout_after=0.1, rate_limit=0.05,server_error=0.02,timeout_before=0.05,",
        "MSPBILL_SANDBOX_SEED": "42",
        "MSPBILL_SANDBOX_ACH_SETTLE_SECONDS": "5",
    })
    assert config == SandboxConfig(latency_seconds=0.25, rate_limit_per_second=25, timeout_after_rate=0.1,
                                   rate_limit_rate=0.05, server_error_rate=0.02, timeout_before_rate=0.05, seed=42,
                                   ach_settle_after=dt.timedelta(seconds=5))


def test_from_env_defaults() -> None:
    assert SandboxConfig.from_env({}) == SandboxConfig()
    assert SandboxConfig.from_env({"MSPBILL_SANDBOX_RATE_LIMIT": "off"}).rate_limit_per_second is None
    assert SandboxConfig().ach_settle_after == dt.timedelta(days=4)
    assert SandboxConfig().idempotency_ttl == dt.timedelta(hours=24)


@pytest.mark.parametrize(("environ", "fragment"), [
    ({"MSPBILL_SANDBOX_LATENCY_MS": "fast"}, "MSPBILL_SANDBOX_LATENCY_MS='fast' is not a number"),
    ({"MSPBILL_SANDBOX_LATENCY_MS": "-5"}, "MSPBILL_SANDBOX_LATENCY_MS='-5' must be zero or a positive number"),
    ({"MSPBILL_SANDBOX_RATE_LIMIT": "0"}, "MSPBILL_SANDBOX_RATE_LIMIT='0' must be a positive number"),
    ({"MSPBILL_SANDBOX_RATE_LIMIT": "lots"}, "MSPBILL_SANDBOX_RATE_LIMIT='lots'"),
    ({"MSPBILL_SANDBOX_FAILURES": "explode=0.1"}, "unknown failure 'explode'; the known ones are rate_limit"),
    ({"MSPBILL_SANDBOX_FAILURES": "timeout_after=1.5"}, "timeout_after='1.5' must be a probability from 0 to 1"),
    ({"MSPBILL_SANDBOX_FAILURES": "timeout_after"}, "should be NAME=PROBABILITY"),
    ({"MSPBILL_SANDBOX_FAILURES": "timeout_after=0.1,timeout_after=0.2"}, "timeout_after is given twice"),
    ({"MSPBILL_SANDBOX_FAILURES": "timeout_after=0.6,server_error=0.6"}, "add up to 1.2, more than 1"),
    ({"MSPBILL_SANDBOX_SEED": "abc"}, "MSPBILL_SANDBOX_SEED='abc' must be a whole number"),
    ({"MSPBILL_SANDBOX_ACH_SETTLE_SECONDS": "soon"}, "MSPBILL_SANDBOX_ACH_SETTLE_SECONDS='soon' is not a number"),
])
def test_from_env_errors_are_clear(environ: dict[str, str], fragment: str) -> None:
    with pytest.raises(ValueError, match="Invalid sandbox settings") as problem:
        SandboxConfig.from_env(environ)
    assert fragment in str(problem.value)


def test_from_env_reports_every_problem_at_once() -> None:
    with pytest.raises(ValueError) as problem:
        SandboxConfig.from_env({"MSPBILL_SANDBOX_LATENCY_MS": "x", "MSPBILL_SANDBOX_SEED": "y"})
    assert "LATENCY_MS" in str(problem.value) and "SEED" in str(problem.value)


def test_config_checks_its_values() -> None:
    with pytest.raises(ValueError, match="latency"):
        SandboxConfig(latency_seconds=-1)
    with pytest.raises(ValueError, match="server_error rate"):
        SandboxConfig(server_error_rate=2)
    with pytest.raises(ValueError, match="more than 1"):
        SandboxConfig(timeout_after_rate=0.7, timeout_before_rate=0.7)
    with pytest.raises(ValueError, match="rate limit"):
        SandboxConfig(rate_limit_per_second=0)
