"""`mspbill export ...` as a user runs it: real child processes on the golden office of test_exports_golden."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from test_exports_golden import GOLDEN, build_office

from mspbill.db.schema import open_database
from mspbill.paths import DB_FILENAME

RANGE = ("--from", "2026-10-01", "--to", "2026-10-31")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("office")
    database = open_database(f"sqlite:///{data / DB_FILENAME}", data / "backups")
    try:
        build_office(database)
    finally:
        database.dispose()
    return data


def _export(cli, folder: Path, *args: str):  # type: ignore[no-untyped-def]
    return cli("--data-dir", str(folder), "export", *args)


def test_export_writes_the_golden_file_and_prints_the_summary(cli, folder: Path, tmp_path: Path) -> None:
    first = tmp_path / "a.iif"
    one = _export(cli, folder, "quickbooks", *RANGE, "--out", str(first))
    assert one.returncode == 0, one.stderr
    assert one.stderr == f"Saved the QuickBooks Desktop (IIF) export to {first}\n"
    lines = one.stdout.splitlines()
    assert lines[0] == ("QuickBooks Desktop (IIF), 2026-10-01 to 2026-10-31: 5 invoices, 1 credit note (10 lines), "
                        "4 payments.")
    assert "USD: invoiced $3,698.89, credited $106.25, received $2,248.89." in lines
    assert any(ln.startswith("Left out: 1 voided invoice (INV-000007)") for ln in lines)
    assert any(ln.startswith("Left out: 1 invoice or credit note and 1 payment or refund in EUR") for ln in lines)
    # The bytes of the golden file (test_exports_golden checks that the same range twice gives the same bytes).
    assert first.read_bytes() == (GOLDEN / "quickbooks.iif").read_bytes()


def test_json_prints_one_document_and_a_folder_takes_the_suggested_name(cli, folder: Path, tmp_path: Path) -> None:
    result = _export(cli, folder, "xero", *RANGE, "--out", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    path = tmp_path / "mspbill-xero-2026-10-01_2026-10-31.zip"
    assert doc["path"] == str(path) and doc["filename"] == path.name and doc["replaced"] is False
    assert (doc["invoices"], doc["credit_notes"], doc["payments"], doc["refunds"]) == (6, 1, 5, 1)
    assert [t["currency"] for t in doc["totals"]] == ["USD", "EUR"]
    assert doc["totals"][1]["invoiced"] == "238.00"
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == doc["entries"] == ["invoices.csv", "credit-notes.csv", "payments-USD.csv",
                                                        "payments-EUR.csv", "README.txt"]
        assert archive.read("invoices.csv") == (GOLDEN / "xero" / "invoices.csv").read_bytes()


def test_bad_input_gets_sentences_exit_2_and_writes_nothing(cli, folder: Path, tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    both = _export(cli, folder, "csv", "--from", "2026-02-30", "--to", "2999-01-01", "--out", str(tmp_path / "x.zip"))
    assert both.returncode == 2 and both.stdout == ""
    assert both.stderr.startswith("mspbill: 2 problems:\n")
    assert "“2026-02-30” is not a date" in both.stderr and "2999-01-01 is in the future" in both.stderr
    not_zip = _export(cli, folder, "csv", *RANGE, "--out", str(target))
    assert not_zip.returncode == 2
    assert not_zip.stderr == ("mspbill: This export is a ZIP of several CSV files; give a file name ending in .zip, "
                              "such as out.zip.\n")
    for result in (both, not_zip):
        assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_empty_range_writes_the_headers_and_says_so(cli, folder: Path, tmp_path: Path) -> None:
    target = tmp_path / "august.csv"
    result = _export(cli, folder, "qbo", "--from", "2026-08-01", "--to", "2026-08-31", "--out", str(target))
    assert result.returncode == 0, result.stderr
    assert "There are no invoices in that range (the file holds the headers only)." in result.stdout
    assert target.read_bytes() == (GOLDEN / "qbo.csv").read_bytes().split(b"\r\n")[0] + b"\r\n"


def test_a_currency_the_office_never_used_is_refused_one_it_used_gives_an_empty_file(cli, folder: Path,
                                                                                     tmp_path: Path) -> None:
    never = _export(cli, folder, "qbo", *RANGE, "--currency", "xyz", "--out", str(tmp_path / "xyz.csv"))
    assert never.returncode == 2 and never.stdout == ""
    assert never.stderr == ("mspbill: The office has no clients, invoices or payments in XYZ; it uses USD and "
                            "EUR.\n")
    assert list(tmp_path.iterdir()) == []
    # EUR is the office's, with nothing in August: an empty file, rightly.
    empty = _export(cli, folder, "quickbooks", "--from", "2026-08-01", "--to", "2026-08-31", "--currency", "EUR",
                    "--out", str(tmp_path / "eur.iif"))
    assert empty.returncode == 0, empty.stderr
    assert "There are no invoices in that range" in empty.stdout


def test_an_existing_file_is_replaced_and_the_output_says_so(cli, folder: Path, tmp_path: Path) -> None:
    target = tmp_path / "october.csv"
    target.write_bytes(b"last month's export")
    result = _export(cli, folder, "qbo", *RANGE, "--out", str(target))
    assert result.returncode == 0, result.stderr
    assert result.stderr == f"Replaced {target} with the QuickBooks Online (invoices CSV) export\n"
    assert target.read_bytes() == (GOLDEN / "qbo.csv").read_bytes()
    as_json = _export(cli, folder, "qbo", *RANGE, "--out", str(target), "--json")
    assert json.loads(as_json.stdout)["replaced"] is True
