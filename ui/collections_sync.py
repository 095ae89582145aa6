"""Collections in the background: one pass of `collections.run.run_collections` (today's
reminders queued in the Outbox, today's late fees assessed) soon after start-up -- after
the first payment sync, so a charge that went through meanwhile is not chased -- and then
every hour while the app is open.

Safe to run as often as this: a reminder step or a fee is taken at most once per invoice,
whichever window, process or workstation runs it.  What it did is a quiet note in the
status bar; a failure is logged and noted there too, never a dialog (nobody asked for this
run).  Without e-mail set up nothing is queued, so the demo office is left as it is.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from mspbill.collections.run import CollectionsReport, run_collections
from mspbill.mail.settings import NOT_CONFIGURED
from ui.ops import OpContext, Ops, describe_error
from ui.periodic import PeriodicJob

log = logging.getLogger(__name__)

# The payment sync looks first, 4 s after start-up.
COLLECTIONS_STARTUP_DELAY_MS = 12_000
COLLECTIONS_INTERVAL_MS = 60 * 60 * 1000


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def collections_status(report: CollectionsReport, now: dt.datetime | None = None) -> tuple[str, str, bool, bool]:
    """(status-bar text, tooltip, is a problem, changed anything) for one pass; text "" when nothing is new."""
    now = now or dt.datetime.now()
    r, f = report.reminders, report.fees
    parts: list[str] = []
    if r.queued:
        parts.append(f"{_count(len(r.queued), 'reminder')} queued")
    if r.withdrawn:
        parts.append(f"{_count(r.withdrawn, 'reminder')} withdrawn")
    if f.assessed:
        parts.append(f"{_count(len(f.assessed), 'late fee')} assessed")
    problem = False
    if r.not_configured:
        waiting = sum(1 for s in r.skipped if s.reason == NOT_CONFIGURED)
        if waiting:
            parts.append(f"{_count(waiting, 'reminder')} waiting for e-mail to be set up")
            problem = True
    tooltip = f"Collections checked at {now:%H:%M}\n" + "\n".join(report.lines())
    text = ("Collections: " + "; ".join(parts)) if parts else ""
    return text, tooltip, problem, report.changed


class CollectionsSync(PeriodicJob):
    """The main window's hourly collections pass; one at a time."""

    # text ("" when nothing new), tooltip, problem?, changed anything?
    finished = Signal(str, str, bool, bool)
    ran = Signal(object)   # the CollectionsReport, for whoever wants more than the note

    def __init__(self, ops: Ops, parent: QObject | None = None):
        super().__init__(COLLECTIONS_STARTUP_DELAY_MS, COLLECTIONS_INTERVAL_MS, self.run, parent)
        self.ops = ops
        self.today: Callable[[], dt.date] = dt.date.today

    def run(self) -> bool:
        """Start a pass; False when one is under way."""
        if self.running:
            return False
        self.running = True
        today = self.today()

        def work(ctx: OpContext) -> CollectionsReport:
            return run_collections(ctx.db, today)

        def done(report: CollectionsReport) -> None:
            self.running = False
            self.ran.emit(report)
            self.finished.emit(*collections_status(report))

        def failed(exc: BaseException) -> bool:
            self.running = False
            message = describe_error(exc)
            log.warning("background collections pass failed: %s", message)
            self.finished.emit("Collections: the follow-up pass did not finish",
                               f"{message}\nIt is tried again within the hour.", True, False)
            return True  # never a dialog from the timer

        # No parent: the answer must arrive even if the window that started it is busy elsewhere.
        self.ops.run(None, work, on_success=done, on_failure=failed, label="Following up overdue invoices")
        return True
