"""Small builders shared by the invoicing tests (periods, generation, invoicing, payments).

Expected amounts are worked out here with Decimal from the rule in DESIGN.md
("Billing semantics"), independently of mspbill.periods, so a test compares the
code against the rule rather than against itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import select

from mspbill.agreements import AgreementDraft, LineDraft, agreement_detail, create_agreement, update_agreement
from mspbill.clients import ClientDraft, create_client
from mspbill.company import CompanyDraft, save_company
from mspbill.db.engine import Database
from mspbill.db.models import ClientCredit, Invoice, InvoiceLine, LineKind
from mspbill.generation import GenerationResult, generate_period
from mspbill.invoicing import OneTimeDraft, create_one_time_invoice, ItemDraft, issue_invoices, issue_month
from mspbill.periods import Month

ISSUE_DAY = dt.date(2026, 11, 1)


def half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def prorated(quantity: str, unit_price: str, days: int, period_days: int) -> int:
    """round_half_up(quantity × unit price × days ÷ period days), in cents."""
    return half_up(Decimal(quantity) * Decimal(unit_price) * 100 * days / period_days)


def full(quantity: str, unit_price: str) -> int:
    return half_up(Decimal(quantity) * Decimal(unit_price) * 100)


def tax_of(taxable_cents: int, rate_percent: str) -> int:
    return half_up(Decimal(taxable_cents) * Decimal(rate_percent) / 100)


def days(start: dt.date, end: dt.date) -> int:
    """Days from start to end, both included."""
    return (end - start).days + 1


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


# --- building an office ----------------------------------------------------------

def setup_office(db: Database, **company: str) -> None:
    values = {"name": "Acme IT"}
    values.update(company)
    with db.write_session() as s, s.begin():
        save_company(s, CompanyDraft(**values))


def make_client(db: Database, name: str = "Client A", **fields: object) -> int:
    values: dict[str, object] = {"legal_name": name, "billing_emails": "ap@client.example"}
    values.update(fields)
    with db.write_session() as s, s.begin():
        return create_client(s, ClientDraft(**values)).id  # type: ignore[arg-type]


def make_agreement(db: Database, client_id: int, start: str, lines: list[LineDraft], *,
                   end: str | None = None, frequency: str = "monthly", name: str = "Managed IT") -> int:
    with db.write_session() as s, s.begin():
        return create_agreement(s, AgreementDraft(client_id=client_id, name=name, start_date=start,
                                                  end_date=end, frequency=frequency, lines=lines)).id


def change_agreement(db: Database, agreement_id: int, edit: Callable[[AgreementDraft], None],
                     effective: dt.date | None = None) -> None:
    """Open the agreement as the edit form would, apply `edit`, save with `effective`."""
    with db.write_session() as s, s.begin():
        draft = agreement_detail(s, agreement_id).draft
        edit(draft)
        update_agreement(s, agreement_id, draft, effective_date=effective)


def line(draft: AgreementDraft, description: str) -> LineDraft:
    return next(ln for ln in draft.lines if ln.description == description)


def generate(db: Database, month: Month) -> GenerationResult:
    with db.write_session() as s, s.begin():
        return generate_period(s, month)


def issue(db: Database, month: Month, issue_date: dt.date = ISSUE_DAY) -> list[str]:
    with db.write_session() as s, s.begin():
        return issue_month(s, month, issue_date)


def issue_ids(db: Database, ids: list[int], issue_date: dt.date = ISSUE_DAY) -> list[str]:
    with db.write_session() as s, s.begin():
        return issue_invoices(s, ids, issue_date)


def run_month(db: Database, month: Month, issue_date: dt.date = ISSUE_DAY) -> list[int]:
    """Generate and issue a month; the ids created."""
    ids = generate(db, month).invoice_ids
    issue(db, month, issue_date)
    return ids


def one_time(db: Database, client_id: int, *items: tuple[str, str, str] | tuple[str, str, str, bool],
             title: str = "Server upgrade") -> int:
    with db.write_session() as s, s.begin():
        return create_one_time_invoice(s, OneTimeDraft(client_id, title, "", [ItemDraft(*it) for it in items])).id


def invoice(db: Database, invoice_id: int) -> Invoice:
    """The invoice with its lines loaded, detached from a closed session."""
    with db.session() as s:
        inv = s.get(Invoice, invoice_id)
        assert inv is not None
        _ = list(inv.lines)
        s.expunge_all()
        return inv


def invoices_of(db: Database, agreement_id: int) -> list[Invoice]:
    with db.session() as s:
        rows = list(s.scalars(select(Invoice).where(Invoice.agreement_id == agreement_id).order_by(Invoice.id)))
        for inv in rows:
            _ = list(inv.lines)
        s.expunge_all()
        return rows


def lines_of(inv: Invoice, kind: LineKind | None = None) -> list[InvoiceLine]:
    return [ln for ln in inv.lines if kind is None or ln.kind is kind]


def amounts(inv: Invoice, kind: LineKind | None = None) -> list[int]:
    return [ln.amount_cents for ln in lines_of(inv, kind)]


def credit_balance(db: Database, client_id: int) -> int:
    with db.session() as s:
        return sum(s.scalars(select(ClientCredit.amount_cents).where(ClientCredit.client_id == client_id)))


def credit_entries(db: Database, client_id: int) -> list[tuple[str, int]]:
    with db.session() as s:
        return [(c.reason.value, c.amount_cents) for c in s.scalars(
            select(ClientCredit).where(ClientCredit.client_id == client_id).order_by(ClientCredit.id))]


# --- invoices with arbitrary lines (PDF tests) -------------------------------------

def draft_with_lines(db: Database, client_id: int, lines: list[tuple[str, str, int, str]], *,
                     title: str = "Managed services", memo: str = "",
                     period: tuple[dt.date, dt.date] | None = None) -> int:
    """A draft built straight in the database: (kind, quantity, unit price cents, description) per
    line.  Unlike one_time() it takes any number of lines and any kind (adjustment, discount),
    as generated invoices have them."""
    from decimal import Decimal as _D

    from mspbill.db.models import QUANTITY_SCALE, Client, InvoiceKind, InvoiceStatus
    from mspbill.generation import compute_totals
    from mspbill.money import line_amount_cents

    with db.write_session() as s, s.begin():
        client = s.get(Client, client_id)
        assert client is not None
        inv = Invoice(kind=InvoiceKind.INVOICE, status=InvoiceStatus.DRAFT, client_id=client_id,
                      currency=client.currency, title=title, memo=memo, tax_rate_percent=client.tax_rate_percent,
                      credit_applied_cents=0, paid_cents=0, credited_cents=0,
                      period_start=period[0] if period else None, period_end=period[1] if period else None)
        rows = []
        for i, (kind, qty, price, description) in enumerate(lines):
            amount = line_amount_cents(_D(qty), price)
            rows.append(InvoiceLine(position=i, kind=LineKind(kind), description=description,
                                    quantity_e4=int(_D(qty) * QUANTITY_SCALE), unit_price_cents=price,
                                    amount_cents=amount, taxable=kind != "discount"))
        inv.lines = rows
        totals = compute_totals(((ln.amount_cents, ln.taxable) for ln in rows), inv.tax_rate_percent)
        inv.subtotal_cents, inv.tax_cents, inv.total_cents = totals.subtotal_cents, totals.tax_cents, totals.total_cents
        s.add(inv)
        s.flush()
        return inv.id
