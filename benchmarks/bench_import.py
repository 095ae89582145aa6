"""CSV import of 10,000 clients and then 10,000 agreement lines, into a fresh SQLite file.

Generates (fixed seed) a PSA-style clients file — names with accents and commas, several
billing e-mails, contacts, addresses, "Net 30" terms, tax rates with "%", notes with
quoted line breaks — and an agreements file of 10,000 lines (5,000 agreements of 2 lines,
prices like "$1,250.00"), then times each stage as the app runs it:

  read     mspbill.imports.reading.read_csv_file (decode, separator, csv, line numbers)
  guess    mspbill.imports.mapping.guess_mapping
  plan     the preview (plan_import in a read-only session): every row validated
  commit   run_import in one write transaction (plans again, then writes and audits)

and the peak Python memory of each stage under tracemalloc (a separate run: tracemalloc
slows the code), plus the process's peak resident memory.

    python benchmarks/bench_import.py [--rows N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import shutil
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import peak_rss_mb

from mspbill.db.schema import open_database
from mspbill.imports import plan_import, run_import
from mspbill.imports.mapping import guess_mapping
from mspbill.imports.reading import read_csv_file

FIRST = ["Alder", "Birch", "Cedar", "Müller", "Østergaard", "Café", "Summit", "Harbor", "Pine", "Zürich"]
SECOND = ["Dental", "Logistics", "Law Group", "Winery", "Präzision", "Roasters", "Veterinary", "Architects"]
SUFFIX = ["Inc", "LLC", "GmbH", "Ltd", "& Sons, Inc.", "SARL"]


def client_rows(n: int, rng: random.Random) -> list[list[str]]:
    rows = []
    for i in range(n):
        name = f"{rng.choice(FIRST)} {rng.choice(SECOND)} {i:05d} {rng.choice(SUFFIX)}"
        domain = f"client{i:05d}.example"
        emails = f"ap@{domain}" + (f"; billing@{domain}" if i % 3 == 0 else "")
        notes = "Gate code 1234\nAsk for reception" if i % 10 == 0 else ""
        rows.append([name, emails, f"Contact {i}", f"contact@{domain}", f"(503) 555-{i % 10000:04d}",
                     f"{i} Main St", "Suite 100" if i % 4 == 0 else "", "Portland", "OR", f"97{i % 1000:03d}",
                     "USA", rng.choice(["Net 30", "Net 15", "Due on receipt", "45"]),
                     rng.choice(["0", "8.25%", "7.5", "0%"]), rng.choice(["yes", "no"]), notes])
    return rows


CLIENT_HEADER = ["Company Name", "Billing Email", "Primary Contact", "Contact Email", "Phone", "Address 1",
                 "Address 2", "City", "State", "Zip", "Country", "Terms", "Tax Rate", "Autopay", "Notes"]
AGREEMENT_HEADER = ["Company", "Agreement", "Frequency", "Start Date", "Product", "Qty", "Unit Price", "Taxable"]


def agreement_rows(clients: list[list[str]], lines: int, rng: random.Random) -> list[list[str]]:
    rows = []
    for i in range(lines // 2):
        client = clients[i % len(clients)][0]
        freq = rng.choice(["Monthly", "Monthly", "Quarterly", "Annual"])
        rows.append([client, "Managed IT", freq, "2026-01-01", "Managed workstations",
                     str(rng.randint(1, 80)), f"${rng.randint(30, 1500):,}.00", "yes"])
        rows.append([client, "Managed IT", "", "", "Backup (TB)", f"{rng.randint(1, 40)},5", "12.50", "no"])
    return rows


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes(buffer.getvalue().encode("utf-8-sig"))


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0


def peak_mb(fn: Callable[[], Any]) -> float:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 1024 / 1024
    finally:
        tracemalloc.stop()


def run(kind: str, path: Path, folder: Path, label: str, *, measure_memory: bool) -> None:
    """Time read, guess, plan and commit of `path` into the database in `folder`."""
    db = open_database(f"sqlite:///{folder / 'bench.sqlite3'}", folder / "backups")
    try:
        table, t_read = timed(lambda: read_csv_file(path))
        mapping, t_guess = timed(lambda: guess_mapping(kind, table.headers, table))

        def plan() -> Any:
            with db.session() as s:
                return plan_import(s, kind, table, mapping)

        preview, t_plan = timed(plan)
        assert preview.ok, preview.error_sentences()[:5]

        def commit() -> Any:
            with db.write_session() as s, s.begin():
                return run_import(s, kind, table, mapping)

        result, t_commit = timed(commit)
        size = path.stat().st_size / 1024 / 1024
        print(f"{label}: {len(table.records):,} rows ({size:.1f} MB) -> {result.summary()}")
        print(f"  read {t_read:6.2f} s   guess {t_guess * 1000:5.1f} ms   plan {t_plan:6.2f} s   "
              f"commit {t_commit:6.2f} s   (per row: plan {t_plan / len(table.records) * 1e6:.0f} µs, "
              f"commit {t_commit / len(table.records) * 1e6:.0f} µs)")
        if measure_memory:
            m_read = peak_mb(lambda: read_csv_file(path))
            m_plan = peak_mb(plan)
            print(f"  peak traced memory: read {m_read:.1f} MB, plan {m_plan:.1f} MB")
    finally:
        db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--keep", metavar="DIR", help="keep the files and database in DIR")
    args = parser.parse_args()
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="mspbill-bench-import-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        rng = random.Random(8)
        clients = client_rows(args.rows, rng)
        clients_csv, agreements_csv = folder / "clients.csv", folder / "agreements.csv"
        write_csv(clients_csv, CLIENT_HEADER, clients)
        write_csv(agreements_csv, AGREEMENT_HEADER, agreement_rows(clients, args.rows, rng))
        run("clients", clients_csv, folder, "clients", measure_memory=True)
        run("agreements", agreements_csv, folder, "agreement lines", measure_memory=True)
        print(f"process peak RSS {peak_rss_mb():.0f} MB")
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
