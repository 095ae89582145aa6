"""Generate a month's recurring invoices from the agreements.

`plan_period` works out, without writing anything, what generating a month
would create: one draft per agreement whose billing period is due, with its
lines prorated by days where the agreement starts, ends or changes inside the
period, and adjustment lines for changes made since to periods already
invoiced.  `generate_period` writes that plan.  The database keeps it to one
invoice per agreement and period (uq_invoices_agreement_period), so running a
month twice creates nothing new even if two people click at once.

How adjustments are found: every service or adjustment line records the
agreement line (series), the days it covers and the terms (quantity, unit
price) that stand billed for those days.  Replaying those lines gives what has
been billed for each day; the agreement's effective-dated line versions give
what should have been.  Where the two differ, an adjustment line bills (or
credits) the difference and records the new terms, so the next run finds
nothing left to do.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from mspbill import audit
from mspbill.db.models import (
    QUANTITY_SCALE,
    Agreement,
    AgreementLine,
    AgreementStatus,
    AuditEntry,
    Client,
    ClientStatus,
    CompanyProfile,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
    LineKind,
)
from mspbill.money import format_amount, format_decimal
from mspbill.periods import (
    Month,
    Period,
    billing_period,
    day_label,
    percent_of,
    prorate_cents,
    prorate_change_cents,
)

Terms = tuple[int, int]  # (quantity_e4, unit_price_cents)


@dataclass(frozen=True)
class PlannedLine:
    kind: LineKind
    description: str
    quantity_e4: int
    unit_price_cents: int
    amount_cents: int
    taxable: bool
    agreement_id: int | None = None
    series: int | None = None
    period_start: dt.date | None = None
    service_start: dt.date | None = None
    service_end: dt.date | None = None
    terms_quantity_e4: int | None = None
    terms_unit_price_cents: int | None = None


@dataclass(frozen=True)
class Totals:
    subtotal_cents: int
    tax_cents: int
    total_cents: int


def compute_totals(lines: Iterable[tuple[int, bool]], tax_rate_percent: Decimal) -> Totals:
    """Subtotal, tax and total of (amount_cents, taxable) lines.

    tax = round_half_up(rate × sum of taxable amounts), once per invoice.
    """
    subtotal = taxable = 0
    for amount, is_taxable in lines:
        subtotal += amount
        if is_taxable:
            taxable += amount
    tax = percent_of(taxable, tax_rate_percent)
    return Totals(subtotal, tax, subtotal + tax)


@dataclass(frozen=True)
class PlannedInvoice:
    client_id: int
    client_name: str
    agreement_id: int
    agreement_name: str
    currency: str
    title: str
    period_start: dt.date
    period_end: dt.date
    tax_rate_percent: Decimal
    autopay: bool
    lines: tuple[PlannedLine, ...]
    totals: Totals
    prorated: bool
    adjusted: bool
    # Late fees waiting for the client's next invoice that ride on this one (their lines are last).
    late_fee_ids: tuple[int, ...] = ()

    @property
    def notes(self) -> str:
        parts = []
        if self.late_fee_ids:
            parts.append("late fee" if len(self.late_fee_ids) == 1 else "late fees")
        if self.prorated:
            parts.append("prorated")
        if not any(ln.kind is LineKind.SERVICE for ln in self.lines):
            parts.append("adjustments only")
        elif self.adjusted:
            parts.append("adjustments")
        return ", ".join(parts)


@dataclass(frozen=True)
class LeftOut:
    agreement_id: int
    client_name: str
    agreement_name: str
    reason: str


@dataclass
class GenerationPlan:
    month: Month
    invoices: list[PlannedInvoice] = field(default_factory=list)
    left_out: list[LeftOut] = field(default_factory=list)
    instalments_due: int = 0
    # Drafts already generated for the month, waiting to be issued.
    drafts_waiting: int = 0
    # Agreements whose pending adjustments were all placed (or came to nothing).
    settled_adjustments: dict[int, dt.date | None] = field(default_factory=dict)

    def totals_by_currency(self) -> dict[str, Totals]:
        out: dict[str, list[int]] = {}
        for inv in self.invoices:
            t = out.setdefault(inv.currency, [0, 0, 0])
            t[0] += inv.totals.subtotal_cents
            t[1] += inv.totals.tax_cents
            t[2] += inv.totals.total_cents
        return {c: Totals(*v) for c, v in out.items()}

    def summary(self) -> str:
        if not self.invoices:
            waiting = (f" {self.drafts_waiting} draft{'s are' if self.drafts_waiting != 1 else ' is'} waiting "
                       "to be issued." if self.drafts_waiting else "")
            return f"Nothing to generate for {self.month.label}.{waiting}"
        money = ", ".join(format_amount(t.total_cents, c) for c, t in self.totals_by_currency().items())
        n = len(self.invoices)
        return f"{n} invoice{'s' if n != 1 else ''} for {self.month.label}, {money} in all."


@dataclass(frozen=True)
class GenerationResult:
    plan: GenerationPlan
    invoice_ids: list[int]

    @property
    def created(self) -> int:
        return len(self.invoice_ids)


class ConcurrentGenerationError(RuntimeError):
    """Another run created some of the same invoices first; nothing was written."""


# --- what an agreement's versions say should be billed --------------------

@dataclass(frozen=True)
class _Segment:
    start: dt.date
    end: dt.date
    terms: Terms | None
    description: str = ""
    taxable: bool = True


def _version_range(v: AgreementLine, a: Agreement) -> tuple[dt.date, dt.date] | None:
    start = max(v.effective_from or a.start_date, a.start_date)
    end = v.effective_to or dt.date.max
    if a.end_date is not None:
        end = min(end, a.end_date)
    return (start, end) if start <= end else None


def _expected(a: Agreement, versions: list[AgreementLine], period: Period) -> dict[int, list[_Segment]]:
    """Per series, the terms in force on each day of `period`."""
    out: dict[int, list[_Segment]] = defaultdict(list)
    for v in versions:
        rng = _version_range(v, a)
        if rng is None:
            continue
        start, end = max(rng[0], period.start), min(rng[1], period.end)
        if start <= end:
            out[v.series].append(_Segment(start, end, (v.quantity_e4, v.unit_price_cents),
                                          v.description, v.taxable))
    return out


def _at(segments: list[_Segment], day: dt.date) -> _Segment | None:
    # Later segments override earlier ones (ledger replay order).
    found = None
    for s in segments:
        if s.start <= day <= s.end:
            found = s
    return found


def _fmt_qty(quantity_e4: int) -> str:
    return format_decimal(Decimal(quantity_e4) / QUANTITY_SCALE)


def _span_label(start: dt.date, end: dt.date, period: Period) -> str:
    if end == period.end:
        return f"from {day_label(start)}"
    if start == end:
        return f"on {day_label(start)}"
    return f"{day_label(start)}–{day_label(end)}"


def _adjustment_text(description: str, old: Terms | None, new: Terms | None, ended: bool,
                     start: dt.date, end: dt.date, period: Period, currency: str) -> str:
    days = f"{(end - start).days + 1}/{period.days} days"
    span = _span_label(start, end, period)
    if old is None and new is not None:
        what = f"Added {description} ({_fmt_qty(new[0])} × {format_amount(new[1], currency)})"
    elif new is None and old is not None:
        verb = "Agreement ended" if ended else "Removed"
        what = f"{verb}: {description} ({_fmt_qty(old[0])} × {format_amount(old[1], currency)})"
    else:
        assert old is not None and new is not None
        if old[1] == new[1]:
            delta = new[0] - old[0]
            what = f"{'+' if delta > 0 else '−'}{_fmt_qty(abs(delta))} {description}"
        elif old[0] == new[0]:
            what = (f"{description}: price {format_amount(old[1], currency)} → "
                    f"{format_amount(new[1], currency)}")
        else:
            what = (f"{description}: {_fmt_qty(old[0])} × {format_amount(old[1], currency)} → "
                    f"{_fmt_qty(new[0])} × {format_amount(new[1], currency)}")
    return f"{what} {span}, {days}"


def service_lines(a: Agreement, versions: list[AgreementLine], period: Period) -> list[PlannedLine]:
    """The lines billing `period` in advance, prorated where a version covers part of it."""
    lines: list[PlannedLine] = []
    expected = _expected(a, versions, period)
    positions = _positions(versions)
    ordered = sorted(((seg, series) for series, segs in expected.items() for seg in segs),
                     key=lambda p: (positions[p[1]], p[0].start))
    for seg, series in ordered:
        assert seg.terms is not None
        q, p = seg.terms
        days = (seg.end - seg.start).days + 1
        desc = seg.description
        if days < period.days:
            desc = f"{desc} ({day_label(seg.start)}–{day_label(seg.end)}, {days}/{period.days} days)"
        lines.append(PlannedLine(
            LineKind.SERVICE, desc, q, p, prorate_cents(q, p, days, period.days), seg.taxable,
            a.id, series, period.start, seg.start, seg.end, q, p))
    return lines


def _positions(versions: list[AgreementLine]) -> defaultdict[int, int]:
    """Where each series sits on the invoice: its current version's position; a
    series no longer in force goes after the rest, in its last position's order."""
    current: dict[int, int] = {}
    last: dict[int, int] = {}
    for v in versions:
        if v.effective_to is None:
            current[v.series] = min(current.get(v.series, v.position), v.position)
        last[v.series] = max(last.get(v.series, v.position), v.position)
    out: defaultdict[int, int] = defaultdict(lambda: 1000)
    out.update({series: current.get(series, position + 1000) for series, position in last.items()})
    return out


def adjustment_lines(a: Agreement, versions: list[AgreementLine], period: Period,
                     billed: list[InvoiceLine], currency: str) -> list[PlannedLine]:
    """Lines that bring what was billed for `period` in line with the versions now on record."""
    expected = _expected(a, versions, period)
    replay: dict[int, list[_Segment]] = defaultdict(list)
    for ln in sorted(billed, key=lambda x: x.id):
        if ln.series is None or ln.service_start is None or ln.service_end is None:
            continue
        terms = None if ln.terms_quantity_e4 is None else (ln.terms_quantity_e4, ln.terms_unit_price_cents or 0)
        replay[ln.series].append(_Segment(ln.service_start, ln.service_end, terms))
    names = {v.series: v for v in sorted(versions, key=lambda v: v.id)}  # the latest version names a series
    out: list[PlannedLine] = []
    positions = _positions(versions)
    for series in sorted(set(expected) | set(replay), key=lambda s: (positions[s], s)):
        want, have = expected.get(series, []), replay.get(series, [])
        cuts = {period.start, period.end + dt.timedelta(days=1)}
        for s in (*want, *have):
            cuts.update((max(s.start, period.start), min(s.end, period.end) + dt.timedelta(days=1)))
        points = sorted(c for c in cuts if period.start <= c <= period.end + dt.timedelta(days=1))
        runs: list[tuple[dt.date, dt.date, Terms | None, Terms | None, _Segment | None]] = []
        for lo, hi in zip(points, points[1:]):
            new_seg, old_seg = _at(want, lo), _at(have, lo)
            new, old = (new_seg.terms if new_seg else None), (old_seg.terms if old_seg else None)
            end = hi - dt.timedelta(days=1)
            if runs and runs[-1][1] + dt.timedelta(days=1) == lo and runs[-1][2:4] == (old, new):
                runs[-1] = (runs[-1][0], end, old, new, runs[-1][4])
            else:
                runs.append((lo, end, old, new, new_seg))
        version = names.get(series)
        for start, end, old, new, seg in runs:
            if old == new:
                continue
            days = (end - start).days + 1
            amount = prorate_change_cents(old, new, days, period.days)
            description = seg.description if seg else (version.description if version else "Line")
            taxable = seg.taxable if seg else (version.taxable if version else True)
            ended = a.end_date is not None and start > a.end_date
            text = _adjustment_text(description, old, new, ended, start, end, period, currency)
            out.append(PlannedLine(
                LineKind.ADJUSTMENT, text, QUANTITY_SCALE, amount, amount, taxable, a.id, series,
                period.start, start, end, new[0] if new else None, new[1] if new else None))
    return out


def discount_lines(lines: list[PlannedLine], percent: Decimal) -> list[PlannedLine]:
    """The autopay incentive, its own negative line(s): one per tax treatment present."""
    if percent <= 0:
        return []
    by_tax: dict[bool, int] = {}
    for ln in lines:
        by_tax[ln.taxable] = by_tax.get(ln.taxable, 0) + ln.amount_cents
    mixed = len([v for v in by_tax.values() if v]) > 1
    out = []
    for taxable in (True, False):
        base = by_tax.get(taxable, 0)
        cut = percent_of(base, percent)
        if cut == 0:
            continue
        label = f"Autopay discount ({format_decimal(percent)}%)"
        if mixed:
            label += " on taxable services" if taxable else " on non-taxable services"
        out.append(PlannedLine(LineKind.DISCOUNT, label, QUANTITY_SCALE, -cut, -cut, taxable))
    return out


# --- the plan -------------------------------------------------------------

def _left_out_reason(a: Agreement, period: Period, month: Month, existing: InvoiceStatus | None) -> str | None:
    if a.start_date > month.last_day:
        return f"Starts {a.start_date.isoformat()}"
    if a.end_date is not None and a.end_date < period.start:
        return f"Ended {a.end_date.isoformat()}"
    label = period.label(a.frequency)
    if existing is InvoiceStatus.DRAFT:
        return f"Draft for {label} waiting to be issued"
    if existing is InvoiceStatus.VOID:
        return f"Invoice for {label} was voided: not billed again (use a one-time invoice to re-bill)"
    if existing is not None:
        return f"Already invoiced for {label}"
    if max(period.start, a.start_date) > month.last_day:
        return f"Next billed in {Month.of(max(period.start, a.start_date)).label}"
    return None


def month_drafts(month: Month) -> tuple[ColumnElement[bool], ...]:
    """The drafts that belong to `month`: generated invoices and instalments falling due.

    A quarterly or annual draft generated this month bills a period that began
    earlier (an agreement starting mid-quarter, a year not yet invoiced), so
    the test is that the draft's period covers the month, not that it starts in it.
    """
    return (Invoice.status == InvoiceStatus.DRAFT, Invoice.kind == InvoiceKind.INVOICE,
            Invoice.period_start <= month.last_day,
            func.coalesce(Invoice.period_end, Invoice.period_start) >= month.first_day)


def plan_period(session: Session, month: Month, *, agreement_ids: Iterable[int] | None = None) -> GenerationPlan:
    """What generating `month` would create.  Reads only."""
    company = session.get(CompanyProfile, 1)
    discount = company.autopay_discount_percent if company else Decimal(0)
    plan = GenerationPlan(month)
    # Plain rows, not ORM objects: a month-end run reads every agreement and all
    # its line versions, and building objects for them was half the preview's time.
    # The functions below only read attributes, which rows have under the same names.
    stmt = (select(Agreement.id, Agreement.name, Agreement.start_date, Agreement.end_date, Agreement.frequency,
                   Agreement.adjust_from, Client.id.label("client_id"), Client.legal_name, Client.currency,
                   Client.tax_rate_percent, Client.autopay, Client.autopay_discount_percent)
            .join(Client, Client.id == Agreement.client_id)
            .where(Agreement.status == AgreementStatus.ACTIVE, Client.status == ClientStatus.ACTIVE))
    if agreement_ids is not None:
        stmt = stmt.where(Agreement.id.in_(list(agreement_ids)))
    rows: list[Any] = list(session.execute(stmt))
    ids = [r.id for r in rows]
    versions: dict[int, list[Any]] = defaultdict(list)
    existing: dict[tuple[int | None, dt.date | None], InvoiceStatus] = {}
    line_table = AgreementLine.__table__
    for chunk in _chunks(ids):
        for v in session.execute(select(line_table).where(line_table.c.agreement_id.in_(chunk))):
            versions[v.agreement_id].append(v)
        for agreement_id, start, status in session.execute(
                select(Invoice.agreement_id, Invoice.period_start, Invoice.status)
                .where(Invoice.agreement_id.in_(chunk))):
            existing[(agreement_id, start)] = status
    dirty = [r.id for r in rows if r.adjust_from is not None]
    ledger = _ledger(session, dirty)
    waiting = {bool(is_instalment): n for is_instalment, n in session.execute(
        select(Invoice.instalment_plan_id.is_not(None), func.count(Invoice.id))
        .where(*month_drafts(month)).group_by(Invoice.instalment_plan_id.is_not(None)))}
    plan.drafts_waiting, plan.instalments_due = waiting.get(False, 0), waiting.get(True, 0)

    for a in sorted(rows, key=lambda r: (r.legal_name.casefold(), r.name.casefold(), r.id)):
        client = _ClientOf(a.client_id, a.legal_name, a.currency, a.tax_rate_percent, a.autopay)
        period = billing_period(a.frequency, month.first_day)
        has_invoice = (a.id, period.start) in existing
        reason = _left_out_reason(a, period, month, existing.get((a.id, period.start)))
        lines: list[PlannedLine] = []
        if reason is None:
            lines = service_lines(a, versions[a.id], period)
            if not lines:
                reason = "No lines in force in this period"
        adjustments: list[PlannedLine] = []
        if a.adjust_from is not None:
            # An agreement ending inside its invoiced period gets no further invoice
            # for it: credit the days after its end now rather than a period later.
            ends_here = has_invoice and a.end_date is not None and a.end_date < period.end
            adjustments, later = _pending_adjustments(a, versions[a.id], ledger.get(a.id, {}), period,
                                                      client.currency, include_current=ends_here)
            key = period.start if lines else month.last_day
            if adjustments and not lines and ((has_invoice and not ends_here) or (a.id, key) in existing):
                # The period is billed already (its draft may still be open): they ride
                # on the agreement's next invoice rather than on an extra one now.
                adjustments = []
            else:
                plan.settled_adjustments[a.id] = later
        if not lines and not adjustments:
            if reason:
                plan.left_out.append(LeftOut(a.id, client.legal_name, a.name, reason))
            continue
        all_lines = lines + adjustments
        if client.autopay:
            # The client's own incentive when set (0: none for them), else the company's.
            own = a.autopay_discount_percent
            all_lines += discount_lines(all_lines, discount if own is None else own)
        # Adjustments on their own are filed under the month's last day, a key no
        # regular period uses (they start on a 1st), so they never take the slot
        # of a period that may yet be billed (an end date removed again).
        key_period = period if lines else Period(month.last_day, month.last_day)
        title = f"{a.name} — {period.label(a.frequency)}" if lines else f"{a.name} — adjustments"
        plan.invoices.append(PlannedInvoice(
            client.id, client.legal_name, a.id, a.name, client.currency, title, key_period.start,
            key_period.end, client.tax_rate_percent, client.autopay, tuple(all_lines),
            compute_totals(((ln.amount_cents, ln.taxable) for ln in all_lines), client.tax_rate_percent),
            prorated=any(ln.service_end is not None and ln.service_start is not None
                         and (ln.service_end - ln.service_start).days + 1 < period.days for ln in lines),
            adjusted=bool(adjustments)))
    _add_late_fees(session, plan)
    return plan


def _add_late_fees(session: Session, plan: GenerationPlan) -> None:
    """Put each client's pending late fees on its first invoice of the plan (untaxed, no discount)."""
    from mspbill.collections.late_fees import pending_fees

    if not plan.invoices:
        return
    waiting = pending_fees(session, [inv.client_id for inv in plan.invoices])
    for index, inv in enumerate(plan.invoices):
        fees = [f for f in waiting.pop(inv.client_id, []) if f.currency == inv.currency]
        if not fees:
            continue
        fee_lines = tuple(PlannedLine(LineKind.ITEM, f.description, QUANTITY_SCALE, f.amount_cents, f.amount_cents,
                                      False) for f in fees)
        lines = inv.lines + fee_lines
        plan.invoices[index] = replace(
            inv, lines=lines, late_fee_ids=tuple(f.id for f in fees),
            totals=compute_totals(((ln.amount_cents, ln.taxable) for ln in lines), inv.tax_rate_percent))


@dataclass(frozen=True)
class _ClientOf:
    id: int
    legal_name: str
    currency: str
    tax_rate_percent: Decimal
    autopay: bool


def _pending_adjustments(a: Agreement, versions: list[AgreementLine],
                         ledger: dict[dt.date, list[InvoiceLine]], current: Period,
                         currency: str, *, include_current: bool = False) -> tuple[list[PlannedLine], dt.date | None]:
    """Adjustments for invoiced periods before `current` (and `current` itself when
    asked); and from when adjustments stay pending after."""
    assert a.adjust_from is not None
    out: list[PlannedLine] = []
    later: dt.date | None = None
    for start in sorted(ledger):
        period = billing_period(a.frequency, start)
        if period.end < a.adjust_from:
            continue
        if start > current.start or (start == current.start and not include_current):
            # Invoiced ahead of this run: adjusted by a later one.
            later = max(a.adjust_from, current.start) if later is None else later
            continue
        out.extend(adjustment_lines(a, versions, period, ledger[start], currency))
    return out, later


def _ledger(session: Session, agreement_ids: list[int]) -> dict[int, dict[dt.date, list[InvoiceLine]]]:
    """Service and adjustment lines per agreement and billing period.

    A period whose service invoice was voided is left out: the office decided
    not to bill it, so no adjustment re-bills it either.
    """
    out: dict[int, dict[dt.date, list[InvoiceLine]]] = defaultdict(lambda: defaultdict(list))
    voided: set[tuple[int, dt.date]] = set()
    for chunk in _chunks(agreement_ids):
        stmt = (select(InvoiceLine, Invoice.status).join(Invoice, Invoice.id == InvoiceLine.invoice_id)
                .where(InvoiceLine.agreement_id.in_(chunk),
                       InvoiceLine.kind.in_([LineKind.SERVICE, LineKind.ADJUSTMENT])))
        for ln, status in session.execute(stmt):
            assert ln.agreement_id is not None and ln.period_start is not None
            if status is InvoiceStatus.VOID:
                if ln.kind is LineKind.SERVICE:
                    voided.add((ln.agreement_id, ln.period_start))
                continue
            out[ln.agreement_id][ln.period_start].append(ln)
    for agreement_id, start in voided:
        out.get(agreement_id, {}).pop(start, None)
    return out


def _chunks(ids: list[int], size: int = 500) -> Iterable[list[int]]:
    for i in range(0, len(ids), size):
        yield ids[i:i + size]


# --- writing the plan -----------------------------------------------------

def generate_period(session: Session, month: Month) -> GenerationResult:
    """Create the drafts `plan_period` describes, in the caller's transaction."""
    plan = plan_period(session, month)
    if not plan.invoices:
        _settle(session, plan)
        return GenerationResult(plan, [])
    invoice_rows = [{
        "kind": InvoiceKind.INVOICE, "status": InvoiceStatus.DRAFT, "client_id": inv.client_id,
        "currency": inv.currency, "title": inv.title, "agreement_id": inv.agreement_id,
        "period_start": inv.period_start, "period_end": inv.period_end,
        "tax_rate_percent": inv.tax_rate_percent, "subtotal_cents": inv.totals.subtotal_cents,
        "tax_cents": inv.totals.tax_cents, "total_cents": inv.totals.total_cents,
    } for inv in plan.invoices]
    try:
        with session.begin_nested():
            # RETURNING the unique key rather than sorting by parameter order: SQLite
            # can only keep that order by inserting one row per statement.
            created = {(agreement_id, start): invoice_id for invoice_id, agreement_id, start in session.execute(
                insert(Invoice).returning(Invoice.id, Invoice.agreement_id, Invoice.period_start), invoice_rows)}
    except IntegrityError as exc:
        if "agreement" in str(exc.orig).lower() or "uq_invoices_agreement_period" in str(exc.orig):
            raise ConcurrentGenerationError(
                f"Another run generated invoices for {month.label} at the same moment; this one "
                "created nothing. Generate again to see what is left.") from exc
        raise
    ids = [created[(inv.agreement_id, inv.period_start)] for inv in plan.invoices]
    line_rows = []
    for invoice_id, inv in zip(ids, plan.invoices, strict=True):
        for position, ln in enumerate(inv.lines):
            line_rows.append({
                "invoice_id": invoice_id, "position": position, "kind": ln.kind,
                "description": ln.description[:500], "quantity_e4": ln.quantity_e4,
                "unit_price_cents": ln.unit_price_cents, "amount_cents": ln.amount_cents,
                "taxable": ln.taxable, "agreement_id": ln.agreement_id, "series": ln.series,
                "period_start": ln.period_start, "service_start": ln.service_start,
                "service_end": ln.service_end, "terms_quantity_e4": ln.terms_quantity_e4,
                "terms_unit_price_cents": ln.terms_unit_price_cents})
    # Plain executemany: the ORM's bulk path adds nothing for rows nobody loads here.
    session.execute(insert(_table(InvoiceLine)), line_rows)
    _link_late_fees(session, ids, plan.invoices)
    actor = audit.current_actor()
    session.execute(insert(_table(AuditEntry)), [{
        "actor": actor, "action": "invoice.generated", "entity_type": "invoice", "entity_id": invoice_id,
        "summary": f"Generated draft for {inv.client_name}: {inv.title} "
                   f"({format_amount(inv.totals.total_cents, inv.currency)})"[:500],
        "details": {"period": str(month), "agreement_id": inv.agreement_id, "notes": inv.notes},
    } for invoice_id, inv in zip(ids, plan.invoices, strict=True)])
    _settle(session, plan)
    session.expire_all()
    return GenerationResult(plan, ids)


def _link_late_fees(session: Session, ids: list[int], invoices: list[PlannedInvoice]) -> None:
    from mspbill.collections.late_fees import mark_billed

    links = []
    for invoice_id, inv in zip(ids, invoices, strict=True):
        if not inv.late_fee_ids:
            continue
        first = len(inv.lines) - len(inv.late_fee_ids)
        positions = {int(position): int(line_id) for position, line_id in session.execute(
            select(InvoiceLine.position, InvoiceLine.id).where(InvoiceLine.invoice_id == invoice_id,
                                                              InvoiceLine.position >= first))}
        links += [(fee_id, invoice_id, positions[first + k]) for k, fee_id in enumerate(inv.late_fee_ids)]
    if links:
        mark_billed(session, links)


def _table(model: type) -> Table:
    """The Core table of a mapped class."""
    return cast(Table, model.__table__)  # type: ignore[attr-defined]


def _settle(session: Session, plan: GenerationPlan) -> None:
    by_value: dict[dt.date | None, list[int]] = defaultdict(list)
    for agreement_id, later in plan.settled_adjustments.items():
        by_value[later].append(agreement_id)
    for later, ids in by_value.items():
        for chunk in _chunks(ids):
            session.execute(update(Agreement).where(Agreement.id.in_(chunk)).values(adjust_from=later)
                            .execution_options(synchronize_session=False))


