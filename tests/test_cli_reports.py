"""`mspbill report aging` and the error paths of `mspbill report kpis`, as a user runs them: real child
processes on the hand-worked office of test_reports_aging (its figures are worked out there, by hand)."""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import json
from pathlib import Path

import pytest
from pypdf import PdfReader
from test_reports_aging import AS_OF, build_office

from mspbill.db.schema import open_database
from mspbill.paths import DB_FILENAME

DAY = AS_OF.isoformat()  # 2026-11-20: a day in the past whatever the clock says now


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """A data folder holding the hand-worked office, and its ids."""
    folder = tmp_path_factory.mktemp("office")
    database = open_database(f"sqlite:///{folder / DB_FILENAME}", folder / "backups")
    try:
        ids = build_office(database)
    finally:
        database.dispose()
    return folder, ids


def _aging(cli, folder: Path, *args: str):  # type: ignore[no-untyped-def]
    return cli("--data-dir", str(folder), "report", "aging", *args)


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_aging_prints_a_table_per_currency_with_totals(cli, office) -> None:
    folder, _ = office
    result = _aging(cli, folder, "--as-of", DAY)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    out = result.stdout
    lines = out.splitlines()
    assert lines[0] == "A/R aging as of 2026-11-20 (days past due from each invoice's due date)"
    head = next(ln for ln in lines if ln.startswith("Client "))
    assert head.split("  ")[0] == "Client" and "Over 90 days" in head and "Oldest (days)" in head
    alpha = next(ln for ln in lines if ln.startswith("Alpha Dental"))
    assert alpha.split() == ["Alpha", "Dental", "$300.00", "-", "-", "$200.00", "$1,000.00", "$1,500.00", "-", "3",
                             "91"]
    usd_total = next(ln for ln in lines if ln.startswith("Total") and "$2,817.84" in ln)
    assert usd_total.split() == ["Total", "$360.00", "$52.34", "$825.50", "$580.00", "$1,000.00", "$2,817.84", "$50.00",
                                 "10", "91"]
    assert "3 client(s) owe $2,817.84 on 10 open invoice(s); 1 client(s) hold $50.00 of credit" in out
    # The other currency: its own table, said not to be added.
    assert "EUR (not added to the USD totals)" in lines
    assert out.index("Charlie Law") < out.index("Delta Café") < out.index("Échelle Conseil SARL")
    eur_total = next(ln for ln in lines if ln.startswith("Total") and "€2,450.00" in ln)
    assert "$" not in eur_total
    assert "Foxtrot Farms" not in out and "Golf Club" not in out


def test_aging_json_is_one_document_with_cents_per_currency(cli, office, tmp_path: Path) -> None:
    folder, ids = office
    result = _aging(cli, folder, "--as-of", DAY, "--json", "--csv", str(tmp_path / "aging.csv"),
                    "--pdf", str(tmp_path))
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)  # the whole of stdout is one JSON document
    assert document["as_of"] == DAY and document["company_currency"] == "USD"
    assert [s["currency"] for s in document["sections"]] == ["USD", "EUR"]
    usd, eur = document["sections"]
    assert [c["client_name"] for c in usd["clients"]] == ["Alpha Dental", "Bravo Logistics", "Charlie Law",
                                                          "Delta Café"]
    assert (usd["totals"]["total_cents"], usd["totals"]["total"]) == (281_784, "$2,817.84")
    assert usd["clients"][3] | {"client_id": 0} == {
        "client_id": 0, "client_name": "Delta Café",
        "buckets_cents": {"current": 0, "1_30": 0, "31_60": 0, "61_90": 0, "over_90": 0},
        "buckets": {"current": "$0.00", "1_30": "$0.00", "31_60": "$0.00", "61_90": "$0.00", "over_90": "$0.00"},
        "total_cents": 0, "total": "$0.00", "credit_cents": 5_000, "credit": "$50.00", "invoice_count": 0,
        "oldest_days_past_due": 0}
    assert usd["clients"][3]["client_id"] == ids["delta"]
    assert eur["totals"]["buckets_cents"] == {"current": 0, "1_30": 200_000, "31_60": 0, "61_90": 0, "over_90": 45_000}

    # Both files were written, and said so on stderr (stdout stays JSON).
    assert "Saved the A/R aging report to" in result.stderr and "Saved the A/R aging PDF to" in result.stderr
    data = (tmp_path / "aging.csv").read_bytes()
    assert data.startswith(codecs.BOM_UTF8)
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert rows[5] == ["Total", "USD", "360.00", "52.34", "825.50", "580.00", "1000.00", "2817.84", "50.00", "10", "91"]
    pdf = tmp_path / "AR aging 2026-11-20.pdf"  # a folder gets the suggested name
    text = _flat("\n".join(p.extract_text() for p in PdfReader(pdf).pages))
    assert "Bravo Logistics" in text and "$2,817.84" in text and "€2,450.00" in text and "as of 20 Nov 2026" in text


def test_client_drill_down_lists_its_open_invoices(cli, office, tmp_path: Path) -> None:
    folder, ids = office
    bravo = str(ids["bravo"])
    result = _aging(cli, folder, "--as-of", DAY, "--client", bravo, "--json", "--csv", str(tmp_path / "b.csv"))
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert (document["client_name"], document["currency"], document["credit_cents"]) == ("Bravo Logistics", "USD", 0)
    # B1 $500 less $120 paid, 61 days; B2 60; B3 31; B4 30; B5 1 (B6 was voided).
    assert [(i["title"], i["balance_cents"], i["days_past_due"], i["bucket"]) for i in document["items"]] == [
        ("Project B1", 38_000, 61, "61_90"), ("Project B2", 25_000, 60, "31_60"), ("Project B3", 7_550, 31, "31_60"),
        ("Project B4", 4_000, 30, "1_30"), ("Project B5", 1_234, 1, "1_30")]
    assert document["totals"] == [{"currency": "USD", "total_cents": 75_784, "total": "$757.84", "invoice_count": 5,
                                   "buckets_cents": {"current": 0, "1_30": 5_234, "31_60": 32_550, "61_90": 38_000,
                                                     "over_90": 0}}]
    rows = list(csv.reader(io.StringIO((tmp_path / "b.csv").read_bytes().decode("utf-8-sig"), newline="")))
    assert [r[3:] for r in rows] == [["Days past due", "Bucket", "Total", "Balance"],
                                     ["61", "61–90 days", "500.00", "380.00"], ["60", "31–60 days", "250.00", "250.00"],
                                     ["31", "31–60 days", "75.50", "75.50"], ["30", "1–30 days", "40.00", "40.00"],
                                     ["1", "1–30 days", "12.34", "12.34"]]

    text = _aging(cli, folder, "--as-of", DAY, "--client", bravo)
    assert text.returncode == 0, text.stderr
    assert "Bravo Logistics: invoices open as of 2026-11-20" in text.stdout
    assert "5 open invoice(s), $757.84 owed." in text.stdout

    # A client with only credit, and one with nothing.
    delta = _aging(cli, folder, "--as-of", DAY, "--client", str(ids["delta"]))
    assert delta.returncode == 0, delta.stderr
    assert delta.stdout.splitlines()[0] == "Delta Café had no open invoices on 2026-11-20."
    assert "Credit on account: $50.00" in delta.stdout
    golf = _aging(cli, folder, "--as-of", DAY, "--client", str(ids["golf"]))
    assert golf.returncode == 0 and golf.stdout == "Golf Club had no open invoices on 2026-11-20.\n"


@pytest.mark.parametrize(("args", "says"), [
    (["report", "aging", "--as-of", "FUTURE"], "is in the future"),
    (["report", "aging", "--as-of", "2026-13-45"], "is not a date; write it as YYYY-MM-DD"),
    (["report", "aging", "--as-of", "20/11/2026", "--json"], "is not a date"),
    (["report", "aging", "--as-of", DAY, "--client", "9999"], "There is no client with ID 9999."),
    (["report", "aging", "--as-of", DAY, "--client", "1", "--pdf", "x.pdf"], "mspbill clients statement 1"),
    (["report", "kpis", "--as-of", "FUTURE", "--json"], "is in the future"),
    (["report", "kpis", "--as-of", "yesterday"], "is not a date"),
])
def test_bad_input_is_one_sentence_and_exit_2(cli, office, tmp_path: Path, args: list[str], says: str) -> None:
    folder, _ = office
    future = (dt.date.today() + dt.timedelta(days=1)).isoformat()  # the child judges by the clock, too
    result = cli("--data-dir", str(folder), *[future if a == "FUTURE" else a for a in args], cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert says in result.stderr and result.stderr.startswith("mspbill: ")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_an_office_with_no_data_is_told_so(cli, tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    result = cli("--data-dir", str(folder), "report", "aging", "--as-of", DAY)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Nothing is owed as of 2026-11-20.\n"
    as_json = cli("--data-dir", str(folder), "report", "aging", "--as-of", DAY, "--json", "--pdf",
                  str(tmp_path / "empty.pdf"))
    assert as_json.returncode == 0, as_json.stderr
    document = json.loads(as_json.stdout)
    assert document["sections"] == [] and document["nothing_owed"] is True
    assert "Nothing is owed as of 20 Nov 2026." in _flat(PdfReader(tmp_path / "empty.pdf").pages[0].extract_text())
