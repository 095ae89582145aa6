"""The audit log: one append-only entry for every change a person makes, and the trail viewer's queries.

Writing: `record(session, action, entity_type, entity_id, summary, details)` with the
operating-system user as the actor; a change of values goes in `details["changes"]`
as `diff(before, after)` = {field: [old, new]}.  Secrets never go in here (house rule 6).

Reading (Reports → Audit trail and `mspbill audit`): `search_audit` pages through the
entries matching an `AuditFilter`, newest first; `iter_audit` streams all of them for
`audit_csv` / `export_audit_csv`.  Each entry's *area* (Invoices, Payments, …) is worked
out from its action alone, by the one table `AREAS`: payments are logged against their
invoice (entity_type "invoice"), so the entity type cannot say which is which.
"""

from __future__ import annotations

import csv
import datetime as dt
import enum
import getpass
import io
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, not_, or_, select
from sqlalchemy.orm import Session

from mspbill.csv_cells import formula_safe
from mspbill.db.models import (
    Agreement,
    AuditEntry,
    BatchRun,
    Client,
    Invoice,
    InvoiceKind,
)
from mspbill.validation import Issue, ValidationError

SUMMARY_MAX = 500


def current_actor() -> str:
    try:
        return getpass.getuser()[:100] or "unknown"
    except Exception:  # noqa: BLE001 -- no login name (some services, containers)
        return "unknown"


def record(session: Session, action: str, entity_type: str, entity_id: int | None,
           summary: str, details: dict[str, Any] | None = None) -> AuditEntry:
    entry = AuditEntry(actor=current_actor(), action=action, entity_type=entity_type,
                       entity_id=entity_id, summary=summary[:SUMMARY_MAX], details=details)
    session.add(entry)
    return entry


def history(session: Session, entity_type: str, entity_id: int) -> list[AuditEntry]:
    stmt = (select(AuditEntry)
            .where(AuditEntry.entity_type == entity_type, AuditEntry.entity_id == entity_id)
            .order_by(AuditEntry.at, AuditEntry.id))
    return list(session.scalars(stmt))


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    """{field: [old, new]} for the fields that changed, as JSON-safe text."""
    return {k: [_jsonable(before.get(k)), _jsonable(v)]
            for k, v in after.items() if before.get(k) != v}


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, enum.Enum):  # its stored value ("monthly"), not "Frequency.MONTHLY"
        return _jsonable(value.value)
    return str(value)


# --- areas: which part of the office an action belongs to (the one place) -----------------

@dataclass(frozen=True)
class Area:
    key: str
    label: str
    prefixes: tuple[str, ...] = ()  # actions starting with these…
    actions: tuple[str, ...] = ()   # …and these exactly, whatever their prefix says


AREAS: tuple[Area, ...] = (
    Area("invoices", "Invoices", ("invoice.", "credit_note.")),
    # Payments are logged against their invoice; the charge steps carry "invoice." actions.
    Area("payments", "Payments", ("payment.", "autopay."), ("invoice.charge_started", "invoice.charge_not_made")),
    Area("agreements", "Agreements", ("agreement.",), ("import.agreements",)),
    Area("clients", "Clients", ("client.",), ("import.clients",)),
    Area("settings", "Settings", ("settings.", "company.", "database.")),  # backups restored: the office's data
    Area("other", "Other"),  # the month-end batch's own entries, the outbox…: everything else
)
AREA_KEYS = tuple(a.key for a in AREAS)
_BY_KEY = {a.key: a for a in AREAS}
_EXACT = {action: a for a in AREAS for action in a.actions}


def area_of(action: str) -> Area:
    if action in _EXACT:
        return _EXACT[action]
    for area in AREAS:
        if area.prefixes and action.startswith(area.prefixes):
            return area
    return _BY_KEY["other"]


def _area_condition(key: str) -> ColumnElement[bool]:
    action = AuditEntry.action
    if key == "other":
        return not_(or_(*(_area_condition(a.key) for a in AREAS if a.key != "other")))
    area = _BY_KEY[key]
    claimed = [a for a in _EXACT if _EXACT[a] is not area]  # exact actions another area takes
    matches = or_(*(action.startswith(p, autoescape=True) for p in area.prefixes),
                  action.in_(area.actions) if area.actions else false())
    return and_(matches, action.not_in(claimed)) if claimed else matches


# --- what each action is called in the viewer -----------------------------------------------

ACTION_LABELS: dict[str, str] = {
    # invoices
    "invoice.generated": "Draft generated",
    "invoice.created": "Draft created",
    "invoice.updated": "Draft edited",
    "invoice.deleted": "Draft deleted",
    "invoice.split": "Split into instalments",
    "invoice.issued": "Issued",
    "invoice.voided": "Voided",
    "invoice.uncollectible": "Written off",
    "invoice.credited": "Credited",
    "credit_note.issued": "Credit note issued",
    "invoice.email_queued": "E-mail queued",
    "invoice.emailed": "E-mailed",
    "invoice.email_failed": "E-mail failed",
    "invoice.email_retried": "E-mail retried",
    "invoice.email_discarded": "E-mail discarded",
    "invoice.receipt_queued": "Receipt queued",
    "invoice.reminder_queued": "Reminder queued",
    "invoice.reminder_withdrawn": "Reminder withdrawn",
    "invoice.late_fee": "Late fee charged",
    "invoice.late_fee_waived": "Late fee waived",
    "invoice.late_fee_voided": "Late fee voided",
    # payments
    "payment.recorded": "Payment recorded",
    "invoice.charge_started": "Charge started",
    "invoice.charge_not_made": "Charge not made",
    "payment.charged": "Charged",
    "payment.processing": "Bank debit started",
    "payment.settled": "Bank debit settled",
    "payment.declined": "Charge declined",
    "payment.unknown": "Charge outcome unknown",
    "payment.refund_started": "Refund started",
    "payment.refunded": "Refunded",
    "payment.refund_failed": "Refund failed",
    "payment.refund_unknown": "Refund outcome unknown",
    "autopay.over_cap_approved": "Over-cap charge approved",
    # agreements
    "agreement.created": "Agreement created",
    "agreement.updated": "Agreement changed",
    "agreement.archived": "Agreement archived",
    "agreement.restored": "Agreement restored",
    # clients
    "client.created": "Client created",
    "client.updated": "Client changed",
    "client.archived": "Client archived",
    "client.restored": "Client restored",
    "client.processor_customer": "Stripe customer linked",
    "client.setup_link": "Payment setup link",
    "client.setup_link_emailed": "Setup link e-mailed",
    "client.method_saved": "Payment method saved",
    "client.method_default": "Default method changed",
    "client.method_removed": "Payment method removed",
    "client.reminders_paused": "Reminders paused",
    "client.reminders_resumed": "Reminders resumed",
    # settings
    "company.created": "Company set up",
    "company.updated": "Company profile changed",
    "settings.mail": "E-mail settings changed",
    "settings.payments": "Payment settings changed",
    "settings.batch": "Month-end settings changed",
    "settings.reminders": "Reminder schedule changed",
    "settings.late_fees": "Late-fee policy changed",
    # other
    "batch.started": "Month-end run started",
    "batch.invoiced": "Month-end invoices issued",
    "batch.finished": "Month-end run finished",
    "outbox.discarded": "E-mail discarded",
    "import.clients": "Clients imported",
    "import.agreements": "Agreements imported",
    "database.restored": "Database restored",
    "database.restore_reconciled": "Restore reconciled",
    "database.copied": "Office copied to this database",
    "database.moved": "Office moved to another database",
    "database.reclaimed": "Copy left behind made the office again",
}


def action_label(action: str) -> str:
    """"Voided" for invoice.voided; an action without a label reads from its code."""
    if action in ACTION_LABELS:
        return ACTION_LABELS[action]
    tail = action.split(".", 1)[-1].replace("_", " ").strip()
    return tail[:1].upper() + tail[1:] if tail else action


# --- details as a person reads them ----------------------------------------------------------

_FIELD_LABELS = {"legal_name": "name", "billing_emails": "billing e-mails", "tax_rate_percent": "tax rate (%)",
                 "payment_terms_days": "payment terms (days)", "autopay_cap_cents": "autopay cap",
                 "unit_price_cents": "unit price", "from_address": "from address", "bcc_office": "bcc the office",
                 "setup_link_hours": "setup link hours", "setup_success_url": "page after setup"}


def field_label(key: str) -> str:
    text = _FIELD_LABELS.get(key) or key.removesuffix("_cents").replace("_", " ")
    return text[:1].upper() + text[1:]


def _value_text(key: str, value: Any) -> str:
    if value is None or value == "":
        return "(none)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) and key.endswith("_cents"):
        return f"{Decimal(value).scaleb(-2):.2f}"  # the currency is not in the entry; two places read best
    if isinstance(value, dict):
        return _line_text(value)
    if isinstance(value, list):
        return ", ".join(_value_text(key, v) for v in value) or "(none)"
    return " ".join(str(value).split())  # one line: templates and notes spread over several


def _line_text(line: dict[str, Any]) -> str:
    """An agreement or invoice line: "Managed seats × 12 @ 125.00 (taxable)"."""
    if "description" in line:
        text = str(line["description"])
        if "quantity" in line:
            text += f" × {line['quantity']}"
        if "unit_price_cents" in line:
            text += f" @ {_value_text('unit_price_cents', line['unit_price_cents'])}"
        if line.get("taxable") is False:
            text += " (not taxable)"
        return text
    return ", ".join(f"{field_label(k)}: {_value_text(k, v)}" for k, v in line.items())


def _change_lines(key: str, old: Any, new: Any) -> list[str]:
    if isinstance(old, list) and isinstance(new, list):
        gone = [_value_text(key, v) for v in old if v not in new]
        added = [_value_text(key, v) for v in new if v not in old]
        out = [f"{field_label(key)}:"]
        out += [f"  − {t}" for t in gone] + [f"  + {t}" for t in added]
        if len(out) == 1:
            out[0] += " reordered"
        return out
    return [f"{field_label(key)}: {_value_text(key, old)} → {_value_text(key, new)}"]


def describe_details(details: dict[str, Any] | None) -> list[str]:
    """The details as lines: each change as "Field: old → new", then the other facts as "Field: value"."""
    if not details:
        return []
    out: list[str] = []
    changes = details.get("changes")
    if isinstance(changes, dict):
        for key, pair in changes.items():
            if isinstance(pair, (list, tuple)) and len(pair) == 2:
                out += _change_lines(str(key), pair[0], pair[1])
            else:
                out.append(f"{field_label(str(key))}: {_value_text(str(key), pair)}")
    for key, value in details.items():
        if key == "changes" and isinstance(changes, dict):
            continue
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            out.append(f"{field_label(key)}:")
            out += [f"  • {_line_text(v)}" for v in value]
        else:
            out.append(f"{field_label(key)}: {_value_text(key, value)}")
    return out


def details_text(details: dict[str, Any] | None, sep: str = "\n") -> str:
    return sep.join(describe_details(details))


# --- the viewer's query ---------------------------------------------------------------------

@dataclass(frozen=True)
class AuditFilter:
    """What to show.  Days are the office's local days, both included; None leaves that side open."""

    from_day: dt.date | None = None
    to_day: dt.date | None = None
    actor: str | None = None           # exactly this user
    area: str | None = None            # a key of AREAS
    text: str = ""                     # in the summary, any case
    entity_type: str | None = None     # with entity_id: the entries of one invoice, client, agreement…
    entity_id: int | None = None
    client_id: int | None = None       # the client's own entries and those of its invoices and agreements

    def check(self) -> None:
        issues = []
        if self.from_day and self.to_day and self.from_day > self.to_day:
            issues.append(Issue("to_day", f"The range ends ({self.to_day.isoformat()}) before it starts "
                                          f"({self.from_day.isoformat()})."))
        if self.area is not None and self.area not in _BY_KEY:
            issues.append(Issue("area", f"“{self.area}” is not an area; use one of {', '.join(AREA_KEYS)}."))
        if issues:
            raise ValidationError(issues)


def local_midnight(day: dt.date) -> dt.datetime:
    """The start of `day` on this computer's clock, as an aware datetime (daylight saving included)."""
    return dt.datetime.combine(day, dt.time()).astimezone()


def _conditions(flt: AuditFilter) -> list[ColumnElement[bool]]:
    flt.check()
    where: list[ColumnElement[bool]] = []
    if flt.from_day is not None:
        where.append(AuditEntry.at >= local_midnight(flt.from_day))
    if flt.to_day is not None:
        where.append(AuditEntry.at < local_midnight(flt.to_day + dt.timedelta(days=1)))
    if flt.actor:
        where.append(AuditEntry.actor == flt.actor)
    if flt.area:
        where.append(_area_condition(flt.area))
    text = " ".join(flt.text.split())
    if text:
        where.append(AuditEntry.summary.icontains(text, autoescape=True))
    if flt.entity_type is not None:
        where.append(AuditEntry.entity_type == flt.entity_type)
    if flt.entity_id is not None:
        where.append(AuditEntry.entity_id == flt.entity_id)
    if flt.client_id is not None:
        cid = flt.client_id
        where.append(or_(
            and_(AuditEntry.entity_type == "client", AuditEntry.entity_id == cid),
            and_(AuditEntry.entity_type == "invoice",
                 AuditEntry.entity_id.in_(select(Invoice.id).where(Invoice.client_id == cid))),
            and_(AuditEntry.entity_type == "agreement",
                 AuditEntry.entity_id.in_(select(Agreement.id).where(Agreement.client_id == cid)))))
    return where


@dataclass(frozen=True)
class AuditRow:
    """One entry as the viewer shows it (a frozen snapshot: safe to hand to the UI thread)."""

    id: int
    at: dt.datetime                  # aware, UTC
    actor: str
    action: str
    entity_type: str
    entity_id: int | None
    item: str                        # "INV-000123", the client's name, the agreement's…
    item_exists: bool                # the invoice or client is still there to open
    summary: str
    details: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def area(self) -> Area:
        return area_of(self.action)

    @property
    def action_label(self) -> str:
        return action_label(self.action)

    @property
    def local_at(self) -> dt.datetime:
        return self.at.astimezone()

    @property
    def details_lines(self) -> list[str]:
        return describe_details(self.details)

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "at": self.local_at.isoformat(timespec="seconds"), "actor": self.actor,
                "area": self.area.key, "action": self.action, "action_label": self.action_label,
                "entity_type": self.entity_type, "entity_id": self.entity_id, "item": self.item,
                "summary": self.summary, "details": self.details, "details_text": self.details_lines}


@dataclass(frozen=True)
class AuditPage:
    rows: tuple[AuditRow, ...]
    total: int
    offset: int = 0

    @property
    def first(self) -> int:
        """1-based number of the first row shown (0 when none)."""
        return self.offset + 1 if self.rows else 0

    @property
    def last(self) -> int:
        return self.offset + len(self.rows)

    @property
    def range_text(self) -> str:
        if not self.total:
            return "No entries"
        return f"Showing {self.first:,}–{self.last:,} of {self.total:,}"


_COLUMNS = (AuditEntry.id, AuditEntry.at, AuditEntry.actor, AuditEntry.action, AuditEntry.entity_type,
            AuditEntry.entity_id, AuditEntry.summary, AuditEntry.details)


def _newest_first(flt: AuditFilter) -> Any:
    return select(*_COLUMNS).where(*_conditions(flt)).order_by(AuditEntry.at.desc(), AuditEntry.id.desc())


def search_audit(session: Session, flt: AuditFilter, limit: int = 500, offset: int = 0) -> AuditPage:
    """A page of the entries matching `flt`, newest first, and how many match in all."""
    limit, offset = max(1, limit), max(0, offset)
    total = session.scalar(select(func.count()).select_from(AuditEntry).where(*_conditions(flt))) or 0
    raw = session.execute(_newest_first(flt).limit(limit).offset(offset)).all()
    return AuditPage(_rows(session, raw), total, offset)


def iter_audit(session: Session, flt: AuditFilter, chunk: int = 5000) -> Iterator[AuditRow]:
    """Every entry matching `flt`, newest first, read `chunk` at a time (for the CSV of 200,000)."""
    result = session.execute(_newest_first(flt).execution_options(yield_per=chunk))
    for part in result.partitions():
        yield from _rows(session, part)


def actors(session: Session) -> list[str]:
    """Everyone who has changed something, for the viewer's user filter."""
    return sorted(session.scalars(select(AuditEntry.actor).distinct()), key=str.casefold)


# --- what each entry is about ------------------------------------------------------------

_FIXED_ITEMS = {"company": "Company profile", "settings": "Settings", "import": "CSV import",
                "database": "Database"}


def _rows(session: Session, raw: Sequence[Any]) -> tuple[AuditRow, ...]:
    raw = [tuple(r) for r in raw]  # plain tuples: unpacking them is much quicker than Row attributes
    wanted: dict[str, set[int]] = {}
    for _id, _at, _actor, _action, entity_type, entity_id, _summary, _details in raw:
        if entity_id is not None:
            wanted.setdefault(entity_type, set()).add(entity_id)
    names = _item_names(session, wanted)
    out = []
    for entry_id, at, actor, action, entity_type, entity_id, summary, details in raw:
        found = names.get((entity_type, entity_id))
        if found is not None:
            item, exists = found, entity_type in ("invoice", "client")
        elif entity_type in _FIXED_ITEMS:
            item, exists = _FIXED_ITEMS[entity_type], False
        elif entity_type == "invoice":
            item, exists = f"Invoice #{entity_id} (deleted)", False
        else:
            item = entity_type.replace("_", " ").capitalize() + (f" #{entity_id}" if entity_id is not None else "")
            exists = False
        if at.tzinfo is None:
            at = at.replace(tzinfo=dt.UTC)
        out.append(AuditRow(entry_id, at, actor, action, entity_type, entity_id, item, exists, summary, details))
    return tuple(out)


def _chunks(ids: Iterable[int], size: int = 500) -> Iterator[list[int]]:
    items = sorted(ids)
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _item_names(session: Session, wanted: dict[str, set[int]]) -> dict[tuple[str, int], str]:
    names: dict[tuple[str, int], str] = {}
    for ids in _chunks(wanted.get("invoice", ())):
        for iid, number, kind, client in session.execute(
                select(Invoice.id, Invoice.number, Invoice.kind, Client.legal_name)
                .join(Client, Client.id == Invoice.client_id).where(Invoice.id.in_(ids))):
            what = "Credit note draft" if kind is InvoiceKind.CREDIT_NOTE else "Draft"
            names[("invoice", iid)] = number or f"{what} for {client}"
    for ids in _chunks(wanted.get("client", ())):
        for cid, name in session.execute(select(Client.id, Client.legal_name).where(Client.id.in_(ids))):
            names[("client", cid)] = name
    for ids in _chunks(wanted.get("agreement", ())):
        for aid, name, client in session.execute(
                select(Agreement.id, Agreement.name, Client.legal_name)
                .join(Client, Client.id == Agreement.client_id).where(Agreement.id.in_(ids))):
            names[("agreement", aid)] = f"{name} · {client}"
    for ids in _chunks(wanted.get("batch_run", ())):
        for rid, period in session.execute(select(BatchRun.id, BatchRun.period).where(BatchRun.id.in_(ids))):
            names[("batch_run", rid)] = f"Month-end run {period}"
    return names


# --- CSV ------------------------------------------------------------------------------------

CSV_HEADERS = ("When", "Who", "Area", "Action", "Item", "Summary", "Details")


def _csv_cells(row: AuditRow) -> list[str]:
    return [row.local_at.isoformat(timespec="seconds"), formula_safe(row.actor), row.area.label,
            row.action_label, formula_safe(row.item), formula_safe(row.summary),
            formula_safe(details_text(row.details, "; "))]


def _write_csv(stream: Any, rows: Iterable[AuditRow]) -> int:
    writer = csv.writer(stream, lineterminator="\r\n")
    writer.writerow(CSV_HEADERS)
    count = 0
    for row in rows:
        writer.writerow(_csv_cells(row))
        count += 1
    return count


def audit_csv(rows: Iterable[AuditRow]) -> bytes:
    """UTF-8 with a BOM (a spreadsheet then reads the accents), every typed text cell formula-safe."""
    buffer = io.StringIO()
    _write_csv(buffer, rows)
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def export_audit_csv(session: Session, flt: AuditFilter, path: Path) -> int:
    """Write every entry matching `flt` to `path` (through a temporary file: never half-written);
    the number of entries.  Raises OSError when the file cannot be written."""
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=".mspbill-", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8-sig", newline="") as fh:
            count = _write_csv(fh, iter_audit(session, flt))
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp makes the file private (0600); an export is an ordinary document.
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count

