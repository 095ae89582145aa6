"""Invoice PDFs: 1,000 typical invoices (3–8 lines), against a plain ReportLab page.

Builds an office on a temporary SQLite file (company with a logo, 200 clients,
1,000 issued invoices of 3–8 lines, a third partly paid), then times, in this
one process:

  read      invoice_document for each invoice (one short read-only session)
  render    render_invoice for each snapshot (the layout and the PDF bytes)
  baseline  a plain one-page ReportLab document with the same fonts and a
            small table, written the same number of times

and prints total seconds, ms per invoice, the render/baseline ratio (aim:
within 3×) and the peak resident memory.

    python benchmarks/bench_pdf.py [INVOICES] [--profile]
"""

from __future__ import annotations

import cProfile
import datetime as dt
import io
import pstats
import random
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from _common import ROOT, peak_rss_mb
from reportlab.lib.pagesizes import LETTER
from reportlab.lib.styles import ParagraphStyle
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from mspbill.clients import ClientDraft, create_client
from mspbill.company import CompanyDraft, save_company
from mspbill.db.models import (
    QUANTITY_SCALE,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
    LineKind,
    Payment,
    PaymentMethod,
)
from mspbill.db.schema import open_database
from mspbill.generation import compute_totals
from mspbill.invoicing import issue_invoices
from mspbill.money import line_amount_cents
from mspbill.pdf.fonts import BOLD, REGULAR, make_canvas, markup, register_fonts
from mspbill.pdf.invoice import invoice_document, render_invoice

CLIENTS = 200
ISSUE_DAY = dt.date.today()
SERVICES = ["Managed workstation", "Managed server", "Microsoft 365 Business Premium", "Cloud backup (per TB)",
            "Endpoint detection and response", "Firewall management", "After-hours support block",
            "Domain and DNS hosting", "Security awareness training"]
NAMES = ["Zürich Dental GmbH", "Łódź IT Sp. z o.o.", "株式会社テスト", "Cascade Dental", "Harbor Freight Law LLP",
         "Northside Veterinary Clinic", "Ελληνική Πληροφορική", "Maple & Birch Accounting"]


def build_office(folder: Path, invoices: int) -> list[int]:
    """A database with `invoices` issued invoices; returns their ids."""
    rng = random.Random(4)
    db = open_database(f"sqlite:///{folder / 'bench.sqlite3'}", folder / "backups")
    logo = (ROOT / "resources" / "demo-logo.png").read_bytes()
    ids: list[int] = []
    with db.write_session() as s, s.begin():
        save_company(s, CompanyDraft(
            name="Acme IT Services LLC", address_line1="120 Harbor Street", address_line2="Suite 400",
            city="Portland", region="OR", postal_code="97204", country="United States",
            email="billing@acme-it.example", phone="+1 503 555 0100", tax_id="93-1234567",
            payment_instructions="ACH or wire: First Bank, routing 123000123, account 987654321\n"
                                 "Checks payable to Acme IT Services LLC"), logo_png=logo)
        clients = [create_client(s, ClientDraft(
            legal_name=f"{NAMES[i % len(NAMES)]} {i}", billing_emails=f"ap{i}@client.example",
            address_line1=f"{i} Main Street", city="Springfield", region="IL", postal_code="62701",
            tax_rate=rng.choice(["0", "8.875", "6.25"]), autopay=i % 3 == 0)) for i in range(CLIENTS)]
        for n in range(invoices):
            client = clients[n % CLIENTS]
            inv = Invoice(kind=InvoiceKind.INVOICE, status=InvoiceStatus.DRAFT, client_id=client.id,
                          currency=client.currency, title="Managed IT services",
                          tax_rate_percent=client.tax_rate_percent, period_start=ISSUE_DAY.replace(day=1),
                          period_end=ISSUE_DAY.replace(day=28), credit_applied_cents=0, paid_cents=0,
                          credited_cents=0)
            lines = []
            for pos in range(rng.randint(3, 8)):
                qty = Decimal(rng.choice(["1", "2", "5", "12", "1.5", "25"]))
                price = rng.choice([1500, 4500, 8900, 12000, 22000])
                lines.append(InvoiceLine(position=pos, kind=LineKind.SERVICE, description=rng.choice(SERVICES),
                                         quantity_e4=int(qty * QUANTITY_SCALE), unit_price_cents=price,
                                         amount_cents=line_amount_cents(qty, price), taxable=True))
            inv.lines = lines
            totals = compute_totals(((ln.amount_cents, ln.taxable) for ln in lines), inv.tax_rate_percent)
            inv.subtotal_cents, inv.tax_cents, inv.total_cents = (totals.subtotal_cents, totals.tax_cents,
                                                                  totals.total_cents)
            s.add(inv)
        s.flush()
        ids = list(s.scalars(Invoice.__table__.select().with_only_columns(Invoice.id).order_by(Invoice.id)))
        issue_invoices(s, ids, ISSUE_DAY)
        for iid in ids[::3]:
            inv = s.get(Invoice, iid)
            part = inv.total_cents // 2
            s.add(Payment(client_id=inv.client_id, invoice_id=iid, method=PaymentMethod.CHECK, amount_cents=part,
                          applied_cents=part, currency=inv.currency, received_on=ISSUE_DAY, reference="1043"))
            inv.paid_cents = part
    db.dispose()
    return ids


def plain_page() -> bytes:
    """The yardstick: one page, the same fonts, a heading, two paragraphs and a 5-row table."""
    register_fonts()
    body = ParagraphStyle("b", fontName=REGULAR, fontSize=9.5, leading=13)
    head = ParagraphStyle("h", fontName=BOLD, fontSize=20, leading=24)
    rows = [["Description", "Qty", "Unit price", "Amount"]] + [
        [Paragraph(markup(f"Managed workstation — Zürich {i}"), body), "3", "$45.00", "$135.00"] for i in range(5)]
    table = Table(rows, colWidths=[260, 60, 80, 80])
    table.setStyle(TableStyle([("FONTNAME", (0, 0), (-1, -1), REGULAR), ("LINEBELOW", (0, 0), (-1, -1), 0.25, "grey")]))
    out = io.BytesIO()
    SimpleDocTemplate(out, pagesize=LETTER, title="Plain").build(
        [Paragraph(markup("Invoice INV-000001", bold=True), head), Spacer(0, 12),
         Paragraph(markup("Acme IT Services LLC, 120 Harbor Street, Portland OR"), body),
         Paragraph(markup("Bill to: 株式会社テスト"), body), Spacer(0, 12), table], canvasmaker=make_canvas)
    return out.getvalue()


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    count = int(args[0]) if args else 1_000
    profile = "--profile" in sys.argv
    with tempfile.TemporaryDirectory(prefix="mspbill-bench-pdf-") as tmp:
        t0 = time.perf_counter()
        ids = build_office(Path(tmp), count)
        print(f"(built an office of {CLIENTS} clients and {len(ids):,} invoices in {time.perf_counter() - t0:.1f} s)")
        db = open_database(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}", Path(tmp) / "backups")
        try:
            render_invoice(_read(db, ids[:1])[0])  # warm up: fonts registered, logo decoded once
            plain_page()
            t0 = time.perf_counter()
            docs = _read(db, ids)
            read_s = time.perf_counter() - t0
        finally:
            db.dispose()
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    t0 = time.perf_counter()
    sizes = [len(render_invoice(doc)) for doc in docs]
    render_s = time.perf_counter() - t0
    if profiler:
        profiler.disable()
    t0 = time.perf_counter()
    for _ in range(len(docs)):
        plain_page()
    plain_s = time.perf_counter() - t0
    n = len(docs)
    print(f"{n:,} invoices (3–8 lines, logo, a third partly paid), one process:")
    print(f"  read (invoice_document)   {read_s:6.2f} s  {read_s / n * 1000:6.2f} ms/invoice")
    print(f"  render (render_invoice)   {render_s:6.2f} s  {render_s / n * 1000:6.2f} ms/invoice"
          f"  (mean PDF {sum(sizes) / n / 1024:.0f} KB)")
    print(f"  read + render             {read_s + render_s:6.2f} s  {(read_s + render_s) / n * 1000:6.2f} ms/invoice")
    print(f"  plain ReportLab page      {plain_s:6.2f} s  {plain_s / n * 1000:6.2f} ms/page")
    print(f"  render / plain page       {render_s / plain_s:6.2f}×   (aim: within 3×)")
    print(f"peak RSS: {peak_rss_mb():.0f} MB")
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)


def _read(db, ids: list[int]):  # type: ignore[no-untyped-def]
    with db.session() as session:
        return [invoice_document(session, iid) for iid in ids]


if __name__ == "__main__":
    main()
