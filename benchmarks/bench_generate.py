"""Month-end invoicing for 5,000 agreements: preview, generate, issue.

An office that has never invoiced runs its first month: every active
agreement is due (monthly ones for the month, quarterly and annual ones for
their period), which is the most a single run creates.  Each run works on a
fresh copy of the database file and times, each in its own transaction as the
app and the CLI do them:

  preview   plan_period in a read-only session (what `--dry-run` shows)
  generate  generate_period and commit (it plans again, then writes the drafts)
  issue     issue_month and commit (numbers, due dates, audit entries)

    python benchmarks/bench_generate.py [AGREEMENTS] [RUNS]
"""

from __future__ import annotations

import datetime as dt
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import CACHE, peak_rss_mb
from sqlalchemy import func, select

from mspbill.db.models import Agreement, AgreementStatus, Invoice
from mspbill.db.schema import open_database
from mspbill.generation import generate_period, plan_period
from mspbill.invoicing import issue_month
from mspbill.paths import DB_FILENAME
from mspbill.periods import Month, parse_period

AGREEMENTS_PER_CLIENT = 1.97  # a little under what the demo office averages


def office_for(agreements: int) -> tuple[Path, Month, int]:
    """A database file with at least `agreements` active agreements and no invoices (made once, then reused).

    Returns the file, the month its first run bills and how many agreements it really has.
    """
    folder = CACHE / f"generate-{agreements}"
    marker = folder / ".complete"
    if not marker.exists():
        # Built in a child process so that this one's peak RSS is the runs' alone.
        subprocess.run([sys.executable, __file__, "--build", str(agreements)], check=True)
    month, active = marker.read_text().split()
    return folder / DB_FILENAME, parse_period(month), int(active)


def build(agreements: int) -> None:
    from mspbill.context import open_context
    from mspbill.demo import create_demo_office

    folder = CACHE / f"generate-{agreements}"
    shutil.rmtree(folder, ignore_errors=True)
    t0 = time.perf_counter()
    ctx = open_context(str(folder))
    clients = int(agreements / AGREEMENTS_PER_CLIENT) + 1
    with ctx.db.write_session() as session, session.begin():
        create_demo_office(session, clients=clients, history=False)
    with ctx.db.session() as session:
        active = session.scalar(select(func.count(Agreement.id)).where(Agreement.status == AgreementStatus.ACTIVE))
    ctx.close()
    if (active or 0) < agreements:
        raise SystemExit(f"{clients} demo clients made only {active} agreements; lower AGREEMENTS_PER_CLIENT")
    # The demo's agreements started before this month: its first run bills them all.
    (folder / ".complete").write_text(f"{Month.of(dt.date.today())} {active}")
    print(f"(made an office of {clients} clients, {active} agreements, in {time.perf_counter() - t0:.1f} s)")


def one_run(base: Path, month: Month, scratch: Path) -> dict[str, float | int]:
    path = scratch / "run.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(base, path)
    db = open_database(f"sqlite:///{path}", scratch / "backups")
    try:
        with db.session() as session:
            t0 = time.perf_counter()
            plan = plan_period(session, month)
            preview_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        with db.write_session() as session, session.begin():
            created = generate_period(session, month).created
        generate_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        with db.write_session() as session, session.begin():
            issued = len(issue_month(session, month, month.first_day))
        issue_s = time.perf_counter() - t0
        with db.session() as session:
            stored = session.scalar(select(func.count()).select_from(Invoice)) or 0
        assert created == len(plan.invoices) == issued == stored, (created, len(plan.invoices), issued, stored)
    finally:
        db.dispose()
    return {"preview": preview_s, "generate": generate_s, "issue": issue_s, "invoices": created,
            "left_out": len(plan.left_out)}


def main() -> None:
    if sys.argv[1:2] == ["--build"]:
        build(int(sys.argv[2]))
        return
    agreements = int(sys.argv[1]) if len(sys.argv) > 1 else 5_000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    base, month, active = office_for(agreements)
    with tempfile.TemporaryDirectory(prefix="mspbill-bench-") as tmp:
        one_run(base, month, Path(tmp))  # warm the file cache and the statement caches
        results = [one_run(base, month, Path(tmp)) for _ in range(runs)]
    invoices = int(results[0]["invoices"])
    med = {k: statistics.median(float(r[k]) for r in results) for k in ("preview", "generate", "issue")}
    worst = {k: max(float(r[k]) for r in results) for k in med}
    both = statistics.median(float(r["generate"]) + float(r["issue"]) for r in results)
    print(f"month {month}: {active:,} active agreements, {invoices:,} invoices, "
          f"{results[0]['left_out']:,} left out; {runs} runs on fresh copies")
    for key, label in (("preview", "preview (plan_period)"), ("generate", "generate_period + commit"),
                       ("issue", "issue_month + commit")):
        print(f"  {label:<26} median {med[key]:.2f} s, worst {worst[key]:.2f} s, "
              f"{invoices / med[key]:,.0f} invoices/s")
    print(f"  {'generate + issue':<26} median {both:.2f} s, {invoices / both:,.0f} invoices/s")
    print(f"peak RSS: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
