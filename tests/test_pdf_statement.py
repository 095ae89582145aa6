"""The statement of account: figures worked out by hand, the balance identity, the PDF."""

from __future__ import annotations

import datetime as dt
import io
import itertools

import pypdf
import pytest
from billing_helpers import (
    d,
    draft_with_lines,
    issue_ids,
    make_client,
    one_time,
    setup_office,
)
from sqlalchemy import update

from mspbill.aging import credit_as_of, open_items
from mspbill.db.models import AuditEntry
from mspbill.invoicing import create_credit_note, mark_uncollectible, void_invoice
from mspbill.payments.manual import record_payment
from mspbill.pdf.statement import statement_document, statement_pdf
from mspbill.validation import NotFoundError, ValidationError

LATER = dt.date(2026, 12, 31)
START, END = d("2026-09-01"), d("2026-10-31")


def _invoice(db, client_id: int, dollars: str, issued: dt.date, title: str = "Project") -> int:
    inv = one_time(db, client_id, (title, "1", dollars), title=title)
    issue_ids(db, [inv], issued)
    return inv


def _pay(db, invoice_id: int, amount: str, received: dt.date, **kw: object) -> None:
    with db.write_session() as s, s.begin():
        record_payment(s, invoice_id, amount, "check", received_on=received, today=LATER, **kw)  # type: ignore[arg-type]


def _write_off(db, invoice_id: int, on: dt.date) -> None:
    with db.write_session() as s, s.begin():
        mark_uncollectible(s, invoice_id, "Disputed; not worth pursuing")
        s.execute(update(AuditEntry).where(AuditEntry.entity_id == invoice_id,
                                           AuditEntry.action == "invoice.uncollectible")
                  .values(at=dt.datetime.combine(on, dt.time(12), dt.UTC)))


@pytest.fixture
def office(db) -> dict[str, int]:
    """One client's year, recorded as the app records it (terms net 30, no tax)."""
    setup_office(db, email="billing@acme.example", payment_instructions="Wire to IBAN CH93 0076 2011 6238 5295 7")
    cid = make_client(db, "Zürich Dental GmbH", address_line1="Bahnhofstrasse 1", city="Zürich",
                      postal_code="8001", country="Switzerland")
    ids = {"client": cid}
    ids["A"] = _invoice(db, cid, "500.00", d("2026-08-01"), "Network refresh")
    ids["G"] = _invoice(db, cid, "250.00", d("2026-08-10"), "Backup audit")
    ids["B"] = _invoice(db, cid, "120.00", d("2026-08-15"), "Issued by mistake")
    _pay(db, ids["A"], "200.00", d("2026-08-20"))
    ids["C"] = _invoice(db, cid, "1000.00", d("2026-09-01"), "Server")
    _pay(db, ids["A"], "300.00", d("2026-09-05"))
    _pay(db, ids["C"], "1250.00", d("2026-09-20"), credit_excess=True)    # $250 over: client credit
    ids["D"] = _invoice(db, cid, "400.00", d("2026-10-01"), "Firewall")  # takes the $250 credit at issue
    with db.write_session() as s, s.begin():
        create_credit_note(s, ids["D"], "Installation took half the time quoted", "100.00",
                           issue_date=d("2026-10-10"))
        void_invoice(s, ids["B"], "Issued by mistake")
    ids["F"] = _invoice(db, cid, "80.00", d("2026-10-20"), "Callout")
    ids["E"] = draft_with_lines(db, cid, [("adjustment", "1", -3_000, "Seats 10 → 8 from 15 Oct")])
    issue_ids(db, [ids["E"]], d("2026-10-25"))                            # −$30: client credit
    _write_off(db, ids["F"], d("2026-10-28"))
    _pay(db, ids["D"], "50.00", d("2026-11-05"))                          # after the range
    return ids


def test_the_statement_figures_worked_out_by_hand(db, office: dict[str, int]) -> None:
    with db.session() as s:
        doc = statement_document(s, office["client"], START, END, today=d("2026-11-21"))
    # Opening, 31 Aug: A 500 − 200 = 300, G 250 (B is void: not on the statement at all).
    assert doc.opening_cents == 55_000
    assert [(a.day.isoformat(), a.kind, a.amount_cents, a.balance_cents) for a in doc.activity] == [
        ("2026-09-01", "invoice", 100_000, 155_000),        # C
        ("2026-09-05", "payment", -30_000, 125_000),        # rest of A
        ("2026-09-20", "payment", -125_000, 0),             # C paid, $250 to credit
        ("2026-10-01", "invoice", 40_000, 40_000),          # D (credit applied: no net change)
        ("2026-10-10", "credit_note", -10_000, 30_000),     # CN on D
        ("2026-10-20", "invoice", 8_000, 38_000),           # F
        ("2026-10-25", "invoice", -3_000, 35_000),          # E, the negative adjustment invoice
        ("2026-10-28", "write_off", -8_000, 27_000),        # F written off
    ]
    # Closing, 31 Oct: G 250 open (52 days past due), D 400 − 250 credit − 100 CN = 50 (due 31 Oct: current);
    # client credit: 250 overpaid − 250 used on D + 30 from E = 30.
    assert doc.closing_cents == 27_000
    assert [(i.invoice_id, i.balance_cents, i.days_past_due) for i in doc.open_items] == [
        (office["G"], 25_000, 52), (office["D"], 5_000, 0)]
    assert doc.credit_cents == 3_000
    assert doc.aging.as_dict() == {"current": 5_000, "1_30": 0, "31_60": 25_000, "61_90": 0, "over_90": 0}
    assert doc.total_of("payment") == -155_000 and doc.total_of("credit_note") == -10_000
    texts = [a.description for a in doc.activity]
    assert any("account credit of $250.00 applied" in t for t in texts)
    assert any("$250.00 kept as account credit" in t for t in texts)
    assert not any("Issued by mistake" in t for t in texts)


def _identity(db, client_id: int, start: dt.date, end: dt.date) -> tuple[int, int]:
    with db.session() as s:
        doc = statement_document(s, client_id, start, end, today=LATER)
        open_total = sum(i.balance_cents for i in open_items(s, end, client_id))
        credit = credit_as_of(s, end, client_id).get(client_id, 0)
    running = doc.opening_cents + sum(a.amount_cents for a in doc.activity)
    assert running == doc.closing_cents == open_total - credit, (start, end)
    if doc.activity:
        assert doc.activity[-1].balance_cents == doc.closing_cents
    return doc.opening_cents, doc.closing_cents


def test_opening_plus_activity_is_the_closing_balance_is_open_less_credit_for_any_range(
        db, office: dict[str, int]) -> None:
    days = [d("2026-07-31"), d("2026-08-01"), d("2026-08-19"), d("2026-08-20"), d("2026-09-04"),
            d("2026-09-20"), d("2026-10-01"), d("2026-10-09"), d("2026-10-27"), d("2026-10-28"),
            d("2026-11-04"), d("2026-11-05"), d("2026-12-31")]
    previous_closing = 0  # nothing before the first invoice
    for start, end in itertools.pairwise(days):
        opening, closing = _identity(db, office["client"], start + dt.timedelta(days=1), end)
        assert opening == previous_closing  # one range ends where the next begins
        previous_closing = closing
    assert previous_closing == 27_000 - 5_000  # D's $50 paid on 5 Nov


def test_a_payment_on_a_written_off_invoice_takes_the_write_off_back(db) -> None:
    setup_office(db)
    cid = make_client(db, "Łódź IT Sp. z o.o.")
    inv = _invoice(db, cid, "300.00", d("2026-08-03"))
    _pay(db, inv, "100.00", d("2026-08-20"))
    _write_off(db, inv, d("2026-09-15"))                       # writes off the $200 left
    _pay(db, inv, "250.00", d("2026-10-02"), credit_excess=True)  # $200 recovered, $50 over: credit
    with db.session() as s:
        doc = statement_document(s, cid, d("2026-09-01"), d("2026-10-31"), today=LATER)
    assert doc.opening_cents == 20_000
    assert [(a.kind, a.amount_cents, a.balance_cents) for a in doc.activity] == [
        ("write_off", -20_000, 0), ("payment", -25_000, -25_000), ("reinstated", 20_000, -5_000)]
    assert doc.closing_cents == -5_000 and doc.credit_cents == 5_000 and doc.open_items == ()
    _identity(db, cid, d("2026-08-01"), d("2026-09-14"))
    _identity(db, cid, d("2026-09-15"), d("2026-10-01"))


def test_the_pdf_shows_the_statement(db, office: dict[str, int]) -> None:
    with db.session() as s:
        pdf = statement_pdf(s, office["client"], START, END, today=d("2026-11-21"))
    reader = pypdf.PdfReader(io.BytesIO(pdf.data))
    text = "\n".join(p.extract_text() for p in reader.pages)
    for expected in ("Statement", "Zürich Dental GmbH", "Opening balance", "$550.00", "Closing balance",
                     "$270.00", "written off as uncollectible", "Credit note CN-000001", "$300.00",
                     "31–60 DAYS", "Unapplied account credit: $30.00", "IBAN CH93", "Page 1 of",
                     "1 Sep 2026 – 31 Oct 2026", "21 Nov 2026"):
        assert expected in text, expected
    assert "INV-000003" not in text  # B, voided
    assert pdf.filename == "Statement Zürich Dental GmbH 2026-09-01 to 2026-10-31.pdf"
    assert reader.metadata.title == pdf.title == "Statement of account — Zürich Dental GmbH — 1 Sep 2026 – 31 Oct 2026"
    assert reader.metadata.author == "Acme IT" and pdf.pages == len(reader.pages)


def test_dates_and_client_are_checked(db, office: dict[str, int]) -> None:
    with db.session() as s:
        with pytest.raises(ValidationError) as backwards:
            statement_pdf(s, office["client"], d("2026-10-01"), d("2026-09-01"), today=LATER)
        assert [i.field for i in backwards.value.issues] == ["start"]
        with pytest.raises(ValidationError) as too_long:
            statement_pdf(s, office["client"], d("2016-01-01"), d("2026-01-02"), today=LATER)
        assert [i.field for i in too_long.value.issues] == ["end"]
        statement_document(s, office["client"], d("2016-01-02"), d("2026-01-02"), today=LATER)  # ten years
        with pytest.raises(NotFoundError):
            statement_pdf(s, 999_999, START, END, today=LATER)


def test_a_statement_does_not_end_after_today(db, office: dict[str, int]) -> None:
    today = d("2026-11-21")
    with db.session() as s:
        with pytest.raises(ValidationError) as future:
            statement_pdf(s, office["client"], d("2027-04-01"), d("2027-06-30"), today=today)
        assert [i.field for i in future.value.issues] == ["end"]
        message = future.value.issues[0].message
        assert "after today, 2026-11-21" in message and "2027-06-30" in message
        # Every problem at once: backwards and in the future.
        with pytest.raises(ValidationError) as both:
            statement_document(s, office["client"], d("2027-07-01"), d("2027-06-30"), today=today)
        assert sorted(i.field for i in both.value.issues) == ["end", "start"]
        with pytest.raises(ValidationError):  # one day ahead is already too far
            statement_document(s, office["client"], START, today + dt.timedelta(days=1), today=today)
        doc = statement_document(s, office["client"], START, today, today=today)  # today itself is fine
    assert doc.end == today and doc.closing_cents == 27_000 - 5_000


def test_payments_name_the_method_as_the_client_knows_it(db) -> None:
    setup_office(db)
    cid = make_client(db, "Harbor Dental")
    inv = _invoice(db, cid, "300.00", d("2026-09-03"))
    with db.write_session() as s, s.begin():
        record_payment(s, inv, "300.00", "ach", reference="TRX 55", received_on=d("2026-09-20"), today=LATER)
    with db.session() as s:
        doc = statement_document(s, cid, d("2026-09-01"), d("2026-09-30"), today=LATER)
        text = pypdf.PdfReader(io.BytesIO(statement_pdf(s, cid, d("2026-09-01"), d("2026-09-30"),
                                                         today=LATER).data)).pages[0].extract_text()
    assert [a.description for a in doc.activity if a.kind == "payment"] == [
        "Payment — Bank transfer (ACH) TRX 55, for INV-000001"]
    assert "Bank transfer (ACH)" in text and "Stripe" not in text


def test_a_credit_note_on_a_written_off_invoice_and_a_quiet_range(db) -> None:
    setup_office(db)
    cid = make_client(db, "株式会社テスト")
    inv = _invoice(db, cid, "300.00", d("2026-08-03"))
    _write_off(db, inv, d("2026-09-15"))
    with db.write_session() as s, s.begin():
        create_credit_note(s, inv, "Settled the dispute", "100.00", issue_date=d("2026-09-20"))
    with db.session() as s:
        doc = statement_document(s, cid, d("2026-09-01"), d("2026-09-30"), today=LATER)
        quiet = statement_document(s, cid, d("2026-10-01"), d("2026-10-31"), today=LATER)
    # The note takes $100 off a balance already written off: only what it adds to credit (nothing) counts.
    assert [(a.kind, a.amount_cents) for a in doc.activity] == [
        ("write_off", -30_000), ("credit_note", -10_000), ("reinstated", 10_000)]
    assert (doc.opening_cents, doc.closing_cents, doc.credit_cents) == (30_000, 0, 0)
    assert quiet.activity == () and quiet.opening_cents == quiet.closing_cents == 0
    _identity(db, cid, d("2026-08-01"), d("2026-09-19"))
    _identity(db, cid, d("2026-09-20"), d("2026-12-31"))
    with db.session() as s:
        text = pypdf.PdfReader(io.BytesIO(statement_pdf(s, cid, d("2026-10-01"), d("2026-10-31"), today=LATER).data)).pages[0]
        assert "No activity in this period." in text.extract_text()
