"""The month-end run: take the office's run lock, back up, find out about earlier
unknown charges, generate and issue the month's invoices, charge every autopay
invoice that is due, then queue the mail.

Never charge twice:
* one run at a time in the office: `batch_runs` has a partial unique index on
  its running row, so a double click, a second process or a second workstation
  is told that a run is under way.  A run keeps a heartbeat; one whose process
  died (same computer: its pid is gone; elsewhere: no heartbeat for
  `HEARTBEAT_STALE`) is taken over by the next run, which resumes its work;
* each charge is a `ChargeAttempt` committed with its idempotency key before the
  processor is called (payments.charges), in a transaction that first checks
  that this run still holds the lock; one attempt per invoice can be in flight;
* attempts left in flight by an earlier run are resolved first: found at the
  processor by their key in metadata, or sent again with the same key within
  Stripe's 24 hours, before anything new is charged;
* an attempt written but not sent for longer than `STALE_PENDING` (the computer
  slept) is not sent by the sleeper: it is resolved like any unknown one.

Every processor call goes through one token bucket (batch.throttle) below the
mode's request limit, from a bounded pool of threads.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from mspbill import audit
from mspbill.batch.emails import MailReport, queue_batch_mail
from mspbill.batch.plan import (
    BatchPreview,
    LeftOutCharge,
    PlannedCharge,
    check_period,
    judge_open_invoices,
    money_text,
    preview_batch,
)
from mspbill.batch.retries import Failure, next_retry_after_failure
from mspbill.batch.settings import batch_settings
from mspbill.batch.throttle import (
    ThrottledGateway,
    TokenBucket,
    effective_rate,
    rate_limit,
)
from mspbill.db.engine import Database
from mspbill.db.models import (
    BatchRun,
    BatchRunStatus,
    ChargeAttempt,
    ChargeAttemptStatus,
    Client,
    Invoice,
    SetupLink,
    SetupLinkStatus,
    utcnow,
)
from mspbill.generation import ConcurrentGenerationError, generate_period
from mspbill.invoicing import drafts_for_month, issue_invoices
from mspbill.payments.charges import (
    ChargeOutcome,
    record_not_charged,
    record_result,
    start_attempt,
    sync_charges,
)
from mspbill.payments.gateway import (
    AuthenticationFailed,
    ChargeRequest,
    ChargeResult,
    ChargeStatus,
    Gateway,
    IdempotencyConflict,
    PermissionDenied,
    ProcessorError,
    ProcessorMode,
    ProcessorUnavailable,
    RateLimited,
    decline_reason_text,
)
from mspbill.payments.processor import to_db_mode
from mspbill.periods import Month
from mspbill.validation import Issue, ValidationError

log = logging.getLogger(__name__)

HEARTBEAT_EVERY = 5.0                              # seconds
# A run on another workstation that has not checked in for this long (by this computer's clock: the
# two clocks may differ by a minute or two) is taken over.  On this computer the process id decides.
HEARTBEAT_STALE = dt.timedelta(seconds=180)
# ...unless the id was reused by another program: a live run checks in every few seconds.
PID_REUSED_AFTER = dt.timedelta(minutes=30)
# A charge is sent within this long of writing its attempt, or not by this run: far inside
# HEARTBEAT_STALE, so no run that took this one over can be resending it when it goes out.
SEND_DEADLINE = dt.timedelta(seconds=30)
RATE_LIMIT_TRIES = 6                               # 429s for one charge before it is left for the next run
UNAVAILABLE_TRIES = 3                              # "could not connect" (nothing happened) likewise
CIRCUIT_BREAKER = 8                                # consecutive processor failures that stop the run
MAX_WORKERS = 64


class BatchBusyError(RuntimeError):
    """Another month-end run holds the office's run lock."""


class BatchStopped(RuntimeError):
    """The run lost its lock (another run took over after this process slept)."""


@dataclass(frozen=True)
class BatchProgress:
    stage: str                 # backup, resolving, invoicing, charging, resolving-new, mail, done
    done: int
    total: int
    succeeded: int = 0
    processing: int = 0
    failed: int = 0
    unknown: int = 0
    not_charged: int = 0
    collected: dict[str, int] = field(default_factory=dict)
    seconds_left: float | None = None
    text: str = ""


@dataclass(frozen=True)
class ChargeLine:
    """One invoice in the run's account."""

    invoice_id: int
    invoice_number: str
    client_id: int
    client_name: str
    amount_cents: int
    currency: str
    method_label: str
    status: str                 # succeeded, processing, failed, unknown, not_charged
    message: str
    hard: bool = False
    next_retry_on: dt.date | None = None
    retry_number: int = 0


@dataclass
class BatchReport:
    run_id: int
    period: str
    mode: ProcessorMode | None
    status: BatchRunStatus
    started_at: dt.datetime
    finished_at: dt.datetime | None
    generated: int = 0
    issued: int = 0
    backup_path: str = ""
    lines: list[ChargeLine] = field(default_factory=list)
    left_out: list[LeftOutCharge] = field(default_factory=list)
    not_started: int = 0
    mail: MailReport = field(default_factory=MailReport)
    setup_links_sent: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    message: str = ""
    resumed_run_id: int | None = None

    def by_status(self, status: str) -> list[ChargeLine]:
        return [ln for ln in self.lines if ln.status == status]

    def collected(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for ln in self.by_status("succeeded"):
            out[ln.currency] = out.get(ln.currency, 0) + ln.amount_cents
        return out

    def counts(self) -> dict[str, int]:
        keys = ("succeeded", "processing", "failed", "unknown", "not_charged")
        return {k: len(self.by_status(k)) for k in keys} | {"left_out": len(self.left_out),
                                                              "not_started": self.not_started}

    def headline(self) -> str:
        c = self.counts()
        label = Month(int(self.period[:4]), int(self.period[5:])).label
        state = {BatchRunStatus.FINISHED: "finished", BatchRunStatus.CANCELLED: "was cancelled",
                 BatchRunStatus.STOPPED: "stopped", BatchRunStatus.INTERRUPTED: "was interrupted",
                 BatchRunStatus.RUNNING: "is running"}[self.status]
        parts = [f"{self.issued} invoice(s) issued", f"{c['succeeded']} charged ({money_text(self.collected())})"]
        if c["processing"]:
            parts.append(f"{c['processing']} bank debit(s) processing")
        if c["failed"]:
            parts.append(f"{c['failed']} declined")
        if c["unknown"]:
            parts.append(f"{c['unknown']} being resolved")
        if c["not_charged"]:
            parts.append(f"{c['not_charged']} not charged")
        if self.not_started:
            parts.append(f"{self.not_started} not started")
        return f"The {label} run {state}: " + ", ".join(parts) + "."


# --- the run lock ----------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if sys.platform == "win32":  # os.kill(pid, 0) would terminate the process on Windows
        import ctypes

        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# The runs going on in this process, by (id, started_at).  A `running` row of this very process that is
# not among them belongs to a run that ended without recording it (the database stayed locked past its
# end): its pid is alive (ours), so only the 90 s heartbeat rule freed it, and meanwhile this window was
# told "a run is already under way on this computer".
_LIVE_RUNS: set[tuple[int, dt.datetime]] = set()


def run_is_dead(run: BatchRun, now: dt.datetime) -> bool:
    if run.host == socket.gethostname():
        if run.pid == os.getpid():
            return (run.id, run.started_at) not in _LIVE_RUNS
        # A process here is alive or not; its heartbeat's age says nothing more (a paused process,
        # a busy database) until it is so old that the id must belong to another program now.
        return not _pid_alive(run.pid) or now - run.heartbeat_at > PID_REUSED_AFTER
    return now - run.heartbeat_at > HEARTBEAT_STALE


def busy_text(run: BatchRun) -> str:
    label = Month(int(run.period[:4]), int(run.period[5:])).label
    local = run.started_at.astimezone()
    here = run.host == socket.gethostname()
    where = "this computer (another window or program)" if here else run.host or "another workstation"
    tail = ("" if here else f" If that computer was switched off or lost its connection, a new run here takes "
                            f"over {int(HEARTBEAT_STALE.total_seconds())} seconds after it last checked in.")
    return (f"A month-end run for {label} is already under way on {where} (started {local:%Y-%m-%d %H:%M} by "
            f"{run.actor or 'someone'}). Wait for it to finish; its result shows under Month-end.{tail}")


def running_run(session: Session) -> BatchRun | None:
    return session.scalar(select(BatchRun).where(BatchRun.status == BatchRunStatus.RUNNING).limit(1))


def live_run(session: Session, now: dt.datetime | None = None) -> BatchRun | None:
    """The run under way whose process is still there (one that died is free to take over)."""
    current = running_run(session)
    return current if current is not None and not run_is_dead(current, now or utcnow()) else None


def acquire_run(db: Database, month: Month, mode: ProcessorMode | None, now: dt.datetime | None = None
                ) -> tuple[int, int | None]:
    """Take the office's run lock: (run id, id of a dead run taken over).  BatchBusyError if held."""
    now = now or utcnow()
    try:
        with db.write_session() as s, s.begin():
            taken_over: int | None = None
            current = running_run(s)
            if current is not None:
                if not run_is_dead(current, now):
                    raise BatchBusyError(busy_text(current))
                current.status, current.finished_at = BatchRunStatus.INTERRUPTED, now
                current.message = (f"Interrupted: its process on {current.host or 'a workstation'} stopped "
                                   "(closed, crashed or asleep); a later run took over.")[:1000]
                taken_over = current.id
                s.flush()
            run = BatchRun(lock_name="month-end", period=str(month), mode=to_db_mode(mode) if mode else None,
                           status=BatchRunStatus.RUNNING, actor=audit.current_actor(), host=socket.gethostname()[:255],
                           pid=os.getpid(), started_at=now, heartbeat_at=now, backup_path="", generated=0, issued=0,
                           summary={"resumed_run_id": taken_over} if taken_over else {}, message="")
            s.add(run)
            s.flush()
            audit.record(s, "batch.started", "batch_run", run.id,
                         f"Month-end run for {month.label} started ({mode.label if mode else 'no processor'})"
                         + (f"; took over interrupted run {taken_over}" if taken_over else ""))
            _LIVE_RUNS.add((run.id, run.started_at))  # until _finish
            return run.id, taken_over
    except OperationalError as exc:
        if "locked" not in str(exc.orig).lower():
            raise
        from mspbill.db.schema import DatabaseLockedError

        raise DatabaseLockedError(f"The database {db.describe()} stayed locked by another program or workstation; "
                                  "the month-end run did not start and nothing changed. Try again in a "
                                  "moment.") from None
    except IntegrityError:
        # Another process took the lock between our check and our insert (PostgreSQL).
        with db.session() as s:
            current = running_run(s)
            raise BatchBusyError(busy_text(current) if current else
                                 "Another month-end run started at the same moment; wait for it to finish.") from None


class _Heartbeat(threading.Thread):
    """Keeps the run's row fresh; notices when another run took the lock over (`lost`)."""

    def __init__(self, db: Database, run_id: int, lost: threading.Event, stop: threading.Event):
        super().__init__(name=f"batch-heartbeat-{run_id}", daemon=True)
        self.db, self.run_id, self.lost, self.stop_all = db, run_id, lost, stop
        self.done = threading.Event()

    def beat(self) -> None:
        try:
            with self.db.write_session() as s, s.begin():
                changed = s.execute(update(BatchRun).where(BatchRun.id == self.run_id,
                                                           BatchRun.status == BatchRunStatus.RUNNING)
                                    .values(heartbeat_at=utcnow())
                                    .execution_options(synchronize_session=False)).rowcount  # type: ignore[attr-defined]
            if changed == 0:
                log.warning("batch run %s lost its lock (another run took over)", self.run_id)
                self.lost.set()
                self.stop_all.set()
        except SQLAlchemyError as exc:  # the database is busy or away: try again at the next beat
            log.warning("batch heartbeat failed: %s", exc)

    def run(self) -> None:
        while not self.done.wait(HEARTBEAT_EVERY):
            self.beat()


def _guard(run_id: int) -> Callable[[Session], None]:
    def check(s: Session) -> None:
        # Still ours? -- and a heartbeat with every attempt written (the heartbeat thread may wait
        # behind the charges for the database).  Core on the session's connection: the same
        # transaction without the ORM's overhead (this runs once per charge).
        table = cast(Table, BatchRun.__table__)
        changed = s.connection().execute(update(table).where(
            table.c.id == run_id, table.c.status == BatchRunStatus.RUNNING.value)
            .values(heartbeat_at=utcnow())).rowcount
        if changed == 0:
            raise BatchStopped("This run no longer holds the month-end lock (another run took over while this "
                               "computer was asleep or busy); it charges nothing more.")
    return check


# --- charging ----------------------------------------------------------------------


@dataclass
class _Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: int = 0
    succeeded: int = 0
    processing: int = 0
    failed: int = 0
    unknown: int = 0
    not_charged: int = 0
    collected: dict[str, int] = field(default_factory=dict)
    consecutive_faults: int = 0
    stop_reason: str = ""


class _Charger:
    def __init__(self, db: Database, gateway: Gateway, bucket: TokenBucket, run_id: int, stop: threading.Event,
                 tally: _Tally, on_change: Callable[[], None], sleep: Callable[[float], None] = time.sleep,
                 lost: threading.Event | None = None, today: dt.date | None = None):
        self.db, self.gateway, self.bucket, self.run_id = db, gateway, bucket, run_id
        self.lost = lost if lost is not None else threading.Event()
        self.today = today
        self.stop, self.tally, self.on_change, self.sleep = stop, tally, on_change, sleep
        self.attempt_ids: list[int] = []
        self.skipped: list[str] = []
        self.not_started = 0
        # SQLite has one writer at a time: the pool's threads wait their turn here, woken at once, rather
        # than in SQLite's busy handler, which polls (sleeping up to 100 ms) and gave up after its 5 s
        # timeout ("database is locked": not charged, or a charge made but not recorded) in a 64-thread run.
        # On PostgreSQL the writers take turns office-wide anyway (engine.py): waiting here rather than
        # in the connection pool keeps a 64-thread run from exhausting the pool (and its 30 s timeout).
        self.write_lock: Any = threading.Lock()

    def _halt(self, reason: str) -> None:
        with self.tally.lock:
            if not self.tally.stop_reason:
                self.tally.stop_reason = reason
        self.stop.set()

    def _count(self, outcome: ChargeOutcome | None, *, fault: bool = False) -> None:
        with self.tally.lock:
            t = self.tally
            t.done += 1
            t.consecutive_faults = t.consecutive_faults + 1 if fault else 0
            if outcome is None:
                t.unknown += 1
            elif outcome.status is ChargeAttemptStatus.SUCCEEDED:
                t.succeeded += 1
                t.collected[outcome.currency] = t.collected.get(outcome.currency, 0) + outcome.amount_cents
            elif outcome.status is ChargeAttemptStatus.PROCESSING:
                t.processing += 1
            elif outcome.status is ChargeAttemptStatus.DECLINED:
                t.failed += 1
            elif outcome.status is ChargeAttemptStatus.NOT_CHARGED:
                t.not_charged += 1
            else:
                t.unknown += 1
            faults = t.consecutive_faults
        if faults >= CIRCUIT_BREAKER:
            self._halt(f"The processor failed {faults} charges in a row (no answer or errors); the run stopped "
                       "so as not to pile up unknown charges. Run it again later: nothing is charged twice.")
        self.on_change()

    def _not_started(self) -> None:
        with self.tally.lock:
            self.not_started += 1

    def charge(self, item: PlannedCharge) -> None:
        try:
            self._charge(item)
        except Exception as exc:
            # Something nobody planned for (a disk error...): stop starting charges at once rather
            # than let the other threads go on charging what the run may not be able to record.
            log.exception("a batch charge failed unexpectedly")
            self._halt(f"The run stopped on an unexpected error ({type(exc).__name__}: {exc}); run it again to "
                       "resume: nothing is charged twice.")
            raise

    def _charge(self, item: PlannedCharge) -> None:
        assert item.target.invoice_id is not None
        if self.stop.is_set():
            self._not_started()
            return
        try:
            with self.write_lock:
                # Exactly the amount judged (and, above a cap, approved): a balance changed meanwhile is
                # refused by plan_charge rather than charged at another amount.
                attempt_id, request = start_attempt(self.db, self.gateway, item.target.invoice_id, origin="batch",
                                                    amount_cents=item.target.amount_cents,
                                                    approve_over_cap=item.over_cap_approved,
                                                    batch_run_id=self.run_id, guard=_guard(self.run_id),
                                                    today=self.today)
        except BatchStopped as exc:
            self.lost.set()
            self._halt(str(exc))
            self._not_started()
            return
        except ValidationError as exc:
            # Changed since the plan (paid by check meanwhile, charged from another window, …).
            self.skipped.append(f"{item.target.number} ({item.target.client_name}): {exc.issues[0].message}")
            self._not_started()
            return
        except OperationalError as exc:
            log.warning("could not write the attempt for invoice %s: %s", item.target.invoice_id, exc)
            self.skipped.append(f"{item.target.number} ({item.target.client_name}): the database was busy; not "
                                "charged, the next run will.")
            self._not_started()
            return
        with self.tally.lock:
            self.attempt_ids.append(attempt_id)
        written = (utcnow(), time.monotonic())
        try:
            outcome, fault = self._send(attempt_id, request, written)
        except SQLAlchemyError as exc:
            # The processor answered but the answer could not be written: the attempt stays
            # pending and is resolved (found by its key) before this invoice is charged again --
            # and no further charge starts while answers cannot be written.
            log.error("could not record the outcome of attempt %s: %s", attempt_id, exc)
            self._halt("The database could not record a charge's outcome; the run stopped. Run it again: the "
                       "charge is looked up at the processor first and never made twice.")
            outcome, fault = None, False
        self._count(outcome, fault=fault)

    def _send(self, attempt_id: int, request: ChargeRequest,
              written: tuple[dt.datetime, float]) -> tuple[ChargeOutcome | None, bool]:
        rate_limited = unavailable = 0
        while True:
            # The token for this very request, taken after the attempt is written (an attempt written is in
            # flight: it is sent even if the run is cancelled meanwhile): the processor then sees the bucket's
            # pace.  Taken before the write, a write that waited bunched the requests behind it into 429s.
            self.bucket.acquire(None)
            if self.lost.is_set():
                return None, False  # another run owns the lock and resolves this attempt (same key)
            # Wall clock (jumps over a sleep) and monotonic clock (immune to the clock being set back).
            waited = max((utcnow() - written[0]).total_seconds(), time.monotonic() - written[1])
            if waited > SEND_DEADLINE.total_seconds():
                # The computer slept between writing the attempt and sending it; another run may have
                # resolved it meanwhile.  Leave it to resolution (same key) rather than send it now.
                with self.write_lock:
                    return record_result(self.db, attempt_id, ChargeResult(
                        status=ChargeStatus.UNKNOWN, message="Not sent: the run was paused (the computer slept?); "
                                                             "mspbill finds out before charging again.")), False
            try:
                result = self.gateway.charge(request)
            except RateLimited as exc:
                rate_limited += 1
                self.bucket.slow_down()
                if rate_limited >= RATE_LIMIT_TRIES:
                    with self.write_lock:
                        return record_not_charged(self.db, attempt_id, "The processor kept asking mspbill to slow "
                                                                       "down (429); nothing was charged. The next run "
                                                                       "charges it.", code=exc.code), True
                self.sleep(min(max(exc.retry_after, 0.5) * rate_limited, 10.0))
                continue
            except (AuthenticationFailed, PermissionDenied) as exc:
                self._halt(f"The processor refused the key: {exc.message} The run stopped; nothing more was "
                           "charged. Fix the key in Settings → Payments and run again.")
                with self.write_lock:
                    return record_not_charged(self.db, attempt_id, exc.message, code=exc.code), True
            except IdempotencyConflict as exc:
                # The key was used with other parameters: never "not charged" (a new key could charge
                # twice); resolution finds the PaymentIntent by the key in its metadata.
                result = ChargeResult(status=ChargeStatus.UNKNOWN, message=exc.message)
            except ProcessorError as exc:
                if exc.nothing_happened and not isinstance(exc, ProcessorUnavailable):
                    # A refusal (customer deleted in the dashboard, method detached, bad request): an
                    # answer, not an outage.  It was asked twice more after 2 + 4 s and counted towards the
                    # circuit breaker, so eight such clients in a row stopped the run.
                    with self.write_lock:
                        return record_not_charged(self.db, attempt_id, exc.message, code=exc.code), False
                if exc.nothing_happened:
                    unavailable += 1
                    if unavailable < UNAVAILABLE_TRIES and not self.stop.is_set():
                        self.sleep(min(2.0 ** unavailable, 8.0))
                        continue
                    with self.write_lock:
                        return record_not_charged(self.db, attempt_id, exc.message, code=exc.code), True
                result = ChargeResult(status=ChargeStatus.UNKNOWN, message=exc.message)
            except Exception as exc:  # a bug or an unexpected library error: the charge may have been made
                log.exception("batch charge attempt %s raised", attempt_id)
                result = ChargeResult(status=ChargeStatus.UNKNOWN, message=f"{type(exc).__name__}: {exc}")
            with self.write_lock:
                outcome = record_result(self.db, attempt_id, result)
            return outcome, outcome.status is ChargeAttemptStatus.UNKNOWN


def _workers(rate: float) -> int:
    # Enough threads to keep the bucket busy at about a second per call, never more than MAX_WORKERS.
    return max(2, min(MAX_WORKERS, math.ceil(rate)))


# --- the run ----------------------------------------------------------------------


ProgressFn = Callable[[BatchProgress], None]


@dataclass
class RunOptions:
    today: dt.date | None = None
    rate_per_second: float | None = None     # overrides the settings (benchmarks, tests)
    workers: int | None = None
    resolve_pause: float = 1.0               # seconds before asking again about this run's unknown outcomes
    send_mail: bool = True
    setup_links: bool = True


def run_batch(db: Database, gateway: Gateway | None, month: Month, *, backup_dir: Path | None,
              progress: ProgressFn | None = None, cancel: threading.Event | None = None,
              options: RunOptions | None = None) -> BatchReport:
    """Run `month`'s batch; the report says what happened.  Raises BatchBusyError, ValidationError."""
    options = options or RunOptions()
    today = options.today or dt.date.today()
    check_period(month, today)
    mode = gateway.mode if gateway is not None else None
    stop = cancel if cancel is not None else threading.Event()
    run_id, taken_over = acquire_run(db, month, mode)
    lost = threading.Event()
    heartbeat = _Heartbeat(db, run_id, lost, stop)
    heartbeat.start()
    started = time.monotonic()
    tally = _Tally()
    report_extra: dict[str, Any] = {"problems": [], "not_started": 0, "setup_links": [], "resumed_run_id": taken_over}
    total_charges = 0

    def emit(stage: str, text: str = "", done: int | None = None, total: int | None = None) -> None:
        if progress is None:
            return
        with tally.lock:
            d = tally.done if done is None else done
            n = total_charges if total is None else total
            elapsed = time.monotonic() - started
            left = (elapsed / d) * (n - d) if stage == "charging" and d else None
            snap = BatchProgress(stage, d, n, tally.succeeded, tally.processing, tally.failed, tally.unknown,
                                 tally.not_charged, dict(tally.collected), left, text)
        try:
            progress(snap)
        except Exception:  # a progress display must never stop a run
            log.exception("batch progress callback failed")

    status = BatchRunStatus.FINISHED
    message = ""
    mail = MailReport()
    left_out: list[LeftOutCharge] = []
    try:
        # 1. A backup before anything changes (SQLite; a PostgreSQL server keeps its own).
        if db.is_sqlite:
            emit("backup", "Backing up the database…", 0, 0)
        _backup(db, backup_dir, month, run_id)
        # 2. Earlier charges without a known outcome are resolved before any new attempt.
        throttled: Gateway | None = None
        bucket: TokenBucket | None = None
        if gateway is not None:
            settings = _settings(db)
            rate = options.rate_per_second or effective_rate(
                rate_limit(gateway.mode, settings.rate_limit_test, settings.rate_limit_live, gateway),
                settings.rate_margin_percent)
            bucket = TokenBucket(rate)
            throttled = ThrottledGateway(gateway, bucket)  # type: ignore[assignment]
            emit("resolving", "Checking earlier charges without a known outcome…", 0, 0)
            idle = {taken_over} if taken_over else set()
            sync = sync_charges(db, throttled, idle_run_ids=idle)  # type: ignore[arg-type]
            report_extra["problems"] += [f"Checking earlier charges: {e}" for e in sync.errors]
        # 3. The month's invoices, generated and issued in one transaction.
        emit("invoicing", f"Generating and issuing the invoices for {month.label}…", 0, 0)
        issued_ids = _invoice(db, run_id, month, today)
        if throttled is not None:
            # After a restore from a backup: the processor's charges made since, brought in first
            # (never charge an invoice again that was charged after the backup was taken).
            from mspbill.backups import reconcile_after_restore

            report_extra["problems"] += reconcile_after_restore(db, throttled)
        # 4. Charges.
        with db.session() as s:
            charges, left_out = judge_open_invoices(s, mode, today, new_invoice_ids=issued_ids)
        report_extra["left_out"] = [_left_out_json(lo) for lo in left_out[:LEFT_OUT_KEPT]]
        total_charges = len(charges)
        if gateway is not None and bucket is not None and charges and not stop.is_set():
            charger = _Charger(db, gateway, bucket, run_id, stop, tally, lambda: emit("charging"), lost=lost,
                               today=today)
            emit("charging", f"Charging {len(charges)} invoice(s)…")
            workers = options.workers or _workers(bucket.base_rate)
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="batch-charge") as pool:
                for future in [pool.submit(charger.charge, item) for item in charges]:
                    future.result()
            report_extra["not_started"] = charger.not_started
            report_extra["problems"] += charger.skipped
            # 5. This run's unknown outcomes: ask once more (same key), after a pause.
            unknown_ids = _unknown_invoices(db, run_id)
            if unknown_ids and not lost.is_set():
                emit("resolving-new", f"Finding out about {len(unknown_ids)} charge(s) without an answer…")
                time.sleep(options.resolve_pause)
                sync = sync_charges(db, throttled, invoice_ids=unknown_ids, idle_run_ids={run_id})  # type: ignore[arg-type]
                report_extra["problems"] += [f"Finding out: {e}" for e in sync.errors]
            # 6. Clients whose method was declined for good get a new setup link.
            if options.setup_links and throttled is not None and not lost.is_set():
                report_extra["setup_links"] = _send_setup_links(db, throttled, run_id, report_extra["problems"],
                                                                taken_over)
        elif stop.is_set():
            # Cancelled (or the lock lost) before the first charge: every charge is left for the next run
            # (the report said "0 were not started").
            report_extra["not_started"] = len(charges)
        if lost.is_set():
            raise BatchStopped("This run lost the month-end lock (another run took over while this computer was "
                               "asleep or busy); the other run carries on.")
        # 7. Mail: receipts and invoices.
        if options.send_mail:
            emit("mail", "Queuing receipts and invoice e-mails…")
            mail = _queue_mail(db, month, run_id, taken_over)
        if tally.stop_reason:
            status, message = BatchRunStatus.STOPPED, tally.stop_reason
        elif cancel is not None and cancel.is_set() and report_extra["not_started"]:
            # (Cancel pressed after the last charge had started changes nothing: the run finished.)
            status = BatchRunStatus.CANCELLED
            message = (f"Cancelled: the charges in flight finished and were recorded; {report_extra['not_started']} "
                       "were not started. Run again to charge them.")
    except BatchStopped as exc:
        status, message = BatchRunStatus.INTERRUPTED, str(exc)
    except ValidationError as exc:
        status, message = BatchRunStatus.STOPPED, "; ".join(i.message for i in exc.issues)
        _finish(db, run_id, status, message, report_extra, tally, mail, lost.is_set())
        heartbeat.done.set()
        raise
    except BaseException as exc:
        status, message = BatchRunStatus.STOPPED, _fault_text(exc, db.url)
        _finish(db, run_id, status, message, report_extra, tally, mail, lost.is_set())
        heartbeat.done.set()
        if isinstance(exc, OperationalError) and "locked" in str(exc.orig).lower():
            # Say it as acquire_run does (the CLI and the window show a DatabaseOpenError's sentence);
            # the raw "(sqlite3.OperationalError) database is locked" read as a crash.
            from mspbill.db.schema import DatabaseLockedError

            raise DatabaseLockedError(message) from exc
        raise
    finally:
        heartbeat.done.set()
    _finish(db, run_id, status, message, report_extra, tally, mail, lost.is_set())
    emit("done", message or "Finished.")
    with db.session() as s:
        report = run_report(s, run_id)
    accounted = {ln.invoice_id for ln in report.lines}
    report.left_out = [lo for lo in left_out if lo.target.invoice_id not in accounted]
    report.mail = mail
    return report


def _fault_text(exc: BaseException, db_url: str = "") -> str:
    from mspbill.db.server import explain

    if isinstance(exc, OperationalError) and "locked" in str(exc.orig).lower():
        return ("The database stayed locked by another program or workstation; the run stopped. Nothing is "
                "charged twice: run it again when the other program is done.")
    if isinstance(exc, KeyboardInterrupt):
        return "Interrupted."
    # A database server that went away (or stayed busy) mid-run: its sentence, not "an unexpected error".
    sentence = explain(exc, db_url, midway=True) if db_url else None
    if sentence is not None:
        return f"The run stopped: {sentence} Run it again: nothing is charged twice."
    return f"The run stopped on an unexpected error ({type(exc).__name__}: {exc}); run it again to resume."


def _settings(db: Database) -> Any:
    with db.session() as s:
        return batch_settings(s)


def _backup(db: Database, backup_dir: Path | None, month: Month, run_id: int) -> str:
    from mspbill.backups import BackupError, take_backup

    if backup_dir is None or db.sqlite_path is None:
        return ""
    try:
        path = str(take_backup(db.sqlite_path, backup_dir, f"before-batch-{month}"))
    except (BackupError, OSError) as exc:
        why = (exc.why or str(exc)) if isinstance(exc, BackupError) else (exc.strerror or str(exc))
        raise ValidationError([Issue("backup", f"The backup before the run could not be written to {backup_dir} "
                                               f"({why}); nothing was done. Free some space or "
                                               "check the folder, then run again.")]) from exc
    with db.write_session() as s, s.begin():
        run = s.get(BatchRun, run_id)
        if run is not None:
            run.backup_path = path[:1000]
    return path


def _invoice(db: Database, run_id: int, month: Month, today: dt.date) -> list[int]:
    for attempt in range(3):
        try:
            with db.write_session() as s, s.begin():
                _guard(run_id)(s)
                result = generate_period(s, month)
                ids = drafts_for_month(s, month)
                issue_invoices(s, ids, today)
                run = s.get(BatchRun, run_id)
                assert run is not None
                run.generated, run.issued = result.created, len(ids)
                # mail_pending: the run's e-mails are not queued yet (cleared by its mail step, or by
                # batch_sync for a run that stopped before it).
                run.summary = dict(run.summary or {}) | {"issued_invoice_ids": ids, "mail_pending": bool(ids)}
                if ids:
                    audit.record(s, "batch.invoiced", "batch_run", run_id,
                                 f"Generated {result.created} and issued {len(ids)} invoice(s) for {month.label}")
                return ids
        except ConcurrentGenerationError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _unknown_invoices(db: Database, run_id: int) -> list[int]:
    with db.session() as s:
        return list(s.scalars(select(ChargeAttempt.invoice_id).where(
            ChargeAttempt.batch_run_id == run_id,
            ChargeAttempt.status.in_([ChargeAttemptStatus.UNKNOWN, ChargeAttemptStatus.PENDING]))))


def _send_setup_links(db: Database, gateway: Gateway, run_id: int, problems: list[str],
                      taken_over: int | None = None) -> list[str]:
    with db.session() as s:
        # The runs this one resumed too: one killed before this step declined them.
        run_ids = _period_run_ids(s, run_id, taken_over)
        declined = select(ChargeAttempt).where(ChargeAttempt.batch_run_id.in_(run_ids))
        return ask_for_new_methods(db, gateway, _hard_declines(s, declined), problems)


def _hard_declines(s: Session, attempts: Any) -> dict[int, dt.datetime]:
    """client id -> when its method was (last) declined for good, among `attempts` (a select)."""
    out: dict[int, dt.datetime] = {}
    for a in s.scalars(attempts.where(ChargeAttempt.status == ChargeAttemptStatus.DECLINED,
                                      ChargeAttempt.decline_hard.is_(True))):
        when = a.resolved_at or a.created_at
        out[a.client_id] = max(out.get(a.client_id, when), when)
    return out


def ask_for_new_methods(db: Database, gateway: Gateway, declined_at: dict[int, dt.datetime],
                        problems: list[str]) -> list[str]:
    """One new payment setup link, e-mailed, per client whose method was declined for good.

    Once per decline: a client who was sent a link after it is not sent another (a link that
    expired unused is the office's to follow up), unless that link is still open and was never
    e-mailed (a run stopped in between): then it is e-mailed now.  Names of the clients asked."""
    from mspbill.batch.emails import mail_configured
    from mspbill.payments.methods import create_setup_link, queue_setup_link_email

    if not declined_at:
        return []
    now = utcnow()
    with db.session() as s:
        links: dict[int, list[SetupLink]] = {}
        for link in s.scalars(select(SetupLink).where(SetupLink.client_id.in_(list(declined_at)),
                                                      SetupLink.mode == to_db_mode(gateway.mode))):
            links.setdefault(link.client_id, []).append(link)
        names = {c.id: c.legal_name for c in s.scalars(select(Client).where(Client.id.in_(list(declined_at))))}
        can_mail = mail_configured(s)
    asked: list[str] = []
    for client_id, when in sorted(declined_at.items()):
        name = names.get(client_id, str(client_id))
        since = [ln for ln in links.get(client_id, []) if ln.created_at >= when]
        unsent = [ln for ln in since if ln.status is SetupLinkStatus.OPEN and ln.expires_at > now and not ln.sent_to]
        if since and not (unsent and can_mail):
            continue
        try:
            link_id = unsent[0].id if unsent else create_setup_link(db, gateway, client_id).link_id
            with db.write_session() as s, s.begin():
                queue_setup_link_email(s, link_id)
            asked.append(name)
        except ValidationError as exc:
            problems.append(f"New setup link for {name}: created, not e-mailed — {exc.issues[0].message}")
        except ProcessorError as exc:
            problems.append(f"New setup link for {name}: {exc.message}")
    return asked


def _period_run_ids(s: Session, run_id: int, taken_over: int | None) -> list[int]:
    ids = [run_id]
    seen = {run_id}
    while taken_over is not None and taken_over not in seen:
        ids.append(taken_over)
        seen.add(taken_over)
        earlier = s.get(BatchRun, taken_over)
        taken_over = (earlier.summary or {}).get("resumed_run_id") if earlier is not None else None
    return ids


def _queue_mail(db: Database, month: Month, run_id: int, taken_over: int | None) -> MailReport:
    with db.write_session() as s, s.begin():
        run_ids = _period_run_ids(s, run_id, taken_over)
        issued: list[int] = []
        for run in s.scalars(select(BatchRun).where(BatchRun.id.in_(run_ids))):
            issued += (run.summary or {}).get("issued_invoice_ids", [])
        succeeded = list(s.scalars(select(ChargeAttempt.id).where(
            ChargeAttempt.batch_run_id.in_(run_ids), ChargeAttempt.status == ChargeAttemptStatus.SUCCEEDED)))
        # And earlier runs' charges found out at this run's start (the receipts a sync would queue).
        succeeded += [a for a in _unreceipted(s, utcnow()) if a not in set(succeeded)]
        report = queue_batch_mail(s, list(dict.fromkeys(issued)), succeeded)
        for run in s.scalars(select(BatchRun).where(BatchRun.id.in_(run_ids))):
            run.summary = dict(run.summary or {}) | {"mail_pending": False}
        return report


def _collapse(problems: list[str]) -> list[str]:
    """The same sentence thirty times (every call a 500) once, with its count."""
    counts: dict[str, int] = {}
    for text in problems:
        counts[text] = counts.get(text, 0) + 1
    return [text if n == 1 else f"{text} (×{n})" for text, n in counts.items()]


def _finish(db: Database, run_id: int, status: BatchRunStatus, message: str, extra: dict[str, Any], tally: _Tally,
            mail: MailReport, lost: bool) -> None:
    try:
        with db.write_session() as s, s.begin():
            run = s.get(BatchRun, run_id)
            if run is None:
                return
            if run.status is BatchRunStatus.RUNNING:
                run.status = status
            elif lost:
                return  # another run took over: its row says so already
            run.finished_at = utcnow()
            run.message = message[:1000]
            run.summary = dict(run.summary or {}) | {
                "succeeded": tally.succeeded, "processing": tally.processing, "failed": tally.failed,
                "unknown": tally.unknown, "not_charged": tally.not_charged, "collected": tally.collected,
                "not_started": extra.get("not_started", 0), "problems": _collapse(extra.get("problems", []))[:200],
                "left_out": extra.get("left_out", []),
                "setup_links": extra.get("setup_links", []), "receipts_queued": mail.receipts,
                "invoices_queued": mail.invoices, "mail_not_configured": mail.not_configured}
            audit.record(s, "batch.finished", "batch_run", run_id,
                         f"Month-end run {run.period} {run.status.value}: {tally.succeeded} charged "
                         f"({money_text(tally.collected)}), {tally.failed} declined, {tally.processing} processing, "
                         f"{tally.unknown} unknown" + (f" — {message}" if message else ""))
    except SQLAlchemyError:
        log.exception("could not record the end of batch run %s", run_id)
    finally:
        for live in [r for r in _LIVE_RUNS if r[0] == run_id]:
            _LIVE_RUNS.discard(live)  # this process no longer runs it, whatever its row says


# --- reading a run back --------------------------------------------------------------


def _line_message(a: ChargeAttempt) -> str:
    if a.status is not ChargeAttemptStatus.DECLINED or not a.decline_code:
        return a.message
    # The bank's reason in words ("the card was reported lost"), then the processor's own sentence.
    reason = decline_reason_text(a.decline_code)
    said = a.message.strip().rstrip(".")
    return f"{reason[:1].upper()}{reason[1:]}" + (f" (“{said}”)." if said else ".")


LEFT_OUT_KEPT = 5000   # left-out rows kept with a run for its account (an office has at most ~2,000 clients)


def _left_out_json(lo: LeftOutCharge) -> dict[str, Any]:
    t = lo.target
    return {"client_id": t.client_id, "client_name": t.client_name, "invoice_id": t.invoice_id, "number": t.number,
            "agreement_id": t.agreement_id, "period_start": t.period_start.isoformat() if t.period_start else None,
            "amount_cents": t.amount_cents, "currency": t.currency, "reason": lo.reason.value, "detail": lo.detail,
            "method_label": lo.method_label,
            "next_retry_on": lo.next_retry_on.isoformat() if lo.next_retry_on else None}


def _left_out_from_json(d: dict[str, Any]) -> LeftOutCharge:
    from mspbill.batch.plan import LeftOutReason, Target

    day = dt.date.fromisoformat
    return LeftOutCharge(Target(d["client_id"], d["client_name"], d["invoice_id"], d["number"], d["agreement_id"],
                                day(d["period_start"]) if d["period_start"] else None, d["amount_cents"],
                                d["currency"]),
                         LeftOutReason(d["reason"]), d["detail"], d["method_label"],
                         day(d["next_retry_on"]) if d["next_retry_on"] else None)


def run_report(session: Session, run_id: int) -> BatchReport:
    """A run's account, rebuilt from the database (its attempts and the runs it resumed)."""
    from mspbill.batch.plan import retry_schedule

    run = session.get(BatchRun, run_id)
    if run is None:
        raise ValidationError([Issue("run", f"There is no month-end run {run_id}.")])
    summary = run.summary or {}
    run_ids = _period_run_ids(session, run.id, summary.get("resumed_run_id"))
    attempts = list(session.scalars(select(ChargeAttempt).where(ChargeAttempt.batch_run_id.in_(run_ids))
                                    .order_by(ChargeAttempt.id)))
    latest: dict[int, ChargeAttempt] = {}
    for a in attempts:
        latest[a.invoice_id] = a
    invoices = {i.id: i for i in session.scalars(select(Invoice).where(Invoice.id.in_(list(latest))))} if latest else {}
    clients = {c.id: c.legal_name for c in session.scalars(
        select(Client).where(Client.id.in_({a.client_id for a in latest.values()})))} if latest else {}
    failures: dict[int, list[Failure]] = {}
    declined_ids = [a.invoice_id for a in latest.values() if a.status is ChargeAttemptStatus.DECLINED]
    if declined_ids:
        for a in session.scalars(select(ChargeAttempt).where(ChargeAttempt.invoice_id.in_(declined_ids),
                                                             ChargeAttempt.status == ChargeAttemptStatus.DECLINED)):
            failures.setdefault(a.invoice_id, []).append(Failure.of(a))
    schedule = retry_schedule(session)
    status_names = {ChargeAttemptStatus.SUCCEEDED: "succeeded", ChargeAttemptStatus.PROCESSING: "processing",
                    ChargeAttemptStatus.DECLINED: "failed", ChargeAttemptStatus.UNKNOWN: "unknown",
                    ChargeAttemptStatus.PENDING: "unknown", ChargeAttemptStatus.NOT_CHARGED: "not_charged"}
    lines = []
    for a in latest.values():
        inv = invoices.get(a.invoice_id)
        next_retry = None
        if a.status is ChargeAttemptStatus.DECLINED and not a.decline_hard:
            next_retry = next_retry_after_failure(failures.get(a.invoice_id, []), a.method_id, schedule)
        lines.append(ChargeLine(a.invoice_id, (inv.number if inv else None) or "", a.client_id,
                                clients.get(a.client_id, ""), a.amount_cents, a.currency, a.method_label,
                                status_names[a.status], _line_message(a), bool(a.decline_hard), next_retry))
    lines.sort(key=lambda ln: (ln.client_name.casefold(), ln.invoice_number))
    mail = MailReport(receipts=summary.get("receipts_queued", 0), invoices=summary.get("invoices_queued", 0),
                      not_configured=summary.get("mail_not_configured", False))
    return BatchReport(run.id, run.period, ProcessorMode(run.mode.value) if run.mode else None, run.status,
                       run.started_at, run.finished_at, run.generated, run.issued, run.backup_path, lines,
                       [_left_out_from_json(d) for d in summary.get("left_out", [])
                        if d.get("invoice_id") is None or d["invoice_id"] not in latest],
                       summary.get("not_started", 0), mail, summary.get("setup_links", []),
                       summary.get("problems", []), run.message, summary.get("resumed_run_id"))


@dataclass(frozen=True)
class RunRow:
    id: int
    period: str
    mode: str
    status: str
    actor: str
    host: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    issued: int
    succeeded: int
    failed: int
    collected: dict[str, int]
    message: str


def list_runs(session: Session, limit: int = 50) -> list[RunRow]:
    """The latest runs, with what their charges came to *now* (a debit settled or an unknown outcome
    found out after the run counts where it ended up), from the attempts each run made."""
    from sqlalchemy import func

    runs = list(session.scalars(select(BatchRun).order_by(BatchRun.id.desc()).limit(limit)))
    succeeded: dict[int, int] = {}
    failed: dict[int, int] = {}
    collected: dict[int, dict[str, int]] = {}
    if runs:
        for run_id, status, currency, count, cents in session.execute(
                select(ChargeAttempt.batch_run_id, ChargeAttempt.status, ChargeAttempt.currency,
                       func.count(), func.sum(ChargeAttempt.amount_cents))
                .where(ChargeAttempt.batch_run_id.in_([r.id for r in runs]),
                       ChargeAttempt.status.in_([ChargeAttemptStatus.SUCCEEDED, ChargeAttemptStatus.DECLINED]))
                .group_by(ChargeAttempt.batch_run_id, ChargeAttempt.status, ChargeAttempt.currency)):
            assert run_id is not None
            if status is ChargeAttemptStatus.SUCCEEDED:
                succeeded[run_id] = succeeded.get(run_id, 0) + int(count)
                collected.setdefault(run_id, {})[currency] = int(cents or 0)
            else:
                failed[run_id] = failed.get(run_id, 0) + int(count)
    return [RunRow(r.id, r.period, r.mode.value if r.mode else "", r.status.value, r.actor, r.host, r.started_at,
                   r.finished_at, r.issued, succeeded.get(r.id, 0), failed.get(r.id, 0), collected.get(r.id, {}),
                   r.message) for r in runs]


def preview(db: Database, month: Month, today: dt.date | None = None) -> BatchPreview:
    with db.session() as s:
        return preview_batch(s, month, today=today)


@dataclass
class BatchSyncReport:
    sync: Any                     # payments.sync.FullSyncReport
    receipts_queued: int = 0
    invoices_queued: int = 0
    setup_links_sent: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out: list[str] = self.sync.lines()
        if (self.setup_links_sent or self.receipts_queued or self.invoices_queued) and out[-1] == "Nothing new.":
            out.pop()
        for name in self.setup_links_sent:
            out.append(f"Declined for good — a new payment setup link was e-mailed to {name}")
        if self.invoices_queued:
            out.append(f"{self.invoices_queued} invoice e-mail(s) queued that a stopped month-end run had not sent")
        if self.receipts_queued:
            out.append(f"{self.receipts_queued} receipt(s) queued for charges that went through")
        return out


RECEIPT_WINDOW = dt.timedelta(days=60)


def batch_sync(db: Database, gateway: Gateway, now: dt.datetime | None = None) -> BatchSyncReport:
    """Settle bank debits, resolve unknown outcomes, collect setup links; then queue the receipts of
    batch charges that have gone through since (an ACH debit settles days after the run)."""
    from mspbill.batch.emails import mail_configured, queue_receipt
    from mspbill.payments.sync import sync_all

    now = now or utcnow()
    with db.session() as s:
        current = live_run(s, now)
        if current is not None:
            # The run resolves, settles and sends its own; asking beside it would only spend its
            # request budget (and queue its receipts under another name).
            raise BatchBusyError(busy_text(current).replace("Wait for it to finish",
                                                             "The sync waits for it to finish", 1))
    report = BatchSyncReport(sync_all(db, gateway, now))
    # A hard decline found out only now (a debit that bounced, an unknown outcome resolved): ask too.
    with db.session() as s:
        declined = _hard_declines(s, select(ChargeAttempt).where(
            ChargeAttempt.origin == "batch", ChargeAttempt.mode == to_db_mode(gateway.mode),
            ChargeAttempt.resolved_at >= now - RECEIPT_WINDOW))
    problems: list[str] = []
    report.setup_links_sent = ask_for_new_methods(db, gateway, declined, problems)
    report.sync.errors.extend(problems)
    with db.write_session() as s, s.begin():
        if not mail_configured(s):
            return report
        for attempt_id in _unreceipted(s, now):
            if queue_receipt(s, attempt_id, now) is not None:
                report.receipts_queued += 1
        # The invoice e-mails of a run that stopped before its mail step (nothing to run again for).
        for run in s.scalars(select(BatchRun).where(BatchRun.status != BatchRunStatus.RUNNING,
                                                    BatchRun.started_at >= now - RECEIPT_WINDOW)):
            summary = run.summary or {}
            if summary.get("mail_pending"):
                queued = queue_batch_mail(s, summary.get("issued_invoice_ids", []), [])
                report.invoices_queued += queued.invoices
                run.summary = summary | {"mail_pending": False}
    return report


def _unreceipted(s: Session, now: dt.datetime) -> list[int]:
    """Month-end charges that went through lately (a debit settled, an unknown found out) with no receipt yet."""
    from mspbill.batch.emails import KIND_RECEIPT
    from mspbill.db.models import OutboxMessage

    receipted = select(OutboxMessage.id).where(OutboxMessage.kind == KIND_RECEIPT,
                                               OutboxMessage.invoice_id == ChargeAttempt.invoice_id).exists()
    return list(s.scalars(select(ChargeAttempt.id).where(
        ChargeAttempt.origin == "batch", ChargeAttempt.status == ChargeAttemptStatus.SUCCEEDED,
        ChargeAttempt.resolved_at >= now - RECEIPT_WINDOW, ~receipted)))
