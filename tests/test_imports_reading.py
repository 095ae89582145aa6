"""Reading the files people bring, guessing their columns and reading their cells (no database)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from mspbill.csv_cells import formula_safe
from mspbill.imports.cells import (
    AmbiguousDate,
    CellError,
    number_text,
    parse_date_cell,
    terms_text,
    unformula,
)
from mspbill.imports.mapping import (
    MappingError,
    apply_overrides,
    check_mapping,
    guess_mapping,
    parse_map_options,
)
from mspbill.imports.reading import ImportFileError, read_csv_bytes, read_csv_file

CLIENTS = ("Company Name,Billing Email,City\nMüller GmbH,buchhaltung@mueller.example,Zürich\n"
           "Café € Ltd,a@b.example,Köln\n")


@pytest.mark.parametrize(("data", "encoding"), [
    (CLIENTS.encode("utf-8"), "UTF-8"),
    (b"\xef\xbb\xbf" + CLIENTS.encode("utf-8"), "UTF-8 with BOM"),
    (CLIENTS.encode("cp1252"), "Windows-1252"),
    (CLIENTS.encode("utf-16"), "UTF-16"),
])
def test_encodings_are_detected_and_reported(data: bytes, encoding: str) -> None:
    table = read_csv_bytes(data, "clients.csv")
    assert table.encoding == encoding
    assert table.headers == ("Company Name", "Billing Email", "City")  # no BOM left in the first header
    assert [r.cells[0] for r in table.records] == ["Müller GmbH", "Café € Ltd"]
    assert table.records[1].cells[2] == "Köln"


def test_semicolons_quoted_newlines_and_doubled_quotes_keep_physical_line_numbers() -> None:
    data = (b'sep=;\r\nName;Notes;Email\r\n'
            b'"Smith; Jones";"first\r\nsecond\r\nthird";a@x.example\r\n'
            b'\r\n'
            b'"The ""Best"" Co";plain;b@x.example\r\n'
            b';;\r\n'
            b'Last;"x";c@x.example\r\n')
    table = read_csv_bytes(data, "eu.csv")
    assert table.delimiter == ";" and table.separator_name == "semicolon"
    assert [r.line for r in table.records] == [3, 7, 9]  # the hint line, the quoted line breaks, a blank line
    assert table.records[0].cells == ("Smith; Jones", "first\r\nsecond\r\nthird", "a@x.example")
    assert table.records[1].cells[0] == 'The "Best" Co'


def test_separator_is_counted_outside_quotes() -> None:
    table = read_csv_bytes(b'"Name, legal";Email;City\nA;a@x.example;B\n', "q.csv")
    assert table.delimiter == ";" and table.headers == ("Name, legal", "Email", "City")


@pytest.mark.parametrize(("data", "words"), [
    (b"", "is empty"),
    (b"\r\n  \n", "is empty"),
    (b"Name,Email\r\n", "no rows below it"),
    (b"Name,Email\r\n,\r\n, ,\r\n", "no rows below it"),
    (b"Name\x00\x01\x02\xff\xfe", "not a text file"),
    (b"PK\x03\x04\x14\x00\x06\x00", "Excel workbook"),
    (b"Name\n\x81\x8d\x8f", "neither UTF-8 nor Windows-1252"),
])
def test_files_that_cannot_be_imported_say_why(data: bytes, words: str) -> None:
    with pytest.raises(ImportFileError, match=words):
        read_csv_bytes(data, "bad.csv")


def test_a_huge_file_is_refused_by_its_size_before_it_is_read(tmp_path: Path, monkeypatch) -> None:
    big = tmp_path / "huge.csv"
    with big.open("wb") as fh:
        fh.truncate(100 * 1024 * 1024)  # sparse: 100 MB on paper, nothing on disk
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("the file was read"))
    with pytest.raises(ImportFileError) as info:
        read_csv_file(big)
    assert "100.0 MB" in str(info.value) and "20.0 MB" in str(info.value) and "Split" in str(info.value)


def test_too_many_rows_are_refused_with_the_limit() -> None:
    data = "Name\n" + "".join(f"Client {i}\n" for i in range(12))
    with pytest.raises(ImportFileError, match="more than 10 rows"):
        read_csv_bytes(data.encode(), "many.csv", max_rows=10)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match="There is no file"):
        read_csv_file(tmp_path / "nope.csv")
    with pytest.raises(ImportFileError, match="is a folder"):
        read_csv_file(tmp_path)
    assert os.path.isdir(tmp_path)


def test_duplicate_and_blank_headers_are_named_and_overlong_rows_noted() -> None:
    table = read_csv_bytes(b"Name,Phone,,phone,\nA,1,x,2,\nB,1,x,2,extra\n", "d.csv")
    assert table.headers == ("Name", "Phone", "(column 3)", "phone (2)")
    assert any("“Phone” 2 times (columns 2, 4)" in n for n in table.notices)
    assert table.overlong == ((3, 5),)
    # The guess takes the first of a repeated header, never the repeat.
    assert guess_mapping("clients", table.headers)["phone"] == 1


def test_guesses_psa_and_quickbooks_headers() -> None:
    psa = ("Company Name", "Billing Email", "Primary Contact", "Address 1", "Address 2", "City", "State", "Zip",
           "Country", "Phone", "Terms", "Tax Rate %", "Notes", "Account ID")
    m = guess_mapping("clients", psa)
    assert {k: psa[v] for k, v in m.items()} == {
        "legal_name": "Company Name", "billing_emails": "Billing Email", "contact_name": "Primary Contact",
        "address_line1": "Address 1", "address_line2": "Address 2", "city": "City", "region": "State",
        "postal_code": "Zip", "country": "Country", "phone": "Phone", "payment_terms_days": "Terms",
        "tax_rate": "Tax Rate %", "notes": "Notes"}
    qb = ("Customer", "Company", "Main Phone", "Main Email", "Bill to 1", "Bill to 2", "Bill to 3", "Terms")
    table = read_csv_bytes(b"Customer,Company,Main Phone,Main Email,Bill to 1,Bill to 2,Bill to 3,Terms\n"
                           b"Acme,Acme Inc,555,ap@acme.example,Acme Inc,1 Main St,Springfield IL,Net 30\n"
                           b"Jo Doe,,556,jo@doe.example,Jo Doe,2 Elm St,Salem OR,Net 15\n", "qb.csv")
    assert qb[guess_mapping("clients", qb)["legal_name"]] == "Company"
    m = guess_mapping("clients", qb, table)
    # "Company" is blank for a person; "Customer" always has the name.
    assert qb[m["legal_name"]] == "Customer" and qb[m["billing_emails"]] == "Main Email"
    assert qb[m["phone"]] == "Main Phone"
    # "Bill to 1" repeats the customer's name: the street is in 2 and 3.
    assert qb[m["address_line1"]] == "Bill to 2" and qb[m["address_line2"]] == "Bill to 3"
    agreements = ("Company", "Agreement Name", "Billing Cycle", "Start Date", "Product", "Qty", "Unit Price")
    m = guess_mapping("agreements", agreements)
    assert {k: agreements[v] for k, v in m.items()} == {
        "client": "Company", "name": "Agreement Name", "frequency": "Billing Cycle", "start_date": "Start Date",
        "description": "Product", "quantity": "Qty", "unit_price": "Unit Price"}


def test_overrides_and_missing_required_fields_say_what_the_columns_are() -> None:
    headers = ("Org", "Mail", "Town")
    base = guess_mapping("clients", headers)
    assert "legal_name" not in base
    problems = check_mapping("clients", headers, base)
    assert problems and "client name" in problems[0] and "“Org”, “Mail”, “Town”" in problems[0]
    m = apply_overrides("clients", headers, base, parse_map_options(["legal_name=org", "billing_emails=#2",
                                                                     "city="]))
    assert m == {"legal_name": 0, "billing_emails": 1}
    with pytest.raises(MappingError, match="no column “Nope”.*“Org”, “Mail”, “Town”"):
        apply_overrides("clients", headers, base, {"legal_name": "Nope"})
    with pytest.raises(MappingError, match="no field “colour”"):
        apply_overrides("clients", headers, base, {"colour": "Org"})
    with pytest.raises(MappingError, match="FIELD=COLUMN"):
        parse_map_options(["legal_name"])


def test_dates_numbers_terms_and_formula_guards() -> None:
    assert parse_date_cell("2026-03-04") == dt.date(2026, 3, 4)
    assert parse_date_cell("04.03.2026") == dt.date(2026, 3, 4)
    assert parse_date_cell("13/04/2026") == dt.date(2026, 4, 13)
    assert parse_date_cell("04/13/2026") == dt.date(2026, 4, 13)
    assert parse_date_cell("03/04/2026", "mdy") == dt.date(2026, 3, 4)
    assert parse_date_cell("03/04/2026", "dmy") == dt.date(2026, 4, 3)
    assert parse_date_cell("4 Mar 2026") == dt.date(2026, 3, 4)
    with pytest.raises(AmbiguousDate, match="4 March 2026 or 3 April 2026"):
        parse_date_cell("03/04/2026")
    assert number_text("$1,250.00") == "$1,250.00"          # thousands comma: the money parser's job
    assert number_text("1.250,00 €") == "1250.00 €"
    assert number_text("12,5") == "12.5"
    assert terms_text("Net 30") == "30" and terms_text("Due on receipt") == "0" and terms_text("45 days") == "45"
    for value in ("=HYPERLINK(\"http://x\")", "+1 555 0100", "-x", "@SUM(A1)"):
        assert unformula(formula_safe(value)) == value
    assert unformula("'Tis the season") == "'Tis the season"


@pytest.mark.parametrize(("data", "where"), [
    (b"Name,Email\nCaf\xc3\xa9 One,c@y.com\nBad \xff Two,d@y.com\n", "line 3 has a byte that is not UTF-8 at character 5"),
    (b"\xef\xbb\xbfName,Email\nBad \xff Two,d@y.com\n", "line 2 has a byte that is not UTF-8 at character 5"),
])
def test_a_utf8_file_with_a_broken_byte_is_refused_naming_the_line_not_read_as_mojibake(
        data: bytes, where: str) -> None:
    with pytest.raises(ImportFileError) as info:
        read_csv_bytes(data, "clients.csv")
    message = str(info.value)
    assert where in message and "(byte 0xFF)" in message and "save it again as “CSV UTF-8”" in message
    # Without any UTF-8 letter the file is Windows-1252, as Excel writes "CSV" on Windows.
    table = read_csv_bytes(b"Name,Email\nCaf\xe9 One,c@y.com\nBad \xff Two,d@y.com\n", "clients.csv")
    assert table.encoding == "Windows-1252" and table.records[0].cells[0] == "Café One"


def test_years_outside_1990_to_2100_are_refused_and_two_digit_years_pivot_at_90() -> None:
    assert parse_date_cell("3/4/96", "mdy") == dt.date(1996, 3, 4)
    assert parse_date_cell("3/4/26", "mdy") == dt.date(2026, 3, 4)
    assert parse_date_cell("31.12.89") == dt.date(2089, 12, 31)
    for text in ("1/1/0026", "03/04/0026", "1989-12-31", "2101-01-01", "4 Mar 2206"):
        with pytest.raises(CellError, match=r"has the year \d{4}; dates in an import are from 1990 to 2100"):
            parse_date_cell(text, "auto")
