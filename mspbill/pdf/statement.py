"""The client statement of account: opening balance, activity, closing balance,
open invoices and aging, for a client and a date range.

The balance it runs is what the client owes, net: open invoice balances less
client credit (mspbill.aging has the definitions).  Each event moves it by:

    invoice issued                     + its total (a negative adjustment invoice: −, it is credit)
    payment received                   − the amount received (an overpayment's excess is credit)
    credit note issued                 − its total (off the invoice, the rest to credit)
    invoice written off                − what it still owed that day
    payment or credit note applied to  + what it took off the written-off balance (the write-off
      an invoice already written off     is taken back by that much: only the rest moves the balance)

Credit applied to an invoice at issue moves nothing (owed goes up, credit
down by the same).  Voided invoices leave the statement as if never issued.
The opening balance is the net position at the end of the day before the
range, the closing balance at the end of its last day; the tests check that
opening + activity = closing = open balances − client credit.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from reportlab.platypus import Flowable, KeepTogether, Table
from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from mspbill import aging
from mspbill.aging import BUCKETS, AgingTotals, OpenItem
from mspbill.clients import get_client
from mspbill.db.models import (
    REFUND_APPLIED_STATUSES,
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    Payment,
    Refund,
)
from mspbill.pdf import layout
from mspbill.pdf.layout import CompanyBlock, fmt_date, fmt_range, gap, money, para
from mspbill.pdf.rendered import RenderedPdf, safe_filename
from mspbill.validation import Issue, ValidationError

log = logging.getLogger(__name__)

MAX_YEARS = 10

# Same-day order: what was billed, then what paid or reduced it.
_ORDER = {"invoice": 0, "payment": 1, "refund": 2, "credit_note": 3, "write_off": 4, "reinstated": 5}


@dataclass(frozen=True)
class Activity:
    day: dt.date
    kind: str  # invoice, payment, credit_note, write_off, reinstated
    description: str
    amount_cents: int   # + raises what the client owes, − lowers it
    balance_cents: int  # running balance after this line
    reference: str = ""  # the invoice or credit note number it concerns


@dataclass(frozen=True)
class StatementDocument:
    client_id: int
    client_name: str
    client_address: tuple[str, ...]
    client_emails: tuple[str, ...]
    autopay: bool
    currency: str
    start: dt.date
    end: dt.date
    today: dt.date
    opening_cents: int
    activity: tuple[Activity, ...]
    closing_cents: int
    open_items: tuple[OpenItem, ...]
    aging: AgingTotals
    credit_cents: int  # unapplied client credit at the end of the range
    company: CompanyBlock

    @property
    def range_text(self) -> str:
        return fmt_range(self.start, self.end)

    @property
    def pdf_title(self) -> str:
        return f"Statement of account — {self.client_name} — {self.range_text}"

    @property
    def filename(self) -> str:
        return safe_filename(f"Statement {self.client_name} {self.start.isoformat()} to {self.end.isoformat()}")

    @property
    def open_total_cents(self) -> int:
        return sum(i.balance_cents for i in self.open_items)

    def total_of(self, kind: str) -> int:
        return sum(a.amount_cents for a in self.activity if a.kind == kind)


# --- reading --------------------------------------------------------------------------

def _check_range(start: dt.date, end: dt.date, today: dt.date) -> None:
    issues = []
    if end > today:
        # Balances, days overdue and aging on a day still to come would be guesses printed as facts.
        issues.append(Issue("end", f"A statement cannot end after today, {today.isoformat()}: it shows what is "
                                   f"owed on its last day, and {end.isoformat()} is still to come. End it on "
                                   f"{today.isoformat()} or earlier."))
    if start > end:
        issues.append(Issue("start", f"The statement starts ({start.isoformat()}) after it ends "
                                     f"({end.isoformat()}); swap the dates."))
    else:
        try:
            limit = start.replace(year=start.year + MAX_YEARS)
        except ValueError:  # 29 February
            limit = start.replace(year=start.year + MAX_YEARS, day=28)
        if end > limit:
            issues.append(Issue("end", f"A statement covers at most {MAX_YEARS} years; end it by "
                                       f"{limit.isoformat()} or start it later."))
    if issues:
        raise ValidationError(issues)


@dataclass(frozen=True)
class _Event:
    day: dt.date
    kind: str
    amount_cents: int
    text: str
    reference: str
    tie: int  # the row id: a stable order within a day

    @property
    def sort_key(self) -> tuple[dt.date, int, int]:
        return self.day, _ORDER[self.kind], self.tie


def _events(session: Session, client_id: int, start: dt.date, end: dt.date) -> list[_Event]:
    """The client's events in the range, unordered."""
    events = []
    invoices = session.execute(
        select(Invoice.id, Invoice.number, Invoice.title, Invoice.issue_date, Invoice.total_cents,
               Invoice.credit_applied_cents, Invoice.currency)
        .where(Invoice.client_id == client_id, Invoice.kind == InvoiceKind.INVOICE,
               Invoice.status.in_([InvoiceStatus.OPEN, InvoiceStatus.PAID, InvoiceStatus.UNCOLLECTIBLE]),
               Invoice.issue_date.between(start, end)))
    for iid, number, title, issued, total, credit_applied, cur in invoices:
        if issued is None:  # issued invoices all have a date; the type does not know
            continue
        text = f"Invoice {number}" + (f" — {title}" if title else "")
        if total < 0:
            text += " (credit from adjustments)"
        elif credit_applied:
            text += f" (account credit of {money(credit_applied, cur)} applied)"
        events.append(_Event(issued, "invoice", int(total), text, number or "", iid))
    payments = session.execute(
        select(Payment.id, Payment.received_on, Payment.amount_cents, Payment.applied_cents, Payment.method,
               Payment.reference, Payment.currency, Invoice.number)
        .outerjoin(Invoice, Invoice.id == Payment.invoice_id)
        .where(Payment.client_id == client_id, Payment.received_on.between(start, end)))
    for pid, received, amount, applied, method, reference, cur, number in payments:
        text = f"Payment — {method.client_label}" + (f" {reference}" if reference else "")
        if number:
            text += f", for {number}"
        if amount > applied:
            text += f" ({money(amount - applied, cur)} kept as account credit)"
        events.append(_Event(received, "payment", -int(amount), text, number or "", pid))
    refunds = session.execute(
        select(Refund.id, Refund.refunded_on, Refund.amount_cents, Refund.currency, Payment.notes, Payment.method,
               Invoice.number)
        .join(Payment, Payment.id == Refund.payment_id)
        .outerjoin(Invoice, Invoice.id == Refund.invoice_id)
        .where(Refund.client_id == client_id, Refund.status.in_(REFUND_APPLIED_STATUSES),
               Refund.refunded_on.between(start, end)))
    for rid, refunded_on, amount, cur, method_text, method, number in refunds:
        if refunded_on is None:
            continue
        text = f"Refund to {method_text or method.client_label}" + (f", on {number}" if number else "")
        events.append(_Event(refunded_on, "refund", int(amount), text, number or "", rid))
    original = aliased(Invoice, name="original")
    notes = session.execute(
        select(Invoice.id, Invoice.number, Invoice.issue_date, Invoice.total_cents, original.number)
        .outerjoin(original, original.id == Invoice.credit_for_invoice_id)
        .where(Invoice.client_id == client_id, Invoice.kind == InvoiceKind.CREDIT_NOTE,
               Invoice.status != InvoiceStatus.DRAFT, Invoice.issue_date.between(start, end)))
    for nid, number, issued, total, for_number in notes:
        if issued is None:
            continue
        text = f"Credit note {number}" + (f" for {for_number}" if for_number else "")
        events.append(_Event(issued, "credit_note", -int(total), text, number or "", nid))
    return events + _write_off_events(session, client_id, start, end)


def _write_off_events(session: Session, client_id: int, start: dt.date, end: dt.date) -> list[_Event]:
    candidates = {iid: (issued, number or "") for iid, issued, number in session.execute(
        select(Invoice.id, Invoice.issue_date, Invoice.number).where(
            Invoice.client_id == client_id, Invoice.kind == InvoiceKind.INVOICE,
            Invoice.status.in_([InvoiceStatus.UNCOLLECTIBLE, InvoiceStatus.PAID]),
            Invoice.issue_date <= end)) if issued is not None}
    if not candidates:
        return []
    out = []
    for iid, written in aging.write_off_dates(session, candidates).items():
        issued, number = candidates[iid]
        day = max(written, issued)  # an invoice issued ahead of its write-off day
        if start <= day <= end:
            owed = aging.gross_balance(session, iid, day)
            if owed > 0:
                out.append(_Event(day, "write_off", -owed, f"{number} written off as uncollectible", number, iid))
        # What arrived for it after the write-off day takes the write-off back by that much.
        paid_after = session.execute(
            select(Payment.id, Payment.received_on, Payment.applied_cents)
            .where(Payment.invoice_id == iid, Payment.received_on > day,
                   Payment.received_on.between(start, end), Payment.applied_cents > 0))
        for pid, received, applied in paid_after:
            out.append(_Event(received, "reinstated", int(applied),
                              f"Written-off {number}: balance paid, write-off reversed", number, pid))
        note, to_invoice = aging.credit_note_to_invoice_sql()
        credited_after = session.execute(
            select(note.id, note.issue_date, note.number, to_invoice)
            .where(note.credit_for_invoice_id == iid, note.kind == InvoiceKind.CREDIT_NOTE,
                   note.issue_date > day, note.issue_date.between(start, end)))
        for nid, issued_on, note_number, cents in credited_after:
            if cents > 0:
                out.append(_Event(issued_on, "reinstated", int(cents),
                                  f"Written-off {number}: credited by {note_number}, write-off reversed",
                                  number, nid))
    return out


def statement_document(session: Session, client_id: int, start: dt.date, end: dt.date,
                       today: dt.date | None = None) -> StatementDocument:
    """Read the client's statement for `start`..`end` (both included); `end` is today at the latest."""
    today = today or dt.date.today()
    _check_range(start, end, today)
    client = get_client(session, client_id)  # NotFoundError for an unknown client
    currency = client.currency
    others = set(session.scalars(select(Invoice.currency).where(
        Invoice.client_id == client_id, Invoice.status != InvoiceStatus.DRAFT,
        Invoice.currency != currency).distinct()))
    if others:
        raise ValidationError([Issue("client_id", f"{client.legal_name} has invoices in "
                                                  f"{', '.join(sorted(others))} as well as {currency}; "
                                                  "a statement adds amounts of one currency only.")])
    opening = aging.receivable_balance(session, start - dt.timedelta(days=1), client_id)
    items = aging.open_items(session, end, client_id)
    credit = aging.credit_as_of(session, end, client_id).get(client_id, 0)
    closing = sum(i.balance_cents for i in items) - credit
    running = opening
    activity = []
    for event in sorted(_events(session, client_id, start, end), key=lambda e: e.sort_key):
        running += event.amount_cents
        activity.append(Activity(event.day, event.kind, event.text, event.amount_cents, running, event.reference))
    if running != closing:
        # Something recorded in a way this module does not know; print the true closing balance.
        log.warning("Statement of client %s %s..%s: activity ends at %s but the closing balance is %s",
                    client_id, start, end, running, closing)
    return StatementDocument(
        client_id=client.id, client_name=client.legal_name,
        client_address=layout.address_lines(client.address_line1, client.address_line2, client.city,
                                            client.region, client.postal_code, client.country),
        client_emails=tuple(client.email_list), autopay=bool(client.autopay), currency=currency,
        start=start, end=end, today=today, opening_cents=opening, activity=tuple(activity), closing_cents=closing,
        open_items=tuple(items), aging=aging.bucket_totals(items, currency), credit_cents=credit,
        company=layout.read_company(session))


# --- layout -------------------------------------------------------------------------

def _title_block(doc: StatementDocument, width: float) -> list[Flowable]:
    s = layout.styles()
    rows = [("Statement date", fmt_date(doc.today)), ("Period", doc.range_text), ("Currency", doc.currency)]
    return [para("Statement", s.title), para("of account", s.subtitle), gap(6),
            layout.key_value_table(rows, width)]


def _client_block(doc: StatementDocument) -> list[Flowable]:
    return layout.party_block("ACCOUNT", doc.client_name, [*doc.client_address, *doc.client_emails])


def _summary_box(doc: StatementDocument, width: float) -> Flowable:
    s = layout.styles()
    if doc.closing_cents < 0:
        label, amount = "Credit balance", money(-doc.closing_cents, doc.currency)
        note = f"In your favour on {fmt_date(doc.end)}"
    else:
        label, amount = "Balance due", money(doc.closing_cents, doc.currency)
        note = f"As of {fmt_date(doc.end)}"
    return layout.boxed([para(label, s.head_right), gap(2), para(amount, s.big_right), gap(2),
                         para(note, s.cell_right)], width)


def _grid(data: list[list[object]], widths: list[float], extra: Sequence[tuple[object, ...]] = ()) -> Table:
    table = Table(data, colWidths=widths, repeatRows=1)
    table.setStyle(layout.table_style([
        ("VALIGN", (0, 0), (-1, -1), "TOP"), ("LINEBELOW", (0, 0), (-1, 0), 0.8, layout.INK),
        ("LINEBELOW", (0, 1), (-1, -1), 0.25, layout.RULE),
        ("TOPPADDING", (0, 0), (-1, -1), 3.5), ("BOTTOMPADDING", (0, 0), (-1, -1), 3.5),
        ("LEFTPADDING", (0, 0), (-1, -1), 4), ("RIGHTPADDING", (0, 0), (-1, -1), 4), *extra]))
    return table


def _activity_table(doc: StatementDocument, width: float) -> Table:
    s = layout.styles()
    cur = doc.currency
    widths = [72, width - 72 - 90 - 95, 90, 95]
    data: list[list[object]] = [[para("DATE", s.head), para("DESCRIPTION", s.head), para("AMOUNT", s.head_right),
                                 para("BALANCE", s.head_right)]]
    data.append([para(fmt_date(doc.start), s.cell), para("Opening balance", s.cell, bold=True), "",
                 para(money(doc.opening_cents, cur), s.cell_right, bold=True)])
    for a in doc.activity:
        data.append([para(fmt_date(a.day), s.cell), para(a.description, s.cell),
                     para(money(a.amount_cents, cur), s.cell_right), para(money(a.balance_cents, cur), s.cell_right)])
    if not doc.activity:
        data.append(["", para("No activity in this period.", s.muted), "", ""])
    data.append([para(fmt_date(doc.end), s.cell), para("Closing balance", s.cell, bold=True), "",
                 para(money(doc.closing_cents, cur), s.cell_right, bold=True)])
    last = len(data) - 1
    return _grid(data, widths, [("BACKGROUND", (0, 1), (-1, 1), layout.SHADE),
                                ("BACKGROUND", (0, last), (-1, last), layout.SHADE),
                                ("LINEABOVE", (0, last), (-1, last), 0.8, layout.INK)])


def _open_items_table(doc: StatementDocument, width: float) -> Flowable:
    s = layout.styles()
    cur = doc.currency
    if not doc.open_items:
        return para(f"No invoices were open on {fmt_date(doc.end)}.", s.body)
    widths = [width - 2 * 68 - 2 * 80 - 58, 68, 68, 80, 80, 58]
    data: list[list[object]] = [[para(h, s.head if i == 0 else s.head_right) for i, h in enumerate(
        ("INVOICE", "ISSUED", "DUE", "TOTAL", "BALANCE", "DAYS OVERDUE"))]]
    for item in doc.open_items:
        label = item.number + (f" — {item.title}" if item.title else "")
        data.append([para(label, s.cell), para(fmt_date(item.issue_date), s.cell_right),
                     para(fmt_date(item.due_date), s.cell_right), para(money(item.total_cents, cur), s.cell_right),
                     para(money(item.balance_cents, cur), s.cell_right),
                     para(str(item.days_overdue) if item.days_overdue else "—", s.cell_right)])
    data.append([para("Total open", s.cell, bold=True), "", "", "",
                 para(money(doc.open_total_cents, cur), s.cell_right, bold=True), ""])
    last = len(data) - 1
    return _grid(data, widths, [("LINEABOVE", (0, last), (-1, last), 0.8, layout.INK)])


def _aging_table(doc: StatementDocument, width: float) -> Table:
    s = layout.styles()
    col = width / (len(BUCKETS) + 1)
    head = [para(b.label.upper(), s.head_right) for b in BUCKETS] + [para("TOTAL", s.head_right)]
    values = [para(money(c, doc.currency), s.cell_right) for c in doc.aging.buckets]
    values.append(para(money(doc.aging.total_cents, doc.currency), s.cell_right, bold=True))
    return _grid([head, values], [col] * (len(BUCKETS) + 1))


def _how_to_pay(doc: StatementDocument) -> tuple[str, str]:
    if doc.closing_cents <= 0:
        return "", ""
    if doc.autopay:
        if any(item.days_overdue for item in doc.open_items):
            text = ("The automatic charges for the past-due invoices above have not gone through; they will be "
                    "tried again.")
            if doc.company.email:
                text += f" To pay another way, or to update the payment method, write to {doc.company.email}."
            return "Payment", text
        return "Payment", ("Open invoices are charged automatically to the payment method on file on their due "
                           "dates; there is nothing for you to do.")
    text = doc.company.payment_instructions.strip()
    if not text:
        text = "Please quote the invoice numbers you are paying with your payment."
        if doc.company.email:
            text += f" Questions about this statement: {doc.company.email}."
    elif "quote" not in text.casefold():  # the office may have said it already
        text += "\nPlease quote the invoice numbers you are paying with your payment."
    return "How to pay", text


def _story(doc: StatementDocument) -> list[Flowable]:
    s = layout.styles()
    width = layout.body_width(doc.company.paper_size)
    story: list[Flowable] = [
        layout.two_columns(layout.company_flowables(doc.company), _title_block(doc, layout.right_column_width(width)), width),
        gap(22),
        layout.two_columns(_client_block(doc), [_summary_box(doc, layout.right_column_width(width))], width),
        gap(20),
        para("ACTIVITY", s.section), _activity_table(doc, width),
        gap(18),
        KeepTogether([para(f"OPEN INVOICES ON {fmt_date(doc.end).upper()}", s.section),
                      _open_items_table(doc, width)]),
        gap(18),
        KeepTogether([para(f"AGING ON {fmt_date(doc.end).upper()} (DAYS PAST DUE)", s.section),
                      _aging_table(doc, width)]),
    ]
    if doc.credit_cents:
        story += [gap(14), para(
            f"Unapplied account credit: {money(doc.credit_cents, doc.currency)}. It is applied to your next "
            "invoice, and is already deducted from the closing balance.", s.body)]
    heading, text = _how_to_pay(doc)
    if heading:
        story += [gap(16), KeepTogether([para(heading.upper(), s.section), para(text, s.body)])]
    return story


def _render(doc: StatementDocument) -> tuple[bytes, int]:
    frame = layout.PageFrame(
        paper=doc.company.paper_size,
        compact_header=(doc.company.name, f"Statement {doc.range_text}", doc.client_name),
        footer_left=" · ".join(x for x in (doc.company.name, f"Statement of account, {doc.range_text}") if x))
    meta = layout.Metadata(title=doc.pdf_title, author=doc.company.name,
                           subject=f"Statement of account from {doc.company.name} to {doc.client_name}, "
                                   f"{doc.range_text}; closing balance {money(doc.closing_cents, doc.currency)}",
                           keywords="Statement")
    return layout.build_pdf(_story(doc), frame, meta)


def render_statement(doc: StatementDocument) -> bytes:
    return _render(doc)[0]


def statement_pdf(session: Session, client_id: int, start: dt.date, end: dt.date, *,
                  today: dt.date | None = None) -> RenderedPdf:
    doc = statement_document(session, client_id, start, end, today)
    data, pages = _render(doc)
    return RenderedPdf(doc.filename, data, doc.pdf_title, pages)
