"""What the books formats must get right beyond the golden office: a line's quantity × unit price is the
amount billed (prorated lines and worked-out adjustments included), and every client is its own QuickBooks
Desktop customer (names Windows-1252 cannot hold get a stand-in; two clients that would be one are refused).

The office is small: October holds a prorated line (4 × 35.00 for 184/365 days = 70.58), an adjustment whose
amount is prorated (3 × 45.00 for 22/31 days = 95.81), one that is 1 × its amount, the autopay incentive, a
credit note, and clients named in Japanese; November two clients whose names differ by a letter Windows-1252
lacks (Ł/L)."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections import defaultdict
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal

import pytest
from billing_helpers import issue_ids, make_client, setup_office
from test_exports_golden import _draft, _pay, parse_csv, parse_iif

from mspbill.db.engine import Database
from mspbill.db.schema import open_database
from mspbill.exports import ExportData, ExportResult, build_export, load_export_data
from mspbill.invoicing import create_credit_note
from mspbill.validation import ValidationError

OCT = (dt.date(2026, 10, 1), dt.date(2026, 10, 31))
NOV = (dt.date(2026, 11, 1), dt.date(2026, 11, 21))
SAKURA, MIDORI = "株式会社さくらデザイン", "株式会社みどりデザイン"   # the same length: "???????????" both


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Database, dict[str, int]]]:
    folder = tmp_path_factory.mktemp("books-office")
    db = open_database(f"sqlite:///{folder / 'office.sqlite3'}", folder / "backups")
    setup_office(db, name="Acme IT", country="United States")
    ids = {"harbor": make_client(db, "Harbor Clinic", tax_rate="8.875"),
           "sakura": make_client(db, SAKURA), "midori": make_client(db, MIDORI),
           "latin": make_client(db, "Sakura Design 株式会社"),
           "lukasz": make_client(db, "Łukasz Serwis"), "lukasz2": make_client(db, "Lukasz Serwis")}
    harbor = _draft(db, ids["harbor"], "Managed IT — October 2026", [
        ("service", "10", 4500, "Managed seats", True),
        ("service", "4", 3500, "Domain registration and DNS hosting (1 Jul–31 Dec, 184/365 days)", True, 7058,
         dt.date(2026, 7, 1)),
        ("adjustment", "3", 4500, "+3 Managed seats 10–31 Oct, 22/31 days", True, 9581, dt.date(2026, 10, 10)),
        ("adjustment", "1", -1250, "Backup: 1 × $50.00 → 1 × $37.50 1–31 Oct, 31/31 days", True),
        ("discount", "1", -2000, "Autopay discount (5%)", True)])
    others = [_draft(db, ids[key], "Website — October 2026", [("item", "1", 50000 + n, "Website hosting", False)])
              for n, key in enumerate(("sakura", "midori", "latin"))]
    issue_ids(db, [harbor, *others], dt.date(2026, 10, 1))
    _pay(db, others[0], "500.00", "check", dt.date(2026, 10, 12), "771")
    with db.write_session() as s, s.begin():
        create_credit_note(s, harbor, "Outage credit", "25.00", issue_date=dt.date(2026, 10, 20))
    november = [_draft(db, ids[key], "Repair", [("item", "1", 9000, "Repair", False)]) for key in ("lukasz", "lukasz2")]
    issue_ids(db, november, dt.date(2026, 11, 2))
    ids["harbor_oct"] = harbor
    yield db, ids
    db.dispose()


def _data(db: Database, days: tuple[dt.date, dt.date] = OCT) -> ExportData:
    with db.session() as s:
        return load_export_data(s, *days)


def _export(db: Database, key: str, days: tuple[dt.date, dt.date] = OCT) -> ExportResult:
    return build_export(_data(db, days), key)


def _cents(value: Decimal) -> int:
    return int((value * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _by_invoice(rows: list[list[str]], number: str, quantity: str, price: str, sign: int = 1) -> dict[str, int]:
    """{invoice number: Σ round(quantity × unit price)} of a CSV's rows, as the books work it out."""
    head = rows[0]
    sums: dict[str, int] = defaultdict(int)
    for row in rows[1:]:
        qty, unit = Decimal(row[head.index(quantity)]), Decimal(row[head.index(price)])
        sums[row[head.index(number)]] += sign * _cents(qty * unit)
    return dict(sums)


def test_the_office_has_lines_whose_amount_is_not_quantity_times_price(office) -> None:  # type: ignore[no-untyped-def]
    db, _ids = office
    odd = [ln for inv in _data(db).invoices for ln in inv.lines if not ln.amount_is_quantity_times_price]
    assert [(ln.kind, ln.amount_cents) for ln in odd] == [("service", 7058), ("adjustment", 9581)]


def test_xero_quantity_times_unit_amount_makes_every_invoice_and_credit_note(office) -> None:  # type: ignore[no-untyped-def]
    db, _ids = office
    data = _data(db)
    with zipfile.ZipFile(io.BytesIO(build_export(data, "xero").data)) as archive:
        invoices = parse_csv(archive.read("invoices.csv"))
        credits = parse_csv(archive.read("credit-notes.csv"))
    worked = _by_invoice(invoices, "*InvoiceNumber", "*Quantity", "*UnitAmount")
    worked.update(_by_invoice(credits, "*InvoiceNumber", "*Quantity", "*UnitAmount", sign=-1))
    assert worked == {inv.number: inv.subtotal_cents for inv in data.invoices}
    assert len(worked) == 5  # four invoices and the credit note
    head = invoices[0]
    prorated = next(r for r in invoices if "184/365" in r[head.index("*Description")])
    assert (prorated[head.index("*Quantity")], prorated[head.index("*UnitAmount")]) == ("1", "70.58")
    assert prorated[head.index("*Description")] == ("Domain registration and DNS hosting (1 Jul–31 Dec, 184/365 days)"
                                                    " (4 × 35.00)")
    # Lines that were quantity × price stay as they were; a text naming its quantity gets nothing added.
    seats = next(r for r in invoices if r[head.index("*Description")] == "Managed seats")
    assert (seats[head.index("*Quantity")], seats[head.index("*UnitAmount")]) == ("10", "45.00")
    assert any(r[head.index("*Description")].startswith("Backup: 1 × $50.00") and r[head.index("*UnitAmount")]
               == "-12.50" for r in invoices)


def test_qbo_item_quantity_times_rate_is_the_item_amount_and_makes_every_invoice(office) -> None:  # type: ignore[no-untyped-def]
    db, _ids = office
    data = _data(db)
    rows = parse_csv(build_export(data, "qbo").data)
    head = rows[0]
    for row in rows[1:]:
        qty, rate = Decimal(row[head.index("ItemQuantity")]), Decimal(row[head.index("ItemRate")])
        assert _cents(qty * rate) == _cents(Decimal(row[head.index("ItemAmount")])), row
    expected = {inv.number: inv.subtotal_cents for inv in data.invoices if not inv.is_credit_note}
    assert _by_invoice(rows, "InvoiceNo", "ItemQuantity", "ItemRate") == expected
    adjustment = next(r for r in rows if r[head.index("ItemDescription")].startswith("'+3 Managed seats"))  # formula-safe
    assert adjustment[head.index("ItemDescription")].endswith("22/31 days (3 × 45.00)")
    assert adjustment[head.index("ItemQuantity")] == "1" and adjustment[head.index("ItemRate")] == "95.81"


def test_iif_quantity_times_price_is_the_amount_of_every_line(office) -> None:  # type: ignore[no-untyped-def]
    db, _ids = office
    rows = parse_iif(_export(db, "quickbooks").data)
    spl = rows[1]
    lines = [r for r in rows if r[0] == "SPL" and r[spl.index("QNTY")]]
    assert len(lines) == 5 + 3 + 1  # Harbor's lines, the other invoices' and the credit note's
    for row in lines:
        qty, price = Decimal(row[spl.index("QNTY")]), Decimal(row[spl.index("PRICE")])
        assert qty * price == Decimal(row[spl.index("AMOUNT")]), row


def test_plain_csv_keeps_the_line_as_billed_and_its_readme_says_amount_may_differ(office) -> None:  # type: ignore[no-untyped-def]
    db, _ids = office
    with zipfile.ZipFile(io.BytesIO(_export(db, "csv").data)) as archive:
        lines = parse_csv(archive.read("lines.csv"))
        readme = archive.read("README.txt").decode()
    prorated = next(r for r in lines if "184/365" in r[4])
    assert prorated[5:8] == ["4", "35.00", "70.58"]
    assert "amount = quantity x unit_price rounded" not in readme
    assert "except on a prorated" in readme and "amount is what was billed" in readme


# --- QuickBooks Desktop names ------------------------------------------------------------------------

def test_names_windows_1252_cannot_hold_get_a_stand_in_each_and_the_summary_lists_them(office) -> None:  # type: ignore[no-untyped-def]
    db, ids = office
    result = _export(db, "quickbooks")
    rows = parse_iif(result.data)
    names = {r[5] for r in rows if r[0] == "TRNS"}
    sakura, midori, latin = (f"Client #{ids['sakura']}", f"Client #{ids['midori']}",
                             f"Sakura Design #{ids['latin']}")
    assert names == {"Harbor Clinic", sakura, midori, latin}
    assert not any("?" in name for name in names)
    payment = next(r for r in rows if r[0] == "TRNS" and r[2] == "PAYMENT")
    assert payment[5] == sakura  # the payment goes to the same customer as the invoice
    notes = "\n".join(result.summary.notes)
    for original, stand_in in ((SAKURA, sakura), (MIDORI, midori), ("Sakura Design 株式会社", latin)):
        assert f"The client “{original}” is “{stand_in}” in the file" in notes
    assert "Rename it in QuickBooks or give the client a Latin name in mspbill." in notes


def test_two_clients_that_would_be_one_quickbooks_customer_are_refused(office) -> None:  # type: ignore[no-untyped-def]
    db, ids = office
    with pytest.raises(ValidationError) as refused:
        _export(db, "quickbooks", NOV)
    [issue] = refused.value.issues
    assert issue.message.startswith(f"The clients “Łukasz Serwis” (#{ids['lukasz']}) and “Lukasz Serwis” "
                                    f"(#{ids['lukasz2']}) would both be the QuickBooks customer “Lukasz Serwis”")
    assert "Rename one of them in mspbill" in issue.message
    # The formats that keep Unicode names are not affected.
    assert _export(db, "xero", NOV).summary.invoice_count == 2
