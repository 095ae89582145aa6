"""`mspbill batch ...` as real child processes on a demo office and the sandbox processor.

The demo office is made once (`mspbill demo`: 71 drafts for the current month, 33 autopay
clients with a card or bank account in the sandbox); each test works on its own copy of
its data folder.  What the run did is checked against the sandbox's own ledger, which
lives in its own file, as Stripe's would.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import pty
import shutil
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from mspbill.batch.plan import CSV_HEADERS
from mspbill.db.engine import Database
from mspbill.db.models import (
    BatchRun,
    BatchRunStatus,
    ChargeAttempt,
    ChargeAttemptStatus,
    Client,
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentSettings,
    ProcessorKind,
    utcnow,
)
from mspbill.db.schema import open_database
from mspbill.paths import DB_FILENAME
from mspbill.payments.sandbox import SandboxGateway
from mspbill.periods import Month

# The sandbox as the demo made it: no latency, no random failures (whatever the shell says).
QUIET_SANDBOX = {"MSPBILL_SANDBOX_LATENCY_MS": "", "MSPBILL_SANDBOX_RATE_LIMIT": "", "MSPBILL_SANDBOX_FAILURES": "",
                 "MSPBILL_SANDBOX_SEED": "", "MSPBILL_SANDBOX_ACH_SETTLE_SECONDS": ""}
RUN_STATUSES = ("succeeded", "processing", "failed", "unknown", "not_charged")


@pytest.fixture(scope="module")
def demo_office(tmp_path_factory: pytest.TempPathFactory, cli) -> Path:
    folder = tmp_path_factory.mktemp("batch-demo") / "data"
    made = cli("--data-dir", str(folder), "demo", env=QUIET_SANDBOX)
    assert made.returncode == 0, made.stderr
    return folder


@pytest.fixture
def office(demo_office: Path, tmp_path: Path) -> Path:
    """A fresh copy of the demo office's data folder (database, sandbox ledger)."""
    folder = tmp_path / "office"
    shutil.copytree(demo_office, folder)
    return folder


@pytest.fixture
def batch(cli, office: Path):
    """batch(*args, env=None, input=None) -> `mspbill --data-dir OFFICE batch ARGS`."""
    def run(*args: str, env: dict[str, str] | None = None, input: str | None = None):
        return cli("--data-dir", str(office), "batch", *args, env={**QUIET_SANDBOX, **(env or {})}, input=input)
    return run


def _database(office: Path) -> Iterator[Database]:
    database = open_database(f"sqlite:///{office / DB_FILENAME}", office / "backups", migrate=False)
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture
def office_db(office: Path) -> Iterator[Database]:
    yield from _database(office)


def _json(result: subprocess.CompletedProcess[str], code: int = 0) -> Any:
    """The whole of stdout is one JSON document."""
    assert result.returncode == code, (result.returncode, result.stderr)
    return json.loads(result.stdout)


def _refused(result: subprocess.CompletedProcess[str], *phrases: str, code: int = 2) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, (phrase, result.stderr)


def _count(db: Database, model: type, *where: Any) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where)) or 0


def _ledger(office: Path) -> list[Any]:
    return SandboxGateway(office / "sandbox-processor.sqlite3").ledger_charges()


def _assert_ledger_matches_local(office: Path, db: Database, *, unsynced_debits: bool = False) -> list[Any]:
    """Every charge the processor made is recorded locally, with its outcome; a payment for each
    success; no invoice charged twice.  `unsynced_debits`: a bank debit that settled at the
    processor may still be `processing` here until `batch sync`."""
    ledger = _ledger(office)
    with db.session() as s:
        attempts = {a.intent_id: (a.status.value, a.amount_cents, a.invoice_id)
                    for a in s.scalars(select(ChargeAttempt).where(ChargeAttempt.intent_id.is_not(None)))}
        paid = set(s.scalars(select(Payment.processor_intent_id).where(Payment.processor_intent_id.is_not(None))))
    processor = {r.intent_id: (r.status.value, r.amount_cents, int(r.metadata["mspbill_invoice_id"])) for r in ledger}
    unsynced = set()
    if unsynced_debits:
        unsynced = {i for i, (status, *_) in attempts.items()
                    if status == "processing" and processor.get(i, ("",))[0] in ("succeeded", "failed")}
        processor.update({i: attempts[i] for i in unsynced})
    assert processor == attempts
    assert paid == {r.intent_id for r in ledger if r.status.value == "succeeded"} - unsynced
    taken = Counter(r.metadata["mspbill_invoice_id"] for r in ledger if r.status.value in ("succeeded", "processing"))
    assert [inv for inv, n in taken.items() if n > 1] == []
    return ledger


# --- preview ------------------------------------------------------------------------------


def test_preview_json_is_all_of_stdout_and_the_csv_file_holds_the_same_rows(batch, office: Path) -> None:
    csv_path = office.parent / "preview.csv"
    result = batch("preview", "--period", "current", "--json", "--csv", str(csv_path))
    preview = _json(result)  # json.loads fails on anything else on stdout
    assert f"Saved the preview to {csv_path}" in result.stderr
    assert preview["period"] == str(Month.of(dt.date.today()))
    assert (preview["mode"], preview["nothing_to_do"]) == ("sandbox", False)
    invoices, charges, left_out = preview["invoices"], preview["charges"], preview["left_out"]
    assert len(invoices) == 71 and charges and left_out
    totals = preview["totals"]
    assert totals["invoices"] == {"count": 71, "cents": {"USD": sum(i["total_cents"] for i in invoices)}}
    assert totals["charges"] == {"count": len(charges), "cents": {"USD": sum(c["amount_cents"] for c in charges)}}
    assert totals["left_out"]["count"] == len(left_out)
    # The month's new invoices, and earlier open invoices of autopay clients.
    assert "new" in {c["kind"] for c in charges} <= {"new", "open"} and all(c["method"] for c in charges)
    reasons = Counter(lo["reason"] for lo in left_out)
    assert reasons["autopay_off"] > 0 and reasons["no_method"] > 0
    assert all(lo["reason_label"] and lo["detail"] for lo in left_out)
    assert preview["summary"].startswith(f"{Month.of(dt.date.today()).label}: 71 invoice(s) to issue")

    with csv_path.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == CSV_HEADERS
    sections = Counter(row[0] for row in rows[1:])
    assert sections == {"Invoice to issue": 71, "Charge": len(charges), "Left out": len(left_out)}
    charged = sorted((row[1], row[3]) for row in rows[1:] if row[0] == "Charge")
    assert charged == sorted((c["client_name"], f"{c['amount_cents'] // 100}.{c['amount_cents'] % 100:02d}")
                             for c in charges)
    # The Japanese client's name survives the trip through the file.
    assert any("株式会社" in row[1] for row in rows[1:])


def test_preview_text_shows_charges_left_out_with_reasons_totals_and_mode(batch) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        text, as_json = pool.map(lambda a: batch(*a), [
            ("preview", "--period", "current"), ("preview", "--period", "current", "--json")])
    assert text.returncode == 0, text.stderr
    preview = _json(as_json)
    out = text.stdout
    month = Month.of(dt.date.today())
    assert out.startswith(f"Month-end preview for {month.label} — Sandbox (simulated; no money moves)")
    assert "Invoices to issue: 71 (" in out
    assert f"Charges ({len(preview['charges'])}, " in out
    assert f"Left out ({len(preview['left_out'])}):" in out
    assert "Pays by invoice (autopay off)" in out and "No payment method on file" in out
    assert "Retries due: 0" in out
    assert f"Totals: 71 invoice(s) {_dollars(preview['totals']['invoices']['cents']['USD'])}; " \
           f"{len(preview['charges'])} charge(s) {_dollars(preview['totals']['charges']['cents']['USD'])}" in out
    assert "Mode: Sandbox (simulated; no money moves)" in out
    assert f"Run it with `mspbill batch run --period {month}`." in out
    for c in preview["charges"]:
        assert c["client_name"] in out


def _dollars(cents: int) -> str:
    return f"${cents // 100:,}.{cents % 100:02d}"


# --- refusals: nothing runs ---------------------------------------------------------------


def test_bad_far_ahead_and_long_past_periods_are_refused_before_anything_runs(batch, office_db: Database) -> None:
    this = Month.of(dt.date.today())
    with ThreadPoolExecutor(max_workers=3) as pool:
        garbled, ahead, past = pool.map(lambda a: batch(*a), [
            ("preview", "--period", "2026-13"),
            ("run", "--period", str(this.shift(2)), "--yes", "--json"),
            ("run", "--period", str(this.shift(-6)), "--yes")])
    _refused(garbled, "there is no month 13")
    _refused(ahead, f"{this.shift(2).label} is too far ahead", f"{this.shift(1).label} at the latest")
    assert ahead.stdout == ""
    _refused(past, f"{this.shift(-6).label} is long past", "mspbill invoices generate")
    assert _count(office_db, BatchRun) == 0 and _count(office_db, ChargeAttempt) == 0


def test_without_yes_and_without_a_terminal_the_run_is_refused_and_nothing_happens(batch, office: Path,
                                                                                    office_db: Database) -> None:
    result = batch("run", "--period", "current", "--json")
    _refused(result, "This would issue 71 invoice(s)", "Nothing was done", "add --yes")
    assert result.stdout == ""
    assert _count(office_db, BatchRun) == 0 and _count(office_db, ChargeAttempt) == 0
    assert _count(office_db, Invoice, Invoice.status == InvoiceStatus.DRAFT) == 71
    assert _ledger(office) == []


def _at_a_terminal(cli_args: list[str], answer: str) -> subprocess.CompletedProcess[str]:
    """The command with a pseudo-terminal as its standard input, `answer` typed into it."""
    leader, follower = pty.openpty()
    env = {**os.environ, **QUIET_SANDBOX, "PYTHONIOENCODING": "utf-8"}
    env.pop("MSPBILL_DATA_DIR", None)
    try:
        os.write(leader, answer.encode() + b"\n")
        return subprocess.run([sys.executable, "-m", "mspbill", *cli_args], stdin=follower, capture_output=True,
                              text=True, encoding="utf-8", env=env, timeout=60, check=False)
    finally:
        os.close(follower)
        os.close(leader)


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_at_a_terminal_the_run_asks_and_only_yes_runs_it(office: Path, office_db: Database) -> None:
    args = ["--data-dir", str(office), "batch", "run", "--period", "current"]
    declined = _at_a_terminal(args, "no")
    _refused(declined, "Type yes to issue 71 invoice(s)", "in Sandbox (simulated; no money moves)",
             "Nothing was done.")
    assert _count(office_db, BatchRun) == 0 and _ledger(office) == []

    accepted = _at_a_terminal(args, "yes")
    assert accepted.returncode == 0, accepted.stderr
    assert "The " in accepted.stdout and " run finished: 71 invoice(s) issued" in accepted.stdout
    assert _count(office_db, BatchRun, BatchRun.status == BatchRunStatus.FINISHED) == 1
    assert _ledger(office)


def test_another_run_holding_the_lock_exits_3_with_its_message(batch, office: Path, office_db: Database) -> None:
    # A run "under way" in this very test process: alive, on this computer, a fresh heartbeat.
    now = utcnow()
    with office_db.write_session() as s, s.begin():
        s.add(BatchRun(lock_name="month-end", period=str(Month.of(dt.date.today())), status=BatchRunStatus.RUNNING,
                       actor="alice", host=socket.gethostname(), pid=os.getpid(), started_at=now, heartbeat_at=now,
                       summary={}))
    result = batch("run", "--period", "current", "--yes", "--json")
    _refused(result, "is already under way on this computer", "by alice", code=3)
    assert result.stdout == ""
    assert _count(office_db, BatchRun) == 1 and _count(office_db, ChargeAttempt) == 0
    assert _ledger(office) == []


def test_stripe_chosen_without_a_key_stops_before_anything_runs(batch, office_db: Database) -> None:
    with office_db.write_session() as s, s.begin():
        row = s.get(PaymentSettings, 1)
        assert row is not None
        row.processor = ProcessorKind.STRIPE
    result = batch("run", "--period", "current", "--yes")
    _refused(result, "Nothing was run.")
    assert _count(office_db, BatchRun) == 0 and _count(office_db, ChargeAttempt) == 0
    assert _count(office_db, Invoice, Invoice.status == InvoiceStatus.DRAFT) == 71


def test_with_no_processor_the_run_issues_the_invoices_charges_nothing_and_says_so(
        batch, office: Path, office_db: Database) -> None:
    with office_db.write_session() as s, s.begin():
        row = s.get(PaymentSettings, 1)
        assert row is not None
        row.processor = ProcessorKind.NONE
    result = batch("run", "--period", "current", "--yes", "--json")
    report = _json(result)
    assert "No payment processor is set up: the run issues the invoices and charges nothing" in result.stderr
    assert (report["status"], report["mode"], report["issued"]) == ("finished", None, 71)
    assert all(report["counts"][k] == 0 for k in RUN_STATUSES)
    assert _count(office_db, ChargeAttempt) == 0 and _ledger(office) == []


# --- the run and after ---------------------------------------------------------------------


def test_run_charges_what_the_preview_promised_and_the_ledger_matches(batch, office: Path,
                                                                       office_db: Database) -> None:
    # ACH debits settle at once in this sandbox, so `batch sync` below has something to settle.
    env = {"MSPBILL_SANDBOX_ACH_SETTLE_SECONDS": "0"}
    preview = _json(batch("preview", "--period", "current", "--json", env=env))
    result = batch("run", "--period", "current", "--yes", "--json", env=env)
    report = _json(result)
    assert preview["summary"] in result.stderr  # the summary, then progress, all on stderr
    assert "Charging " in result.stderr and "Generating and issuing the invoices" in result.stderr
    assert (report["ran"], report["status"], report["issued"]) == (True, "finished", len(preview["invoices"]))
    counts = report["counts"]
    assert sum(counts[k] for k in RUN_STATUSES) == len(preview["charges"])
    assert counts["unknown"] == counts["not_charged"] == report["not_started"] == 0
    assert counts["failed"] >= 1 and counts["processing"] >= 1   # the demo has declining cards and bank debits
    assert sorted(ln["client_id"] for ln in report["lines"]) == sorted(c["client_id"] for c in preview["charges"])
    assert sum(ln["amount_cents"] for ln in report["lines"]) == preview["totals"]["charges"]["cents"]["USD"]
    assert report["collected_cents"] == {
        "USD": sum(ln["amount_cents"] for ln in report["lines"] if ln["status"] == "succeeded")}
    soft = [ln for ln in report["lines"] if ln["status"] == "failed" and not ln["hard"]]
    assert all(ln["next_retry_on"] for ln in soft)
    assert Path(report["backup_path"]).is_file()
    # The bank debits have settled at the processor already; mspbill learns it at `batch sync`.
    ledger = _assert_ledger_matches_local(office, office_db, unsynced_debits=True)
    assert len(ledger) == len(preview["charges"])

    # The same period again: nothing to do, nothing charged, no second run recorded.
    again = batch("run", "--period", "current", "--yes", "--json", env=env)
    second = _json(again)
    assert (second["ran"], second["status"]) == (False, "nothing_to_do")
    assert "Nothing to do for" in second["message"]
    assert len(_ledger(office)) == len(ledger) and _count(office_db, BatchRun) == 1

    # The runs list and one run's account.
    with ThreadPoolExecutor(max_workers=3) as pool:
        runs, shown, missing = pool.map(lambda a: batch(*a), [
            ("runs", "--json"), ("show", str(report["run_id"]), "--json"), ("show", "9999")])
    listed = _json(runs)
    assert [(r["id"], r["period"], r["status"], r["issued"], r["succeeded"]) for r in listed] == [
        (report["run_id"], preview["period"], "finished", 71, counts["succeeded"])]
    # A run read back has no left-out list (the run worked it out; it is not stored).
    assert {k: v for k, v in _json(shown)["counts"].items() if k != "left_out"} == {
        k: v for k, v in counts.items() if k != "left_out"}
    _refused(missing, "There is no month-end run 9999.")

    # `batch sync` settles the bank debits; the local records then match the processor's to the letter.
    synced = batch("sync", env=env)
    assert synced.returncode == 0, synced.stderr
    assert sum(1 for line in synced.stdout.splitlines() if line.startswith("Paid — ")) == counts["processing"]
    assert _count(office_db, ChargeAttempt, ChargeAttempt.status == ChargeAttemptStatus.PROCESSING) == 0
    _assert_ledger_matches_local(office, office_db)


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT")
def test_ctrl_c_stops_new_charges_records_those_in_flight_and_the_next_run_charges_the_rest(
        office: Path, office_db: Database) -> None:
    # 2 requests a second: the run is still charging when Ctrl+C comes.
    env = {**os.environ, **QUIET_SANDBOX, "MSPBILL_SANDBOX_RATE_LIMIT": "2", "PYTHONIOENCODING": "utf-8"}
    env.pop("MSPBILL_DATA_DIR", None)
    args = [sys.executable, "-m", "mspbill", "--data-dir", str(office), "batch", "run", "--period", "current",
            "--yes", "--json"]
    with subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, encoding="utf-8", env=env) as child:
        assert child.stderr is not None
        seen = []
        for line in child.stderr:
            seen.append(line)
            if line.startswith("Charging "):
                break
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    stderr = "".join(seen) + err
    assert child.returncode == 1, stderr
    assert "Stopping after the charges in flight" in stderr
    report = json.loads(out)
    assert report["status"] == "cancelled"
    assert report["not_started"] >= 1 and "were not started" in report["message"]
    charges = sum(report["counts"][k] for k in RUN_STATUSES)
    first_ledger = _assert_ledger_matches_local(office, office_db)
    assert len(first_ledger) == charges

    rest = subprocess.run(args[:-1], capture_output=True, text=True, encoding="utf-8", check=False,
                          env={**env, "MSPBILL_SANDBOX_RATE_LIMIT": ""}, timeout=60)
    assert rest.returncode == 0, rest.stderr
    assert "finished" in rest.stdout
    ledger = _assert_ledger_matches_local(office, office_db)
    assert len(ledger) == charges + report["not_started"]


def _preview_now(db: Database) -> Any:
    from mspbill.batch.plan import preview_batch

    with db.session() as s:
        return preview_batch(s, Month.of(dt.date.today()))


def test_approving_an_over_cap_invoice_puts_it_among_the_charges(batch, office_db: Database) -> None:
    before = _preview_now(office_db)
    target = max(before.charges, key=lambda c: c.target.amount_cents).target
    with office_db.write_session() as s, s.begin():
        client = s.get(Client, target.client_id)
        assert client is not None
        client.autopay_cap_cents = target.amount_cents - 100
    waiting = [lo for lo in _preview_now(office_db).left_out if lo.target.client_id == target.client_id]
    assert [(lo.reason.value, lo.approvable) for lo in waiting] == [("over_cap", True)]

    approved = batch("approve", "--period", "current", "--client", str(target.client_id))
    assert approved.returncode == 0, approved.stderr
    assert approved.stdout.startswith(f"Approved {target.number} for {target.client_name}")
    after = _preview_now(office_db)
    assert [c.over_cap_approved for c in after.charges if c.target == target] == [True]
    assert len(after.charges) == len(before.charges) and after.left_out == before.left_out

    nothing = batch("approve", "--period", "current", "--client", str(target.client_id))
    _refused(nothing, "is above its autopay cap and waiting for approval")


def test_the_run_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    from mspbill.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["batch", "run", "--help"])
    text = capsys.readouterr().out
    for code in ("0  the run finished", "1  the run finished with charges", "2  nothing was done",
                 "3  another month-end run is under way"):
        assert code in text


def test_current_and_next_periods() -> None:
    from mspbill.cli_batch import resolve_period

    day = dt.date(2026, 12, 31)
    assert (resolve_period("current", day), resolve_period("next", day), resolve_period("2027-01", day)) == (
        Month(2026, 12), Month(2027, 1), Month(2027, 1))
