"""The real payment processor: `gateway.Gateway` over stripe-python's `StripeClient`.

This is the only module in mspbill/ and ui/ that imports stripe
(tests/test_stripe_gateway.py checks it).  Everything Stripe-specific ends
here: its error classes become `gateway.ProcessorError`s with sentences an
office manager can act on, its objects become the plain result types of
gateway.py, and a decline or an unknown outcome of a charge is a result,
never an exception.

Facts about stripe-python that shape this module:

* stripe-python sends every request with the API version it was generated for
  (16.1: 2026-10-28.endive) and its parameter TypedDicts describe exactly that
  version; every params dict below is annotated with them, so mypy --strict
  checks each key and value.  Since 2026-09-30.endive, PaymentIntents and
  Checkout Sessions no longer accept `payment_method_types`; the intent is
  restricted with `allowed_payment_method_types` instead, which also spares
  an off-session confirmation Stripe's demand for a `return_url` (cards and
  US bank accounts never redirect).
* Responses are `StripeObject`s, not dicts; a field the server left out raises
  AttributeError.  Fields that Stripe omits in some states (a deleted
  customer has only `id` and `deleted`) are read through `_field()`.
* The HTTP client is requests (`stripe.RequestsClient`), which honours the
  usual HTTPS_PROXY/NO_PROXY environment; `timeout_seconds` is its timeout.
  It keeps one session per thread, so one gateway serves a concurrent batch.
* stripe-python retries connection errors, 409s and 5xxs itself
  (`max_network_retries`), sending the same idempotency key again, so a retry
  can never make a second charge.

The secret key never appears in a message, an exception or a log line:
messages name it only as `gateway.mask_key()`, anything quoted from Stripe is
passed through `redact_secret_keys()`, exceptions are raised `from None` so a
logged traceback does not carry stripe's own exception text, and a filter on
the "stripe" logger redacts key-shaped text from stripe-python's debug log
(which logs URLs, request bodies and responses, never the Authorization
header).  stripe-python can also print that log to stderr when the
STRIPE_LOG environment variable or `stripe.log` is set; mspbill sets neither.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import stripe
from stripe.params import (
    CustomerCreateParams,
    CustomerListParams,
    CustomerUpdateParams,
    PaymentIntentCreateParams,
    PaymentIntentListParams,
    PaymentMethodListParams,
    RefundCreateParams,
    RefundListParams,
)
from stripe.params.checkout import SessionCreateParams, SessionRetrieveParams

from mspbill.money import format_amount
from mspbill.payments.gateway import (
    AccountInfo,
    AuthenticationFailed,
    ChargeRequest,
    ChargeResult,
    ChargeStatus,
    CustomerInfo,
    Decline,
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
    RefundResult,
    RefundStatus,
    SetupSession,
    SetupStatus,
    is_hard_decline,
    is_restricted_key,
    key_mode,
    mask_key,
)

__all__ = ["StripeGateway", "redact_secret_keys"]

# What a restricted key needs, in the words of Stripe Dashboard → Developers → API keys.
NEEDED_PERMISSIONS = "Customers, PaymentIntents, PaymentMethods, SetupIntents, Checkout Sessions and Refunds"

AUTHENTICATION_MESSAGE = (
    "Stripe did not accept the secret key: it is wrong, or it was rolled or revoked. Copy the current secret key "
    "from Stripe Dashboard → Developers → API keys and save it again in Settings → Payments.")

# Refund reasons Stripe accepts; any other reason is not sent (Stripe would refuse the refund).
REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")

_PAGE = 100  # the largest page Stripe serves: fewer requests against the rate limit


# --- keeping the key out of text ------------------------------------------------------------

_KEY_PATTERN = re.compile(r"\b[sr]k_(?:live|test)_[0-9A-Za-z]{6,}")


def redact_secret_keys(text: str) -> str:
    """`text` with every Stripe secret or restricted key in it shortened to `mask_key()` form."""
    return _KEY_PATTERN.sub(lambda m: mask_key(m.group(0)), text)


class _RedactSecretKeys(logging.Filter):
    """Redacts key-shaped text from stripe-python's log records before any handler sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except (TypeError, ValueError):  # a malformed record: leave it to logging's own error handling
            return True
        clean = redact_secret_keys(text)
        if clean != text:
            record.msg, record.args = clean, None
        return True


def _install_log_redaction() -> None:
    # stripe-python logs through the single logger "stripe" (stripe._util.logger).
    logger = logging.getLogger("stripe")
    if not any(isinstance(f, _RedactSecretKeys) for f in logger.filters):
        logger.addFilter(_RedactSecretKeys())


_install_log_redaction()


# --- reading Stripe objects --------------------------------------------------------------------


def _field(obj: object, name: str) -> object:
    """A field Stripe may leave out of an object (None when absent or when `obj` is not an object)."""
    if not isinstance(obj, stripe.StripeObject) or name not in obj:
        return None
    value: object = obj[name]
    return value


def _text(obj: object, name: str) -> str | None:
    value = _field(obj, name)
    return value if isinstance(value, str) and value else None


def _number(obj: object, name: str) -> int | None:
    value = _field(obj, name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _object_id(value: object) -> str | None:
    """The id of an expandable field: the id itself, or the expanded object's id."""
    if isinstance(value, str):
        return value or None
    return _text(value, "id")


def _metadata(obj: object) -> dict[str, str]:
    value = _field(obj, "metadata")
    if not isinstance(value, stripe.StripeObject):
        return {}
    return {str(k): str(v) for k, v in value.to_dict().items()}


def _has_metadata(obj: object, wanted: Mapping[str, str]) -> bool:
    have = _metadata(obj)
    return all(have.get(k) == v for k, v in wanted.items())


def _utc(timestamp: int | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC) if timestamp is not None else None


def _epoch(moment: dt.datetime) -> int:
    """Unix seconds; a naive datetime is taken as UTC (mspbill keeps UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp())


# --- what a call was doing, for its error messages -------------------------------------------


@dataclass(frozen=True)
class _Call:
    doing: str                    # completes "Could not reach Stripe to …"
    permission: str               # the Stripe permission a restricted key needs for it
    writes: bool                  # changes something at Stripe (POST/DELETE)
    ids: tuple[tuple[str, str], ...] = ()  # (kind, id) of the objects it names, for "not found"


# Object id prefixes -> the kinds of _NOT_FOUND.
_ID_KINDS = {"cus": "customer", "pm": "method", "card": "method", "ba": "method", "src": "method",
             "pi": "payment", "cs": "session", "re": "refund", "pyr": "refund"}
_PARAM_KINDS = {"customer": "customer", "payment_method": "method", "payment_intent": "payment",
                "session": "session", "refund": "refund"}
_ID_IN_TEXT = re.compile(r"\b((?:cus|pm|card|ba|src|pi|cs|re|pyr)_[0-9A-Za-z_]+)")

_NOT_FOUND = {
    "customer": "The client's customer {id} no longer exists in Stripe (deleted in the Dashboard?). Link the client "
                "again or send a new payment setup link.",
    "method": "The saved payment method {id} no longer exists in Stripe or was removed from the client (in the "
              "Dashboard?). Send the client a new payment setup link.",
    "payment": "The payment {id} does not exist in this Stripe account. Check that the key saved in Settings → "
               "Payments belongs to the account and mode the payment was made in.",
    "session": "The payment setup link {id} no longer exists in Stripe. Send the client a new payment setup link.",
    "refund": "The refund {id} does not exist in this Stripe account. Check that the key saved in Settings → "
              "Payments belongs to the account and mode the refund was made in.",
}


def _with_request_id(message: str, request_id: str | None) -> str:
    return f"{message} (Stripe request ID {request_id}.)" if request_id else message


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """A response header, whatever the HTTP library's case handling."""
    for key, value in (headers or {}).items():
        if key.lower() == name.lower():
            return value
    return None


def _retry_after(headers: Mapping[str, str] | None) -> float:
    try:
        seconds = float(_header(headers, "Retry-After") or "")
    except ValueError:  # absent, or an HTTP date (Stripe sends seconds)
        return 1.0
    return seconds if seconds >= 0 else 1.0


def _stripe_words(err: stripe.StripeError) -> str:
    """Stripe's own message, without its request id prefix and without any key in it."""
    words = err.user_message if isinstance(err.user_message, str) else ""
    return redact_secret_keys(words.strip()) or "no reason given"


def _is_not_found(err: stripe.InvalidRequestError) -> bool:
    # Stripe says resource_missing (HTTP 404).  localstripe says only HTTP 404 "Not Found".  A 404 for a URL
    # Stripe does not know at all is a bug here, not a missing object.
    if err.code == "resource_missing":
        return True
    return err.http_status == 404 and not _stripe_words(err).startswith("Unrecognized request URL")


class StripeGateway:
    """`Gateway` for Stripe.  Safe to share between threads."""

    def __init__(self, secret_key: str, *, api_base: str | None = None, timeout_seconds: float = 30,
                 max_network_retries: int = 2) -> None:
        if not secret_key:
            raise NotConfiguredError("No Stripe secret key is saved. Add it in Settings → Payments.")
        self._masked_key = mask_key(secret_key)
        self._mode = key_mode(secret_key)
        self._restricted = is_restricted_key(secret_key)
        self._timeout = timeout_seconds
        self._client = stripe.StripeClient(
            secret_key,
            # api_base points the client at localstripe or a test server instead of api.stripe.com.
            base_addresses={"api": api_base} if api_base else None,
            max_network_retries=max_network_retries,
            http_client=stripe.RequestsClient(timeout=timeout_seconds),
        )

    def __repr__(self) -> str:
        return f"StripeGateway({self._mode.label}, key {self._masked_key})"

    @property
    def mode(self) -> ProcessorMode:
        return self._mode

    # --- account -------------------------------------------------------------------------

    def account(self) -> AccountInfo:
        try:
            acct = self._client.v1.accounts.retrieve_current()
        except stripe.PermissionError:
            # Restricted keys usually may not read the account.  Listing one customer (which mspbill
            # needs anyway) still proves that the key works and Stripe is reachable.
            return self._account_by_listing(restricted=True)
        except stripe.StripeError as err:
            if err.http_status == 404:
                # An API without the account endpoint (a Stripe stand-in such as localstripe):
                # the key and the connection are proved the same way.
                return self._account_by_listing(restricted=self._restricted)
            raise self._error(err, _Call("check the Stripe account", "Account", writes=False)) from None
        profile = _field(acct, "business_profile")
        dashboard = _field(_field(acct, "settings"), "dashboard")
        name = _text(profile, "name") or _text(dashboard, "display_name") or _text(acct, "email") or ""
        return AccountInfo(mode=self._mode, account_id=acct.id, display_name=name, restricted_key=self._restricted,
                           country=_text(acct, "country") or "",
                           default_currency=(_text(acct, "default_currency") or "").upper())

    def _account_by_listing(self, *, restricted: bool) -> AccountInfo:
        with self._translated(_Call("list customers", "Customers", writes=False)):
            page = self._client.v1.customers.list(params={"limit": 1})
        for customer in page.data:
            self._check_mode(customer)
        return AccountInfo(mode=self._mode, restricted_key=restricted)

    # --- customers -------------------------------------------------------------------------

    def create_customer(self, *, name: str, email: str, metadata: Mapping[str, str],
                        idempotency_key: str) -> CustomerInfo:
        params: CustomerCreateParams = {"metadata": dict(metadata)}
        if name:
            params["name"] = name
        if email:
            params["email"] = email
        with self._translated(_Call("create the client's customer", "Customers", writes=True)):
            customer = self._client.v1.customers.create(params=params, options={"idempotency_key": idempotency_key})
        return self._customer_info(customer)

    def get_customer(self, customer_id: str) -> CustomerInfo:
        call = _Call(f"look up the client's customer {customer_id}", "Customers", writes=False,
                     ids=(("customer", customer_id),))
        with self._translated(call):
            customer = self._client.v1.customers.retrieve(customer_id)
        self._check_mode(customer)
        return self._customer_info(customer)

    def find_customers(self, email: str) -> list[CustomerInfo]:
        email = email.strip()
        if not email:
            return []
        # Stripe's e-mail filter is exact and case-sensitive: ask for the address as given and in lower case.
        found: dict[str, CustomerInfo] = {}
        with self._translated(_Call("search Stripe customers by e-mail", "Customers", writes=False)):
            for address in dict.fromkeys((email, email.lower())):
                params: CustomerListParams = {"email": address, "limit": _PAGE}
                for customer in self._client.v1.customers.list(params=params).auto_paging_iter():
                    if _field(customer, "deleted") is True:
                        continue
                    self._check_mode(customer)
                    found.setdefault(customer.id, self._customer_info(customer))
        epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
        return sorted(found.values(), key=lambda c: c.created or epoch, reverse=True)

    def update_customer(self, customer_id: str, *, name: str | None = None, email: str | None = None,
                        default_method_id: str | None = None) -> CustomerInfo:
        params: CustomerUpdateParams = {}
        if name is not None:
            params["name"] = name
        if email is not None:
            params["email"] = email
        if default_method_id is not None:
            # "" clears the default (Stripe's way of unsetting a field).
            params["invoice_settings"] = {"default_payment_method": default_method_id}
        if not params:
            return self.get_customer(customer_id)
        call = _Call(f"update the client's customer {customer_id}", "Customers", writes=True,
                     ids=(("customer", customer_id),) + ((("method", default_method_id),) if default_method_id else ()))
        with self._translated(call):
            customer = self._client.v1.customers.update(customer_id, params=params)
        return self._customer_info(customer)

    # --- payment methods --------------------------------------------------------------------

    def list_methods(self, customer_id: str) -> list[MethodFacts]:
        # One listing without a `type` filter returns every type (Stripe API); keep the kinds mspbill charges.
        params: PaymentMethodListParams = {"customer": customer_id, "limit": _PAGE}
        call = _Call("list the client's saved payment methods", "PaymentMethods", writes=False,
                     ids=(("customer", customer_id),))
        methods: list[MethodFacts] = []
        with self._translated(call):
            for method in self._client.v1.payment_methods.list(params=params).auto_paging_iter():
                self._check_mode(method)
                facts = self._method_facts(method)
                if facts is not None:
                    methods.append(facts)
        return methods

    def get_method(self, method_id: str) -> MethodFacts:
        call = _Call(f"look up the saved payment method {method_id}", "PaymentMethods", writes=False,
                     ids=(("method", method_id),))
        with self._translated(call):
            method = self._client.v1.payment_methods.retrieve(method_id)
        self._check_mode(method)
        facts = self._method_facts(method)
        if facts is None:
            raise InvalidRequest(
                f"The payment method {method_id} is of a kind mspbill cannot charge ({method.type}). Send the client "
                "a payment setup link to save a card or US bank account.")
        return facts

    def detach_method(self, method_id: str) -> None:
        call = _Call(f"remove the saved payment method {method_id}", "PaymentMethods", writes=True,
                     ids=(("method", method_id),))
        try:
            self._client.v1.payment_methods.detach(method_id)
        except stripe.InvalidRequestError as err:
            if _is_not_found(err):
                raise self._error(err, call) from None
            # Stripe refuses to detach a method that is not attached; that is the state we want.
            with self._translated(call):
                method = self._client.v1.payment_methods.retrieve(method_id)
            if _object_id(_field(method, "customer")) is not None:
                raise self._error(err, call) from None
        except stripe.StripeError as err:
            raise self._error(err, call) from None

    # --- hosted setup pages ----------------------------------------------------------------------

    def create_setup_session(self, *, customer_id: str, currency: str, success_url: str | None,
                             metadata: Mapping[str, str], idempotency_key: str,
                             expires_at: dt.datetime | None = None) -> SetupSession:
        params: SessionCreateParams = {
            "mode": "setup",
            "customer": customer_id,
            "currency": currency.lower(),
            "allowed_payment_method_types": ["card", "us_bank_account"],
            "payment_method_options": {"us_bank_account": {
                # Instant verification through Financial Connections, micro-deposits when the bank has none;
                # "payment_method" is the only data mspbill asks the bank for.
                "verification_method": "automatic",
                "financial_connections": {"permissions": ["payment_method"]},
            }},
            "metadata": dict(metadata),
            # The same metadata on the SetupIntent ties the saved method back to this request in the Dashboard.
            "setup_intent_data": {"metadata": dict(metadata)},
        }
        if success_url:
            params["success_url"] = success_url
        if expires_at is not None:
            params["expires_at"] = _epoch(expires_at)
        call = _Call("create a payment setup link", "Checkout Sessions", writes=True, ids=(("customer", customer_id),))
        with self._translated(call):
            session = self._client.v1.checkout.sessions.create(params=params,
                                                               options={"idempotency_key": idempotency_key})
        return self._setup_session(session, customer_id)

    def get_setup_session(self, session_id: str) -> SetupSession:
        # Expanded, the SetupIntent tells which payment method the client saved and whether it is usable yet.
        params: SessionRetrieveParams = {"expand": ["setup_intent"]}
        call = _Call(f"check the payment setup link {session_id}", "Checkout Sessions", writes=False,
                     ids=(("session", session_id),))
        with self._translated(call):
            session = self._client.v1.checkout.sessions.retrieve(session_id, params=params)
        self._check_mode(session)
        return self._setup_session(session, "")

    def expire_setup_session(self, session_id: str) -> SetupSession:
        call = _Call(f"close the payment setup link {session_id}", "Checkout Sessions", writes=True,
                     ids=(("session", session_id),))
        try:
            session = self._client.v1.checkout.sessions.expire(session_id)
        except stripe.InvalidRequestError as err:
            if _is_not_found(err):
                raise self._error(err, call) from None
            # Only an open page can be expired: a finished one is returned as it is.
            current = self.get_setup_session(session_id)
            if current.status is SetupStatus.OPEN:
                raise self._error(err, call) from None
            return current
        except stripe.StripeError as err:
            raise self._error(err, call) from None
        return self._setup_session(session, "")

    # --- charges ------------------------------------------------------------------------------

    def _payment_intent_params(self, request: ChargeRequest) -> PaymentIntentCreateParams:
        """The PaymentIntent for `request`: created and confirmed at once, off-session."""
        params: PaymentIntentCreateParams = {
            "amount": request.amount_cents,
            "currency": request.currency.lower(),
            "customer": request.customer_id,
            "payment_method": request.method_id,
            "off_session": True,
            "confirm": True,
            # The saved method's type only (see the module docstring on `allowed_payment_method_types`).
            "allowed_payment_method_types": [request.method_kind.value],
            "metadata": dict(request.metadata),
        }
        if request.description:
            params["description"] = request.description
        if request.statement_descriptor_suffix:
            params["statement_descriptor_suffix"] = request.statement_descriptor_suffix
        return params

    def charge(self, request: ChargeRequest) -> ChargeResult:
        amount = format_amount(request.amount_cents, request.currency)
        call = _Call(f"charge {amount} to the client's saved payment method", "PaymentIntents", writes=True,
                     ids=(("customer", request.customer_id), ("method", request.method_id)))
        try:
            intent = self._client.v1.payment_intents.create(params=self._payment_intent_params(request),
                                                            options={"idempotency_key": request.idempotency_key})
        except stripe.CardError as err:
            return self._declined(err, request)
        except (stripe.APIConnectionError, stripe.APIError) as err:
            # The request may or may not have reached Stripe: the caller must find out before charging again.
            return ChargeResult(status=ChargeStatus.UNKNOWN, amount_cents=request.amount_cents,
                                currency=request.currency.upper(), method_id=request.method_id,
                                message=self._unavailable_message(err, call), metadata=dict(request.metadata))
        except stripe.StripeError as err:
            # A wrong key, a 429, a reused idempotency key, a refused request: known to have charged nothing.
            raise self._error(err, call) from None
        return self._charge_result(intent)

    def get_charge(self, intent_id: str) -> ChargeResult:
        call = _Call(f"look up the payment {intent_id}", "PaymentIntents", writes=False, ids=(("payment", intent_id),))
        with self._translated(call):
            intent = self._client.v1.payment_intents.retrieve(intent_id)
        self._check_mode(intent)
        return self._charge_result(intent)

    def find_charges(self, *, customer_id: str, created_since: dt.datetime,
                     metadata: Mapping[str, str]) -> list[ChargeResult]:
        params: PaymentIntentListParams = {"customer": customer_id, "created": {"gte": _epoch(created_since)},
                                           "limit": _PAGE}
        call = _Call("look for the client's earlier payments", "PaymentIntents", writes=False,
                     ids=(("customer", customer_id),))
        results: list[ChargeResult] = []
        with self._translated(call):
            for intent in self._client.v1.payment_intents.list(params=params).auto_paging_iter():
                if _has_metadata(intent, metadata):
                    self._check_mode(intent)
                    results.append(self._charge_result(intent))
        return results

    # --- refunds ------------------------------------------------------------------------------

    def refund(self, *, intent_id: str, amount_cents: int, idempotency_key: str,
               metadata: Mapping[str, str], reason: str | None = None) -> RefundResult:
        params: RefundCreateParams = {"payment_intent": intent_id, "amount": amount_cents, "metadata": dict(metadata)}
        if reason in REFUND_REASONS:
            params["reason"] = reason
        call = _Call(f"refund the payment {intent_id}", "Refunds", writes=True, ids=(("payment", intent_id),))
        try:
            refund = self._client.v1.refunds.create(params=params, options={"idempotency_key": idempotency_key})
        except (stripe.APIConnectionError, stripe.APIError) as err:
            return RefundResult(status=RefundStatus.UNKNOWN, amount_cents=amount_cents,
                                message=self._unavailable_message(err, call))
        except stripe.StripeError as err:
            raise self._error(err, call) from None
        return self._refund_result(refund)

    def get_refund(self, refund_id: str) -> RefundResult:
        call = _Call(f"look up the refund {refund_id}", "Refunds", writes=False, ids=(("refund", refund_id),))
        with self._translated(call):
            refund = self._client.v1.refunds.retrieve(refund_id)
        self._check_mode(refund)
        return self._refund_result(refund)

    def find_refunds(self, *, intent_id: str, metadata: Mapping[str, str]) -> list[RefundResult]:
        params: RefundListParams = {"payment_intent": intent_id, "limit": _PAGE}
        call = _Call(f"look for refunds of the payment {intent_id}", "Refunds", writes=False,
                     ids=(("payment", intent_id),))
        with self._translated(call):
            return [self._refund_result(refund)
                    for refund in self._client.v1.refunds.list(params=params).auto_paging_iter()
                    if _has_metadata(refund, metadata)]

    # --- Stripe objects -> results ----------------------------------------------------------------

    def _check_mode(self, obj: stripe.StripeObject) -> None:
        """Refuses an object of the other mode (test vs live), where the object says which it is."""
        livemode = _field(obj, "livemode")
        if isinstance(livemode, bool) and livemode != (self._mode is ProcessorMode.LIVE):
            other = "live" if livemode else "test"
            raise ProcessorError(
                f"Stripe answered with {other}-mode data although the saved key is for {self._mode.label} "
                f"({self._masked_key}). Nothing was changed. Check the key in Settings → Payments.",
                code="mode_mismatch")

    @staticmethod
    def _customer_info(customer: stripe.Customer) -> CustomerInfo:
        if _field(customer, "deleted") is True:
            return CustomerInfo(customer_id=customer.id, deleted=True)
        settings = _field(customer, "invoice_settings")
        return CustomerInfo(customer_id=customer.id, email=_text(customer, "email") or "",
                            name=_text(customer, "name") or "",
                            default_method_id=_object_id(_field(settings, "default_payment_method")),
                            created=_utc(_number(customer, "created")), metadata=_metadata(customer))

    @staticmethod
    def _method_facts(method: stripe.PaymentMethod) -> MethodFacts | None:
        customer_id = _object_id(_field(method, "customer"))
        if method.type == MethodKind.CARD.value:
            card = _field(method, "card")
            return MethodFacts(method_id=method.id, kind=MethodKind.CARD, last4=_text(card, "last4") or "",
                               brand=_text(card, "brand") or "", exp_month=_number(card, "exp_month"),
                               exp_year=_number(card, "exp_year"), customer_id=customer_id)
        if method.type == MethodKind.US_BANK_ACCOUNT.value:
            bank = _field(method, "us_bank_account")
            return MethodFacts(method_id=method.id, kind=MethodKind.US_BANK_ACCOUNT, last4=_text(bank, "last4") or "",
                               bank_name=_text(bank, "bank_name") or "", customer_id=customer_id)
        return None

    @staticmethod
    def _setup_session(session: stripe.checkout.Session, customer_id: str) -> SetupSession:
        status = {"complete": SetupStatus.COMPLETE, "expired": SetupStatus.EXPIRED}.get(
            _text(session, "status") or "", SetupStatus.OPEN)
        method_id: str | None = None
        if status is SetupStatus.COMPLETE:
            intent = _field(session, "setup_intent")
            method_id = _object_id(_field(intent, "payment_method"))
            intent_status = _text(intent, "status")
            if intent_status is not None and intent_status != "succeeded":
                # The client finished the page, but the method is not usable yet: a bank account waiting for
                # its micro-deposits to be verified.  Still waiting for the client, then.
                status, method_id = SetupStatus.OPEN, None
        expires = _utc(_number(session, "expires_at")) or dt.datetime.now(dt.UTC)
        return SetupSession(session_id=session.id, url=_text(session, "url"), status=status,
                            customer_id=_object_id(_field(session, "customer")) or customer_id,
                            expires_at=expires, method_id=method_id)

    def _charge_result(self, intent: stripe.PaymentIntent) -> ChargeResult:
        status = intent.status

        def result(charge_status: ChargeStatus, decline: Decline | None = None, message: str = "") -> ChargeResult:
            return ChargeResult(status=charge_status, intent_id=intent.id, amount_cents=intent.amount,
                                currency=intent.currency.upper(),
                                method_id=_object_id(_field(intent, "payment_method")), decline=decline,
                                message=message, created=_utc(_number(intent, "created")),
                                metadata=_metadata(intent))

        if status == "succeeded":
            return result(ChargeStatus.SUCCEEDED)
        if status in ("processing", "requires_capture"):  # requires_capture: authorised, not yet captured
            return result(ChargeStatus.PROCESSING)
        if status == "requires_action":
            return result(ChargeStatus.REQUIRES_ACTION, Decline(
                "authentication_required", None,
                "The client's bank wants the client to confirm this payment, which cannot happen while they are away.",
                hard=True))
        if status in ("requires_payment_method", "canceled", "requires_confirmation"):
            error = _field(intent, "last_payment_error")
            if error is not None:
                code = _text(error, "code") or "card_declined"
                decline_code = _text(error, "decline_code")
                words = redact_secret_keys(_text(error, "message") or "The payment was declined.")
            elif status == "canceled":
                code, decline_code = "canceled", None
                reason = _text(intent, "cancellation_reason")
                words = "The payment was canceled in Stripe" + (f" ({reason})." if reason else ".")
            else:
                code, decline_code = "payment_intent_payment_attempt_failed", None
                words = "The payment did not go through."
            if code == "authentication_required" or decline_code == "authentication_required":
                return result(ChargeStatus.REQUIRES_ACTION, Decline(code, decline_code, words, hard=True))
            return result(ChargeStatus.DECLINED, Decline(code, decline_code, words,
                                                         hard=is_hard_decline(code, decline_code)))
        return result(ChargeStatus.UNKNOWN, message=f"Stripe reports the payment {intent.id} as {status!r}, which "
                                                    "mspbill does not know; check it in the Stripe Dashboard.")

    def _declined(self, err: stripe.CardError, request: ChargeRequest) -> ChargeResult:
        """A 402 from Stripe: the bank (or Stripe's fraud rules) said no; nothing was charged."""
        error = err.error
        code = err.code or _text(error, "code") or "card_declined"
        decline_code = _text(error, "decline_code")
        words = _stripe_words(err)
        intent = _field(error, "payment_intent")  # the failed PaymentIntent, when Stripe includes it
        needs_authentication = ("authentication_required" in (code, decline_code)
                                or _text(intent, "status") == "requires_action")
        decline = Decline(code, decline_code, words,
                          hard=True if needs_authentication else is_hard_decline(code, decline_code))
        return ChargeResult(
            status=ChargeStatus.REQUIRES_ACTION if needs_authentication else ChargeStatus.DECLINED,
            intent_id=_object_id(intent), amount_cents=request.amount_cents, currency=request.currency.upper(),
            method_id=request.method_id, decline=decline, created=_utc(_number(intent, "created")),
            metadata=dict(request.metadata))

    @staticmethod
    def _refund_result(refund: stripe.Refund) -> RefundResult:
        stripe_status = _text(refund, "status")
        if stripe_status == "succeeded":
            status = RefundStatus.SUCCEEDED
        elif stripe_status in ("failed", "canceled"):
            status = RefundStatus.FAILED
        else:  # pending, requires_action (Stripe needs the client's bank details to send the money back)
            status = RefundStatus.PENDING
        message = ""
        if status is RefundStatus.FAILED:
            message = f"Stripe could not make the refund ({_text(refund, 'failure_reason') or stripe_status})."
        elif stripe_status == "requires_action":
            message = "Stripe is waiting for the client to give bank details for the refund."
        return RefundResult(status=status, refund_id=refund.id, amount_cents=refund.amount, message=message)

    # --- Stripe errors -> ProcessorErrors ----------------------------------------------------------

    @contextmanager
    def _translated(self, call: _Call) -> Iterator[None]:
        try:
            yield
        except stripe.StripeError as err:
            # `from None`: a logged traceback shows only mspbill's sentence, never stripe's raw exception text.
            raise self._error(err, call) from None

    def _error(self, err: stripe.StripeError, call: _Call) -> ProcessorError:
        request_id = err.request_id
        if isinstance(err, stripe.AuthenticationError):
            return AuthenticationFailed(_with_request_id(AUTHENTICATION_MESSAGE, request_id), request_id=request_id)
        if isinstance(err, stripe.PermissionError):
            return PermissionDenied(_with_request_id(self._permission_message(err, call), request_id),
                                    request_id=request_id)
        if isinstance(err, stripe.RateLimitError):
            wait = _retry_after(err.headers)
            return RateLimited(_with_request_id(
                "Stripe is getting too many requests from this account right now and asked mspbill to slow down. "
                f"Nothing was done; it is safe to try again in {wait:g} seconds.", request_id),
                retry_after=wait, request_id=request_id)
        if isinstance(err, stripe.IdempotencyError):
            return IdempotencyConflict(_with_request_id(
                f"Stripe refused to {call.doing}: the request's idempotency key was already used for a different "
                "request. Nothing was done. This is a fault in mspbill or in its records, so do not retry it as a "
                "new payment; contact support with this message.", request_id), request_id=request_id)
        if isinstance(err, stripe.InvalidRequestError) and _is_not_found(err):
            return NotFound(_with_request_id(self._not_found_message(err, call), request_id), request_id=request_id)
        if isinstance(err, (stripe.InvalidRequestError, stripe.CardError)):
            return InvalidRequest(_with_request_id(f"Stripe refused to {call.doing}: {_stripe_words(err)}",
                                                   request_id), request_id=request_id)
        if isinstance(err, (stripe.APIConnectionError, stripe.APIError)):
            return ProcessorUnavailable(self._unavailable_message(err, call), request_id=request_id,
                                        nothing_happened=not call.writes)
        return ProcessorError(_with_request_id(f"Stripe refused to {call.doing}: {_stripe_words(err)}", request_id),
                              request_id=request_id)

    def _permission_message(self, err: stripe.StripeError, call: _Call) -> str:
        if not self._restricted:
            return f"Stripe does not let the key {self._masked_key} {call.doing}: {_stripe_words(err)}"
        access = "write" if call.writes else "read"
        return (f"The restricted Stripe key {self._masked_key} may not {call.doing}: it lacks {access} access to "
                f"{call.permission}. In Stripe Dashboard → Developers → API keys, edit the key to give it write "
                f"access to {NEEDED_PERMISSIONS} (what mspbill needs), or save the standard secret key in "
                "Settings → Payments.")

    def _not_found_message(self, err: stripe.InvalidRequestError, call: _Call) -> str:
        words = _stripe_words(err)
        kind = _PARAM_KINDS.get(err.param or "")
        match = _ID_IN_TEXT.search(words)
        object_id = match.group(1) if match else None
        if kind is None and object_id is not None:
            kind = _ID_KINDS.get(object_id.split("_", 1)[0])
        if kind is not None and object_id is None:
            object_id = next((i for k, i in call.ids if k == kind), None)
        if kind is None and len(call.ids) == 1:
            kind, object_id = call.ids[0]
        if kind is not None and object_id is not None:
            message = _NOT_FOUND[kind].format(id=object_id)
        elif call.ids:
            # Stripe did not say which of the named objects is missing (localstripe never does).
            named = " or ".join(f"{k} {i}" for k, i in call.ids)
            message = (f"Stripe could not {call.doing}: it no longer has the client's {named} (deleted in the "
                       "Dashboard?). Link the client again or send a new payment setup link.")
        else:
            message = f"Stripe could not {call.doing}: {words}"
        if "similar object exists in" in words:
            message += (f" Stripe says it exists in the other mode: the saved key is for {self._mode.label}; save "
                        "the key of the right mode in Settings → Payments.")
        return message

    def _unavailable_message(self, err: stripe.StripeError, call: _Call) -> str:
        if isinstance(err, stripe.APIConnectionError):
            head = f"Could not reach Stripe to {call.doing}: {self._connection_problem(err)}."
        else:
            status = f"HTTP {err.http_status}" if err.http_status else "an unreadable answer"
            head = f"Stripe had a problem while trying to {call.doing} ({status})."
        if call.writes:
            tail = (" Check the internet connection (or proxy/firewall); if it is fine, status.stripe.com tells "
                    "whether Stripe is down. Nothing is lost; mspbill will find out what happened before trying "
                    "again.")
        else:
            tail = (" Nothing was changed. Check the internet connection (or proxy/firewall) and try again; "
                    "status.stripe.com tells whether Stripe is down.")
        return _with_request_id(head + tail, err.request_id)

    def _connection_problem(self, err: stripe.APIConnectionError) -> str:
        # Classified by the HTTP library's exception class names, so this module does not depend on which
        # library stripe-python picked.
        cause = err.__cause__
        names = {cls.__name__ for cls in type(cause).__mro__} if cause is not None else set()
        if "SSLError" in names:
            return "the secure connection could not be verified (a proxy or firewall may be intercepting it)"
        if names & {"Timeout", "TimeoutError", "ReadTimeout", "ConnectTimeout"}:
            return f"Stripe did not answer within {self._timeout:g} seconds"
        if "ProxyError" in names:
            return "the proxy server refused the connection"
        return "no connection (no internet, a name lookup failure or a firewall)"

