"""`mspbill collections ...` as real child processes on a small office: the day's pass (and two at
once), fees listed and waived, pausing, one invoice's reminders, the settings; --json prints one
document and nothing else; bad input is one sentence on standard error with exit code 2.

The office (two clients who pay by invoice, INV-000001 $1,234.57 and INV-000002 $500.00, issued
2 Mar 2026 and due 1 Apr 2026; mail set up, never reached) is built once, in-process, and
copied for each test."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from billing_helpers import setup_office
from sqlalchemy import select
from test_collections_reminders import DUE, configure_mail, pay_by_invoice

from mspbill.collections.run import run_collections
from mspbill.collections.settings import LateFeeDraft, save_late_fees
from mspbill.db.engine import Database
from mspbill.db.models import Client, Invoice, InvoiceReminder, LateFee, OutboxMessage
from mspbill.db.schema import open_database
from mspbill.mail.outbox import KIND_REMINDER
from mspbill.paths import DB_FILENAME

TEN_DAYS = DUE + dt.timedelta(days=10)
T = TEN_DAYS.isoformat()


def _open(folder: Path, migrate: bool = False) -> Database:
    return open_database(f"sqlite:///{folder / DB_FILENAME}", folder / "backups", migrate=migrate)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("collections-office") / "data"
    folder.mkdir(parents=True)
    db = _open(folder, migrate=True)
    try:
        setup_office(db, name="Acme IT")
        configure_mail(db)
        pay_by_invoice(db, "Cascade Dental", "1234.57")
        pay_by_invoice(db, "Harbor Logistics", "500.00")
    finally:
        db.dispose()
    return folder


@pytest.fixture
def office(template: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "office"
    shutil.copytree(template, folder)
    return folder


@pytest.fixture
def office_db(office: Path) -> Iterator[Database]:
    db = _open(office)
    try:
        yield db
    finally:
        db.dispose()


@pytest.fixture
def col(cli, office: Path):
    """col(*args) -> `mspbill --data-dir OFFICE collections ARGS`."""
    def run(*args: str):
        return cli("--data-dir", str(office), "collections", *args)
    return run


def ok(result: Any) -> str:
    assert result.returncode == 0, result.stderr
    return str(result.stdout)


def as_json(result: Any) -> Any:
    return json.loads(ok(result))   # the whole of stdout is one document


def refused(result: Any, sentence: str) -> None:
    """Exit 2, nothing on stdout, one line on stderr containing `sentence`, no traceback."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert sentence in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("mspbill: ")


def with_fees(db: Database, **fields: object) -> None:
    values: dict[str, object] = {"enabled": True, "kind": "flat", "flat_amount": "25.00", "after_days": 10}
    values.update(fields)
    with db.write_session() as s, s.begin():
        save_late_fees(s, LateFeeDraft(**values))  # type: ignore[arg-type]


def count(db: Database, model: type) -> int:
    with db.session() as s:
        return len(list(s.scalars(select(model))))


def ids_of(db: Database) -> dict[str, int]:
    with db.session() as s:
        invoices = {inv.number: inv.id for inv in s.scalars(select(Invoice)) if inv.number}
        clients = {c.legal_name: c.id for c in s.scalars(select(Client))}
    return {**invoices, **clients}


# --- run ---------------------------------------------------------------------------------


def test_run_queues_the_days_reminders_and_fees_once(col, office_db: Database) -> None:
    with_fees(office_db)
    out = ok(col("run", "--today", T))
    assert out.splitlines()[0] == f"Collections for {T}:"
    assert "2 reminders queued." in out
    assert "2 late fees assessed ($50.00)." in out
    assert "Issued for late fees: INV-000003, INV-000004." in out   # no agreement: invoices of their own
    assert count(office_db, InvoiceReminder) == 2 and count(office_db, LateFee) == 2
    again = ok(col("run", "--today", T))
    assert again.splitlines()[1:] == ["Nothing to follow up today."]
    assert count(office_db, InvoiceReminder) == 2 and count(office_db, LateFee) == 2


def test_run_json_is_one_document(col, office_db: Database) -> None:
    with_fees(office_db)
    doc = as_json(col("run", "--today", T, "--json"))
    assert (doc["today"], doc["dry_run"], doc["changed"]) == (T, False, True)
    assert [(r["invoice"], r["offset_days"], r["step"], r["step_on"]) for r in doc["reminders"]["queued"]] == [
        ("INV-000001", 7, "7 days overdue", "2026-04-08"), ("INV-000002", 7, "7 days overdue", "2026-04-08")]
    assert doc["reminders"]["enabled"] and doc["reminders"]["mail_configured"]
    assert (doc["reminders"]["withdrawn"], doc["reminders"]["already"], doc["reminders"]["skipped"]) == (0, 0, [])
    [first, second] = doc["fees"]["assessed"]
    assert (first["invoice"], first["amount_cents"], first["amount"], first["days_overdue"], first["sequence"]) == (
        "INV-000001", 2500, "$25.00", 10, 1)
    assert first["balance_cents"] == 123457 and second["invoice"] == "INV-000002"
    assert doc["fees"]["own_invoices"] == ["INV-000003", "INV-000004"]
    assert doc["lines"][0] == "2 reminders queued."


def test_dry_run_shows_what_would_happen_and_changes_nothing(col, office_db: Database) -> None:
    with_fees(office_db)
    out = ok(col("run", "--dry-run", "--today", T))
    assert "nothing was queued or assessed" in out.splitlines()[0]
    assert "2 reminders would be queued:" in out
    assert "  INV-000001 (Cascade Dental): 7 days overdue, $1,234.57 open" in out
    assert "2 late fees would be assessed:" in out
    doc = as_json(col("run", "--dry-run", "--json", "--today", T))
    assert doc["dry_run"] is True and [r["invoice"] for r in doc["reminders"]["due"]] == ["INV-000001",
                                                                                           "INV-000002"]
    assert [f["amount_cents"] for f in doc["fees"]["due"]] == [2500, 2500]
    assert count(office_db, InvoiceReminder) == 0 and count(office_db, LateFee) == 0
    assert count(office_db, OutboxMessage) == 0


@pytest.mark.parametrize(("today", "sentence"), [
    ("2026-13-01", "'2026-13-01' is not a date; write it as YYYY-MM-DD"),
    ("yesterday", "'yesterday' is not a date"),
    ("2026-4-1", "'2026-4-1' is not a date"),
    ("2999-01-01", "2999-01-01 is after today"),
])
def test_a_bad_day_is_refused_with_a_sentence(col, office_db: Database, today: str, sentence: str) -> None:
    refused(col("run", "--today", today), sentence)
    assert count(office_db, InvoiceReminder) == 0


def test_two_runs_at_once_never_queue_a_step_twice(col, office_db: Database) -> None:
    for day in ("2026-03-29", DUE.isoformat(), "2026-04-08"):
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(lambda _, day=day: col("run", "--today", day, "--json"), range(2)))
        docs = [as_json(r) for r in results]
        assert sorted(len(d["reminders"]["queued"]) for d in docs) == [0, 2]
    with office_db.session() as s:
        steps = Counter((int(i or 0), int(o)) for i, o in s.execute(
            select(OutboxMessage.invoice_id, InvoiceReminder.offset_days)
            .join(InvoiceReminder, InvoiceReminder.outbox_id == OutboxMessage.id)
            .where(OutboxMessage.kind == KIND_REMINDER)))
    assert sorted(steps.values()) == [1] * 6 and sorted({o for _, o in steps}) == [-3, 0, 7]
    assert count(office_db, OutboxMessage) == 6


# --- fees and waiving ---------------------------------------------------------------------


@pytest.fixture
def fees_assessed(office_db: Database) -> dict[str, int]:
    """A $25.00 fee on each invoice: INV-000001's pending (its client has an agreement), INV-000002's
    on an invoice of its own (INV-000003)."""
    from billing_helpers import make_agreement

    from mspbill.agreements import LineDraft

    ids = ids_of(office_db)
    make_agreement(office_db, ids["Cascade Dental"], "2026-03-01", [LineDraft("Managed seats", "1", "100.00")])
    with_fees(office_db)
    run_collections(office_db, TEN_DAYS)
    with office_db.session() as s:
        fee_ids = {number: fee_id for fee_id, number in s.execute(
            select(LateFee.id, Invoice.number).join(Invoice, Invoice.id == LateFee.invoice_id))}
    return {**ids_of(office_db), **{f"fee {k}": v for k, v in fee_ids.items()}}


def test_fees_lists_every_fee_with_totals_per_status(col, fees_assessed: dict[str, int]) -> None:
    out = ok(col("fees"))
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "Invoice", "Client", "Assessed", "Days", "overdue", "Amount", "Status", "Where"]
    assert any(line.split()[:2] == [str(fees_assessed["fee INV-000001"]), "INV-000001"]
               and "pending" in line and "Next invoice" in line for line in lines)
    assert any("INV-000002" in line and "billed" in line and line.rstrip().endswith("INV-000003") for line in lines)
    assert "Pending: 1 ($25.00)" in lines and "Billed: 1 ($25.00)" in lines
    doc = as_json(col("fees", "--status", "pending", "--json"))
    [fee] = doc["fees"]
    assert (fee["id"], fee["invoice"], fee["client_name"], fee["assessed_on"], fee["days_overdue"],
            fee["amount_cents"], fee["status"], fee["where"]) == (
        fees_assessed["fee INV-000001"], "INV-000001", "Cascade Dental", TEN_DAYS.isoformat(), 10, 2500,
        "pending", "Next invoice")
    assert doc["totals"] == {"pending": {"count": 1, "cents": {"USD": 2500}, "text": "$25.00"}}
    doc = as_json(col("fees", "--client", str(fees_assessed["Harbor Logistics"]), "--json"))
    assert [f["invoice"] for f in doc["fees"]] == ["INV-000002"]


def test_fees_for_an_unknown_client_is_refused(col, office_db: Database) -> None:
    refused(col("fees", "--client", "9999"), "There is no client 9999")


def test_waive_a_pending_fee_and_a_billed_one(col, fees_assessed: dict[str, int], office_db: Database) -> None:
    pending, billed = fees_assessed["fee INV-000001"], fees_assessed["fee INV-000002"]
    out = ok(col("waive", str(pending), "--reason", "First time late"))
    assert out.strip() == (f"Waived late fee {pending} ($25.00 on INV-000001, Cascade Dental): First time late.")
    doc = as_json(col("waive", str(billed), "--reason", "Goodwill", "--json"))
    assert (doc["fee"]["id"], doc["fee"]["status"], doc["fee"]["waive_reason"]) == (billed, "waived", "Goodwill")
    assert doc["credit_note"] == "CN-000001"
    with office_db.session() as s:
        note = s.scalar(select(Invoice).where(Invoice.number == doc["credit_note"]))
        assert note is not None and (note.total_cents, note.tax_cents) == (2500, 0)
    refused(col("waive", str(billed), "--reason", "Again"), "already waived (Goodwill)")


def test_waive_refuses_an_unknown_fee_and_an_empty_reason(col, fees_assessed: dict[str, int]) -> None:
    refused(col("waive", "999", "--reason", "Goodwill"), "There is no late fee 999.")
    refused(col("waive", str(fees_assessed["fee INV-000001"]), "--reason", "  "),
            "Give a reason for waiving the fee")


# --- pause, resume, one invoice -------------------------------------------------------------


def test_pause_and_resume(col, office_db: Database) -> None:
    client = ids_of(office_db)["Cascade Dental"]
    out = ok(col("pause", str(client), "--note", "Disputed invoice"))
    assert out.startswith("Reminders paused for Cascade Dental (Disputed invoice)")
    doc = as_json(col("run", "--today", DUE.isoformat(), "--json"))
    assert [r["invoice"] for r in doc["reminders"]["queued"]] == ["INV-000002"]
    assert [(r["invoice"], r["reason"]) for r in doc["reminders"]["skipped"]] == [
        ("INV-000001", "reminders are paused for this client")]
    doc = as_json(col("resume", str(client), "--json"))
    assert doc == {"client_id": client, "client_name": "Cascade Dental", "reminders_paused": False, "note": ""}
    refused(col("pause", "9999"), "There is no client 9999")


def test_invoice_shows_its_reminders_and_fees(col, office_db: Database) -> None:
    with_fees(office_db)
    run_collections(office_db, DUE)
    run_collections(office_db, TEN_DAYS)
    out = ok(col("invoice", "INV-000001", "--today", TEN_DAYS.isoformat()))
    lines = out.splitlines()
    assert lines[:2] == ["INV-000001 (Cascade Dental)", "Reminders follow the office's schedule."]
    assert any(line.startswith("On the due date") and "queued" in line for line in lines)
    assert any(line.startswith("7 days overdue") and "queued" in line for line in lines)
    assert any(line.startswith("14 days overdue") and "upcoming" in line for line in lines)
    assert any("INV-000001" in line and "$25.00" in line and "INV-000003" in line for line in lines)
    doc = as_json(col("invoice", "inv-000001", "--json", "--today", TEN_DAYS.isoformat()))
    assert (doc["invoice"], doc["client_name"], doc["summary"]) == ("INV-000001", "Cascade Dental",
                                                                   "Reminders follow the office's schedule.")
    assert [(r["offset_days"], r["status"]) for r in doc["reminders"]] == [
        (-3, "skipped"), (0, "queued"), (7, "queued"), (14, "upcoming"), (30, "upcoming")]
    assert [(f["amount_cents"], f["where"]) for f in doc["fees"]] == [(2500, "INV-000003")]
    refused(col("invoice", "INV-999999"), "There is no issued invoice numbered “INV-999999”")


# --- settings ---------------------------------------------------------------------------


def test_settings_show_the_schedule_and_the_fee_policy(col) -> None:
    out = ok(col("settings"))
    assert out.splitlines()[0] == "Reminders: on"
    assert "3 days before due" in out and "30 days overdue" in out
    assert out.rstrip().endswith("Late fees: No late fees.")
    doc = as_json(col("settings", "--json"))
    assert [s["offset_days"] for s in doc["steps"]] == [-3, 0, 7, 14, 30]
    assert doc["reminders_enabled"] is True
    assert doc["late_fees"]["enabled"] is False and doc["late_fees"]["description"] == "No late fees."


def test_set_fees_changes_what_is_given_and_keeps_the_rest(col) -> None:
    doc = as_json(col("set-fees", "--enabled", "--kind", "percent", "--percent", "1.5", "--after-days", "15",
                      "--repeat", "monthly", "--placement", "own_invoice", "--min-balance", "50", "--json"))
    fees = doc["late_fees"]
    assert (fees["enabled"], fees["kind"], fees["percent"], fees["after_days"], fees["repeat"], fees["placement"],
            fees["min_balance_cents"]) == (True, "percent", "1.5", 15, "monthly", "own_invoice", 5000)
    assert fees["description"] == ("A fee of 1.5 % of the overdue balance, 15 days after the due date, then again every "
                                   "month it stays unpaid, on an invoice of its own; none on a balance under $50.00.")
    out = ok(col("set-fees", "--after-days", "20"))
    assert out.strip().startswith("Late fees: A fee of 1.5 % of the overdue balance, 20 days after the due date")
    doc = as_json(col("set-fees", "--disabled", "--json"))
    assert doc["late_fees"]["enabled"] is False and doc["late_fees"]["after_days"] == 20


def test_set_fees_lists_every_problem(col) -> None:
    result = col("set-fees", "--enabled", "--kind", "weekly", "--amount", "abc", "--after-days", "0",
                 "--placement", "somewhere")
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == "mspbill: 4 problems:"
    assert any("The kind of fee must be one of: flat, percent." in line for line in lines)
    assert any("Where the fee goes must be one of: next_invoice, own_invoice." in line for line in lines)
    assert any(line.startswith("  - The flat fee:") for line in lines)
    assert any("between 1 and 365" in line for line in lines)
    doc = as_json(col("settings", "--json"))
    assert doc["late_fees"]["enabled"] is False    # nothing saved


def test_set_reminders_off_and_on(col, office_db: Database) -> None:
    assert ok(col("set-reminders", "--off")).startswith("Reminders are off")
    out = ok(col("run", "--today", DUE.isoformat()))
    assert "Reminders are off (Settings → Collections)." in out
    assert count(office_db, InvoiceReminder) == 0
    doc = as_json(col("set-reminders", "--on", "--json"))
    assert doc["reminders_enabled"] is True and len(doc["steps"]) == 5
    ok(col("run", "--today", DUE.isoformat()))
    assert count(office_db, InvoiceReminder) == 2
