"""The sandbox processor: a simulated Stripe for the demo office, the tests and the benchmarks.

It implements `gateway.Gateway` with Stripe's semantics and never moves money nor
touches the network.  What it keeps, it keeps in its own SQLite file (the
"ledger"), apart from the app's database, for three reasons:

* it must survive a crash of the app, exactly as Stripe remembers a charge the app
  never heard about (the crash tests SIGKILL `mspbill batch run` and run it again);
* several threads and several processes use it at once (the batch charges
  concurrently; a test charges from a second process), so every operation is one
  short transaction -- `BEGIN IMMEDIATE` for writes, which serialises writers
  across processes and makes "check the idempotency key, then charge" atomic;
* a test or a separate process can look at what "Stripe" did (`ledger_charges`).

Faults are simulated where Stripe's happen, with the latency split in two halves
around the work (the request travels, the answer travels back), so a process
killed during the second half leaves a charge it never heard about:

* `rate_limit`: 429 before anything is done (random, injected, or a real sliding
  window of `rate_limit_per_second` shared by the threads of the process);
* `server_error`: a 5xx before anything is done; the caller cannot know that;
* `timeout_before`: the request never arrived; the caller cannot know that either;
* `timeout_after`: the work was done and recorded (idempotency key included), the
  answer was lost.

The caller sees the last three the same way: a charge or refund comes back
UNKNOWN, any other write raises `ProcessorUnavailable(nothing_happened=False)`, a
read raises `ProcessorUnavailable`.

Sandbox-only helpers stand in for what a person does elsewhere: the client on the
hosted page (`complete_setup_session`), a developer pasting a test token
(`attach_test_method`), someone in the Stripe Dashboard (`delete_customer`), time
passing for ACH (`settle_due`), and a test forcing a fault (`inject_failure`).
They are not API calls: no latency, no faults.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import math
import os
import random
import secrets
import sqlite3
import string
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, TypeVar

from mspbill.payments.gateway import (
    AccountInfo,
    ChargeRequest,
    ChargeResult,
    ChargeStatus,
    CustomerInfo,
    Decline,
    IdempotencyConflict,
    InvalidRequest,
    MethodFacts,
    MethodKind,
    NotFound,
    ProcessorError,
    ProcessorMode,
    ProcessorUnavailable,
    RateLimited,
    RefundResult,
    RefundStatus,
    SetupSession,
    SetupStatus,
    is_hard_decline,
)

__all__ = [
    "ENV_ACH_SETTLE_SECONDS", "ENV_FAILURES", "ENV_LATENCY_MS", "ENV_RATE_LIMIT", "ENV_SEED", "FAILURE_KINDS",
    "OPERATIONS", "SETUP_URL_PREFIX", "TEST_TOKENS", "SandboxConfig", "SandboxGateway",
]

_T = TypeVar("_T")

# --- configuration ------------------------------------------------------------------

ENV_LATENCY_MS = "MSPBILL_SANDBOX_LATENCY_MS"
ENV_RATE_LIMIT = "MSPBILL_SANDBOX_RATE_LIMIT"
ENV_FAILURES = "MSPBILL_SANDBOX_FAILURES"
ENV_SEED = "MSPBILL_SANDBOX_SEED"
ENV_ACH_SETTLE_SECONDS = "MSPBILL_SANDBOX_ACH_SETTLE_SECONDS"

# The ways a call can fail, in the order a random draw tries them.
FAILURE_KINDS = ("rate_limit", "server_error", "timeout_before", "timeout_after")


@dataclass(frozen=True)
class SandboxConfig:
    """How the simulated processor behaves.  The default is a perfect, instant processor
    whose ACH debits settle after 4 days and whose idempotency keys last 24 hours."""

    latency_seconds: float = 0.0
    rate_limit_per_second: float | None = None   # None: no limit
    rate_limit_rate: float = 0.0                  # probabilities per API call, drawn with `seed`
    server_error_rate: float = 0.0
    timeout_before_rate: float = 0.0
    timeout_after_rate: float = 0.0
    seed: int | None = None
    ach_settle_after: dt.timedelta = dt.timedelta(days=4)
    idempotency_ttl: dt.timedelta = dt.timedelta(hours=24)

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not _is_number(self.latency_seconds) or self.latency_seconds < 0:
            problems.append(f"latency must be zero or more seconds, not {self.latency_seconds!r}")
        if self.rate_limit_per_second is not None and (
                not _is_number(self.rate_limit_per_second) or self.rate_limit_per_second <= 0):
            problems.append(f"the rate limit must be a positive number of requests a second (or None), "
                            f"not {self.rate_limit_per_second!r}")
        rates = self.failure_rates()
        for kind, rate in rates.items():
            if not _is_number(rate) or not 0 <= rate <= 1:
                problems.append(f"the {kind} rate must be a probability from 0 to 1, not {rate!r}")
        if not problems and sum(rates.values()) > 1:
            problems.append(f"the failure rates add up to {sum(rates.values()):g}, more than 1")
        if self.ach_settle_after < dt.timedelta(0):
            problems.append("ACH settling time cannot be negative")
        if self.idempotency_ttl <= dt.timedelta(0):
            problems.append("idempotency keys must be kept for a positive time")
        if problems:
            raise ValueError("Invalid sandbox settings: " + "; ".join(problems) + ".")

    def failure_rates(self) -> dict[str, float]:
        return {"rate_limit": self.rate_limit_rate, "server_error": self.server_error_rate,
                "timeout_before": self.timeout_before_rate, "timeout_after": self.timeout_after_rate}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SandboxConfig:
        """The configuration from MSPBILL_SANDBOX_* variables (unset ones keep their defaults).

        LATENCY_MS=250, RATE_LIMIT=25 (requests a second, or "off"),
        FAILURES="timeout_after=0.1,rate_limit=0.05,server_error=0.02,timeout_before=0.05",
        SEED=42, ACH_SETTLE_SECONDS=5.  Raises ValueError naming every bad value."""
        env = os.environ if environ is None else environ
        problems: list[str] = []

        def number(name: str) -> float | None:
            text = env.get(name, "").strip()
            if not text:
                return None
            try:
                value = float(text)
            except ValueError:
                problems.append(f"{name}={text!r} is not a number")
                return None
            if not math.isfinite(value) or value < 0:
                problems.append(f"{name}={text!r} must be zero or a positive number")
                return None
            return value

        latency_ms = number(ENV_LATENCY_MS)
        settle_seconds = number(ENV_ACH_SETTLE_SECONDS)

        rate_limit: float | None = None
        rate_text = env.get(ENV_RATE_LIMIT, "").strip()
        if rate_text and rate_text.lower() not in ("off", "none"):
            try:
                rate_limit = float(rate_text)
            except ValueError:
                rate_limit = math.nan
            if not math.isfinite(rate_limit) or rate_limit <= 0:
                problems.append(f"{ENV_RATE_LIMIT}={rate_text!r} must be a positive number of requests a second, "
                                "or 'off'")
                rate_limit = None

        seed: int | None = None
        seed_text = env.get(ENV_SEED, "").strip()
        if seed_text:
            try:
                seed = int(seed_text)
            except ValueError:
                problems.append(f"{ENV_SEED}={seed_text!r} must be a whole number")

        rates = _parse_failures(env.get(ENV_FAILURES, ""), problems)
        if not problems and sum(rates.values()) > 1:
            problems.append(f"{ENV_FAILURES}: the rates add up to {sum(rates.values()):g}, more than 1")
        if problems:
            raise ValueError("Invalid sandbox settings: " + "; ".join(problems) + ".")
        defaults = cls()
        return cls(
            latency_seconds=latency_ms / 1000 if latency_ms is not None else defaults.latency_seconds,
            rate_limit_per_second=rate_limit,
            rate_limit_rate=rates.get("rate_limit", 0.0),
            server_error_rate=rates.get("server_error", 0.0),
            timeout_before_rate=rates.get("timeout_before", 0.0),
            timeout_after_rate=rates.get("timeout_after", 0.0),
            seed=seed,
            ach_settle_after=(dt.timedelta(seconds=settle_seconds) if settle_seconds is not None
                              else defaults.ach_settle_after),
        )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _parse_failures(text: str, problems: list[str]) -> dict[str, float]:
    """"timeout_after=0.1, rate_limit=0.05" -> {"timeout_after": 0.1, "rate_limit": 0.05}."""
    rates: dict[str, float] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, value_text = (s.strip() for s in part.partition("="))
        if not sep:
            problems.append(f"{ENV_FAILURES}: {part!r} should be NAME=PROBABILITY, for example timeout_after=0.1")
            continue
        if name not in FAILURE_KINDS:
            problems.append(f"{ENV_FAILURES}: unknown failure {name!r}; the known ones are {', '.join(FAILURE_KINDS)}")
            continue
        if name in rates:
            problems.append(f"{ENV_FAILURES}: {name} is given twice")
            continue
        try:
            rate = float(value_text)
        except ValueError:
            rate = math.nan
        if not math.isfinite(rate) or not 0 <= rate <= 1:
            problems.append(f"{ENV_FAILURES}: {name}={value_text!r} must be a probability from 0 to 1")
            continue
        rates[name] = rate
    return rates


# --- test payment methods --------------------------------------------------------------


@dataclass(frozen=True)
class _Failure:
    """How Stripe reports the failure: error code, the issuer's decline code, its words."""

    code: str
    decline_code: str | None
    message: str

    def decline(self) -> Decline:
        return Decline(code=self.code, decline_code=self.decline_code, message=self.message,
                       hard=is_hard_decline(self.code, self.decline_code))


@dataclass(frozen=True)
class _TestMethod:
    kind: MethodKind
    last4: str
    brand: str = ""
    bank_name: str = ""
    failure: _Failure | None = None   # cards: at charge time; bank accounts: when the debit settles
    requires_action: bool = False     # the bank wants the client present: off-session it cannot succeed
    expiring: bool = False            # expires at the end of the current month

    @property
    def is_bank_account(self) -> bool:
        return self.kind is MethodKind.US_BANK_ACCOUNT


_CARD_DECLINED = "Your card was declined."
_TEST_BANK = "STRIPE TEST BANK"

# Stripe's test PaymentMethod tokens, with the last4 of the card or account number behind
# them and Stripe's error codes and messages ("Testing", "Declined payments", "ACH Direct Debit").
_TEST_METHODS: dict[str, _TestMethod] = {
    "pm_card_visa": _TestMethod(MethodKind.CARD, "4242", brand="visa"),
    "pm_card_mastercard": _TestMethod(MethodKind.CARD, "4444", brand="mastercard"),
    "pm_card_amex": _TestMethod(MethodKind.CARD, "8431", brand="amex"),
    "pm_card_visa_debit": _TestMethod(MethodKind.CARD, "5556", brand="visa"),
    "pm_card_visa_expiring": _TestMethod(MethodKind.CARD, "4242", brand="visa", expiring=True),
    "pm_card_chargeCustomerFail": _TestMethod(
        MethodKind.CARD, "0341", brand="visa", failure=_Failure("card_declined", "generic_decline", _CARD_DECLINED)),
    "pm_card_visa_chargeDeclinedInsufficientFunds": _TestMethod(
        MethodKind.CARD, "9995", brand="visa",
        failure=_Failure("card_declined", "insufficient_funds", "Your card has insufficient funds.")),
    "pm_card_chargeDeclinedProcessingError": _TestMethod(
        MethodKind.CARD, "0119", brand="visa",
        failure=_Failure("processing_error", None,
                         "An error occurred while processing your card. Try again in a little bit.")),
    "pm_card_visa_chargeDeclinedLostCard": _TestMethod(
        MethodKind.CARD, "9987", brand="visa", failure=_Failure("card_declined", "lost_card", _CARD_DECLINED)),
    "pm_card_visa_chargeDeclinedStolenCard": _TestMethod(
        MethodKind.CARD, "9979", brand="visa", failure=_Failure("card_declined", "stolen_card", _CARD_DECLINED)),
    "pm_card_chargeDeclinedExpiredCard": _TestMethod(
        MethodKind.CARD, "0069", brand="visa", failure=_Failure("expired_card", None, "Your card has expired.")),
    "pm_card_authenticationRequired": _TestMethod(
        MethodKind.CARD, "3184", brand="visa", requires_action=True,
        failure=_Failure("authentication_required", "authentication_required",
                         "Your card was declined. This transaction requires authentication.")),
    "pm_usBankAccount_success": _TestMethod(MethodKind.US_BANK_ACCOUNT, "6789", bank_name=_TEST_BANK),
    "pm_usBankAccount_insufficientFunds": _TestMethod(
        MethodKind.US_BANK_ACCOUNT, "2227", bank_name=_TEST_BANK,
        failure=_Failure("insufficient_funds", None,
                         "The customer's account has insufficient funds to cover this payment.")),
    "pm_usBankAccount_accountClosed": _TestMethod(
        MethodKind.US_BANK_ACCOUNT, "1113", bank_name=_TEST_BANK,
        failure=_Failure("account_closed", None, "The customer's bank account has been closed.")),
}
TEST_TOKENS: tuple[str, ...] = tuple(_TEST_METHODS)

# --- API surface ---------------------------------------------------------------------------

# Every Gateway call, by name: what `inject_failure` accepts ("*" means any of them).
OPERATIONS = frozenset({
    "account", "create_customer", "get_customer", "find_customers", "update_customer", "list_methods",
    "get_method", "detach_method", "create_setup_session", "get_setup_session", "expire_setup_session",
    "charge", "get_charge", "find_charges", "refund", "get_refund", "find_refunds",
})
# The calls that change something: a lost answer to one of them leaves the outcome unknown.
_WRITES = frozenset({"create_customer", "update_customer", "detach_method", "create_setup_session",
                     "expire_setup_session", "charge", "refund"})

SETUP_URL_PREFIX = "https://sandbox.mspbill.invalid/setup/"
_SETUP_MAX_LIFETIME = dt.timedelta(hours=24)   # Stripe: a Checkout Session lives 30 minutes to 24 hours
_SETUP_MIN_LIFETIME = dt.timedelta(minutes=30)
_REFUND_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer"})
# Stripe's minimum charge amounts in the currencies an MSP is likely to bill in (others: no minimum here).
_MINIMUM_CHARGE_CENTS = {"usd": 50, "cad": 50, "aud": 50, "nzd": 50, "eur": 50, "chf": 50, "sgd": 50, "gbp": 30}
_MAXIMUM_CHARGE_CENTS = 99_999_999
_METADATA_MAX_KEYS, _METADATA_KEY_MAX, _METADATA_VALUE_MAX = 50, 40, 500
_IDEMPOTENCY_KEY_MAX = 255
_BUSY_TIMEOUT_SECONDS = 30.0
_SCHEMA_VERSION = 1

_ID_ALPHABET = string.ascii_letters + string.digits


def _new_id(prefix: str) -> str:
    """A Stripe-looking id ("pi_sbx_3xK..."): random, so processes never collide."""
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


# --- time -------------------------------------------------------------------------------

_TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _ts(moment: dt.datetime) -> str:
    """Fixed-width UTC text, so the ledger compares times as strings and a person can read them."""
    return moment.astimezone(dt.UTC).strftime(_TS_FORMAT)


def _parse_ts(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, _TS_FORMAT).replace(tzinfo=dt.UTC)


def _aware(moment: dt.datetime, what: str) -> dt.datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (UTC), not a naive datetime")
    return moment.astimezone(dt.UTC)


def _whole_seconds(moment: dt.datetime) -> dt.datetime:
    """Stripe's `created` and `expires_at` are whole Unix seconds."""
    return moment.replace(microsecond=0)


# --- the rate limiter -----------------------------------------------------------------------


class _SlidingWindow:
    """The requests admitted in the last second, shared by every thread of the process
    (one per ledger file, like one Stripe account)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._admitted: deque[float] = deque()

    def admit(self, per_second: float, now: float) -> float | None:
        """None when the request may go ahead; otherwise the seconds until one may."""
        with self._lock:
            while self._admitted and self._admitted[0] <= now - 1.0:
                self._admitted.popleft()
            if len(self._admitted) >= per_second:
                return max(self._admitted[0] + 1.0 - now, 0.001)
            self._admitted.append(now)
            return None


_WINDOWS: dict[str, _SlidingWindow] = {}
_WINDOWS_LOCK = threading.Lock()


def _window_for(path: Path) -> _SlidingWindow:
    with _WINDOWS_LOCK:
        return _WINDOWS.setdefault(str(path.resolve()), _SlidingWindow())


def _sleep(seconds: float) -> None:
    if seconds > 0:
        time.sleep(seconds)


# --- the ledger schema ------------------------------------------------------------------------

# Times are _TS_FORMAT text; metadata is sorted JSON.  `seq` orders rows made in the same second.
# `settle_at` is set only while an ACH debit or refund is pending: due rows are `settle_at <= now`.
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS customers (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
        email TEXT NOT NULL, email_lower TEXT NOT NULL, default_method_id TEXT,
        deleted INTEGER NOT NULL DEFAULT 0, metadata TEXT NOT NULL, created TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS customers_email ON customers (email_lower)",
    """CREATE TABLE IF NOT EXISTS methods (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, token TEXT NOT NULL,
        customer_id TEXT, kind TEXT NOT NULL, brand TEXT NOT NULL, last4 TEXT NOT NULL,
        exp_month INTEGER, exp_year INTEGER, bank_name TEXT NOT NULL, created TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS methods_customer ON methods (customer_id)",
    """CREATE TABLE IF NOT EXISTS setup_sessions (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, customer_id TEXT NOT NULL,
        currency TEXT NOT NULL, success_url TEXT, metadata TEXT NOT NULL, status TEXT NOT NULL,
        expires_at TEXT NOT NULL, method_id TEXT, created TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS intents (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, customer_id TEXT NOT NULL,
        method_id TEXT NOT NULL, method_token TEXT NOT NULL, amount_cents INTEGER NOT NULL,
        currency TEXT NOT NULL, description TEXT NOT NULL, statement_descriptor_suffix TEXT NOT NULL,
        metadata TEXT NOT NULL, status TEXT NOT NULL, decline_code TEXT, decline_decline_code TEXT,
        decline_message TEXT, decline_hard INTEGER, created TEXT NOT NULL, settle_at TEXT)""",
    "CREATE INDEX IF NOT EXISTS intents_customer ON intents (customer_id, created)",
    "CREATE INDEX IF NOT EXISTS intents_settle ON intents (settle_at) WHERE settle_at IS NOT NULL",
    """CREATE TABLE IF NOT EXISTS refunds (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, intent_id TEXT NOT NULL,
        amount_cents INTEGER NOT NULL, currency TEXT NOT NULL, status TEXT NOT NULL, reason TEXT,
        metadata TEXT NOT NULL, created TEXT NOT NULL, settle_at TEXT)""",
    "CREATE INDEX IF NOT EXISTS refunds_intent ON refunds (intent_id)",
    "CREATE INDEX IF NOT EXISTS refunds_settle ON refunds (settle_at) WHERE settle_at IS NOT NULL",
    # One row per key, whatever the call: Stripe refuses a key reused on another endpoint too.
    """CREATE TABLE IF NOT EXISTS idempotency_keys (
        key TEXT PRIMARY KEY, operation TEXT NOT NULL, fingerprint TEXT NOT NULL, response TEXT NOT NULL,
        created TEXT NOT NULL, expires_at TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS idempotency_keys_expiry ON idempotency_keys (expires_at)",
    # Faults forced by a test, in the file so that another process meets them too.
    """CREATE TABLE IF NOT EXISTS injected_failures (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, operation TEXT NOT NULL, kind TEXT NOT NULL,
        remaining INTEGER NOT NULL)""",
)


class _Connection:
    """One thread's connection.  sqlite3 connections cannot be weakly referenced; this
    holder can, so `close()` reaches every live one and a finished thread's closes with it."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection
        self.pid = os.getpid()
        self.closed = False

    def close(self) -> None:
        self.closed = True
        self.connection.close()


# --- parameters ----------------------------------------------------------------------------------


def _fingerprint(params: Mapping[str, Any]) -> str:
    """What Stripe compares when a key comes back: the request's parameters."""
    text = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _require_key(idempotency_key: str) -> str:
    if not idempotency_key:
        raise ValueError("a request that changes something needs the idempotency key stored before the call")
    return idempotency_key


def _check_key_length(idempotency_key: str) -> None:
    if len(idempotency_key) > _IDEMPOTENCY_KEY_MAX:
        raise InvalidRequest(f"The idempotency key is {len(idempotency_key)} characters long; Stripe accepts at "
                             f"most {_IDEMPOTENCY_KEY_MAX}. Nothing was done.")


def _valid_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """Stripe's limits: 50 keys, keys up to 40 characters without brackets, values up to 500."""
    clean = dict(metadata)
    if len(clean) > _METADATA_MAX_KEYS:
        raise InvalidRequest(f"Metadata has {len(clean)} keys; at most {_METADATA_MAX_KEYS} are allowed.")
    for key, value in clean.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidRequest(f"Metadata keys and values must be text ({key!r}: {value!r}).")
        if not key or len(key) > _METADATA_KEY_MAX or "[" in key or "]" in key:
            raise InvalidRequest(f"Metadata key {key!r} must be 1 to {_METADATA_KEY_MAX} characters without "
                                 "square brackets.")
        if len(value) > _METADATA_VALUE_MAX:
            raise InvalidRequest(f"Metadata value for {key!r} is longer than {_METADATA_VALUE_MAX} characters.")
    return clean


def _valid_currency(currency: str) -> str:
    code = (currency or "").strip().lower()
    if len(code) != 3 or not code.isascii() or not code.isalpha():
        raise InvalidRequest(f"Invalid currency: {currency!r}. Use a three-letter ISO code such as usd.")
    return code


def _includes(metadata: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    return all(metadata.get(key) == value for key, value in wanted.items())


def _metadata_json(metadata: Mapping[str, str]) -> str:
    return json.dumps(dict(metadata), sort_keys=True)


def _load_metadata(text: str) -> dict[str, str]:
    loaded: dict[str, str] = json.loads(text)
    return loaded


# --- responses as remembered for an idempotency key -----------------------------------------------


def _customer_json(info: CustomerInfo) -> str:
    return json.dumps({"customer_id": info.customer_id, "email": info.email, "name": info.name,
                       "default_method_id": info.default_method_id, "deleted": info.deleted,
                       "created": _ts(info.created) if info.created else None, "metadata": dict(info.metadata)})


def _customer_from_json(text: str) -> CustomerInfo:
    data: dict[str, Any] = json.loads(text)
    return CustomerInfo(customer_id=data["customer_id"], email=data["email"], name=data["name"],
                        default_method_id=data["default_method_id"], deleted=data["deleted"],
                        created=_parse_ts(data["created"]) if data["created"] else None, metadata=data["metadata"])


def _session_json(session: SetupSession) -> str:
    return json.dumps({"session_id": session.session_id, "url": session.url, "status": session.status.value,
                       "customer_id": session.customer_id, "expires_at": _ts(session.expires_at),
                       "method_id": session.method_id})


def _session_from_json(text: str) -> SetupSession:
    data: dict[str, Any] = json.loads(text)
    return SetupSession(session_id=data["session_id"], url=data["url"], status=SetupStatus(data["status"]),
                        customer_id=data["customer_id"], expires_at=_parse_ts(data["expires_at"]),
                        method_id=data["method_id"])


def _charge_json(result: ChargeResult) -> str:
    decline = result.decline
    return json.dumps({
        "status": result.status.value, "intent_id": result.intent_id, "amount_cents": result.amount_cents,
        "currency": result.currency, "method_id": result.method_id, "message": result.message,
        "decline": None if decline is None else [decline.code, decline.decline_code, decline.message, decline.hard],
        "created": _ts(result.created) if result.created else None, "metadata": dict(result.metadata)})


def _charge_from_json(text: str) -> ChargeResult:
    data: dict[str, Any] = json.loads(text)
    decline = data["decline"]
    return ChargeResult(
        status=ChargeStatus(data["status"]), intent_id=data["intent_id"], amount_cents=data["amount_cents"],
        currency=data["currency"], method_id=data["method_id"], message=data["message"],
        decline=None if decline is None else Decline(decline[0], decline[1], decline[2], decline[3]),
        created=_parse_ts(data["created"]) if data["created"] else None, metadata=data["metadata"])


def _refund_json(result: RefundResult) -> str:
    return json.dumps({"status": result.status.value, "refund_id": result.refund_id,
                       "amount_cents": result.amount_cents, "message": result.message})


def _refund_from_json(text: str) -> RefundResult:
    data: dict[str, Any] = json.loads(text)
    return RefundResult(status=RefundStatus(data["status"]), refund_id=data["refund_id"],
                        amount_cents=data["amount_cents"], message=data["message"])


# --- rows -----------------------------------------------------------------------------------------------


def _customer_from_row(row: sqlite3.Row) -> CustomerInfo:
    if row["deleted"]:
        # Stripe answers a deleted customer with its id and `deleted: true`, nothing else.
        return CustomerInfo(customer_id=row["id"], deleted=True)
    return CustomerInfo(customer_id=row["id"], email=row["email"], name=row["name"],
                        default_method_id=row["default_method_id"], created=_parse_ts(row["created"]),
                        metadata=_load_metadata(row["metadata"]))


def _method_from_row(row: sqlite3.Row) -> MethodFacts:
    return MethodFacts(method_id=row["id"], kind=MethodKind(row["kind"]), last4=row["last4"], brand=row["brand"],
                       exp_month=row["exp_month"], exp_year=row["exp_year"], bank_name=row["bank_name"],
                       customer_id=row["customer_id"])


def _intent_from_row(row: sqlite3.Row) -> ChargeResult:
    decline = None
    if row["decline_code"] is not None:
        decline = Decline(code=row["decline_code"], decline_code=row["decline_decline_code"],
                          message=row["decline_message"], hard=bool(row["decline_hard"]))
    return ChargeResult(status=ChargeStatus(row["status"]), intent_id=row["id"], amount_cents=row["amount_cents"],
                        currency=row["currency"], method_id=row["method_id"], decline=decline,
                        created=_parse_ts(row["created"]), metadata=_load_metadata(row["metadata"]))


def _refund_from_row(row: sqlite3.Row) -> RefundResult:
    return RefundResult(status=RefundStatus(row["status"]), refund_id=row["id"], amount_cents=row["amount_cents"])


# --- the gateway -----------------------------------------------------------------------------------------


class SandboxGateway:
    """The simulated processor (see the module docstring).  Safe to share between threads;
    several instances and processes may use one ledger file at once."""

    def __init__(self, ledger_path: Path, config: SandboxConfig | None = None, *,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self._path = Path(ledger_path)
        self._config = config if config is not None else SandboxConfig()
        self._clock = clock if clock is not None else _utcnow
        self._random = random.Random(self._config.seed)
        self._random_lock = threading.Lock()
        self._local = threading.local()
        self._connections: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._connections_lock = threading.Lock()
        self._window = _window_for(self._path)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._create_schema()

    def __repr__(self) -> str:
        return f"SandboxGateway({str(self._path)!r})"

    @property
    def ledger_path(self) -> Path:
        return self._path

    @property
    def config(self) -> SandboxConfig:
        return self._config

    @property
    def mode(self) -> ProcessorMode:
        return ProcessorMode.SANDBOX

    def close(self) -> None:
        """Close every thread's connection (call when no call is running).  A later call reopens."""
        with self._connections_lock:
            for holder in list(self._connections):
                if not holder.closed:
                    holder.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- the ledger file ---------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        holder: _Connection | None = getattr(self._local, "holder", None)
        # A connection must not cross a fork: the child opens its own.
        if holder is None or holder.closed or holder.pid != os.getpid():
            connection = sqlite3.connect(str(self._path), timeout=_BUSY_TIMEOUT_SECONDS, isolation_level=None,
                                         check_same_thread=False)
            connection.row_factory = sqlite3.Row
            # WAL survives a killed process without `FULL`; only a power cut could lose the last commit.
            connection.execute("PRAGMA synchronous=NORMAL")
            holder = _Connection(connection)
            self._local.holder = holder
            with self._connections_lock:
                self._connections.add(holder)
        return holder.connection

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction.  IMMEDIATE takes the write lock up front, so two
        processes sending one idempotency key cannot both find it missing."""
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    def _create_schema(self) -> None:
        connection = self._connection()
        mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise RuntimeError(f"The sandbox ledger {self._path} cannot use WAL mode (it is in {mode} mode).")
        with self._write() as conn:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > _SCHEMA_VERSION:
                raise RuntimeError(f"The sandbox ledger {self._path} was written by a newer mspbill "
                                   f"(version {version}); use a new ledger file.")
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")

    def _now(self) -> dt.datetime:
        return _aware(self._clock(), "The sandbox clock")

    # --- simulated faults -----------------------------------------------------------------

    def inject_failure(self, operation: str, kind: str, *, count: int = 1) -> None:
        """Make the next `count` calls of `operation` (a Gateway method name, or "*" for any)
        fail as `kind` (one of FAILURE_KINDS), in every process that uses this ledger."""
        if operation != "*" and operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}; use one of {', '.join(sorted(OPERATIONS))} or '*'")
        if kind not in FAILURE_KINDS:
            raise ValueError(f"unknown failure {kind!r}; use one of {', '.join(FAILURE_KINDS)}")
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError("count must be a positive whole number")
        with self._write() as conn:
            conn.execute("INSERT INTO injected_failures (operation, kind, remaining) VALUES (?, ?, ?)",
                         (operation, kind, count))

    def clear_injected_failures(self) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM injected_failures")

    def _take_injected(self, operation: str) -> str | None:
        query = ("SELECT seq, kind FROM injected_failures WHERE remaining > 0 AND operation IN (?, '*') "
                 "ORDER BY seq LIMIT 1")
        # A plain read first: the table is nearly always empty, and a read takes no lock.
        if self._connection().execute(query, (operation,)).fetchone() is None:
            return None
        with self._write() as conn:
            row = conn.execute(query, (operation,)).fetchone()
            if row is None:   # another thread or process took it meanwhile
                return None
            conn.execute("UPDATE injected_failures SET remaining = remaining - 1 WHERE seq = ?", (row["seq"],))
            conn.execute("DELETE FROM injected_failures WHERE remaining <= 0")
            return str(row["kind"])

    def _draw(self) -> str | None:
        rates = self._config.failure_rates()
        if not any(rates.values()):
            return None
        with self._random_lock:
            roll = self._random.random()
        for kind in FAILURE_KINDS:
            if roll < rates[kind]:
                return kind
            roll -= rates[kind]
        return None

    def _fault(self, operation: str, request_id: str) -> str | None:
        """The fault this call meets, if any; raises RateLimited for a 429."""
        fault = self._take_injected(operation)
        if fault is None:
            limit = self._config.rate_limit_per_second
            if limit is not None:
                wait = self._window.admit(limit, time.monotonic())
                if wait is not None:
                    raise RateLimited(f"Too many requests to the sandbox processor (over {limit:g} a second); "
                                      f"nothing was done. Try again in {wait:.2f} seconds.",
                                      retry_after=wait, request_id=request_id)
            fault = self._draw()
        if fault == "rate_limit":
            raise RateLimited("Too many requests to the sandbox processor (429); nothing was done. "
                              "Try again in a second.", retry_after=1.0, request_id=request_id)
        return fault

    def _api(self, operation: str, work: Callable[[], _T], *,
             unknown: Callable[[str], _T] | None = None) -> _T:
        """Run one API call as Stripe would answer it: latency, 429s, 5xx and timeouts.

        `unknown` builds the answer for an outcome the caller cannot know (charge, refund);
        without it such an outcome raises ProcessorUnavailable."""
        half_latency = self._config.latency_seconds / 2
        request_id = _new_id("req_sbx_")
        try:
            _sleep(half_latency)   # the request travelling: no lock is held
            try:
                fault = self._fault(operation, request_id)
            except sqlite3.OperationalError as exc:   # the ledger's own trouble: a 5xx, as below
                return self._lost(operation, "server_error", unknown, request_id, detail=str(exc))
            if fault in ("server_error", "timeout_before"):
                return self._lost(operation, fault, unknown, request_id)
            try:
                result = work()
            except ProcessorError:
                if fault == "timeout_after":   # refused, but the caller never hears it
                    return self._lost(operation, fault, unknown, request_id)
                raise
            except sqlite3.OperationalError as exc:
                # The simulated processor's own trouble (a lock held past the busy timeout, a full
                # disk): to the caller that is a 5xx.  The transaction was rolled back.
                return self._lost(operation, "server_error", unknown, request_id, detail=str(exc))
            if fault == "timeout_after":
                return self._lost(operation, fault, unknown, request_id)
            return result
        finally:
            _sleep(half_latency)   # the answer travelling back

    def _lost(self, operation: str, fault: str, unknown: Callable[[str], _T] | None, request_id: str,
              detail: str = "") -> _T:
        # Both timeouts read alike: the caller cannot tell whether the request ever arrived.
        if fault == "server_error":
            message = "The sandbox processor had an internal error (HTTP 500)"
        else:
            message = "The sandbox processor did not answer in time (the request timed out)"
        message += f" [{detail}]." if detail else "."
        changes = operation in _WRITES
        if changes:
            message += (" Whether it took effect is not known: look it up, or send the same request with the same "
                        "idempotency key, before trying anything else.")
        if unknown is not None:
            return unknown(message)
        raise ProcessorUnavailable(message, request_id=request_id, nothing_happened=not changes)

    # --- idempotency ------------------------------------------------------------------------

    def _replay(self, conn: sqlite3.Connection, operation: str, key: str, fingerprint: str,
                now: dt.datetime) -> str | None:
        """The first response for this key, or None when the key is new (or forgotten)."""
        row = conn.execute("SELECT operation, fingerprint, response, created, expires_at FROM idempotency_keys "
                           "WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        if row["expires_at"] <= _ts(now):
            conn.execute("DELETE FROM idempotency_keys WHERE key = ?", (key,))
            return None
        used = _parse_ts(row["created"]).strftime("%Y-%m-%d %H:%M:%S UTC")
        if row["operation"] != operation:
            raise IdempotencyConflict(f"The idempotency key {key!r} was already used for another kind of request "
                                      f"({row['operation']}) at {used}; nothing was done.")
        if row["fingerprint"] != fingerprint:
            raise IdempotencyConflict(f"The idempotency key {key!r} was already used with other parameters at "
                                      f"{used}; nothing was done.")
        return str(row["response"])

    def _remember(self, conn: sqlite3.Connection, operation: str, key: str, fingerprint: str, response: str,
                  now: dt.datetime) -> None:
        conn.execute("DELETE FROM idempotency_keys WHERE expires_at <= ?", (_ts(now),))
        conn.execute("INSERT INTO idempotency_keys (key, operation, fingerprint, response, created, expires_at) "
                     "VALUES (?, ?, ?, ?, ?, ?)",
                     (key, operation, fingerprint, response, _ts(now), _ts(now + self._config.idempotency_ttl)))

    # --- lookups inside a transaction ---------------------------------------------------------

    @staticmethod
    def _customer_row(conn: sqlite3.Connection, customer_id: str, *, live: bool) -> sqlite3.Row:
        row: sqlite3.Row | None = conn.execute("SELECT * FROM customers WHERE id = ?", (customer_id,)).fetchone()
        if row is None:
            raise NotFound(f"No such customer: {customer_id!r} (in the sandbox processor). The sandbox keeps its "
                           "customers in this computer's data folder: in an office shared on a server, run sandbox "
                           "charges from the computer that set them up, or use Stripe's test mode.")
        if live and row["deleted"]:
            raise NotFound(f"The customer {customer_id} was deleted at the processor (as in the Stripe Dashboard), "
                           "so it cannot be used any more. Link or create the client's customer again.")
        return row

    @staticmethod
    def _method_row(conn: sqlite3.Connection, method_id: str) -> sqlite3.Row:
        row: sqlite3.Row | None = conn.execute("SELECT * FROM methods WHERE id = ?", (method_id,)).fetchone()
        if row is None:
            raise NotFound(f"No such payment method: {method_id!r} (in the sandbox processor).")
        return row

    @staticmethod
    def _session_from_row(row: sqlite3.Row, now: dt.datetime) -> SetupSession:
        status = SetupStatus(row["status"])
        expires_at = _parse_ts(row["expires_at"])
        if status is SetupStatus.OPEN and expires_at <= now:
            status = SetupStatus.EXPIRED   # nobody finished it in time
        return SetupSession(session_id=row["id"], url=SETUP_URL_PREFIX + row["id"] if status is SetupStatus.OPEN
                            else None,   # Stripe drops the URL once the page cannot be used
                            status=status, customer_id=row["customer_id"], expires_at=expires_at,
                            method_id=row["method_id"])

    def _attach(self, conn: sqlite3.Connection, customer_id: str, token: str, make_default: bool,
                now: dt.datetime) -> MethodFacts:
        behaviour = _TEST_METHODS.get(token)
        if behaviour is None:
            raise InvalidRequest(f"Unknown test payment method {token!r}. The sandbox knows: "
                                 f"{', '.join(TEST_TOKENS)}.")
        self._customer_row(conn, customer_id, live=True)
        exp_month: int | None = None
        exp_year: int | None = None
        if behaviour.kind is MethodKind.CARD:
            # A valid card is good for years; the "expiring" one ends this month.
            exp_month, exp_year = now.month, now.year + (0 if behaviour.expiring else 3)
        method_id = _new_id("pm_sbx_")
        conn.execute("INSERT INTO methods (id, token, customer_id, kind, brand, last4, exp_month, exp_year, "
                     "bank_name, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (method_id, token, customer_id, behaviour.kind.value, behaviour.brand, behaviour.last4,
                      exp_month, exp_year, behaviour.bank_name, _ts(now)))
        if make_default:
            conn.execute("UPDATE customers SET default_method_id = ? WHERE id = ?", (method_id, customer_id))
        return _method_from_row(self._method_row(conn, method_id))

    # --- settling ACH --------------------------------------------------------------------------

    def _settle(self, conn: sqlite3.Connection, now: dt.datetime) -> int:
        """Settle every ACH debit and refund whose time has come; returns how many."""
        stamp = _ts(now)
        due = conn.execute("SELECT seq, method_token FROM intents WHERE settle_at IS NOT NULL AND settle_at <= ?",
                           (stamp,)).fetchall()
        for row in due:
            failure = _TEST_METHODS[row["method_token"]].failure
            if failure is None:
                conn.execute("UPDATE intents SET status = ?, settle_at = NULL WHERE seq = ?",
                             (ChargeStatus.SUCCEEDED.value, row["seq"]))
            else:
                decline = failure.decline()
                conn.execute("UPDATE intents SET status = ?, decline_code = ?, decline_decline_code = ?, "
                             "decline_message = ?, decline_hard = ?, settle_at = NULL WHERE seq = ?",
                             (ChargeStatus.DECLINED.value, decline.code, decline.decline_code, decline.message,
                              int(decline.hard), row["seq"]))
        refunds = conn.execute("UPDATE refunds SET status = ?, settle_at = NULL "
                               "WHERE settle_at IS NOT NULL AND settle_at <= ?",
                               (RefundStatus.SUCCEEDED.value, stamp)).rowcount
        return len(due) + refunds

    def _settle_if_due(self, now: dt.datetime) -> None:
        """Lazy settling before a read: a lock-free look first, since usually nothing is due."""
        stamp = _ts(now)
        due = self._connection().execute(
            "SELECT EXISTS (SELECT 1 FROM intents WHERE settle_at IS NOT NULL AND settle_at <= ?) "
            "OR EXISTS (SELECT 1 FROM refunds WHERE settle_at IS NOT NULL AND settle_at <= ?)",
            (stamp, stamp)).fetchone()[0]
        if due:
            with self._write() as conn:
                self._settle(conn, now)

    def settle_due(self) -> int:
        """Settle the ACH debits and refunds whose time has come (as days passing would);
        returns how many changed.  Reads settle lazily anyway."""
        with self._write() as conn:
            return self._settle(conn, self._now())

    # --- account ---------------------------------------------------------------------------------

    def account(self) -> AccountInfo:
        return self._api("account", lambda: AccountInfo(mode=ProcessorMode.SANDBOX, account_id="acct_sandbox",
                                                        display_name="mspbill sandbox"))

    # --- customers ---------------------------------------------------------------------------------

    def create_customer(self, *, name: str, email: str, metadata: Mapping[str, str],
                        idempotency_key: str) -> CustomerInfo:
        key = _require_key(idempotency_key)

        def work() -> CustomerInfo:
            _check_key_length(key)
            meta = _valid_metadata(metadata)
            now = self._now()
            fingerprint = _fingerprint({"name": name, "email": email, "metadata": meta})
            with self._write() as conn:
                stored = self._replay(conn, "create_customer", key, fingerprint, now)
                if stored is not None:
                    return _customer_from_json(stored)
                customer_id = _new_id("cus_sbx_")
                conn.execute("INSERT INTO customers (id, name, email, email_lower, metadata, created) "
                             "VALUES (?, ?, ?, ?, ?, ?)",
                             (customer_id, name, email, email.strip().lower(), _metadata_json(meta),
                              _ts(_whole_seconds(now))))
                info = _customer_from_row(self._customer_row(conn, customer_id, live=True))
                self._remember(conn, "create_customer", key, fingerprint, _customer_json(info), now)
                return info

        return self._api("create_customer", work)

    def get_customer(self, customer_id: str) -> CustomerInfo:
        return self._api("get_customer", lambda: _customer_from_row(
            self._customer_row(self._connection(), customer_id, live=False)))

    def find_customers(self, email: str) -> list[CustomerInfo]:
        def work() -> list[CustomerInfo]:
            wanted = email.strip().lower()
            if not wanted:
                return []
            rows = self._connection().execute(
                "SELECT * FROM customers WHERE email_lower = ? AND deleted = 0 ORDER BY created DESC, seq DESC",
                (wanted,)).fetchall()
            return [_customer_from_row(row) for row in rows]

        return self._api("find_customers", work)

    def update_customer(self, customer_id: str, *, name: str | None = None, email: str | None = None,
                        default_method_id: str | None = None) -> CustomerInfo:
        def work() -> CustomerInfo:
            with self._write() as conn:
                self._customer_row(conn, customer_id, live=True)
                if default_method_id is not None:
                    method = conn.execute("SELECT customer_id FROM methods WHERE id = ?",
                                          (default_method_id,)).fetchone()
                    if method is None or method["customer_id"] != customer_id:
                        raise InvalidRequest(f"The customer {customer_id} does not have a payment method with the "
                                             f"id {default_method_id}; nothing was changed.")
                    conn.execute("UPDATE customers SET default_method_id = ? WHERE id = ?",
                                 (default_method_id, customer_id))
                if name is not None:
                    conn.execute("UPDATE customers SET name = ? WHERE id = ?", (name, customer_id))
                if email is not None:
                    conn.execute("UPDATE customers SET email = ?, email_lower = ? WHERE id = ?",
                                 (email, email.strip().lower(), customer_id))
                return _customer_from_row(self._customer_row(conn, customer_id, live=True))

        return self._api("update_customer", work)

    def delete_customer(self, customer_id: str) -> None:
        """Sandbox only: what deleting the customer in the Stripe Dashboard does.  Its
        methods can no longer be charged; `get_customer` answers `deleted`."""
        with self._write() as conn:
            self._customer_row(conn, customer_id, live=False)
            conn.execute("UPDATE customers SET deleted = 1 WHERE id = ?", (customer_id,))

    # --- payment methods ------------------------------------------------------------------------------

    def attach_test_method(self, customer_id: str, token: str, *, make_default: bool = True) -> MethodFacts:
        """Sandbox only: save a new payment method that behaves like Stripe's test `token`
        (see TEST_TOKENS) to the customer, as a developer would with the test token."""
        with self._write() as conn:
            return self._attach(conn, customer_id, token, make_default, self._now())

    def list_methods(self, customer_id: str) -> list[MethodFacts]:
        def work() -> list[MethodFacts]:
            conn = self._connection()
            self._customer_row(conn, customer_id, live=True)
            rows = conn.execute("SELECT * FROM methods WHERE customer_id = ? ORDER BY seq DESC",
                                (customer_id,)).fetchall()
            return [_method_from_row(row) for row in rows]

        return self._api("list_methods", work)

    def get_method(self, method_id: str) -> MethodFacts:
        return self._api("get_method", lambda: _method_from_row(self._method_row(self._connection(), method_id)))

    def detach_method(self, method_id: str) -> None:
        def work() -> None:
            with self._write() as conn:
                row = self._method_row(conn, method_id)
                if row["customer_id"] is None:
                    return   # already detached: not an error (the contract asks for that)
                conn.execute("UPDATE customers SET default_method_id = NULL WHERE id = ? AND default_method_id = ?",
                             (row["customer_id"], method_id))
                conn.execute("UPDATE methods SET customer_id = NULL WHERE id = ?", (method_id,))

        self._api("detach_method", work)

    # --- hosted setup pages ------------------------------------------------------------------------------

    def create_setup_session(self, *, customer_id: str, currency: str, success_url: str | None,
                             metadata: Mapping[str, str], idempotency_key: str,
                             expires_at: dt.datetime | None = None) -> SetupSession:
        key = _require_key(idempotency_key)
        requested_expiry = _aware(expires_at, "expires_at") if expires_at is not None else None

        def work() -> SetupSession:
            _check_key_length(key)
            meta = _valid_metadata(metadata)
            code = _valid_currency(currency)
            if success_url is not None and not success_url.startswith(("https://", "http://")):
                raise InvalidRequest(f"Not a valid URL: {success_url!r}; nothing was done.")
            now = self._now()
            fingerprint = _fingerprint({"customer": customer_id, "currency": code, "success_url": success_url,
                                        "metadata": meta,
                                        "expires_at": _ts(requested_expiry) if requested_expiry else None})
            expiry = _whole_seconds(requested_expiry if requested_expiry is not None
                                    else now + _SETUP_MAX_LIFETIME)
            with self._write() as conn:
                stored = self._replay(conn, "create_setup_session", key, fingerprint, now)
                if stored is not None:
                    return _session_from_json(stored)
                if not now + _SETUP_MIN_LIFETIME <= expiry <= now + _SETUP_MAX_LIFETIME:
                    raise InvalidRequest("A setup page must expire between 30 minutes and 24 hours after it is "
                                         f"created, not at {expiry:%Y-%m-%d %H:%M} UTC; nothing was done.")
                self._customer_row(conn, customer_id, live=True)
                session_id = _new_id("cs_sbx_")
                conn.execute("INSERT INTO setup_sessions (id, customer_id, currency, success_url, metadata, status, "
                             "expires_at, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             (session_id, customer_id, code, success_url, _metadata_json(meta),
                              SetupStatus.OPEN.value, _ts(expiry), _ts(now)))
                session = self._session_from_row(self._session_row(conn, session_id), now)
                self._remember(conn, "create_setup_session", key, fingerprint, _session_json(session), now)
                return session

        return self._api("create_setup_session", work)

    @staticmethod
    def _session_row(conn: sqlite3.Connection, session_id: str) -> sqlite3.Row:
        row: sqlite3.Row | None = conn.execute("SELECT * FROM setup_sessions WHERE id = ?",
                                               (session_id,)).fetchone()
        if row is None:
            raise NotFound(f"No such setup session: {session_id!r} (in the sandbox processor).")
        return row

    def get_setup_session(self, session_id: str) -> SetupSession:
        return self._api("get_setup_session", lambda: self._session_from_row(
            self._session_row(self._connection(), session_id), self._now()))

    def expire_setup_session(self, session_id: str) -> SetupSession:
        def work() -> SetupSession:
            now = self._now()
            with self._write() as conn:
                session = self._session_from_row(self._session_row(conn, session_id), now)
                if session.status is SetupStatus.OPEN:
                    conn.execute("UPDATE setup_sessions SET status = ? WHERE id = ?",
                                 (SetupStatus.EXPIRED.value, session_id))
                    session = self._session_from_row(self._session_row(conn, session_id), now)
                return session

        return self._api("expire_setup_session", work)

    def complete_setup_session(self, session_id: str, token: str = "pm_card_visa") -> SetupSession:
        """Sandbox only: what the client does on the hosted page -- save a method that behaves
        like `token`, which becomes the customer's default."""
        now = self._now()
        with self._write() as conn:
            session = self._session_from_row(self._session_row(conn, session_id), now)
            if session.status is SetupStatus.EXPIRED:
                raise InvalidRequest(f"The setup page {session_id} has expired; the client needs a new link.")
            if session.status is SetupStatus.COMPLETE:
                raise InvalidRequest(f"The setup page {session_id} was already completed.")
            method = self._attach(conn, session.customer_id, token, True, now)
            conn.execute("UPDATE setup_sessions SET status = ?, method_id = ? WHERE id = ?",
                         (SetupStatus.COMPLETE.value, method.method_id, session_id))
            return self._session_from_row(self._session_row(conn, session_id), now)

    # --- charges --------------------------------------------------------------------------------------------

    def charge(self, request: ChargeRequest) -> ChargeResult:
        def unknown(message: str) -> ChargeResult:
            return ChargeResult(status=ChargeStatus.UNKNOWN, amount_cents=request.amount_cents,
                                currency=request.currency.lower(), method_id=request.method_id, message=message,
                                metadata=dict(request.metadata))

        return self._api("charge", lambda: self._charge(request), unknown=unknown)

    def _charge(self, request: ChargeRequest) -> ChargeResult:
        key = request.idempotency_key
        _check_key_length(key)
        meta = _valid_metadata(request.metadata)
        currency = _valid_currency(request.currency)
        now = self._now()
        # What the real gateway sends to Stripe; the method's kind becomes payment_method_types.
        fingerprint = _fingerprint({
            "customer": request.customer_id, "payment_method": request.method_id,
            "payment_method_types": [request.method_kind.value], "amount": request.amount_cents,
            "currency": currency, "description": request.description, "metadata": meta,
            "statement_descriptor_suffix": request.statement_descriptor_suffix})
        with self._write() as conn:
            stored = self._replay(conn, "charge", key, fingerprint, now)
            if stored is not None:
                return _charge_from_json(stored)
            self._check_chargeable(conn, request, currency)
            method = self._method_row(conn, request.method_id)
            behaviour = _TEST_METHODS[method["token"]]
            decline: Decline | None = None
            settle_at: str | None = None
            if behaviour.is_bank_account:
                status = ChargeStatus.PROCESSING   # the debit's fate is known days later
                settle_at = _ts(now + self._config.ach_settle_after)
            elif behaviour.failure is not None:
                decline = behaviour.failure.decline()
                status = ChargeStatus.REQUIRES_ACTION if behaviour.requires_action else ChargeStatus.DECLINED
            else:
                status = ChargeStatus.SUCCEEDED
            intent_id = _new_id("pi_sbx_")
            conn.execute(
                "INSERT INTO intents (id, customer_id, method_id, method_token, amount_cents, currency, description, "
                "statement_descriptor_suffix, metadata, status, decline_code, decline_decline_code, decline_message, "
                "decline_hard, created, settle_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (intent_id, request.customer_id, request.method_id, method["token"], request.amount_cents, currency,
                 request.description, request.statement_descriptor_suffix, _metadata_json(meta), status.value,
                 decline.code if decline else None, decline.decline_code if decline else None,
                 decline.message if decline else None, int(decline.hard) if decline else None,
                 _ts(_whole_seconds(now)), settle_at))
            result = _intent_from_row(conn.execute("SELECT * FROM intents WHERE id = ?", (intent_id,)).fetchone())
            # A decline is remembered too: the same key never tries the card again.
            self._remember(conn, "charge", key, fingerprint, _charge_json(result), now)
            return result

    def _check_chargeable(self, conn: sqlite3.Connection, request: ChargeRequest, currency: str) -> None:
        """Stripe's refusals before it tries to charge: nothing is recorded, the key stays free."""
        self._customer_row(conn, request.customer_id, live=True)
        method = self._method_row(conn, request.method_id)
        if method["customer_id"] is None:
            raise InvalidRequest(f"The payment method {request.method_id} was detached from its customer and can no "
                                 "longer be charged. Ask the client for a new card or bank account.")
        if method["customer_id"] != request.customer_id:
            raise InvalidRequest(f"The payment method {request.method_id} does not belong to the customer "
                                 f"{request.customer_id}; nothing was charged.")
        kind = MethodKind(method["kind"])
        if kind is not request.method_kind:
            raise InvalidRequest(f"The payment method {request.method_id} is a {kind.value}, not a "
                                 f"{request.method_kind.value}; nothing was charged.")
        if kind is MethodKind.US_BANK_ACCOUNT and currency != "usd":
            raise InvalidRequest(f"A US bank account can only be debited in USD, not {currency.upper()}.")
        minimum = _MINIMUM_CHARGE_CENTS.get(currency, 1)
        if request.amount_cents < minimum:
            raise InvalidRequest(f"Amount must be at least {minimum} cents ({currency.upper()}); Stripe does not "
                                 "take smaller charges.", code="amount_too_small")
        if request.amount_cents > _MAXIMUM_CHARGE_CENTS:
            raise InvalidRequest(f"Amount must be no more than {_MAXIMUM_CHARGE_CENTS} cents.",
                                 code="amount_too_large")
        if len(request.statement_descriptor_suffix) > 22:
            raise InvalidRequest("The statement descriptor suffix can be at most 22 characters.")

    def get_charge(self, intent_id: str) -> ChargeResult:
        def work() -> ChargeResult:
            self._settle_if_due(self._now())
            row = self._connection().execute("SELECT * FROM intents WHERE id = ?", (intent_id,)).fetchone()
            if row is None:
                raise NotFound(f"No such payment: {intent_id!r} (in the sandbox processor).")
            return _intent_from_row(row)

        return self._api("get_charge", work)

    def find_charges(self, *, customer_id: str, created_since: dt.datetime,
                     metadata: Mapping[str, str]) -> list[ChargeResult]:
        """Newest first.  `created` is in whole seconds as at Stripe, so `created_since` counts
        from the start of its second (as `created[gte]` with a Unix time would)."""
        since = _whole_seconds(_aware(created_since, "created_since"))

        def work() -> list[ChargeResult]:
            self._settle_if_due(self._now())
            rows = self._connection().execute(
                "SELECT * FROM intents WHERE customer_id = ? AND created >= ? ORDER BY created DESC, seq DESC",
                (customer_id, _ts(since))).fetchall()
            results = [_intent_from_row(row) for row in rows]
            return [result for result in results if _includes(result.metadata, metadata)]

        return self._api("find_charges", work)

    # --- refunds ----------------------------------------------------------------------------------------------

    def refund(self, *, intent_id: str, amount_cents: int, idempotency_key: str,
               metadata: Mapping[str, str], reason: str | None = None) -> RefundResult:
        if not isinstance(amount_cents, int) or isinstance(amount_cents, bool):
            raise TypeError("a refund is a whole number of cents (int), never a float")
        key = _require_key(idempotency_key)

        def unknown(message: str) -> RefundResult:
            return RefundResult(status=RefundStatus.UNKNOWN, amount_cents=amount_cents, message=message)

        return self._api("refund", lambda: self._refund(intent_id, amount_cents, key, metadata, reason),
                         unknown=unknown)

    def _refund(self, intent_id: str, amount_cents: int, key: str, metadata: Mapping[str, str],
                reason: str | None) -> RefundResult:
        _check_key_length(key)
        meta = _valid_metadata(metadata)
        if amount_cents <= 0:
            raise InvalidRequest("A refund must be a positive amount.")
        if reason is not None and reason not in _REFUND_REASONS:
            raise InvalidRequest(f"Invalid refund reason {reason!r}; use one of {', '.join(sorted(_REFUND_REASONS))}.")
        now = self._now()
        fingerprint = _fingerprint({"payment_intent": intent_id, "amount": amount_cents, "metadata": meta,
                                    "reason": reason})
        with self._write() as conn:
            stored = self._replay(conn, "refund", key, fingerprint, now)
            if stored is not None:
                return _refund_from_json(stored)
            self._settle(conn, now)   # an ACH debit that has settled by now can be refunded
            intent = conn.execute("SELECT * FROM intents WHERE id = ?", (intent_id,)).fetchone()
            if intent is None:
                raise NotFound(f"No such payment: {intent_id!r} (in the sandbox processor).")
            if intent["status"] != ChargeStatus.SUCCEEDED.value:
                raise InvalidRequest(f"Only a succeeded payment can be refunded; {intent_id} is {intent['status']}.")
            refunded = int(conn.execute("SELECT COALESCE(SUM(amount_cents), 0) FROM refunds "
                                        "WHERE intent_id = ? AND status != ?",
                                        (intent_id, RefundStatus.FAILED.value)).fetchone()[0])
            refundable = int(intent["amount_cents"]) - refunded
            if amount_cents > refundable:
                raise InvalidRequest(f"Refund amount ({amount_cents} cents) is greater than what is left to refund "
                                     f"on {intent_id} ({refundable} cents); nothing was refunded.")
            bank = _TEST_METHODS[intent["method_token"]].is_bank_account
            status = RefundStatus.PENDING if bank else RefundStatus.SUCCEEDED   # ACH refunds take days
            refund_id = _new_id("re_sbx_")
            conn.execute("INSERT INTO refunds (id, intent_id, amount_cents, currency, status, reason, metadata, "
                         "created, settle_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (refund_id, intent_id, amount_cents, intent["currency"], status.value, reason,
                          _metadata_json(meta), _ts(_whole_seconds(now)),
                          _ts(now + self._config.ach_settle_after) if bank else None))
            result = RefundResult(status=status, refund_id=refund_id, amount_cents=amount_cents)
            self._remember(conn, "refund", key, fingerprint, _refund_json(result), now)
            return result

    def get_refund(self, refund_id: str) -> RefundResult:
        def work() -> RefundResult:
            self._settle_if_due(self._now())
            row = self._connection().execute("SELECT * FROM refunds WHERE id = ?", (refund_id,)).fetchone()
            if row is None:
                raise NotFound(f"No such refund: {refund_id!r} (in the sandbox processor).")
            return _refund_from_row(row)

        return self._api("get_refund", work)

    def find_refunds(self, *, intent_id: str, metadata: Mapping[str, str]) -> list[RefundResult]:
        def work() -> list[RefundResult]:
            self._settle_if_due(self._now())
            rows = self._connection().execute("SELECT * FROM refunds WHERE intent_id = ? ORDER BY seq DESC",
                                              (intent_id,)).fetchall()
            return [_refund_from_row(row) for row in rows if _includes(_load_metadata(row["metadata"]), metadata)]

        return self._api("find_refunds", work)

    # --- inspection (tests, benchmarks) ------------------------------------------------------------------------

    def ledger_charges(self) -> list[ChargeResult]:
        """Every PaymentIntent this ledger ever created, oldest first, settled as of now."""
        self._settle_if_due(self._now())
        rows = self._connection().execute("SELECT * FROM intents ORDER BY seq").fetchall()
        return [_intent_from_row(row) for row in rows]

    def ledger_refunds(self) -> list[RefundResult]:
        """Every refund this ledger ever created, oldest first, settled as of now."""
        self._settle_if_due(self._now())
        rows = self._connection().execute("SELECT * FROM refunds ORDER BY seq").fetchall()
        return [_refund_from_row(row) for row in rows]
