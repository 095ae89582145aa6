"""Clients: create, update, archive, restore, search.

Services take a Session and never commit (house rule 3).  Forms hand over a
ClientDraft of what the person typed; `validate_client` reports every problem
at once, and nothing is written while any stands.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mspbill import audit
from mspbill.db.models import (
    EMAILS_MAX,
    LINE_AMOUNT_SQL,
    NAME_MAX,
    TEXT_MAX,
    Agreement,
    AgreementLine,
    AgreementStatus,
    Client,
    ClientContact,
    ClientCredit,
    ClientStatus,
    utcnow,
)
from mspbill.money import (
    MoneyError,
    format_amount,
    is_valid_currency,
    parse_amount,
    parse_decimal,
)
from mspbill.validation import Issue, NotFoundError, ValidationError

MAX_TERMS_DAYS = 365
MAX_CONTACTS = 50


@dataclass
class ContactDraft:
    name: str = ""
    role: str = ""
    email: str = ""
    phone: str = ""


@dataclass
class ClientDraft:
    """What a person typed into the client form, as text."""

    legal_name: str = ""
    billing_emails: str = ""
    phone: str = ""
    address_line1: str = ""
    address_line2: str = ""
    city: str = ""
    region: str = ""
    postal_code: str = ""
    country: str = ""
    currency: str = "USD"
    tax_rate: str = "0"
    payment_terms_days: str = "30"
    autopay: bool = False
    # Percent off for being on autopay; blank follows the company's incentive.
    autopay_discount: str = ""
    # Charge automatically up to this invoice total; above it, approval first. Blank: no cap.
    autopay_cap: str = ""
    notes: str = ""
    contacts: list[ContactDraft] = field(default_factory=list)


@dataclass(frozen=True)
class ClientRow:
    """One line of the Clients table: a frozen snapshot, safe across threads."""

    id: int
    legal_name: str
    primary_email: str
    billing_emails: str
    city: str
    region: str
    currency: str
    autopay: bool
    status: str
    agreement_count: int
    monthly_value_cents: int
    created_at: dt.datetime
    # Client credit on account (overpayments, credit notes), applied to the next invoice issued.
    credit_cents: int = 0


@dataclass(frozen=True)
class ClientDetail:
    id: int
    draft: ClientDraft
    status: str
    archived_at: dt.datetime | None
    active_agreement_count: int
    credit_cents: int = 0


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_EMAIL_SPLIT = re.compile(r"[,;\s]+")


def _clean_text(value: str) -> str:
    # NFC so that "Zürich" typed on a Mac and on Windows compares equal.
    return unicodedata.normalize("NFC", (value or "").strip())


def check_name(value: str, field_name: str, what: str, issues: list[Issue],
               *, required: bool = True, limit: int = NAME_MAX) -> str:
    text = _clean_text(value)
    if required and not text:
        issues.append(Issue(field_name, f"Enter the {what}."))
    elif len(text) > limit:
        issues.append(Issue(field_name, f"The {what} is {len(text)} characters long; the limit is {limit}."))
    elif _CONTROL.search(text) or "\n" in text or "\r" in text or "\t" in text:
        issues.append(Issue(field_name, f"The {what} contains a line break or a control character."))
    return text


@functools.lru_cache(maxsize=65_536)
def _email_syntax(value: str) -> tuple[str | None, str]:
    """(normalised address, "") or (None, why not).  Cached: a CSV import checks each address
    at the preview and again at the commit (10,000 clients: ~1 s each time)."""
    try:
        return str(validate_email(value, check_deliverability=False).normalized), ""
    except EmailNotValidError as exc:
        return None, str(exc)


def check_email(value: str, field_name: str, issues: list[Issue], *, label: str = "") -> str | None:
    """Syntax only (no network): returns the normalised address or None."""
    normalised, why = _email_syntax(value)
    if normalised is None:
        prefix = f"“{label or value}” is not a valid e-mail address"
        issues.append(Issue(field_name, f"{prefix}: {why}"))
    return normalised


def parse_email_list(text: str, field_name: str, issues: list[Issue]) -> list[str]:
    emails: list[str] = []
    for part in _EMAIL_SPLIT.split(_clean_text(text)):
        if not part:
            continue
        normalised = check_email(part, field_name, issues)
        if normalised and normalised.lower() not in (e.lower() for e in emails):
            emails.append(normalised)
    return emails


def parse_tax_rate(text: str, field_name: str, issues: list[Issue]) -> Decimal:
    raw = (text or "").strip().rstrip("%").strip() or "0"
    try:
        rate = parse_decimal(raw, what="tax rate", max_places=4)
    except MoneyError as exc:
        issues.append(Issue(field_name, str(exc)))
        return Decimal(0)
    if rate < 0:
        issues.append(Issue(field_name, "The tax rate cannot be negative; use 0 for tax-exempt clients."))
    elif rate >= 100:
        issues.append(Issue(field_name, "The tax rate is a percentage below 100 (for example 8.25)."))
    return rate


def parse_terms(text: str | int, field_name: str, issues: list[Issue]) -> int:
    raw = str(text).strip()
    if not re.fullmatch(r"-?\d+", raw):
        issues.append(Issue(field_name, "Payment terms are a whole number of days (0 means due on receipt)."))
        return 0
    days = int(raw)
    if days < 0:
        issues.append(Issue(field_name, "Payment terms cannot be negative."))
    elif days > MAX_TERMS_DAYS:
        issues.append(Issue(field_name, f"Payment terms are at most {MAX_TERMS_DAYS} days."))
    return days


def parse_autopay_discount(text: str, issues: list[Issue]) -> Decimal | None:
    """Blank: the company's incentive applies.  Otherwise 0 to 50 percent, at most 2 decimals."""
    from mspbill.company import MAX_AUTOPAY_DISCOUNT

    cleaned = _clean_text(text or "").rstrip("%").strip()
    if not cleaned:
        return None
    try:
        value = parse_decimal(cleaned, what="autopay discount", max_places=2)
    except MoneyError as exc:
        issues.append(Issue("autopay_discount", str(exc)))
        return None
    if not 0 <= value <= MAX_AUTOPAY_DISCOUNT:
        issues.append(Issue("autopay_discount", f"The autopay discount is a percentage from 0 to "
                                                f"{MAX_AUTOPAY_DISCOUNT}; leave it blank to use the company's."))
        return None
    return value


def parse_autopay_cap(text: str, currency: str, issues: list[Issue]) -> int | None:
    """Blank: no cap.  Otherwise an amount above zero in the client's currency."""
    cleaned = _clean_text(text or "")
    if not cleaned:
        return None
    try:
        cents = parse_amount(cleaned, currency)
    except MoneyError as exc:
        issues.append(Issue("autopay_cap", str(exc)))
        return None
    if cents <= 0:
        issues.append(Issue("autopay_cap", "The autopay cap is an amount above zero; leave it blank for no cap."))
        return None
    return cents


def validate_client(draft: ClientDraft) -> tuple[dict[str, Any], list[Issue]]:
    """Every problem with the draft, and the cleaned values to store."""
    issues: list[Issue] = []
    v: dict[str, Any] = {}
    v["legal_name"] = check_name(draft.legal_name, "legal_name", "client's legal name", issues)
    emails = parse_email_list(draft.billing_emails, "billing_emails", issues)
    joined = ", ".join(emails)
    if len(joined) > EMAILS_MAX:
        issues.append(Issue("billing_emails", "Too many billing e-mail addresses."))
    v["billing_emails"] = joined
    v["phone"] = check_name(draft.phone, "phone", "phone number", issues, required=False, limit=50)
    for name, label, limit in (
        ("address_line1", "address", NAME_MAX), ("address_line2", "second address line", NAME_MAX),
        ("city", "city", 100), ("region", "state or region", 100),
        ("postal_code", "postal code", 20), ("country", "country", 100),
    ):
        v[name] = check_name(getattr(draft, name), name, label, issues, required=False, limit=limit)
    currency = _clean_text(draft.currency).upper()
    if not is_valid_currency(currency):
        issues.append(Issue("currency", "Currency is a three-letter ISO code such as USD or EUR."))
    v["currency"] = currency
    v["tax_rate_percent"] = parse_tax_rate(draft.tax_rate, "tax_rate", issues)
    v["payment_terms_days"] = parse_terms(draft.payment_terms_days, "payment_terms_days", issues)
    v["autopay"] = bool(draft.autopay)
    v["autopay_discount_percent"] = parse_autopay_discount(draft.autopay_discount, issues)
    v["autopay_cap_cents"] = parse_autopay_cap(draft.autopay_cap, currency if is_valid_currency(currency) else "USD",
                                               issues)
    notes = (draft.notes or "").strip()
    if len(notes) > TEXT_MAX:
        issues.append(Issue("notes", f"Notes are limited to {TEXT_MAX} characters."))
    v["notes"] = notes
    contacts: list[dict[str, str]] = []
    if len(draft.contacts) > MAX_CONTACTS:
        issues.append(Issue("contacts", f"At most {MAX_CONTACTS} contacts per client."))
    for i, c in enumerate(draft.contacts):
        if not any(_clean_text(x) for x in (c.name, c.role, c.email, c.phone)):
            continue  # an empty row in the contacts table is not a contact
        prefix = f"contacts[{i}]"
        contact = {
            "name": check_name(c.name, f"{prefix}.name", "contact's name", issues),
            "role": check_name(c.role, f"{prefix}.role", "contact's role", issues, required=False, limit=100),
            "phone": check_name(c.phone, f"{prefix}.phone", "contact's phone", issues, required=False, limit=50),
            "email": "",
        }
        if _clean_text(c.email):
            contact["email"] = check_email(_clean_text(c.email), f"{prefix}.email", issues) or ""
        contacts.append(contact)
    v["contacts"] = contacts
    return v, issues


_SCALAR_FIELDS = ("legal_name", "billing_emails", "phone", "address_line1", "address_line2", "city",
                  "region", "postal_code", "country", "currency", "tax_rate_percent",
                  "payment_terms_days", "autopay", "autopay_discount_percent", "autopay_cap_cents", "notes")


def _snapshot(client: Client) -> dict[str, Any]:
    snap: dict[str, Any] = {f: getattr(client, f) for f in _SCALAR_FIELDS}
    snap["contacts"] = [{"name": c.name, "role": c.role, "email": c.email, "phone": c.phone}
                        for c in client.contacts]
    return snap


def _apply(client: Client, values: dict[str, Any]) -> None:
    for f in _SCALAR_FIELDS:
        setattr(client, f, values[f])
    client.contacts = [ClientContact(position=i, **c) for i, c in enumerate(values["contacts"])]


def create_client(session: Session, draft: ClientDraft) -> Client:
    values, issues = validate_client(draft)
    if issues:
        raise ValidationError(issues)
    client = Client(status=ClientStatus.ACTIVE)
    _apply(client, values)
    session.add(client)
    session.flush()
    audit.record(session, "client.created", "client", client.id, f"Created client {client.legal_name}")
    return client


def create_clients(session: Session, values_list: list[dict[str, Any]]) -> list[int]:
    """Many clients at once (the CSV import): each from validate_client's values (validated by the
    caller), written in one flush where create_client flushes each one; the same columns and the
    same audit entry per client as create_client.  Returns the new ids."""
    clients = []
    for values in values_list:
        client = Client(status=ClientStatus.ACTIVE)
        _apply(client, values)
        clients.append(client)
    session.add_all(clients)
    session.flush()
    for client in clients:
        audit.record(session, "client.created", "client", client.id, f"Created client {client.legal_name}")
    return [c.id for c in clients]


def get_client(session: Session, client_id: int) -> Client:
    client = session.get(Client, client_id)
    if client is None:
        raise NotFoundError(f"Client {client_id} does not exist.")
    return client


def update_client(session: Session, client_id: int, draft: ClientDraft) -> Client:
    values, issues = validate_client(draft)
    if issues:
        raise ValidationError(issues)
    client = get_client(session, client_id)
    before = _snapshot(client)
    _apply(client, values)
    changes = audit.diff(before, values)
    if changes:
        session.flush()
        audit.record(session, "client.updated", "client", client.id,
                     f"Updated client {client.legal_name}: {', '.join(sorted(changes))}",
                     {"changes": changes})
    return client


def archive_client(session: Session, client_id: int) -> Client:
    """Archived clients leave lists and billing; nothing of theirs is deleted."""
    client = get_client(session, client_id)
    if client.status is not ClientStatus.ARCHIVED:
        client.status = ClientStatus.ARCHIVED
        client.archived_at = utcnow()
        audit.record(session, "client.archived", "client", client.id, f"Archived client {client.legal_name}")
    return client


def restore_client(session: Session, client_id: int) -> Client:
    client = get_client(session, client_id)
    if client.status is not ClientStatus.ACTIVE:
        client.status = ClientStatus.ACTIVE
        client.archived_at = None
        audit.record(session, "client.restored", "client", client.id, f"Restored client {client.legal_name}")
    return client


def client_draft(client: Client) -> ClientDraft:
    return ClientDraft(
        legal_name=client.legal_name, billing_emails=client.billing_emails, phone=client.phone,
        address_line1=client.address_line1, address_line2=client.address_line2, city=client.city,
        region=client.region, postal_code=client.postal_code, country=client.country,
        currency=client.currency, tax_rate=format(client.tax_rate_percent.normalize(), "f"),
        payment_terms_days=str(client.payment_terms_days), autopay=client.autopay,
        autopay_discount=("" if client.autopay_discount_percent is None
                          else format(client.autopay_discount_percent.normalize(), "f")),
        autopay_cap=("" if client.autopay_cap_cents is None
                     else format_amount(client.autopay_cap_cents, client.currency, symbol=False)),
        notes=client.notes,
        contacts=[ContactDraft(c.name, c.role, c.email, c.phone) for c in client.contacts],
    )


def credit_balances(session: Session, client_ids: list[int] | None = None, *,
                    positive_only: bool = False) -> dict[int, int]:
    """Client credit per client: the sum of its credit ledger, in one grouped query."""
    total = func.sum(ClientCredit.amount_cents)
    stmt = select(ClientCredit.client_id, total).group_by(ClientCredit.client_id)
    if client_ids is not None:
        stmt = stmt.where(ClientCredit.client_id.in_(client_ids))
    if positive_only:
        stmt = stmt.having(total > 0)
    return {cid: int(cents) for cid, cents in session.execute(stmt)}


def credit_balance(session: Session, client_id: int) -> int:
    return credit_balances(session, [client_id]).get(client_id, 0)


def client_detail(session: Session, client_id: int) -> ClientDetail:
    client = get_client(session, client_id)
    active = session.scalar(select(func.count(Agreement.id)).where(
        Agreement.client_id == client_id, Agreement.status == AgreementStatus.ACTIVE)) or 0
    return ClientDetail(client.id, client_draft(client), client.status.value, client.archived_at, active,
                        credit_balance(session, client_id))


def monthly_value_by_client(session: Session, today: dt.date | None = None) -> dict[int, int]:
    """Recurring value per client, normalised to a month, of agreements running today."""
    today = today or dt.date.today()
    # Summed by the database per client and frequency: the Clients screen with
    # 10,000 clients covers ~60,000 lines.
    stmt = (select(Agreement.client_id, Agreement.frequency, func.sum(LINE_AMOUNT_SQL))
            .join(AgreementLine, AgreementLine.agreement_id == Agreement.id)
            .where(AgreementLine.effective_from.is_(None) | (AgreementLine.effective_from <= today),
                   AgreementLine.effective_to.is_(None) | (AgreementLine.effective_to >= today))
            .where(Agreement.status == AgreementStatus.ACTIVE, Agreement.start_date <= today,
                   (Agreement.end_date.is_(None)) | (Agreement.end_date >= today))
            .group_by(Agreement.client_id, Agreement.frequency))
    totals: dict[int, int] = {}
    for client_id, freq, period_cents in session.execute(stmt):
        months = freq.months
        # Divide once per client and frequency, rounding half-up to the cent.
        totals[client_id] = totals.get(client_id, 0) + (2 * int(period_cents) + months) // (2 * months)
    return totals


def list_clients(session: Session, *, include_archived: bool = False, search: str = "") -> list[ClientRow]:
    """Snapshots for tables and `clients list`; `search` matches name or e-mail."""
    counts = dict(session.connection().execute(
        select(Agreement.client_id, func.count(Agreement.id))
        .where(Agreement.status == AgreementStatus.ACTIVE).group_by(Agreement.client_id)).all())
    values = monthly_value_by_client(session)
    credits = credit_balances(session)
    stmt = select(Client.id, Client.legal_name, Client.billing_emails, Client.city, Client.region,
                  Client.currency, Client.autopay, Client.status, Client.created_at)
    if not include_archived:
        stmt = stmt.where(Client.status == ClientStatus.ACTIVE)
    needle = _clean_text(search).casefold()
    rows: list[ClientRow] = []
    for cid, name, emails, city, region, currency, autopay, status, created in session.connection().execute(stmt):
        if needle and needle not in name.casefold() and needle not in emails.casefold():
            continue
        rows.append(ClientRow(
            id=cid, legal_name=name, primary_email=emails.split(",")[0].strip() if emails else "",
            billing_emails=emails, city=city, region=region, currency=currency, autopay=autopay,
            status=status.value, agreement_count=counts.get(cid, 0),
            monthly_value_cents=values.get(cid, 0), created_at=created, credit_cents=credits.get(cid, 0)))
    rows.sort(key=lambda r: r.legal_name.casefold())
    return rows


def client_choices(session: Session) -> list[tuple[int, str, str]]:
    """(id, name, currency) of active clients, for pickers."""
    stmt = (select(Client.id, Client.legal_name, Client.currency)
            .where(Client.status == ClientStatus.ACTIVE))
    return sorted(((i, n, c) for i, n, c in session.execute(stmt)), key=lambda t: t[1].casefold())

