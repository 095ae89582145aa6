"""The clients as a plain CSV file that the client import reads back unchanged.

The headers are the import's own field names, so the import maps every column by
itself; UTF-8 with a BOM (Excel then shows accents right); every text cell goes through
formula_safe (a client named "=HYPERLINK(…)" stays text in a spreadsheet, and the import
takes the guarding apostrophe off again).  The first contact has its own columns; the
others share "Other contacts", one contact per line inside the cell.
"""

from __future__ import annotations

import csv
import io

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from mspbill.csv_cells import formula_safe
from mspbill.db.models import Client, ClientStatus
from mspbill.imports.mapping import CLIENT_FIELDS
from mspbill.money import format_decimal, from_minor

EXPORT_FIELDS = tuple(f.key for f in CLIENT_FIELDS)
HEADERS = tuple(f.label for f in CLIENT_FIELDS)


def _contact_line(name: str, role: str, email: str, phone: str) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow([name, role, email, phone])
    return buffer.getvalue()


def client_cells(client: Client) -> list[str]:
    """One client's row, in the order of HEADERS."""
    contacts = list(client.contacts)
    first = contacts[0] if contacts else None
    text = {
        "legal_name": client.legal_name, "billing_emails": client.billing_emails, "phone": client.phone,
        "contact_name": first.name if first else "", "contact_role": first.role if first else "",
        "contact_email": first.email if first else "", "contact_phone": first.phone if first else "",
        "more_contacts": "\n".join(_contact_line(c.name, c.role, c.email, c.phone) for c in contacts[1:]),
        "address_line1": client.address_line1, "address_line2": client.address_line2, "city": client.city,
        "region": client.region, "postal_code": client.postal_code, "country": client.country,
        "currency": client.currency, "notes": client.notes,
    }
    # Numbers we write ourselves stay plain (formula_safe would make "-5" the text "'-5").
    numbers = {
        "tax_rate": format_decimal(client.tax_rate_percent),
        "payment_terms_days": str(client.payment_terms_days),
        "autopay": "yes" if client.autopay else "no",
        "autopay_discount": ("" if client.autopay_discount_percent is None
                             else format_decimal(client.autopay_discount_percent)),
        "autopay_cap": ("" if client.autopay_cap_cents is None
                        else str(from_minor(client.autopay_cap_cents, client.currency))),
    }
    return [formula_safe(text[k]) if k in text else numbers[k] for k in EXPORT_FIELDS]


def export_clients_csv(session: Session, *, include_archived: bool = False) -> bytes:
    """Every active client (and the archived ones if asked), by name, as UTF-8 CSV with a BOM."""
    stmt = select(Client).options(selectinload(Client.contacts))
    if not include_archived:
        stmt = stmt.where(Client.status == ClientStatus.ACTIVE)
    clients = sorted(session.scalars(stmt), key=lambda c: (c.legal_name.casefold(), c.id))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADERS)
    for client in clients:
        writer.writerow(client_cells(client))
    return buffer.getvalue().encode("utf-8-sig")
