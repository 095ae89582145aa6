"""The demo office has been billing: three issued months, payments, open and overdue invoices, drafts."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mspbill.db.engine import Database
from mspbill.db.models import (
    Client,
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    Payment,
    PaymentMethod,
)
from mspbill.db.schema import open_database
from mspbill.demo import DemoSummary, create_demo_office
from mspbill.generation import generate_period
from mspbill.invoicing import drafts_for_month, issue_month, list_invoices
from mspbill.periods import Month

TODAY = dt.date(2026, 11, 21)
ISSUE_DAYS = [dt.date(2026, 8, 1), dt.date(2026, 9, 1), dt.date(2026, 10, 1)]


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Database, DemoSummary]]:
    folder = tmp_path_factory.mktemp("demo-billing")
    db = open_database(f"sqlite:///{folder / 'demo.sqlite3'}", folder / "backups")
    with db.write_session() as session, session.begin():
        summary = create_demo_office(session, today=TODAY)
    try:
        yield db, summary
    finally:
        db.dispose()


def _invoices(db: Database) -> list[Invoice]:
    with db.session() as session:
        return list(session.scalars(select(Invoice).order_by(Invoice.id)))


def test_summary_counts_what_is_there(office) -> None:
    db, summary = office
    invoices = _invoices(db)
    issued = [i for i in invoices if i.kind is InvoiceKind.INVOICE and i.status is not InvoiceStatus.DRAFT]
    drafts = [i for i in invoices if i.status is InvoiceStatus.DRAFT]
    assert summary.invoices_issued == len(issued) > 200
    assert summary.drafts == len(drafts) > 60
    assert summary.draft_month == "2026-11"
    with db.session() as session:
        assert summary.payments == session.scalar(select(func.count(Payment.id))) > 150


def test_three_months_issued_on_the_first(office) -> None:
    db, _ = office
    issued = [i for i in _invoices(db) if i.kind is InvoiceKind.INVOICE and i.status is not InvoiceStatus.DRAFT]
    per_day = Counter(i.issue_date for i in issued)
    assert sorted(per_day) == ISSUE_DAYS
    assert all(n >= 60 for n in per_day.values())  # every client has a monthly agreement
    # In advance: each month's invoices bill a period that covers that month.
    for inv in issued:
        assert inv.period_start is not None and inv.period_end is not None and inv.issue_date is not None
        assert inv.period_start <= inv.issue_date <= inv.period_end


def test_numbers_are_gapless_and_follow_the_issue_dates(office) -> None:
    db, _ = office
    with db.session() as session:
        rows = session.execute(select(Invoice.number_seq, Invoice.number, Invoice.issue_date)
                               .where(Invoice.kind == InvoiceKind.INVOICE, Invoice.number.is_not(None))
                               .order_by(Invoice.number_seq)).all()
    assert [seq for seq, _, _ in rows] == list(range(1, len(rows) + 1))
    assert [number for _, number, _ in rows] == [f"INV-{n:06d}" for n in range(1, len(rows) + 1)]
    issue_dates = [day for _, _, day in rows]
    assert issue_dates == sorted(issue_dates)


def test_some_paid_some_open_some_overdue_some_partly_paid(office) -> None:
    db, _ = office
    with db.session() as session:
        rows = list_invoices(session, kind="invoice", today=TODAY)
        overdue = list_invoices(session, overdue_only=True, today=TODAY)
    statuses = Counter(r.status for r in rows)
    assert statuses["paid"] > statuses["open"] > 5
    assert overdue and all(r.status == "open" and r.balance_cents > 0 and r.due_date < TODAY for r in overdue)
    assert any(0 < r.balance_cents < r.total_cents for r in rows if r.status == "open")  # partly paid
    # The older a month, the more of it is paid, as in a real office.
    open_by_month = Counter(r.issue_date for r in rows if r.status == "open")
    assert open_by_month[ISSUE_DAYS[0]] < open_by_month[ISSUE_DAYS[2]]
    assert all(r.balance_cents == 0 for r in rows if r.status == "paid")


def test_payments_match_the_invoices_and_the_calendar(office) -> None:
    db, _ = office
    with db.session() as session:
        autopay = set(session.scalars(select(Client.id).where(Client.autopay.is_(True))))
        payments = session.execute(select(Payment, Invoice).join(Invoice, Invoice.id == Payment.invoice_id)).all()
        invoices = list(session.scalars(select(Invoice).where(Invoice.kind == InvoiceKind.INVOICE)))
        paid_per_invoice = Counter()
        for payment, inv in payments:
            paid_per_invoice[inv.id] += payment.applied_cents
            assert inv.issue_date is not None and inv.issue_date <= payment.received_on <= TODAY
            assert payment.amount_cents == payment.applied_cents  # no overpayments in the demo
            if inv.client_id in autopay:
                assert payment.method is PaymentMethod.ACH and payment.reference == f"AUTOPAY-{inv.number}"
            else:
                assert payment.method in (PaymentMethod.CHECK, PaymentMethod.WIRE, PaymentMethod.ACH)
                assert payment.reference and not payment.reference.startswith("AUTOPAY")
        for inv in invoices:
            assert inv.paid_cents == paid_per_invoice[inv.id]
    methods = Counter(p.method for p, _ in payments)
    assert methods[PaymentMethod.CHECK] and methods[PaymentMethod.WIRE] and methods[PaymentMethod.ACH]


def test_a_goodwill_credit_note(office) -> None:
    db, _ = office
    with db.session() as session:
        notes = list(session.scalars(select(Invoice).where(Invoice.kind == InvoiceKind.CREDIT_NOTE)))
        assert [n.number for n in notes] == ["CN-000001"]
        original = session.get(Invoice, notes[0].credit_for_invoice_id)
        assert original is not None and original.credited_cents == notes[0].total_cents > 0
        assert "Goodwill" in notes[0].memo


def test_the_current_month_waits_as_drafts(office, tmp_path: Path) -> None:
    db, summary = office
    november = Month(2026, 11)
    with db.session() as session:
        drafts = drafts_for_month(session, november)
        assert len(drafts) == summary.drafts
        assert session.scalar(select(func.count(Invoice.id)).where(
            Invoice.status == InvoiceStatus.DRAFT, Invoice.number.is_not(None))) == 0
    # Generating any of these months again creates nothing new.
    with db.write_session() as session, session.begin():
        for month in (Month(2026, 8), Month(2026, 9), Month(2026, 10), november):
            assert generate_period(session, month).created == 0
        session.rollback()


def test_issuing_the_drafts_continues_the_numbers(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'd.sqlite3'}", tmp_path / "backups")
    try:
        with db.write_session() as session, session.begin():
            summary = create_demo_office(session, clients=12, today=TODAY)
        with db.write_session() as session, session.begin():
            numbers = issue_month(session, Month(2026, 11), dt.date(2026, 11, 1))
        assert len(numbers) == summary.drafts
        first = summary.invoices_issued + 1
        assert numbers == [f"INV-{n:06d}" for n in range(first, first + len(numbers))]
    finally:
        db.dispose()


def test_an_office_without_history(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'd.sqlite3'}", tmp_path / "backups")
    try:
        with db.write_session() as session, session.begin():
            summary = create_demo_office(session, clients=5, today=TODAY, history=False)
        assert (summary.invoices_issued, summary.payments, summary.drafts) == (0, 0, 0)
        with db.session() as session:
            assert session.scalar(select(func.count(Invoice.id))) == 0
    finally:
        db.dispose()


def test_a_one_client_office_still_bills(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'd.sqlite3'}", tmp_path / "backups")
    try:
        with db.write_session() as session, session.begin():
            summary = create_demo_office(session, clients=1, today=TODAY)
        assert summary.invoices_issued >= 3 and summary.drafts >= 1
    finally:
        db.dispose()
