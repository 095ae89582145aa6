"""Month-end autopay batch: 2,000 autopay invoices on the sandbox processor at 250 ms a call.

The office: 2,000 autopay clients, one monthly agreement each, a saved sandbox
card each (made once, with a zero-latency sandbox on the same ledger file, and
cached under bench-data/).  Every scenario runs in its own child process (so
ru_maxrss and tracemalloc are its own) on fresh copies of the database and the
ledger, with the 250 ms sandbox enforcing its request limit itself: above it,
it answers 429, so "no 429s" proves the batch stayed under the limit.

  batch       `run_batch` as the app and `mspbill batch run` call it: backup,
              generate + issue the month's 2,000 invoices, charge them from the
              bounded pool under the token bucket, queue the mail.  The rate comes
              from the settings (limit from the sandbox's config, less the 10%
              margin) unless `rate_per_second` is given explicitly.
  sequential  `charge_invoice` one invoice after the other: at 250 ms a call that
              is ~500 s for 2,000, so by default it charges a sample and the
              2,000 figure is extrapolated (labelled so); --full charges all.

Reported for each: the charging phase (first to last charge recorded), the whole
run, generate + issue (with the charge plan), charges a second, the ratio to the
limit's bound (2,000 / limit: 80 s at 25/s, 20 s at 100/s; the aim is 1.15x),
429s the sandbox answered, the busiest one-second window it saw, worker threads,
peak memory, and a ledger check: every invoice charged once, every charge
recorded locally as one payment.

Peak memory: ru_maxrss of every run, and tracemalloc's peak from separate runs
(--memory), since tracemalloc triples the CPU a charge costs and would skew the times.
--diagnose adds where a charge's time goes (token -> processor, the two writes).

    python benchmarks/bench_batch.py [--sample N] [--full] [--only NAME,...] [--memory NAME,...|all|none]
                                     [--workers N] [--diagnose]
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import platform
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

from _common import CACHE
from sqlalchemy import func, select

from mspbill.agreements import AgreementDraft, LineDraft, create_agreement
from mspbill.clients import ClientDraft, create_client
from mspbill.company import CompanyDraft, save_company
from mspbill.db.models import (
    ChargeAttempt,
    ChargeAttemptStatus,
    Invoice,
    InvoiceStatus,
    Payment,
)
from mspbill.db.schema import open_database
from mspbill.paths import DB_FILENAME
from mspbill.payments.gateway import RateLimited
from mspbill.payments.processor import (
    SANDBOX_LEDGER,
    PaymentSettingsDraft,
    save_settings,
)
from mspbill.payments.sandbox import SandboxConfig, SandboxGateway
from mspbill.periods import Month

CLIENTS = 2_000
LATENCY_SECONDS = 0.25
TOKEN = "pm_card_visa"        # every card succeeds: the run's figures are the processor's pace, not declines
OFFICE = CACHE / f"batch-{CLIENTS}"

# name -> (kind, the sandbox's limit, explicit rate_per_second or None)
SCENARIOS: dict[str, tuple[str, int, float | None]] = {
    "batch-25": ("batch", 25, None),
    "batch-100": ("batch", 100, None),
    "batch-100-explicit-90": ("batch", 100, 90.0),
    "batch-100-explicit-100": ("batch", 100, 100.0),
    "sequential": ("sequential", 25, None),
}
LABELS = {
    "batch-25": "batch, test limit 25/s (settings rate)",
    "batch-100": "batch, live limit 100/s (settings rate)",
    "batch-100-explicit-90": "batch, 100/s, rate_per_second=90 given",
    "batch-100-explicit-100": "batch, 100/s, rate_per_second=100 (no margin)",
    "sequential": "sequential charge_invoice loop",
}


# --- the office (made once) ----------------------------------------------------------


def office() -> Path:
    marker = OFFICE / ".complete"
    if not marker.exists():
        # Built in a child process so that no run's memory figures include it.
        subprocess.run([sys.executable, __file__, "--build"], check=True)
    return OFFICE


def build() -> None:
    from mspbill.context import open_context
    from mspbill.payments.methods import ensure_customer, store_method

    shutil.rmtree(OFFICE, ignore_errors=True)
    t0 = time.perf_counter()
    ctx = open_context(str(OFFICE))
    db = ctx.db
    start = (dt.date.today().replace(day=1) - dt.timedelta(days=70)).replace(day=1)
    with db.write_session() as s, s.begin():
        save_company(s, CompanyDraft(name="Benchmark IT", email="billing@benchmark-it.example"))
        save_settings(s, PaymentSettingsDraft("sandbox"))
        client_ids = []
        for i in range(CLIENTS):
            client = create_client(s, ClientDraft(legal_name=f"Client {i:05d} LLC",
                                                  billing_emails=f"ap@client{i:05d}.example", autopay=True))
            seats = 4 + i % 47
            create_agreement(s, AgreementDraft(client_id=client.id, name="Managed IT services", start_date=start,
                                               frequency="monthly",
                                               lines=[LineDraft("Managed seats", str(seats), "95.00"),
                                                      LineDraft("Backup", "1", f"{49 + i % 100}.00")]))
            client_ids.append(client.id)
            if i % 500 == 499:
                s.flush()
                s.expunge_all()
    t1 = time.perf_counter()
    # Customers and cards through the sandbox's API, with no latency and no limit.
    with SandboxGateway(OFFICE / SANDBOX_LEDGER, SandboxConfig()) as sandbox:
        saved = []
        for client_id in client_ids:
            customer_id = ensure_customer(db, sandbox, client_id)
            saved.append((client_id, customer_id, sandbox.attach_test_method(customer_id, TOKEN)))
        with db.write_session() as s, s.begin():
            for client_id, customer_id, facts in saved:
                store_method(s, client_id, sandbox.mode, facts, customer_id, "benchmark", make_default=True)
    ctx.close()
    (OFFICE / ".complete").write_text(dt.date.today().isoformat())
    print(f"(made an office of {CLIENTS:,} autopay clients in {t1 - t0:.1f} s and their sandbox customers and "
          f"cards in {time.perf_counter() - t1:.1f} s)", file=sys.stderr)


# --- the sandbox, counted -------------------------------------------------------------


class CountingSandbox(SandboxGateway):
    """The sandbox unchanged, with a note of every call it admitted and every 429 it answered."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.count_lock = threading.Lock()
        self.calls: collections.Counter[str] = collections.Counter()
        self.rate_limited: collections.Counter[str] = collections.Counter()
        self.admitted_at: list[float] = []
        self.threads: set[str] = set()

    def _fault(self, operation: str, request_id: str) -> str | None:
        try:
            fault = super()._fault(operation, request_id)
        except RateLimited:
            with self.count_lock:
                self.calls[operation] += 1
                self.rate_limited[operation] += 1
            raise
        with self.count_lock:
            self.calls[operation] += 1
            self.admitted_at.append(time.monotonic())
            self.threads.add(threading.current_thread().name)
        return fault

    def busiest_second(self, times: list[float] | None = None) -> int:
        """The most calls admitted in any one-second window (what the limit is about)."""
        times = sorted(self.admitted_at if times is None else times)
        best = lo = 0
        for hi, t in enumerate(times):
            while times[lo] <= t - 1.0:
                lo += 1
            best = max(best, hi - lo + 1)
        return best


class Diagnostics:
    """--diagnose: where a charge's time goes.  Wraps the bucket's `acquire` and the run's
    `start_attempt` / `record_result` (timing only) and notes, per charge call the sandbox
    sees, how long after its thread's last token it arrived."""

    def __init__(self, sandbox: CountingSandbox) -> None:
        from mspbill.batch import run
        from mspbill.batch.throttle import TokenBucket

        self.lock = threading.Lock()
        self.tokens: list[float] = []
        self.last_token: dict[int, float] = {}
        self.token_to_call: list[float] = []
        self.durations: dict[str, list[float]] = collections.defaultdict(list)
        acquire = TokenBucket.acquire

        def timed_acquire(bucket: Any, stop: Any = None) -> None:
            acquire(bucket, stop)
            now = time.monotonic()
            with self.lock:
                self.tokens.append(now)
                self.last_token[threading.get_ident()] = now

        TokenBucket.acquire = timed_acquire  # type: ignore[method-assign]
        for name in ("start_attempt", "record_result"):
            setattr(run, name, self._timed(name, getattr(run, name)))
        fault = sandbox._fault

        def noted_fault(operation: str, request_id: str) -> str | None:
            now = time.monotonic()
            with self.lock:
                token = self.last_token.get(threading.get_ident())
            if operation == "charge" and token is not None:
                with self.lock:
                    # The sandbox sleeps half its latency before it admits a call: take it off.
                    self.token_to_call.append(now - token - LATENCY_SECONDS / 2)
            return fault(operation, request_id)

        sandbox._fault = noted_fault  # type: ignore[method-assign]

    def _timed(self, name: str, fn: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                with self.lock:
                    self.durations[name].append(time.perf_counter() - t0)
        return timed

    def summary(self, sandbox: CountingSandbox) -> dict[str, Any]:
        def pct(values: list[float]) -> dict[str, float]:
            v = sorted(values)
            if not v:
                return {}
            return {f"p{q}": v[min(len(v) - 1, int(len(v) * q / 100))] * 1000 for q in (50, 90, 99)} | {
                "max": v[-1] * 1000}
        return {"token_to_call_ms": pct(self.token_to_call),
                "start_attempt_ms": pct(self.durations["start_attempt"]),
                "record_result_ms": pct(self.durations["record_result"]),
                "tokens_busiest_second": sandbox.busiest_second(self.tokens)}


# --- one scenario (in a child process) ---------------------------------------------------


def fresh_copy(scratch: Path) -> tuple[Path, Path]:
    for name in (DB_FILENAME, SANDBOX_LEDGER):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{scratch / name}{suffix}").unlink(missing_ok=True)
            source = Path(f"{OFFICE / name}{suffix}")
            if source.exists():
                shutil.copyfile(source, f"{scratch / name}{suffix}")
    return scratch / DB_FILENAME, scratch / SANDBOX_LEDGER


def check_ledger(db: Any, sandbox: SandboxGateway, month: Month, expected: int) -> dict[str, Any]:
    """The processor's ledger against the local records (the office starts with an empty ledger)."""
    ledger = sandbox.ledger_charges()
    per_invoice = collections.Counter(c.metadata.get("mspbill_invoice_id") for c in ledger)
    ledger_intents = {c.intent_id for c in ledger}
    with db.session() as s:
        payments = list(s.scalars(select(Payment.processor_intent_id).where(Payment.processor_intent_id.is_not(None))))
        attempts = collections.Counter(a.value for a in s.scalars(select(ChargeAttempt.status)))
        paid = s.scalar(select(func.count(Invoice.id)).where(Invoice.period_start == month.first_day,
                                                             Invoice.status == InvoiceStatus.PAID)) or 0
    facts = {
        "ledger_charges": len(ledger),
        "ledger_succeeded": sum(1 for c in ledger if c.status.value == "succeeded"),
        "invoices_charged_twice": sum(1 for n in per_invoice.values() if n > 1),
        "local_payments": len(payments),
        "attempts": dict(attempts),
        "invoices_paid": paid,
    }
    # The two sides agree: each PaymentIntent once on each side, no invoice charged twice, each charge's
    # invoice paid and its attempt succeeded.
    facts["ok"] = (len(ledger) == facts["ledger_succeeded"] == len(per_invoice) == len(payments) == paid
                   == attempts.get(ChargeAttemptStatus.SUCCEEDED.value, 0)
                   and set(payments) == ledger_intents and len(set(payments)) == len(payments))
    facts["all_charged"] = len(payments) == expected
    return facts


def run_scenario(spec: dict[str, Any]) -> dict[str, Any]:
    from mspbill.batch.run import RunOptions, _workers, run_batch
    from mspbill.batch.settings import batch_settings
    from mspbill.batch.throttle import effective_rate, rate_limit

    month = Month.of(dt.date.today())
    kind, limit, explicit = SCENARIOS[spec["name"]]
    with tempfile.TemporaryDirectory(prefix="mspbill-bench-batch-") as tmp:
        scratch = Path(tmp)
        db_path, ledger_path = fresh_copy(scratch)
        db = open_database(f"sqlite:///{db_path}", scratch / "backups")
        sandbox = CountingSandbox(ledger_path, SandboxConfig(latency_seconds=LATENCY_SECONDS,
                                                             rate_limit_per_second=limit))
        out: dict[str, Any] = {"name": spec["name"], "kind": kind, "limit": limit, "explicit": explicit}
        diagnostics = Diagnostics(sandbox) if spec.get("diagnose") else None
        if spec["tracemalloc"]:
            tracemalloc.start()
        if kind == "batch":
            with db.session() as s:
                settings = batch_settings(s)
            rate = explicit or effective_rate(rate_limit(sandbox.mode, settings.rate_limit_test,
                                                         settings.rate_limit_live, sandbox),
                                              settings.rate_margin_percent)
            out |= {"rate": rate, "workers_planned": spec.get("workers") or _workers(rate)}
            marks: dict[str, float] = {}
            marks_lock = threading.Lock()

            def progress(p: Any) -> None:
                now = time.perf_counter()
                with marks_lock:
                    marks.setdefault(p.stage, now)
                    if p.stage == "charging":
                        marks["charging-last"] = now

            t0 = time.perf_counter()
            report = run_batch(db, sandbox, month, backup_dir=scratch / "backups", progress=progress,
                               options=RunOptions(rate_per_second=explicit, workers=spec.get("workers")))
            whole = time.perf_counter() - t0
            charges = report.counts()["succeeded"]
            out |= {"whole_s": whole, "charging_s": marks["charging-last"] - marks["charging"],
                    "invoicing_s": marks["charging"] - marks["invoicing"],
                    "before_invoicing_s": marks["invoicing"] - t0,
                    "after_charging_s": t0 + whole - marks["charging-last"], "issued": report.issued,
                    "counts": report.counts(), "status": report.status.value, "problems": report.problems[:5],
                    "charges": charges, "workers_used": sum(1 for n in sandbox.threads if n.startswith("batch-charge"))}
            expected = report.issued
        else:
            from mspbill.batch.plan import judge_open_invoices
            from mspbill.generation import generate_period
            from mspbill.invoicing import drafts_for_month, issue_invoices
            from mspbill.payments.charges import charge_invoice

            t0 = time.perf_counter()
            with db.write_session() as s, s.begin():
                generate_period(s, month)
                ids = drafts_for_month(s, month)
                issue_invoices(s, ids, dt.date.today())
            with db.session() as s:
                planned, _ = judge_open_invoices(s, sandbox.mode, dt.date.today(), new_invoice_ids=ids)
            invoicing = time.perf_counter() - t0
            sample = planned if spec["full"] else planned[:spec["sample"]]
            t1 = time.perf_counter()
            statuses = collections.Counter(
                charge_invoice(db, sandbox, item.target.invoice_id).status.value  # type: ignore[arg-type]
                for item in sample)
            charging = time.perf_counter() - t1
            per_charge = charging / len(sample)
            out |= {"rate": None, "workers_planned": 1, "workers_used": 1, "issued": len(ids), "invoicing_s": invoicing,
                    "sample": len(sample), "sample_charging_s": charging, "charging_s": per_charge * len(planned),
                    "whole_s": invoicing + per_charge * len(planned), "extrapolated": len(sample) < len(planned),
                    "charges": statuses.get("succeeded", 0), "counts": dict(statuses), "planned": len(planned)}
            expected = len(sample)
        if spec["tracemalloc"]:
            out["traced_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
        out["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out["cpu_s"] = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
        out |= {"calls": dict(sandbox.calls), "http_429": sum(sandbox.rate_limited.values()),
                "busiest_second": sandbox.busiest_second()}
        if diagnostics is not None:
            out["diagnostics"] = diagnostics.summary(sandbox)
        out["ledger"] = check_ledger(db, sandbox, month, expected)
        sandbox.close()
        db.dispose()
    return out


# --- the table ------------------------------------------------------------------------------


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        names = [ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                 if ln.startswith("model name")]
        cpu = names[0] if names else cpu
        mem_kb = next(int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines()
                      if ln.startswith("MemTotal"))
        cpu += f", {mem_kb / 2**20:.0f} GB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    return (f"{os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}, Python "
            f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}")


def print_timing(results: list[dict[str, Any]]) -> None:
    head = (f"{'scenario':<50} {'bucket':>7} {'workers':>7} {'charging':>9} {'gen+issue':>9} {'whole':>8} "
            f"{'charges/s':>9} {'bound':>6} {'x bound':>8} {'x whole':>8} {'429s':>5} {'max/1s':>6} "
            f"{'maxrss':>7} {'charged':>9} {'ledger':>6}")
    print(head)
    print("-" * len(head))
    for r in results:
        n = r.get("planned", r["issued"])
        limit_bound = n / r["limit"]
        label = LABELS[r["name"]]
        if r.get("extrapolated"):
            label += f" (x{n / r['sample']:.0f} from {r['sample']})"
        rate = f"{r['rate']:.1f}/s" if r["rate"] else "-"
        charged = f"{r['charges']}/{r['sample'] if r.get('extrapolated') else n}"
        print(f"{label:<50} {rate:>7} {r['workers_used']:>3}/{r['workers_planned']:<3} {r['charging_s']:>8.1f}s "
              f"{r['invoicing_s']:>8.1f}s {r['whole_s']:>7.1f}s {n / r['charging_s']:>9.1f} {limit_bound:>5.0f}s "
              f"{r['charging_s'] / limit_bound:>7.3f}x {r['whole_s'] / limit_bound:>7.3f}x {r['http_429']:>5} "
              f"{r['busiest_second']:>6} {r['maxrss_mb']:>4.0f} MB {charged:>9} "
              f"{'ok' if r['ledger']['ok'] else 'WRONG':>6}")
    print()
    for r in results:
        led = r["ledger"]
        if r["kind"] == "batch":
            at_bucket = r["issued"] / r["rate"]
            ratio = at_bucket / (r["issued"] / r["limit"])
            extra = (f"; the bucket alone allows no less than {at_bucket:.1f} s ({ratio:.3f}x)"
                     f"; before invoicing {r['before_invoicing_s']:.1f} s, after charging {r['after_charging_s']:.1f} s"
                     f"; run {r['status']}")
            if r["problems"]:
                extra += f"; problems ({len(r['problems'])} shown): {r['problems']}"
        else:
            extra = (f"; the sample of {r['sample']} took {r['sample_charging_s']:.1f} s" if r["extrapolated"]
                     else f"; all {r['sample']} charged one by one")
        if "diagnostics" in r:
            d = r["diagnostics"]
            print(f"{r['name']} diagnostics: tokens in the busiest second {d['tokens_busiest_second']}; " + "; ".join(
                f"{k[:-3]} " + ", ".join(f"{q} {v:.0f}" for q, v in d[k].items()) + " ms"
                for k in ("token_to_call_ms", "start_attempt_ms", "record_result_ms") if d[k]))
        print(f"{r['name']}: {r['counts']}{extra}; process CPU {r['cpu_s']:.1f} s; sandbox calls {r['calls']}; "
              f"ledger: {led['ledger_charges']} charges ({led['ledger_succeeded']} succeeded, "
              f"{led['invoices_charged_twice']} invoices charged twice), {led['local_payments']} local payments with "
              f"the same PaymentIntent ids, {led['invoices_paid']} invoices paid, attempts {led['attempts']}")


def print_memory(results: list[dict[str, Any]]) -> None:
    head = (f"{'scenario (tracemalloc on)':<50} {'traced peak':>11} {'maxrss':>7} {'charging (slowed)':>18} "
            f"{'charged':>9}")
    print(head)
    print("-" * len(head))
    for r in results:
        label = LABELS[r["name"]] + (f" (sample of {r['sample']})" if r.get("extrapolated") else "")
        done = r["sample"] if r.get("extrapolated") else r["issued"]
        charging = r["sample_charging_s"] if r.get("extrapolated") else r["charging_s"]
        print(f"{label:<50} {r['traced_peak_mb']:>8.1f} MB {r['maxrss_mb']:>4.0f} MB {charging:>17.1f}s "
              f"{r['charges']:>5}/{done}")


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    t0 = time.perf_counter()
    child = subprocess.run([sys.executable, __file__, "--one", json.dumps(spec)], check=True,
                           stdout=subprocess.PIPE, text=True)
    line = next(ln for ln in child.stdout.splitlines() if ln.startswith("RESULT "))
    print(f"  {spec['name']}{' (tracemalloc)' if spec['tracemalloc'] else ''}: done in "
          f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)
    result: dict[str, Any] = json.loads(line[len("RESULT "):])
    return result


def names_of(text: str | None, default: list[str]) -> list[str]:
    if text is None:
        return default
    if text in ("", "none"):
        return []
    names = list(SCENARIOS) if text == "all" else text.split(",")
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenario(s) {unknown}; choose from {', '.join(SCENARIOS)}")
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--sample", type=int, default=200, help="invoices charged by the sequential baseline")
    parser.add_argument("--full", action="store_true", help="charge all 2,000 sequentially (~9 minutes)")
    parser.add_argument("--only", help=f"comma-separated scenarios to time (default all): {', '.join(SCENARIOS)}")
    parser.add_argument("--memory", help="scenarios run again under tracemalloc, for its peak ('all', 'none'; "
                                         "default batch-25,batch-100,sequential with a sample of 50)")
    parser.add_argument("--workers", type=int, help="the batch's pool size (default: run.py's own choice)")
    parser.add_argument("--diagnose", action="store_true",
                        help="also time token -> processor call, start_attempt and record_result (ms percentiles)")
    args = parser.parse_args()
    if args.build:
        build()
        return
    if args.one:
        print("RESULT " + json.dumps(run_scenario(json.loads(args.one))))
        return
    timed = names_of(args.only, list(SCENARIOS))
    traced = names_of(args.memory, ["batch-25", "batch-100", "sequential"])
    office()
    print(f"{CLIENTS:,} autopay invoices (one per client, a sandbox Visa each), sandbox latency "
          f"{LATENCY_SECONDS * 1000:.0f} ms a call, its limit enforced by the sandbox (429 above it)")
    print(f"machine: {machine()}")
    timing = [run_child({"name": name, "sample": args.sample, "full": args.full, "tracemalloc": False,
                         "diagnose": args.diagnose, "workers": args.workers}) for name in timed]
    # tracemalloc slows every allocation (about 3x the CPU here): its runs are for memory only.
    memory = [run_child({"name": name, "sample": min(args.sample, 50), "full": False, "tracemalloc": True,
                         "diagnose": False}) for name in traced]
    if timing:
        print()
        print_timing(timing)
        print("\nbound = 2,000 / the sandbox's limit (80 s at 25/s, 20 s at 100/s); x bound = charging phase / bound "
              "(aim: 1.15x); x whole = whole run (backup, generate + issue, charging, mail) / bound; bucket = the "
              "token bucket's rate; workers = threads that called the sandbox / the pool's size; max/1s = most calls "
              "the sandbox admitted in any one-second window; maxrss = the child process's peak RSS; ledger ok = "
              "the sandbox's ledger and the local records agree (one succeeded charge per charged invoice, each "
              "one local payment with its PaymentIntent id, no invoice twice).")
    if memory:
        print()
        print_memory(memory)
        print("\ntraced peak = tracemalloc's peak during the run (Python allocations); maxrss = the child's peak RSS. "
              "tracemalloc slows the run, so its times are not the figures above.")


if __name__ == "__main__":
    main()
