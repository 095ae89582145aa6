"""The invoice life cycle: drafts, issue with gapless numbers, void, uncollectible,
credit notes, one-time invoices and instalment plans; lists and details.

Drafts carry no number and may be edited or deleted.  Issuing assigns the next
number from the company's pattern, inside the issuing transaction (the counter
row is updated in place, so two people issuing at once queue on it rather than
share or skip a number), fixes the due date from the client's terms and
freezes the bill-to address.  From then on an invoice is never edited: it is
voided with a reason, written off as uncollectible, or credited by a credit
note (house rule 7).  Every step leaves an audit entry.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, case, func, insert, or_, select, update
from sqlalchemy.orm import Session

from mspbill import audit
from mspbill.agreements import parse_date
from mspbill.clients import check_name, credit_balance, credit_balances
from mspbill.company import format_invoice_number
from mspbill.db.models import (
    QUANTITY_SCALE,
    REFUND_APPLIED_STATUSES,
    TEXT_MAX,
    Agreement,
    AuditEntry,
    Client,
    ClientCredit,
    ClientStatus,
    CompanyProfile,
    CreditReason,
    InstalmentPlan,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
    LineKind,
    Payment,
    Refund,
    utcnow,
)
from mspbill.generation import compute_totals, month_drafts
from mspbill.money import (
    MoneyError,
    format_amount,
    format_decimal,
    from_minor,
    line_amount_cents,
    parse_amount,
    parse_decimal,
)
from mspbill.periods import Month
from mspbill.validation import Issue, NotFoundError, ValidationError

MAX_ITEM_LINES = 200
MAX_QUANTITY = 999_999
MAX_UNIT_PRICE_MINOR = 99_999_999
MAX_INSTALMENTS = 36
REASON_MAX = 500


# --- snapshots ------------------------------------------------------------

@dataclass(frozen=True)
class InvoiceRow:
    id: int
    number: str | None
    kind: str
    status: str
    client_id: int
    client_name: str
    title: str
    period_start: dt.date | None
    issue_date: dt.date | None
    due_date: dt.date | None
    currency: str
    total_cents: int
    balance_cents: int
    overdue_days: int
    # Paid or credited against it (a void is refused then).
    settled_cents: int = 0

    @property
    def display_number(self) -> str:
        return self.number or "Draft"

    @property
    def overdue(self) -> bool:
        return self.overdue_days > 0


@dataclass(frozen=True)
class LineSnapshot:
    kind: str
    description: str
    quantity: Decimal
    unit_price_cents: int
    amount_cents: int
    taxable: bool


@dataclass(frozen=True)
class PaymentSnapshot:
    id: int
    received_on: dt.date
    method: str
    amount_cents: int
    applied_cents: int
    reference: str
    refunded_cents: int = 0   # given back through the processor


@dataclass(frozen=True)
class HistorySnapshot:
    at: dt.datetime
    actor: str
    summary: str


@dataclass(frozen=True)
class InvoiceDetail:
    row: InvoiceRow
    memo: str
    period_end: dt.date | None
    tax_rate_percent: Decimal
    subtotal_cents: int
    tax_cents: int
    credit_applied_cents: int
    paid_cents: int
    credited_cents: int
    status_reason: str
    bill_to: dict[str, Any]
    lines: list[LineSnapshot]
    payments: list[PaymentSnapshot]
    credit_notes: list[InvoiceRow]
    credit_for: str | None
    instalment: str | None
    history: list[HistorySnapshot]
    editable: bool  # a one-time draft: its lines can be changed


def balance_sql():  # type: ignore[no-untyped-def]
    """What an invoice still owes, as SQL (Invoice.balance_cents in the database)."""
    # A void invoice and a credit note owe nothing, whatever their columns say.
    raw = Invoice.total_cents - Invoice.credit_applied_cents - Invoice.paid_cents - Invoice.credited_cents
    return case((Invoice.status == InvoiceStatus.VOID, 0), (Invoice.kind == InvoiceKind.CREDIT_NOTE, 0),
                (raw < 0, 0), else_=raw)


def _row(inv: Invoice, client_name: str, today: dt.date) -> InvoiceRow:
    # As balance_sql: nothing is owed on a void invoice or a credit note.
    balance = (0 if inv.status is InvoiceStatus.VOID or inv.kind is InvoiceKind.CREDIT_NOTE
               else max(0, inv.balance_cents))
    return InvoiceRow(inv.id, inv.number, inv.kind.value, inv.status.value, inv.client_id, client_name, inv.title,
                      inv.period_start, inv.issue_date, inv.due_date, inv.currency, inv.total_cents,
                      balance, _overdue_days(inv.status, inv.due_date, balance, today),
                      inv.paid_cents + inv.credited_cents)


def _overdue_days(status: InvoiceStatus, due: dt.date | None, balance: int, today: dt.date) -> int:
    if status is not InvoiceStatus.OPEN or due is None or balance <= 0:
        return 0
    return max(0, (today - due).days)


def list_invoices(session: Session, *, status: str | None = None, client_id: int | None = None,
                  month: Month | None = None, search: str = "", overdue_only: bool = False,
                  kind: str | None = None, today: dt.date | None = None, limit: int | None = None
                  ) -> list[InvoiceRow]:
    """Invoice rows, newest first.  `month` matches an invoice whose billing
    period covers it or, for one-time invoices, the issue date.  A `status`
    with no `kind` lists invoices only (credit notes are stored as paid)."""
    today = today or dt.date.today()
    balance = balance_sql()
    stmt = (select(Invoice.id, Invoice.number, Invoice.kind, Invoice.status, Invoice.client_id, Client.legal_name,
                   Invoice.title, Invoice.period_start, Invoice.issue_date, Invoice.due_date, Invoice.currency,
                   Invoice.total_cents, balance, Invoice.paid_cents + Invoice.credited_cents)
            .join(Client, Client.id == Invoice.client_id))
    if status:
        if status == "unpaid":
            stmt = stmt.where(Invoice.status == InvoiceStatus.OPEN)
        else:
            stmt = stmt.where(Invoice.status == InvoiceStatus(status))
    if not kind and (status or overdue_only):
        # Credit notes are stored as paid: a status filter means invoices, as on the Invoices screen.
        kind = InvoiceKind.INVOICE.value
    if kind:
        stmt = stmt.where(Invoice.kind == InvoiceKind(kind))
    if client_id is not None:
        stmt = stmt.where(Invoice.client_id == client_id)
    if month is not None:
        first, last = month.first_day, month.last_day
        # A quarterly or annual invoice shows under every month its period covers.
        stmt = stmt.where(or_((Invoice.period_start <= last)
                              & (func.coalesce(Invoice.period_end, Invoice.period_start) >= first),
                              (Invoice.period_start.is_(None) & Invoice.issue_date.between(first, last))))
    if overdue_only:
        stmt = stmt.where(Invoice.status == InvoiceStatus.OPEN, Invoice.due_date < today, balance > 0)
    needle = search.strip()
    if needle:
        like = f"%{needle}%"
        stmt = stmt.where(or_(Client.legal_name.ilike(like), Invoice.number.ilike(like), Invoice.title.ilike(like)))
    stmt = stmt.order_by(Invoice.issue_date.desc().nulls_first(), Invoice.id.desc())
    if limit:
        stmt = stmt.limit(limit)
    rows = []
    for (iid, number, knd, st, cid, cname, title, pstart, issued, due, cur, total, bal,
         settled) in session.execute(stmt):
        rows.append(InvoiceRow(iid, number, knd.value, st.value, cid, cname, title, pstart, issued, due, cur,
                               total, int(bal), _overdue_days(st, due, int(bal), today), int(settled)))
    return rows


def get_invoice(session: Session, invoice_id: int) -> Invoice:
    inv = session.get(Invoice, invoice_id)
    if inv is None:
        raise NotFoundError(f"Invoice {invoice_id} does not exist.")
    return inv


def find_invoice(session: Session, reference: str) -> Invoice:
    """An invoice by its number ("INV-000123", case and spaces ignored)."""
    ref = (reference or "").strip()
    if not ref:
        raise NotFoundError("Give an invoice number, for example INV-000123.")
    inv = session.scalar(select(Invoice).where(func.upper(Invoice.number) == ref.upper()))
    if inv is None:
        raise NotFoundError(f"There is no issued invoice numbered “{ref}”. Drafts get a number when issued.")
    return inv


def invoice_detail(session: Session, invoice_id: int, today: dt.date | None = None) -> InvoiceDetail:
    today = today or dt.date.today()
    inv = get_invoice(session, invoice_id)
    client = inv.client
    payments = session.scalars(select(Payment).where(Payment.invoice_id == inv.id)
                               .order_by(Payment.received_on, Payment.id))
    notes = session.scalars(select(Invoice).where(Invoice.credit_for_invoice_id == inv.id).order_by(Invoice.id))
    refunded = {pid: int(cents) for pid, cents in session.execute(
        select(Refund.payment_id, func.sum(Refund.amount_cents))
        .where(Refund.invoice_id == inv.id, Refund.status.in_(REFUND_APPLIED_STATUSES))
        .group_by(Refund.payment_id))}
    credit_for = None
    if inv.credit_for_invoice_id is not None:
        original = session.get(Invoice, inv.credit_for_invoice_id)
        credit_for = original.number if original else None
    instalment = None
    if inv.instalment_plan_id is not None:
        plan = session.get(InstalmentPlan, inv.instalment_plan_id)
        if plan is not None:
            instalment = f"Instalment {inv.instalment_number} of {plan.instalments}: {plan.title}"
    return InvoiceDetail(
        row=_row(inv, client.legal_name, today), memo=inv.memo, period_end=inv.period_end,
        tax_rate_percent=inv.tax_rate_percent, subtotal_cents=inv.subtotal_cents, tax_cents=inv.tax_cents,
        credit_applied_cents=inv.credit_applied_cents, paid_cents=inv.paid_cents,
        credited_cents=inv.credited_cents, status_reason=inv.status_reason,
        bill_to=inv.bill_to or _bill_to(client),
        lines=[LineSnapshot(ln.kind.value, ln.description, ln.quantity, ln.unit_price_cents, ln.amount_cents,
                            ln.taxable) for ln in inv.lines],
        payments=[PaymentSnapshot(p.id, p.received_on, p.method.label, p.amount_cents, p.applied_cents, p.reference,
                                  refunded.get(p.id, 0)) for p in payments],
        credit_notes=[_row(n, client.legal_name, today) for n in notes],
        credit_for=credit_for, instalment=instalment,
        history=[HistorySnapshot(e.at, e.actor, e.summary) for e in audit.history(session, "invoice", inv.id)],
        editable=(inv.status is InvoiceStatus.DRAFT and inv.agreement_id is None and inv.instalment_plan_id is None
                  and inv.kind is InvoiceKind.INVOICE),
    )


client_credit_balance = credit_balance


def _bill_to(client: Client) -> dict[str, Any]:
    return {"name": client.legal_name, "emails": client.email_list,
            "address": [x for x in (client.address_line1, client.address_line2,
                                    " ".join(p for p in (client.city, client.region, client.postal_code) if p),
                                    client.country) if x]}


# --- one-time invoices ----------------------------------------------------

@dataclass
class ItemDraft:
    description: str = ""
    quantity: str = "1"
    unit_price: str = "0.00"
    taxable: bool = True


@dataclass
class OneTimeDraft:
    client_id: int | None = None
    title: str = ""
    memo: str = ""
    lines: list[ItemDraft] = field(default_factory=list)


def _is_blank(item: ItemDraft) -> bool:
    return not (item.description or "").strip() and (item.unit_price or "").strip() in ("", "0", "0.00")


def validate_one_time(session: Session, draft: OneTimeDraft) -> tuple[dict[str, Any], list[Issue]]:
    issues: list[Issue] = []
    v: dict[str, Any] = {}
    client = session.get(Client, draft.client_id) if draft.client_id is not None else None
    if draft.client_id is None:
        issues.append(Issue("client_id", "Choose the client to invoice."))
    elif client is None:
        issues.append(Issue("client_id", "That client does not exist any more."))
    elif client.status is ClientStatus.ARCHIVED:
        issues.append(Issue("client_id", f"{client.legal_name} is archived; restore the client first."))
    v["client"] = client
    v["title"] = check_name(draft.title, "title", "invoice title (for example “Server upgrade”)", issues)
    memo = (draft.memo or "").strip()
    if len(memo) > TEXT_MAX:
        issues.append(Issue("memo", f"The note is limited to {TEXT_MAX} characters."))
    v["memo"] = memo
    currency = client.currency if client else "USD"
    items = [(i, it) for i, it in enumerate(draft.lines) if not _is_blank(it)]
    if not items:
        issues.append(Issue("lines", "Add at least one line (for example “Firewall appliance”)."))
    if len(items) > MAX_ITEM_LINES:
        issues.append(Issue("lines", f"An invoice has at most {MAX_ITEM_LINES} lines."))
    lines: list[dict[str, Any]] = []
    for i, it in items:
        prefix = f"lines[{i}]"
        desc = check_name(it.description, f"{prefix}.description", "line description", issues, limit=500)
        qty, price = Decimal(1), 0
        try:
            qty = parse_decimal(it.quantity or "1", what="quantity", max_places=4)
            if qty <= 0 or qty > MAX_QUANTITY:
                issues.append(Issue(f"{prefix}.quantity",
                                    f"Line {i + 1}: the quantity is more than zero and at most {MAX_QUANTITY:,}."))
        except MoneyError as exc:
            issues.append(Issue(f"{prefix}.quantity", f"Line {i + 1}: {exc}"))
        try:
            price = parse_amount(it.unit_price, currency, allow_negative=True)
            if abs(price) > MAX_UNIT_PRICE_MINOR:
                issues.append(Issue(f"{prefix}.unit_price", f"Line {i + 1}: the unit price is at most "
                                                            f"{format_amount(MAX_UNIT_PRICE_MINOR, currency)}."))
        except MoneyError as exc:
            issues.append(Issue(f"{prefix}.unit_price", f"Line {i + 1}: {exc}"))
        q_e4 = int(qty * QUANTITY_SCALE)
        amount = line_amount_cents(qty, price)
        lines.append({"description": desc, "quantity_e4": q_e4, "unit_price_cents": price,
                      "amount_cents": amount, "taxable": bool(it.taxable)})
    if lines and not issues and sum(ln["amount_cents"] for ln in lines) <= 0:
        issues.append(Issue("lines", "The invoice total must be more than zero; to give money back, "
                                     "issue a credit note on the invoice instead."))
    v["lines"] = lines
    return v, issues


def _set_lines(inv: Invoice, lines: list[dict[str, Any]], kind: LineKind = LineKind.ITEM) -> None:
    inv.lines = [InvoiceLine(position=i, kind=kind, **ln) for i, ln in enumerate(lines)]
    totals = compute_totals(((ln["amount_cents"], ln["taxable"]) for ln in lines), inv.tax_rate_percent)
    inv.subtotal_cents, inv.tax_cents, inv.total_cents = totals.subtotal_cents, totals.tax_cents, totals.total_cents


def create_one_time_invoice(session: Session, draft: OneTimeDraft) -> Invoice:
    values, issues = validate_one_time(session, draft)
    if issues:
        raise ValidationError(issues)
    client: Client = values["client"]
    inv = Invoice(kind=InvoiceKind.INVOICE, status=InvoiceStatus.DRAFT, client_id=client.id,
                  currency=client.currency, title=values["title"], memo=values["memo"],
                  tax_rate_percent=client.tax_rate_percent, credit_applied_cents=0, paid_cents=0, credited_cents=0)
    _set_lines(inv, values["lines"])
    session.add(inv)
    session.flush()
    audit.record(session, "invoice.created", "invoice", inv.id,
                 f"Created draft one-time invoice “{inv.title}” for {client.legal_name} "
                 f"({format_amount(inv.total_cents, inv.currency)})")
    return inv


def one_time_draft(session: Session, invoice_id: int) -> OneTimeDraft:
    inv = get_invoice(session, invoice_id)
    return OneTimeDraft(inv.client_id, inv.title, inv.memo, [
        ItemDraft(ln.description, format_decimal(ln.quantity), f"{from_minor(ln.unit_price_cents, inv.currency)}",
                  ln.taxable) for ln in inv.lines])


def _require_editable_draft(inv: Invoice) -> None:
    if inv.status is not InvoiceStatus.DRAFT:
        raise ValidationError([Issue("status", f"{inv.number} has been issued and cannot be changed; void it "
                                               "or issue a credit note instead.")])
    if inv.agreement_id is not None or inv.instalment_plan_id is not None:
        raise ValidationError([Issue("status", "This draft was generated; delete it and generate again "
                                               "to change it.")])


def update_one_time_invoice(session: Session, invoice_id: int, draft: OneTimeDraft) -> Invoice:
    inv = get_invoice(session, invoice_id)
    _require_editable_draft(inv)
    values, issues = validate_one_time(session, draft)
    if issues:
        raise ValidationError(issues)
    client: Client = values["client"]
    before = inv.total_cents
    was = _draft_facts(inv, inv.client.legal_name)
    inv.client_id, inv.currency, inv.tax_rate_percent = client.id, client.currency, client.tax_rate_percent
    inv.title, inv.memo = values["title"], values["memo"]
    _set_lines(inv, values["lines"])
    session.flush()
    audit.record(session, "invoice.updated", "invoice", inv.id,
                 f"Edited draft “{inv.title}”: total {format_amount(before, inv.currency)} → "
                 f"{format_amount(inv.total_cents, inv.currency)}",
                 {"changes": audit.diff(was, _draft_facts(inv, client.legal_name))})
    return inv


def _draft_facts(inv: Invoice, client_name: str) -> dict[str, Any]:
    """What the audit entry of an edited draft compares (amounts as text in the invoice's currency)."""
    return {"client": client_name, "title": inv.title, "memo": inv.memo,
            "lines": [f"{ln.description} × {format_decimal(ln.quantity)} @ "
                      f"{format_amount(ln.unit_price_cents, inv.currency)}" + ("" if ln.taxable else " (not taxable)")
                      for ln in inv.lines],
            "total": format_amount(inv.total_cents, inv.currency)}


def delete_draft(session: Session, invoice_id: int) -> None:
    """Drafts have no number, so deleting one leaves no gap; generating again recreates it."""
    inv = get_invoice(session, invoice_id)
    if inv.status is not InvoiceStatus.DRAFT:
        raise ValidationError([Issue("status", f"{inv.number} has been issued; void it instead of deleting it.")])
    # Adjustments this draft carried are owed again: the next run recomputes them.
    for ln in inv.lines:
        if ln.kind is LineKind.ADJUSTMENT and ln.agreement_id is not None and ln.service_start is not None:
            agreement = session.get(Agreement, ln.agreement_id)
            if agreement is not None and (agreement.adjust_from is None or ln.service_start < agreement.adjust_from):
                agreement.adjust_from = ln.service_start
    audit.record(session, "invoice.deleted", "invoice", inv.id,
                 f"Deleted draft “{inv.title}” for {inv.client.legal_name} "
                 f"({format_amount(inv.total_cents, inv.currency)})")
    session.delete(inv)
    session.flush()


def split_into_instalments(session: Session, invoice_id: int, count: int | str,
                           first_month: Month | None = None) -> list[int]:
    """Replace a one-time draft by `count` monthly instalment drafts.

    Instalment k falls due in month first_month + k - 1 and is issued with that
    month's invoices (and, with autopay, charged like any other).  Taxable and
    non-taxable parts, and the original's tax, are split separately; the first
    instalment takes the odd cents, so the instalments add up to the original.
    """
    inv = get_invoice(session, invoice_id)
    _require_editable_draft(inv)
    try:
        n = int(str(count).strip())
    except ValueError:
        raise ValidationError([Issue("instalments", f"“{count}” is not a number of instalments.")]) from None
    if not 2 <= n <= MAX_INSTALMENTS:
        raise ValidationError([Issue("instalments", f"Split into 2 to {MAX_INSTALMENTS} monthly instalments.")])
    first_month = first_month or Month.of(dt.date.today())
    parts = {True: 0, False: 0}
    for ln in inv.lines:
        parts[ln.taxable] += ln.amount_cents
    plan = InstalmentPlan(client_id=inv.client_id, title=inv.title, total_cents=inv.total_cents, instalments=n,
                          first_month=first_month.first_day)
    session.add(plan)
    session.flush()
    ids = []
    for k in range(n):
        month = first_month.shift(k)
        lines = []
        for taxable in (True, False):
            whole = parts[taxable]
            if whole == 0:
                continue
            share = whole // n + (whole - whole // n * n if k == 0 else 0)
            label = f"{inv.title} — instalment {k + 1} of {n}"
            if parts[True] and parts[False]:
                label += " (taxable items)" if taxable else " (non-taxable items)"
            lines.append({"description": label, "quantity_e4": QUANTITY_SCALE, "unit_price_cents": share,
                          "amount_cents": share, "taxable": taxable})
        part = Invoice(kind=InvoiceKind.INVOICE, status=InvoiceStatus.DRAFT, client_id=inv.client_id,
                       currency=inv.currency, title=f"{inv.title} ({k + 1}/{n})", memo=inv.memo,
                       tax_rate_percent=inv.tax_rate_percent, period_start=month.first_day,
                       period_end=month.last_day, instalment_plan_id=plan.id, instalment_number=k + 1,
                       credit_applied_cents=0, paid_cents=0, credited_cents=0)
        _set_lines(part, lines, LineKind.INSTALMENT)
        # The tax was fixed on the sale: each instalment carries its share of the
        # original's tax (odd cents on the first), so the instalments add up to
        # the original to the cent rather than re-rounding tax N times.
        tax_share = inv.tax_cents // n + (inv.tax_cents - inv.tax_cents // n * n if k == 0 else 0)
        part.tax_cents, part.total_cents = tax_share, part.subtotal_cents + tax_share
        session.add(part)
        session.flush()
        ids.append(part.id)
        audit.record(session, "invoice.created", "invoice", part.id,
                     f"Instalment {k + 1} of {n} of “{inv.title}”, due in {month.label} "
                     f"({format_amount(part.total_cents, part.currency)})")
    audit.record(session, "invoice.split", "invoice", inv.id,
                 f"Split draft “{inv.title}” ({format_amount(inv.total_cents, inv.currency)}) into {n} monthly "
                 f"instalments from {first_month.label}", {"instalment_plan_id": plan.id, "invoice_ids": ids})
    session.delete(inv)
    session.flush()
    return ids


# --- issue ----------------------------------------------------------------

def _take_numbers(session: Session, kind: InvoiceKind, count: int) -> tuple[str, int]:
    """Reserve `count` consecutive numbers; returns (pattern, first number).

    The UPDATE takes the row's write lock (SQLite: the database's), so a
    concurrent issuer waits and then continues after our last number.
    """
    counter = (CompanyProfile.next_invoice_number if kind is InvoiceKind.INVOICE
               else CompanyProfile.next_credit_note_number)
    pattern_col = (CompanyProfile.invoice_number_pattern if kind is InvoiceKind.INVOICE
                   else CompanyProfile.credit_note_number_pattern)
    row = session.execute(update(CompanyProfile).where(CompanyProfile.id == 1)
                          .values({counter: counter + count}).returning(counter, pattern_col)
                          .execution_options(synchronize_session=False)).first()
    if row is None:
        raise ValidationError([Issue("company", "Set up your company first (Settings → Company): invoice "
                                                "numbers come from its pattern.")])
    after, pattern = row
    return pattern, after - count


def _due_date(client: Client, issue_date: dt.date) -> dt.date:
    # Autopay clients are charged on issue, so the invoice is due then.
    return issue_date if client.autopay else issue_date + dt.timedelta(days=client.payment_terms_days)


def issue_invoices(session: Session, invoice_ids: list[int], issue_date: dt.date | None = None) -> list[str]:
    """Issue drafts: numbers in the order given, due dates, bill-to, client credit.

    All or nothing: one draft that cannot be issued stops the lot with a message.
    """
    issue_date = issue_date or dt.date.today()
    if not invoice_ids:
        return []
    check_issue_date(session, issue_date)
    invoices: list[Invoice] = []
    for chunk_start in range(0, len(invoice_ids), 500):
        chunk = invoice_ids[chunk_start:chunk_start + 500]
        invoices.extend(session.scalars(select(Invoice).where(Invoice.id.in_(chunk))))
    by_id = {inv.id: inv for inv in invoices}
    missing = [i for i in invoice_ids if i not in by_id]
    if missing:
        raise NotFoundError(f"{len(missing)} of the invoices to issue no longer exist; refresh and try again.")
    ordered = [by_id[i] for i in dict.fromkeys(invoice_ids)]
    not_draft = [inv for inv in ordered if inv.status is not InvoiceStatus.DRAFT]
    if not_draft:
        raise ValidationError([Issue("status", f"{not_draft[0].number} is already issued; "
                                               f"{len(not_draft)} of the selected invoices are not drafts.")])
    clients = {c.id: c for c in session.scalars(select(Client).where(
        Client.id.in_({inv.client_id for inv in ordered})))}
    archived = [clients[inv.client_id].legal_name for inv in ordered
                if clients[inv.client_id].status is ClientStatus.ARCHIVED]
    if archived:
        raise ValidationError([Issue("client_id", f"{archived[0]} is archived; restore the client or delete "
                                                  "the draft.")])
    credits = credit_balances(session, list(clients), positive_only=True)
    kinds: dict[InvoiceKind, list[Invoice]] = {}
    for inv in ordered:
        kinds.setdefault(inv.kind, []).append(inv)
    numbers: list[str] = []
    now = utcnow()
    actor = audit.current_actor()
    issued_entries: list[dict[str, Any]] = []
    for kind, group in kinds.items():
        pattern, first = _take_numbers(session, kind, len(group))
        for offset, inv in enumerate(group):
            client = clients[inv.client_id]
            inv.number_seq = first + offset
            inv.number = format_invoice_number(pattern, inv.number_seq)
            inv.status = InvoiceStatus.OPEN
            inv.issue_date = issue_date
            inv.due_date = _due_date(client, issue_date)
            inv.issued_at = now
            inv.bill_to = _bill_to(client)
            numbers.append(inv.number)
            note = ""
            if inv.total_cents <= 0:
                # Only adjustments, and they came out in the client's favour.
                if inv.total_cents < 0:
                    session.add(ClientCredit(client_id=client.id, amount_cents=-inv.total_cents,
                                             reason=CreditReason.NEGATIVE_INVOICE, invoice_id=inv.id,
                                             memo=f"{inv.number}: credit from adjustments"))
                    credits[client.id] = credits.get(client.id, 0) - inv.total_cents
                    note = f"; {format_amount(-inv.total_cents, inv.currency)} added to the client's credit"
                inv.status, inv.closed_at = InvoiceStatus.PAID, now
            elif credits.get(client.id, 0) > 0:
                used = min(credits[client.id], inv.total_cents)
                credits[client.id] -= used
                inv.credit_applied_cents = used
                session.add(ClientCredit(client_id=client.id, amount_cents=-used, reason=CreditReason.APPLIED,
                                         invoice_id=inv.id, memo=f"Applied to {inv.number}"))
                note = f"; {format_amount(used, inv.currency)} of client credit applied"
                if used == inv.total_cents:
                    inv.status, inv.closed_at = InvoiceStatus.PAID, now
            issued_entries.append({
                "actor": actor, "action": "invoice.issued", "entity_type": "invoice", "entity_id": inv.id,
                "summary": (f"Issued {inv.number} to {client.legal_name} for "
                            f"{format_amount(inv.total_cents, inv.currency)}, due "
                            f"{inv.due_date.isoformat()}{note}")[:500]})
    session.flush()
    # A month's audit entries in one executemany rather than one ORM object each.
    session.execute(insert(cast(Table, AuditEntry.__table__)), issued_entries)
    return numbers


def drafts_for_month(session: Session, month: Month) -> list[int]:
    """The ids of `month`'s drafts (generation.month_drafts), in issuing order."""
    stmt = (select(Invoice.id).join(Client, Client.id == Invoice.client_id)
            .where(*month_drafts(month))
            .order_by(Client.legal_name, Invoice.title, Invoice.id))
    return list(session.scalars(stmt))


def issue_month(session: Session, month: Month, issue_date: dt.date | None = None) -> list[str]:
    return issue_invoices(session, drafts_for_month(session, month), issue_date)


# --- void, uncollectible, credit notes ------------------------------------

def _check_reason(reason: str, what: str) -> str:
    text = (reason or "").strip()
    if not text:
        raise ValidationError([Issue("reason", f"Give a reason for {what}; it is kept with the invoice.")])
    if len(text) > REASON_MAX:
        raise ValidationError([Issue("reason", f"The reason is limited to {REASON_MAX} characters.")])
    return text


def void_invoice(session: Session, invoice_id: int, reason: str) -> Invoice:
    inv = get_invoice(session, invoice_id)
    text = _check_reason(reason, "voiding")
    if inv.status is InvoiceStatus.DRAFT:
        raise ValidationError([Issue("status", "A draft has no number yet; delete it instead of voiding it.")])
    if inv.kind is InvoiceKind.CREDIT_NOTE:
        raise ValidationError([Issue("status", f"{inv.number} is a credit note and has been applied; it cannot be "
                                               "voided. Issue a new invoice for the amount instead.")])
    if inv.status is InvoiceStatus.VOID:
        raise ValidationError([Issue("status", f"{inv.number} is already void.")])
    if inv.paid_cents or inv.credited_cents:
        settled = format_amount(inv.paid_cents + inv.credited_cents, inv.currency)
        raise ValidationError([Issue("status", f"{inv.number} has {settled} paid or credited against it, so it "
                                               "cannot be voided. Issue a credit note for it instead.")])
    # A credit note may have sent its whole amount to client credit (credited_cents
    # stays 0 on an invoice already settled); voiding too would credit it twice.
    if session.scalar(select(Invoice.id).where(Invoice.credit_for_invoice_id == inv.id).limit(1)) is not None:
        raise ValidationError([Issue("status", f"{inv.number} has a credit note against it, so it cannot be "
                                               "voided; credit what is left with another credit note.")])
    if inv.status is InvoiceStatus.PAID and inv.credit_applied_cents == 0 and inv.total_cents < 0:
        raise ValidationError([Issue("status", f"{inv.number} put credit on the client's account; it cannot be "
                                               "voided.")])
    note = ""
    if inv.credit_applied_cents:
        session.add(ClientCredit(client_id=inv.client_id, amount_cents=inv.credit_applied_cents,
                                 reason=CreditReason.RETURNED, invoice_id=inv.id,
                                 memo=f"{inv.number} voided: credit returned"))
        note = f"; {format_amount(inv.credit_applied_cents, inv.currency)} of credit returned to the client"
    before = inv.status
    inv.status, inv.status_reason, inv.closed_at = InvoiceStatus.VOID, text, utcnow()
    audit.record(session, "invoice.voided", "invoice", inv.id,
                 f"Voided {inv.number} (was {before.value}): {text}{note}",
                 {"changes": {"status": [before.value, InvoiceStatus.VOID.value]}, "reason": text})
    session.flush()
    from mspbill.collections.late_fees import carrier_voided

    carrier_voided(session, inv, text)
    return inv


def mark_uncollectible(session: Session, invoice_id: int, reason: str) -> Invoice:
    inv = get_invoice(session, invoice_id)
    text = _check_reason(reason, "writing it off")
    if inv.status is not InvoiceStatus.OPEN:
        raise ValidationError([Issue("status", "Only an open invoice with a balance can be written off as "
                                               f"uncollectible; this one is {inv.status.value}.")])
    inv.status, inv.status_reason = InvoiceStatus.UNCOLLECTIBLE, text
    audit.record(session, "invoice.uncollectible", "invoice", inv.id,
                 f"Wrote off {inv.number} as uncollectible, balance "
                 f"{format_amount(inv.balance_cents, inv.currency)}: {text}",
                 {"changes": {"status": [InvoiceStatus.OPEN.value, InvoiceStatus.UNCOLLECTIBLE.value]},
                  "reason": text, "balance": format_amount(inv.balance_cents, inv.currency)})
    session.flush()
    return inv


CREDIT_TAXED_SUFFIX = " (taxable part)"
CREDIT_UNTAXED_SUFFIX = " (not taxed)"


def _credit_lines(inv: Invoice, reason: str, cents: int) -> list[dict[str, Any]]:
    """The lines of a credit of `cents` before tax on `inv`.

    The credit is split in proportion to the invoice's taxable share, so its tax
    comes back too.  The two parts are labelled, or a reader sees the same line
    twice; when the split gives back no tax (a 0% client, no taxable lines, a
    few cents) it is one untaxed line: the same amounts, the same zero tax.
    """
    def line(amount_cents: int, taxable: bool, suffix: str = "") -> dict[str, Any]:
        description = f"Credit on {inv.number}: {reason}"[:500 - len(suffix)] + suffix
        return {"description": description, "quantity_e4": QUANTITY_SCALE, "unit_price_cents": amount_cents,
                "amount_cents": amount_cents, "taxable": taxable}

    taxable_base = sum(ln.amount_cents for ln in inv.lines if ln.taxable)
    taxable_part = (cents * taxable_base // inv.subtotal_cents) if inv.subtotal_cents > 0 else 0
    taxable_part = max(0, min(cents, taxable_part))
    if taxable_part == cents:
        return [line(cents, True)]
    if not taxable_part or not compute_totals([(taxable_part, True)], inv.tax_rate_percent).tax_cents:
        return [line(cents, False)]
    return [line(taxable_part, True, CREDIT_TAXED_SUFFIX), line(cents - taxable_part, False, CREDIT_UNTAXED_SUFFIX)]


def _credit_lines_for_total(inv: Invoice, reason: str, total_cents: int) -> list[dict[str, Any]]:
    """Credit lines whose total with tax is exactly `total_cents` (a refund of that much money).

    Tax rounds per invoice, so some totals cannot be reached by a taxable amount
    alone; then the cent or two left over goes on an untaxed line."""
    taxable_base = sum(ln.amount_cents for ln in inv.lines if ln.taxable)
    share = Decimal(taxable_base) / inv.subtotal_cents if inv.subtotal_cents > 0 else Decimal(0)
    guess = int(Decimal(total_cents) / (1 + share * inv.tax_rate_percent / 100))
    best: list[dict[str, Any]] = []
    best_total = -1
    for net in range(max(0, guess - 3), min(total_cents, guess + 3) + 1):
        lines = _credit_lines(inv, reason, net) if net else []
        total = compute_totals([(ln["amount_cents"], ln["taxable"]) for ln in lines], inv.tax_rate_percent).total_cents
        if total == total_cents:
            return lines
        if best_total < total < total_cents:
            best, best_total = lines, total
    rest = total_cents - max(best_total, 0)
    return best + [{"description": f"Credit on {inv.number}: {reason}"[:480] + " (rounding)",
                    "quantity_e4": QUANTITY_SCALE, "unit_price_cents": rest, "amount_cents": rest, "taxable": False}]


def create_credit_note(session: Session, invoice_id: int, reason: str, amount: str | None = None,
                       issue_date: dt.date | None = None, *, total_cents: int | None = None,
                       untaxed_cents: int | None = None) -> Invoice:
    """Issue a credit note against an issued invoice, now.

    With no amount it credits the whole invoice, line by line.  An amount is
    before tax and credited in proportion to the invoice's taxable share, so
    its tax comes back too; `total_cents` instead gives the total with tax (a
    credit note that matches a refund); `untaxed_cents` credits exactly that on one
    untaxed line (a waived late fee, which was never taxed).  The credit reduces the invoice's balance first;
    whatever the invoice no longer owes becomes client credit.
    """
    inv = get_invoice(session, invoice_id)
    text = _check_reason(reason, "the credit note")
    if inv.kind is not InvoiceKind.INVOICE or inv.status in (InvoiceStatus.DRAFT, InvoiceStatus.VOID):
        raise ValidationError([Issue("status", "Only an issued invoice that is not void can be credited.")])
    already = int(session.scalar(select(func.coalesce(func.sum(Invoice.total_cents), 0)).where(
        Invoice.credit_for_invoice_id == inv.id)) or 0)
    room = inv.total_cents - already
    if room <= 0:
        raise ValidationError([Issue("amount", f"{inv.number} has already been credited in full.")])
    lines: list[dict[str, Any]]
    if untaxed_cents is not None:
        if untaxed_cents <= 0:
            raise ValidationError([Issue("amount", "The credit must be more than zero.")])
        lines = [{"description": f"Credit: {text}"[:500], "quantity_e4": QUANTITY_SCALE,
                  "unit_price_cents": untaxed_cents, "amount_cents": untaxed_cents, "taxable": False}]
    elif total_cents is not None:
        if total_cents <= 0:
            raise ValidationError([Issue("amount", "The credit must be more than zero.")])
        lines = _credit_lines_for_total(inv, text, total_cents)
    elif amount is None or not str(amount).strip():
        if already:
            raise ValidationError([Issue("amount", f"{inv.number} already has credit notes; give the amount "
                                                   f"to credit (at most {format_amount(room, inv.currency)}).")])
        lines = [{"description": f"Credit: {ln.description}"[:500], "quantity_e4": ln.quantity_e4,
                  "unit_price_cents": ln.unit_price_cents, "amount_cents": ln.amount_cents, "taxable": ln.taxable}
                 for ln in inv.lines]
    else:
        try:
            cents = parse_amount(str(amount), inv.currency)
        except MoneyError as exc:
            raise ValidationError([Issue("amount", str(exc))]) from None
        if cents <= 0:
            raise ValidationError([Issue("amount", "The credit must be more than zero.")])
        lines = _credit_lines(inv, text, cents)
    note = Invoice(kind=InvoiceKind.CREDIT_NOTE, status=InvoiceStatus.DRAFT, client_id=inv.client_id,
                   currency=inv.currency, title=f"Credit note for {inv.number}", memo=text,
                   tax_rate_percent=inv.tax_rate_percent, credit_for_invoice_id=inv.id,
                   credit_applied_cents=0, paid_cents=0, credited_cents=0, status_reason=text)
    _set_lines(note, lines)
    if note.total_cents > room:
        raise ValidationError([Issue("amount", f"The credit with tax comes to {format_amount(note.total_cents, inv.currency)}"
                                               f", more than the {format_amount(room, inv.currency)} of "
                                               f"{inv.number} not yet credited.")])
    session.add(note)
    session.flush()
    # A credit note cannot predate what it credits.
    issue_date = max(issue_date or dt.date.today(), inv.issue_date or dt.date.min)
    pattern, seq = _take_numbers(session, InvoiceKind.CREDIT_NOTE, 1)
    note.number_seq, note.number = seq, format_invoice_number(pattern, seq)
    note.status, note.issue_date, note.due_date = InvoiceStatus.PAID, issue_date, issue_date
    note.issued_at = note.closed_at = utcnow()
    note.bill_to = inv.bill_to or _bill_to(inv.client)
    reduces_balance = inv.status in (InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE)
    to_invoice = min(note.total_cents, inv.balance_cents) if reduces_balance else 0
    to_credit = note.total_cents - to_invoice
    inv.credited_cents += to_invoice
    if to_credit:
        session.add(ClientCredit(client_id=inv.client_id, amount_cents=to_credit, reason=CreditReason.CREDIT_NOTE,
                                 invoice_id=note.id, memo=f"{note.number} on {inv.number}"))
    if inv.status is InvoiceStatus.OPEN and inv.balance_cents == 0:
        inv.status, inv.closed_at = InvoiceStatus.PAID, utcnow()
    summary = (f"Issued credit note {note.number} on {inv.number} for "
               f"{format_amount(note.total_cents, inv.currency)}: {text}")
    where = []
    if to_invoice:
        where.append(f"{format_amount(to_invoice, inv.currency)} off the balance")
    if to_credit:
        where.append(f"{format_amount(to_credit, inv.currency)} to client credit")
    facts = {"credit_note": note.number, "invoice": inv.number, "reason": text,
             "total": format_amount(note.total_cents, inv.currency),
             "off_the_balance": format_amount(to_invoice, inv.currency),
             "to_client_credit": format_amount(to_credit, inv.currency)}
    audit.record(session, "credit_note.issued", "invoice", note.id, f"{summary} ({', '.join(where)})", facts)
    audit.record(session, "invoice.credited", "invoice", inv.id, f"{summary} ({', '.join(where)})", facts)
    session.flush()
    return note


ISSUE_AHEAD_DAYS = 92


def check_issue_date(session: Session, issue_date: dt.date, today: dt.date | None = None) -> None:
    """Numbers and issue dates go forward together, and stay near today.

    An invoice dated before the last one issued would break the order auditors
    expect (INV-000435 dated before INV-000434), and numbers cannot be taken back.
    """
    today = today or dt.date.today()
    latest = session.scalar(select(func.max(Invoice.issue_date)).where(
        Invoice.kind == InvoiceKind.INVOICE, Invoice.number.is_not(None)))
    if latest is not None and issue_date < latest:
        raise ValidationError([Issue("issue_date", f"The issue date {issue_date.isoformat()} is before "
                                                   f"{latest.isoformat()}, the date of the last invoice issued; "
                                                   f"numbers and dates go forward together. Use "
                                                   f"{latest.isoformat()} or later.")])
    if issue_date > today + dt.timedelta(days=ISSUE_AHEAD_DAYS):
        raise ValidationError([Issue("issue_date", f"The issue date {issue_date.isoformat()} is more than "
                                                   f"{ISSUE_AHEAD_DAYS} days ahead; issue invoices when they are due "
                                                   "to go out.")])


def parse_issue_date(text: str | dt.date | None) -> dt.date:
    issues: list[Issue] = []
    day = parse_date(text, "issue_date", "issue date", issues, required=False)
    if issues:
        raise ValidationError(issues)
    return day or dt.date.today()

