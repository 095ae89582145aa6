"""`mspbill db copy`: a 2,000-client demo office moved from its SQLite file onto PostgreSQL.

Starts a throw-away PostgreSQL server (tests/pg_server.py: initdb + pg_ctl in a temporary folder, fsync
off), makes (once, cached under bench-data/) the demo office of `mspbill demo --clients 2000`, and times
mspbill.db.copy.copy_database into a fresh empty database: the whole copy, and its phases as the progress
callback sees them (creating the tables, copying the rows, checking and committing).  Prints rows, seconds,
rows/s, the process's peak resident memory, and the Python heap's peak under tracemalloc (a separate run:
tracemalloc slows the code down).  Then the way back: the server's copy into a new SQLite file.

    python benchmarks/bench_db_copy.py [--clients N] [--runs N]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from _common import demo_office, peak_rss_mb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mspbill.context import open_context
from mspbill.db.copy import CopyReport, copy_database
from mspbill.db.engine import Database
from mspbill.db.moves import reclaim_database
from tests.pg_server import start_server, why_no_server


class Phases:
    """Seconds spent in each phase, from the progress callback's texts."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.marks: list[tuple[float, str]] = []
        self.calls = 0

    def __call__(self, done: int, total: int, text: str) -> None:
        self.calls += 1
        phase = ("tables" if text.startswith("Creating") else "rows" if text.startswith("Copying")
                 else "check" if text.startswith("Checking") else "read" if text.startswith("Reading") else "end")
        if not self.marks or self.marks[-1][1] != phase:
            self.marks.append((time.perf_counter(), phase))

    def split(self, end: float) -> dict[str, float]:
        out: dict[str, float] = {}
        marks = [*self.marks, (end, "")]
        for (t, phase), (t_next, _) in itertools.pairwise(marks):
            out[phase] = out.get(phase, 0.0) + t_next - t
        return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    reason = why_no_server()
    if reason:
        print(f"skipped: {reason}")
        return 0
    folder = demo_office(args.clients)
    ctx = open_context(str(folder))
    server = start_server()
    try:
        print(f"source: {ctx.db.describe()} ({Path(ctx.db.describe()).stat().st_size / 1e6:.1f} MB)")
        report: CopyReport | None = None
        for run in range(args.runs):
            phases = Phases()
            url = server.url(server.new_database(template=None))
            t0 = time.perf_counter()
            report = copy_database(ctx.db, url, phases)
            seconds = time.perf_counter() - t0
            reclaim_database(ctx.db)  # the copy marked the office as moved; the next run copies it again
            split = phases.split(time.perf_counter())
            print(f"run {run + 1}: {report.rows:,} rows in {len(report.tables)} tables, {seconds:.2f} s, "
                  f"{report.rows / seconds:,.0f} rows/s; phases: "
                  + ", ".join(f"{k} {v:.2f} s" for k, v in split.items() if k != "end")
                  + f"; {phases.calls} progress calls")
        assert report is not None and report.matches
        biggest = sorted(report.tables, key=lambda t: -t.target_rows)[:5]
        print("largest tables: " + ", ".join(f"{t.table} {t.target_rows:,}" for t in biggest))
        print(f"peak resident memory (process): {peak_rss_mb():.0f} MB")

        url = server.url(server.new_database(template=None))
        tracemalloc.start()
        copy_database(ctx.db, url)
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        reclaim_database(ctx.db)
        print(f"peak Python heap during one copy (tracemalloc): {peak / 1e6:.1f} MB")

        # The way back: the server's data into a new SQLite file.
        server_db = Database(url)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            back = copy_database(server_db, f"sqlite:///{Path(tmp) / 'back.sqlite3'}")
            seconds = time.perf_counter() - t0
        server_db.dispose()
        print(f"back to a new SQLite file: {back.rows:,} rows in {seconds:.2f} s, {back.rows / seconds:,.0f} rows/s")
    finally:
        server.destroy()
        ctx.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
