"""Importing clients: each row becomes a ClientDraft, judged by the client form's own rules
(mspbill.clients.validate_client), matched against the clients already kept and the rows
above it, and then created, updated or skipped — all in one transaction, or not at all.

Matching: a row is the same client as an existing one when the names are equal (case,
blanks and accents' encoding aside) or when they share a billing e-mail address.  The
person chooses per import what happens to such rows: skip them (the default), update the
existing client (the file's non-blank cells replace its values; a blank cell keeps what
is there; contacts are added, or updated by name), or create a new client anyway.  A row
found only by a shared billing e-mail under another name (sister companies often share
one accounts-payable address) never renames the client: "update" keeps the client's
name, and the preview says so on that row.  A row
that repeats an earlier row of the same file is skipped (unless "create anyway").
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mspbill import audit
from mspbill.clients import (
    ClientDraft,
    ContactDraft,
    client_draft,
    create_clients,
    update_client,
    validate_client,
)
from mspbill.db.models import Client, ClientStatus
from mspbill.imports.cells import (
    CellError,
    looks_like_formula,
    number_text,
    parse_yes_no,
    terms_text,
)
from mspbill.imports.common import (
    Cells,
    company_defaults,
    email_keys,
    name_key,
    overlong_problems,
)
from mspbill.imports.mapping import ColumnMapping, check_mapping, fields_for
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
from mspbill.validation import Issue

# Draft attributes filled from the cell of the same import field, as text.
_TEXT_FIELDS = ("legal_name", "billing_emails", "phone", "address_line1", "address_line2", "city", "region",
                "postal_code", "country", "notes")
_CONTACT_FIELDS = ("contact_name", "contact_role", "contact_email", "contact_phone")


@dataclass(frozen=True)
class _Planned:
    draft: ClientDraft
    values: dict[str, Any]  # validate_client's cleaned values


@dataclass
class _Existing:
    id: int
    name: str
    archived: bool


def _contacts_from(cells: Cells) -> list[ContactDraft]:
    contacts: list[ContactDraft] = []
    primary = ContactDraft(cells["contact_name"], cells["contact_role"], cells["contact_email"],
                           cells["contact_phone"])
    if any((primary.name, primary.role, primary.email, primary.phone)):
        contacts.append(primary)
    more = cells["more_contacts"]
    for line in more.splitlines():
        if not line.strip():
            continue
        parts = next(csv.reader(io.StringIO(line), skipinitialspace=True), [])
        parts = [p.strip() for p in parts] + [""] * 4
        contacts.append(ContactDraft(*parts[:4]))
    return contacts


def _merge_contacts(existing: list[ContactDraft], new: list[ContactDraft]) -> list[ContactDraft]:
    out = list(existing)
    for c in new:
        key = name_key(c.name)
        for i, old in enumerate(out):
            if key and name_key(old.name) == key:
                out[i] = ContactDraft(old.name, c.role or old.role, c.email or old.email, c.phone or old.phone)
                break
        else:
            out.append(c)
    return out


def _unfold_address(d: ClientDraft, cells: Cells) -> None:
    """PSA and QuickBooks exports often put a whole street address, line breaks and all, in one quoted
    cell: its second line goes to address line 2 when the file gives none, and any further line
    breaks in the address and city cells become ", " (the client form takes one line each)."""
    first = [part.strip() for part in d.address_line1.splitlines() if part.strip()]
    if len(first) > 1:
        d.address_line1 = first[0]
        rest = ", ".join(first[1:])
        d.address_line2 = f"{rest}, {cells['address_line2']}" if cells["address_line2"] else rest
    for key in ("address_line2", "city", "region", "postal_code", "country", "phone"):
        value = getattr(d, key)
        if "\n" in value or "\r" in value:
            setattr(d, key, ", ".join(p.strip() for p in value.splitlines() if p.strip()))


def _draft(cells: Cells, base: ClientDraft, problems: list[Problem], *, updating: bool) -> ClientDraft:
    """The row as a ClientDraft on top of `base` (the defaults, or the existing client when updating)."""
    line = cells.record.line
    d = replace(base, contacts=list(base.contacts))
    for key in _TEXT_FIELDS:
        value = cells[key]
        if value or (not updating and cells.has(key)):
            setattr(d, key, value)
    _unfold_address(d, cells)
    if cells["currency"]:
        d.currency = cells["currency"].upper()
    if cells["tax_rate"]:
        d.tax_rate = number_text(cells["tax_rate"].replace(" ", ""))
    if cells["payment_terms_days"]:
        d.payment_terms_days = terms_text(cells["payment_terms_days"])
    if cells["autopay_discount"]:
        d.autopay_discount = number_text(cells["autopay_discount"])
    if cells["autopay_cap"]:
        d.autopay_cap = number_text(cells["autopay_cap"])
    try:
        d.autopay = parse_yes_no(cells["autopay"], "autopay", d.autopay)
    except CellError as exc:
        problems.append(Problem(line, cells.column("autopay"), str(exc)))
    contacts = _contacts_from(cells)
    if contacts:
        d.contacts = _merge_contacts(d.contacts, contacts) if updating else contacts
    return d


_ISSUE_FIELDS = {"tax_rate": "tax_rate", "payment_terms_days": "payment_terms_days", "currency": "currency",
                 "autopay_discount": "autopay_discount", "autopay_cap": "autopay_cap"}


def _issue_column(cells: Cells, issue: Issue) -> str:
    field = issue.field
    if field.startswith("contacts["):
        attr = field.rsplit(".", 1)[-1]
        key = f"contact_{attr}"
        if field.startswith("contacts[0]") and cells.has(key) and cells["contact_name"]:
            return cells.column(key)
        return cells.column("more_contacts") or cells.column(key)
    return cells.column(_ISSUE_FIELDS.get(field, field))


def _row_name(cells: Cells) -> str:
    return " ".join(cells["legal_name"].split()) or "(no name)"


def _plan(session: Session, table: CsvTable, mapping: ColumnMapping,
          options: ImportOptions) -> tuple[ImportPlan, list[_Planned | None]]:
    file_problems = tuple(check_mapping("clients", table.headers, mapping))
    if file_problems:
        return ImportPlan("clients", table.file_name, (), options, file_problems, table.notices), []
    currency, terms = company_defaults(session)
    defaults = ClientDraft(currency=currency, payment_terms_days=terms)

    by_name: dict[str, list[_Existing]] = {}
    by_email: dict[str, list[_Existing]] = {}
    for cid, name, kept_emails, status in session.execute(
            select(Client.id, Client.legal_name, Client.billing_emails, Client.status)):
        item = _Existing(cid, name, status is ClientStatus.ARCHIVED)
        by_name.setdefault(name_key(name), []).append(item)
        for e in email_keys(kept_emails):
            by_email.setdefault(e, []).append(item)
    seen_names: dict[str, int] = {}
    seen_emails: dict[str, int] = {}
    targeted: dict[int, int] = {}  # existing client id -> the line that updates or skips it
    overlong = overlong_problems(table)

    rows: list[PlannedRow] = []
    drafts: list[_Planned | None] = []
    for rec in table.records:
        cells = Cells(table, mapping, rec)
        name = _row_name(cells)
        problems: list[Problem] = []
        notes: list[str] = []
        if rec.line in overlong:
            problems.append(overlong[rec.line])
        raw_name = cells["legal_name"]
        if looks_like_formula(raw_name):
            notes.append(f"The name starts with “{raw_name[0]}”; it is kept as written, and mspbill's CSV files "
                         "mark it so a spreadsheet shows it as text, not as a formula.")
        key = name_key(raw_name)
        emails = email_keys(cells["billing_emails"])

        # The same client as an earlier row of this file?
        earlier = seen_names.get(key) if key else None
        how = "name"
        if earlier is None:
            earlier = next((seen_emails[e] for e in emails if e in seen_emails), None)
            how = "billing e-mail"
        if earlier is not None and options.duplicates != "create":
            rows.append(PlannedRow(rec.line, SKIP, name, f"The same client (by {how}) as line {earlier}; "
                                                         "only the first row is imported.",
                                   tuple(problems), tuple(notes)))
            drafts.append(None)
            continue

        # The same client as one kept already?
        match: _Existing | None = None
        shared = ""  # the billing e-mail a match by e-mail was found by
        if options.duplicates != "create":
            found = by_name.get(key, []) if key else []
            how = "name"
            if not found:
                shared = next((e for e in emails if e in by_email), "")
                found = by_email.get(shared, [])
                how = "billing e-mail"
            if found:
                match = found[0]
                if len(found) > 1:
                    notes.append(f"{len(found)} clients already match by {how}; the first ({match.name}, "
                                 f"ID {match.id}) is used.")
        if key:
            seen_names.setdefault(key, rec.line)
        for e in emails:
            seen_emails.setdefault(e, rec.line)

        if match is not None:
            archived = " (archived)" if match.archived else ""
            # Sister companies often share one accounts-payable address: a row found only by its
            # e-mail under another name may be another company, so it never renames the client.
            other_name = how == "billing e-mail" and bool(key) and key != name_key(match.name)
            if match.id in targeted:
                rows.append(PlannedRow(rec.line, SKIP, name, f"Line {targeted[match.id]} already matches "
                                                             f"{match.name}{archived}.", tuple(problems),
                                       tuple(notes), match.id))
                drafts.append(None)
                continue
            targeted[match.id] = rec.line
            if options.duplicates == "skip":
                reason = f"Already in mspbill by {how}: {match.name}{archived} (ID {match.id})."
                if other_name:
                    reason = (f"{name} shares the billing e-mail {shared} with {match.name}{archived} "
                              f"(ID {match.id}); not imported. If it is a separate company, give it its own "
                              "billing e-mail in the file or add it in the Clients screen.")
                rows.append(PlannedRow(rec.line, SKIP if not problems else ERROR, name, reason,
                                       tuple(problems), tuple(notes), match.id))
                drafts.append(None)
                continue
            client = session.get(Client, match.id)
            assert client is not None
            draft = _draft(cells, client_draft(client), problems, updating=True)
            reason = f"Updates {match.name}{archived} (ID {match.id}), matched by {how}."
            if how == "name" or other_name:
                # By name: equal but for case or blanks, so the name stays as kept.  By e-mail under
                # another name: perhaps a sister company, so the name is not the file's to change.
                draft.legal_name = client.legal_name
            if other_name:
                reason = (f"{name} shares the billing e-mail {shared} with {match.name}{archived} "
                          f"(ID {match.id}): updates {match.name} from this row but keeps its name. If {name} is "
                          "a separate company, skip duplicates and add it in the Clients screen, or give it its "
                          "own billing e-mail in the file.")
            action = UPDATE
        else:
            draft = _draft(cells, defaults, problems, updating=False)
            reason = "New client."
            action = CREATE
        values, issues = validate_client(draft)
        problems += [Problem(rec.line, _issue_column(cells, i), i.message) for i in issues]
        if problems:
            action = ERROR
        rows.append(PlannedRow(rec.line, action, name, reason, tuple(problems), tuple(notes),
                               match.id if match else None))
        drafts.append(_Planned(draft, values) if action != ERROR else None)
    return ImportPlan("clients", table.file_name, tuple(rows), options, (), table.notices), drafts


def plan_client_import(session: Session, table: CsvTable, mapping: ColumnMapping,
                       options: ImportOptions | None = None) -> ImportPlan:
    """The preview: what each row would do.  Reads only."""
    return _plan(session, table, mapping, options or ImportOptions())[0]


def import_clients(session: Session, table: CsvTable, mapping: ColumnMapping,
                   options: ImportOptions | None = None) -> ImportResult:
    """Create and update the clients of the file in the caller's transaction, or raise
    ImportRefusedError (listing every problem) and write nothing."""
    options = options or ImportOptions()
    plan, drafts = _plan(session, table, mapping, options)
    if not plan.ok:
        raise ImportRefusedError(plan)
    updated: list[int] = []
    for row, planned in zip(plan.rows, drafts, strict=True):
        if row.action == UPDATE and planned is not None and row.target_id is not None:
            update_client(session, row.target_id, planned.draft)
            updated.append(row.target_id)
    created = create_clients(session, [p.values for row, p in zip(plan.rows, drafts, strict=True)
                                       if row.action == CREATE and p is not None])
    result = ImportResult("clients", table.file_name, len(created), len(updated), plan.count(SKIP),
                          tuple(created), tuple(updated))
    record_import(session, plan, table, mapping, result)
    return result


def record_import(session: Session, plan: ImportPlan, table: CsvTable, mapping: ColumnMapping,
                  result: ImportResult) -> None:
    """One audit entry for the import as a whole (each record has its own entries too)."""
    fields = {f.key: table.headers[mapping[f.key]] for f in fields_for(plan.kind) if f.key in mapping}
    audit.record(session, f"import.{plan.kind}", "import", None, result.summary(), {
        "file": table.file_name, "encoding": table.encoding, "separator": table.separator_name,
        "rows": len(table.records), "created": result.created, "updated": result.updated,
        "skipped": result.skipped, "duplicates": plan.options.duplicates, "mapping": fields,
    })


__all__ = ["ERROR", "import_clients", "plan_client_import", "record_import"]
