"""A/R aging and the dashboard's key figures for 2,000 clients and 50,000 invoices.

Builds, in a temporary SQLite file (bulk inserts, a fixed random seed), an
office of 2,000 clients (a third on autopay with a card on file, a few of those
expired or declined for good; 1 % billed in EUR), one monthly agreement each,
and 25 monthly invoices per client (50,000, issued on the 1st of each of the
last 25 months) with their payments: autopay clients pay on the issue day,
most others within their terms, a fifth of them late and a tenth very late,
some partially and some never, so every aging bucket holds invoices; a few
autopay charges were declined (hard and soft), a few invoices credited.
Invoice lines are not inserted: neither report reads them.

It then times, as of today, each in a fresh read-only session:

  aging   mspbill.reports.aging_report.aging_report (or, before that module
          existed, mspbill.aging.open_items + totals_by_client)
  kpis    mspbill.reports.kpis.compute_kpis (everything on the dashboard)

best of 5 and median, a breakdown of compute_kpis's parts (one run), peak
memory of one run of each under tracemalloc (separate runs: tracemalloc slows
the code), and the process's peak resident memory.

    python benchmarks/bench_reports.py [--runs N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
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
from sqlalchemy import func, insert, select

from mspbill.company import CompanyDraft, save_company
from mspbill.db.engine import Database
from mspbill.db.models import (
    QUANTITY_SCALE,
    Agreement,
    AgreementLine,
    ChargeAttempt,
    ChargeAttemptStatus,
    Client,
    ClientCredit,
    CreditReason,
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    Payment,
    PaymentMethod,
    ProcessorMode,
    SavedPaymentMethod,
)
from mspbill.db.schema import open_database
from mspbill.payments.processor import PaymentSettingsDraft, save_settings

CLIENTS = 2_000
MONTHS = 25                      # invoices per client: 50,000 in all
AS_OF = dt.date.today()
SEED = 7


def _month_first(day: dt.date, back: int) -> dt.date:
    index = day.year * 12 + day.month - 1 - back
    return dt.date(index // 12, index % 12 + 1, 1)


def build(db: Database) -> dict[str, int]:
    """The office, inserted in bulk; returns what it holds."""
    rng = random.Random(SEED)
    now = dt.datetime.now(dt.UTC)
    with db.write_session() as s, s.begin():
        save_company(s, CompanyDraft(name="Benchmark IT", email="billing@benchmark-it.example"))
        save_settings(s, PaymentSettingsDraft("sandbox"))

    clients: list[dict[str, Any]] = []
    profiles: dict[int, str] = {}
    for i in range(1, CLIENTS + 1):
        autopay = i % 3 == 0
        currency = "EUR" if i % 100 == 7 else "USD"
        terms = rng.choice((15, 30, 30, 30, 45))
        clients.append({"id": i, "legal_name": f"Client {i:05d} LLC", "billing_emails": f"ap@c{i:05d}.example",
                        "currency": currency, "payment_terms_days": terms, "autopay": autopay,
                        "tax_rate_percent": Decimal(0)})
        if autopay:
            profiles[i] = "autopay"
        else:
            r = rng.random()
            profiles[i] = "good" if r < 0.7 else "slow" if r < 0.9 else "bad"
    start = _month_first(AS_OF, MONTHS + 1)
    agreements = [{"id": c["id"], "client_id": c["id"], "name": "Managed IT services", "start_date": start,
                   "frequency": "monthly" if c["id"] % 10 else "quarterly"} for c in clients]
    lines = []
    for c in clients:
        seats = 4 + c["id"] % 47
        lines.append({"agreement_id": c["id"], "series": 1, "position": 0, "description": "Managed seats",
                      "quantity_e4": seats * QUANTITY_SCALE, "unit_price_cents": 9_500, "taxable": True})
        lines.append({"agreement_id": c["id"], "series": 2, "position": 1, "description": "Backup",
                      "quantity_e4": QUANTITY_SCALE, "unit_price_cents": 4_900 + 100 * (c["id"] % 100),
                      "taxable": True})

    methods: list[dict[str, Any]] = []
    hard_declined: set[int] = set()
    soft_declined: set[int] = set()
    for c in clients:
        if not c["autopay"]:
            continue
        cid = c["id"]
        expired = cid % 90 == 0
        hard = cid % 150 == 3
        (hard_declined if hard else soft_declined if cid % 150 == 6 else set()).add(cid)
        methods.append({"client_id": cid, "mode": ProcessorMode.SANDBOX, "customer_id": f"cus_sbx_{cid}",
                        "method_id": f"pm_sbx_{cid}", "kind": "card", "brand": "visa", "last4": "4242",
                        "exp_month": 12, "exp_year": AS_OF.year - 1 if expired else AS_OF.year + 3,
                        "is_default": True, "hard_declined_at": now if hard else None,
                        "hard_decline_reason": "the card was reported lost" if hard else "", "source": "benchmark"})

    invoices: list[dict[str, Any]] = []
    payments: list[dict[str, Any]] = []
    attempts: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    credits: list[dict[str, Any]] = []
    seq = 0
    note_seq = 0
    next_id = 1
    for back in range(MONTHS - 1, -1, -1):
        issued = _month_first(AS_OF, back)
        for c in clients:
            cid, profile = c["id"], profiles[c["id"]]
            seq += 1
            inv_id = next_id
            next_id += 1
            total = 50_000 + rng.randrange(0, 450_000)
            due = issued if c["autopay"] else issued + dt.timedelta(days=c["payment_terms_days"])
            paid = 0
            if profile == "autopay":
                declined = (cid in hard_declined and back < 2) or (cid in soft_declined and back == 0)
                if declined:
                    hard = cid in hard_declined
                    attempts.append({"invoice_id": inv_id, "client_id": cid, "mode": ProcessorMode.SANDBOX,
                                     "idempotency_key": f"charge-{inv_id}", "amount_cents": total,
                                     "currency": c["currency"], "customer_id": f"cus_sbx_{cid}",
                                     "method_id": f"pm_sbx_{cid}", "method_kind": "card",
                                     "method_label": "Visa ending 4242", "status": ChargeAttemptStatus.DECLINED,
                                     "decline_code": "lost_card" if hard else "insufficient_funds",
                                     "decline_hard": hard, "message": "Your card was declined.", "origin": "batch",
                                     "created_at": dt.datetime.combine(issued, dt.time(15), dt.UTC)})
                else:
                    payments.append(_payment(cid, inv_id, total, total, c["currency"], issued, PaymentMethod.CARD))
                    paid = total
            else:
                delay = {"good": rng.randrange(2, 29), "slow": rng.randrange(30, 76),
                         "bad": rng.randrange(45, 160)}[profile]
                paid_on = issued + dt.timedelta(days=delay)
                never = profile == "bad" and rng.random() < 0.08
                if paid_on <= AS_OF and not never:
                    payments.append(_payment(cid, inv_id, total, total, c["currency"], paid_on, PaymentMethod.CHECK))
                    paid = total
                elif rng.random() < 0.3 and issued + dt.timedelta(days=10) <= AS_OF:
                    part = total // 3
                    payments.append(_payment(cid, inv_id, part, part, c["currency"], issued + dt.timedelta(days=10),
                                             PaymentMethod.CHECK))
                    paid = part
            credited = 0
            if paid < total and rng.random() < 0.03:
                # A credit note for a tenth of it, issued a week after the invoice.
                credited = min(total // 10, total - paid)
                note_seq += 1
                note_id = next_id
                next_id += 1
                notes.append({"id": note_id, "kind": InvoiceKind.CREDIT_NOTE, "status": InvoiceStatus.PAID,
                              "number": f"CN-{note_seq:06d}", "number_seq": note_seq, "client_id": cid,
                              "currency": c["currency"], "title": "Credit note", "credit_for_invoice_id": inv_id,
                              "issue_date": min(issued + dt.timedelta(days=7), AS_OF),
                              "due_date": min(issued + dt.timedelta(days=7), AS_OF), "subtotal_cents": credited,
                              "total_cents": credited, "credit_applied_cents": 0, "paid_cents": 0,
                              "credited_cents": 0, "issued_at": now, "closed_at": now})
            status = InvoiceStatus.PAID if paid + credited >= total else InvoiceStatus.OPEN
            invoices.append({"id": inv_id, "kind": InvoiceKind.INVOICE, "status": status, "number": f"INV-{seq:06d}",
                             "number_seq": seq, "client_id": cid, "currency": c["currency"],
                             "title": f"Managed IT services {issued:%B %Y}", "agreement_id": cid,
                             "period_start": issued, "period_end": _month_first(issued, -1) - dt.timedelta(days=1),
                             "issue_date": issued, "due_date": due, "subtotal_cents": total, "total_cents": total,
                             "credit_applied_cents": 0, "paid_cents": paid, "credited_cents": credited,
                             "issued_at": now, "closed_at": now if status is InvoiceStatus.PAID else None})
    # A few overpayments left as client credit.
    for cid in range(5, CLIENTS + 1, 97):
        credits.append({"client_id": cid, "amount_cents": 2_500, "reason": CreditReason.NEGATIVE_INVOICE,
                        "memo": "benchmark credit"})

    with db.write_session() as s, s.begin():
        s.execute(insert(Client), clients)
        s.execute(insert(Agreement), agreements)
        s.execute(insert(AgreementLine), lines)
        s.execute(insert(SavedPaymentMethod), methods)
        s.execute(insert(Invoice), invoices)
        s.execute(insert(Invoice), notes)
        s.execute(insert(Payment), payments)
        s.execute(insert(ChargeAttempt), attempts)
        s.execute(insert(ClientCredit), credits)
    # No ANALYZE: the app never runs it, so the planner works without statistics here too.
    return {"clients": len(clients), "invoices": len(invoices), "credit_notes": len(notes),
            "payments": len(payments), "declined_attempts": len(attempts), "autopay_methods": len(methods)}


def _payment(cid: int, inv_id: int, amount: int, applied: int, currency: str, day: dt.date,
             method: PaymentMethod) -> dict[str, Any]:
    return {"client_id": cid, "invoice_id": inv_id, "method": method, "amount_cents": amount,
            "applied_cents": applied, "currency": currency, "received_on": day}


# --- timing -----------------------------------------------------------------------------


def _aging(db: Database) -> Callable[[], object]:
    try:
        from mspbill.reports.aging_report import aging_report
    except ImportError:
        from mspbill.aging import open_items, totals_by_client

        def fallback() -> object:
            with db.session() as s:
                return totals_by_client(open_items(s, AS_OF))

        fallback.__name__ = "open_items + totals_by_client"
        return fallback

    def run() -> object:
        with db.session() as s:
            return aging_report(s, AS_OF, today=AS_OF)

    run.__name__ = "aging_report"
    return run


def _kpis(db: Database) -> Callable[[], object]:
    from mspbill.reports.kpis import compute_kpis

    def run() -> object:
        with db.session() as s:
            return compute_kpis(s, AS_OF, today=AS_OF)

    run.__name__ = "compute_kpis"
    return run


def _times(fn: Callable[[], object], runs: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU seconds of each run (SQLite works in this process, so CPU time is the
    work itself, less sensitive than the wall clock to other programs on a shared machine)."""
    wall, cpu = [], []
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return wall, cpu


def _traced_peak_mb(fn: Callable[[], object]) -> float:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def _breakdown(db: Database) -> list[tuple[str, float]]:
    """compute_kpis's main parts, each timed on its own (behaviour() repeats open_items and the charges)."""
    from mspbill import aging
    from mspbill.clients import monthly_value_by_client
    from mspbill.reports import kpis

    steps: list[tuple[str, Callable[[Any], object]]] = [
        ("open_items(as_of)", lambda s: aging.open_items(s, AS_OF)),
        ("open_items(as_of - 90)", lambda s: aging.open_items(s, AS_OF - dt.timedelta(days=90))),
        ("credit_as_of", lambda s: aging.credit_as_of(s, AS_OF)),
        ("monthly_value_by_client", lambda s: monthly_value_by_client(s, AS_OF)),
        ("paid invoices (behaviour)", lambda s: kpis._paid_invoices(s, AS_OF)),
        ("cash by month", lambda s: kpis._cash_by_month(s, AS_OF, "USD", [])),
        ("behaviour() alone", lambda s: kpis.behaviour(s, AS_OF, today=AS_OF)),
    ]
    out = []
    for label, step in steps:
        best = float("inf")
        for _ in range(3):
            with db.session() as s:
                t0 = time.perf_counter()
                step(s)
                best = min(best, time.perf_counter() - t0)
        out.append((label, best))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="build in this folder and keep it")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="mspbill-bench-reports-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "reports.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    db = open_database(f"sqlite:///{path}", folder / "backups")
    t0 = time.perf_counter()
    counts = build(db)
    print(f"built in {time.perf_counter() - t0:.1f} s: " + ", ".join(f"{v:,} {k}" for k, v in counts.items())
          + f" ({path.stat().st_size / 2**20:.1f} MB)")
    with db.session() as s:
        open_count = s.scalar(select(func.count(Invoice.id)).where(Invoice.status == InvoiceStatus.OPEN))
    print(f"as of {AS_OF.isoformat()}; {open_count:,} invoices open; Python {sys.version.split()[0]}")
    print()

    results = []
    for fn in (_aging(db), _kpis(db)):
        fn()  # warm the page cache and the statement caches, as a screen's second open would be
        wall, cpu = _times(fn, args.runs)
        results.append((fn.__name__, min(wall), statistics.median(wall), min(cpu), statistics.median(cpu)))
    print(f"{'':24}{'wall: best of ' + str(args.runs):>18}{'median':>10}{'CPU: best':>13}{'median':>10}"
          "   aim: under 1 s each")
    for name, best, median, cpu_best, cpu_median in results:
        print(f"{name:24}{best * 1000:>15.0f} ms{median * 1000:>7.0f} ms{cpu_best * 1000:>10.0f} ms"
              f"{cpu_median * 1000:>7.0f} ms")
    print(f"(load average when done: {', '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{os.cpu_count()} CPUs)")
    print()
    print("compute_kpis, its parts (each on its own, best of 3):")
    for label, seconds in _breakdown(db):
        print(f"  {label:32}{seconds * 1000:>7.0f} ms")
    print()
    k = _kpis(db)()
    from mspbill.reports.kpis import Kpis

    assert isinstance(k, Kpis)
    for figure in k.figures:
        print(f"  {figure.label:34}{figure.text}")
    print(f"  at-risk clients: {len(k.at_risk):,}; awaiting action: {len(k.awaiting_action):,}; other currencies: "
          f"{dict(k.other_currencies)}")
    print()
    for fn in (_aging(db), _kpis(db)):
        print(f"peak traced memory, {fn.__name__:20}{_traced_peak_mb(fn):>7.1f} MB")
    print(f"peak resident memory of the process  {peak_rss_mb():>7.1f} MB")
    db.dispose()
    if args.keep is None:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
