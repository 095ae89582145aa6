"""Importing agreements with their lines: one row per line, rows of the same client and
agreement name grouped into one agreement (in file order, wherever they are in the file).

The client must already be in mspbill (import the clients first): the client column holds
its name or one of its billing e-mail addresses.  The agreement's own values (frequency,
dates, notes) are read from the first row that gives them; a later row of the same
agreement that says otherwise is an error, named with both lines.  Each agreement is
judged by the agreement form's rules (mspbill.agreements.validate_agreement).

An agreement already kept for the same client under the same name (case aside) is a
duplicate: skipped, updated or created anyway.  Updating works line by line: a file line
whose description matches a kept line (case and blanks aside) changes that line, and a
blank or unmapped quantity, unit price or taxable cell keeps the kept line's value; a
file line that matches none is added, with the agreement form's defaults (quantity 1,
taxable); a kept line the file does not name is KEPT (a file may list only the lines
that change), and the preview says so: lines are removed in the agreement dialog.  The
preview's detail of an update lists each change and the period total before and after.
An agreement that has been invoiced is not updated by an import: its line changes need
a date they take effect from, which the agreement dialog asks for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mspbill.agreements import (
    AgreementDraft,
    LineDraft,
    agreement_detail,
    create_agreements,
    is_invoiced,
    update_agreement,
    validate_agreement,
)
from mspbill.db.models import Agreement, AgreementStatus, Client, ClientStatus
from mspbill.imports.cells import (
    AmbiguousDate,
    CellError,
    date_order_hint,
    frequency_text,
    number_text,
    parse_date_cell,
    parse_yes_no,
)
from mspbill.imports.clients import record_import
from mspbill.imports.common import Cells, email_keys, name_key, overlong_problems
from mspbill.imports.mapping import ColumnMapping, check_mapping
from mspbill.imports.plan import (
    CREATE,
    ERROR,
    SKIP,
    UPDATE,
    ImportOptions,
    ImportPlan,
    ImportRefusedError,
    ImportResult,
    PlannedRow,
    Problem,
)
from mspbill.imports.reading import CsvTable
from mspbill.money import (
    MoneyError,
    format_amount,
    format_decimal,
    line_amount_cents,
    parse_amount,
    parse_decimal,
)
from mspbill.validation import Issue

_AGREEMENT_VALUES = ("frequency", "start_date", "end_date", "notes")


@dataclass(frozen=True)
class _Planned:
    draft: AgreementDraft
    values: dict[str, Any]  # validate_agreement's cleaned values


@dataclass(frozen=True)
class _Given:
    """Which of a line's cells the file fills (a blank or unmapped one keeps a kept line's value)."""

    quantity: bool
    unit_price: bool
    taxable: bool


@dataclass
class _Group:
    client_text: str
    client_id: int | None
    name: str
    first: Cells
    rows: list[Cells] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    values: dict[str, str] = field(default_factory=dict)      # agreement values as the form takes them
    value_lines: dict[str, int] = field(default_factory=dict)  # the line each value came from
    lines: list[LineDraft] = field(default_factory=list)
    given: list[_Given] = field(default_factory=list)          # per line: the cells the file fills
    unreadable: set[str] = field(default_factory=set)         # values whose cell could not be read


@dataclass
class _Clients:
    by_name: dict[str, list[tuple[int, str, bool]]]
    by_email: dict[str, list[tuple[int, str, bool]]]

    @classmethod
    def load(cls, session: Session) -> _Clients:
        by_name: dict[str, list[tuple[int, str, bool]]] = {}
        by_email: dict[str, list[tuple[int, str, bool]]] = {}
        for cid, name, emails, status in session.execute(
                select(Client.id, Client.legal_name, Client.billing_emails, Client.status)):
            item = (cid, name, status is ClientStatus.ARCHIVED)
            by_name.setdefault(name_key(name), []).append(item)
            for e in email_keys(emails):
                by_email.setdefault(e, []).append(item)
        return cls(by_name, by_email)

    def find(self, text: str) -> tuple[int | None, str]:
        """(client id, "") or (None, the sentence why not)."""
        if not text:
            return None, "Enter the client (its name or billing e-mail)."
        if "@" in text and " " not in text.strip():
            found = self.by_email.get(text.strip().casefold(), [])
            how = "billing e-mail"
        else:
            found = self.by_name.get(name_key(text), [])
            how = "name"
        if not found:
            return None, (f"There is no client with the {how} “{text}”. Agreements are added to clients "
                          "already in mspbill: import or create the client first.")
        active = [f for f in found if not f[2]]
        if len(active) > 1 or (not active and len(found) > 1):
            ids = ", ".join(str(f[0]) for f in (active or found))
            return None, (f"{len(active or found)} clients have the {how} “{text}” (IDs {ids}); "
                          "name the client by a billing e-mail only one of them has.")
        return (active or found)[0][0], ""


def _file_date_order(table: CsvTable, mapping: ColumnMapping, options: ImportOptions) -> str:
    """The order of the file's numeric dates: the option, or what the file's own dates show."""
    if options.date_order != "auto":
        return options.date_order
    hints = set()
    for key in ("start_date", "end_date"):
        col = mapping.get(key)
        if col is None:
            continue
        for rec in table.records:
            hint = date_order_hint(rec.cells[col])
            if hint:
                hints.add(hint)
    return hints.pop() if len(hints) == 1 else ""


def _office_date_order(session: Session) -> str:
    """"mdy" for an office in the United States (where 03/04/2026 is March 4), else "" (ask)."""
    from mspbill.company import get_company, is_us

    company = get_company(session)
    if company is None:
        return ""
    country = (company.country or "").strip()
    if is_us(country) or (not country and company.currency == "USD"):
        return "mdy"
    return ""


def _read_value(cells: Cells, key: str, order: str, problems: list[Problem]) -> str:
    """An agreement value as the form takes it ("" when blank); a cell that cannot be read adds a Problem."""
    raw = cells[key]
    if not raw:
        return ""
    if key in ("start_date", "end_date"):
        try:
            day = parse_date_cell(raw, order or "auto")
        except AmbiguousDate as exc:
            problems.append(Problem(cells.record.line, cells.column(key), str(exc)))
            return ""
        except CellError as exc:
            problems.append(Problem(cells.record.line, cells.column(key), str(exc)))
            return ""
        return day.isoformat() if day else ""
    if key == "frequency":
        return frequency_text(raw)
    return raw


# What a new line gets for a blank cell: the agreement form's new line (quantity 1, taxable).
_NEW_LINE = LineDraft()


def _line(cells: Cells, problems: list[Problem]) -> tuple[LineDraft, _Given]:
    taxable = _NEW_LINE.taxable
    try:
        taxable = parse_yes_no(cells["taxable"], "taxable", _NEW_LINE.taxable)
    except CellError as exc:
        problems.append(Problem(cells.record.line, cells.column("taxable"), str(exc)))
    quantity = number_text(cells["quantity"])
    price = number_text(cells["unit_price"])
    given = _Given(bool(quantity), bool(price), bool(cells["taxable"]))
    return LineDraft(description=cells["description"], quantity=quantity or _NEW_LINE.quantity,
                     unit_price=price, taxable=taxable), given


_LABELS = {"frequency": "billing frequency", "start_date": "start date", "end_date": "end date", "notes": "notes"}


def _group_rows(table: CsvTable, mapping: ColumnMapping, clients: _Clients, order: str,
                orphans: list[PlannedRow]) -> list[_Group]:
    groups: dict[tuple[object, str], _Group] = {}
    overlong = overlong_problems(table)
    for rec in table.records:
        cells = Cells(table, mapping, rec)
        client_text = " ".join(cells["client"].split())
        name = " ".join(cells["name"].split())
        client_id, why = clients.find(client_text)
        problems: list[Problem] = []
        if rec.line in overlong:
            problems.append(overlong[rec.line])
        if client_id is None:
            problems.append(Problem(rec.line, cells.column("client"), why))
        if not name:
            problems.append(Problem(rec.line, cells.column("name"), "Enter the agreement name."))
        if client_id is None or not name:
            orphans.append(PlannedRow(rec.line, ERROR, f"{client_text or '(no client)'} — {name or '(no name)'}",
                                      problems=tuple(problems), lines=(rec.line,)))
            continue
        key = (client_id, name_key(name))
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group(client_text, client_id, name, cells)
        group.rows.append(cells)
        group.problems.extend(problems)
        for value_key in _AGREEMENT_VALUES:
            before = len(group.problems)
            value = _read_value(cells, value_key, order, group.problems)
            if len(group.problems) > before:
                group.unreadable.add(value_key)
            if not value:
                continue
            if value_key not in group.values:
                group.values[value_key] = value
                group.value_lines[value_key] = rec.line
            elif value != group.values[value_key] and value_key != "notes":
                group.problems.append(Problem(
                    rec.line, cells.column(value_key),
                    f"The {_LABELS[value_key]} “{cells[value_key]}” differs from line "
                    f"{group.value_lines[value_key]} of the same agreement (“{group.values[value_key]}”)."))
        line, given = _line(cells, group.problems)
        group.lines.append(line)
        group.given.append(given)
    return list(groups.values())


def _issue_place(group: _Group, issue: Issue, line_rows: list[Cells | None]) -> tuple[int, str]:
    """Where in the file a form's issue is: `line_rows` gives the file row of each draft line
    (None for a kept line the file does not name)."""
    field_name = issue.field
    if field_name.startswith("lines["):
        index = int(field_name[6:field_name.index("]")])
        attr = field_name.rsplit(".", 1)[-1]
        cells = line_rows[index] if index < len(line_rows) else None
        if cells is None:
            return group.first.record.line, ""
        return cells.record.line, cells.column(attr)
    if field_name in group.value_lines:
        return group.value_lines[field_name], group.first.column(field_name)
    column_key = {"client_id": "client"}.get(field_name, field_name)
    return group.first.record.line, group.first.column(column_key)


def _detail(currency: str, group: _Group) -> str:
    total = 0
    for ln in group.lines:
        try:
            total += line_amount_cents(parse_decimal(ln.quantity, max_places=4), parse_amount(ln.unit_price, currency))
        except MoneyError:
            return f"{len(group.lines)} line{'s' if len(group.lines) != 1 else ''}"
    freq = group.values.get("frequency", "monthly")
    per = {"monthly": "month", "quarterly": "quarter", "annual": "year"}.get(freq, freq)
    n = len(group.lines)
    return f"{n} line{'s' if n != 1 else ''}, {format_amount(total, currency)} per {per}"


def _merge_lines(group: _Group, kept: list[LineDraft]) -> tuple[list[LineDraft], list[Cells | None]]:
    """The lines an update leaves: the kept lines in their order, each changed by the file line
    of the same description (its blank cells keeping the kept values), then the file's new lines.
    Also the file row of each line (None: a kept line the file does not name)."""
    by_description: dict[str, list[LineDraft]] = {}
    for old in kept:
        by_description.setdefault(name_key(old.description), []).append(old)
    changed: dict[int, tuple[LineDraft, Cells | None]] = {}
    added: list[tuple[LineDraft, Cells]] = []
    for ln, given, cells in zip(group.lines, group.given, group.rows, strict=True):
        olds = by_description.get(name_key(ln.description))
        if not olds:
            added.append((ln, cells))
            continue
        old = olds.pop(0)
        changed[id(old)] = (LineDraft(
            description=old.description,
            quantity=ln.quantity if given.quantity else old.quantity,
            unit_price=ln.unit_price if given.unit_price else old.unit_price,
            taxable=ln.taxable if given.taxable else old.taxable,
            series=old.series), cells)
    lines: list[LineDraft] = []
    rows: list[Cells | None] = []
    for old in kept:
        new, row = changed.get(id(old), (old, None))
        lines.append(new)
        rows.append(row)
    for ln, cells in added:
        lines.append(ln)
        rows.append(cells)
    return lines, rows


_PER = {"monthly": "month", "quarterly": "quarter", "annual": "year"}


def _update_detail(agreement: Agreement, values: dict[str, Any], kept_only: list[str]) -> str:
    """What an update changes: each line, the agreement's values, and the total per period."""
    currency = agreement.client.currency

    def price(cents: int) -> str:
        return format_amount(cents, currency, symbol=False)

    old_lines = {ln.series: ln for ln in agreement.lines}
    parts: list[str] = []
    for key, label in (("start_date", "start date"), ("end_date", "end date")):
        old_day, new_day = getattr(agreement, key), values[key]
        if old_day != new_day:
            parts.append(f"{label} {old_day.isoformat() if old_day else 'none'} → "
                         f"{new_day.isoformat() if new_day else 'none'}")
    if values["frequency"] is not agreement.frequency:
        parts.append(f"billing {agreement.frequency.value} → {values['frequency'].value}")
    if values["notes"] != agreement.notes:
        parts.append("notes changed")
    for v in values["lines"]:
        old = old_lines.get(v["series"]) if v["series"] is not None else None
        if old is None:
            parts.append(f"adds {v['description']} ({format_decimal(v['quantity'])} × "
                         f"{price(v['unit_price_cents'])}{', taxable' if v['taxable'] else ''})")
            continue
        changes = []
        if old.quantity != v["quantity"]:
            changes.append(f"quantity {format_decimal(old.quantity)} → {format_decimal(v['quantity'])}")
        if old.unit_price_cents != v["unit_price_cents"]:
            changes.append(f"{price(old.unit_price_cents)} → {price(v['unit_price_cents'])}")
        if old.taxable != v["taxable"]:
            changes.append("now taxable" if v["taxable"] else "no longer taxable")
        if changes:
            parts.append(f"{old.description}: {', '.join(changes)}")
    if kept_only:
        parts.append(f"keeps {', '.join(kept_only)} (not in the file; remove lines in the agreement dialog)")
    before = sum(line_amount_cents(ln.quantity, ln.unit_price_cents) for ln in agreement.lines)
    after = sum(line_amount_cents(v["quantity"], v["unit_price_cents"]) for v in values["lines"])
    old_freq, new_freq = agreement.frequency.value, values["frequency"].value
    if before == after and old_freq == new_freq:
        total = f"{old_freq} total {format_amount(after, currency)}, unchanged"
    else:
        total = (f"{old_freq} total {format_amount(before, currency)} → "
                 f"{'' if old_freq == new_freq else new_freq + ' total '}{format_amount(after, currency)}")
    changes_text = "; ".join(parts) if parts else "no changes"
    return f"{changes_text[:1].upper()}{changes_text[1:]}; {total}"


def _plan(session: Session, table: CsvTable, mapping: ColumnMapping,
          options: ImportOptions) -> tuple[ImportPlan, list[_Planned | None]]:
    file_problems = tuple(check_mapping("agreements", table.headers, mapping))
    if file_problems:
        return ImportPlan("agreements", table.file_name, (), options, file_problems, table.notices), []
    clients = _Clients.load(session)
    order = _file_date_order(table, mapping, options)
    notices = list(table.notices)
    if options.date_order == "auto" and order:
        example = "day first (31/01/2026)" if order == "dmy" else "month first (01/31/2026)"
        notices.append(f"The file's dates are written {example}; dates such as 03/04/2026 are read the same way.")
    elif options.date_order == "auto":
        order = _office_date_order(session)
        if order:
            notices.append("Dates such as 03/04/2026 are read month first (March 4), as in the United States; "
                           "choose day first (or --date-order dmy) if the file writes them the other way.")
    existing: dict[tuple[int, str], list[tuple[int, str]]] = {}
    for aid, cid, name in session.execute(select(Agreement.id, Agreement.client_id, Agreement.name)
                                          .where(Agreement.status == AgreementStatus.ACTIVE)):
        existing.setdefault((cid, name_key(name)), []).append((aid, name))

    orphans: list[PlannedRow] = []
    groups = _group_rows(table, mapping, clients, order, orphans)
    # The file's clients in a few queries, held here so that each session.get below (and the
    # form's, in validate_agreement) finds them in the session instead of loading one by one.
    client_ids = sorted({g.client_id for g in groups if g.client_id is not None})
    loaded: dict[int, Client] = {}
    for i in range(0, len(client_ids), 500):
        loaded.update((c.id, c) for c in session.scalars(select(Client).where(Client.id.in_(client_ids[i:i + 500]))))
    planned: list[tuple[PlannedRow, _Planned | None]] = [(o, None) for o in orphans]
    for group in groups:
        assert group.client_id is not None
        client = loaded.get(group.client_id)
        title = f"{client.legal_name if client else group.client_text} — {group.name}"
        line_numbers = tuple(c.record.line for c in group.rows)
        problems = list(group.problems)
        match = existing.get((group.client_id, name_key(group.name)), []) if options.duplicates != "create" else []
        draft = AgreementDraft(client_id=group.client_id, name=group.name,
                               start_date=group.values.get("start_date", ""),
                               end_date=group.values.get("end_date") or None,
                               frequency=group.values.get("frequency", "monthly"),
                               notes=group.values.get("notes", ""), lines=list(group.lines))
        detail = _detail(client.currency if client else "USD", group)
        action, reason, target = CREATE, "", None
        existing_agreement: Agreement | None = None
        line_rows: list[Cells | None] = list(group.rows)  # the file row of each draft line
        if match:
            target, matched_name = match[0]
            if options.duplicates == "skip":
                planned.append((PlannedRow(line_numbers[0], ERROR if problems else SKIP, title,
                                           f"Already in mspbill: {matched_name} (ID {target}).", tuple(problems),
                                           target_id=target, lines=line_numbers, detail=detail), None))
                continue
            existing_agreement = session.get(Agreement, target)
            assert existing_agreement is not None
            if is_invoiced(session, target):
                problems.append(Problem(line_numbers[0], group.first.column("name"),
                                        f"{matched_name} (ID {target}) has been invoiced, so an import does not "
                                        "change it: change its lines in the agreement dialog (they take effect "
                                        "from a date), or choose to skip duplicates."))
            current = agreement_detail(session, target).draft
            # A blank cell keeps the agreement's value; lines with the same description keep their history.
            draft.start_date = draft.start_date or current.start_date
            draft.end_date = draft.end_date or current.end_date or None
            if "frequency" not in group.values:
                draft.frequency = current.frequency
            draft.notes = draft.notes or current.notes
            draft.lines, line_rows = _merge_lines(group, current.lines)
            action, reason = UPDATE, f"Updates {matched_name} (ID {target})."
        values, issues = validate_agreement(session, draft, existing=existing_agreement)
        # The form numbers an agreement's lines ("Line 2: …"); the import names the file's line instead.
        problems += [Problem(*_issue_place(group, i, line_rows), re.sub(r"^Line \d+: ", "", i.message))
                     for i in issues
                     if i.field not in group.unreadable]  # "Enter the start date" after "not a date" says nothing
        if problems:
            action = ERROR
        elif existing_agreement is not None:
            detail = _update_detail(existing_agreement, values,
                                    [ln.description for ln, row in zip(draft.lines, line_rows, strict=True)
                                     if row is None])
        planned.append((PlannedRow(line_numbers[0], action, title, reason, tuple(problems), target_id=target,
                                   lines=line_numbers, detail=detail),
                        _Planned(draft, values) if action != ERROR else None))
    planned.sort(key=lambda p: p[0].line)
    plan = ImportPlan("agreements", table.file_name, tuple(p[0] for p in planned), options, (), tuple(notices),
                      order)
    return plan, [p[1] for p in planned]


def plan_agreement_import(session: Session, table: CsvTable, mapping: ColumnMapping,
                          options: ImportOptions | None = None) -> ImportPlan:
    """The preview: what each agreement of the file would do.  Reads only."""
    return _plan(session, table, mapping, options or ImportOptions())[0]


def import_agreements(session: Session, table: CsvTable, mapping: ColumnMapping,
                      options: ImportOptions | None = None) -> ImportResult:
    """Create and update the file's agreements in the caller's transaction, or raise
    ImportRefusedError (listing every problem) and write nothing."""
    options = options or ImportOptions()
    plan, drafts = _plan(session, table, mapping, options)
    if not plan.ok:
        raise ImportRefusedError(plan)
    updated: list[int] = []
    new: list[dict[str, Any]] = []
    for row, planned in zip(plan.rows, drafts, strict=True):
        if row.action == UPDATE and planned is not None and row.target_id is not None:
            update_agreement(session, row.target_id, planned.draft)
            updated.append(row.target_id)
        elif row.action == CREATE and planned is not None:
            new.append(planned.values)
    created = create_agreements(session, new)
    result = ImportResult("agreements", table.file_name, len(created), len(updated), plan.count(SKIP),
                          tuple(created), tuple(updated))
    record_import(session, plan, table, mapping, result)
    return result
