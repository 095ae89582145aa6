"""The accountant exports for a busy month: 2,000 clients, one invoice each with 5 lines (10,000 lines;
every third client on autopay with its discount line), 1,500 payments, 1 % of clients in EUR.

Builds the office in a temporary SQLite file (bulk inserts, fixed seed), then times, best of N and median:

  load    mspbill.exports.load_export_data for the month (one read-only session)
  qbo, quickbooks, xero, csv   build_export of each format from the loaded data

and prints each file's size, the peak memory of one load + all four builds under tracemalloc, and the
process's peak resident memory.

    python benchmarks/bench_exports.py [--clients N] [--runs N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from _common import peak_rss_mb
from sqlalchemy import insert

from mspbill.company import CompanyDraft, save_company
from mspbill.db.models import (
    QUANTITY_SCALE,
    Client,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
    LineKind,
    Payment,
    PaymentMethod,
)
from mspbill.db.schema import open_database
from mspbill.exports import build_export, load_export_data
from mspbill.generation import compute_totals

START, END = dt.date(2026, 10, 1), dt.date(2026, 10, 31)
LINES = [("Managed seats", 4500, True), ("Servers", 25000, True), ("Microsoft 365", 2200, False),
         ("Cloud backup (per TB)", 9500, True), ("Security training", 350, True)]


def build(db_url: str, backups: Path, clients: int) -> None:
    rng = random.Random(8)
    db = open_database(db_url, backups)
    with db.write_session() as s, s.begin():
        save_company(s, CompanyDraft(name="Bench IT", country="United States"))
    with db.write_session() as s, s.begin():
        s.execute(insert(Client), [
            {"id": n, "legal_name": f"Client {n:05d}, Inc.", "billing_emails": f"ap{n}@example.com",
             "currency": "EUR" if n % 100 == 0 else "USD", "tax_rate_percent": Decimal("8.25") if n % 2 else Decimal(0),
             "payment_terms_days": 0 if n % 3 == 0 else 30, "autopay": n % 3 == 0} for n in range(1, clients + 1)])
        invoices, lines, payments = [], [], []
        line_id = 1
        for n in range(1, clients + 1):
            rows = []
            for position, (description, price, taxable) in enumerate(LINES):
                qty = Decimal(rng.randint(1, 40)) + (Decimal("0.5") if position == 3 else 0)
                amount = int((qty * price).quantize(Decimal(1)))
                rows.append((position, "service", description, int(qty * QUANTITY_SCALE), price, amount, taxable))
            if n % 3 == 0:
                cut = -round(sum(r[5] for r in rows if r[6]) * 0.05)
                rows.append((len(rows), "discount", "Autopay discount (5%)", QUANTITY_SCALE, cut, cut, True))
            rate = Decimal("8.25") if n % 2 else Decimal(0)
            totals = compute_totals(((r[5], r[6]) for r in rows), rate)
            paid = totals.total_cents if n % 4 else 0
            invoices.append({"id": n, "kind": InvoiceKind.INVOICE, "status": InvoiceStatus.PAID if paid
                             else InvoiceStatus.OPEN, "number": f"INV-{n:06d}", "number_seq": n, "client_id": n,
                             "currency": "EUR" if n % 100 == 0 else "USD", "title": "Managed IT — October 2026",
                             "issue_date": START, "due_date": START if n % 3 == 0 else START + dt.timedelta(days=30),
                             "tax_rate_percent": rate, "subtotal_cents": totals.subtotal_cents,
                             "tax_cents": totals.tax_cents, "total_cents": totals.total_cents,
                             "credit_applied_cents": 0, "paid_cents": paid, "credited_cents": 0})
            for position, kind, description, qty_e4, price, amount, taxable in rows:
                lines.append({"id": line_id, "invoice_id": n, "position": position, "kind": LineKind(kind),
                              "description": description, "quantity_e4": qty_e4, "unit_price_cents": price,
                              "amount_cents": amount, "taxable": taxable})
                line_id += 1
            if paid:
                payments.append({"client_id": n, "invoice_id": n, "method": PaymentMethod.CHECK, "amount_cents": paid,
                                 "applied_cents": paid, "currency": "EUR" if n % 100 == 0 else "USD",
                                 "received_on": START + dt.timedelta(days=rng.randint(0, 30)),
                                 "reference": str(1000 + n)})
        s.execute(insert(Invoice), invoices)
        s.execute(insert(InvoiceLine), lines)
        s.execute(insert(Payment), payments)
    db.dispose()


def timed(func: Callable[[], Any], runs: int) -> tuple[float, float, Any]:
    times, result = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        t0 = time.perf_counter()
        build(url, Path(tmp) / "backups", args.clients)
        print(f"office: {args.clients:,} clients, one invoice each, built in {time.perf_counter() - t0:.1f} s")
        db = open_database(url, Path(tmp) / "backups")

        def load() -> Any:
            with db.session() as s:
                return load_export_data(s, START, END)

        best, median, data = timed(load, args.runs)
        lines = sum(len(i.lines) for i in data.invoices)
        print(f"load       best {best * 1000:7.1f} ms  median {median * 1000:7.1f} ms  "
              f"({len(data.invoices):,} invoices, {lines:,} lines, {len(data.payments):,} payments)")
        for key in ("qbo", "quickbooks", "xero", "csv"):
            best, median, result = timed(lambda key=key: build_export(data, key), args.runs)  # type: ignore[misc]
            print(f"{key:10} best {best * 1000:7.1f} ms  median {median * 1000:7.1f} ms  "
                  f"file {len(result.data) / 1024:,.0f} KiB")
        tracemalloc.start()
        data = load()
        for key in ("qbo", "quickbooks", "xero", "csv"):
            build_export(data, key)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"peak traced memory (load + four builds): {peak / 2**20:.1f} MiB; peak RSS {peak_rss_mb():.0f} MiB")
        db.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
