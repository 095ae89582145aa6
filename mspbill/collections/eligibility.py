"""Which open invoices the office follows up (reminders, late fees) and why the others are left alone."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from mspbill.db.models import (
    IN_FLIGHT_STATUSES,
    ChargeAttempt,
    ChargeAttemptStatus,
    Client,
    Invoice,
    InvoiceKind,
    InvoiceStatus,
)

_CHUNK = 500

# Why an autopay invoice is left alone, by its autopay_state kind.
AUTOPAY_REASONS = {
    "ready": "on autopay; the charge has not failed",
    "processing": "a bank debit is settling",
    "retrying": "on autopay; the month-end batch tries the charge again",
    "approval": "on autopay; above the client's cap, waiting for the office's approval",
}


@dataclass(frozen=True)
class Candidate:
    """An open invoice with a balance, as the follow-up sees it."""

    invoice_id: int
    number: str
    client_id: int
    client_name: str
    currency: str
    issue_date: dt.date
    due_date: dt.date
    balance_cents: int
    autopay: bool
    paused: bool
    has_email: bool

    def days_overdue(self, today: dt.date) -> int:
        return max(0, (today - self.due_date).days)


def balance_expr():  # type: ignore[no-untyped-def]
    return Invoice.total_cents - Invoice.credit_applied_cents - Invoice.paid_cents - Invoice.credited_cents


def open_candidates(session: Session, *, due_on_or_before: dt.date,
                    invoice_ids: Sequence[int] | None = None) -> list[Candidate]:
    """Open invoices (not credit notes) with a balance, due on or before the given day, oldest due first."""
    balance = balance_expr()
    stmt = (select(Invoice.id, Invoice.number, Invoice.client_id, Client.legal_name, Invoice.currency,
                   Invoice.issue_date, Invoice.due_date, balance.label("balance"), Client.autopay,
                   Client.reminders_paused, Client.billing_emails)
            .join(Client, Client.id == Invoice.client_id)
            .where(Invoice.kind == InvoiceKind.INVOICE, Invoice.status == InvoiceStatus.OPEN,
                   Invoice.due_date.is_not(None), Invoice.due_date <= due_on_or_before, balance > 0)
            .order_by(Invoice.due_date, Invoice.id))
    if invoice_ids is not None:
        stmt = stmt.where(Invoice.id.in_(list(invoice_ids)))
    return [Candidate(r.id, r.number or "", r.client_id, r.legal_name, r.currency, r.issue_date or r.due_date,
                      r.due_date, int(r.balance), bool(r.autopay), bool(r.reminders_paused),
                      bool((r.billing_emails or "").strip()))
            for r in session.execute(stmt)]


def _chunks(ids: list[int]) -> Iterable[list[int]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i:i + _CHUNK]


def left_alone(session: Session, candidates: Sequence[Candidate], today: dt.date) -> dict[int, str]:
    """Invoice id → why it is not followed up (the rest are).

    A charge in flight (a bank debit settling, an outcome not yet known) is never chased.
    An autopay client is chased only when a charge failed and nothing will charge the
    invoice again by itself (autopay_state "needs_method")."""
    from mspbill.payments.charges import autopay_state

    out: dict[int, str] = {}
    ids = [c.invoice_id for c in candidates]
    in_flight: set[int] = set()
    declined: set[int] = set()
    for chunk in _chunks(ids):
        for invoice_id, status in session.execute(
                select(ChargeAttempt.invoice_id, ChargeAttempt.status).where(
                    ChargeAttempt.invoice_id.in_(chunk),
                    ChargeAttempt.status.in_([*IN_FLIGHT_STATUSES, ChargeAttemptStatus.DECLINED])).distinct()):
            (in_flight if status in IN_FLIGHT_STATUSES else declined).add(invoice_id)
    for c in candidates:
        if c.invoice_id in in_flight:
            out[c.invoice_id] = "a charge is in progress or its outcome is not known yet"
        elif c.autopay:
            if c.invoice_id not in declined:
                out[c.invoice_id] = AUTOPAY_REASONS["ready"]
                continue
            inv = session.get(Invoice, c.invoice_id)
            assert inv is not None
            state = autopay_state(session, inv, today)
            if state.kind != "needs_method":
                out[c.invoice_id] = AUTOPAY_REASONS.get(state.kind, "on autopay")
    return out
