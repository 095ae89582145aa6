"""Asking the processor what happened since last time, in the background: setup
links the clients finished, bank debits that settled, charges and refunds whose
outcome was unknown (`payments.sync.sync_all`), and then the receipts of month-end
charges that went through since (a bank debit settles days after the run), all by
`batch.run.batch_sync`.

Soon after start-up and every five minutes, like the background e-mail.  What
it finds is a note in the status bar; a failure is logged and noted there too,
never a dialog (nobody asked for this run).
"""

from __future__ import annotations

import datetime as dt
import logging

from PySide6.QtCore import QObject, Signal

from mspbill.batch.run import BatchBusyError, BatchSyncReport, batch_sync
from mspbill.payments.gateway import BRAND_NAMES, NotConfiguredError
from mspbill.payments.sync import FullSyncReport
from ui.ops import OpContext, Ops
from ui.payment_widgets import PaymentSession, close_gateway, processor_message
from ui.periodic import PeriodicJob

log = logging.getLogger(__name__)

SYNC_STARTUP_DELAY_MS = 4_000
SYNC_INTERVAL_MS = 5 * 60 * 1000
_CARD_NAMES = (*BRAND_NAMES.values(), "Card")


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def saved_text(completed: list[str]) -> str:
    """"2 cards and 1 bank account saved from setup links" (entries read "Client: Visa ending 4242")."""
    labels = [text.split(": ", 1)[-1] for text in completed]
    cards = sum(1 for label in labels if label.startswith(_CARD_NAMES))
    banks = len(labels) - cards
    parts = [_count(cards, "card") if cards else "", _count(banks, "bank account") if banks else ""]
    return " and ".join(p for p in parts if p) + " saved from setup links"


def sync_status(report: FullSyncReport, now: dt.datetime | None = None) -> tuple[str, str, bool, bool]:
    """(status-bar text, tooltip, is a problem, changed anything) for one sync; text "" when nothing is new."""
    now = now or dt.datetime.now()
    parts: list[str] = []
    if report.links.completed:
        parts.append(saved_text(report.links.completed))
    if report.charges.succeeded:
        parts.append(f"{_count(len(report.charges.succeeded), 'charge')} confirmed paid")
    if report.charges.failed:
        parts.append(f"{_count(len(report.charges.failed), 'charge')} failed")
    if report.refunds_settled:
        parts.append(f"{_count(report.refunds_settled, 'refund')} settled")
    if report.refunds_failed:
        parts.append(f"{_count(len(report.refunds_failed), 'refund')} failed")
    problem = bool(report.charges.failed or report.refunds_failed or report.errors)
    if report.errors:
        parts.append(f"could not check everything: {report.errors[0]}")
    changed = bool(report.links.completed or report.links.expired or report.charges.succeeded
                   or report.charges.failed or report.charges.not_charged or report.refunds_settled
                   or report.refunds_failed)
    tooltip = f"Payments checked at {now:%H:%M}\n" + "\n".join(report.lines())
    text = ("Payments: " + "; ".join(parts)) if parts else ""
    return text, tooltip, problem, changed


def batch_sync_status(report: BatchSyncReport, now: dt.datetime | None = None) -> tuple[str, str, bool, bool]:
    """sync_status, and the receipts queued for month-end charges that went through."""
    text, tooltip, problem, changed = sync_status(report.sync, now)
    if report.receipts_queued:
        receipts = f"{_count(report.receipts_queued, 'receipt')} queued"
        text = f"{text}; {receipts}" if text else f"Payments: {receipts}"
        tooltip = tooltip.split("\n", 1)[0] + "\n" + "\n".join(report.lines())
        changed = True  # the Outbox has new messages
    return text, tooltip, problem, changed


class PaymentSync(PeriodicJob):
    """The main window's background sync; one run at a time."""

    # text ("" when nothing new), tooltip, problem?, changed anything?
    finished = Signal(str, str, bool, bool)

    def __init__(self, ops: Ops, session: PaymentSession, parent: QObject | None = None):
        super().__init__(SYNC_STARTUP_DELAY_MS, SYNC_INTERVAL_MS, self.sync, parent)
        self.ops = ops
        self.session = session

    def sync(self) -> bool:
        """Start a run (nothing happens without a processor); False when one is under way."""
        if self.running:
            return False
        self.running = True
        session = self.session

        def work(ctx: OpContext) -> BatchSyncReport | None:
            try:
                gateway = session.open_gateway(ctx.db)
            except NotConfiguredError:
                return None  # payments by hand, or no key on this computer: nothing to ask
            try:
                return batch_sync(ctx.db, gateway)
            except BatchBusyError:
                return None  # a month-end run is under way: it resolves and settles its own
            finally:
                close_gateway(gateway)

        def done(report: BatchSyncReport | None) -> None:
            self.running = False
            if report is None:
                self.finished.emit("", "", False, False)
                return
            self.finished.emit(*batch_sync_status(report))

        def failed(exc: BaseException) -> bool:
            self.running = False
            message = processor_message(exc) or f"{type(exc).__name__}: {exc}"
            log.warning("background payment sync failed: %s", message)
            self.finished.emit("Payments: could not reach the processor", message, True, False)
            return True  # never a dialog from the timer

        # No parent: the answer must arrive even if the window that started it is busy elsewhere.
        self.ops.run(None, work, on_success=done, on_failure=failed, label="Checking payments in the background")
        return True
