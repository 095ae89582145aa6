"""One pass of collections: queue today's reminders and assess today's late fees.

Run by the app soon after start and every hour, and by `mspbill collections run` (a
scheduled task).  Safe to run as often as anyone likes: a reminder step or a fee is taken
at most once per invoice (unique rows), whichever window, process or workstation runs it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from mspbill.collections.late_fees import (
    FeePlan,
    FeeReport,
    assess_late_fees,
    plan_late_fees,
)
from mspbill.collections.reminders import (
    ReminderPlan,
    ReminderReport,
    plan_reminders,
    queue_reminders,
)
from mspbill.db.engine import Database


@dataclass
class CollectionsReport:
    today: dt.date
    reminders: ReminderReport = field(default_factory=ReminderReport)
    fees: FeeReport = field(default_factory=FeeReport)
    held: str = ""   # why nothing was done (after a restore, until the processor has been asked)

    def lines(self) -> list[str]:
        if self.held:
            return [self.held]
        out = self.reminders.lines() + self.fees.lines()
        return out or ["Nothing to follow up today."]

    @property
    def changed(self) -> bool:
        return bool(self.reminders.queued or self.reminders.withdrawn or self.fees.assessed)


@dataclass(frozen=True)
class CollectionsPlan:
    today: dt.date
    reminders: ReminderPlan
    fees: FeePlan


def plan_collections(db: Database, today: dt.date | None = None) -> CollectionsPlan:
    today = today or dt.date.today()
    with db.session() as s:
        return CollectionsPlan(today, plan_reminders(s, today), plan_late_fees(s, today))


def run_collections(db: Database, today: dt.date | None = None) -> CollectionsReport:
    """Fees first (a fee invoice issued today is e-mailed with the day's mail), then reminders;
    each in its own transaction."""
    from mspbill.backups import pending_restore
    from mspbill.payments.processor import office_mode

    today = today or dt.date.today()
    report = CollectionsReport(today)
    with db.session() as s:
        if office_mode(s) is not None and pending_restore(s, looked_counts=True) is not None:
            # Invoices paid after the restored backup was taken look unpaid until then.
            report.held = ("Reminders and late fees wait until the payment processor has been asked about "
                           "charges made since the database was restored (the app does it by itself within minutes; "
                           "or run `mspbill payments sync`).")
            return report
    with db.write_session() as s, s.begin():
        report.fees = assess_late_fees(s, today)
    with db.write_session() as s, s.begin():
        report.reminders = queue_reminders(s, today)
    return report
