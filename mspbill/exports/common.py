"""What every accountant export shares: the date range, the data in it (frozen snapshots read in one
session), the summary said to the person, and the cell and file helpers (formula-safe text, amounts in
the currency's minor units, UTF-8 CSV with a BOM, ZIP files whose bytes depend on the content only).

The range is inclusive at both ends: invoices and credit notes by their issue date, payments by the day
they were received, refunds by the day the money went back.  Drafts are never exported (no number, no
date).  Everything is sorted the same way every time -- invoices by issue date, then credit notes after
invoices of the same day, then number; lines in their printed order; payments by day, then payments
before refunds, then id -- and nothing says when the file was made, so the same range exported twice
gives byte-identical files (tests/test_exports_golden.py checks it).

Amounts in different currencies are never added (house rule 4): totals are per currency.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import unicodedata
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mspbill.agreements import parse_date
from mspbill.csv_cells import formula_safe
from mspbill.db.models import (
    QUANTITY_SCALE,
    REFUND_APPLIED_STATUSES,
    Client,
    CompanyProfile,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
    Payment,
    Refund,
)
from mspbill.money import (
    format_amount,
    format_decimal,
    from_minor,
    line_amount_cents,
    minor_units,
)
from mspbill.periods import Month
from mspbill.validation import Issue, ValidationError

# --- the formats ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportFormat:
    key: str            # the CLI's word: `mspbill export KEY`
    label: str          # the picker's name
    description: str    # one line under the picker
    suffix: str         # of the file written (".csv", ".iif", ".zip")
    stem: str           # of the suggested file name

    def filename(self, start: dt.date, end: dt.date) -> str:
        return f"mspbill-{self.stem}-{start.isoformat()}_{end.isoformat()}{self.suffix}"


QBO = ExportFormat("qbo", "QuickBooks Online (invoices CSV)",
                   "Invoices for QuickBooks Online's Import invoices: one row per line, in one currency; "
                   "no payments or credit notes (its import takes neither).", ".csv", "qbo")
IIF = ExportFormat("quickbooks", "QuickBooks Desktop (IIF)",
                   "Invoices, credit memos and payments for QuickBooks Desktop (File → Utilities → Import → "
                   "IIF Files), in one currency.", ".iif", "quickbooks")
XERO = ExportFormat("xero", "Xero (ZIP of CSV files)",
                    "A ZIP holding Xero's sales invoice import CSV, the credit notes in the same template, and "
                    "the payments as bank statement CSVs (one per currency).", ".zip", "xero")
PLAIN = ExportFormat("csv", "Plain CSV (ZIP: invoices, lines, payments)",
                     "A ZIP of three spreadsheets: every issued invoice and credit note (voided ones too, with "
                     "their status), their lines, and the payments and refunds.", ".zip", "csv")

FORMATS: dict[str, ExportFormat] = {f.key: f for f in (QBO, IIF, XERO, PLAIN)}


def export_format(key: str) -> ExportFormat:
    try:
        return FORMATS[key]
    except KeyError:
        raise ValidationError([Issue("format", f"“{key}” is not an export format; use one of "
                                               f"{', '.join(FORMATS)}.")]) from None


# --- the range ----------------------------------------------------------------------------------

def last_month(today: dt.date) -> tuple[dt.date, dt.date]:
    """The calendar month before `today`'s: what an accountant asks for at the start of a month."""
    month = Month.of(today).shift(-1)
    return month.first_day, month.last_day


def parse_range(start: str | dt.date | None, end: str | dt.date | None, today: dt.date) -> tuple[dt.date, dt.date]:
    """The inclusive range of days to export; every problem at once (ValidationError)."""
    issues: list[Issue] = []
    first = parse_date(start, "from", "first day (--from)", issues, required=True)
    last = parse_date(end, "to", "last day (--to)", issues, required=True)
    if first is not None and first > today:
        issues.append(Issue("from", f"The first day {first.isoformat()} is in the future; nothing has been "
                                    f"issued or paid after today ({today.isoformat()})."))
    if last is not None and last > today:
        issues.append(Issue("to", f"The last day {last.isoformat()} is in the future; export up to today "
                                  f"({today.isoformat()}) and the rest once it has happened, so the file "
                                  "is not taken for the whole period."))
    if first is not None and last is not None and first > last:
        issues.append(Issue("to", f"The first day {first.isoformat()} is after the last day "
                                  f"{last.isoformat()}; swap them."))
    if issues:
        raise ValidationError(issues)
    assert first is not None and last is not None
    return first, last


# --- the data (frozen: safe to hand across threads) ------------------------------------------------

@dataclass(frozen=True)
class ExportLine:
    position: int
    kind: str                   # service, adjustment, discount (the autopay incentive), item, instalment
    description: str
    quantity: Decimal
    unit_price_cents: int
    amount_cents: int
    taxable: bool
    service_start: dt.date | None
    service_end: dt.date | None

    @property
    def is_discount(self) -> bool:
        return self.kind == "discount"

    @property
    def amount_is_quantity_times_price(self) -> bool:
        """Whether amount = round_half_up(quantity × unit price): not so for a prorated line (a part of the
        period: quantity × price × days ÷ period days) nor for any other line whose amount was worked out."""
        return line_amount_cents(self.quantity, self.unit_price_cents) == self.amount_cents


@dataclass(frozen=True)
class BookLine:
    """A line as a books format writes it: quantity × unit price = amount, to the cent."""

    description: str
    quantity: Decimal
    unit_price_cents: int


def book_line(line: ExportLine, currency: str) -> BookLine:
    """QuickBooks and Xero work a line's amount out as quantity × unit price, so a line whose amount is not that
    (prorated, adjusted) goes in as 1 × its amount, the description saying what it was: "Backup (1–15 Oct,
    15/31 days) (4 × 35.00)".  Other lines go in as they are."""
    if line.amount_is_quantity_times_price:
        return BookLine(line.description, line.quantity, line.unit_price_cents)
    description = line.description
    if "×" not in description:  # an adjustment's text already names its quantity and price
        worked = f"{quantity_text(line.quantity)} × {decimal_text(line.unit_price_cents, currency)}"
        if line.kind == "service" and "days" not in description:
            worked += ", prorated"
        description = f"{description} ({worked})".strip()
    return BookLine(description, Decimal(1), line.amount_cents)


@dataclass(frozen=True)
class ExportClient:
    id: int
    name: str
    email: str                  # the first billing address (where invoices go)
    address_line1: str
    address_line2: str
    city: str
    region: str
    postal_code: str
    country: str


@dataclass(frozen=True)
class ExportInvoice:
    """An issued invoice or credit note (kind "credit_note": its amounts are positive, what it credits)."""

    id: int
    kind: str                   # "invoice" or "credit_note"
    number: str
    number_seq: int
    status: str                 # open, paid, void, uncollectible
    client: ExportClient
    issue_date: dt.date
    due_date: dt.date
    currency: str
    title: str
    memo: str
    tax_rate_percent: Decimal
    subtotal_cents: int
    tax_cents: int
    total_cents: int
    credit_applied_cents: int
    paid_cents: int
    credited_cents: int
    credit_for_number: str      # a credit note: the invoice it credits
    status_reason: str
    lines: tuple[ExportLine, ...]

    @property
    def is_credit_note(self) -> bool:
        return self.kind == "credit_note"

    @property
    def is_void(self) -> bool:
        return self.status == "void"

    @property
    def balance_cents(self) -> int:
        return self.total_cents - self.credit_applied_cents - self.paid_cents - self.credited_cents

    @property
    def terms_days(self) -> int:
        return (self.due_date - self.issue_date).days


@dataclass(frozen=True)
class ExportPayment:
    """Money in (kind "payment") or given back (kind "refund"); amounts positive, the kind says which way."""

    id: int
    kind: str
    date: dt.date
    client: ExportClient
    invoice_number: str
    method: str                 # check, card, ...
    method_label: str           # as a client reads it: "Check", "Card", "Bank transfer (ACH)"
    reference: str
    currency: str
    amount_cents: int
    applied_cents: int          # a payment: the part that paid the invoice (the rest became client credit)
    payment_id: int             # a refund: the payment it gives back; a payment: its own id
    status: str                 # a refund: succeeded or pending; a payment: received

    @property
    def is_refund(self) -> bool:
        return self.kind == "refund"

    @property
    def signed_cents(self) -> int:
        return -self.amount_cents if self.is_refund else self.amount_cents


@dataclass(frozen=True)
class ExportData:
    start: dt.date
    end: dt.date
    company_name: str
    company_currency: str
    company_country: str
    invoices: tuple[ExportInvoice, ...]        # invoices and credit notes, in file order
    payments: tuple[ExportPayment, ...]        # payments and refunds, in file order
    drafts: int                                # drafts in the office now: never exported

    @property
    def currencies(self) -> tuple[str, ...]:
        """Every currency of the range, the company's first."""
        found = {i.currency for i in self.invoices} | {p.currency for p in self.payments}
        return tuple(sorted(found, key=lambda c: (c != self.company_currency, c)))


def _client(c: Client) -> ExportClient:
    emails = c.email_list
    return ExportClient(c.id, c.legal_name, emails[0] if emails else "", c.address_line1, c.address_line2, c.city,
                        c.region, c.postal_code, c.country)


def load_export_data(session: Session, start: dt.date, end: dt.date) -> ExportData:
    """Everything issued, received or refunded in [start, end], as frozen snapshots in file order."""
    company = session.get(CompanyProfile, 1)
    in_range = (Invoice.number.is_not(None), Invoice.issue_date.between(start, end))
    rows = list(session.scalars(select(Invoice).where(*in_range)))
    # The lines as plain rows: ten thousand ORM objects would take most of the time.
    lines_of: dict[int, list[ExportLine]] = {}
    for ln in session.execute(
            select(InvoiceLine.invoice_id, InvoiceLine.position, InvoiceLine.kind, InvoiceLine.description,
                   InvoiceLine.quantity_e4, InvoiceLine.unit_price_cents, InvoiceLine.amount_cents,
                   InvoiceLine.taxable, InvoiceLine.service_start, InvoiceLine.service_end)
            .where(InvoiceLine.invoice_id.in_(select(Invoice.id).where(*in_range)))
            .order_by(InvoiceLine.invoice_id, InvoiceLine.position, InvoiceLine.id)):
        lines_of.setdefault(ln.invoice_id, []).append(ExportLine(
            ln.position, ln.kind.value, ln.description, Decimal(ln.quantity_e4) / QUANTITY_SCALE,
            ln.unit_price_cents, ln.amount_cents, ln.taxable, ln.service_start, ln.service_end))
    payment_rows = list(session.execute(
        select(Payment, Invoice.number).outerjoin(Invoice, Invoice.id == Payment.invoice_id)
        .where(Payment.received_on.between(start, end))).all())
    refund_rows = list(session.execute(
        select(Refund, Payment, Invoice.number).join(Payment, Payment.id == Refund.payment_id)
        .outerjoin(Invoice, Invoice.id == Payment.invoice_id)
        .where(Refund.status.in_(REFUND_APPLIED_STATUSES), Refund.refunded_on.between(start, end))).all())
    # Every client named, read at once (one query per 500, not one per client).
    wanted = sorted({i.client_id for i in rows} | {p.client_id for p, _n in payment_rows}
                    | {r.client_id for r, _p, _n in refund_rows})
    clients: dict[int, ExportClient] = {}
    for chunk_start in range(0, len(wanted), 500):
        for c in session.scalars(select(Client).where(Client.id.in_(wanted[chunk_start:chunk_start + 500]))):
            clients[c.id] = _client(c)

    def client_of(client_id: int) -> ExportClient:
        return clients[client_id]

    credited_ids = {inv.credit_for_invoice_id for inv in rows if inv.credit_for_invoice_id is not None}
    numbers: dict[int, str | None] = {
        row.id: row.number for row in session.execute(select(Invoice.id, Invoice.number)
                                                      .where(Invoice.id.in_(credited_ids)))} if credited_ids else {}
    invoices = []
    for inv in rows:
        assert inv.number is not None and inv.issue_date is not None
        lines = tuple(lines_of.get(inv.id, ()))
        invoices.append(ExportInvoice(
            inv.id, inv.kind.value, inv.number, inv.number_seq or 0, inv.status.value, client_of(inv.client_id),
            inv.issue_date, inv.due_date or inv.issue_date, inv.currency, inv.title, inv.memo, inv.tax_rate_percent,
            inv.subtotal_cents, inv.tax_cents, inv.total_cents, inv.credit_applied_cents, inv.paid_cents,
            inv.credited_cents, numbers.get(inv.credit_for_invoice_id or 0, "") or "", inv.status_reason, lines))
    invoices.sort(key=lambda i: (i.issue_date, i.kind != InvoiceKind.INVOICE.value, i.number_seq, i.number))

    payments: list[ExportPayment] = []
    for p, number in payment_rows:
        payments.append(ExportPayment(p.id, "payment", p.received_on, client_of(p.client_id), number or "",
                                      p.method.value, p.method.client_label, p.reference, p.currency,
                                      p.amount_cents, p.applied_cents, p.id, "received"))
    for r, p, number in refund_rows:
        assert r.refunded_on is not None
        payments.append(ExportPayment(r.id, "refund", r.refunded_on, client_of(r.client_id), number or "",
                                      p.method.value, p.method.client_label, p.reference, r.currency,
                                      r.amount_cents, 0, p.id, r.status.value))
    payments.sort(key=lambda p: (p.date, p.is_refund, p.id))
    drafts = int(session.scalar(select(func.count()).select_from(Invoice)
                                .where(Invoice.status == InvoiceStatus.DRAFT)) or 0)
    return ExportData(start, end, company.name if company else "", company.currency if company else "USD",
                      company.country if company else "", tuple(invoices), tuple(payments), drafts)


def check_currency(session: Session, currency: str) -> None:
    """A sentence (ValidationError) when the office has never used `currency`: no client, invoice or payment
    in it (a file of it would hold the headers only, and look like an empty month).  A currency the office
    uses but has nothing in for the range is fine: that file is rightly empty."""
    company = session.get(CompanyProfile, 1)
    own = company.currency if company else "USD"
    used = {own}
    for model in (Client, Invoice, Payment):
        used.update(c for c in session.scalars(select(model.currency).distinct()) if c)
    if currency in used:
        return
    names = sorted(used, key=lambda c: (c != own, c))
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    raise ValidationError([Issue("currency", f"The office has no clients, invoices or payments in {currency}; "
                                             f"it uses {listed}.")])


# --- options --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExportOptions:
    """What the accountant's books call things; the defaults are the usual names of a new company file."""

    # QuickBooks Online and Desktop take one currency per file (the company's unless named).
    currency: str | None = None
    # "mdy" (MM/DD/YYYY) or "dmy" (DD/MM/YYYY); None: the format's own default.
    date_order: str | None = None
    # QuickBooks (both): the product/service item on each line.
    item: str = "Services"
    # QuickBooks Desktop accounts.
    ar_account: str = "Accounts Receivable"
    income_account: str = "Services"
    tax_account: str = "Sales Tax Payable"
    deposit_account: str = "Undeposited Funds"
    # Xero: the revenue account code and the tax rates' display names.
    account_code: str = "200"
    tax_type: str = "Tax on Sales"
    no_tax_type: str = "Tax Exempt"


# --- the summary ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class CurrencyTotals:
    currency: str
    invoice_count: int = 0
    invoiced_cents: int = 0
    credit_note_count: int = 0
    credited_cents: int = 0
    payment_count: int = 0
    received_cents: int = 0
    refund_count: int = 0
    refunded_cents: int = 0

    def text(self) -> str:
        """"USD: invoiced $1.00, received $0.50" ("" when nothing happened in this currency)."""
        parts = [f"{verb} {format_amount(cents, self.currency)}" for verb, count, cents in (
            ("invoiced", self.invoice_count, self.invoiced_cents),
            ("credited", self.credit_note_count, self.credited_cents),
            ("received", self.payment_count, self.received_cents),
            ("refunded", self.refund_count, self.refunded_cents)) if count]
        return f"{self.currency}: {', '.join(parts)}" if parts else ""

    def as_json(self) -> dict[str, Any]:
        cur = self.currency
        return {"currency": cur, "invoices": self.invoice_count, "invoiced": decimal_text(self.invoiced_cents, cur),
                "credit_notes": self.credit_note_count, "credited": decimal_text(self.credited_cents, cur),
                "payments": self.payment_count, "received": decimal_text(self.received_cents, cur),
                "refunds": self.refund_count, "refunded": decimal_text(self.refunded_cents, cur)}


@dataclass(frozen=True)
class ExportSummary:
    format_key: str
    format_label: str
    start: dt.date
    end: dt.date
    filename: str                    # the suggested file name
    entries: tuple[str, ...]         # the files inside a ZIP (empty for a single file)
    invoice_count: int
    credit_note_count: int
    line_count: int
    payment_count: int
    refund_count: int
    totals: tuple[CurrencyTotals, ...]
    left_out: tuple[str, ...]        # sentences: what is not in the file, and why
    notes: tuple[str, ...]           # sentences: how to import it, what to check
    currencies_in_range: tuple[str, ...]
    has_payments: bool               # the format carries payments at all

    @property
    def nothing_issued(self) -> bool:
        return not self.invoice_count and not self.credit_note_count

    def headline(self) -> str:
        what = [_count(self.invoice_count, "invoice")]
        if self.credit_note_count:
            what.append(_count(self.credit_note_count, "credit note"))
        text = f"{', '.join(what)} ({_count(self.line_count, 'line')})"
        if self.has_payments:
            text += f", {_count(self.payment_count, 'payment')}"
            if self.refund_count:
                text += f", {_count(self.refund_count, 'refund')}"
        return text

    def text_lines(self) -> list[str]:
        """The summary as a person reads it (the CLI prints it; the panel shows it)."""
        out = [f"{self.format_label}, {self.start.isoformat()} to {self.end.isoformat()}: {self.headline()}."]
        if self.nothing_issued:
            out.append("There are no invoices in that range" + (" (the file holds the headers only)."
                                                                if not self.payment_count else "."))
        out.extend(f"{t.text()}." for t in self.totals if t.text())
        if self.entries:
            out.append(f"Files in the ZIP: {', '.join(self.entries)}.")
        out.extend(f"Left out: {s}" for s in self.left_out)
        out.extend(self.notes)
        return out

    def as_json(self) -> dict[str, Any]:
        return {"format": self.format_key, "from": self.start.isoformat(), "to": self.end.isoformat(),
                "filename": self.filename, "entries": list(self.entries), "invoices": self.invoice_count,
                "credit_notes": self.credit_note_count, "lines": self.line_count, "payments": self.payment_count,
                "refunds": self.refund_count, "totals": [t.as_json() for t in self.totals],
                "left_out": list(self.left_out), "notes": list(self.notes),
                "currencies_in_range": list(self.currencies_in_range), "empty": self.nothing_issued}


@dataclass(frozen=True)
class ExportResult:
    data: bytes
    summary: ExportSummary


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def count_text(n: int, noun: str) -> str:
    return _count(n, noun)


def numbers_text(invoices: Sequence[ExportInvoice], limit: int = 5) -> str:
    """"INV-000004, INV-000009 and 3 more" for a sentence."""
    numbers = [i.number for i in invoices]
    if len(numbers) <= limit:
        return ", ".join(numbers)
    return f"{', '.join(numbers[:limit])} and {len(numbers) - limit} more"


@dataclass
class SummaryBuilder:
    """Counts what a format put in its file, per currency, and collects the sentences."""

    fmt: ExportFormat
    data: ExportData
    has_payments: bool
    entries: tuple[str, ...] = ()
    left_out: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    _totals: dict[str, dict[str, int]] = field(default_factory=dict)
    invoice_count: int = 0
    credit_note_count: int = 0
    line_count: int = 0
    payment_count: int = 0
    refund_count: int = 0

    def _bucket(self, currency: str) -> dict[str, int]:
        return self._totals.setdefault(currency, {})

    def _add(self, currency: str, key: str, cents: int) -> None:
        bucket = self._bucket(currency)
        bucket[key] = bucket.get(key, 0) + cents
        bucket[key + "_n"] = bucket.get(key + "_n", 0) + 1

    def invoice(self, inv: ExportInvoice, lines: int | None = None) -> None:
        self.line_count += len(inv.lines) if lines is None else lines
        if inv.is_credit_note:
            self.credit_note_count += 1
            self._add(inv.currency, "credited", inv.total_cents)
        else:
            self.invoice_count += 1
            self._add(inv.currency, "invoiced", inv.total_cents)

    def payment(self, p: ExportPayment) -> None:
        if p.is_refund:
            self.refund_count += 1
            self._add(p.currency, "refunded", p.amount_cents)
        else:
            self.payment_count += 1
            self._add(p.currency, "received", p.amount_cents)

    def build(self) -> ExportSummary:
        order = {c: n for n, c in enumerate(self.data.currencies)}
        totals = []
        for cur in sorted(self._totals, key=lambda c: (order.get(c, len(order)), c)):
            b = self._totals[cur]
            totals.append(CurrencyTotals(cur, b.get("invoiced_n", 0), b.get("invoiced", 0), b.get("credited_n", 0),
                                         b.get("credited", 0), b.get("received_n", 0), b.get("received", 0),
                                         b.get("refunded_n", 0), b.get("refunded", 0)))
        if self.data.drafts:
            self.left_out.append(f"{_count(self.data.drafts, 'draft')} in the office: drafts are never exported "
                                 "(they have no number or date until issued).")
        return ExportSummary(self.fmt.key, self.fmt.label, self.data.start, self.data.end,
                             self.fmt.filename(self.data.start, self.data.end), self.entries, self.invoice_count,
                             self.credit_note_count, self.line_count, self.payment_count, self.refund_count,
                             tuple(totals), tuple(self.left_out), tuple(self.notes), self.data.currencies,
                             self.has_payments)


def single_currency(data: ExportData, options: ExportOptions, builder: SummaryBuilder, what: str
                    ) -> tuple[str, list[ExportInvoice], list[ExportPayment]]:
    """For a format without a currency column: the invoices and payments in one currency (the company's unless
    the options name one); the others are left out with a sentence saying how to get them."""
    currency = (options.currency or data.company_currency).upper()
    invoices = [i for i in data.invoices if i.currency == currency]
    payments = [p for p in data.payments if p.currency == currency]
    others = [c for c in data.currencies if c != currency]
    for cur in others:
        n_inv = sum(1 for i in data.invoices if i.currency == cur)
        n_pay = sum(1 for p in data.payments if p.currency == cur)
        parts = []
        if n_inv:
            parts.append(f"{n_inv:,} invoice{'' if n_inv == 1 else 's'} or credit note{'' if n_inv == 1 else 's'}")
        if n_pay:
            parts.append(f"{n_pay:,} payment{'' if n_pay == 1 else 's'} or refund{'' if n_pay == 1 else 's'}")
        builder.left_out.append(f"{' and '.join(parts)} in {cur}: {what} has no currency column, so a file holds "
                                f"one currency ({currency} here). Export them into their own file with "
                                f"--currency {cur} (or the currency picker).")
    return currency, invoices, payments


# --- cells and files --------------------------------------------------------------------------------

def one_line(value: str) -> str:
    """Text on one line: tabs and line breaks become spaces (they break IIF rows and trip importers)."""
    return " ".join((value or "").replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ").split("\n")).strip()


def text_cell(value: str) -> str:
    """A cell of text people typed: one line, and inert in a spreadsheet (mspbill.csv_cells)."""
    return formula_safe(one_line(value))


def decimal_text(cents: int, currency: str) -> str:
    """An amount as a plain number with the currency's minor units: 1250 USD -> "12.50", -500 -> "-5.00",
    1250 JPY -> "1250" (no symbol, no thousands separator: what importers read)."""
    places = minor_units(currency)
    return f"{from_minor(cents, currency):.{places}f}"


def quantity_text(quantity: Decimal) -> str:
    return format_decimal(quantity)


def percent_text(rate: Decimal) -> str:
    return format_decimal(rate) + "%"


def mdy(day: dt.date | None) -> str:
    return "" if day is None else f"{day.month:02d}/{day.day:02d}/{day.year:04d}"


def dmy(day: dt.date | None) -> str:
    return "" if day is None else f"{day.day:02d}/{day.month:02d}/{day.year:04d}"


def iso(day: dt.date | None) -> str:
    return "" if day is None else day.isoformat()


def terms_text(days: int) -> str:
    """The payment terms as QuickBooks names them ("Net 30"; "Due on receipt" for autopay clients)."""
    return "Due on receipt" if days <= 0 else f"Net {days}"


def csv_bytes(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> bytes:
    """UTF-8 with a BOM (Excel then reads non-ASCII names right), CRLF rows, quotes where needed."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return b"\xef\xbb\xbf" + buffer.getvalue().encode("utf-8")


# Every entry of every ZIP mspbill writes has this date: the bytes depend on the content only.
ZIP_ENTRY_DATE = (2000, 1, 1, 0, 0, 0)


def zip_bytes(entries: Sequence[tuple[str, bytes]]) -> bytes:
    """A ZIP of `entries` in the order given, each with the fixed date and ordinary file permissions."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_ENTRY_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3          # Unix, whatever the machine: the same bytes on Windows
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return buffer.getvalue()


# Letters Windows-1252 lacks that Unicode does not decompose to an ASCII base letter.
_LATIN_FALLBACKS = {"Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "Ħ": "H", "ħ": "h", "ı": "i"}


@functools.lru_cache(maxsize=4096)
def to_cp1252(text: str) -> tuple[str, bool]:
    """`text` as Windows-1252 can hold it, and whether anything had to change.

    A character Windows-1252 has stays (é, ñ, ü, €); one it lacks becomes its base letter where there is
    one (ź -> z, Ł -> L), otherwise "?" (CJK, emoji)."""
    try:
        text.encode("cp1252")
        return text, False
    except UnicodeEncodeError:
        pass
    out: list[str] = []
    changed = False
    for ch in text:
        try:
            ch.encode("cp1252")
            out.append(ch)
            continue
        except UnicodeEncodeError:
            pass
        changed = True
        if ch in _LATIN_FALLBACKS:
            replacement = _LATIN_FALLBACKS[ch]
            try:
                replacement.encode("cp1252")
                out.append(replacement)
                continue
            except UnicodeEncodeError:  # pragma: no cover - the table holds cp1252 text
                pass
        base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
        try:
            base.encode("cp1252")
            out.append(base if base else "?")
        except UnicodeEncodeError:
            out.append("?")
    return "".join(out), changed


def cp1252_loses_letters(text: str) -> bool:
    """Whether Windows-1252 would turn some character of `text` into "?" (CJK, Cyrillic, emoji), not just drop
    an accent (ź -> z)."""
    converted, changed = to_cp1252(text)
    return changed and converted.count("?") > text.count("?")
