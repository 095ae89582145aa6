"""The invoice (and credit note) PDF.

`invoice_document` reads everything the page shows into a frozen
InvoiceDocument in one short read; `render_invoice` lays it out with no
database at all, so the UI can render off its session and the benchmark can
time the layout alone.  `invoice_pdf` does both.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from reportlab.platypus import Flowable, KeepTogether, Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from mspbill.db.models import (
    REFUND_APPLIED_STATUSES,
    ClientCredit,
    CreditReason,
    InstalmentPlan,
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    LineKind,
    Payment,
    Refund,
)
from mspbill.invoicing import CREDIT_UNTAXED_SUFFIX, get_invoice
from mspbill.money import format_decimal
from mspbill.payments.manual import MANUAL_METHODS
from mspbill.pdf import layout
from mspbill.pdf.layout import (
    CompanyBlock,
    colored,
    fmt_date,
    fmt_range,
    gap,
    markup,
    money,
    para,
    para_markup,
)
from mspbill.pdf.rendered import RenderedPdf, safe_filename

# A payment came through the processor (card now; issue 5 may add more) unless
# it is of a kind the office records by hand.
_MANUAL_METHODS = frozenset(MANUAL_METHODS)


@dataclass(frozen=True)
class DocLine:
    kind: str  # LineKind value: service, adjustment, discount, item, instalment
    description: str
    quantity: Decimal
    unit_price_cents: int
    amount_cents: int
    taxable: bool


@dataclass(frozen=True)
class DocPayment:
    received_on: dt.date
    method: str        # PaymentMethod value
    method_label: str  # what the client reads: "Check", "Bank transfer (ACH)"
    reference: str
    amount_cents: int   # received
    applied_cents: int  # of which paid this invoice (the rest became client credit)
    by_processor: bool


@dataclass(frozen=True)
class DocRefund:
    refunded_on: dt.date
    method_label: str   # "Visa ending 4242"
    amount_cents: int


@dataclass(frozen=True)
class DocCreditNote:
    number: str
    issue_date: dt.date | None
    total_cents: int
    applied_cents: int  # taken off the invoice's balance (the rest went to client credit)


@dataclass(frozen=True)
class InvoiceDocument:
    """Everything an invoice PDF shows, read at one moment; no ORM objects."""

    invoice_id: int
    kind: str    # "invoice" or "credit_note"
    status: str  # InvoiceStatus value
    number: str | None
    title: str   # the invoice's own title, e.g. "Managed IT — November 2026"
    currency: str
    issue_date: dt.date | None
    due_date: dt.date | None
    terms_days: int
    period_start: dt.date | None
    period_end: dt.date | None
    bill_to_name: str
    bill_to_address: tuple[str, ...]
    bill_to_emails: tuple[str, ...]
    lines: tuple[DocLine, ...]
    tax_rate_percent: Decimal
    subtotal_cents: int
    tax_cents: int
    total_cents: int
    credit_applied_cents: int
    payments: tuple[DocPayment, ...]
    credit_notes: tuple[DocCreditNote, ...]
    balance_cents: int
    memo: str
    status_reason: str
    credit_for_number: str | None  # a credit note: the invoice it credits
    credit_to_account_cents: int   # a credit note: the part that became client credit
    instalment: str | None
    autopay: bool
    # Set by issue 5 to the card or account on file ("Visa ending 4242"); None: not known.
    autopay_method_label: str | None
    company: CompanyBlock
    today: dt.date
    refunds: tuple[DocRefund, ...] = ()
    # Autopay invoices: ready, processing, retrying, approval or needs_method (payments.charges.autopay_state).
    autopay_state: str = "ready"

    # --- derived wording --------------------------------------------------------

    @property
    def is_credit_note(self) -> bool:
        return self.kind == InvoiceKind.CREDIT_NOTE.value

    @property
    def is_draft(self) -> bool:
        return self.status == InvoiceStatus.DRAFT.value

    @property
    def heading(self) -> str:
        return "Credit note" if self.is_credit_note else "Invoice"

    @property
    def display_number(self) -> str:
        return self.number or "Draft — not yet issued"

    @property
    def pdf_title(self) -> str:
        if self.number:
            return f"{self.heading} {self.number} — {self.bill_to_name}"
        return f"Draft {self.heading.lower()} — {self.bill_to_name}"

    @property
    def filename(self) -> str:
        stem = self.number or f"Draft {self.heading.lower()} {self.invoice_id}"
        return safe_filename(f"{stem} {self.bill_to_name}")

    @property
    def terms_label(self) -> str:
        return "Due on receipt" if self.terms_days <= 0 else f"Net {self.terms_days}"

    @property
    def processor_payment(self) -> DocPayment | None:
        """The processor payment that settled the invoice, if one did."""
        for p in reversed(self.payments):
            if p.by_processor and p.applied_cents > 0:
                return p
        return None

    @property
    def days_overdue(self) -> int:
        owing = (InvoiceStatus.OPEN.value, InvoiceStatus.UNCOLLECTIBLE.value)
        if self.status not in owing or self.due_date is None or self.balance_cents <= 0:
            return 0
        return max(0, (self.today - self.due_date).days)


# --- reading --------------------------------------------------------------------------

def invoice_document(session: Session, invoice_id: int, today: dt.date | None = None) -> InvoiceDocument:
    """Read the invoice and all it shows; raises NotFoundError for an unknown id."""
    today = today or dt.date.today()
    inv = get_invoice(session, invoice_id)
    client = inv.client
    bill_to = inv.bill_to or {"name": client.legal_name, "emails": client.email_list,
                              "address": list(layout.address_lines(client.address_line1, client.address_line2,
                                                                   client.city, client.region,
                                                                   client.postal_code, client.country))}
    paid_rows = list(session.scalars(select(Payment).where(Payment.invoice_id == inv.id)
                                     .order_by(Payment.received_on, Payment.id)))
    # A payment through the processor names the card or account it came from ("Visa ending 4242").
    labels = {p.id: (p.notes if p.method.through_processor and p.notes else p.method.client_label)
              for p in paid_rows}
    payments = tuple(
        DocPayment(p.received_on, p.method.value, labels[p.id], p.reference, p.amount_cents, p.applied_cents,
                   p.method not in _MANUAL_METHODS)
        for p in paid_rows)
    refunds = tuple(
        DocRefund(r.refunded_on, labels.get(r.payment_id, "the payment method"), r.amount_cents)
        for r in session.scalars(select(Refund).where(
            Refund.invoice_id == inv.id, Refund.status.in_(REFUND_APPLIED_STATUSES)).order_by(Refund.id))
        if r.refunded_on is not None)
    autopay_label, autopay_kind = None, "ready"
    if client.autopay and inv.kind is InvoiceKind.INVOICE:
        from mspbill.payments.charges import autopay_state

        state = autopay_state(session, inv, today)
        autopay_label, autopay_kind = state.method_label, state.kind
    # What each credit note took off this invoice: its total less what it sent to client credit.
    to_credit = {note_id: int(cents) for note_id, cents in session.execute(
        select(ClientCredit.invoice_id, ClientCredit.amount_cents)
        .join(Invoice, Invoice.id == ClientCredit.invoice_id)
        .where(Invoice.credit_for_invoice_id == inv.id, ClientCredit.reason == CreditReason.CREDIT_NOTE))}
    notes = tuple(
        DocCreditNote(n.number or "", n.issue_date, n.total_cents, n.total_cents - to_credit.get(n.id, 0))
        for n in session.scalars(select(Invoice).where(Invoice.credit_for_invoice_id == inv.id,
                                                       Invoice.kind == InvoiceKind.CREDIT_NOTE)
                                 .order_by(Invoice.issue_date, Invoice.id)))
    credit_for_number = None
    credit_to_account = 0
    if inv.kind is InvoiceKind.CREDIT_NOTE:
        if inv.credit_for_invoice_id is not None:
            original = session.get(Invoice, inv.credit_for_invoice_id)
            credit_for_number = original.number if original else None
        credit_to_account = int(session.scalar(
            select(ClientCredit.amount_cents).where(ClientCredit.invoice_id == inv.id,
                                                    ClientCredit.reason == CreditReason.CREDIT_NOTE)) or 0)
    instalment = None
    if inv.instalment_plan_id is not None and inv.instalment_number is not None:
        plan = session.get(InstalmentPlan, inv.instalment_plan_id)
        if plan is not None:
            instalment = f"Instalment {inv.instalment_number} of {plan.instalments}: {plan.title}"
    if inv.issue_date is not None and inv.due_date is not None:
        terms_days = (inv.due_date - inv.issue_date).days
    else:  # a draft: the terms it will be issued with
        terms_days = 0 if client.autopay else client.payment_terms_days
    owes_nothing = inv.status is InvoiceStatus.VOID or inv.kind is InvoiceKind.CREDIT_NOTE
    return InvoiceDocument(
        invoice_id=inv.id, kind=inv.kind.value, status=inv.status.value, number=inv.number, title=inv.title,
        currency=inv.currency, issue_date=inv.issue_date, due_date=inv.due_date, terms_days=terms_days,
        period_start=inv.period_start, period_end=inv.period_end,
        bill_to_name=str(bill_to.get("name") or client.legal_name),
        bill_to_address=tuple(str(x) for x in bill_to.get("address") or ()),
        bill_to_emails=tuple(str(x) for x in bill_to.get("emails") or ()),
        lines=tuple(DocLine(ln.kind.value, ln.description, ln.quantity, ln.unit_price_cents, ln.amount_cents,
                            ln.taxable) for ln in inv.lines),
        tax_rate_percent=inv.tax_rate_percent, subtotal_cents=inv.subtotal_cents, tax_cents=inv.tax_cents,
        total_cents=inv.total_cents, credit_applied_cents=inv.credit_applied_cents, payments=payments,
        credit_notes=notes, balance_cents=0 if owes_nothing else max(0, inv.balance_cents),
        memo=inv.memo or "", status_reason=inv.status_reason or "", credit_for_number=credit_for_number,
        credit_to_account_cents=credit_to_account, instalment=instalment, autopay=bool(client.autopay),
        autopay_method_label=autopay_label, company=layout.read_company(session), today=today, refunds=refunds,
        autopay_state=autopay_kind)


# --- layout -------------------------------------------------------------------------

def _percent(rate: Decimal) -> str:
    return f"{format_decimal(rate)}%"


def _title_block(doc: InvoiceDocument, width: float) -> list[Flowable]:
    s = layout.styles()
    rows: list[tuple[str, str]] = []
    rows.append(("Number", doc.display_number))
    if doc.credit_for_number:
        rows.append(("Credit for invoice", doc.credit_for_number))
    if doc.issue_date:
        rows.append(("Issue date", fmt_date(doc.issue_date)))
    if not doc.is_credit_note:
        if doc.due_date:
            rows.append(("Due date", fmt_date(doc.due_date)))
        rows.append(("Terms", doc.terms_label))
    if doc.period_start:
        rows.append(("Billing period", fmt_range(doc.period_start, doc.period_end)))
    out: list[Flowable] = [para(doc.heading, s.title), gap(6),
                           layout.key_value_table(rows, width, bold_keys=("Number",))]
    badge = _status_badge(doc)
    if badge:
        out += [gap(6), para_markup([badge], s.cell_right)]
    return out


def _status_badge(doc: InvoiceDocument) -> str:
    if doc.status == InvoiceStatus.VOID.value:
        return colored("VOID", layout.BAD, bold=True)
    if doc.is_credit_note:
        return ""
    if doc.status == InvoiceStatus.PAID.value:
        return colored("PAID", layout.GOOD, bold=True)
    if doc.is_draft:
        return colored("DRAFT", layout.MUTED, bold=True)
    if doc.days_overdue > 0 or doc.status == InvoiceStatus.UNCOLLECTIBLE.value:
        return colored("PAST DUE", layout.BAD, bold=True)
    return ""


def _bill_to_block(doc: InvoiceDocument) -> list[Flowable]:
    return layout.party_block("BILL TO", doc.bill_to_name, [*doc.bill_to_address, *doc.bill_to_emails])


def _summary_box(doc: InvoiceDocument, width: float) -> Flowable:
    s = layout.styles()
    if doc.is_credit_note:
        label, amount = "Total credit", money(doc.total_cents, doc.currency)
        note = f"Credit for invoice {doc.credit_for_number}" if doc.credit_for_number else ""
    elif doc.status == InvoiceStatus.VOID.value:
        label, amount, note = "Balance due", money(0, doc.currency), "This invoice is void; nothing is owed."
    elif doc.status == InvoiceStatus.PAID.value or (doc.balance_cents == 0 and not doc.is_draft):
        label, amount, note = "Balance due", money(0, doc.currency), "Paid in full — thank you."
    else:
        label, amount = "Balance due", money(doc.balance_cents, doc.currency)
        if doc.is_draft:
            note = "Draft: not yet issued"
        elif doc.due_date and doc.days_overdue > 0:
            note = f"Was due {fmt_date(doc.due_date)} ({doc.days_overdue} days overdue)"
        elif doc.due_date:
            note = f"Due {fmt_date(doc.due_date)}"
        else:
            note = ""
    content: list[Flowable] = [para(label, s.head_right), gap(2), para(amount, s.big_right)]
    if note:
        content += [gap(2), para(note, layout.styles().cell_right)]
    return layout.boxed(content, width)


_KIND_TAGS = {LineKind.ADJUSTMENT.value: ("Adjustment", layout.ADJUST),
              LineKind.DISCOUNT.value: ("Discount", layout.GOOD)}


DESCRIPTION_CHUNK = 800  # characters per table row: no row outgrows a page, whatever a description holds


def chunks(text: str, size: int = DESCRIPTION_CHUNK) -> list[str]:
    """`text` cut into pieces of at most `size` characters, at a space where there is one."""
    out: list[str] = []
    rest = text
    while len(rest) > size:
        cut = rest.rfind(" ", size // 2, size)
        cut = cut if cut > 0 else size
        out.append(rest[:cut])
        rest = rest[cut:].lstrip(" ")
    out.append(rest)
    return out


def _says_untaxed(description: str) -> bool:
    """The description already says the line has no tax (a credit note's untaxed part)."""
    return description.rstrip().endswith(("(no tax)", CREDIT_UNTAXED_SUFFIX.strip()))


def _lower_first(label: str) -> str:
    """"Card" → "card", "Bank transfer (ACH)" → "bank transfer (ACH)": mid-sentence, acronyms kept."""
    return label[:1].lower() + label[1:]


def _lines_table(doc: InvoiceDocument, width: float) -> Table:
    s = layout.styles()
    widths = [width - 64 - 85 - 90, 64, 85, 90]
    # Numbers are plain strings (drawn straight, in our font): a Paragraph per cell
    # costs more than the rest of the page.
    data: list[list[object]] = [["DESCRIPTION", "QTY", "UNIT PRICE", "AMOUNT"]]
    style: list[tuple[object, ...]] = [
        *layout.NUMBER_CELLS, ("ALIGN", (1, 0), (-1, -1), "RIGHT"), *layout.head_row(),
        ("LINEBELOW", (0, 0), (-1, 0), 0.8, layout.INK)]
    for ln in doc.lines:
        first = len(data)
        tag = _KIND_TAGS.get(ln.kind)
        pieces = chunks(ln.description)
        for i, piece in enumerate(pieces):
            description = markup(piece)
            if i == 0 and tag:
                description = f"{colored(tag[0].upper(), tag[1], bold=True)}  {description}"
            if i == len(pieces) - 1 and not ln.taxable and doc.tax_cents and not _says_untaxed(ln.description):
                description += f" {colored('(no tax)', layout.MUTED)}"
            if i == 0:
                data.append([layout.Paragraph(description, s.cell), format_decimal(ln.quantity),
                             money(ln.unit_price_cents, doc.currency), money(ln.amount_cents, doc.currency)])
            else:
                data.append([layout.Paragraph(description, s.cell), "", "", ""])
        last = len(data) - 1
        if last > first:  # one line in several rows: no padding or rule between its pieces
            style += [("BOTTOMPADDING", (0, first), (-1, last - 1), 0), ("TOPPADDING", (0, first + 1), (-1, last), 0)]
        if tag:
            style.append(("BACKGROUND", (0, first), (-1, last), layout.SHADE))
        style.append(("LINEBELOW", (0, last), (-1, last), 0.25, layout.RULE))
    if not doc.lines:
        data.append([para("No lines", s.muted), "", "", ""])
    # repeatRows: the column heads on every page.
    table = Table(data, colWidths=widths, repeatRows=1)
    table.setStyle(layout.table_style(style))
    return table


def _totals_table(doc: InvoiceDocument, width: float) -> Table:
    s = layout.styles()
    cur = doc.currency
    rows: list[tuple[str, str, str]] = []  # label, amount, style: "", "strong", "muted", "grand"
    rows.append(("Subtotal", money(doc.subtotal_cents, cur), ""))
    if doc.tax_cents or doc.tax_rate_percent:
        rows.append((f"Tax {_percent(doc.tax_rate_percent)}", money(doc.tax_cents, cur), ""))
    rows.append(("Total credit" if doc.is_credit_note else "Total", money(doc.total_cents, cur), "strong"))
    if doc.is_credit_note:
        applied = doc.total_cents - doc.credit_to_account_cents
        if doc.credit_for_number and applied:
            rows.append((f"Applied to {doc.credit_for_number}", money(applied, cur), "muted"))
        if doc.credit_to_account_cents:
            rows.append(("Added to your account credit", money(doc.credit_to_account_cents, cur), "muted"))
    else:
        if doc.credit_applied_cents:
            rows.append(("Account credit applied", money(-doc.credit_applied_cents, cur), "muted"))
        for p in doc.payments:
            label = f"Payment {fmt_date(p.received_on)} · {p.method_label}"
            if p.reference:
                label += f" · {p.reference}"
            if p.amount_cents != p.applied_cents:
                label += f" (of {money(p.amount_cents, cur)} received; the rest kept as account credit)"
            rows.append((label, money(-p.applied_cents, cur), "muted"))
        for r in doc.refunds:
            rows.append((f"Refund {fmt_date(r.refunded_on)} · to {r.method_label}", money(r.amount_cents, cur),
                         "muted"))
        for n in doc.credit_notes:
            if n.applied_cents:
                rows.append((f"Credit note {n.number} · {fmt_date(n.issue_date)}", money(-n.applied_cents, cur),
                             "muted"))
        if doc.status != InvoiceStatus.VOID.value:
            rows.append(("Balance due", money(doc.balance_cents, cur), "grand"))
    data: list[list[object]] = []
    style: list[tuple[object, ...]] = [*layout.NUMBER_CELLS, ("ALIGN", (1, 0), (1, -1), "RIGHT"),
                                       ("TOPPADDING", (0, 0), (-1, -1), 3), ("BOTTOMPADDING", (0, 0), (-1, -1), 3)]
    for i, (label, amount, kind) in enumerate(rows):
        if kind == "grand":
            data.append([para(label, s.body, bold=True), amount])
            style += [("BACKGROUND", (0, i), (-1, i), layout.SHADE), ("LINEABOVE", (0, i), (-1, i), 1, layout.INK),
                      ("FONTNAME", (1, i), (1, i), layout.BOLD), ("FONTSIZE", (1, i), (1, i), 10),
                      ("TOPPADDING", (0, i), (-1, i), 6), ("BOTTOMPADDING", (0, i), (-1, i), 6)]
        elif kind == "strong":
            data.append([para(label, s.cell, bold=True), amount])
            style += [("LINEABOVE", (0, i), (-1, i), 0.6, layout.RULE), ("FONTNAME", (1, i), (1, i), layout.BOLD)]
        else:
            data.append([para(label, s.muted if kind == "muted" else s.cell), amount])
    table = Table(data, colWidths=[width - 95, 95], hAlign="RIGHT")
    table.setStyle(layout.table_style(style))
    return table


def payment_wording(doc: InvoiceDocument) -> tuple[str, str]:
    """(heading, text) of the payment section; empty heading when there is nothing to say."""
    company = doc.company
    if doc.is_credit_note or doc.status == InvoiceStatus.VOID.value:
        return "", ""
    if doc.autopay:
        paid_by = doc.processor_payment
        if paid_by is not None and (doc.balance_cents == 0 or doc.status == InvoiceStatus.PAID.value):
            by = paid_by.method_label if paid_by.by_processor and " ending " in paid_by.method_label \
                else doc.autopay_method_label or _lower_first(paid_by.method_label)
            text = f"Paid by {by} on {fmt_date(paid_by.received_on)}"
            if paid_by.reference:
                text += f" (reference {paid_by.reference})"
            return "Payment", text + ". Thank you."
        if doc.balance_cents == 0 and not doc.is_draft:
            return "Payment", "Paid in full. Thank you."
        target = doc.autopay_method_label or "the payment method on file"
        if doc.autopay_state == "processing":
            return "Payment", (f"A bank debit from {target} is in progress; it settles within a few business days. "
                               "There is nothing for you to do.")
        if doc.autopay_state == "needs_method":
            lead = (f"The automatic payment from {target} cannot be made." if doc.autopay_method_label
                    else "Automatic payment is not set up yet.")
            ask = f", or write to {company.email} to give us a card or bank account" if company.email else ""
            return "How to pay", f"{lead} Please pay as follows{ask}:\n{_instructions(doc)}"
        if doc.autopay_state == "approval":
            text = (f"This invoice is above the amount we charge automatically; we will confirm with you before "
                    f"charging it to {target}.")
            if company.email:
                text += f" To pay another way, write to {company.email}."
            return "Payment", text
        if (doc.due_date and doc.days_overdue > 0) or doc.autopay_state == "retrying":
            on = f" on {fmt_date(doc.due_date)}" if doc.due_date else ""
            text = f"The automatic charge to {target}{on} has not gone through; it will be tried again."
            if company.email:
                text += f" To pay another way, or to update the payment method, write to {company.email}."
            return "Payment", text
        if doc.due_date:
            return "Payment", (f"Will be charged automatically on {fmt_date(doc.due_date)} to {target}. "
                               "There is nothing for you to do.")
        return "Payment", f"Will be charged automatically when this invoice is issued, to {target}."
    if doc.balance_cents == 0 and not doc.is_draft:
        return "Payment", "Paid in full. Thank you."
    return "How to pay", _instructions(doc)


def _instructions(doc: InvoiceDocument) -> str:
    """The company's payment instructions, with the number to quote."""
    company = doc.company
    instructions = company.payment_instructions.strip()
    if not instructions:
        quote = doc.number or "the invoice number"
        instructions = f"Please quote {quote} with your payment."
        if company.email:
            instructions += f" Questions about this invoice: {company.email}."
    elif doc.number and "quote" not in instructions.casefold():  # the office may have said it already
        instructions += f"\nPlease quote {doc.number} with your payment."
    return instructions


def _story(doc: InvoiceDocument) -> list[Flowable]:
    s = layout.styles()
    width = layout.body_width(doc.company.paper_size)
    story: list[Flowable] = [
        layout.two_columns(layout.company_flowables(doc.company), _title_block(doc, layout.right_column_width(width)), width),
        gap(22),
        layout.two_columns(_bill_to_block(doc), [_summary_box(doc, layout.right_column_width(width))], width),
        gap(18),
    ]
    caption = doc.instalment or doc.title  # an instalment's title only repeats the plan's
    if caption:
        story += [para(caption, s.body, bold=True), gap(6)]
    story += [_lines_table(doc, width), gap(10), _totals_table(doc, width * 0.62)]
    if doc.status == InvoiceStatus.VOID.value:
        reason = "This invoice was voided"
        if doc.status_reason:
            reason += f": {doc.status_reason.rstrip()}"
        if not reason.endswith((".", "!", "?")):
            reason += "."
        story += [gap(14), para(reason + " Nothing is owed on it.", s.body)]
    heading, text = payment_wording(doc)
    if heading:
        story += [gap(16), KeepTogether([para(heading.upper(), s.section), para(text, s.body)])]
    if doc.memo and not doc.is_credit_note:
        story += [gap(14), para("NOTES", s.section), para(doc.memo, s.body)]
    elif doc.is_credit_note and doc.memo:
        story += [gap(14), para("REASON", s.section), para(doc.memo, s.body)]
    return story


def render_invoice(doc: InvoiceDocument) -> bytes:
    """The PDF of `doc`; needs no database."""
    return _render(doc)[0]


def _render(doc: InvoiceDocument) -> tuple[bytes, int]:
    watermark, color = "", layout.RULE
    if doc.is_draft:
        watermark = "DRAFT"
    elif doc.status == InvoiceStatus.VOID.value:
        watermark, color = "VOID", layout.BAD
    number = doc.number or "Draft"
    frame = layout.PageFrame(
        paper=doc.company.paper_size,
        compact_header=(doc.company.name, f"{doc.heading} {number}", doc.bill_to_name),
        footer_left=" · ".join(x for x in (doc.company.name, f"{doc.heading} {number}") if x),
        watermark=watermark, watermark_color=color)
    subject = f"{doc.heading} {number} from {doc.company.name} to {doc.bill_to_name}"
    if not doc.is_credit_note and doc.status != InvoiceStatus.VOID.value:
        subject += f"; balance due {money(doc.balance_cents, doc.currency)}"
    meta = layout.Metadata(title=doc.pdf_title, author=doc.company.name, subject=subject,
                           keywords=" ".join(x for x in (doc.number or "", doc.heading) if x))
    return layout.build_pdf(_story(doc), frame, meta)


def invoice_pdf(session: Session, invoice_id: int, *, today: dt.date | None = None) -> RenderedPdf:
    """The invoice or credit note as a PDF, with its suggested file name."""
    doc = invoice_document(session, invoice_id, today)
    data, pages = _render(doc)
    return RenderedPdf(doc.filename, data, doc.pdf_title, pages)
