"""What every money-moving window shares: the processor mode badge, and the
payment session of this main window (where the gateway comes from, the mode
last seen, whether live mode was confirmed).

The gateway is opened inside worker jobs only: for Stripe that reads the OS
keyring, which can block (house rule 2).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget
from sqlalchemy import select
from sqlalchemy.orm import Session

from mspbill.db.engine import Database
from mspbill.db.models import Payment, PaymentMethod, PaymentSettings, ProcessorKind
from mspbill.payments.gateway import (
    Gateway,
    NotConfiguredError,
    ProcessorError,
    ProcessorMode,
)
from mspbill.payments.processor import (
    NO_KEY,
    NO_PROCESSOR,
    office_mode,
    open_gateway,
    stripe_key_status,
)
from ui.ops import OpContext, Ops

log = logging.getLogger(__name__)
T = TypeVar("T")

# text, foreground, background, tooltip
_BADGES: dict[ProcessorMode | None, tuple[str, str, str, str]] = {
    ProcessorMode.SANDBOX: ("SANDBOX — no money moves", "#174ea6", "#d2e3fc",
                            "The simulated processor: charges and refunds are pretend, nothing reaches a bank."),
    ProcessorMode.TEST: ("TEST MODE", "#ffffff", "#e8710a",
                         "A Stripe test key: Stripe records charges, but no real money moves."),
    ProcessorMode.LIVE: ("LIVE — real money", "#ffffff", "#b3261e",
                         "A Stripe live key: charges and refunds move real money."),
    None: ("Payments off", "#5f6368", "#e8eaed",
           "No payment processor is set up (Settings → Payments); payments are recorded by hand."),
}


def badge_text(mode: ProcessorMode | None) -> str:
    return _BADGES[mode][0]


_UNKNOWN = object()  # ModeBadge() without a mode: hidden until set_mode is called


class ModeBadge(QLabel):
    """A small coloured tag naming where money would move: SANDBOX, TEST MODE, LIVE.

    Made without a mode it stays hidden until `set_mode` says which (the mode is
    asked on a worker, so it is not known yet)."""

    def __init__(self, mode: ProcessorMode | None | object = _UNKNOWN, parent: QWidget | None = None, *,
                 hide_when_off: bool = False):
        super().__init__(parent)
        self._hide_when_off = hide_when_off
        self.mode: ProcessorMode | None = None
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        # A tag, not a panel: never stretched by the layout it sits in.
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        if mode is _UNKNOWN:
            self.hide()
        else:
            self.set_mode(mode)  # type: ignore[arg-type]

    def set_mode(self, mode: ProcessorMode | None) -> None:
        self.mode = mode
        text, fg, bg, tip = _BADGES[mode]
        self.setText(text)
        self.setToolTip(tip)
        self.setAccessibleName(f"Payment mode: {text}")
        self.setStyleSheet(f"QLabel {{ color: {fg}; background: {bg}; font-weight: 600; font-size: 11px; "
                           "padding: 2px 8px; border-radius: 8px; }")
        self.setVisible(not (self._hide_when_off and mode is None))


def close_gateway(gateway: object) -> None:
    """Close what the gateway holds open on this worker thread (the sandbox's ledger connection)."""
    close = getattr(gateway, "close", None)
    if callable(close):
        try:
            close()
        except Exception:  # closing is tidying up; the job's result matters more
            log.debug("closing the gateway failed", exc_info=True)


class PaymentSession(QObject):
    """One per main window (kept on its Ops, like the e-mail runner).

    `live_confirmed` is remembered only while the app runs: the first charge or
    refund in live mode after each start asks for an explicit confirmation.
    `gateway_factory` is what tests replace (a live-mode wrapper of the sandbox)."""

    mode_changed = Signal(object)  # ProcessorMode | None

    def __init__(self, ops: Ops, data_dir: Path | None, parent: QObject | None = None):
        super().__init__(parent)
        self.ops = ops
        self.data_dir = data_dir
        self.live_confirmed = False
        self.mode: ProcessorMode | None = None
        self.gateway_factory: Callable[[Database], Gateway] = self._open

    @classmethod
    def install(cls, ops: Ops, data_dir: Path) -> PaymentSession:
        session = cls.for_ops(ops)
        session.data_dir = data_dir
        return session

    @classmethod
    def for_ops(cls, ops: Ops) -> PaymentSession:
        session = getattr(ops, "_payment_session", None)
        if not isinstance(session, PaymentSession):
            # Without install (a screen tested on its own): the data folder is the database's.
            path = ops.db.sqlite_path
            session = cls(ops, path.parent if path is not None else None, ops)
            ops._payment_session = session  # type: ignore[attr-defined]
        return session

    def _open(self, db: Database) -> Gateway:
        if self.data_dir is None:
            raise NotConfiguredError("mspbill does not know its data folder, so it cannot open the processor.")
        return open_gateway(db, self.data_dir)

    # --- on worker threads ---
    def open_gateway(self, db: Database) -> Gateway:
        return self.gateway_factory(db)

    def with_gateway(self, work: Callable[[Database, Gateway], T]) -> Callable[[OpContext], T]:
        """A job for Ops.run that opens the gateway on the worker, runs `work`, and closes it."""
        def job(ctx: OpContext) -> T:
            gateway = self.open_gateway(ctx.db)
            try:
                return work(ctx.db, gateway)
            finally:
                close_gateway(gateway)
        return job

    # --- on the UI thread ---
    def refresh_mode(self, parent: QWidget | None = None) -> None:
        """Ask again (the settings or the key changed); `mode_changed` tells the badges."""
        def failed(exc: BaseException) -> bool:
            log.warning("could not tell the payment mode: %s", exc)
            return True

        self.ops.read(parent, office_mode, on_success=self.set_mode, on_failure=failed,
                      label="Checking the payment processor")

    def set_mode(self, mode: ProcessorMode | None) -> None:
        """The mode is known (asked, or told by the settings form that just saved it)."""
        self.mode = mode
        self.mode_changed.emit(mode)


def office_mode_and_note(session: Session) -> tuple[ProcessorMode | None, str]:
    """In a job's read session: the mode money would move in (the key's mode cached, no gateway
    opened) and, when there is none, the sentence that says why."""
    mode = office_mode(session)
    if mode is not None:
        return mode, ""
    row = session.get(PaymentSettings, 1)
    if row is None or row.processor is ProcessorKind.NONE:
        return None, NO_PROCESSOR
    # Stripe, and no key as last seen: only now ask the keyring again, and why (no keyring, no key).
    status = stripe_key_status()
    if status.saved:
        return status.mode, ""
    return None, status.problem or NO_KEY


def refundable_payment_ids(session: Session, *, invoice_id: int | None = None) -> frozenset[int]:
    """The payments a refund can be asked for: taken through the processor and carrying its payment
    intent (the core's rule, as mspbill.payments.refunds.plan_refund applies it to one payment)."""
    through = [m for m in PaymentMethod if m.through_processor]
    stmt = select(Payment.id).where(Payment.method.in_(through), Payment.processor_intent_id.is_not(None))
    if invoice_id is not None:
        stmt = stmt.where(Payment.invoice_id == invoice_id)
    return frozenset(session.scalars(stmt))


def processor_message(exc: BaseException) -> str | None:
    """The sentence for a processor or keyring failure; None for anything else (a bug)."""
    from mspbill.secrets import KeyringUnavailableError
    from mspbill.validation import ValidationError
    from ui.ops import describe_error

    if isinstance(exc, ProcessorError):
        return exc.message
    if isinstance(exc, KeyringUnavailableError):
        return str(exc)
    if isinstance(exc, ValidationError):
        # One reason reads as a sentence; several as the usual list.
        return exc.issues[0].message if len(exc.issues) == 1 else describe_error(exc)
    return None


def processor_failure(show: Callable[[str], object], before: Callable[[], object] | None = None
                      ) -> Callable[[BaseException], bool]:
    """An `on_failure` for processor work: `before()` first (buttons back on), then the sentence of a
    processor's, the keyring's or the core's refusal goes to `show` and is handled; anything else
    (a bug) is left to the error dialog."""
    def failed(exc: BaseException) -> bool:
        if before is not None:
            before()
        message = processor_message(exc)
        if message is None:
            return False
        show(message)
        return True
    return failed


def ask_yes_no(parent: QWidget | None, title: str, text: str) -> bool:
    """A question before something that cannot be undone here (tests replace this)."""
    from PySide6.QtWidgets import QMessageBox

    answer = QMessageBox.question(parent, title, text,
                                  QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
                                  QMessageBox.StandardButton.Cancel)
    return answer == QMessageBox.StandardButton.Yes
