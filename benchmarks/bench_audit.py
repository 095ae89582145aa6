"""The audit trail viewer over 200,000 entries.

Builds, in a temporary SQLite file (bulk inserts, a fixed random seed), 2,000
clients with one invoice each and 200,000 audit entries spread over the last
two years: the mix of actions a busy office writes (invoices generated, issued
and e-mailed, payments recorded and charged, agreements and clients changed,
settings now and then) by five users, some with a details diff.

It then times, each in a fresh read-only session, best of N and median:

  page         search_audit, first page of 500, no filter (the whole trail)
  page-30d     the viewer's default: the last 30 days
  area         the Payments area over the whole trail (derived from the action)
  user+text    one user and a word in the summary
  deep         the page at offset 100,000
  actors       the distinct users (the viewer's combo)
  csv-30d      export_audit_csv of the last 30 days
  csv-all      export_audit_csv of all 200,000 (one run; with the file size)

    python benchmarks/bench_audit.py [--entries N] [--runs N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import peak_rss_mb
from sqlalchemy import insert

from mspbill.audit import AuditFilter, actors, export_audit_csv, search_audit
from mspbill.db.models import AuditEntry, Client, Invoice, InvoiceKind, InvoiceStatus
from mspbill.db.schema import open_database

ACTIONS = [  # (action, entity_type, weight)
    ("invoice.generated", "invoice", 20), ("invoice.issued", "invoice", 20), ("invoice.emailed", "invoice", 18),
    ("invoice.email_queued", "invoice", 10), ("payment.recorded", "invoice", 8), ("payment.charged", "invoice", 8),
    ("invoice.charge_started", "invoice", 8), ("payment.declined", "invoice", 1), ("invoice.voided", "invoice", 1),
    ("client.updated", "client", 3), ("agreement.updated", "agreement", 2), ("settings.mail", "settings", 0.05),
    ("company.updated", "company", 0.05), ("batch.finished", "batch_run", 0.1),
]
USERS = ["jane", "bob", "carol", "dave", "office-pc"]


def build(folder: Path, entries: int) -> Any:
    db = open_database(f"sqlite:///{folder / 'audit.sqlite3'}", folder / "backups")
    rng = random.Random(8)
    now = dt.datetime.now(dt.UTC)
    with db.write_session() as s, s.begin():
        s.execute(insert(Client), [{"id": i, "legal_name": f"Client {i:04d}", "currency": "USD"}
                                   for i in range(1, 2001)])
        s.execute(insert(Invoice), [{
            "id": i, "client_id": i, "kind": InvoiceKind.INVOICE, "status": InvoiceStatus.OPEN,
            "number": f"INV-{i:06d}", "currency": "USD", "title": "Managed IT", "subtotal_cents": 10000,
            "tax_cents": 0, "total_cents": 10000, "paid_cents": 0, "credited_cents": 0, "credit_applied_cents": 0,
            "tax_rate_percent": 0} for i in range(1, 2001)])
        weights = [w for _a, _t, w in ACTIONS]
        rows = []
        for n in range(entries):
            action, entity_type, _w = rng.choices(ACTIONS, weights)[0]
            at = now - dt.timedelta(seconds=rng.randrange(0, 730 * 86400))
            details = ({"changes": {"payment_terms_days": [30, 15], "notes": ["", "Calls first"]}}
                       if entity_type == "client" else {"payment_id": n} if action.startswith("payment.") else None)
            rows.append({"at": at, "actor": rng.choice(USERS), "action": action, "entity_type": entity_type,
                         "entity_id": rng.randrange(1, 2001), "details": details,
                         "summary": f"{action} on INV-{rng.randrange(1, 2001):06d} for Client {rng.randrange(2000):04d}"
                                    f" — {rng.choice(['check', 'Visa 4242', 'ACH', 'wire'])}"})
            if len(rows) == 20_000:
                s.execute(insert(AuditEntry), rows)
                rows = []
        if rows:
            s.execute(insert(AuditEntry), rows)
    return db


def timed(db: Any, fn: Callable[[Any], Any], runs: int) -> tuple[float, float, Any]:
    times, result = [], None
    for _ in range(runs):
        with db.session() as s:
            t0 = time.perf_counter()
            result = fn(s)
            times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="build the database in this folder and keep it")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-audit-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        db = build(folder, args.entries)
        print(f"built {args.entries:,} audit entries in {time.perf_counter() - t0:.1f} s")
        today = dt.date.today()
        last_30 = AuditFilter(from_day=today - dt.timedelta(days=29), to_day=today)
        cases: list[tuple[str, Callable[[Any], Any]]] = [
            ("page", lambda s: search_audit(s, AuditFilter(), limit=500)),
            ("page-30d", lambda s: search_audit(s, last_30, limit=500)),
            ("area", lambda s: search_audit(s, AuditFilter(area="payments"), limit=500)),
            ("user+text", lambda s: search_audit(s, AuditFilter(actor="jane", text="visa"), limit=500)),
            ("deep", lambda s: search_audit(s, AuditFilter(), limit=500, offset=100_000)),
            ("actors", actors),
            ("csv-30d", lambda s: export_audit_csv(s, last_30, folder / "last30.csv")),
        ]
        print(f"{'case':<10} {'best':>9} {'median':>9}  result")
        for name, fn in cases:
            best, median, result = timed(db, fn, args.runs)
            what = (f"{result.range_text} (total {result.total:,})" if hasattr(result, "range_text")
                    else f"{len(result)} users" if isinstance(result, list) else f"{result:,} rows")
            print(f"{name:<10} {best * 1000:8.1f}ms {median * 1000:8.1f}ms  {what}")
        best, _median, count = timed(db, lambda s: export_audit_csv(s, AuditFilter(), folder / "all.csv"), 1)
        size = (folder / "all.csv").stat().st_size / 1e6
        print(f"{'csv-all':<10} {best * 1000:8.1f}ms {'':>9}  {count:,} rows, {size:.1f} MB")
        print(f"peak RSS {peak_rss_mb():.0f} MB")
        db.dispose()
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
