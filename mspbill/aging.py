"""Receivables as of any date: what each invoice still owed that day, and aging buckets.

"As of" a date means what was known to have happened by the end of that day:
an invoice counts from its issue date; a payment reduces it from the day it
was received; a credit note from its issue date.  An invoice's balance as of
a day is therefore

    total − client credit applied at issue − payments applied (received by then)
          − credit notes applied (issued by then)

and it is a receivable when that is more than zero.  What is not a receivable:
drafts (not issued), voided invoices (they leave the books as if never
issued) and credit notes (they reduce an invoice; what they do not take off
becomes client credit).  An invoice written off as uncollectible stops being
owed from the day it was written off; before then it aged like any other.
The write-off day is not a column: it is the date (local time) of the
invoice's "invoice.uncollectible" audit entry, the one record of when it
happened (invoicing.mark_uncollectible).

Client credit as of a day is the client_credits ledger, each entry dated by
what caused it: an overpayment by the payment's received date, a credit note
by its issue date, credit applied to (or created by) an invoice by the
invoice's issue date.  Credit used by an invoice that was later voided and
given back by the void nets to nothing and is left out with the void.

Everything is computed by the database (correlated sums over indexed
columns), one row per open invoice, so the A/R aging report of 2,000 clients
and 50,000 invoices reads in one query.  The statement of account
(pdf/statement.py) is built on these same definitions, so its closing balance
equals the open balances less client credit as of its end date.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import and_, case, func, select, union_all
from sqlalchemy.orm import Session, aliased

from mspbill.db.models import (
    REFUND_APPLIED_STATUSES,
    AuditEntry,
    Client,
    ClientCredit,
    CreditReason,
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    Payment,
    Refund,
)

WRITE_OFF_ACTION = "invoice.uncollectible"

# Statuses an issued invoice can be in and still have been owed on some day.
_ISSUED = (InvoiceStatus.OPEN, InvoiceStatus.PAID, InvoiceStatus.UNCOLLECTIBLE)


# --- buckets --------------------------------------------------------------------------

@dataclass(frozen=True)
class Bucket:
    key: str
    label: str
    min_days: int          # days past due, inclusive
    max_days: int | None   # inclusive; None: no upper end

    def holds(self, days_past_due: int) -> bool:
        return days_past_due >= self.min_days and (self.max_days is None or days_past_due <= self.max_days)


# "Current" is not yet due or due today (0 days past due).
BUCKETS: tuple[Bucket, ...] = (
    Bucket("current", "Current", -10**9, 0),
    Bucket("1_30", "1–30 days", 1, 30),
    Bucket("31_60", "31–60 days", 31, 60),
    Bucket("61_90", "61–90 days", 61, 90),
    Bucket("over_90", "Over 90 days", 91, None),
)
BUCKET_KEYS = tuple(b.key for b in BUCKETS)


def bucket_index(days_past_due: int) -> int:
    if days_past_due <= 0:
        return 0
    if days_past_due <= 30:
        return 1
    if days_past_due <= 60:
        return 2
    if days_past_due <= 90:
        return 3
    return 4


def bucket_for(days_past_due: int) -> Bucket:
    return BUCKETS[bucket_index(days_past_due)]


# --- open items -----------------------------------------------------------------------

@dataclass(frozen=True)
class OpenItem:
    """An invoice with a balance as of `as_of`: the row of an aging report's drill-down."""

    invoice_id: int
    number: str
    client_id: int
    client_name: str
    currency: str
    title: str
    issue_date: dt.date
    due_date: dt.date
    total_cents: int
    balance_cents: int
    days_past_due: int  # 0 or less: not yet past due

    @property
    def bucket(self) -> Bucket:
        return bucket_for(self.days_past_due)

    @property
    def days_overdue(self) -> int:
        return max(0, self.days_past_due)


def local_date(moment: dt.datetime) -> dt.date:
    """The office's calendar day of a stored UTC moment."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone().date()


def _paid_by(as_of: dt.date):  # type: ignore[no-untyped-def]
    """Payments applied to the outer invoice, received on or before `as_of`, less what was
    refunded of them by then (correlated sums)."""
    paid = (select(func.coalesce(func.sum(Payment.applied_cents), 0))
            .where(Payment.invoice_id == Invoice.id, Payment.received_on <= as_of)
            .correlate(Invoice).scalar_subquery())
    refunded = (select(func.coalesce(func.sum(Refund.amount_cents), 0))
                .where(Refund.invoice_id == Invoice.id, Refund.status.in_(REFUND_APPLIED_STATUSES),
                       Refund.refunded_on <= as_of)
                .correlate(Invoice).scalar_subquery())
    return paid - refunded


def credit_note_to_invoice_sql():  # type: ignore[no-untyped-def]
    """What a credit note took off the invoice it credits: its total less what it sent to client credit."""
    note = aliased(Invoice, name="note")
    sent = (select(func.coalesce(func.sum(ClientCredit.amount_cents), 0))
            .where(ClientCredit.invoice_id == note.id, ClientCredit.reason == CreditReason.CREDIT_NOTE)
            .correlate(note).scalar_subquery())
    return note, note.total_cents - sent


def _credited_by(as_of: dt.date):  # type: ignore[no-untyped-def]
    """Credit notes applied to the outer invoice, issued on or before `as_of` (a correlated sum)."""
    note, applied = credit_note_to_invoice_sql()
    return (select(func.coalesce(func.sum(applied), 0))
            .where(note.credit_for_invoice_id == Invoice.id, note.kind == InvoiceKind.CREDIT_NOTE,
                   note.issue_date <= as_of)
            .correlate(Invoice).scalar_subquery())


def write_off_dates(session: Session, invoice_ids: Iterable[int]) -> dict[int, dt.date]:
    """The day each of these invoices was written off as uncollectible (those that were)."""
    ids = list(invoice_ids)
    out: dict[int, dt.date] = {}
    for start in range(0, len(ids), 500):
        stmt = (select(AuditEntry.entity_id, func.min(AuditEntry.at))
                .where(AuditEntry.entity_type == "invoice", AuditEntry.action == WRITE_OFF_ACTION,
                       AuditEntry.entity_id.in_(ids[start:start + 500]))
                .group_by(AuditEntry.entity_id))
        for invoice_id, at in session.execute(stmt):
            if invoice_id is not None and at is not None:
                out[int(invoice_id)] = local_date(_as_datetime(at))
    return out


def _as_datetime(value: object) -> dt.datetime:
    # func.min() over the column comes back as the stored text on SQLite.
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value))


def _paid_until(as_of: dt.date, client_id: int | None):  # type: ignore[no-untyped-def]
    """Per invoice: payments applied, received on or before `as_of`, less refunds made by then
    (one grouped pass over payments and refunds)."""
    paid = (select(Payment.invoice_id.label("invoice_id"), Payment.applied_cents.label("cents"))
            .where(Payment.invoice_id.is_not(None), Payment.received_on <= as_of))
    refunded = (select(Refund.invoice_id.label("invoice_id"), (-Refund.amount_cents).label("cents"))
                .where(Refund.invoice_id.is_not(None), Refund.status.in_(REFUND_APPLIED_STATUSES),
                       Refund.refunded_on <= as_of))
    if client_id is not None:
        paid = paid.where(Payment.client_id == client_id)
        refunded = refunded.where(Refund.client_id == client_id)
    both = union_all(paid, refunded).subquery("movements")
    return (select(both.c.invoice_id.label("invoice_id"), func.sum(both.c.cents).label("cents"))
            .group_by(both.c.invoice_id).subquery("paid"))


def _credited_until(as_of: dt.date, client_id: int | None):  # type: ignore[no-untyped-def]
    """Per invoice: what credit notes issued on or before `as_of` took off it."""
    note, applied = credit_note_to_invoice_sql()
    stmt = (select(note.credit_for_invoice_id.label("invoice_id"), func.sum(applied).label("cents"))
            .where(note.kind == InvoiceKind.CREDIT_NOTE, note.issue_date <= as_of,
                   note.credit_for_invoice_id.is_not(None)))
    if client_id is not None:
        stmt = stmt.where(note.client_id == client_id)
    return stmt.group_by(note.credit_for_invoice_id).subquery("credited")


def open_items(session: Session, as_of: dt.date, client_id: int | None = None) -> list[OpenItem]:
    """Invoices with a balance as of the end of `as_of`, oldest due date first."""
    paid, credited = _paid_until(as_of, client_id), _credited_until(as_of, client_id)
    balance = (Invoice.total_cents - Invoice.credit_applied_cents - func.coalesce(paid.c.cents, 0)
               - func.coalesce(credited.c.cents, 0))
    inner = (select(Invoice.id, Invoice.number, Invoice.client_id, Invoice.currency, Invoice.title,
                    Invoice.issue_date, Invoice.due_date, Invoice.total_cents, Invoice.status,
                    balance.label("balance"))
             .outerjoin(paid, paid.c.invoice_id == Invoice.id)
             .outerjoin(credited, credited.c.invoice_id == Invoice.id)
             .where(Invoice.kind == InvoiceKind.INVOICE, Invoice.status.in_(_ISSUED),
                    Invoice.issue_date <= as_of, Invoice.total_cents > 0))
    if client_id is not None:
        inner = inner.where(Invoice.client_id == client_id)
    rows = inner.subquery("owed")
    stmt = (select(rows, Client.legal_name).join(Client, Client.id == rows.c.client_id)
            .where(rows.c.balance > 0)
            .order_by(rows.c.due_date, rows.c.issue_date, rows.c.id))
    found = session.execute(stmt).all()
    # Only an invoice no longer open can have been written off; look those few up.
    written_off = write_off_dates(session, [r.id for r in found if r.status is not InvoiceStatus.OPEN])
    items = []
    for r in found:
        off = written_off.get(r.id)
        if off is not None and off <= as_of:
            continue  # written off by then: no longer owed
        due = r.due_date or r.issue_date
        items.append(OpenItem(r.id, r.number or "", r.client_id, r.legal_name, r.currency, r.title or "",
                              r.issue_date, due, int(r.total_cents), int(r.balance), (as_of - due).days))
    return items


# --- totals -------------------------------------------------------------------------

class MixedCurrencyError(ValueError):
    """Amounts in different currencies were about to be added up."""


@dataclass(frozen=True)
class AgingTotals:
    currency: str
    buckets: tuple[int, int, int, int, int]  # cents, in the order of BUCKETS
    count: int

    @property
    def total_cents(self) -> int:
        return sum(self.buckets)

    def get(self, key: str) -> int:
        return self.buckets[BUCKET_KEYS.index(key)]

    def as_dict(self) -> dict[str, int]:
        return dict(zip(BUCKET_KEYS, self.buckets, strict=True))


def bucket_totals(items: Iterable[OpenItem], currency: str | None = None) -> AgingTotals:
    """Balances summed per bucket.  All items must share one currency (house rule 4)."""
    sums = [0, 0, 0, 0, 0]
    count = 0
    for item in items:
        if currency is None:
            currency = item.currency
        elif item.currency != currency:
            raise MixedCurrencyError(f"{item.number} is in {item.currency}, not {currency}; "
                                     "age each currency separately (by_currency)")
        sums[bucket_index(item.days_past_due)] += item.balance_cents
        count += 1
    return AgingTotals(currency or "", (sums[0], sums[1], sums[2], sums[3], sums[4]), count)


def by_currency(items: Iterable[OpenItem]) -> dict[str, list[OpenItem]]:
    out: dict[str, list[OpenItem]] = {}
    for item in items:
        out.setdefault(item.currency, []).append(item)
    return out


def totals_by_client(items: Iterable[OpenItem]) -> dict[int, AgingTotals]:
    """Per client (a client bills in one currency): the rows of the A/R aging report."""
    grouped: dict[int, list[OpenItem]] = {}
    for item in items:
        grouped.setdefault(item.client_id, []).append(item)
    return {cid: bucket_totals(rows) for cid, rows in grouped.items()}


# --- client credit ------------------------------------------------------------------

def credit_entry_date_sql():  # type: ignore[no-untyped-def]
    """The day a client_credits entry took effect (see the module docstring); NULL for a kind not known here."""
    return case((ClientCredit.reason == CreditReason.OVERPAYMENT, Payment.received_on),
                else_=Invoice.issue_date)


def credit_entries_stmt():  # type: ignore[no-untyped-def]
    """client_credits with the day each took effect, leaving out credit used by, and given back from,
    voided invoices (it nets to nothing)."""
    day = credit_entry_date_sql()
    voided_use = and_(Invoice.status == InvoiceStatus.VOID,
                      ClientCredit.reason.in_([CreditReason.APPLIED, CreditReason.RETURNED]))
    return (select(ClientCredit.id, ClientCredit.client_id, ClientCredit.reason, ClientCredit.amount_cents,
                   ClientCredit.invoice_id, ClientCredit.payment_id, ClientCredit.memo,
                   day.label("day"), ClientCredit.created_at)
            .outerjoin(Payment, Payment.id == ClientCredit.payment_id)
            .outerjoin(Invoice, Invoice.id == ClientCredit.invoice_id)
            .where(~func.coalesce(voided_use, False)))


def credit_as_of(session: Session, as_of: dt.date, client_id: int | None = None) -> dict[int, int]:
    """Client credit per client at the end of `as_of` (clients with none are left out)."""
    entries = credit_entries_stmt().subquery()
    stmt = (select(entries.c.client_id, func.sum(entries.c.amount_cents))
            .where(entries.c.day <= as_of).group_by(entries.c.client_id))
    undated = select(entries.c.client_id, entries.c.amount_cents, entries.c.created_at).where(entries.c.day.is_(None))
    if client_id is not None:
        stmt = stmt.where(entries.c.client_id == client_id)
        undated = undated.where(entries.c.client_id == client_id)
    out = {int(cid): int(cents) for cid, cents in session.execute(stmt)}
    # A kind of entry this module does not know the cause of: dated by when it was recorded.
    for cid, cents, created in session.execute(undated):
        if created is not None and local_date(_as_datetime(created)) <= as_of:
            out[int(cid)] = out.get(int(cid), 0) + int(cents)
    return {cid: cents for cid, cents in out.items() if cents}


def receivable_balance(session: Session, as_of: dt.date, client_id: int) -> int:
    """What the client owed, net, at the end of `as_of`: open balances less client credit."""
    owed = sum(item.balance_cents for item in open_items(session, as_of, client_id))
    return owed - credit_as_of(session, as_of, client_id).get(client_id, 0)


def gross_balance(session: Session, invoice_id: int, as_of: dt.date) -> int:
    """An invoice's balance as of `as_of`, written off or not (what a write-off that day wrote off)."""
    balance = Invoice.total_cents - Invoice.credit_applied_cents - _paid_by(as_of) - _credited_by(as_of)
    return int(session.scalar(select(balance).where(Invoice.id == invoice_id)) or 0)
