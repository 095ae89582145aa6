"""`mspbill invoices ...` and `mspbill payments ...` as real child processes against a SQLite file.

The office is built once through the services, in March 2025 (a month safely
in the past whatever day the tests run): each test that writes works on its
own copy of the data folder.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from mspbill import cli as cli_module
from mspbill.agreements import AgreementDraft, LineDraft, create_agreement
from mspbill.clients import ClientDraft, create_client
from mspbill.company import CompanyDraft, save_company
from mspbill.db.schema import open_database
from mspbill.generation import ConcurrentGenerationError
from mspbill.paths import DB_FILENAME
from mspbill.periods import parse_period

PERIOD = "2025-03"
ISSUE_DAY = "2025-03-01"
# Acme Dental: 10 × $50.00 taxable at 8.25% + 2 × $95.00 not taxable = $690.00 + $41.25 tax.
ACME_TOTAL = 731_25
# Zürich Bäckerei (autopay, no tax): 4 × $45.00 from 10 March, 22/31 days = $127.74; vCIO Q1 $750.00.
ZURICH_MONTHLY, ZURICH_QUARTERLY = 127_74, 750_00
TABLES = ("invoices", "invoice_lines", "payments", "client_credits", "audit_log")


def _json(result) -> Any:
    """The whole of stdout must be one JSON document."""
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _parallel(cli, *commands: tuple[str, ...]) -> list:
    """Run independent commands side by side (each is its own process)."""
    with ThreadPoolExecutor(max_workers=min(8, len(commands))) as pool:
        return list(pool.map(lambda args: cli(*args), commands))


def _refused(result, *phrases: str) -> str:
    """Exit 2, nothing on stdout, no traceback, and a sentence that says what to do."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("mspbill: ")
    for phrase in phrases:
        assert phrase in result.stderr, (phrase, result.stderr)
    return result.stderr


def _state(data: Path) -> dict[str, Any]:
    """Everything a refused command must leave alone, read straight from the file."""
    conn = sqlite3.connect(f"{(data / DB_FILENAME).as_uri()}?mode=ro", uri=True)
    try:
        state: dict[str, Any] = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
        state["invoices_by_status"] = sorted(conn.execute(
            "SELECT status, count(*), sum(paid_cents), sum(credited_cents) FROM invoices GROUP BY status"))
        state["counters"] = conn.execute(
            "SELECT next_invoice_number, next_credit_note_number FROM company_profile").fetchall()
        return state
    finally:
        conn.close()


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three clients: one billed in full, one on autopay that starts mid-month, one not started yet."""
    data = tmp_path_factory.mktemp("office")
    db = open_database(f"sqlite:///{data / DB_FILENAME}", data / "backups")
    try:
        with db.write_session() as s, s.begin():
            save_company(s, CompanyDraft(name="Northwind IT", invoice_number_pattern="INV-{n:06d}"))
            acme = create_client(s, ClientDraft(legal_name="Acme Dental", billing_emails="ap@acme.example",
                                                tax_rate="8.25", payment_terms_days="30"))
            create_agreement(s, AgreementDraft(
                client_id=acme.id, name="Managed IT", start_date="2025-01-01",
                lines=[LineDraft("Managed workstations", "10", "50.00"),
                       LineDraft("Cloud backup (per TB)", "2", "95.00", taxable=False)]))
            zurich = create_client(s, ClientDraft(legal_name="Zürich Bäckerei", billing_emails="ap@z.example",
                                                  autopay=True))
            create_agreement(s, AgreementDraft(client_id=zurich.id, name="Managed IT", start_date="2025-03-10",
                                               lines=[LineDraft("Managed workstations", "4", "45.00")]))
            create_agreement(s, AgreementDraft(client_id=zurich.id, name="Quarterly vCIO", frequency="quarterly",
                                               start_date="2025-01-01",
                                               lines=[LineDraft("Virtual CIO session", "1", "750.00")]))
            cedar = create_client(s, ClientDraft(legal_name="Cedar Law", billing_emails="ap@cedar.example"))
            create_agreement(s, AgreementDraft(client_id=cedar.id, name="Managed IT", start_date="2025-06-01",
                                               lines=[LineDraft("Managed workstations", "3", "55.00")]))
    finally:
        db.dispose()
    return data


@pytest.fixture
def fresh(office: Path, tmp_path: Path) -> Path:
    """A private copy of the office for a test that writes."""
    return Path(shutil.copytree(office, tmp_path / "office"))


@pytest.fixture(scope="module")
def issued(office: Path, tmp_path_factory: pytest.TempPathFactory, cli) -> Path:
    """The office with March 2025 generated and issued on the 1st (INV-000001 to INV-000003)."""
    data = Path(shutil.copytree(office, tmp_path_factory.mktemp("issued") / "office"))
    assert _json(cli("--data-dir", str(data), "invoices", "generate", "--period", PERIOD, "--json"))["created"] == 3
    assert _json(cli("--data-dir", str(data), "invoices", "issue", "--period", PERIOD, "--date", ISSUE_DAY,
                     "--json"))["issued"] == 3
    return data


def _copy(source: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(source, tmp_path / "copy"))


# --- generate -------------------------------------------------------------

def test_dry_run_previews_and_writes_nothing(cli, fresh: Path) -> None:
    before = _state(fresh)
    text = cli("--data-dir", str(fresh), "invoices", "generate", "--period", PERIOD, "--dry-run")
    assert text.returncode == 0, text.stderr
    out = text.stdout
    assert "dry run" in out and "nothing is written" in out
    assert out.splitlines()[2].split()[:2] == ["Client", "Agreement"]
    acme = next(line for line in out.splitlines() if line.startswith("Acme Dental"))
    assert "Managed IT — March 2025" in acme and "$690.00" in acme and "$41.25" in acme and "$731.25" in acme
    zurich = next(line for line in out.splitlines() if "Zürich Bäckerei" in line and "March 2025" in line)
    assert "prorated" in zurich and "$127.74" in zurich
    assert "Quarterly vCIO — Q1 2025" in out and "2025-01-01 – 2025-03-31" in out
    assert "Left out (1)" in out and "Cedar Law" in out and "Starts 2025-06-01" in out
    assert "USD: 3 invoice(s), subtotal $1,567.74, tax $41.25, total $1,608.99" in out
    assert "without --dry-run" in out

    preview = _json(cli("--data-dir", str(fresh), "invoices", "generate", "--period", PERIOD, "--dry-run",
                        "--json"))
    assert preview["dry_run"] is True and preview["created"] == 0 and preview["invoice_ids"] == []
    assert preview["period"] == PERIOD
    assert [(i["client_name"], i["title"], i["total_cents"]) for i in preview["invoices"]] == [
        ("Acme Dental", "Managed IT — March 2025", ACME_TOTAL),
        ("Zürich Bäckerei", "Managed IT — March 2025", ZURICH_MONTHLY),
        ("Zürich Bäckerei", "Quarterly vCIO — Q1 2025", ZURICH_QUARTERLY)]
    assert preview["invoices"][1]["prorated"] is True and preview["invoices"][1]["notes"] == "prorated"
    assert preview["invoices"][0]["lines"][0] == {
        "kind": "service", "description": "Managed workstations", "quantity": "10", "unit_price_cents": 5000,
        "amount_cents": 50000, "taxable": True}
    assert preview["left_out"] == [{"agreement_id": 4, "client_name": "Cedar Law", "agreement_name": "Managed IT",
                                    "reason": "Starts 2025-06-01"}]
    assert preview["totals"] == {"USD": {"invoices": 3, "subtotal_cents": 156774, "tax_cents": 4125,
                                         "total_cents": 160899, "total": "$1,608.99"}}
    assert preview["instalments_due"] == 0
    assert _state(fresh) == before


def test_generate_twice_creates_nothing_new(cli, fresh: Path) -> None:
    first = _json(cli("--data-dir", str(fresh), "invoices", "generate", "--period", PERIOD, "--json"))
    assert first["dry_run"] is False and first["created"] == 3 and len(first["invoice_ids"]) == 3
    after_first = _state(fresh)
    assert after_first["invoices"] == 3 and after_first["invoices_by_status"] == [("draft", 3, 0, 0)]

    again = cli("--data-dir", str(fresh), "invoices", "generate", "--period", PERIOD)
    assert again.returncode == 0, again.stderr
    assert "Nothing new to generate for March 2025" in again.stdout
    assert "4 agreement(s) left out" in again.stdout and "--dry-run" in again.stdout
    assert _state(fresh) == after_first
    reasons = _json(cli("--data-dir", str(fresh), "invoices", "generate", "--period", PERIOD, "--json"))
    assert reasons["created"] == 0 and reasons["invoices"] == []
    assert sorted(x["reason"] for x in reasons["left_out"]) == [
        "Draft for March 2025 waiting to be issued", "Draft for March 2025 waiting to be issued",
        "Draft for Q1 2025 waiting to be issued",
        "Starts 2025-06-01"]
    assert _state(fresh) == after_first


def test_generate_says_how_many_and_how_to_issue(cli, fresh: Path) -> None:
    result = cli("--data-dir", str(fresh), "invoices", "generate", "--period", "March 2025")
    assert result.returncode == 0, result.stderr
    assert "Created 3 draft invoice(s) for March 2025, $1,608.99 in all." in result.stdout
    assert "mspbill invoices issue --period 2025-03" in result.stdout


BAD_PERIODS = [("2026-13", "there is no month 13"), ("nov", "needs a year"), ("next month", "use YYYY-MM"),
               ("1999-12", "between 2000 and 2100")]


def test_a_bad_period_exits_2_and_changes_nothing(cli, office: Path) -> None:
    before = _state(office)
    commands = [("invoices", "generate"), ("invoices", "generate", "--dry-run", "--json"), ("invoices", "issue"),
                ("payments", "list", "--json")]
    results = _parallel(cli, *(("--data-dir", str(office), *command, "--period", period)
                               for command, (period, _) in zip(commands, BAD_PERIODS, strict=True)))
    for result, (_, phrase) in zip(results, BAD_PERIODS, strict=True):
        _refused(result, phrase)
    assert _state(office) == before


def test_concurrent_generation_exits_2_with_a_sentence(office: Path, tmp_path: Path, capsys,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Another run got there first: the core raises, the CLI says what happened and what to do."""
    import mspbill.generation

    def raced(session, month):
        raise ConcurrentGenerationError(f"Another run generated invoices for {month.label} at the same moment; "
                                        "this one created nothing. Generate again to see what is left.")

    monkeypatch.setattr(mspbill.generation, "generate_period", raced)
    data = _copy(office, tmp_path)
    code = cli_module.main(["--data-dir", str(data), "invoices", "generate", "--period", PERIOD, "--json"])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert "Another run generated invoices for March 2025" in captured.err
    assert "Generate again" in captured.err


# --- issue ----------------------------------------------------------------

def test_issue_numbers_the_drafts_gaplessly(cli, fresh: Path) -> None:
    cli("--data-dir", str(fresh), "invoices", "generate", "--period", PERIOD)
    result = cli("--data-dir", str(fresh), "invoices", "issue", "--period", PERIOD, "--date", ISSUE_DAY)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ("Issued 3 invoice(s) for March 2025, dated 2025-03-01: "
                                     "INV-000001 to INV-000003.")
    # The quarterly draft bills Q1 (from 1 January) and is issued with March all the same.
    rows = _json(cli("--data-dir", str(fresh), "invoices", "list", "--json"))
    assert sorted((r["number"], r["title"], r["issue_date"], r["due_date"]) for r in rows) == [
        ("INV-000001", "Managed IT — March 2025", ISSUE_DAY, "2025-03-31"),  # 30 days' terms
        ("INV-000002", "Managed IT — March 2025", ISSUE_DAY, ISSUE_DAY),     # autopay: due on issue
        ("INV-000003", "Quarterly vCIO — Q1 2025", ISSUE_DAY, ISSUE_DAY)]
    again = _json(cli("--data-dir", str(fresh), "invoices", "issue", "--period", PERIOD, "--json"))
    assert again == {"period": PERIOD, "issue_date": again["issue_date"], "issued": 0, "numbers": [],
                     "first": None, "last": None}


def test_issue_without_drafts_says_to_generate(cli, fresh: Path) -> None:
    before = _state(fresh)
    result = cli("--data-dir", str(fresh), "invoices", "issue", "--period", PERIOD)
    assert result.returncode == 0, result.stderr
    assert "no drafts for March 2025" in result.stdout
    assert "mspbill invoices generate --period 2025-03" in result.stdout
    assert _state(fresh) == before


def test_issue_with_a_bad_date_is_refused(cli, fresh: Path) -> None:
    cli("--data-dir", str(fresh), "invoices", "generate", "--period", PERIOD)
    before = _state(fresh)
    stderr = _refused(cli("--data-dir", str(fresh), "invoices", "issue", "--period", PERIOD, "--date", "1/3/2025"),
                      "use YYYY-MM-DD")
    # One problem: one sentence, without the program's field name.
    assert stderr.startswith("mspbill: “1/3/2025” is not a date") and "issue_date" not in stderr
    assert len(stderr.splitlines()) == 1
    assert _state(fresh) == before


# --- list and show --------------------------------------------------------

def test_list_filters(cli, issued: Path) -> None:
    base = ("--data-dir", str(issued), "invoices", "list", "--json")
    every, zurich, february, overdue, paid = (_json(r) for r in _parallel(
        cli, base, (*base, "--client", "2"), (*base, "--period", "2025-02"),
        (*base, "--status", "unpaid", "--overdue"), (*base, "--status", "paid")))
    assert [r["number"] for r in every] == ["INV-000003", "INV-000002", "INV-000001"]
    assert {"id", "number", "display_number", "client_name", "title", "issue_date", "due_date", "total_cents",
            "balance_cents", "status", "overdue", "overdue_days", "total", "balance"} <= set(every[0])
    assert all(r["status"] == "open" and r["overdue"] and r["overdue_days"] > 0 for r in every)
    assert [r["number"] for r in zurich] == ["INV-000003", "INV-000002"]
    # A period matches the invoices whose billing period covers it: the Q1 invoice is February's too.
    assert [r["number"] for r in february] == ["INV-000003"]
    assert paid == []
    assert len(overdue) == 3


def test_list_table(cli, issued: Path) -> None:
    result = cli("--data-dir", str(issued), "invoices", "list", "--client", "1")
    assert result.returncode == 0, result.stderr
    header, row, _, total = result.stdout.splitlines()
    assert header.split() == ["Number", "Client", "Title", "Issued", "Due", "Total", "Balance", "Status"]
    assert row.startswith("INV-000001  Acme Dental  Managed IT — March 2025  2025-03-01  2025-03-31  $731.25")
    assert "open, overdue" in row and row.endswith("days")
    assert total == "1 invoice(s); $731.25 outstanding"


def test_list_shows_drafts_as_draft(cli, fresh: Path) -> None:
    cli("--data-dir", str(fresh), "invoices", "generate", "--period", PERIOD)
    result = cli("--data-dir", str(fresh), "invoices", "list", "--status", "draft")
    assert result.returncode == 0, result.stderr
    rows = result.stdout.splitlines()[1:4]
    assert all(r.startswith("Draft ") and r.rstrip().endswith("draft") for r in rows)


def test_list_refuses_an_unknown_status(cli, issued: Path) -> None:
    result = cli("--data-dir", str(issued), "invoices", "list", "--status", "late")
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_show(cli, issued: Path) -> None:
    result = cli("--data-dir", str(issued), "invoices", "show", "inv-000001")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("Invoice INV-000001: Managed IT — March 2025\n")
    assert "Acme Dental" in out and "2025-03-01 – 2025-03-31" in out and "Due:" in out
    assert "Managed workstations" in out and "Cloud backup (per TB)" in out
    assert "Tax (8.25%)" in out and "$41.25" in out and "Balance due  $731.25" in out
    assert "History:" in out and "Issued INV-000001 to Acme Dental" in out

    detail = _json(cli("--data-dir", str(issued), "invoices", "show", "INV-000001", "--json"))
    assert detail["row"]["number"] == "INV-000001" and detail["row"]["balance_cents"] == ACME_TOTAL
    assert [(ln["description"], ln["amount_cents"], ln["taxable"]) for ln in detail["lines"]] == [
        ("Managed workstations", 50000, True), ("Cloud backup (per TB)", 19000, False)]
    assert (detail["subtotal_cents"], detail["tax_cents"]) == (69000, 4125)
    assert detail["payments"] == [] and detail["bill_to"]["name"] == "Acme Dental"
    assert [h["summary"][:9] for h in detail["history"]] == ["Generated", "Issued IN"]


def test_show_a_draft_by_id(cli, fresh: Path) -> None:
    ids = _json(cli("--data-dir", str(fresh), "invoices", "generate", "--period", PERIOD, "--json"))["invoice_ids"]
    detail = _json(cli("--data-dir", str(fresh), "invoices", "show", "--id", str(ids[0]), "--json"))
    assert detail["row"]["number"] is None and detail["row"]["status"] == "draft"
    assert "Invoice Draft:" in cli("--data-dir", str(fresh), "invoices", "show", "--id", str(ids[0])).stdout


def test_show_unknown_number(cli, issued: Path) -> None:
    _refused(cli("--data-dir", str(issued), "invoices", "show", "INV-999999", "--json"),
             "no issued invoice numbered “INV-999999”")
    _refused(cli("--data-dir", str(issued), "invoices", "show", "--json"),
             "Give the invoice number to show", "mspbill invoices show INV-000123", "--id ID for a draft")
    _refused(cli("--data-dir", str(issued), "invoices", "show", "INV-000001", "--id", "1"), "not both")


def test_an_unknown_client_is_named(cli, office: Path) -> None:
    """`--client ID` for a client that does not exist is an error, not an empty list."""
    results = _parallel(cli, *(("--data-dir", str(office), *command, "--client", "9999", *extra)
                               for command in (("invoices", "list"), ("payments", "list"), ("agreements", "list"))
                               for extra in ((), ("--json",))))
    for result in results:
        assert _refused(result) == "mspbill: There is no client with ID 9999.\n"
    assert _json(cli("--data-dir", str(office), "agreements", "list", "--client", "1", "--json"))


# --- void and credit ------------------------------------------------------

def test_void_and_credit(cli, issued: Path, tmp_path: Path) -> None:
    data = _copy(issued, tmp_path)
    voided = _json(cli("--data-dir", str(data), "invoices", "void", "INV-000002", "--reason", "Billed in error",
                       "--json"))
    assert voided == {"number": "INV-000002", "status": "void", "reason": "Billed in error", "currency": "USD",
                      "credit_returned_cents": 0}
    # A void invoice owes nothing.
    row = next(r for r in _json(cli("--data-dir", str(data), "invoices", "list", "--json"))
               if r["number"] == "INV-000002")
    assert (row["status"], row["balance_cents"], row["balance"]) == ("void", 0, "$0.00")
    shown = cli("--data-dir", str(data), "invoices", "show", "INV-000002")
    assert re.search(r"Balance due +\$0\.00\n", shown.stdout) and "Total  $127.74" in shown.stdout
    before = _state(data)
    _refused(cli("--data-dir", str(data), "invoices", "void", "INV-000002", "--reason", "again"),
             "INV-000002 is already void")
    _refused(cli("--data-dir", str(data), "invoices", "void", "INV-000001", "--reason", "  "), "Give a reason")
    assert _state(data) == before

    credit = cli("--data-dir", str(data), "invoices", "credit", "INV-000001", "--reason", "Outage credit",
                 "--amount", "100")
    assert credit.returncode == 0, credit.stderr
    # $100 before tax, 500/690 of it taxable ($72.46) at 8.25%: $105.98 with tax.
    assert credit.stdout.strip() == ("Issued credit note CN-000001 for $105.98 on INV-000001: $105.98 off the "
                                     "invoice's balance. INV-000001's balance is now $625.27 (open).")
    before = _state(data)
    _refused(cli("--data-dir", str(data), "invoices", "credit", "INV-000001", "--reason", "x", "--amount", "1e3"),
             "amount")
    _refused(cli("--data-dir", str(data), "invoices", "credit", "INV-000001", "--reason", "x", "--amount",
                 "5000"), "more than the")
    assert _state(data) == before


def test_void_needs_a_reason_option(cli, issued: Path) -> None:
    result = cli("--data-dir", str(issued), "invoices", "void", "INV-000001")
    assert result.returncode == 2 and "--reason" in result.stderr


def _clients_credit(cli, data: Path) -> dict[str, int]:
    return {c["legal_name"]: c["credit_cents"] for c in _json(cli("--data-dir", str(data), "clients", "list",
                                                                   "--json"))}


def test_credit_notes_list_as_applied_and_say_where_the_credit_went(cli, issued: Path, tmp_path: Path) -> None:
    data = _copy(issued, tmp_path)
    for number, amount in (("INV-000001", "700"), ("INV-000003", "750")):
        assert cli("--data-dir", str(data), "payments", "record", number, "--amount", amount, "--method", "check",
                   "--date", ISSUE_DAY).returncode == 0
    # $31.25 was still owed: that much comes off the balance, the rest is client credit.
    full_note = _json(cli("--data-dir", str(data), "invoices", "credit", "INV-000001", "--reason",
                          "Contract cancelled", "--json"))
    assert full_note == {"credit_note": "CN-000001", "invoice": "INV-000001", "currency": "USD",
                         "total_cents": ACME_TOTAL, "invoice_status": "paid", "invoice_balance_cents": 0,
                         "balance_reduced_cents": ACME_TOTAL - 700_00, "client_credit_cents": 700_00}
    paid_note = cli("--data-dir", str(data), "invoices", "credit", "INV-000003", "--reason", "Goodwill",
                    "--amount", "50")
    assert paid_note.returncode == 0, paid_note.stderr
    assert paid_note.stdout.strip() == (
        "Issued credit note CN-000002 for $50.00 on INV-000003: $50.00 to the client's credit, applied to the "
        "next invoice issued. INV-000003's balance is now $0.00 (paid).")
    assert _clients_credit(cli, data) == {"Acme Dental": 700_00, "Cedar Law": 0, "Zürich Bäckerei": 50_00}

    rows = {r["number"]: r for r in _json(cli("--data-dir", str(data), "invoices", "list", "--json"))}
    for number in ("CN-000001", "CN-000002"):
        assert (rows[number]["status_text"], rows[number]["balance_cents"]) == ("Applied", 0)
    # A status filter lists invoices: credit notes are stored as paid but are not paid invoices.
    paid = _json(cli("--data-dir", str(data), "invoices", "list", "--status", "paid", "--json"))
    assert sorted(r["number"] for r in paid) == ["INV-000001", "INV-000003"]

    table = cli("--data-dir", str(data), "invoices", "list", "--client", "1").stdout.splitlines()
    note_line = next(line for line in table if line.startswith("CN-000001"))
    assert note_line.endswith("  Applied") and "paid" not in note_line
    assert note_line.count("$") == 1 and len(re.findall(r"\d{4}-\d\d-\d\d", note_line)) == 1  # no due, no balance

    shown = cli("--data-dir", str(data), "invoices", "show", "CN-000001").stdout
    assert shown.startswith("Credit note CN-000001: Credit note for INV-000001\n")
    assert re.search(r"Status: +Applied\n", shown) and "Credits: INV-000001" in shown.replace("  ", " ")
    assert "Due:" not in shown and "Balance due" not in shown and "paid" not in shown.split("\n\n")[0]
    assert re.findall(r"^  (Reason|Note):", shown, re.MULTILINE) == ["Reason"]  # the reason once

    clients = cli("--data-dir", str(data), "clients", "list").stdout.splitlines()
    assert clients[0].split()[-2:] == ["Credit", "Status"]
    assert "$700.00" in next(line for line in clients if "Acme Dental" in line)
    assert "applied to the next invoice issued" in clients[-1]


def test_void_says_when_client_credit_was_returned(cli, issued: Path, tmp_path: Path) -> None:
    data = _copy(issued, tmp_path)
    assert cli("--data-dir", str(data), "payments", "record", "INV-000002", "--amount", "177.74", "--method",
               "check", "--date", ISSUE_DAY, "--credit-excess").returncode == 0
    assert _clients_credit(cli, data)["Zürich Bäckerei"] == 50_00
    following = parse_period(PERIOD).shift(1)
    assert cli("--data-dir", str(data), "invoices", "generate", "--period", str(following)).returncode == 0
    assert cli("--data-dir", str(data), "invoices", "issue", "--period", str(following), "--date",
               following.first_day.isoformat()).returncode == 0
    assert _clients_credit(cli, data)["Zürich Bäckerei"] == 0  # used on the next invoice
    numbers = [r["number"] for r in _json(cli("--data-dir", str(data), "invoices", "list", "--client", "2",
                                              "--period", str(following), "--json"))]
    used = [n for n in numbers if _json(cli("--data-dir", str(data), "invoices", "show", n, "--json"))[
        "credit_applied_cents"] == 50_00]
    assert len(used) == 1
    voided = cli("--data-dir", str(data), "invoices", "void", used[0], "--reason", "Duplicate")
    assert voided.returncode == 0, voided.stderr
    assert voided.stdout.splitlines() == [
        f"Voided {used[0]}: Duplicate",
        "The $50.00 of client credit it had used was returned to the client's credit, for the next invoice issued."]
    assert _clients_credit(cli, data)["Zürich Bäckerei"] == 50_00


# --- payments -------------------------------------------------------------

def test_partial_payment_then_overpayment(cli, issued: Path, tmp_path: Path) -> None:
    data = _copy(issued, tmp_path)
    partial = _json(cli("--data-dir", str(data), "payments", "record", "INV-000001", "--amount", "200",
                        "--method", "cheque", "--reference", "1042", "--date", "2025-03-20", "--json"))
    assert partial["amount_cents"] == 200_00 and partial["applied_cents"] == 200_00
    assert partial["method"] == "check" and partial["reference"] == "1042"
    assert partial["received_on"] == "2025-03-20"
    assert partial["invoice_status"] == "open" and partial["invoice_balance_cents"] == ACME_TOTAL - 200_00

    before = _state(data)
    refused = _refused(cli("--data-dir", str(data), "payments", "record", "INV-000001", "--amount", "600",
                           "--method", "check"), "$600.00", "INV-000001", "$531.25", "--credit-excess")
    assert "$68.75" in refused  # names the excess
    assert "nothing was recorded" in refused
    assert _state(data) == before

    kept = cli("--data-dir", str(data), "payments", "record", "INV-000001", "--amount", "600", "--method", "check",
               "--credit-excess")
    assert kept.returncode == 0, kept.stderr
    assert "$68.75 kept as client credit" in kept.stdout and "paid in full" in kept.stdout
    row = _json(cli("--data-dir", str(data), "invoices", "list", "--client", "1", "--json"))[0]
    assert (row["status"], row["balance_cents"]) == ("paid", 0)
    # Paying a paid invoice again: the excess is the whole amount.
    _refused(cli("--data-dir", str(data), "payments", "record", "INV-000001", "--amount", "5", "--method", "check"),
             "already paid in full", "--credit-excess")


def test_payment_text_and_formatted_amounts(cli, issued: Path, tmp_path: Path) -> None:
    data = _copy(issued, tmp_path)
    result = cli("--data-dir", str(data), "payments", "record", "INV-000003", "--amount", "$1,000.00",
                 "--method", "wire", "--reference", "FW-88121", "--date", "2025-03-05", "--credit-excess")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "Recorded a payment of $1,000.00 (Wire transfer, ref FW-88121) on INV-000003, received 2025-03-05; "
        "$250.00 kept as client credit; INV-000003 is paid in full.")


BAD_PAYMENTS = [
    (("--amount", "12.345", "--method", "check"), ("amount", "3 decimal places")),
    (("--amount", "-5", "--method", "check"), ("more than zero", "refund")),
    (("--amount", "0", "--method", "check"), ("A payment is more than zero.",)),
    (("--amount", "10", "--method", "bitcoin"), ("use check, cash, wire, ach or other",)),
    (("--amount", "10", "--method", "check", "--date", "yesterday"), ("date", "YYYY-MM-DD")),
]


def test_bad_payments_exit_2_and_record_nothing(cli, issued: Path) -> None:
    before = _state(issued)
    results = _parallel(cli, *(("--data-dir", str(issued), "payments", "record", "INV-000001", *args, "--json")
                               for args, _ in BAD_PAYMENTS))
    for result, (_, phrases) in zip(results, BAD_PAYMENTS, strict=True):
        stderr = _refused(result, *phrases)
        assert "the input has problems" not in stderr and "received_on" not in stderr
        assert len(stderr.splitlines()) == 1
    assert _state(issued) == before


def test_every_problem_at_once(cli, issued: Path) -> None:
    before = _state(issued)
    stderr = _refused(cli("--data-dir", str(issued), "payments", "record", "INV-000001", "--amount", "1e3",
                          "--method", "card", "--date", "2999-01-01"))
    lines = stderr.splitlines()
    assert lines[0] == "mspbill: 3 problems:"
    assert all(line.startswith("  - ") for line in lines[1:]) and len(lines) == 4
    assert "not an amount" in lines[1] and "Stripe" in lines[2] and "in the future" in lines[3]
    for field in ("amount:", "method:", "received_on", "the input has problems"):
        assert field not in stderr
    assert _state(issued) == before


def test_payment_on_an_unknown_or_void_invoice(cli, issued: Path, tmp_path: Path) -> None:
    _refused(cli("--data-dir", str(issued), "payments", "record", "INV-000404", "--amount", "10", "--method",
                 "check"), "no issued invoice numbered")
    data = _copy(issued, tmp_path)
    cli("--data-dir", str(data), "invoices", "void", "INV-000002", "--reason", "Duplicate")
    before = _state(data)
    _refused(cli("--data-dir", str(data), "payments", "record", "INV-000002", "--amount", "10", "--method",
                 "check"), "INV-000002 is void")
    assert _state(data) == before


def test_payments_list(cli, issued: Path, tmp_path: Path) -> None:
    data = _copy(issued, tmp_path)
    for number, amount, day in (("INV-000001", "100", "2025-03-20"), ("INV-000002", "127.74", "2025-04-02"),
                                ("INV-000003", "750", "2025-03-02")):
        assert cli("--data-dir", str(data), "payments", "record", number, "--amount", amount, "--method", "ach",
                   "--date", day).returncode == 0
    every = _json(cli("--data-dir", str(data), "payments", "list", "--json"))
    assert [(p["invoice_number"], p["received_on"], p["amount_cents"]) for p in every] == [
        ("INV-000002", "2025-04-02", 127_74), ("INV-000001", "2025-03-20", 100_00),
        ("INV-000003", "2025-03-02", 750_00)]
    zurich, table = _parallel(cli, ("--data-dir", str(data), "payments", "list", "--client", "2", "--json"),
                              ("--data-dir", str(data), "payments", "list", "--period", PERIOD))
    assert [p["invoice_number"] for p in _json(zurich)] == ["INV-000002", "INV-000003"]
    assert table.returncode == 0, table.stderr
    rows = table.stdout.splitlines()
    assert rows[0].split()[:4] == ["ID", "Received", "Client", "Invoice"]
    assert [r.split()[1] for r in rows[1:3]] == ["2025-03-20", "2025-03-02"]
    assert "ACH (outside Stripe)" in rows[1]
    assert rows[-1] == "2 payment(s); $850.00 received"
