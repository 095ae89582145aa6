"""Golden files for the accountant exports, checked column by column, then byte for byte.

The office (build_office) is small and fixed; its October 2026 holds each case an export must get right:
a taxable and a non-taxable line, the autopay incentive's negative line, a fractional quantity (2.5 TB,
3.5 hours), a prorated line (2 × 310.00 for 15/31 days = 300.00: the books get 1 × 300.00), a partial and a full payment, a card payment partly refunded, a credit note, a voided invoice,
a payment in the range for an invoice issued before it, an invoice after the range, a draft, a client in
EUR, a client whose name Windows-1252 cannot hold ("Łódź Café"), one named like a spreadsheet formula
(=HYPERLINK("http://x","y")) and one whose name has a comma and quotes (Smith, Jones & "Partners" LLC).

Each format's output is parsed (CSV, or IIF: tab-separated rows under their "!" header rows) and
compared with the golden file cell by cell, by header name, so a failure reads like
"qbo.csv row 3, ItemAmount: expected '450.00', got '45.00'"; then the bytes are compared (BOM, line
endings, quoting, encoding).  A ZIP is compared entry by entry (names and order, then each entry as above).

Regenerating after an intended change of a format:

    MSPBILL_REGEN_GOLDEN=1 /tmp/venv/bin/python -m pytest -q tests/test_exports_golden.py

writes tests/golden/exports/ anew (the tests then pass); read `git diff tests/golden/exports` before
committing it -- the diff is the change of format the accountant will see.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import zipfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from billing_helpers import issue_ids, make_client, setup_office

from mspbill.db.engine import Database
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
    ProcessorMode,
    Refund,
    RefundStatus,
)
from mspbill.db.schema import open_database
from mspbill.exports import ExportOptions, build_export, load_export_data
from mspbill.generation import compute_totals
from mspbill.invoicing import create_credit_note, void_invoice
from mspbill.money import line_amount_cents
from mspbill.payments.manual import record_payment

GOLDEN = Path(__file__).parent / "golden" / "exports"
REGEN = os.environ.get("MSPBILL_REGEN_GOLDEN") == "1"
START, END = dt.date(2026, 10, 1), dt.date(2026, 10, 31)
TODAY = dt.date(2026, 11, 21)

FORMULA_NAME = '=HYPERLINK("http://x","y")'
COMMA_NAME = 'Smith, Jones & "Partners" LLC'
UNICODE_NAME = "Łódź Café Sp. z o.o."


# --- the office ----------------------------------------------------------------------------------

Line = tuple[str, str, int, str, bool] | tuple[str, str, int, str, bool, int, dt.date]


def _draft(db: Database, client_id: int, title: str, lines: list[Line], memo: str = "") -> int:
    """A draft with exactly these (kind, quantity, unit price cents, description, taxable) lines; a prorated
    line adds its amount and its first day: (..., amount cents, service start)."""
    with db.write_session() as s, s.begin():
        client = s.get(Client, client_id)
        assert client is not None
        inv = Invoice(kind=InvoiceKind.INVOICE, status=InvoiceStatus.DRAFT, client_id=client_id,
                      currency=client.currency, title=title, memo=memo, tax_rate_percent=client.tax_rate_percent,
                      credit_applied_cents=0, paid_cents=0, credited_cents=0)
        rows = []
        for n, (kind, qty, price, description, taxable, *prorated) in enumerate(lines):
            amount = prorated[0] if prorated else line_amount_cents(Decimal(qty), price)
            first = prorated[1] if prorated else START
            rows.append(InvoiceLine(position=n, kind=LineKind(kind), description=description,
                                    quantity_e4=int(Decimal(qty) * QUANTITY_SCALE), unit_price_cents=price,
                                    amount_cents=amount, taxable=taxable,
                                    service_start=first if kind == "service" else None,
                                    service_end=END if kind == "service" else None))
        inv.lines = rows
        totals = compute_totals(((ln.amount_cents, ln.taxable) for ln in rows), inv.tax_rate_percent)
        inv.subtotal_cents, inv.tax_cents, inv.total_cents = totals.subtotal_cents, totals.tax_cents, totals.total_cents
        s.add(inv)
        s.flush()
        return inv.id


def _pay(db: Database, invoice_id: int, amount: str, method: str, day: dt.date, reference: str = "") -> None:
    with db.write_session() as s, s.begin():
        record_payment(s, invoice_id, amount, method, reference=reference, received_on=day, today=TODAY)


def build_office(db: Database) -> dict[str, int]:
    """The fixed office of the golden files; the ids of what the tests look at."""
    setup_office(db, name="Acme IT", country="United States")
    alpha = make_client(db, "Alpha Dental", tax_rate="8.875", autopay=True, payment_terms_days="0",
                        billing_emails="ap@alpha.example", address_line1="1 Main St", city="Springfield",
                        region="IL", postal_code="62701", country="United States")
    lodz = make_client(db, UNICODE_NAME, billing_emails="biuro@lodz.example", city="Łódź", country="Poland")
    formula = make_client(db, FORMULA_NAME, payment_terms_days="15", billing_emails="ap@formula.example")
    smith = make_client(db, COMMA_NAME, tax_rate="6.25", billing_emails="billing@smith.example",
                        address_line1="200 Elm St, Suite 4", city="Albany", region="NY", postal_code="12207",
                        country="United States")
    berlin = make_client(db, "Berlin Bau GmbH", currency="EUR", tax_rate="19", billing_emails="rechnung@berlin.example",
                         city="Berlin", country="Germany")

    # September: issued before the range, paid inside it.
    september = _draft(db, lodz, "Managed IT — September 2026", [("service", "1", 50000, "Managed IT", True)])
    issue_ids(db, [september], dt.date(2026, 9, 30))
    # 1 October: the month's invoices.
    alpha_oct = _draft(db, alpha, "Managed IT — October 2026", [
        ("service", "10", 4500, "Managed seats", True),
        ("service", "2.5", 9500, "Cloud backup (per TB)", True),
        ("item", "1", 2000, "Domain renewal", False),
        ("discount", "1", -3438, "Autopay discount (5%)", True)])
    lodz_oct = _draft(db, lodz, "Managed IT — October 2026", [("service", "1", 120000, "Managed IT, Łódź office", True)],
                      memo="PO 2026/10\nThank you")
    # Prorated (started 17 October): 2 × 310.00 × 15/31 days = 300.00, not 2 × 310.00.
    formula_oct = _draft(db, formula, "Managed IT — October 2026", [
        ("service", "2", 31000, "Managed IT (17–31 Oct, 15/31 days)", True, 30000, dt.date(2026, 10, 17))])
    smith_oct = _draft(db, smith, "Consulting — October 2026", [
        ("item", "3.5", 15000, "Consulting, on-site", True),
        ("item", "1", 6000, "Travel", False)])
    issue_ids(db, [alpha_oct, lodz_oct, formula_oct, smith_oct], dt.date(2026, 10, 1))
    # 15 October: one-off work.
    smith_fw = _draft(db, smith, "Firewall replacement", [("item", "1", 80000, "Firewall replacement", True)])
    formula_call = _draft(db, formula, "Emergency call-out", [("item", "1", 25000, "Emergency call-out", True)])
    berlin_oct = _draft(db, berlin, "Managed IT — October 2026", [("service", "5", 4000, "Managed seats", True)])
    issue_ids(db, [smith_fw, formula_call, berlin_oct], dt.date(2026, 10, 15))
    # After the range, and a draft: neither is exported.
    alpha_nov = _draft(db, alpha, "Managed IT — November 2026", [("service", "10", 4500, "Managed seats", True)])
    issue_ids(db, [alpha_nov], dt.date(2026, 11, 2))
    _draft(db, formula, "Managed IT — November 2026", [("service", "1", 30000, "Managed IT", True)])

    _pay(db, september, "500.00", "check", dt.date(2026, 10, 5), "1001")
    _pay(db, lodz_oct, "400.00", "check", dt.date(2026, 10, 10), "1042")          # partial
    with db.session() as s:
        smith_total = s.get(Invoice, smith_oct).total_cents  # type: ignore[union-attr]
        berlin_total = s.get(Invoice, berlin_oct).total_cents  # type: ignore[union-attr]
    _pay(db, smith_oct, f"{smith_total / 100:.2f}", "wire", dt.date(2026, 10, 15), "W-77")  # in full
    _pay(db, berlin_oct, f"{berlin_total / 100:.2f}", "wire", dt.date(2026, 10, 25), "SEPA 9")
    with db.write_session() as s, s.begin():
        # Alpha's autopay charge, and part of it given back.
        inv = s.get(Invoice, alpha_oct)
        assert inv is not None
        card = Payment(client_id=alpha, invoice_id=alpha_oct, method=PaymentMethod.CARD, amount_cents=inv.total_cents,
                       applied_cents=inv.total_cents, currency="USD", received_on=dt.date(2026, 10, 1),
                       processor_intent_id="pi_golden_alpha_oct")
        s.add(card)
        inv.paid_cents, inv.status = inv.total_cents, InvoiceStatus.PAID
        s.flush()
        s.add(Refund(payment_id=card.id, invoice_id=alpha_oct, client_id=alpha, mode=ProcessorMode.SANDBOX,
                     amount_cents=2000, currency="USD", idempotency_key="golden-refund-1", refund_id="re_golden_1",
                     status=RefundStatus.SUCCEEDED, reason="Domain not renewed", refunded_on=dt.date(2026, 10, 20)))
        create_credit_note(s, smith_fw, "Goodwill: late delivery", "100.00", issue_date=dt.date(2026, 10, 20))
        void_invoice(s, formula_call, "Issued in error")
    return {"alpha": alpha, "lodz": lodz, "formula": formula, "smith": smith, "berlin": berlin,
            "alpha_oct": alpha_oct, "formula_call": formula_call, "smith_fw": smith_fw, "september": september}


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    folder = tmp_path_factory.mktemp("exports")
    db = open_database(f"sqlite:///{folder / 'office.sqlite3'}", folder / "backups")
    build_office(db)
    yield db
    db.dispose()


def export_bytes(db: Database, key: str, options: ExportOptions | None = None,
                 start: dt.date = START, end: dt.date = END) -> bytes:
    with db.session() as s:
        data = load_export_data(s, start, end)
    return build_export(data, key, options).data


# --- comparing, column by column ------------------------------------------------------------------

def parse_csv(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def parse_iif(data: bytes) -> list[list[str]]:
    """Tab-separated rows; a cell with a comma or a quote is quoted, inner quotes doubled (as a spreadsheet saves)."""
    return [row for row in csv.reader(io.StringIO(data.decode("cp1252"), newline=""), delimiter="\t") if row]


def _diff_csv(name: str, expected: list[list[str]], actual: list[list[str]]) -> list[str]:
    problems = []
    if expected[:1] != actual[:1]:
        problems.append(f"{name} headers: expected {expected[:1]}, got {actual[:1]}")
        return problems
    headers = expected[0]
    for n, (want, got) in enumerate(zip(expected[1:], actual[1:], strict=False), start=1):
        for column, (w, g) in enumerate(zip(want, got, strict=False)):
            if w != g:
                problems.append(f"{name} row {n}, {headers[column]}: expected {w!r}, got {g!r}")
        if len(want) != len(got):
            problems.append(f"{name} row {n}: expected {len(want)} cells, got {len(got)}")
    if len(expected) != len(actual):
        problems.append(f"{name}: expected {len(expected) - 1} rows, got {len(actual) - 1}")
    return problems


def _diff_iif(name: str, expected: list[list[str]], actual: list[list[str]]) -> list[str]:
    """Rows compared under the header of their keyword (TRNS under !TRNS, SPL under !SPL)."""
    headers = {row[0][1:]: row for row in expected if row[0].startswith("!")}
    problems = []
    for n, (want, got) in enumerate(zip(expected, actual, strict=False), start=1):
        names = headers.get(want[0], want)
        for column, (w, g) in enumerate(zip(want, got, strict=False)):
            if w != g:
                label = names[column] if column < len(names) else f"column {column + 1}"
                problems.append(f"{name} line {n} ({want[0]}), {label}: expected {w!r}, got {g!r}")
        if len(want) != len(got):
            problems.append(f"{name} line {n}: expected {len(want)} cells, got {len(got)}")
    if len(expected) != len(actual):
        problems.append(f"{name}: expected {len(expected)} lines, got {len(actual)}")
    return problems


def check_golden(name: str, actual: bytes) -> None:
    """Compare `actual` with tests/golden/exports/NAME (or write it there with MSPBILL_REGEN_GOLDEN=1)."""
    path = GOLDEN / name
    if REGEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(actual)
        return
    assert path.exists(), f"{path} is missing: run with MSPBILL_REGEN_GOLDEN=1 to write it"
    expected = path.read_bytes()
    if name.endswith(".csv"):
        problems = _diff_csv(name, parse_csv(expected), parse_csv(actual))
    elif name.endswith(".iif"):
        problems = _diff_iif(name, parse_iif(expected), parse_iif(actual))
    else:
        problems = [] if expected == actual else [f"{name} differs:\n{expected.decode()!s}\n---\n{actual.decode()!s}"]
    assert not problems, "\n".join(problems[:40])
    # Every cell matched; the bytes catch the rest (BOM, CRLF, quoting, encoding).
    assert actual == expected, f"{name}: the cells match but the bytes differ (encoding, quoting or line endings)"


def check_golden_zip(folder: str, data: bytes, names: list[str]) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.namelist() == names
        for info in archive.infolist():
            assert info.date_time == (2000, 1, 1, 0, 0, 0)
            check_golden(f"{folder}/{info.filename}", archive.read(info))


# --- the golden files --------------------------------------------------------------------------------

def test_qbo_matches_its_golden_file(office: Database) -> None:
    check_golden("qbo.csv", export_bytes(office, "qbo"))


def test_iif_matches_its_golden_file(office: Database) -> None:
    check_golden("quickbooks.iif", export_bytes(office, "quickbooks"))


def test_xero_matches_its_golden_files(office: Database) -> None:
    check_golden_zip("xero", export_bytes(office, "xero"),
                     ["invoices.csv", "credit-notes.csv", "payments-USD.csv", "payments-EUR.csv", "README.txt"])


def test_plain_csv_matches_its_golden_files(office: Database) -> None:
    check_golden_zip("csv", export_bytes(office, "csv"), ["invoices.csv", "lines.csv", "payments.csv", "README.txt"])


def test_the_same_range_twice_gives_the_same_bytes(office: Database) -> None:
    for key in ("qbo", "quickbooks", "xero", "csv"):
        assert export_bytes(office, key) == export_bytes(office, key), key
