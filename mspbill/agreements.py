"""Recurring agreements and their lines: create, update, archive, restore, list."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mspbill import audit
from mspbill.clients import check_name
from mspbill.db.models import (
    NAME_MAX,
    TEXT_MAX,
    Agreement,
    AgreementLine,
    AgreementStatus,
    BillingFrequency,
    Client,
    ClientStatus,
    InvoiceLine,
    LINE_AMOUNT_SQL,
    utcnow,
)
from mspbill.money import (
    MoneyError,
    format_amount,
    format_decimal,
    from_minor,
    parse_amount,
    parse_decimal,
)
from mspbill.validation import Issue, NotFoundError, ValidationError

MAX_LINES = 200
# Caps that keep quantity × price inside 64-bit integers (LINE_AMOUNT_SQL).
MAX_QUANTITY = 999_999
MAX_UNIT_PRICE_MINOR = 99_999_999


@dataclass
class LineDraft:
    description: str = ""
    quantity: str = "1"
    unit_price: str = "0.00"
    taxable: bool = True
    # Which existing line this row edits (None: a new line).
    series: int | None = None


@dataclass
class AgreementDraft:
    client_id: int | None = None
    name: str = ""
    start_date: str | dt.date = ""
    end_date: str | dt.date | None = None
    frequency: str = "monthly"
    notes: str = ""
    lines: list[LineDraft] = field(default_factory=list)


@dataclass(frozen=True)
class AgreementRow:
    id: int
    client_id: int
    client_name: str
    name: str
    frequency: str
    start_date: dt.date
    end_date: dt.date | None
    status: str
    line_count: int
    period_amount_cents: int
    currency: str

    @property
    def monthly_value_cents(self) -> int:
        months = BillingFrequency(self.frequency).months
        return (2 * self.period_amount_cents + months) // (2 * months)


@dataclass(frozen=True)
class AgreementDetail:
    id: int
    draft: AgreementDraft
    status: str
    client_name: str
    currency: str
    # Once invoiced, changes to the lines take effect from a date (history kept)
    # and the start date and frequency are fixed.
    invoiced: bool = False


def parse_date(value: str | dt.date | None, field_name: str, what: str, issues: list[Issue],
               *, required: bool) -> dt.date | None:
    if isinstance(value, dt.date):
        return value
    text = (value or "").strip()
    if not text:
        if required:
            issues.append(Issue(field_name, f"Enter the {what}."))
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        issues.append(Issue(field_name, f"“{text}” is not a date; use YYYY-MM-DD, for example 2026-11-01."))
        return None


def _is_blank_line(line: LineDraft) -> bool:
    """An untouched row of the lines table is not a line."""
    return not (line.description or "").strip() and (line.unit_price or "").strip() in ("", "0", "0.00")


def validate_agreement(session: Session, draft: AgreementDraft,
                       existing: Agreement | None = None) -> tuple[dict[str, Any], list[Issue]]:
    issues: list[Issue] = []
    v: dict[str, Any] = {}
    client: Client | None = None
    if draft.client_id is None:
        issues.append(Issue("client_id", "Choose the client this agreement bills."))
    else:
        client = session.get(Client, draft.client_id)
        if client is None:
            issues.append(Issue("client_id", "That client does not exist any more."))
        elif client.status is ClientStatus.ARCHIVED and (existing is None or existing.client_id != client.id):
            issues.append(Issue("client_id", f"{client.legal_name} is archived; restore the client first."))
    v["client_id"] = draft.client_id
    v["name"] = check_name(draft.name, "name", "agreement name", issues)
    start = parse_date(draft.start_date, "start_date", "start date", issues, required=True)
    end = parse_date(draft.end_date, "end_date", "end date", issues, required=False)
    if start and end and end < start:
        issues.append(Issue("end_date", f"The end date {end.isoformat()} is before the start date {start.isoformat()}."))
    v["start_date"], v["end_date"] = start, end
    try:
        v["frequency"] = BillingFrequency((draft.frequency or "").strip().lower())
    except ValueError:
        issues.append(Issue("frequency", "Billing frequency is monthly, quarterly or annual."))
        v["frequency"] = BillingFrequency.MONTHLY
    notes = (draft.notes or "").strip()
    if len(notes) > TEXT_MAX:
        issues.append(Issue("notes", f"Notes are limited to {TEXT_MAX} characters."))
    v["notes"] = notes
    currency = client.currency if client else "USD"
    lines: list[dict[str, Any]] = []
    real_lines = [(i, ln) for i, ln in enumerate(draft.lines) if not _is_blank_line(ln)]
    if not real_lines:
        issues.append(Issue("lines", "Add at least one line (for example “Managed workstations”)."))
    if len(real_lines) > MAX_LINES:
        issues.append(Issue("lines", f"An agreement has at most {MAX_LINES} lines."))
    for i, ln in real_lines:
        prefix = f"lines[{i}]"
        desc = check_name(ln.description, f"{prefix}.description", "line description", issues, limit=NAME_MAX)
        qty = Decimal(0)
        try:
            qty = parse_decimal(ln.quantity, what="quantity", max_places=4)
            if qty <= 0:
                issues.append(Issue(f"{prefix}.quantity",
                                    f"Line {i + 1}: the quantity must be more than zero."))
            elif qty > MAX_QUANTITY:
                issues.append(Issue(f"{prefix}.quantity",
                                    f"Line {i + 1}: the quantity is at most {MAX_QUANTITY:,}."))
        except MoneyError as exc:
            issues.append(Issue(f"{prefix}.quantity", f"Line {i + 1}: {exc}"))
        price = 0
        try:
            price = parse_amount(ln.unit_price, currency, allow_negative=True)
            if price < 0:
                issues.append(Issue(f"{prefix}.unit_price",
                                    f"Line {i + 1}: the unit price cannot be negative; "
                                    "give discounts as a credit note or the autopay incentive."))
            elif price > MAX_UNIT_PRICE_MINOR:
                issues.append(Issue(f"{prefix}.unit_price",
                                    f"Line {i + 1}: the unit price is at most "
                                    f"{format_amount(MAX_UNIT_PRICE_MINOR, currency)}."))
        except MoneyError as exc:
            issues.append(Issue(f"{prefix}.unit_price", f"Line {i + 1}: {exc}"))
        lines.append({"description": desc, "quantity": qty, "unit_price_cents": price,
                      "taxable": bool(ln.taxable), "series": ln.series})
    v["lines"] = lines
    return v, issues


def _lines_snapshot(agreement: Agreement) -> list[dict[str, Any]]:
    # format_decimal: "2.50" and "2.5" are the same quantity, not a change to audit.
    return [{"description": ln.description, "quantity": format_decimal(ln.quantity),
             "unit_price_cents": ln.unit_price_cents, "taxable": ln.taxable} for ln in agreement.lines]


def is_invoiced(session: Session, agreement_id: int) -> bool:
    """Has any invoice (even a draft or a void one) billed this agreement?"""
    return session.scalar(select(InvoiceLine.id).where(InvoiceLine.agreement_id == agreement_id)
                          .limit(1)) is not None


_TERMS = ("description", "quantity_e4", "unit_price_cents", "taxable")


def _terms(values: dict[str, Any]) -> tuple[Any, ...]:
    probe = AgreementLine()
    probe.quantity = values["quantity"]
    return (values["description"], probe.quantity_e4, values["unit_price_cents"], values["taxable"])


def _close_series(agreement: Agreement, series: int, effective: dt.date | None) -> None:
    """End every version of `series` the day before `effective` (None: from the start).

    A version that would not have begun by then is emptied (effective_to one
    day before effective_from) rather than deleted: history is kept.
    """
    for v in agreement.line_versions:
        if v.series != series or (v.effective_to is not None and v.effective_from is not None
                                  and v.effective_to < v.effective_from):
            continue
        begins = v.effective_from or agreement.start_date
        if effective is None or begins >= effective:
            v.effective_from = begins
            v.effective_to = begins - dt.timedelta(days=1)
        elif v.effective_to is None or v.effective_to >= effective:
            v.effective_to = effective - dt.timedelta(days=1)


def _apply_lines(agreement: Agreement, lines: list[dict[str, Any]], effective: dt.date | None) -> bool:
    """Bring the current lines to `lines`, keeping every earlier version.

    Returns whether any line's terms changed.
    """
    current = {v.series: v for v in agreement.lines}
    next_series = max((v.series for v in agreement.line_versions), default=0) + 1
    starts_from = effective if effective is not None and effective > agreement.start_date else None
    seen: set[int] = set()
    changed = False
    for position, values in enumerate(lines):
        series = values.get("series")
        version = current.get(series) if series is not None and series not in seen else None
        if version is not None:
            seen.add(version.series)
            if tuple(getattr(version, f) for f in _TERMS) == _terms(values):
                version.position = position
                continue
            _close_series(agreement, version.series, effective)
            series_id = version.series
        else:
            series_id, next_series = next_series, next_series + 1
        changed = True
        new = AgreementLine(series=series_id, effective_from=starts_from, position=position,
                            description=values["description"], unit_price_cents=values["unit_price_cents"],
                            taxable=values["taxable"])
        new.quantity = values["quantity"]
        agreement.line_versions.append(new)
    for series_id in current.keys() - seen:
        _close_series(agreement, series_id, effective)
        changed = True
    return changed


def _mark_for_adjustment(agreement: Agreement, day: dt.date) -> None:
    if agreement.adjust_from is None or day < agreement.adjust_from:
        agreement.adjust_from = day


def _apply(agreement: Agreement, values: dict[str, Any]) -> None:
    for f in ("client_id", "name", "start_date", "end_date", "frequency", "notes"):
        setattr(agreement, f, values[f])


def create_agreement(session: Session, draft: AgreementDraft) -> Agreement:
    values, issues = validate_agreement(session, draft)
    if issues:
        raise ValidationError(issues)
    agreement = Agreement(status=AgreementStatus.ACTIVE)
    _apply(agreement, values)
    _apply_lines(agreement, values["lines"], None)
    session.add(agreement)
    session.flush()
    client = session.get(Client, agreement.client_id)
    audit.record(session, "agreement.created", "agreement", agreement.id,
                 f"Created agreement {agreement.name} for "
                 + (client.legal_name if client is not None else f"client {agreement.client_id}"),
                 {"lines": _lines_snapshot(agreement)})
    return agreement


def create_agreements(session: Session, values_list: list[dict[str, Any]]) -> list[int]:
    """Many agreements at once (the CSV import): each from validate_agreement's values (validated
    by the caller), written in one flush where create_agreement flushes each one; the same
    columns, lines and audit entry per agreement as create_agreement.  Returns the new ids."""
    agreements = []
    for values in values_list:
        agreement = Agreement(status=AgreementStatus.ACTIVE)
        _apply(agreement, values)
        _apply_lines(agreement, values["lines"], None)
        agreements.append(agreement)
    session.add_all(agreements)
    session.flush()
    # The clients' names in a few queries: a session.get each would flush the audit entry before it.
    ids = sorted({a.client_id for a in agreements})
    names: dict[int, str] = {}
    for i in range(0, len(ids), 500):
        names.update(session.execute(select(Client.id, Client.legal_name)
                                     .where(Client.id.in_(ids[i:i + 500]))).all())
    for agreement in agreements:
        audit.record(session, "agreement.created", "agreement", agreement.id,
                     f"Created agreement {agreement.name} for "
                     + names.get(agreement.client_id, f"client {agreement.client_id}"),
                     {"lines": _lines_snapshot(agreement)})
    return [a.id for a in agreements]


def get_agreement(session: Session, agreement_id: int) -> Agreement:
    agreement = session.get(Agreement, agreement_id)
    if agreement is None:
        raise NotFoundError(f"Agreement {agreement_id} does not exist.")
    return agreement


def update_agreement(session: Session, agreement_id: int, draft: AgreementDraft, *,
                     effective_date: dt.date | None = None) -> Agreement:
    """Save an edit.  Once the agreement has been invoiced, changed lines take
    effect from `effective_date` (required then): the old terms stay on record
    up to the day before, and the next invoice adjusts any period already
    invoiced.  Before that, the new lines simply replace the old from the start.
    """
    agreement = get_agreement(session, agreement_id)
    values, issues = validate_agreement(session, draft, existing=agreement)
    invoiced = is_invoiced(session, agreement.id)
    lines_changed = [_terms(v) for v in values["lines"]] != [
        tuple(getattr(v, f) for f in _TERMS) for v in agreement.lines] if not issues else False
    effective: dt.date | None = None
    if invoiced:
        if values["client_id"] != agreement.client_id:
            issues.append(Issue("client_id", "This agreement has been invoiced, so it stays with its client; "
                                             "end it and create one for the other client."))
        if values["start_date"] and values["start_date"] != agreement.start_date:
            issues.append(Issue("start_date", "This agreement has been invoiced, so its start date is fixed; "
                                              "end it and start a new agreement instead."))
        if values["frequency"] is not agreement.frequency:
            issues.append(Issue("frequency", "This agreement has been invoiced, so its billing frequency is "
                                             "fixed; end it and start a new agreement instead."))
        if lines_changed:
            if effective_date is None:
                issues.append(Issue("effective_date", "Say from which date the changed lines take effect."))
            else:
                effective = max(effective_date, agreement.start_date)
                end = values["end_date"]
                if end is not None and effective > end:
                    issues.append(Issue("effective_date",
                                        f"The changes take effect after the agreement ends ({end.isoformat()})."))
    if issues:
        raise ValidationError(issues)
    before = {f: getattr(agreement, f) for f in ("client_id", "name", "start_date", "end_date",
                                                 "frequency", "notes")}
    before_lines = _lines_snapshot(agreement)
    old_end = agreement.end_date
    _apply(agreement, values)
    _apply_lines(agreement, values["lines"], effective)
    if invoiced:
        if effective is not None and lines_changed:
            _mark_for_adjustment(agreement, effective)
        if old_end != agreement.end_date:
            ends = [d for d in (old_end, agreement.end_date) if d is not None]
            _mark_for_adjustment(agreement, min(ends) + dt.timedelta(days=1))
    session.flush()
    changes = audit.diff(before, {k: values[k] for k in before})
    after_lines = _lines_snapshot(agreement)
    details: dict[str, Any] = {"changes": changes}
    if after_lines != before_lines:
        changes["lines"] = [before_lines, after_lines]  # type: ignore[list-item]
        if effective is not None:
            details["effective_from"] = effective.isoformat()
    if changes:
        when = f" from {effective.isoformat()}" if effective is not None and "lines" in changes else ""
        audit.record(session, "agreement.updated", "agreement", agreement.id,
                     f"Updated agreement {agreement.name}: {', '.join(sorted(changes))}{when}", details)
    return agreement


def archive_agreement(session: Session, agreement_id: int) -> Agreement:
    agreement = get_agreement(session, agreement_id)
    if agreement.status is not AgreementStatus.ARCHIVED:
        agreement.status = AgreementStatus.ARCHIVED
        agreement.archived_at = utcnow()
        audit.record(session, "agreement.archived", "agreement", agreement.id,
                     f"Archived agreement {agreement.name}")
    return agreement


def restore_agreement(session: Session, agreement_id: int) -> Agreement:
    agreement = get_agreement(session, agreement_id)
    if agreement.status is not AgreementStatus.ACTIVE:
        if agreement.client.status is ClientStatus.ARCHIVED:
            raise ValidationError([Issue("client_id",
                                         f"{agreement.client.legal_name} is archived; restore the client first.")])
        agreement.status = AgreementStatus.ACTIVE
        agreement.archived_at = None
        audit.record(session, "agreement.restored", "agreement", agreement.id,
                     f"Restored agreement {agreement.name}")
    return agreement


def agreement_detail(session: Session, agreement_id: int) -> AgreementDetail:
    a = get_agreement(session, agreement_id)
    currency = a.client.currency
    draft = AgreementDraft(
        client_id=a.client_id, name=a.name, start_date=a.start_date.isoformat(),
        end_date=a.end_date.isoformat() if a.end_date else "", frequency=a.frequency.value, notes=a.notes,
        lines=[LineDraft(ln.description, format_decimal(ln.quantity),
                         f"{from_minor(ln.unit_price_cents, currency)}", ln.taxable, ln.series)
               for ln in a.lines])
    return AgreementDetail(a.id, draft, a.status.value, a.client.legal_name, currency,
                           invoiced=is_invoiced(session, a.id))


def list_agreements(session: Session, *, include_archived: bool = False, client_id: int | None = None,
                    search: str = "") -> list[AgreementRow]:
    # Line counts and period amounts summed by the database, one row per agreement.
    totals = (select(AgreementLine.agreement_id, func.count(AgreementLine.id).label("n"),
                     func.sum(LINE_AMOUNT_SQL).label("cents"))
              .where(AgreementLine.effective_to.is_(None))
              .group_by(AgreementLine.agreement_id).subquery())
    stmt = (select(Agreement.id, Agreement.client_id, Client.legal_name, Agreement.name, Agreement.frequency,
                   Agreement.start_date, Agreement.end_date, Agreement.status, totals.c.n, totals.c.cents,
                   Client.currency)
            .join(Client, Client.id == Agreement.client_id)
            .outerjoin(totals, totals.c.agreement_id == Agreement.id))
    if not include_archived:
        # An archived client's agreements are not billed, so they are not listed as active.
        stmt = stmt.where(Agreement.status == AgreementStatus.ACTIVE, Client.status == ClientStatus.ACTIVE)
    if client_id is not None:
        stmt = stmt.where(Agreement.client_id == client_id)
    needle = search.strip().casefold()
    rows: list[AgreementRow] = []
    for aid, cid, client_name, name, freq, start, end, status, n, cents, currency in session.execute(stmt):
        if needle and needle not in name.casefold() and needle not in client_name.casefold():
            continue
        rows.append(AgreementRow(
            id=aid, client_id=cid, client_name=client_name, name=name, frequency=freq.value,
            start_date=start, end_date=end, status=status.value, line_count=n or 0,
            period_amount_cents=int(cents or 0), currency=currency))
    rows.sort(key=lambda r: (r.client_name.casefold(), r.name.casefold()))
    return rows


def count_active(session: Session) -> int:
    """Agreements that bill: active, of an active client."""
    return session.scalar(select(func.count(Agreement.id)).join(Client).where(
        Agreement.status == AgreementStatus.ACTIVE, Client.status == ClientStatus.ACTIVE)) or 0
