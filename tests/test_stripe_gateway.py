"""StripeGateway with the real stripe-python client against real HTTP servers.

* localstripe on 127.0.0.1 (tests/localstripe_server.py): customers, saved
  cards, off-session charges, declines, refunds, deleted customers.
* A Stripe-shaped stub server on 127.0.0.1 (tests/stripe_stub_server.py) for
  what localstripe cannot do and for Stripe's errors: every error class,
  decline codes, timeouts, a closed port, idempotency keys on the wire, ACH,
  Checkout setup sessions, the account, pagination.

What localstripe 1.15.10 cannot do, and where it is tested instead (nothing is
faked on localstripe):
- no idempotency, no decline codes (a decline is a bare card_declined without
  the PaymentIntent), no ACH, no Checkout, no GET /v1/account: stub only;
- PaymentIntents: rejects `allowed_payment_method_types`, `description` and
  `statement_descriptor_suffix` ("Unexpected ...", 400), so the localstripe
  charge tests leave exactly those out (`LocalstripeGateway`); the stub tests
  check that StripeGateway sends them;
- listing PaymentIntents by customer/created ("Unexpected customer") and
  listing a customer's payment methods without `type=card`: find_charges and
  list_methods are tested on the stub;
- a deleted customer is forgotten (404) instead of coming back with
  `deleted: true`; both behaviours are tested.
"""

from __future__ import annotations

import ast
import datetime as dt
import logging
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import stripe

from mspbill.payments.gateway import (
    AccountInfo,
    AuthenticationFailed,
    ChargeRequest,
    ChargeStatus,
    CustomerInfo,
    Gateway,
    IdempotencyConflict,
    InvalidRequest,
    MethodFacts,
    MethodKind,
    NotConfiguredError,
    NotFound,
    PermissionDenied,
    ProcessorError,
    ProcessorMode,
    ProcessorUnavailable,
    RateLimited,
    RefundStatus,
    SetupStatus,
    mask_key,
)
from mspbill.payments.stripe_gateway import (
    AUTHENTICATION_MESSAGE,
    NEEDED_PERMISSIONS,
    StripeGateway,
)
from tests.fake_keys import stripe_key
from tests.localstripe_server import TEST_KEY, LocalStripe, free_port
from tests.stripe_stub_server import (
    HungServer,
    Recorded,
    Reply,
    StripeStub,
    account,
    bank_method,
    card_error,
    card_method,
    checkout_session,
    customer,
    deleted_customer,
    error,
    listing,
    payment_intent,
    refund,
    setup_intent,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
KEY = TEST_KEY
RESTRICTED_KEY = stripe_key("rk", "test", "51HrEsTrIcTeDkEy0123456")


def charge_request(**changes: Any) -> ChargeRequest:
    values: dict[str, Any] = {
        "customer_id": "cus_Stub1", "method_id": "pm_Card1", "method_kind": MethodKind.CARD,
        "amount_cents": 12_500, "currency": "USD", "idempotency_key": "charge-INV-1001-1",
        "description": "Invoice INV-1001", "metadata": {"mspbill_invoice": "INV-1001", "mspbill_attempt": "1"},
        "statement_descriptor_suffix": "INV1001"}
    values.update(changes)
    return ChargeRequest(**values)


def test_stripe_gateway_is_a_gateway() -> None:
    with pytest.raises(NotConfiguredError):
        StripeGateway("")
    gateway = StripeGateway(KEY)
    assert isinstance(gateway, Gateway)
    assert gateway.mode is ProcessorMode.TEST
    assert StripeGateway(stripe_key("sk", "live", "x" * 24)).mode is ProcessorMode.LIVE
    assert KEY not in repr(gateway) and mask_key(KEY) in repr(gateway)


# =====================================================================================
# localstripe
# =====================================================================================


@pytest.fixture(scope="module")
def localstripe() -> Iterator[LocalStripe]:
    with LocalStripe.start() as server:
        yield server


@pytest.fixture
def ls(localstripe: LocalStripe) -> LocalStripe:
    localstripe.flush()
    return localstripe


class LocalstripeGateway(StripeGateway):
    """StripeGateway minus the PaymentIntent parameters localstripe refuses to know
    ("Unexpected allowed_payment_method_types"); the stub tests check that they are sent."""

    def _payment_intent_params(self, request: ChargeRequest) -> Any:
        params = dict(super()._payment_intent_params(request))
        for name in ("allowed_payment_method_types", "description", "statement_descriptor_suffix"):
            params.pop(name, None)
        return params


def direct_client(ls: LocalStripe) -> stripe.StripeClient:
    """stripe-python talking to localstripe directly, for what the Gateway interface does not do
    (attaching Stripe's test payment methods, deleting a customer as someone in the Dashboard would)."""
    return stripe.StripeClient(KEY, base_addresses={"api": ls.url}, max_network_retries=0)


def new_customer(gateway: StripeGateway, email: str = "ap@acme.example", name: str = "Acme Ltd") -> CustomerInfo:
    return gateway.create_customer(name=name, email=email, metadata={"mspbill_client": "17"},
                                   idempotency_key=f"customer-{email}-{time.monotonic_ns()}")


def attach(ls: LocalStripe, test_method: str, customer_id: str) -> str:
    method = direct_client(ls).v1.payment_methods.attach(test_method, params={"customer": customer_id})
    return method.id


def test_localstripe_create_and_get_customer(ls: LocalStripe) -> None:
    gateway = StripeGateway(KEY, api_base=ls.url)
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    info = new_customer(gateway)
    assert info.customer_id.startswith("cus_")
    assert (info.email, info.name, dict(info.metadata), info.deleted) == (
        "ap@acme.example", "Acme Ltd", {"mspbill_client": "17"}, False)
    assert info.created is not None and before <= info.created <= dt.datetime.now(dt.UTC)
    assert info.default_method_id is None
    assert gateway.get_customer(info.customer_id) == info


def test_localstripe_saved_visa_card(ls: LocalStripe) -> None:
    gateway = StripeGateway(KEY, api_base=ls.url)
    cust = new_customer(gateway)
    method_id = attach(ls, "pm_card_visa", cust.customer_id)
    facts = gateway.get_method(method_id)
    assert facts == MethodFacts(method_id=method_id, kind=MethodKind.CARD, last4="4242", brand="visa",
                                exp_month=12, exp_year=2030, customer_id=cust.customer_id)
    assert facts.label == "Visa ending 4242"


def test_localstripe_default_method_and_update(ls: LocalStripe) -> None:
    gateway = StripeGateway(KEY, api_base=ls.url)
    cust = new_customer(gateway)
    method_id = attach(ls, "pm_card_visa", cust.customer_id)
    updated = gateway.update_customer(cust.customer_id, name="Acme Holdings", default_method_id=method_id)
    assert (updated.name, updated.default_method_id, updated.email) == ("Acme Holdings", method_id, "ap@acme.example")
    assert gateway.get_customer(cust.customer_id).default_method_id == method_id
    # Nothing to change: no request that localstripe (or Stripe) would have to make sense of.
    assert gateway.update_customer(cust.customer_id) == gateway.get_customer(cust.customer_id)


def test_localstripe_charge_succeeds(ls: LocalStripe) -> None:
    gateway = LocalstripeGateway(KEY, api_base=ls.url)
    cust = new_customer(gateway)
    method_id = attach(ls, "pm_card_visa", cust.customer_id)
    result = gateway.charge(charge_request(customer_id=cust.customer_id, method_id=method_id))
    assert result.status is ChargeStatus.SUCCEEDED
    assert result.intent_id is not None and result.intent_id.startswith("pi_")
    assert (result.amount_cents, result.currency, result.method_id) == (12_500, "USD", method_id)
    assert dict(result.metadata) == {"mspbill_invoice": "INV-1001", "mspbill_attempt": "1"}
    assert result.decline is None and result.created is not None
    assert gateway.get_charge(result.intent_id) == result
    intent = direct_client(ls).v1.payment_intents.retrieve(result.intent_id)
    assert (intent.status, intent.amount, intent.customer) == ("succeeded", 12_500, cust.customer_id)


def test_localstripe_concurrent_charges(ls: LocalStripe) -> None:
    """One gateway, shared by the threads of a month-end batch."""
    gateway = LocalstripeGateway(KEY, api_base=ls.url)
    jobs = []
    for n in range(8):
        cust = new_customer(gateway, email=f"client{n}@example.com")
        jobs.append(charge_request(customer_id=cust.customer_id, method_id=attach(ls, "pm_card_visa", cust.customer_id),
                                   amount_cents=1_000 + n, idempotency_key=f"charge-{n}",
                                   metadata={"mspbill_invoice": f"INV-{n}"}))
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(gateway.charge, jobs))
    assert [r.status for r in results] == [ChargeStatus.SUCCEEDED] * 8
    assert [(r.amount_cents, dict(r.metadata)) for r in results] == [
        (1_000 + n, {"mspbill_invoice": f"INV-{n}"}) for n in range(8)]
    assert len({r.intent_id for r in results}) == 8


def test_localstripe_decline_moves_no_money(ls: LocalStripe) -> None:
    gateway = LocalstripeGateway(KEY, api_base=ls.url)
    cust = new_customer(gateway)
    method_id = attach(ls, "pm_card_chargeCustomerFail", cust.customer_id)  # attaches, then every charge fails
    result = gateway.charge(charge_request(customer_id=cust.customer_id, method_id=method_id))
    assert result.status is ChargeStatus.DECLINED
    assert result.decline is not None
    # localstripe has no decline codes: a bare card_declined, which is a soft (retryable) decline.
    assert (result.decline.code, result.decline.decline_code, result.decline.hard) == ("card_declined", None, False)
    assert result.decline.message == "Your card was declined."
    # ...and its 402 does not carry the PaymentIntent (Stripe's does; see the stub tests).
    assert result.intent_id is None
    assert (result.amount_cents, result.currency, result.method_id) == (12_500, "USD", method_id)
    charges = direct_client(ls).v1.charges.list(params={"customer": cust.customer_id}).data
    assert [(c.status, c.paid, c.amount) for c in charges] == [("failed", False, 12_500)]


def test_localstripe_refund_partial_then_full(ls: LocalStripe) -> None:
    gateway = LocalstripeGateway(KEY, api_base=ls.url)
    cust = new_customer(gateway)
    method_id = attach(ls, "pm_card_visa", cust.customer_id)
    intent_id = gateway.charge(charge_request(customer_id=cust.customer_id, method_id=method_id)).intent_id
    assert intent_id is not None

    # "client overpaid" is not one of Stripe's reasons, so it is not sent (localstripe knows no reason at all).
    partial = gateway.refund(intent_id=intent_id, amount_cents=5_000, idempotency_key="refund-1",
                             metadata={"mspbill_refund": "1"}, reason="client overpaid")
    assert partial.status is RefundStatus.SUCCEEDED and partial.amount_cents == 5_000
    assert partial.refund_id is not None and partial.refund_id.startswith("re_")
    rest = gateway.refund(intent_id=intent_id, amount_cents=7_500, idempotency_key="refund-2",
                          metadata={"mspbill_refund": "2"})
    assert rest.status is RefundStatus.SUCCEEDED and rest.amount_cents == 7_500

    assert gateway.get_refund(partial.refund_id) == partial
    assert gateway.find_refunds(intent_id=intent_id, metadata={"mspbill_refund": "1"}) == [partial]
    assert {r.refund_id for r in gateway.find_refunds(intent_id=intent_id, metadata={})} == {
        partial.refund_id, rest.refund_id}
    assert gateway.find_refunds(intent_id=intent_id, metadata={"mspbill_refund": "3"}) == []


def test_localstripe_find_customers_by_email(ls: LocalStripe) -> None:
    gateway = StripeGateway(KEY, api_base=ls.url)
    lower = new_customer(gateway, email="office@example.com")
    mixed = new_customer(gateway, email="Office@Example.com")
    new_customer(gateway, email="someone-else@example.com")
    # Stripe's filter is exact: the address as typed and in lower case are both asked for.
    assert {c.customer_id for c in gateway.find_customers("Office@Example.com")} == {
        lower.customer_id, mixed.customer_id}
    # Asked in lower case, the mixed-case one cannot be found (Stripe compares exactly).
    assert [c.customer_id for c in gateway.find_customers(" office@example.com ")] == [lower.customer_id]
    assert gateway.find_customers("nobody@example.com") == []
    assert gateway.find_customers("") == []


def test_localstripe_deleted_customer(ls: LocalStripe) -> None:
    gateway = StripeGateway(KEY, api_base=ls.url)
    cust = new_customer(gateway)
    direct_client(ls).v1.customers.delete(cust.customer_id)
    # localstripe forgets a deleted customer (404); Stripe returns it marked deleted (stub test below).
    with pytest.raises(NotFound) as caught:
        gateway.get_customer(cust.customer_id)
    assert caught.value.message == (
        f"The client's customer {cust.customer_id} no longer exists in Stripe (deleted in the Dashboard?). "
        "Link the client again or send a new payment setup link.")
    assert caught.value.nothing_happened


def test_localstripe_charge_to_deleted_customer_raises_not_found(ls: LocalStripe) -> None:
    gateway = LocalstripeGateway(KEY, api_base=ls.url)
    cust = new_customer(gateway)
    method_id = attach(ls, "pm_card_visa", cust.customer_id)
    direct_client(ls).v1.customers.delete(cust.customer_id)
    with pytest.raises(NotFound) as caught:
        gateway.charge(charge_request(customer_id=cust.customer_id, method_id=method_id))
    # localstripe's 404 does not say which object is missing, so both are named.
    assert caught.value.message == (
        "Stripe could not charge $125.00 to the client's saved payment method: it no longer has the client's "
        f"customer {cust.customer_id} or method {method_id} (deleted in the Dashboard?). Link the client again or "
        "send a new payment setup link.")
    assert caught.value.nothing_happened


def test_localstripe_detach_is_idempotent(ls: LocalStripe) -> None:
    gateway = StripeGateway(KEY, api_base=ls.url)
    cust = new_customer(gateway)
    method_id = attach(ls, "pm_card_visa", cust.customer_id)
    gateway.detach_method(method_id)
    gateway.detach_method(method_id)
    assert gateway.get_method(method_id).customer_id is None
    with pytest.raises(NotFound, match="pm_Missing"):
        gateway.detach_method("pm_Missing")


# =====================================================================================
# Stripe-shaped stub server
# =====================================================================================


@pytest.fixture
def stub() -> Iterator[StripeStub]:
    with StripeStub() as server:
        yield server
        assert server.unmatched == [], f"requests no route expected: {server.unmatched}"


def gateway_for(url: str, key: str = KEY, **options: Any) -> StripeGateway:
    options.setdefault("max_network_retries", 0)
    options.setdefault("timeout_seconds", 10)
    return StripeGateway(key, api_base=url, **options)


# --- charges: what goes over the wire, and what comes back ------------------------------------


def test_charge_request_on_the_wire(stub: StripeStub) -> None:
    stub.on("POST", "/v1/payment_intents", Reply(200, payment_intent(
        metadata={"mspbill_invoice": "INV-1001", "mspbill_attempt": "1"}, created=1_760_000_000)))
    result = gateway_for(stub.url).charge(charge_request())
    assert result.status is ChargeStatus.SUCCEEDED
    assert (result.intent_id, result.amount_cents, result.currency, result.method_id) == (
        "pi_Stub1", 12_500, "USD", "pm_Card1")
    assert result.created == dt.datetime(2025, 10, 9, 8, 53, 20, tzinfo=dt.UTC)
    assert dict(result.metadata) == {"mspbill_invoice": "INV-1001", "mspbill_attempt": "1"}

    [sent] = stub.requests
    assert sent.headers["idempotency-key"] == "charge-INV-1001-1"
    assert sent.headers["authorization"] == f"Bearer {KEY}"  # the key travels in this header only
    assert sent.form == {
        "amount": "12500", "currency": "usd", "customer": "cus_Stub1", "payment_method": "pm_Card1",
        "off_session": "true", "confirm": "true", "allowed_payment_method_types[0]": "card",
        "metadata[mspbill_invoice]": "INV-1001", "metadata[mspbill_attempt]": "1",
        "description": "Invoice INV-1001", "statement_descriptor_suffix": "INV1001",
    }
    assert sent.headers["stripe-version"] == stripe.api_version


def test_bank_account_charge_is_processing(stub: StripeStub) -> None:
    stub.on("POST", "/v1/payment_intents", Reply(200, payment_intent(status="processing", payment_method="pm_Bank1")))
    request = charge_request(method_id="pm_Bank1", method_kind=MethodKind.US_BANK_ACCOUNT, description="",
                             statement_descriptor_suffix="")
    result = gateway_for(stub.url).charge(request)
    assert result.status is ChargeStatus.PROCESSING and result.decline is None
    form = stub.requests[0].form
    assert form["allowed_payment_method_types[0]"] == "us_bank_account"
    assert "description" not in form and "statement_descriptor_suffix" not in form


@pytest.mark.parametrize(("intent", "status", "code", "decline_code", "hard"), [
    (payment_intent(status="requires_action"), ChargeStatus.REQUIRES_ACTION, "authentication_required", None, True),
    (payment_intent(status="requires_payment_method", last_payment_error={
        "type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds",
        "message": "Your card has insufficient funds."}), ChargeStatus.DECLINED, "card_declined",
     "insufficient_funds", False),
    (payment_intent(status="requires_payment_method", last_payment_error={
        "type": "card_error", "code": "card_declined", "decline_code": "authentication_required",
        "message": "Your card was declined. This transaction requires authentication."}),
     ChargeStatus.REQUIRES_ACTION, "card_declined", "authentication_required", True),
    (payment_intent(status="canceled"), ChargeStatus.DECLINED, "canceled", None, True),
])
def test_returned_intent_states(stub: StripeStub, intent: dict[str, Any], status: ChargeStatus, code: str,
                                decline_code: str | None, hard: bool) -> None:
    stub.on("GET", "/v1/payment_intents/pi_Stub1", Reply(200, intent))
    result = gateway_for(stub.url).get_charge("pi_Stub1")
    assert result.status is status and result.intent_id == "pi_Stub1"
    assert result.decline is not None
    assert (result.decline.code, result.decline.decline_code, result.decline.hard) == (code, decline_code, hard)
    assert result.decline.message


def test_returned_intent_of_unknown_state_is_unknown(stub: StripeStub) -> None:
    stub.on("GET", "/v1/payment_intents/pi_Stub1", Reply(200, payment_intent(status="some_new_state")))
    result = gateway_for(stub.url).get_charge("pi_Stub1")
    assert result.status is ChargeStatus.UNKNOWN and "'some_new_state'" in result.message


@pytest.mark.parametrize(("code", "decline_code", "status", "hard"), [
    ("card_declined", "insufficient_funds", ChargeStatus.DECLINED, False),
    ("card_declined", "generic_decline", ChargeStatus.DECLINED, False),
    ("card_declined", "lost_card", ChargeStatus.DECLINED, True),
    ("expired_card", None, ChargeStatus.DECLINED, True),
    ("authentication_required", "authentication_required", ChargeStatus.REQUIRES_ACTION, True),
])
def test_card_errors_are_declines(stub: StripeStub, code: str, decline_code: str | None, status: ChargeStatus,
                                  hard: bool) -> None:
    failed = payment_intent("pi_Declined", status="requires_payment_method", created=1_760_000_000)
    stub.on("POST", "/v1/payment_intents", Reply(402, card_error(code, decline_code, payment_intent=failed)))
    result = gateway_for(stub.url).charge(charge_request())
    assert result.status is status
    assert result.intent_id == "pi_Declined"
    assert result.decline is not None
    assert (result.decline.code, result.decline.decline_code, result.decline.hard) == (code, decline_code, hard)
    assert result.decline.message == "Your card was declined."
    assert (result.amount_cents, result.currency, result.method_id) == (12_500, "USD", "pm_Card1")


# --- outcomes nobody can know ------------------------------------------------------------------


def test_charge_500_is_unknown(stub: StripeStub) -> None:
    stub.on("POST", "/v1/payment_intents", Reply(500, error("api_error", "Something went wrong on Stripe's end.")))
    result = gateway_for(stub.url).charge(charge_request())
    assert result.status is ChargeStatus.UNKNOWN and result.intent_id is None and result.decline is None
    assert result.message == (
        "Stripe had a problem while trying to charge $125.00 to the client's saved payment method (HTTP 500). "
        "Check the internet connection (or proxy/firewall); if it is fine, status.stripe.com tells whether Stripe "
        "is down. Nothing is lost; mspbill will find out what happened before trying again. "
        "(Stripe request ID req_stub_1.)")


def test_stripe_retries_with_the_same_idempotency_key(stub: StripeStub) -> None:
    stub.on("POST", "/v1/payment_intents",
            Reply(500, error("api_error", "Something went wrong on Stripe's end.")), Reply(200, payment_intent()))
    result = gateway_for(stub.url, max_network_retries=1).charge(charge_request())
    assert result.status is ChargeStatus.SUCCEEDED
    assert [r.headers["idempotency-key"] for r in stub.requests] == ["charge-INV-1001-1"] * 2


def test_charge_timeout_is_unknown() -> None:
    with HungServer() as hung:
        started = time.monotonic()
        result = gateway_for(hung.url, timeout_seconds=0.5).charge(charge_request())
    assert time.monotonic() - started < 5
    assert result.status is ChargeStatus.UNKNOWN
    assert result.message.startswith("Could not reach Stripe to charge $125.00 to the client's saved payment "
                                      "method: Stripe did not answer within 0.5 seconds.")
    assert "Nothing is lost; mspbill will find out what happened before trying again." in result.message


def test_closed_port() -> None:
    gateway = gateway_for(f"http://127.0.0.1:{free_port()}")
    result = gateway.charge(charge_request())
    assert result.status is ChargeStatus.UNKNOWN
    assert result.message.startswith("Could not reach Stripe to charge $125.00 to the client's saved payment method: "
                                      "no connection (no internet, a name lookup failure or a firewall).")
    with pytest.raises(ProcessorUnavailable) as read:
        gateway.get_customer("cus_Stub1")
    assert read.value.nothing_happened
    assert "Could not reach Stripe to look up the client's customer cus_Stub1" in read.value.message
    assert "Nothing was changed. Check the internet connection (or proxy/firewall)" in read.value.message
    with pytest.raises(ProcessorUnavailable) as write:
        gateway.create_customer(name="Acme", email="ap@acme.example", metadata={}, idempotency_key="c-1")
    assert not write.value.nothing_happened
    assert "Nothing is lost; mspbill will find out what happened before trying again." in write.value.message
    assert gateway.refund(intent_id="pi_Stub1", amount_cents=500, idempotency_key="r-1",
                          metadata={}).status is RefundStatus.UNKNOWN


def test_read_500_is_unavailable(stub: StripeStub) -> None:
    stub.on("GET", "/v1/payment_intents/pi_Stub1", Reply(503, error("api_error", "Service unavailable")))
    with pytest.raises(ProcessorUnavailable) as caught:
        gateway_for(stub.url).get_charge("pi_Stub1")
    assert caught.value.nothing_happened and caught.value.request_id == "req_stub_1"
    assert caught.value.message.startswith("Stripe had a problem while trying to look up the payment pi_Stub1 "
                                           "(HTTP 503). Nothing was changed.")


# --- errors that say nothing happened ---------------------------------------------------------------


def test_wrong_key(stub: StripeStub) -> None:
    masked_by_stripe = f"{KEY[:8]}{'*' * 12}{KEY[-4:]}"
    stub.on("(GET|POST)", ".*", Reply(401, error("invalid_request_error",
                                                  f"Invalid API Key provided: {masked_by_stripe}")))
    gateway = gateway_for(stub.url)
    with pytest.raises(AuthenticationFailed) as caught:
        gateway.account()
    assert caught.value.message == f"{AUTHENTICATION_MESSAGE} (Stripe request ID req_stub_1.)"
    assert caught.value.nothing_happened and caught.value.code == "authentication"
    with pytest.raises(AuthenticationFailed):  # a charge raises too: nothing was charged
        gateway.charge(charge_request())


def test_restricted_key_without_permission(stub: StripeStub) -> None:
    stub.on("POST", "/v1/payment_intents", Reply(403, error(
        "invalid_request_error", "The provided key 'rk_test_*********************0123' does not have the required "
        "permissions for this endpoint on account 'acct_Stub1'. Having the 'rak_payment_intent_write' permission "
        "would allow this request to continue.")))
    with pytest.raises(PermissionDenied) as caught:
        gateway_for(stub.url, key=RESTRICTED_KEY).charge(charge_request())
    message = caught.value.message
    assert message.startswith(f"The restricted Stripe key {mask_key(RESTRICTED_KEY)} may not charge $125.00 to the "
                              "client's saved payment method: it lacks write access to PaymentIntents.")
    assert NEEDED_PERMISSIONS in message and RESTRICTED_KEY not in message
    assert NEEDED_PERMISSIONS == "Customers, PaymentIntents, PaymentMethods, SetupIntents, Checkout Sessions and Refunds"


@pytest.mark.parametrize(("headers", "wait"), [({"Retry-After": "7"}, 7.0), ({}, 1.0)])
def test_rate_limited(stub: StripeStub, headers: dict[str, str], wait: float) -> None:
    stub.on("POST", "/v1/payment_intents", Reply(429, error(
        "invalid_request_error", "Too many requests hit the API too quickly.", code="rate_limit"), headers))
    with pytest.raises(RateLimited) as caught:
        gateway_for(stub.url).charge(charge_request())
    assert caught.value.retry_after == wait and caught.value.nothing_happened
    assert f"try again in {wait:g} seconds" in caught.value.message


def test_idempotency_key_reused_with_other_parameters(stub: StripeStub) -> None:
    stub.on("POST", "/v1/payment_intents", Reply(400, error(
        "idempotency_error", "Keys for idempotent requests can only be used with the same parameters they were "
        "first used with. Try using a key other than 'charge-INV-1001-1' if you meant to execute a different "
        "request.")))
    with pytest.raises(IdempotencyConflict) as caught:
        gateway_for(stub.url).charge(charge_request())
    assert caught.value.nothing_happened
    assert "idempotency key was already used for a different request" in caught.value.message


def test_missing_payment_method_on_charge(stub: StripeStub) -> None:
    stub.on("POST", "/v1/payment_intents", Reply(400, error(
        "invalid_request_error", "No such PaymentMethod: 'pm_Card1'", code="resource_missing",
        param="payment_method")))
    with pytest.raises(NotFound) as caught:
        gateway_for(stub.url).charge(charge_request())
    assert caught.value.message == (
        "The saved payment method pm_Card1 no longer exists in Stripe or was removed from the client (in the "
        "Dashboard?). Send the client a new payment setup link. (Stripe request ID req_stub_1.)")


def test_missing_customer(stub: StripeStub) -> None:
    stub.on("GET", "/v1/customers/cus_Gone", Reply(404, error(
        "invalid_request_error", "No such customer: 'cus_Gone'", code="resource_missing", param="id")))
    stub.on("GET", "/v1/customers/cus_Live", Reply(404, error(
        "invalid_request_error", "No such customer: 'cus_Live'; a similar object exists in live mode, but a test "
        "mode key was used to make this request.", code="resource_missing", param="id")))
    gateway = gateway_for(stub.url)
    with pytest.raises(NotFound) as gone:
        gateway.get_customer("cus_Gone")
    assert gone.value.message.startswith("The client's customer cus_Gone no longer exists in Stripe")
    with pytest.raises(NotFound) as live:
        gateway.get_customer("cus_Live")
    assert "Stripe says it exists in the other mode: the saved key is for Stripe test mode" in live.value.message


def test_other_refused_request(stub: StripeStub) -> None:
    stub.on("POST", "/v1/payment_intents", Reply(400, error(
        "invalid_request_error", "Amount must be at least $0.50 usd", code="amount_too_small", param="amount")))
    with pytest.raises(InvalidRequest) as caught:
        gateway_for(stub.url).charge(charge_request(amount_cents=10))
    assert caught.value.message == ("Stripe refused to charge $0.10 to the client's saved payment method: Amount "
                                    "must be at least $0.50 usd (Stripe request ID req_stub_1.)")


# --- customers and methods ---------------------------------------------------------------------------


def test_deleted_customer_comes_back_marked(stub: StripeStub) -> None:
    stub.on("GET", "/v1/customers/cus_Stub1", Reply(200, deleted_customer()))
    assert gateway_for(stub.url).get_customer("cus_Stub1") == CustomerInfo(customer_id="cus_Stub1", deleted=True)


def test_find_customers_asks_twice_dedupes_and_sorts(stub: StripeStub) -> None:
    older = customer("cus_Old", email="office@example.com", created=1_700_000_000)
    newer = customer("cus_New", email="Office@Example.com", created=1_750_000_000)
    newest = customer("cus_Newest", email="office@example.com", created=1_760_000_000)

    def by_email(request: Recorded) -> Reply:
        if request.query["email"] == "Office@Example.com":
            return Reply(200, listing("/v1/customers", [newer]))
        return Reply(200, listing("/v1/customers", [newest, deleted_customer("cus_Deleted"), newer, older]))

    stub.on("GET", "/v1/customers", by_email)
    found = gateway_for(stub.url).find_customers("Office@Example.com")
    assert [c.customer_id for c in found] == ["cus_Newest", "cus_New", "cus_Old"]
    assert [r.query["email"] for r in stub.requests] == ["Office@Example.com", "office@example.com"]
    assert stub.requests[0].query["limit"] == "100"


def test_list_methods_pages_and_kinds(stub: StripeStub) -> None:
    link = {**card_method("pm_Link1"), "type": "link", "link": {"email": "ap@acme.example"}}
    del link["card"]

    def page(request: Recorded) -> Reply:
        if request.query.get("starting_after") == "pm_Link1":
            return Reply(200, listing("/v1/payment_methods", [bank_method()]))
        return Reply(200, listing("/v1/payment_methods", [card_method(), link], has_more=True))

    stub.on("GET", "/v1/payment_methods", page)
    methods = gateway_for(stub.url).list_methods("cus_Stub1")
    assert methods == [
        MethodFacts(method_id="pm_Card1", kind=MethodKind.CARD, last4="4242", brand="visa", exp_month=12,
                    exp_year=2034, customer_id="cus_Stub1"),
        MethodFacts(method_id="pm_Bank1", kind=MethodKind.US_BANK_ACCOUNT, last4="6789",
                    bank_name="STRIPE TEST BANK", customer_id="cus_Stub1"),
    ]
    assert [m.label for m in methods] == ["Visa ending 4242", "STRIPE TEST BANK ending 6789"]
    assert [r.query for r in stub.requests] == [
        {"customer": "cus_Stub1", "limit": "100"},
        {"customer": "cus_Stub1", "limit": "100", "starting_after": "pm_Link1"}]


def test_get_method_of_a_kind_mspbill_cannot_charge(stub: StripeStub) -> None:
    sepa = {**card_method("pm_Sepa1"), "type": "sepa_debit", "sepa_debit": {"last4": "3000"}}
    stub.on("GET", "/v1/payment_methods/pm_Sepa1", Reply(200, sepa))
    with pytest.raises(InvalidRequest, match="kind mspbill cannot charge"):
        gateway_for(stub.url).get_method("pm_Sepa1")


def test_detach_of_a_detached_method_is_not_an_error(stub: StripeStub) -> None:
    stub.on("POST", "/v1/payment_methods/pm_Card1/detach", Reply(400, error(
        "invalid_request_error", "The payment method you provided is not attached to a customer so detachment is "
        "impossible.", code="payment_method_unexpected_state")))
    stub.on("GET", "/v1/payment_methods/pm_Card1", Reply(200, card_method(customer=None)))
    gateway_for(stub.url).detach_method("pm_Card1")
    assert [(r.method, r.path) for r in stub.requests] == [
        ("POST", "/v1/payment_methods/pm_Card1/detach"), ("GET", "/v1/payment_methods/pm_Card1")]


def test_objects_of_the_other_mode_are_refused(stub: StripeStub) -> None:
    stub.on("GET", "/v1/customers/cus_Stub1", Reply(200, customer(livemode=True)))
    with pytest.raises(ProcessorError) as caught:
        gateway_for(stub.url).get_customer("cus_Stub1")
    assert caught.value.code == "mode_mismatch"
    assert caught.value.message.startswith("Stripe answered with live-mode data although the saved key is for "
                                           "Stripe test mode")


# --- finding earlier charges and refunds --------------------------------------------------------------


def test_find_charges_pages_and_filters_metadata(stub: StripeStub) -> None:
    mine = {"mspbill_invoice": "INV-1001", "mspbill_attempt": "1"}

    def page(request: Recorded) -> Reply:
        if "starting_after" in request.query:
            return Reply(200, listing("/v1/payment_intents", [payment_intent("pi_C", metadata=mine)]))
        return Reply(200, listing("/v1/payment_intents", [
            payment_intent("pi_A", metadata={"mspbill_invoice": "INV-1002", "mspbill_attempt": "1"}),
            payment_intent("pi_B", status="processing", metadata={**mine, "other": "x"}),
        ], has_more=True))

    stub.on("GET", "/v1/payment_intents", page)
    since = dt.datetime(2026, 1, 31, 12, 0)  # naive: taken as UTC
    found = gateway_for(stub.url).find_charges(customer_id="cus_Stub1", created_since=since, metadata=mine)
    assert [(c.intent_id, c.status) for c in found] == [("pi_B", ChargeStatus.PROCESSING),
                                                         ("pi_C", ChargeStatus.SUCCEEDED)]
    expected_query = {"customer": "cus_Stub1", "created[gte]": str(int(since.replace(tzinfo=dt.UTC).timestamp())),
                      "limit": "100"}
    assert stub.requests[0].query == expected_query
    assert stub.requests[1].query == {**expected_query, "starting_after": "pi_B"}


def test_refund_reason_and_states(stub: StripeStub) -> None:
    stub.on("POST", "/v1/refunds", Reply(200, refund(status="pending")), Reply(200, refund("re_2")),
            Reply(500, error("api_error", "Something went wrong on Stripe's end.")))
    stub.on("GET", "/v1/refunds/re_Failed", Reply(200, refund("re_Failed", status="failed",
                                                               failure_reason="expired_or_canceled_card")))
    gateway = gateway_for(stub.url)
    pending = gateway.refund(intent_id="pi_Stub1", amount_cents=500, idempotency_key="refund-1",
                             metadata={"mspbill_refund": "1"}, reason="requested_by_customer")
    assert (pending.status, pending.refund_id, pending.amount_cents) == (RefundStatus.PENDING, "re_Stub1", 500)
    done = gateway.refund(intent_id="pi_Stub1", amount_cents=500, idempotency_key="refund-2", metadata={},
                          reason="client changed their mind")
    assert done.status is RefundStatus.SUCCEEDED
    unknown = gateway.refund(intent_id="pi_Stub1", amount_cents=500, idempotency_key="refund-3", metadata={})
    assert unknown.status is RefundStatus.UNKNOWN and unknown.refund_id is None
    assert "Nothing is lost" in unknown.message
    failed = gateway.get_refund("re_Failed")
    assert failed.status is RefundStatus.FAILED and "expired_or_canceled_card" in failed.message

    first, second, _ = stub.requests[:3]
    assert first.form == {"payment_intent": "pi_Stub1", "amount": "500", "metadata[mspbill_refund]": "1",
                          "reason": "requested_by_customer"}
    assert first.headers["idempotency-key"] == "refund-1"
    assert "reason" not in second.form  # not one of Stripe's reasons: Stripe would refuse the refund


# --- Checkout setup sessions ---------------------------------------------------------------------------


def test_create_setup_session(stub: StripeStub) -> None:
    stub.on("POST", "/v1/checkout/sessions", Reply(200, checkout_session(expires_at=1_760_000_000)))
    gateway = gateway_for(stub.url)
    session = gateway.create_setup_session(
        customer_id="cus_Stub1", currency="USD", success_url="https://acme.example/thanks",
        metadata={"mspbill_client": "17"}, idempotency_key="setup-17-1",
        expires_at=dt.datetime(2025, 10, 9, 8, 53, 20, tzinfo=dt.UTC))
    assert (session.session_id, session.status, session.customer_id, session.method_id) == (
        "cs_test_Stub1", SetupStatus.OPEN, "cus_Stub1", None)
    assert session.url == "https://checkout.stripe.com/c/pay/cs_test_Stub1"
    assert session.expires_at == dt.datetime(2025, 10, 9, 8, 53, 20, tzinfo=dt.UTC)
    [sent] = stub.requests
    assert sent.headers["idempotency-key"] == "setup-17-1"
    assert sent.form == {
        "mode": "setup", "customer": "cus_Stub1", "currency": "usd",
        "allowed_payment_method_types[0]": "card", "allowed_payment_method_types[1]": "us_bank_account",
        "payment_method_options[us_bank_account][verification_method]": "automatic",
        "payment_method_options[us_bank_account][financial_connections][permissions][0]": "payment_method",
        "metadata[mspbill_client]": "17", "setup_intent_data[metadata][mspbill_client]": "17",
        "success_url": "https://acme.example/thanks", "expires_at": "1760000000",
    }

    gateway.create_setup_session(customer_id="cus_Stub1", currency="usd", success_url=None, metadata={},
                                 idempotency_key="setup-17-2")
    assert "success_url" not in stub.requests[1].form and "expires_at" not in stub.requests[1].form


@pytest.mark.parametrize(("session", "status", "method_id"), [
    (checkout_session(), SetupStatus.OPEN, None),
    (checkout_session(status="complete", setup_intent=setup_intent()), SetupStatus.COMPLETE, "pm_Card1"),
    # A bank account waiting for micro-deposits: the page is finished, the method not yet usable.
    (checkout_session(status="complete", setup_intent=setup_intent(status="requires_action",
                                                                    payment_method="pm_Bank1")),
     SetupStatus.OPEN, None),
    (checkout_session(status="expired"), SetupStatus.EXPIRED, None),
])
def test_get_setup_session(stub: StripeStub, session: dict[str, Any], status: SetupStatus,
                           method_id: str | None) -> None:
    stub.on("GET", "/v1/checkout/sessions/cs_test_Stub1", Reply(200, session))
    result = gateway_for(stub.url).get_setup_session("cs_test_Stub1")
    assert (result.status, result.method_id, result.customer_id) == (status, method_id, "cus_Stub1")
    assert stub.requests[0].query == {"expand[0]": "setup_intent"}


def test_expire_setup_session(stub: StripeStub) -> None:
    stub.on("POST", "/v1/checkout/sessions/cs_test_Open/expire",
            Reply(200, checkout_session("cs_test_Open", status="expired")))
    stub.on("POST", "/v1/checkout/sessions/cs_test_Done/expire", Reply(400, error(
        "invalid_request_error", "Only Checkout Sessions with a status in [\"open\"] can be expired. This Checkout "
        "Session has a status of \"complete\".")))
    stub.on("GET", "/v1/checkout/sessions/cs_test_Done",
            Reply(200, checkout_session("cs_test_Done", status="complete", setup_intent=setup_intent())))
    gateway = gateway_for(stub.url)
    assert gateway.expire_setup_session("cs_test_Open").status is SetupStatus.EXPIRED
    done = gateway.expire_setup_session("cs_test_Done")
    assert (done.status, done.method_id) == (SetupStatus.COMPLETE, "pm_Card1")


# --- the account ("Test connection") --------------------------------------------------------------------


def test_account(stub: StripeStub) -> None:
    stub.on("GET", "/v1/account", Reply(200, account()), Reply(200, account(name=None)),
            Reply(200, account(name=None, display_name=None)))
    gateway = gateway_for(stub.url)
    assert gateway.account() == AccountInfo(mode=ProcessorMode.TEST, account_id="acct_Stub1",
                                            display_name="Acme IT Services", restricted_key=False, country="US",
                                            default_currency="USD")
    assert gateway.account().display_name == "Acme IT"
    assert gateway.account().display_name == "billing@acme.example"


def test_account_with_a_restricted_key(stub: StripeStub) -> None:
    stub.on("GET", "/v1/account", Reply(403, error(
        "invalid_request_error", "The provided key 'rk_test_***0123' does not have the required permissions for "
        "this endpoint on account 'acct_Stub1'.")))
    stub.on("GET", "/v1/customers", Reply(200, listing("/v1/customers", [customer()])))
    info = gateway_for(stub.url, key=RESTRICTED_KEY).account()
    assert info == AccountInfo(mode=ProcessorMode.TEST, restricted_key=True)
    assert stub.requests[1].query == {"limit": "1"}


def test_account_with_a_restricted_key_that_cannot_read_customers(stub: StripeStub) -> None:
    stub.on("GET", "/v1/(account|customers)", Reply(403, error(
        "invalid_request_error", "The provided key 'rk_test_***0123' does not have the required permissions.")))
    with pytest.raises(PermissionDenied) as caught:
        gateway_for(stub.url, key=RESTRICTED_KEY).account()
    assert "may not list customers: it lacks read access to Customers." in caught.value.message


# =====================================================================================
# The code itself
# =====================================================================================


def test_mypy_strict(tmp_path: Path) -> None:
    """mypy --strict over the gateway and its interface, with stripe's own types.

    pyproject sets ignore_missing_imports, under which a stripe that mypy cannot find would
    quietly become Any and everything would "pass"; the probe proves mypy reads stripe's types."""
    probe = tmp_path / "stripe_types_probe.py"
    probe.write_text("from stripe.params import PaymentIntentCreateParams\n\n\n"
                     "def amount(params: PaymentIntentCreateParams) -> int:\n"
                     "    reveal_type(params['allowed_payment_method_types'])\n"
                     "    return params['amount']\n")
    process = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir", str(tmp_path / "cache"),
         "mspbill/payments/stripe_gateway.py", "mspbill/payments/gateway.py", str(probe)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False)
    output = process.stdout + process.stderr
    assert process.returncode == 0, output
    assert 'Revealed type is "list[Literal[\'acss_debit\'] |' in output, output


def test_only_stripe_gateway_imports_stripe() -> None:
    importers = set()
    for folder in ("mspbill", "ui"):
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
                      and isinstance(node.args[0].value, str)
                      and ((isinstance(node.func, ast.Name) and node.func.id in ("__import__", "import_module"))
                           or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module"))):
                    names = [node.args[0].value]
                if any(name == "stripe" or name.startswith("stripe.") for name in names):
                    importers.add(path.relative_to(REPO_ROOT).as_posix())
    assert importers == {"mspbill/payments/stripe_gateway.py"}


def test_the_key_never_shows(stub: StripeStub, caplog: pytest.LogCaptureFixture,
                             capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="stripe")
    monkeypatch.setattr(stripe, "log", "debug")  # stripe-python then also prints its log to stderr
    texts: list[str] = []

    def keep(error: ProcessorError) -> None:
        texts.extend([str(error), repr(error), error.message, "".join(traceback.format_exception(error))])

    masked_by_stripe = f"{KEY[:8]}{'*' * 12}{KEY[-4:]}"
    stub.on("GET", "/v1/account", Reply(401, error("invalid_request_error",
                                                    f"Invalid API Key provided: {masked_by_stripe}")))
    stub.on("POST", "/v1/customers", Reply(200, customer()))
    stub.on("POST", "/v1/payment_intents", Reply(402, card_error("card_declined", "insufficient_funds")))
    gateway = gateway_for(stub.url)
    texts.append(repr(gateway))
    with pytest.raises(AuthenticationFailed) as wrong_key:
        gateway.account()
    keep(wrong_key.value)
    gateway.create_customer(name="Acme", email="ap@acme.example", metadata={"a": "b"}, idempotency_key="c-1")
    declined = gateway.charge(charge_request())
    assert declined.decline is not None
    texts.append(declined.decline.message)
    texts.append(gateway_for(f"http://127.0.0.1:{free_port()}").charge(charge_request()).message)

    printed = capfd.readouterr()
    assert "Request to Stripe api" in caplog.text and "Request to Stripe api" in printed.err  # logging was on
    assert KEY not in caplog.text
    assert KEY not in printed.out + printed.err

    # A server (or a proxy) that echoes the key back: stripe's log and mspbill's messages still do not show it.
    monkeypatch.setattr(stripe, "log", None)  # stripe's own stderr printing cannot be filtered; mspbill never sets it
    stub.on("GET", "/v1/customers/cus_Echo", Reply(400, error("invalid_request_error",
                                                               f"Bad header: Authorization: Bearer {KEY}")))
    with pytest.raises(InvalidRequest) as echoed:
        gateway.get_customer("cus_Echo")
    keep(echoed.value)
    assert mask_key(KEY) in echoed.value.message
    assert "Bad header: Authorization: Bearer" in caplog.text and KEY not in caplog.text

    for text in texts:
        assert KEY not in text, text
