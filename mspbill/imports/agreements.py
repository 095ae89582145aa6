"""Importing agreements with their lines: one row per line, rows of the same client and
agreement name grouped into one agreement (in file order, wherever they are in the file).

The client must already be in mspbill (import the clients first): the client column holds
its name or one of its billing e-mail addresses.  The agreement's own values (frequency,
dates, notes) are read from the first row that gives them; a later row of the same
agreement that says otherwise is an error, named with both lines.  Each agreement is
judged by the agreement form's rules (mspbill.agreements.validate_agreement).

An agreement already kept for the same client under the same name (case aside) is a
duplicate: skipped, updated (its lines become the file's; a line with the same
description keeps its history) or created anyway.  An agreement that has been invoiced
is not updated by an import: its line changes need a date they take effect from, which
the agreement dialog asks for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mspbill import audit
from mspbill.agreements import (
    AgreementDraft,
    LineDraft,
    agreement_detail,
    is_invoiced,
    update_agreement,
    validate_agreement,
)
from mspbill.agreements import _apply as apply_agreement_values
from mspbill.agreements import _apply_lines as apply_agreement_lines
from mspbill.agreements import _lines_snapshot as agreement_lines_snapshot
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


def _line(cells: Cells, problems: list[Problem]) -> LineDraft:
    taxable = True
    try:
        taxable = parse_yes_no(cells["taxable"], "taxable", True)
    except CellError as exc:
        problems.append(Problem(cells.record.line, cells.column("taxable"), str(exc)))
    quantity = number_text(cells["quantity"]) or "1"
    return LineDraft(description=cells["description"], quantity=quantity,
                     unit_price=number_text(cells["unit_price"]), taxable=taxable)


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
        group.lines.append(_line(cells, group.problems))
    return list(groups.values())


def _issue_place(group: _Group, issue: Issue) -> tuple[int, str]:
    field_name = issue.field
    if field_name.startswith("lines["):
        index = int(field_name[6:field_name.index("]")])
        attr = field_name.rsplit(".", 1)[-1]
        cells = group.rows[index] if index < len(group.rows) else group.first
        return cells.record.line, cells.column(attr)
    if field_name in group.value_lines:
        return group.value_lines[field_name], group.first.column(field_name)
    column_key = {"client_id": "client"}.get(field_name, field_name)
    return group.first.record.line, group.first.column(column_key)


def _detail(session: Session, group: _Group) -> str:
    client = session.get(Client, group.client_id) if group.client_id is not None else None
    currency = client.currency if client else "USD"
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
    existing: dict[tuple[int, str], list[tuple[int, str]]] = {}
    for aid, cid, name in session.execute(select(Agreement.id, Agreement.client_id, Agreement.name)
                                          .where(Agreement.status == AgreementStatus.ACTIVE)):
        existing.setdefault((cid, name_key(name)), []).append((aid, name))

    orphans: list[PlannedRow] = []
    groups = _group_rows(table, mapping, clients, order, orphans)
    planned: list[tuple[PlannedRow, _Planned | None]] = [(o, None) for o in orphans]
    for group in groups:
        assert group.client_id is not None
        client = session.get(Client, group.client_id)
        title = f"{client.legal_name if client else group.client_text} — {group.name}"
        line_numbers = tuple(c.record.line for c in group.rows)
        problems = list(group.problems)
        match = existing.get((group.client_id, name_key(group.name)), []) if options.duplicates != "create" else []
        draft = AgreementDraft(client_id=group.client_id, name=group.name,
                               start_date=group.values.get("start_date", ""),
                               end_date=group.values.get("end_date") or None,
                               frequency=group.values.get("frequency", "monthly"),
                               notes=group.values.get("notes", ""), lines=list(group.lines))
        detail = _detail(session, group)
        action, reason, target = CREATE, "", None
        existing_agreement: Agreement | None = None
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
            by_description = {name_key(ln.description): ln.series for ln in current.lines}
            for ln in draft.lines:
                ln.series = by_description.pop(name_key(ln.description), None)
            action, reason = UPDATE, f"Updates {matched_name} (ID {target})."
        values, issues = validate_agreement(session, draft, existing=existing_agreement)
        # The form numbers an agreement's lines ("Line 2: …"); the import names the file's line instead.
        problems += [Problem(*_issue_place(group, i), re.sub(r"^Line \d+: ", "", i.message)) for i in issues
                     if i.field not in group.unreadable]  # "Enter the start date" after "not a date" says nothing
        if problems:
            action = ERROR
        planned.append((PlannedRow(line_numbers[0], action, title, reason, tuple(problems), target_id=target,
                                   lines=line_numbers, detail=detail),
                        _Planned(draft, values) if action != ERROR else None))
    planned.sort(key=lambda p: p[0].line)
    plan = ImportPlan("agreements", table.file_name, tuple(p[0] for p in planned), options, (), tuple(notices),
                      order)
    return plan, [p[1] for p in planned]


def create_agreements(session: Session, values_list: list[dict[str, Any]]) -> list[int]:
    """Agreements from validate_agreement's values, written in one flush (create_agreement flushes
    each one).  The same columns and lines (mspbill.agreements._apply, _apply_lines) and the same
    audit entry per agreement as create_agreement."""
    agreements = []
    for values in values_list:
        agreement = Agreement(status=AgreementStatus.ACTIVE)
        apply_agreement_values(agreement, values)
        apply_agreement_lines(agreement, values["lines"], None)
        agreements.append(agreement)
    session.add_all(agreements)
    session.flush()
    for agreement in agreements:
        client = session.get(Client, agreement.client_id)
        audit.record(session, "agreement.created", "agreement", agreement.id,
                     f"Created agreement {agreement.name} for "
                     + (client.legal_name if client is not None else f"client {agreement.client_id}"),
                     {"lines": agreement_lines_snapshot(agreement)})
    return [a.id for a in agreements]


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
