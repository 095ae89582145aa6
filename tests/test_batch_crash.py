"""The month-end run's safety, with real processes on a real SQLite file and the sandbox processor.

* `mspbill batch run` killed with SIGKILL at random moments -- during start-up, the
  backup and the invoicing, while charging, while finding out about unknown outcomes,
  while queuing the mail -- more than 20 times and run again each time, with a slow
  processor that times out (before and after doing the work), fails and says 429;
  then run to the end and `mspbill batch sync`.  Afterwards every invoice was charged
  at most once and the office's records match the processor's ledger exactly.
* Two `mspbill batch run` processes started at once, and two runs in two threads of
  one process (a double click): one charges, the other is told a run is under way.
* The sleeping laptop: a run's process is stopped (SIGSTOP) in the middle of charging,
  another takes over once its heartbeat is old, and the sleeper, woken, charges nothing.

The takeover threshold (90 s without a heartbeat) is not configurable, so the sleep is
made long by ageing the stopped run's heartbeat in the database rather than by waiting.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select, update

from mspbill.batch.plan import LeftOutReason, approve_over_cap, judge_open_invoices
from mspbill.batch.run import BatchBusyError, RunOptions, run_batch
from mspbill.db.models import (
    BatchRun,
    BatchRunStatus,
    ChargeAttempt,
    ChargeAttemptStatus,
    Invoice,
    InvoiceStatus,
    OutboxMessage,
    SavedPaymentMethod,
    SetupLink,
    utcnow,
)
from mspbill.payments.gateway import ProcessorMode
from mspbill.payments.sandbox import SandboxConfig, SandboxGateway
from tests.batch_office import (
    REPO_ROOT,
    Office,
    batch_command,
    build_office,
    child_env,
    copy_office,
    ledger_check,
    ledger_intents,
    runs_of,
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and SIGSTOP are POSIX signals")

CLIENTS = 120
OVER_CAP = 5            # approved before the last run, so that it has work of its own
KILLS = 20
PLAN_SEED = 20261106
# A slow processor that loses answers: after the work (the charge was made, the run never hears
# it), before it (nothing was made), 500s, and now and then a 429.
FAULTS = "timeout_after=0.05,timeout_before=0.02,server_error=0.02,rate_limit=0.003"
# Its request limit, which the run's token bucket stays under (90/s): the runs are quick enough
# for 20+ kills within a couple of minutes on two cores.
RATE_LIMIT = "100"


def faulty_env(seed: int) -> dict[str, str]:
    return child_env({"MSPBILL_SANDBOX_LATENCY_MS": "30", "MSPBILL_SANDBOX_RATE_LIMIT": RATE_LIMIT,
                      "MSPBILL_SANDBOX_FAILURES": FAULTS, "MSPBILL_SANDBOX_SEED": str(seed)})


def healthy_env(latency_ms: int = 0, rate_limit: str | None = RATE_LIMIT) -> dict[str, str]:
    extra = {"MSPBILL_SANDBOX_LATENCY_MS": str(latency_ms)}
    if rate_limit:
        extra["MSPBILL_SANDBOX_RATE_LIMIT"] = rate_limit
    return child_env(extra)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Office:
    return build_office(tmp_path_factory.mktemp("template") / "office", clients=CLIENTS, over_cap=OVER_CAP)


@pytest.fixture
def office(template: Office, tmp_path: Path) -> Office:
    return copy_office(template, tmp_path / "office")


class Watch:
    """Looks at the office's database while a child runs (plain sqlite3, one statement at a time,
    never a write)."""

    def __init__(self, office: Office):
        self.office = office
        self.conn = sqlite3.connect(office.database_file, timeout=10, isolation_level=None)
        self.chargeable = sorted(office.chargeable)

    def close(self) -> None:
        self.conn.close()

    def one(self, sql: str, *params: object) -> tuple:  # type: ignore[type-arg]
        return self.conn.execute(sql, params).fetchone()

    def max_run_id(self) -> int:
        return self.one("SELECT COALESCE(MAX(id), 0) FROM batch_runs")[0]

    def run_of(self, pid: int, after_id: int) -> tuple[int, str] | None:
        row = self.one("SELECT id, status FROM batch_runs WHERE pid = ? AND id > ? ORDER BY id DESC LIMIT 1",
                       pid, after_id)
        return (row[0], row[1]) if row else None

    def attempts_of(self, run_id: int) -> int:
        return self.one("SELECT COUNT(*) FROM charge_attempts WHERE batch_run_id = ?", run_id)[0]

    def issued(self) -> int:
        return self.one("SELECT COUNT(*) FROM invoices WHERE number IS NOT NULL")[0]

    def remaining(self) -> int:
        """Chargeable invoices that no attempt has yet tried (or only tried without charging)."""
        marks = ",".join("?" * len(self.chargeable))
        tried = self.one(f"SELECT COUNT(DISTINCT invoice_id) FROM charge_attempts WHERE status != 'not_charged' "
                         f"AND client_id IN ({marks})", *self.chargeable)[0]
        return len(self.chargeable) - tried

    def in_flight(self) -> list[tuple[int, str, str]]:
        return list(self.conn.execute("SELECT id, idempotency_key, status FROM charge_attempts "
                                      "WHERE status IN ('pending', 'unknown')"))


@dataclass
class Spawn:
    number: int
    trigger: str
    killed: bool
    seconds: float
    returncode: int
    run_id: int | None = None
    status_after: str | None = None     # the run's row right after the kill (or the exit)
    log: Path | None = None


def _kill_when(office: Office, watch: Watch, number: int, trigger: str, rng: random.Random, env: dict[str, str],
               logs: Path) -> Spawn:
    """Start `mspbill batch run` and SIGKILL it when `trigger` comes:
    startup  -- a random time after the start (importing, opening the database, previewing, locking);
    early    -- soon after its run row appears (backup, earlier unknowns, generating the invoices);
    charging -- once it has written k charge attempts (k random, at most what is left to charge);
    late     -- a while after nothing is left to charge (finding out, new setup links, mail, the end)."""
    before = watch.max_run_id()
    remaining = watch.remaining()
    if trigger == "charging" and remaining == 0:
        trigger = "late"
    delay = {"startup": rng.uniform(0.05, 2.5), "early": rng.uniform(0.0, 0.35),
             "late": rng.uniform(0.0, 2.0)}.get(trigger, 0.0)
    k = rng.randint(1, max(1, min(remaining, remaining // 4 + 3)))
    log = logs / f"run-{number:02d}-{trigger}.log"
    started = time.monotonic()
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(batch_command(office), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, cwd=REPO_ROOT)
    killed = False
    fire_at: float | None = None
    try:
        while proc.poll() is None:
            now = time.monotonic() - started
            assert now < 120, f"run {number} neither finished nor reached its kill point in 120 s: {log.read_text()}"
            if fire_at is None:
                if trigger == "startup":
                    fire_at = delay
                else:
                    run = watch.run_of(proc.pid, before)
                    if run is not None:
                        if trigger == "early":
                            fire_at = now + delay
                        elif trigger == "charging" and watch.attempts_of(run[0]) >= k:
                            fire_at = now
                        elif trigger == "late" and watch.remaining() == 0:
                            fire_at = now + delay
            if fire_at is not None and now >= fire_at:
                proc.send_signal(signal.SIGKILL)
                killed = True
                break
            time.sleep(0.01)
        # Reaped at once: a dead child that is not waited for still looks alive to the next run.
        returncode = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    killed = killed and returncode == -signal.SIGKILL
    run = watch.run_of(proc.pid, before)
    return Spawn(number, trigger, killed, time.monotonic() - started, returncode, run[0] if run else None,
                 run[1] if run else None, log)


def _kill_plan(rng: random.Random) -> list[str]:
    # The first kill lands while the first run backs up and generates the month's invoices.
    middle = ["startup"] * 3 + ["early"] * 4 + ["charging"] * 12
    rng.shuffle(middle)
    return ["early", *middle, "late", "late", "late", "late"]


def _json_out(text: str) -> dict:  # type: ignore[type-arg]
    return json.loads(text[text.index("{"):]) if "{" in text else {}


def _latest_attempts(office: Office) -> dict[int, ChargeAttempt]:
    db = office.open_db()
    try:
        with db.session() as s:
            latest: dict[int, ChargeAttempt] = {}
            for a in s.scalars(select(ChargeAttempt).order_by(ChargeAttempt.id)):
                latest[a.client_id] = a
            s.expunge_all()
            return latest
    finally:
        db.dispose()


def _judge(office: Office):  # type: ignore[no-untyped-def]
    db = office.open_db()
    try:
        with db.session() as s:
            return judge_open_invoices(s, ProcessorMode.SANDBOX, dt.date.today())
    finally:
        db.dispose()


def test_killed_runs_never_charge_twice_and_the_records_match_the_ledger(office: Office, tmp_path: Path) -> None:
    clock = time.monotonic()
    rng = random.Random(PLAN_SEED)
    logs = tmp_path / "logs"
    logs.mkdir()
    expected_invoices = len(office.clients)
    watch = Watch(office)
    spawns: list[Spawn] = []
    unresolved_seen: dict[int, bool] = {}   # attempt id -> it had a PaymentIntent at the processor when seen
    plan = _kill_plan(rng)
    try:
        while sum(s.killed for s in spawns) < KILLS or plan:
            assert len(spawns) < 40, f"too many runs finished before their kill: {spawns}"
            # Plan used up and kills still short (some runs finished before their moment): kill the next
            # ones while they start, back up or generate -- moments that exist even with nothing to charge.
            trigger = plan.pop(0) if plan else rng.choice(["startup", "early"])
            spawn = _kill_when(office, watch, len(spawns) + 1, trigger, rng, faulty_env(PLAN_SEED + len(spawns)),
                               logs)
            spawns.append(spawn)
            assert spawn.killed or spawn.returncode in (0, 1), spawn.log.read_text() if spawn.log else spawn
            # Generating and issuing is one transaction: all the month's invoices or none.
            assert watch.issued() in (0, expected_invoices), f"after run {spawn.number}: {watch.issued()} issued"
            # At every moment: no invoice charged twice, no payment recorded that the processor did not make.
            # (Charges the processor made that the killed run never heard of are recorded later.)
            now = ledger_check(office)
            assert (now.double_charges, now.unbacked) == ([], []), f"after run {spawn.number} ({spawn.trigger})"
            ledger = ledger_intents(office)
            keys = {i.metadata.get("mspbill_attempt_key") for i in ledger}
            for attempt_id, key, _status in watch.in_flight():
                unresolved_seen[attempt_id] = unresolved_seen.get(attempt_id, False) or key in keys
        # A run killed after its last charge, when nothing is left to do, keeps its row until a run takes over.
        still_running = [row[0] for row in watch.conn.execute("SELECT id FROM batch_runs WHERE status = 'running'")]
    finally:
        watch.close()
    kills = [s for s in spawns if s.killed]
    killed_while_running = {s.run_id for s in kills if s.status_after == "running"}
    assert len(still_running) <= 1 and set(still_running) <= killed_while_running

    # The office approves the over-cap invoices of all but one client; the last run charges them.
    db = office.open_db()
    try:
        with db.write_session() as s, s.begin():
            _, left_out = judge_open_invoices(s, ProcessorMode.SANDBOX, dt.date.today())
            over_cap = sorted((lo for lo in left_out if lo.reason is LeftOutReason.OVER_CAP),
                              key=lambda lo: lo.target.client_id)
            assert len(over_cap) == OVER_CAP
            for lo in over_cap[:-1]:
                approve_over_cap(s, lo.target)
        approved = {lo.target.client_id for lo in over_cap[:-1]}
    finally:
        db.dispose()

    # The last run, still against the faulty processor: not killed, it finishes.
    last = subprocess.run(batch_command(office), capture_output=True, text=True, env=faulty_env(PLAN_SEED - 1),
                          cwd=REPO_ROOT, timeout=180, check=False)
    assert last.returncode in (0, 1), last.stderr
    last_report = json.loads(last.stdout)
    assert last_report["status"] == "finished", last_report
    assert last_report["resumed_run_id"] == (still_running[0] if still_running else None)
    unknown_after_last = last_report["counts"]["unknown"]
    # The processor is well again: `mspbill batch sync` finds out about the rest.
    sync_started = utcnow()
    sync = subprocess.run(batch_command(office, "sync", "--json"), capture_output=True, text=True,
                          env=healthy_env(), cwd=REPO_ROOT, timeout=120, check=False)
    assert sync.returncode == 0, sync.stderr
    # Charges that were refused without charging (429s) are charged by one more run.
    extra_run = None
    if _judge(office)[0]:
        extra_run = subprocess.run(batch_command(office), capture_output=True, text=True, env=healthy_env(),
                                   cwd=REPO_ROOT, timeout=120, check=False)
        assert extra_run.returncode == 0, extra_run.stderr
    elapsed = time.monotonic() - clock

    # --- every invoice charged at most once; the records match the ledger exactly -------------
    check = ledger_check(office)
    assert check.double_charges == []
    assert check.problems == []

    db = office.open_db()
    try:
        with db.session() as s:
            attempts = list(s.scalars(select(ChargeAttempt)))
            assert [a.id for a in attempts if a.status in (ChargeAttemptStatus.PENDING, ChargeAttemptStatus.UNKNOWN)
                    ] == []
            invoices = list(s.scalars(select(Invoice).order_by(Invoice.number_seq)))
            # Each agreement invoiced once, numbers gapless from the first.
            assert len(invoices) == expected_invoices
            assert len({i.agreement_id for i in invoices}) == expected_invoices
            assert [i.number_seq for i in invoices] == list(range(1, expected_invoices + 1))
            assert [i.number for i in invoices] == [f"INV-{n:06d}" for n in range(1, expected_invoices + 1)]
            by_client = {i.client_id: i for i in invoices}
            flagged = {m.client_id for m in s.scalars(select(SavedPaymentMethod).where(
                SavedPaymentMethod.hard_declined_at.is_not(None)))}
            links = Counter(link.client_id for link in s.scalars(select(SetupLink)))
            receipts = Counter(m.invoice_id for m in s.scalars(select(OutboxMessage).where(
                OutboxMessage.kind == "receipt")))
            invoice_mails = Counter(m.invoice_id for m in s.scalars(select(OutboxMessage).where(
                OutboxMessage.kind == "invoice")))
            runs = list(s.scalars(select(BatchRun).order_by(BatchRun.id)))
            s.expunge_all()
    finally:
        db.dispose()

    # --- every autopay invoice ends charged, declined, processing or left out for its reason ---
    latest = _latest_attempts(office)
    charges, left_out = _judge(office)
    assert charges == []
    reasons = {lo.target.client_id: lo for lo in left_out}
    hard_without_link: list[str] = []
    for c in office.clients:
        inv = by_client[c.client_id]
        expect = "paid" if c.client_id in approved else c.expect
        a = latest.get(c.client_id)
        where = f"{c.name} ({expect}): {inv.number} {inv.status.value}, attempt {a and a.status.value}"
        if expect == "paid":
            assert inv.status is InvoiceStatus.PAID and inv.paid_cents == inv.total_cents, where
            assert a is not None and a.status is ChargeAttemptStatus.SUCCEEDED, where
            assert receipts[inv.id] == 1, where
        elif expect == "soft":
            assert a is not None and a.status is ChargeAttemptStatus.DECLINED and not a.decline_hard, where
            failed_on = (a.resolved_at or a.created_at).date()
            assert reasons[c.client_id].reason is LeftOutReason.RETRY_LATER, where
            assert reasons[c.client_id].next_retry_on == failed_on + dt.timedelta(days=3), where
        elif expect == "hard":
            assert a is not None and a.status is ChargeAttemptStatus.DECLINED and a.decline_hard, where
            assert reasons[c.client_id].reason is LeftOutReason.HARD_DECLINE, where
            assert c.client_id in flagged, where
            # ...and the client is sent a new setup link, once, by the run that learnt of the decline (or
            # the one that resumed it).  Not by `batch sync`; and a link the processor failed to make
            # is reported, for the next run to make.
            link_failed = any(p.startswith(f"New setup link for {c.name}") for p in last_report["problems"])
            if a.resolved_at is not None and a.resolved_at < sync_started and not link_failed:
                assert links[c.client_id] == 1, where
            else:
                hard_without_link.append(c.name)
        elif expect == "processing":
            assert a is not None and a.status is ChargeAttemptStatus.PROCESSING, where
            assert reasons[c.client_id].reason is LeftOutReason.PROCESSING, where
        elif expect in ("no_method", "over_cap"):
            assert a is None and inv.status is InvoiceStatus.OPEN, where
            assert reasons[c.client_id].reason.value == expect, where
        else:  # autopay off: e-mailed, never charged
            assert expect == "autopay_off" and a is None and inv.status is InvoiceStatus.OPEN, where
            assert c.client_id not in reasons, where
        assert receipts[inv.id] == (1 if expect == "paid" else 0), where
        assert invoice_mails[inv.id] <= 1, where

    # --- the runs: every killed one interrupted, taken over by the next; the last finished -------
    statuses = {r.id: r.status for r in runs}
    assert {statuses[i] for i in killed_while_running} <= {BatchRunStatus.INTERRUPTED}
    for r in runs:
        assert r.status in (BatchRunStatus.INTERRUPTED, BatchRunStatus.FINISHED), (r.id, r.status, r.message)
        if r.status is BatchRunStatus.INTERRUPTED:
            assert r.message.startswith("Interrupted"), r.message
    assert runs[-1].status is BatchRunStatus.FINISHED
    assert sum(r.status is BatchRunStatus.INTERRUPTED for r in runs) == len(killed_while_running)
    assert len(kills) >= KILLS

    charged_unrecorded = sum(1 for seen in unresolved_seen.values() if seen)
    print(f"\ncrash test: {len(spawns)} runs, {len(kills)} killed "
          f"({Counter(s.trigger for s in kills)}), {len(killed_while_running)} while holding the lock; "
          f"{len(unresolved_seen)} attempts left pending/unknown by a kill or a timeout and resolved later, "
          f"{charged_unrecorded} of them charged at the processor but not yet recorded; "
          f"last run: {last_report['counts']}, {unknown_after_last} unknown left for `batch sync`; "
          f"extra run needed: {extra_run is not None}; hard declines without a link: {hard_without_link}; ledger: {check.intents} PaymentIntents "
          f"({check.succeeded} succeeded, {check.processing} processing, {check.declined} declined); "
          f"{elapsed:.0f} s")
    assert unresolved_seen, "no kill or timeout ever left an outcome unknown: the test did not test that"


# --- two runs at once ----------------------------------------------------------------------------


def test_two_runs_started_at_once_charge_each_invoice_once(office: Office) -> None:
    env = healthy_env(latency_ms=30)
    procs = [subprocess.Popen(batch_command(office), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env, cwd=REPO_ROOT, stdin=subprocess.DEVNULL) for _ in range(2)]
    outputs = [p.communicate(timeout=180) for p in procs]
    codes = [p.returncode for p in procs]
    runs = runs_of(office)
    charging_runs = {a.batch_run_id for a in _latest_attempts(office).values()}
    if sorted(codes) == [0, 3]:
        busy_err = outputs[codes.index(3)][1]
        assert "already under way" in busy_err and "this computer" in busy_err, busy_err
        assert len(runs) == 1 and runs[0].status is BatchRunStatus.FINISHED
        print(f"\ntwo runs at once: one charged, the other exited 3: {busy_err.strip()}")
    else:
        # Only if the second started after the first had finished: then it had nothing to charge.
        assert codes == [0, 0], outputs
        assert len(charging_runs) == 1, outputs
    check = ledger_check(office)
    assert check.double_charges == [] and check.problems == []
    assert check.succeeded == len(office.client_ids("paid"))
    assert check.processing == len(office.client_ids("processing"))


def test_two_runs_in_one_process_one_is_told_a_run_is_under_way(office: Office) -> None:
    """A double click: two runs from two threads of the same program."""
    db = office.open_db()
    gateway = SandboxGateway(office.ledger_path, SandboxConfig(latency_seconds=0.03))
    start = threading.Barrier(2)
    results: list[object] = [None, None]

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = run_batch(db, gateway, office.month, backup_dir=office.data_dir / "backups",
                                   options=RunOptions(rate_per_second=90, resolve_pause=0.1))
        except BatchBusyError as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=180)
    finally:
        gateway.close()
        db.dispose()
    busy = [r for r in results if isinstance(r, BatchBusyError)]
    reports = [r for r in results if not isinstance(r, BatchBusyError)]
    assert len(busy) == 1 and len(reports) == 1, results
    assert "already under way on this computer" in str(busy[0])
    assert reports[0].status is BatchRunStatus.FINISHED  # type: ignore[attr-defined]
    check = ledger_check(office)
    assert check.double_charges == [] and check.problems == []
    assert check.succeeded == len(office.client_ids("paid"))


# --- the sleeping laptop --------------------------------------------------------------------------


def _write_lock_free(path: Path) -> bool:
    conn = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


def _stop_outside_a_transaction(proc: subprocess.Popen[str], office: Office) -> None:
    """SIGSTOP, at a moment it holds neither database's write lock.  (A sleep inside a write
    transaction would hold SQLite's lock: on one computer nobody else could write anyway.)"""
    for _ in range(200):
        proc.send_signal(signal.SIGSTOP)
        time.sleep(0.02)
        if _write_lock_free(office.database_file) and _write_lock_free(office.ledger_path):
            return
        proc.send_signal(signal.SIGCONT)
        time.sleep(0.003)
    raise AssertionError("the run always held a write lock")


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.send_signal(signal.SIGCONT)
            p.kill()
            p.wait()


def test_a_run_that_slept_is_taken_over_and_charges_nothing_after_it_wakes(
        office: Office, processes: list[subprocess.Popen[str]]) -> None:
    # At the test-mode limit (22.5 charges a second) the run lasts long enough to be stopped mid-way.
    env = healthy_env(latency_ms=30, rate_limit=None)
    watch = Watch(office)
    try:
        sleeper = subprocess.Popen(batch_command(office), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env=env, cwd=REPO_ROOT, stdin=subprocess.DEVNULL)
        processes.append(sleeper)
        deadline = time.monotonic() + 60
        sleeper_run = None
        while sleeper_run is None or watch.attempts_of(sleeper_run) < 25:
            assert sleeper.poll() is None and time.monotonic() < deadline, sleeper.communicate()
            found = watch.run_of(sleeper.pid, 0)
            sleeper_run = found[0] if found else None
            time.sleep(0.01)
        _stop_outside_a_transaction(sleeper, office)
        asleep_with = {a[0] for a in watch.in_flight()}
        attempts_before = watch.attempts_of(sleeper_run)
    finally:
        watch.close()
    # Five minutes pass (the laptop's lid is closed): its heartbeat is that old.  The sleeper is
    # another computer as far as the next run is concerned (on the same computer a live process
    # id keeps its lock, whatever the heartbeat says).
    db = office.open_db()
    try:
        with db.write_session() as s, s.begin():
            s.execute(update(BatchRun).where(BatchRun.id == sleeper_run)
                      .values(heartbeat_at=utcnow() - dt.timedelta(minutes=5), host="sales-laptop"))
    finally:
        db.dispose()

    # Another run starts (the scheduled task, another workstation): it takes over...
    other = subprocess.Popen(batch_command(office), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env, cwd=REPO_ROOT, stdin=subprocess.DEVNULL)
    processes.append(other)
    watch = Watch(office)
    try:
        deadline = time.monotonic() + 60
        other_run = None
        while other.poll() is None and (other_run is None or watch.attempts_of(other_run) < 10):
            assert time.monotonic() < deadline
            found = watch.run_of(other.pid, sleeper_run)
            other_run = found[0] if found else None
            time.sleep(0.01)
    finally:
        watch.close()
    # ...and while it charges, the laptop wakes up.
    woke_at = utcnow()
    sleeper.send_signal(signal.SIGCONT)
    other_out, other_err = other.communicate(timeout=180)
    sleeper_out, sleeper_err = sleeper.communicate(timeout=180)
    assert other.returncode == 0, other_err
    other_report = json.loads(other_out)
    assert other_report["status"] == "finished" and other_report["resumed_run_id"] == sleeper_run

    runs = {r.id: r for r in runs_of(office)}
    assert runs[sleeper_run].status is BatchRunStatus.INTERRUPTED, runs[sleeper_run].message
    assert runs[sleeper_run].message.startswith("Interrupted")
    db = office.open_db()
    try:
        with db.session() as s:
            mine = list(s.scalars(select(ChargeAttempt).where(ChargeAttempt.batch_run_id == sleeper_run)))
    finally:
        db.dispose()
    # Woken, the sleeper wrote no new attempt (its lock is gone), and what it had in flight was resolved.
    assert len(mine) == attempts_before
    assert all(a.created_at < woke_at for a in mine)
    assert all(a.status not in (ChargeAttemptStatus.PENDING, ChargeAttemptStatus.UNKNOWN) for a in mine)
    assert {a.id for a in mine} >= asleep_with
    check = ledger_check(office)
    assert check.double_charges == [] and check.problems == []
    assert check.succeeded == len(office.client_ids("paid"))
    # The sleeper says what happened to it.
    assert sleeper.returncode == 1, sleeper_err
    assert json.loads(sleeper_out)["status"] == "interrupted", sleeper_out
    print(f"\nsleeping laptop: run {sleeper_run} stopped with {attempts_before} attempts "
          f"({len(asleep_with)} in flight); run {other_run} took over and charged the rest")
