"""Late fees: assessed on overdue invoices by the office's policy, billed on the client's
next invoice or on one of their own, and waivable with a reason.

- A fee falls due `after_days` after the invoice's due date; a monthly policy adds
  another on the same day of each later month while the invoice stays unpaid.  Only
  the latest fee due is assessed: an office that turns fees on (or a computer off
  for a month) does not bill the months it missed.  One row per invoice and sequence
  number (a unique constraint): running twice a day never charges a fee twice.
- Flat fees are in the company's currency and so are only assessed on invoices in it;
  a percentage works on any (the overdue balance × the rate, rounded half up once).  The
  minimum balance is in the company's currency too and applies to invoices in it.
- No fee on a fee: invoices made for late fees get none.  A fee is never taxed.
- "Next invoice": the fee waits (pending) and rides on the first invoice generated for
  the client (generation.plan_period adds the line, so the month-end preview shows it).
  A client with no active agreement gets no generated invoice: the fee goes on an
  invoice of its own at once.  Deleting the draft that carries a fee makes it pending again.
- Waiving: a pending fee is simply waived; one on a draft leaves the draft; one on an
  issued invoice is taken off by a credit note of exactly the fee (house rule 7).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mspbill import audit
from mspbill.collections.eligibility import Candidate, left_alone, open_candidates
from mspbill.collections.settings import LateFeePolicy, collection_policy
from mspbill.db.models import (
    Agreement,
    AgreementStatus,
    Client,
    CompanyProfile,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    LateFee,
    LateFeeKind,
    LateFeePlacement,
    LateFeeRepeat,
    MailSettings,
    utcnow,
)
from mspbill.money import format_amount, format_decimal, from_minor
from mspbill.periods import percent_of
from mspbill.validation import Issue, ValidationError

REASON_MAX = 500


def add_months(day: dt.date, months: int) -> dt.date:
    """The same day `months` later, or the month's last day when it is shorter (31 Jan + 1 → 28/29 Feb)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    last = (dt.date(year + (month == 12), month % 12 + 1, 1) - dt.timedelta(days=1)).day
    return dt.date(year, month, min(day.day, last))


def fee_day(due: dt.date, policy: LateFeePolicy, sequence: int) -> dt.date:
    first = due + dt.timedelta(days=policy.after_days)
    return add_months(first, sequence - 1)


def latest_sequence(due: dt.date, policy: LateFeePolicy, today: dt.date) -> int:
    """The number of the latest fee due by `today` (0: none yet)."""
    if fee_day(due, policy, 1) > today:
        return 0
    if policy.repeat is LateFeeRepeat.ONCE:
        return 1
    k = 1
    while fee_day(due, policy, k + 1) <= today:
        k += 1
    return k


def fee_amount(policy: LateFeePolicy, basis_cents: int) -> int:
    if policy.kind is LateFeeKind.FLAT:
        return policy.flat_cents
    return percent_of(basis_cents, policy.percent)


def fee_description(number: str, days_overdue: int, policy: LateFeePolicy, basis_cents: int, currency: str,
                    sequence: int) -> str:
    how = (f" ({format_decimal(policy.percent)} % of {format_amount(basis_cents, currency)})"
           if policy.kind is LateFeeKind.PERCENT else "")
    nth = f", month {sequence}" if policy.repeat is LateFeeRepeat.MONTHLY and sequence > 1 else ""
    return f"Late fee: {number} {days_overdue} days overdue{nth}{how}"


@dataclass(frozen=True)
class DueFee:
    candidate: Candidate
    sequence: int
    days_overdue: int
    amount_cents: int
    description: str


@dataclass(frozen=True)
class SkippedFee:
    candidate: Candidate
    reason: str


@dataclass
class FeePlan:
    enabled: bool
    due: list[DueFee] = field(default_factory=list)
    skipped: list[SkippedFee] = field(default_factory=list)


@dataclass
class FeeReport:
    enabled: bool = False
    assessed: list[DueFee] = field(default_factory=list)
    own_invoices: list[str] = field(default_factory=list)     # numbers of invoices issued for fees
    pending: int = 0                                          # waiting for the client's next invoice
    skipped: list[SkippedFee] = field(default_factory=list)
    already: int = 0

    def lines(self) -> list[str]:
        if not self.enabled:
            return []
        out: list[str] = []
        if self.assessed:
            by_currency: dict[str, int] = {}
            for f in self.assessed:
                by_currency[f.candidate.currency] = by_currency.get(f.candidate.currency, 0) + f.amount_cents
            money = ", ".join(format_amount(v, c) for c, v in by_currency.items())
            out.append(f"{len(self.assessed)} late fee{'s' if len(self.assessed) != 1 else ''} assessed ({money}).")
        if self.own_invoices:
            out.append(f"Issued for late fees: {', '.join(self.own_invoices)}.")
        if self.pending:
            out.append(f"{self.pending} late fee{'s' if self.pending != 1 else ''} will go on the client's next "
                       "invoice.")
        for s in self.skipped:
            out.append(f"No late fee on {s.candidate.number} ({s.candidate.client_name}): {s.reason}")
        return out


def _fee_invoice_ids(session: Session) -> set[int]:
    """Invoices issued for late fees (no fee is charged on them)."""
    return {int(i) for i in session.scalars(select(LateFee.billed_invoice_id).where(
        LateFee.placement == LateFeePlacement.OWN_INVOICE, LateFee.billed_invoice_id.is_not(None)).distinct())
        if i is not None}


def _assessed(session: Session, invoice_ids: list[int]) -> dict[int, int]:
    out: dict[int, int] = {}
    for i in range(0, len(invoice_ids), 500):
        for invoice_id, seq in session.execute(
                select(LateFee.invoice_id, func.max(LateFee.sequence))
                .where(LateFee.invoice_id.in_(invoice_ids[i:i + 500])).group_by(LateFee.invoice_id)):
            out[int(invoice_id)] = int(seq)
    return out


def plan_late_fees(session: Session, today: dt.date, *, invoice_ids: Sequence[int] | None = None) -> FeePlan:
    """The fees due today (and the overdue invoices that get none, with why).  Reads only."""
    policy = collection_policy(session).fees
    plan = FeePlan(policy.enabled)
    if not policy.enabled:
        return plan
    company = session.get(CompanyProfile, 1)
    currency = company.currency if company else "USD"
    last_due = today - dt.timedelta(days=policy.after_days)
    candidates = open_candidates(session, due_on_or_before=last_due, invoice_ids=invoice_ids)
    fee_invoices = _fee_invoice_ids(session)
    candidates = [c for c in candidates if c.invoice_id not in fee_invoices]
    assessed = _assessed(session, [c.invoice_id for c in candidates])
    wanted = [(c, k) for c in candidates
              if (k := latest_sequence(c.due_date, policy, today)) > assessed.get(c.invoice_id, 0)]
    alone = left_alone(session, [c for c, _ in wanted], today)
    for c, k in wanted:
        if c.invoice_id in alone:
            continue
        if c.currency == currency and c.balance_cents < policy.min_balance_cents:
            plan.skipped.append(SkippedFee(c, f"the balance {format_amount(c.balance_cents, c.currency)} is under "
                                              f"the {format_amount(policy.min_balance_cents, currency)} minimum"))
            continue
        if policy.kind is LateFeeKind.FLAT and c.currency != currency:
            plan.skipped.append(SkippedFee(c, f"the invoice is in {c.currency} and the flat fee in {currency}"))
            continue
        amount = fee_amount(policy, c.balance_cents)
        if amount <= 0:
            continue
        days = (fee_day(c.due_date, policy, k) - c.due_date).days
        plan.due.append(DueFee(c, k, days, amount,
                               fee_description(c.number, days, policy, c.balance_cents, c.currency, k)))
    return plan


def _has_active_agreement(session: Session, client_id: int) -> bool:
    return session.scalar(select(Agreement.id).where(Agreement.client_id == client_id,
                                                     Agreement.status == AgreementStatus.ACTIVE).limit(1)) is not None


def _issue_fee_invoice(session: Session, fee: LateFee, invoice_number: str, today: dt.date) -> Invoice:
    """An invoice of its own for the fee, issued now (dated today, or the latest issue date if later)."""
    from mspbill.invoicing import (
        ItemDraft,
        OneTimeDraft,
        create_one_time_invoice,
        issue_invoices,
    )

    inv = create_one_time_invoice(session, OneTimeDraft(
        client_id=fee.client_id, title=f"Late fee — {fee.description.split(':', 1)[-1].split()[0]}",
        memo=fee.description,
        lines=[ItemDraft(fee.description[:500], "1", f"{from_minor(fee.amount_cents, fee.currency):f}", False)]))
    latest = session.scalar(select(func.max(Invoice.issue_date)).where(Invoice.number.is_not(None)))
    issue_invoices(session, [inv.id], issue_date=max(today, latest or today))
    fee.billed_invoice_id = inv.id
    fee.billed_line_id = inv.lines[0].id if inv.lines else None
    settings = session.get(MailSettings, 1)
    client = session.get(Client, fee.client_id)
    if settings is not None and settings.host and settings.from_address and client is not None and client.email_list:
        from mspbill.mail.outbox import queue_invoice_email

        queue_invoice_email(session, inv.id)
    return inv


def assess_late_fees(session: Session, today: dt.date, *, invoice_ids: Sequence[int] | None = None) -> FeeReport:
    """Assess today's fees, each in its own savepoint; the caller commits."""
    plan = plan_late_fees(session, today, invoice_ids=invoice_ids)
    report = FeeReport(enabled=plan.enabled, skipped=list(plan.skipped))
    if not plan.enabled:
        return report
    policy = collection_policy(session).fees
    actor = audit.current_actor()
    for due in plan.due:
        c = due.candidate
        try:
            with session.begin_nested():
                placement = policy.placement
                if placement is LateFeePlacement.NEXT_INVOICE and not _has_active_agreement(session, c.client_id):
                    placement = LateFeePlacement.OWN_INVOICE   # no invoice would ever carry it
                fee = LateFee(invoice_id=c.invoice_id, client_id=c.client_id, sequence=due.sequence,
                              assessed_on=today, days_overdue=due.days_overdue, basis_cents=c.balance_cents,
                              amount_cents=due.amount_cents, currency=c.currency, description=due.description[:500],
                              placement=placement, actor=actor, created_at=utcnow())
                session.add(fee)
                session.flush()
                where = "on the client's next invoice"
                if placement is LateFeePlacement.OWN_INVOICE:
                    inv = _issue_fee_invoice(session, fee, c.number, today)
                    where = f"on {inv.number}"
                    report.own_invoices.append(inv.number or "")
                else:
                    report.pending += 1
                audit.record(session, "invoice.late_fee", "invoice", c.invoice_id,
                             f"Late fee {format_amount(due.amount_cents, c.currency)} on {c.number} "
                             f"({due.days_overdue} days overdue), {where}"[:500], {"late_fee_id": fee.id})
        except IntegrityError:
            report.already += 1
            continue
        except ValidationError as exc:
            # Its invoice could not be issued (an archived client, say): this fee waits, the others go on.
            report.skipped.append(SkippedFee(c, " ".join(i.message for i in exc.issues)))
            continue
        report.assessed.append(due)
    return report


# --- billing on the next invoice (called by generation.plan_period) ------------------------

@dataclass(frozen=True)
class PendingFee:
    id: int
    client_id: int
    amount_cents: int
    currency: str
    description: str


def pending_fees(session: Session, client_ids: Sequence[int]) -> dict[int, list[PendingFee]]:
    """Fees waiting for the next invoice, per client, oldest first."""
    out: dict[int, list[PendingFee]] = {}
    ids = list(dict.fromkeys(client_ids))
    for i in range(0, len(ids), 500):
        for f in session.execute(select(LateFee.id, LateFee.client_id, LateFee.amount_cents, LateFee.currency,
                                        LateFee.description)
                                 .where(LateFee.client_id.in_(ids[i:i + 500]), LateFee.waived_at.is_(None),
                                        LateFee.billed_invoice_id.is_(None),
                                        LateFee.placement == LateFeePlacement.NEXT_INVOICE)
                                 .order_by(LateFee.id)):
            out.setdefault(f.client_id, []).append(PendingFee(f.id, f.client_id, f.amount_cents, f.currency,
                                                              f.description))
    return out


def mark_billed(session: Session, links: Sequence[tuple[int, int, int]]) -> None:
    """(fee id, invoice id, line id): the fee now rides on that invoice's line."""
    for fee_id, invoice_id, line_id in links:
        fee = session.get(LateFee, fee_id)
        if fee is not None:
            fee.billed_invoice_id, fee.billed_line_id = invoice_id, line_id
    session.flush()


def carrier_voided(session: Session, inv: Invoice, reason: str) -> None:
    """An invoice carrying late fees was voided: a fee that rode on the client's next invoice
    waits for the one after (the office voided the invoice, not the fee); a fee's own invoice
    voided is the fee waived, with the void's reason."""
    # Fees charged for lateness on the voided invoice itself: it is no longer owed, so neither are they
    # (one not yet billed is waived; one already billed is left for the office to waive or credit).
    for fee in session.scalars(select(LateFee).where(LateFee.invoice_id == inv.id, LateFee.waived_at.is_(None),
                                                     LateFee.billed_invoice_id.is_(None))):
        fee.waived_at, fee.waived_by = utcnow(), audit.current_actor()
        fee.waive_reason = f"{inv.number} voided: {reason}"[:REASON_MAX]
        audit.record(session, "invoice.late_fee_waived", "invoice", inv.id,
                     f"Late fee {format_amount(fee.amount_cents, fee.currency)} waived: {inv.number} was voided"[:500],
                     {"late_fee_id": fee.id})
    fees = list(session.scalars(select(LateFee).where(LateFee.billed_invoice_id == inv.id,
                                                      LateFee.waived_at.is_(None))))
    for fee in fees:
        if fee.placement is LateFeePlacement.OWN_INVOICE:
            fee.waived_at, fee.waived_by = utcnow(), audit.current_actor()
            fee.waive_reason = f"{inv.number} voided: {reason}"[:REASON_MAX]
            what = "waived"
        else:
            fee.billed_invoice_id = fee.billed_line_id = None
            what = "back to pending, for the client's next invoice"
        audit.record(session, "invoice.late_fee_voided", "invoice", fee.invoice_id,
                     f"Late fee {format_amount(fee.amount_cents, fee.currency)} on {inv.number}, voided: {what}"[:500],
                     {"late_fee_id": fee.id})
    session.flush()


# --- waiving ------------------------------------------------------------------------------

def waive_fee(session: Session, fee_id: int, reason: str, *, today: dt.date | None = None) -> LateFee:
    """Waive a fee with a reason: pending → never billed; on a draft → the line goes; on an
    issued invoice → a credit note of exactly the fee."""
    from mspbill.generation import compute_totals
    from mspbill.invoicing import create_credit_note

    fee = session.get(LateFee, fee_id)
    if fee is None:
        raise ValidationError([Issue("fee", f"There is no late fee {fee_id}.")])
    text = " ".join((reason or "").split())
    if not text:
        raise ValidationError([Issue("reason", "Give a reason for waiving the fee; it is kept with the invoice.")])
    if len(text) > REASON_MAX:
        raise ValidationError([Issue("reason", f"The reason is limited to {REASON_MAX} characters.")])
    if fee.waived_at is not None:
        raise ValidationError([Issue("fee", f"This fee was already waived ({fee.waive_reason}).")])
    carrier = session.get(Invoice, fee.billed_invoice_id) if fee.billed_invoice_id is not None else None
    how = "before it was billed"
    if carrier is not None and carrier.status is InvoiceStatus.DRAFT:
        line = session.get(InvoiceLine, fee.billed_line_id) if fee.billed_line_id is not None else None
        if line is not None:
            carrier.lines.remove(line)
            session.flush()
            totals = compute_totals(((ln.amount_cents, ln.taxable) for ln in carrier.lines), carrier.tax_rate_percent)
            carrier.subtotal_cents, carrier.tax_cents, carrier.total_cents = (
                totals.subtotal_cents, totals.tax_cents, totals.total_cents)
        fee.billed_invoice_id = fee.billed_line_id = None
        how = "taken off the draft"
    elif carrier is not None and carrier.status is not InvoiceStatus.VOID:
        note = create_credit_note(session, carrier.id, f"Late fee waived: {text}", issue_date=today,
                                  untaxed_cents=fee.amount_cents)
        fee.waive_credit_note_id = note.id
        how = f"credit note {note.number} on {carrier.number}"
    elif carrier is not None:
        how = f"{carrier.number} is void"
    fee.waived_at, fee.waived_by, fee.waive_reason = utcnow(), audit.current_actor(), text
    session.flush()
    audit.record(session, "invoice.late_fee_waived", "invoice", fee.invoice_id,
                 f"Late fee {format_amount(fee.amount_cents, fee.currency)} waived ({how}): {text}"[:500],
                 {"late_fee_id": fee.id})
    return fee


# --- lists --------------------------------------------------------------------------------

@dataclass(frozen=True)
class FeeRow:
    id: int
    invoice_id: int
    invoice_number: str
    client_id: int
    client_name: str
    assessed_on: dt.date
    days_overdue: int
    amount_cents: int
    currency: str
    description: str
    status: str            # pending, billed, waived
    where: str             # "Next invoice", "INV-000124", "INV-000124 (void)", "Waived: reason"
    billed_invoice_id: int | None
    waive_reason: str


def list_fees(session: Session, *, status: str | None = None, client_id: int | None = None,
              invoice_id: int | None = None, billed_on: int | None = None, limit: int = 5000) -> list[FeeRow]:
    carrier = Invoice.__table__.alias("carrier")
    stmt = (select(LateFee, Invoice.number, Client.legal_name, carrier.c.number, carrier.c.status)
            .join(Invoice, Invoice.id == LateFee.invoice_id)
            .join(Client, Client.id == LateFee.client_id)
            .outerjoin(carrier, carrier.c.id == LateFee.billed_invoice_id)
            .order_by(LateFee.assessed_on.desc(), LateFee.id.desc()).limit(limit))
    if client_id is not None:
        stmt = stmt.where(LateFee.client_id == client_id)
    if invoice_id is not None:
        stmt = stmt.where(LateFee.invoice_id == invoice_id)
    if billed_on is not None:
        stmt = stmt.where(LateFee.billed_invoice_id == billed_on)
    if status == "waived":
        stmt = stmt.where(LateFee.waived_at.is_not(None))
    elif status == "billed":
        stmt = stmt.where(LateFee.waived_at.is_(None), LateFee.billed_invoice_id.is_not(None))
    elif status == "pending":
        stmt = stmt.where(LateFee.waived_at.is_(None), LateFee.billed_invoice_id.is_(None))
    rows: list[FeeRow] = []
    for fee, number, client_name, carrier_number, carrier_status in session.execute(stmt):
        if fee.waived_at is not None:
            where = f"Waived: {fee.waive_reason}"
        elif fee.billed_invoice_id is None:
            where = "Next invoice"
        elif carrier_number is None:
            where = "Draft invoice"
        else:
            where = carrier_number + (" (void)" if carrier_status == InvoiceStatus.VOID.value
                                      or carrier_status is InvoiceStatus.VOID else "")
        rows.append(FeeRow(fee.id, fee.invoice_id, number or "", fee.client_id, client_name, fee.assessed_on,
                           fee.days_overdue, fee.amount_cents, fee.currency, fee.description, fee.status, where,
                           fee.billed_invoice_id, fee.waive_reason))
    return rows


def fee_totals(rows: Sequence[FeeRow]) -> dict[str, dict[str, int]]:
    """Status → currency → cents."""
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        by = out.setdefault(r.status, {})
        by[r.currency] = by.get(r.currency, 0) + r.amount_cents
    return out


def describe_percent(value: Decimal) -> str:
    return f"{format_decimal(value)} %"
