"""What the accountant exports promise besides their golden files: every IIF transaction balances, a
formula-shaped name is inert in every format, Windows-1252 for QuickBooks Desktop, voids/drafts/other
ranges left out (and said so), one currency per QuickBooks file, an empty range gives headers only,
totals per currency, and the range's own mistakes each get a sentence.  The office is the golden one."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import Iterator
from decimal import Decimal

import pytest
from test_exports_golden import (
    COMMA_NAME,
    END,
    START,
    build_office,
    parse_csv,
    parse_iif,
)

from mspbill.db.engine import Database
from mspbill.db.schema import open_database
from mspbill.exports import (
    ExportOptions,
    ExportResult,
    build_export,
    load_export_data,
    parse_range,
)
from mspbill.validation import ValidationError

TODAY = dt.date(2026, 11, 21)
KEYS = ("qbo", "quickbooks", "xero", "csv")


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    folder = tmp_path_factory.mktemp("exports-office")
    db = open_database(f"sqlite:///{folder / 'office.sqlite3'}", folder / "backups")
    build_office(db)
    yield db
    db.dispose()


def export(db: Database, key: str, options: ExportOptions | None = None, start: dt.date = START,
           end: dt.date = END) -> ExportResult:
    with db.session() as s:
        data = load_export_data(s, start, end)
    return build_export(data, key, options)


def tables(result: ExportResult, key: str) -> dict[str, list[list[str]]]:
    """Every table of an export, parsed: {file name: rows}."""
    if key == "qbo":
        return {"qbo.csv": parse_csv(result.data)}
    if key == "quickbooks":
        return {"quickbooks.iif": parse_iif(result.data)}
    with zipfile.ZipFile(io.BytesIO(result.data)) as archive:
        return {name: parse_csv(archive.read(name)) for name in archive.namelist() if name.endswith(".csv")}


def cells(result: ExportResult, key: str) -> list[str]:
    return [cell for rows in tables(result, key).values() for row in rows for cell in row]


def transactions(iif_rows: list[list[str]]) -> list[list[list[str]]]:
    """The TRNS ... ENDTRNS groups of an IIF file."""
    groups: list[list[list[str]]] = []
    for row in iif_rows:
        if row[0] == "TRNS":
            groups.append([row])
        elif row[0] == "SPL":
            groups[-1].append(row)
    return groups


# --- QuickBooks Desktop ---------------------------------------------------------------------------

def test_every_iif_transaction_balances_to_zero(office: Database) -> None:
    rows = parse_iif(export(office, "quickbooks").data)
    amount = rows[0].index("AMOUNT")  # the same column in !TRNS and !SPL
    assert rows[1].index("AMOUNT") == amount
    groups = transactions(rows)
    kinds = [g[0][2] for g in groups]
    # USD only: INV-000002..6 (INV-000007 is void), CN-000001, four payments (the refund is left out).
    assert kinds == ["INVOICE"] * 5 + ["CREDIT MEMO"] + ["PAYMENT"] * 4
    for group in groups:
        assert sum(Decimal(row[amount]) for row in group) == 0, group
    ends = sum(1 for row in rows if row[0] == "ENDTRNS")
    assert ends == len(groups)
    invoice = groups[0]
    assert invoice[0][4] == "Accounts Receivable" and Decimal(invoice[0][amount]) == Decimal("731.08")
    assert invoice[-1][4] == "Sales Tax Payable" and Decimal(invoice[-1][amount]) == Decimal("-57.96")


def test_iif_is_windows_1252_with_crlf_and_replaces_what_it_cannot_hold(office: Database) -> None:
    result = export(office, "quickbooks")
    text = result.data.decode("cp1252")
    assert "\n" not in text.replace("\r\n", "")
    assert "Lódz Café Sp. z o.o." in text          # ó and é are Windows-1252; Ł and ź are not
    assert "PO 2026/10 Thank you" in text           # the memo's line break became a space
    assert any("Windows-1252" in note for note in result.summary.notes)


def test_iif_account_and_item_names_can_be_changed(office: Database) -> None:
    options = ExportOptions(income_account="4000 Managed services", ar_account="1200 A/R", item="MSP")
    rows = parse_iif(export(office, "quickbooks", options).data)
    spl = [r for r in rows if r[0] == "SPL" and r[2] == "INVOICE" and r[4] != "Sales Tax Payable"]
    assert {r[4] for r in spl} == {"4000 Managed services"} and {r[12] for r in spl} == {"MSP"}
    assert {r[4] for r in rows if r[0] == "TRNS" and r[2] == "INVOICE"} == {"1200 A/R"}


# --- every format -------------------------------------------------------------------------------------

def test_a_formula_named_client_is_inert_in_every_format(office: Database) -> None:
    for key in KEYS:
        found = [c for c in cells(export(office, key), key) if "HYPERLINK" in c]
        assert found, key
        assert all(c == '\'=HYPERLINK("http://x","y")' for c in found), (key, found)


def test_a_name_with_a_comma_and_quotes_stays_one_cell(office: Database) -> None:
    for key in KEYS:
        assert COMMA_NAME in cells(export(office, key), key), key


def test_voided_invoices_are_left_out_of_the_books_formats_and_listed_in_the_plain_csv(office: Database) -> None:
    for key in ("qbo", "quickbooks", "xero"):
        result = export(office, key)
        assert "INV-000007" not in cells(result, key), key
        assert any("1 voided invoice (INV-000007)" in s for s in result.summary.left_out), key
    plain = export(office, "csv")
    invoices = tables(plain, "csv")["invoices.csv"]
    head = invoices[0]
    void = next(r for r in invoices if r[head.index("number")] == "INV-000007")
    assert void[head.index("status")] == "void" and void[head.index("balance")] == "0.00"
    assert void[head.index("status_reason")] == "Issued in error"


def test_drafts_and_days_outside_the_range_are_never_exported(office: Database) -> None:
    plain = tables(export(office, "csv"), "csv")
    numbers = [r[2] for r in plain["invoices.csv"][1:]]
    assert numbers == ["INV-000002", "INV-000003", "INV-000004", "INV-000005", "INV-000006", "INV-000007",
                       "INV-000008", "CN-000001"]   # not INV-000001 (30 Sep), INV-000009 (2 Nov), nor the draft
    payments = plain["payments.csv"]
    # ... but the payment received on 5 October for September's invoice is in October's payments.
    assert [r[5] for r in payments[1:]] == ["INV-000002", "INV-000001", "INV-000003", "INV-000005", "INV-000002",
                                            "INV-000008"]
    summary = export(office, "csv").summary
    assert any("1 draft in the office" in s for s in summary.left_out)


def test_totals_are_per_currency_and_never_added_together(office: Database) -> None:
    summary = export(office, "csv").summary
    usd, eur = summary.totals
    assert usd.currency == "USD" and eur.currency == "EUR"
    # Worked by hand from build_office: the USD invoices not void, the credit note, what came in and went back.
    assert (usd.invoice_count, usd.invoiced_cents) == (5, 73108 + 120000 + 30000 + 61781 + 85000)
    assert (usd.credit_note_count, usd.credited_cents) == (1, 10625)
    assert (usd.payment_count, usd.received_cents) == (4, 73108 + 50000 + 40000 + 61781)
    assert (usd.refund_count, usd.refunded_cents) == (1, 2000)
    assert (eur.invoice_count, eur.invoiced_cents, eur.received_cents) == (1, 23800, 23800)
    text = "\n".join(summary.text_lines())
    assert "USD: invoiced $3,698.89, credited $106.25, received $2,248.89, refunded $20.00." in text
    assert "EUR: invoiced €238.00, received €238.00." in text


def test_quickbooks_files_hold_one_currency_and_say_where_the_others_went(office: Database) -> None:
    for key in ("qbo", "quickbooks"):
        usd = export(office, key)
        assert "INV-000008" not in cells(usd, key)
        assert any("in EUR" in s and "--currency EUR" in s for s in usd.summary.left_out), key
        eur = export(office, key, ExportOptions(currency="EUR"))
        numbers = {c for c in cells(eur, key) if c.startswith("INV-")}
        assert numbers == {"INV-000008"}, key
        assert [t.currency for t in eur.summary.totals] == ["EUR"]
        assert any(s.startswith("7 invoices or credit notes and 5 payments or refunds in USD") for s in
                   eur.summary.left_out), key
    xero = tables(export(office, "xero"), "xero")
    head = xero["invoices.csv"][0]
    berlin = [r for r in xero["invoices.csv"] if r[head.index("*InvoiceNumber")] == "INV-000008"]
    assert [r[head.index("Currency")] for r in berlin] == ["EUR"]
    assert xero["payments-EUR.csv"][1][:2] == ["10/25/2026", "238.00"]


def test_the_qbo_summary_says_what_its_import_does_not_take(office: Database) -> None:
    summary = export(office, "qbo").summary
    left_out = "\n".join(summary.left_out)
    assert "1 credit note (CN-000001, 106.25 USD): QuickBooks Online's invoice import does not take credit memos" \
        in left_out
    assert "4 payments and 1 refund received in the range: the invoice import takes no payments" in left_out
    assert summary.credit_note_count == 0 and summary.invoice_count == 5 and summary.line_count == 9


def test_xero_dates_follow_the_company_or_the_option(office: Database) -> None:
    # The office is in the United States: Xero dates are month first unless told otherwise.
    us = tables(export(office, "xero"), "xero")["invoices.csv"]
    assert us[1][us[0].index("*InvoiceDate")] == "10/01/2026"
    day_first = tables(export(office, "xero", ExportOptions(date_order="dmy")), "xero")["invoices.csv"]
    head = day_first[0]
    assert [day_first[1][head.index("*InvoiceDate")], day_first[-1][head.index("*DueDate")]] == ["01/10/2026",
                                                                                               "14/11/2026"]


def test_an_empty_range_gives_headers_only_and_says_so(office: Database) -> None:
    start, end = dt.date(2026, 8, 1), dt.date(2026, 8, 31)
    for key in KEYS:
        result = export(office, key, start=start, end=end)
        assert result.summary.nothing_issued
        assert "There are no invoices in that range" in "\n".join(result.summary.text_lines())
        for name, rows in tables(result, key).items():
            if key == "quickbooks":
                assert [r[0] for r in rows] == ["!TRNS", "!SPL", "!ENDTRNS"]
            else:
                assert len(rows) == 1 and rows[0], (key, name)


def test_zip_entries_have_a_fixed_date_whatever_the_clock(office: Database) -> None:
    for key in ("xero", "csv"):
        with zipfile.ZipFile(io.BytesIO(export(office, key).data)) as archive:
            assert {i.date_time for i in archive.infolist()} == {(2000, 1, 1, 0, 0, 0)}
            assert archive.namelist()[-1] == "README.txt"


# --- the range ----------------------------------------------------------------------------------------

def test_the_range_is_inclusive_and_its_mistakes_come_all_at_once() -> None:
    assert parse_range("2026-10-01", "2026-10-31", TODAY) == (START, END)
    assert parse_range("2026-11-21", "2026-11-21", TODAY) == (TODAY, TODAY)
    with pytest.raises(ValidationError) as bad:
        parse_range("2026-13-01", "last week", TODAY)
    assert [i.field for i in bad.value.issues] == ["from", "to"]
    assert "“2026-13-01” is not a date; use YYYY-MM-DD" in bad.value.issues[0].message
    with pytest.raises(ValidationError) as swapped:
        parse_range("2026-10-31", "2026-10-01", TODAY)
    assert swapped.value.issues[0].message == "The first day 2026-10-31 is after the last day 2026-10-01; swap them."
    with pytest.raises(ValidationError) as future:
        parse_range("2026-12-01", "2026-12-31", TODAY)
    messages = [i.message for i in future.value.issues]
    assert len(messages) == 2 and all("in the future" in m for m in messages)
