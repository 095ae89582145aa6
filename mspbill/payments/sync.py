"""One pass of "what has the processor done since we last asked": setup links the
clients finished, bank debits that settled, charges and refunds whose outcome was
unknown.  Run at start-up, on a timer in the app, and by `mspbill payments sync`
(and, from the month-end batch on, `mspbill batch sync`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from mspbill.db.engine import Database
from mspbill.db.models import Refund, RefundStatus, utcnow
from mspbill.payments.charges import SyncReport, sync_charges
from mspbill.payments.gateway import Gateway, ProcessorError, ProcessorMode
from mspbill.payments.methods import PollReport, poll_setup_links
from mspbill.payments.processor import to_db_mode
from mspbill.payments.refunds import resolve_refund


@dataclass
class FullSyncReport:
    mode: ProcessorMode
    links: PollReport
    charges: SyncReport
    refunds_settled: int = 0
    refunds_failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"[{self.mode.label}]"]
        for text in self.links.completed:
            out.append(f"Saved from a setup link — {text}")
        if self.links.expired:
            out.append(f"{self.links.expired} setup link(s) expired unused")
        for text in self.charges.succeeded:
            out.append(f"Paid — {text}")
        for text in self.charges.failed:
            out.append(f"Failed — {text}")
        if self.charges.still_processing:
            out.append(f"{self.charges.still_processing} bank debit(s) still processing")
        if self.charges.still_unknown:
            out.append(f"{self.charges.still_unknown} charge(s) still without a known outcome")
        if self.charges.not_charged:
            out.append(f"{self.charges.not_charged} charge attempt(s) turned out to have charged nothing")
        if self.refunds_settled:
            out.append(f"{self.refunds_settled} refund(s) settled")
        for text in self.refunds_failed:
            out.append(f"Refund failed — {text}")
        for text in self.errors:
            out.append(f"Problem: {text}")
        if len(out) == 1:
            out.append("Nothing new.")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"mode": self.mode.value, "links_checked": self.links.checked,
                "methods_saved": self.links.completed, "links_expired": self.links.expired,
                "charges_checked": self.charges.checked, "charges_succeeded": self.charges.succeeded,
                "charges_failed": self.charges.failed, "still_processing": self.charges.still_processing,
                "still_unknown": self.charges.still_unknown, "not_charged": self.charges.not_charged,
                "refunds_settled": self.refunds_settled, "refunds_failed": self.refunds_failed,
                "errors": self.errors}


def sync_all(db: Database, gateway: Gateway, now: dt.datetime | None = None) -> FullSyncReport:
    from mspbill.backups import reconcile_after_restore

    now = now or utcnow()
    # After a restore from a backup: the charges made since, brought in before anything else looks at
    # the invoices (once per restore; a no-op otherwise).
    restore_problems = reconcile_after_restore(db, gateway, from_sync=True)
    links = poll_setup_links(db, gateway, now=now)
    charges = sync_charges(db, gateway, now=now)
    report = FullSyncReport(gateway.mode, links, charges, errors=restore_problems + links.errors + charges.errors)
    with db.session() as s:
        open_refunds = list(s.scalars(select(Refund.id).where(
            Refund.mode == to_db_mode(gateway.mode),
            Refund.status.in_([RefundStatus.REQUESTED, RefundStatus.UNKNOWN, RefundStatus.PENDING]))))
    for refund_id in open_refunds:
        try:
            outcome = resolve_refund(db, gateway, refund_id, now)
        except ProcessorError as exc:
            report.errors.append(exc.message)
            break
        if outcome.status is RefundStatus.SUCCEEDED:
            report.refunds_settled += 1
        elif outcome.status is RefundStatus.FAILED:
            report.refunds_failed.append(outcome.message)
    return report
