"""Which processor the office uses, and a gateway to it.

The choice (none, Stripe, sandbox) and the non-secret options are the office's
and live in the database (`payment_settings`), shared by every workstation; the
Stripe secret key is each workstation's and lives in its OS keyring only
(house rule 6), so test or live mode is told by the key's prefix.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from mspbill import audit
from mspbill.db.engine import Database
from mspbill.db.models import PaymentSettings, ProcessorKind
from mspbill.db.models import ProcessorMode as DbMode
from mspbill.payments.gateway import (
    AccountInfo,
    Gateway,
    KeyProblem,
    NotConfiguredError,
    ProcessorMode,
    clean_secret_key,
    is_restricted_key,
    key_mode,
    mask_key,
)
from mspbill.secrets import STRIPE_SECRET_KEY, KeyringUnavailableError, SecretStore
from mspbill.validation import Issue, ValidationError

log = logging.getLogger(__name__)

SANDBOX_LEDGER = "sandbox-processor.sqlite3"
# For developers and tests: send Stripe calls to another address (localstripe).
API_BASE_ENV = "MSPBILL_STRIPE_API_BASE"
URL_MAX = 500


def to_db_mode(mode: ProcessorMode) -> DbMode:
    return DbMode(mode.value)


def from_db_mode(mode: DbMode) -> ProcessorMode:
    return ProcessorMode(mode.value)


# --- settings ---------------------------------------------------------------------


def payment_settings(session: Session) -> PaymentSettings:
    """The office's payment settings; a fresh row (payments by hand) when there is none yet."""
    row = session.get(PaymentSettings, 1)
    if row is None:
        row = PaymentSettings(id=1, processor=ProcessorKind.NONE, setup_success_url="", setup_link_hours=24,
                              stripe_account_id="", stripe_account_name="")
        session.add(row)
        session.flush()
    return row


@dataclass(frozen=True)
class PaymentSettingsDraft:
    processor: str = "none"
    setup_success_url: str = ""
    setup_link_hours: str = "24"


def settings_draft(session: Session) -> PaymentSettingsDraft:
    row = session.get(PaymentSettings, 1)
    if row is None:
        return PaymentSettingsDraft()
    return PaymentSettingsDraft(processor=row.processor.value, setup_success_url=row.setup_success_url,
                                setup_link_hours=str(row.setup_link_hours))


def validate_settings(draft: PaymentSettingsDraft) -> tuple[dict[str, object], list[Issue]]:
    issues: list[Issue] = []
    values: dict[str, object] = {}
    try:
        values["processor"] = ProcessorKind((draft.processor or "none").strip().lower())
    except ValueError:
        issues.append(Issue("processor", "Choose Stripe, the sandbox, or none."))
    url = (draft.setup_success_url or "").strip()
    if url:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.netloc:
            issues.append(Issue("setup_success_url", "The page after setup must be a full https:// address, "
                                                     "for example https://www.example-msp.com/thanks."))
        elif len(url) > URL_MAX:
            issues.append(Issue("setup_success_url", f"The address is limited to {URL_MAX} characters."))
    values["setup_success_url"] = url
    text = (draft.setup_link_hours or "").strip()
    try:
        hours = int(text)
        if not 1 <= hours <= 24:
            raise ValueError
        values["setup_link_hours"] = hours
    except ValueError:
        issues.append(Issue("setup_link_hours", "A setup link stays usable for 1 to 24 hours (Stripe's limit)."))
    return values, issues


def save_settings(session: Session, draft: PaymentSettingsDraft) -> PaymentSettings:
    values, issues = validate_settings(draft)
    if issues:
        raise ValidationError(issues)
    row = payment_settings(session)
    before = {"processor": row.processor.value, "setup_success_url": row.setup_success_url,
              "setup_link_hours": row.setup_link_hours}
    for key, value in values.items():
        setattr(row, key, value)
    after = {"processor": row.processor.value, "setup_success_url": row.setup_success_url,
             "setup_link_hours": row.setup_link_hours}
    changes = audit.diff(before, after)
    if changes:
        audit.record(session, "settings.payments", "settings", 1,
                     "Changed payment settings: " + ", ".join(sorted(changes)), {"changes": changes})
    session.flush()
    return row


# --- the key ----------------------------------------------------------------------


@dataclass(frozen=True)
class KeyStatus:
    saved: bool
    mode: ProcessorMode | None = None
    masked: str = ""
    restricted: bool = False
    keyring: str = ""
    problem: str = ""   # the keyring could not be read


def stripe_key_status(store: SecretStore | None = None) -> KeyStatus:
    """Whether a key is saved and which mode it is -- never the key itself."""
    store = store or SecretStore()
    try:
        key = store.get(STRIPE_SECRET_KEY)
    except KeyringUnavailableError as exc:
        return KeyStatus(saved=False, keyring=store.describe(), problem=str(exc))
    if not key:
        return KeyStatus(saved=False, keyring=store.describe())
    return KeyStatus(saved=True, mode=key_mode(key), masked=mask_key(key), restricted=is_restricted_key(key),
                     keyring=store.describe())


_MODE_CACHE: tuple[float, ProcessorMode | None] | None = None
_MODE_CACHE_SECONDS = 60.0
# PDFs are rendered on several worker threads at once.
_MODE_CACHE_LOCK = threading.Lock()


def cached_key_mode() -> ProcessorMode | None:
    """The saved key's mode, read from the keyring at most once a minute (PDFs of a whole
    month's invoices each say which card will be charged)."""
    global _MODE_CACHE
    with _MODE_CACHE_LOCK:
        now = time.monotonic()
        if _MODE_CACHE is None or now - _MODE_CACHE[0] > _MODE_CACHE_SECONDS:
            status = stripe_key_status()
            _MODE_CACHE = (now, status.mode if status.saved else None)
        return _MODE_CACHE[1]


def forget_cached_mode() -> None:
    global _MODE_CACHE
    with _MODE_CACHE_LOCK:
        _MODE_CACHE = None


def save_stripe_key(text: str, store: SecretStore | None = None) -> KeyStatus:
    """Clean the pasted key (spaces, quotes, line breaks) and keep it in the keyring only.

    Raises KeyProblem for text that is not a secret key, KeyringUnavailableError
    when there is no secure keyring (nothing is saved then)."""
    key = clean_secret_key(text)
    store = store or SecretStore()
    store.set(STRIPE_SECRET_KEY, key)
    forget_cached_mode()
    log.info("Stripe %s key saved (%s)", key_mode(key).value, mask_key(key))
    return stripe_key_status(store)


# --- the gateway ------------------------------------------------------------------


def sandbox_ledger_path(data_dir: Path) -> Path:
    return data_dir / SANDBOX_LEDGER


def stripe_gateway_for_key(key: str) -> Gateway:
    # Imported here: only this path needs stripe-python (house rule: one module imports it).
    from mspbill.payments.stripe_gateway import StripeGateway

    return StripeGateway(key, api_base=os.environ.get(API_BASE_ENV) or None)


def sandbox_gateway(data_dir: Path) -> Gateway:
    from mspbill.payments.sandbox import SandboxConfig, SandboxGateway

    return SandboxGateway(sandbox_ledger_path(data_dir), SandboxConfig.from_env(os.environ))


NO_PROCESSOR = ("Payments through a processor are off. Choose Stripe (and save its secret key) or the sandbox "
                "in Settings → Payments.")
NO_KEY = ("No Stripe secret key is saved on this computer. Paste it in Settings → Payments "
          "(or run `mspbill keys set stripe`).")


def open_gateway(db: Database, data_dir: Path, store: SecretStore | None = None) -> Gateway:
    """The gateway the office's settings name; NotConfiguredError with what to do when there is none."""
    with db.session() as s:
        row = s.get(PaymentSettings, 1)
        kind = row.processor if row is not None else ProcessorKind.NONE
    if kind is ProcessorKind.SANDBOX:
        return sandbox_gateway(data_dir)
    if kind is ProcessorKind.NONE:
        raise NotConfiguredError(NO_PROCESSOR)
    store = store or SecretStore()
    try:
        key = store.get(STRIPE_SECRET_KEY)
    except KeyringUnavailableError as exc:
        raise NotConfiguredError(str(exc)) from exc
    if not key:
        raise NotConfiguredError(NO_KEY)
    return stripe_gateway_for_key(key)


def _mode_of(row: PaymentSettings | None, key_mode: Callable[[], ProcessorMode | None]) -> ProcessorMode | None:
    kind = row.processor if row is not None else ProcessorKind.NONE
    if kind is ProcessorKind.SANDBOX:
        return ProcessorMode.SANDBOX
    if kind is ProcessorKind.NONE:
        return None
    return key_mode()


def office_mode(session: Session) -> ProcessorMode | None:
    """Like current_mode, from inside a transaction, with the key's mode cached."""
    return _mode_of(session.get(PaymentSettings, 1), cached_key_mode)


def current_mode(db: Database, store: SecretStore | None = None) -> ProcessorMode | None:
    """The mode money would move in now, or None when no processor is usable (no key, payments off)."""
    with db.session() as s:
        row = s.get(PaymentSettings, 1)

    def key_mode() -> ProcessorMode | None:
        status = stripe_key_status(store)
        return status.mode if status.saved else None

    return _mode_of(row, key_mode)


@dataclass(frozen=True)
class ConnectionReport:
    info: AccountInfo
    warning: str = ""   # for example: the key belongs to another Stripe account than before


def check_connection(db: Database, gateway: Gateway) -> ConnectionReport:
    """Reach the processor with the key; remember which Stripe account it belongs to.

    Raises the gateway's errors (wrong key, restricted key, no network) with their messages."""
    info = gateway.account()
    warning = ""
    if info.mode is not ProcessorMode.SANDBOX:
        with db.write_session() as s, s.begin():
            row = payment_settings(s)
            if info.account_id and row.stripe_account_id and row.stripe_account_id != info.account_id:
                warning = (f"This key belongs to another Stripe account ({info.account_id}) than the one used "
                           f"before ({row.stripe_account_id}). Cards and bank accounts saved through the other "
                           "account cannot be charged with it.")
                audit.record(s, "settings.payments", "settings", 1,
                             f"The Stripe key now belongs to account {info.account_id} "
                             f"(was {row.stripe_account_id})")
            if info.account_id:
                row.stripe_account_id = info.account_id
            if info.display_name:
                row.stripe_account_name = info.display_name[:200]
    return ConnectionReport(info, warning)


def check_key_text(text: str) -> list[Issue]:
    """The form's check of a pasted key, before anything is saved."""
    try:
        clean_secret_key(text)
    except KeyProblem as exc:
        return [Issue("stripe_key", str(exc))]
    return []
