"""The payment processor interface, its result types and its errors.

Two implementations: `stripe_gateway.StripeGateway` (the real one, the only
module that imports stripe) and `sandbox.SandboxGateway` (a simulated processor
with Stripe's semantics, for the demo office, the tests and the benchmarks).
The rest of mspbill talks only to `Gateway`.

How outcomes are reported:

* `charge()` never raises for a decline or for an outcome it cannot know: a
  decline is `ChargeStatus.DECLINED` with its codes, and a network error, a
  timeout or a 5xx is `ChargeStatus.UNKNOWN` -- the processor may or may not
  have made the charge, and the caller must find out (`find_charges`, or the
  same idempotency key again) before it charges that invoice again.
* Every other failure raises a `ProcessorError` subclass whose message is a
  sentence an office manager can act on.  `nothing_happened` tells whether the
  processor is known to have done nothing (a wrong key, a 429, a refused
  request) or may have acted (a timeout on a request that changes something).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

# --- modes ------------------------------------------------------------------------


class ProcessorMode(str, enum.Enum):
    """Where money would move.  Customers and methods of one mode do not exist in another."""

    TEST = "test"        # Stripe test mode: no money moves
    LIVE = "live"        # Stripe live mode: real money
    SANDBOX = "sandbox"  # mspbill's simulated processor: no money, no Stripe

    @property
    def label(self) -> str:
        return {"test": "Stripe test mode", "live": "Stripe LIVE", "sandbox": "Sandbox (simulated; no money moves)"}[
            self.value]

    @property
    def moves_money(self) -> bool:
        return self is ProcessorMode.LIVE


# --- errors -----------------------------------------------------------------------


class ProcessorError(RuntimeError):
    """A processor call failed.  The message is for a person; `code` is for the program."""

    nothing_happened: bool = True
    code: str = "processor_error"

    def __init__(self, message: str, *, code: str | None = None, request_id: str | None = None,
                 nothing_happened: bool | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.request_id = request_id
        if nothing_happened is not None:
            self.nothing_happened = nothing_happened


class NotConfiguredError(ProcessorError):
    """No processor is set up (no key saved, or payments are turned off)."""

    code = "not_configured"


class AuthenticationFailed(ProcessorError):
    """The key is wrong, revoked or rolled: nothing was done."""

    code = "authentication"


class PermissionDenied(ProcessorError):
    """A restricted key lacks a permission this call needs: nothing was done."""

    code = "permission"


class RateLimited(ProcessorError):
    """429: too many requests; nothing was done, try again after `retry_after` seconds."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float = 1.0, request_id: str | None = None):
        super().__init__(message, request_id=request_id, nothing_happened=True)
        self.retry_after = retry_after


class ProcessorUnavailable(ProcessorError):
    """No network, a timeout or a 5xx.  For a call that changes something, whether
    it took effect is unknown (`nothing_happened` is False)."""

    code = "unavailable"


class NotFound(ProcessorError):
    """The customer, method, session or payment does not exist (or was deleted) at the processor."""

    code = "not_found"


class InvalidRequest(ProcessorError):
    """The processor refused the request as malformed or not allowed (for example a
    payment method that cannot be used); nothing was done."""

    code = "invalid_request"


class IdempotencyConflict(ProcessorError):
    """The idempotency key was already used with other parameters: nothing was done.
    This is a bug or a tampered record, never a reason to charge with a new key."""

    code = "idempotency_conflict"


# --- payment methods and customers --------------------------------------------------


class MethodKind(str, enum.Enum):
    CARD = "card"
    US_BANK_ACCOUNT = "us_bank_account"


BRAND_NAMES = {"visa": "Visa", "mastercard": "Mastercard", "amex": "American Express", "discover": "Discover",
               "diners": "Diners Club", "jcb": "JCB", "unionpay": "UnionPay", "cartes_bancaires": "Cartes Bancaires",
               "eftpos_au": "eftpos", "interac": "Interac", "link": "Link"}


@dataclass(frozen=True)
class MethodFacts:
    """What may be kept about a payment method: its id and what a person needs to recognise it.
    Never the number."""

    method_id: str
    kind: MethodKind
    last4: str
    brand: str = ""            # cards: "visa", "mastercard", ...
    exp_month: int | None = None
    exp_year: int | None = None
    bank_name: str = ""        # bank accounts
    customer_id: str | None = None

    @property
    def label(self) -> str:
        """"Visa ending 4242", "STRIPE TEST BANK ending 6789"."""
        if self.kind is MethodKind.CARD:
            name = BRAND_NAMES.get(self.brand.lower(), self.brand.title() or "Card")
        else:
            name = self.bank_name or "Bank account"
        return f"{name} ending {self.last4}"

    def expires_before(self, day: dt.date) -> bool:
        """True when a card's last valid day is before `day` (a card is good through its expiry month)."""
        if self.exp_month is None or self.exp_year is None:
            return False
        return (self.exp_year, self.exp_month) < (day.year, day.month)


@dataclass(frozen=True)
class CustomerInfo:
    customer_id: str
    email: str = ""
    name: str = ""
    default_method_id: str | None = None
    deleted: bool = False
    created: dt.datetime | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


class SetupStatus(str, enum.Enum):
    OPEN = "open"          # waiting for the client
    COMPLETE = "complete"  # a method was saved (`method_id`)
    EXPIRED = "expired"    # nobody finished it in time, or it was expired on purpose


@dataclass(frozen=True)
class SetupSession:
    """A hosted page where a client saves a card or bank account (Checkout, setup mode)."""

    session_id: str
    url: str | None
    status: SetupStatus
    customer_id: str
    expires_at: dt.datetime
    method_id: str | None = None


# --- charges and refunds ----------------------------------------------------------------


class ChargeStatus(str, enum.Enum):
    SUCCEEDED = "succeeded"
    PROCESSING = "processing"            # ACH: settles within about 4 business days
    DECLINED = "declined"
    REQUIRES_ACTION = "requires_action"  # the bank wants the client present (3-D Secure): a hard decline off-session
    UNKNOWN = "unknown"                  # the processor may have charged; find out before trying again


# Decline codes after which trying the same method again is pointless or harmful
# (Stripe: "Decline codes"); anything else is soft and retried on a schedule.
HARD_DECLINE_CODES = frozenset({
    "authentication_required", "card_not_supported", "currency_not_supported", "do_not_honor", "do_not_try_again",
    "expired_card", "fraudulent", "incorrect_number", "invalid_account", "invalid_number", "lost_card",
    "merchant_blacklist", "new_account_information_available", "no_action_taken", "not_permitted",
    "pickup_card", "restricted_card", "revocation_of_all_authorizations", "revocation_of_authorization",
    "security_violation", "service_not_allowed", "stolen_card", "stop_payment_order", "transaction_not_allowed",
    # ACH return codes and their Stripe names
    "account_closed", "no_account", "account_frozen", "bank_account_restricted", "debit_not_authorized",
    "bank_account_blocked", "invalid_account_number", "payment_method_microdeposit_verification_failed",
})
SOFT_DECLINE_CODES = frozenset({
    "insufficient_funds", "processing_error", "try_again_later", "approve_with_id", "issuer_not_available",
    "reenter_transaction", "generic_decline", "call_issuer", "card_velocity_exceeded", "withdrawal_count_limit_exceeded",
})


def is_hard_decline(code: str, decline_code: str | None) -> bool:
    """Hard unless known to be soft by one of its codes, except that an unknown
    `decline_code` on a generic `card_declined` counts as soft (Stripe: retry later)."""
    for c in (decline_code, code):
        if c and c in HARD_DECLINE_CODES:
            return True
    for c in (decline_code, code):
        if c and c in SOFT_DECLINE_CODES:
            return False
    return code not in ("card_declined", "payment_intent_payment_attempt_failed", "")


_DECLINE_REASONS = {
    "insufficient_funds": "insufficient funds", "lost_card": "the card was reported lost",
    "stolen_card": "the card was reported stolen", "expired_card": "the card has expired",
    "incorrect_number": "the card number is wrong", "incorrect_cvc": "the security code is wrong",
    "authentication_required": "the bank wants the cardholder to confirm the payment, which cannot happen "
                               "while they are away",
    "do_not_honor": "the bank refused it without giving a reason", "generic_decline": "the bank refused it "
                                                                                    "without giving a reason",
    "card_declined": "the bank refused it", "processing_error": "a processing error at the bank",
    "try_again_later": "the bank asked to try again later", "fraudulent": "the bank suspects fraud",
    "pickup_card": "the bank wants the card taken back", "restricted_card": "the card is restricted",
    "card_velocity_exceeded": "the card's spending limit was reached",
    "account_closed": "the bank account is closed", "no_account": "the bank account does not exist",
    "debit_not_authorized": "the account holder told the bank the debit was not authorised",
    "invalid_account_number": "the bank account number is invalid",
}


def decline_reason_text(code: str) -> str:
    """A decline code in words an office manager can repeat to a client."""
    return _DECLINE_REASONS.get(code, code.replace("_", " "))


@dataclass(frozen=True)
class Decline:
    code: str                      # "card_declined", "expired_card", "authentication_required", ...
    decline_code: str | None       # the issuer's reason: "insufficient_funds", "lost_card", ...
    message: str                   # the processor's words
    hard: bool


@dataclass(frozen=True)
class ChargeRequest:
    customer_id: str
    method_id: str
    method_kind: MethodKind
    amount_cents: int
    currency: str                   # ISO 4217, any case
    idempotency_key: str
    description: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    statement_descriptor_suffix: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.amount_cents, int) or isinstance(self.amount_cents, bool) or self.amount_cents <= 0:
            raise ValueError("a charge is a positive whole number of cents")
        if not self.idempotency_key:
            raise ValueError("a charge needs the idempotency key stored before the call")


@dataclass(frozen=True)
class ChargeResult:
    status: ChargeStatus
    intent_id: str | None = None
    amount_cents: int = 0
    currency: str = ""
    method_id: str | None = None
    decline: Decline | None = None
    message: str = ""               # for UNKNOWN: why it is unknown
    created: dt.datetime | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


class RefundStatus(str, enum.Enum):
    SUCCEEDED = "succeeded"
    PENDING = "pending"   # ACH refunds take days
    FAILED = "failed"
    UNKNOWN = "unknown"   # network error, timeout, 5xx: find out with the same key


@dataclass(frozen=True)
class RefundResult:
    status: RefundStatus
    refund_id: str | None = None
    amount_cents: int = 0
    message: str = ""


@dataclass(frozen=True)
class AccountInfo:
    """What "Test connection" learns."""

    mode: ProcessorMode
    account_id: str | None = None
    display_name: str = ""
    restricted_key: bool = False
    country: str = ""
    default_currency: str = ""


# --- the interface ---------------------------------------------------------------------


@runtime_checkable
class Gateway(Protocol):
    """A payment processor as mspbill uses it.  Implementations are safe to call from
    several threads at once (the month-end batch charges concurrently)."""

    @property
    def mode(self) -> ProcessorMode: ...

    def account(self) -> AccountInfo:
        """Check the key and reach the processor ("Test connection")."""
        ...

    # customers
    def create_customer(self, *, name: str, email: str, metadata: Mapping[str, str],
                        idempotency_key: str) -> CustomerInfo: ...

    def get_customer(self, customer_id: str) -> CustomerInfo:
        """Raises NotFound when the customer does not exist; a deleted one comes back with `deleted`."""
        ...

    def find_customers(self, email: str) -> list[CustomerInfo]:
        """Customers whose e-mail is `email` (case-insensitive), newest first."""
        ...

    def update_customer(self, customer_id: str, *, name: str | None = None, email: str | None = None,
                        default_method_id: str | None = None) -> CustomerInfo: ...

    # payment methods
    def list_methods(self, customer_id: str) -> list[MethodFacts]:
        """The customer's cards and US bank accounts."""
        ...

    def get_method(self, method_id: str) -> MethodFacts: ...

    def detach_method(self, method_id: str) -> None:
        """The method can no longer be charged.  Detaching one already detached is not an error."""
        ...

    # hosted setup pages
    def create_setup_session(self, *, customer_id: str, currency: str, success_url: str | None,
                             metadata: Mapping[str, str], idempotency_key: str,
                             expires_at: dt.datetime | None = None) -> SetupSession: ...

    def get_setup_session(self, session_id: str) -> SetupSession: ...

    def expire_setup_session(self, session_id: str) -> SetupSession:
        """Close an open page so it can no longer be used; a finished one is returned as it is."""
        ...

    # charges
    def charge(self, request: ChargeRequest) -> ChargeResult:
        """Create and confirm an off-session payment.  See the module docstring for outcomes."""
        ...

    def get_charge(self, intent_id: str) -> ChargeResult:
        """The current state of a payment (to settle ACH, or resolve an unknown outcome)."""
        ...

    def find_charges(self, *, customer_id: str, created_since: dt.datetime,
                     metadata: Mapping[str, str]) -> list[ChargeResult]:
        """The customer's payments created since then whose metadata includes every given pair."""
        ...

    # refunds
    def refund(self, *, intent_id: str, amount_cents: int, idempotency_key: str,
               metadata: Mapping[str, str], reason: str | None = None) -> RefundResult:
        """Refund part or all of a succeeded payment; UNKNOWN when the outcome cannot be known."""
        ...

    def get_refund(self, refund_id: str) -> RefundResult: ...

    def find_refunds(self, *, intent_id: str, metadata: Mapping[str, str]) -> list[RefundResult]:
        """Refunds of the payment whose metadata includes every given pair (to resolve an unknown refund)."""
        ...


# --- keys -------------------------------------------------------------------------


class KeyProblem(ValueError):
    """A pasted key that cannot be a Stripe secret key; the message says why."""


# Stripe's API keys are at most 255 characters.
KEY_MAX = 255
_KEY_ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_QUOTES = "\"'`\u201c\u201d\u2018\u2019\u00ab\u00bb"


def clean_secret_key(text: str) -> str:
    """The key as pasted, without the spaces, line breaks and quotes that come with it.

    Raises KeyProblem for a publishable key, a key of another kind, or text that is not a key."""
    value = (text or "").strip()
    for prefix in ("Bearer ", "bearer ", "STRIPE_SECRET_KEY=", "STRIPE_API_KEY=", "api_key="):
        value = value.removeprefix(prefix)
    value = "".join(ch for ch in value if not ch.isspace() and ch not in _QUOTES and ch != "\u200b")
    if not value:
        raise KeyProblem("No key was given; nothing was saved.")
    if value.startswith("pk_"):
        raise KeyProblem("That is a publishable key (pk_…). mspbill needs the secret key, which starts with "
                         "sk_live_ or sk_test_ (or a restricted key, rk_…): Stripe Dashboard → Developers → API keys.")
    if value.startswith("whsec_"):
        raise KeyProblem("That is a webhook signing secret (whsec_…), not an API key. Paste the secret key, which "
                         "starts with sk_live_ or sk_test_.")
    if not value.startswith(("sk_live_", "sk_test_", "rk_live_", "rk_test_")):
        raise KeyProblem("That does not look like a Stripe secret key: it should start with sk_live_ or sk_test_ "
                         "(or rk_live_ / rk_test_ for a restricted key). Copy it again from Stripe Dashboard → "
                         "Developers → API keys.")
    if len(value) > KEY_MAX:
        raise KeyProblem(f"That is {len(value):,} characters long; a Stripe key has at most {KEY_MAX}. Copy just "
                         "the key, with Stripe's copy button.")
    if len(value) < 20 or any(ch not in _KEY_ALPHABET for ch in value):
        raise KeyProblem("That key is incomplete or has characters a Stripe key never has. Copy it again with "
                         "Stripe's copy button.")
    return value


def key_mode(key: str) -> ProcessorMode:
    """Test or live, told apart by the key's prefix."""
    return ProcessorMode.LIVE if key.startswith(("sk_live_", "rk_live_")) else ProcessorMode.TEST


def is_restricted_key(key: str) -> bool:
    return key.startswith("rk_")


def mask_key(key: str) -> str:
    """"sk_live_…4242": enough to recognise a key, never enough to use it."""
    prefix = key[:8] if key[:3] in ("sk_", "rk_") else key[:3]
    return f"{prefix}…{key[-4:]}" if len(key) > 12 else "…"
