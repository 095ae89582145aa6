"""Reports → A/R aging in the desktop app, on a small office worked out by hand: the client rows and the
Total against the core's aging_report, the as-of day (before a payment, never in the future), the
drill-down to a client's open invoices, the CSV and PDF exports read back, the statements, and an
office that is owed nothing.

The office (USD company; "today" is AS_OF, passed in, never the wall clock):
  Alpha Dental      terms 0:  A1 $1,000.00 issued 95 days ago (over 90), A2 $200.00 45 days ago (31–60),
                              A3 $300.00 10 days ago (1–30), $100.00 of it paid 5 days ago → $200.00
  Bravo: Logistics/West  terms 30: B1 $500.00 issued 70 days ago, due 40 days ago (31–60),
                              B2 $80.00 issued 3 days ago, not yet due (current)
  Charlie Law       terms 0:  C2 $250.00 issued 65 days ago (61–90); C1 $100.00 paid with $150.00: $50.00 credit
  Échelle Conseil   EUR, terms 0: E1 €400.00 issued 15 days ago (1–30)
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
from pathlib import Path

import pypdf
import pytest
from PySide6.QtCore import Qt

from mspbill.money import format_amount
from mspbill.payments.manual import record_payment
from mspbill.reports.aging_report import CSV_HEADERS, aging_report, client_items
from tests.billing_helpers import issue_ids, make_client, one_time, setup_office
from tests.gui.conftest import wait_idle
from ui import reports_screen
from ui.invoice_dialog import InvoiceDialog
from ui.reports_screen import ReportsScreen, share_text, unique_name
from ui.statement_dialog import StatementDialog

AS_OF = dt.date(2026, 11, 20)
SHOTS = Path("/tmp/shots7")


def ago(days: int) -> dt.date:
    return AS_OF - dt.timedelta(days=days)


def build_office(db) -> dict[str, int]:
    setup_office(db)
    ids = {"alpha": make_client(db, "Alpha Dental", payment_terms_days="0"),
           "bravo": make_client(db, "Bravo: Logistics/West", payment_terms_days="30"),
           "charlie": make_client(db, "Charlie Law", payment_terms_days="0"),
           "echelle": make_client(db, "Échelle Conseil", currency="EUR", payment_terms_days="0")}
    plan = [("A1", "alpha", "1000.00", 95), ("B1", "bravo", "500.00", 70), ("C2", "charlie", "250.00", 65),
            ("A2", "alpha", "200.00", 45), ("C1", "charlie", "100.00", 20), ("E1", "echelle", "400.00", 15),
            ("A3", "alpha", "300.00", 10), ("B2", "bravo", "80.00", 3)]
    for key, client, amount, age in plan:
        ids[key] = one_time(db, ids[client], ("Project work", "1", amount), title=f"Project {key}")
        issue_ids(db, [ids[key]], ago(age))
    with db.write_session() as s, s.begin():
        record_payment(s, ids["A3"], "100.00", "check", received_on=ago(5), today=AS_OF)
        record_payment(s, ids["C1"], "150.00", "check", received_on=ago(10), today=AS_OF, credit_excess=True)
    return ids


@pytest.fixture
def office(app_ctx) -> dict[str, int]:
    return build_office(app_ctx.db)


@pytest.fixture
def screen(app_ctx, ops, qtbot, office):
    return open_screen(ops, qtbot)


def open_screen(ops, qtbot) -> ReportsScreen:
    screen = ReportsScreen(ops, today=lambda: AS_OF)
    qtbot.addWidget(screen)
    screen.resize(1100, 720)
    with qtbot.waitSignal(screen.aging.loaded, timeout=10_000):
        screen.show()
    wait_idle(qtbot, ops)
    return screen


def core_report(app_ctx, as_of: dt.date = AS_OF):
    with app_ctx.db.session() as s:
        return aging_report(s, as_of, today=AS_OF)


def shown_rows(screen: ReportsScreen) -> list[tuple[object, ...]]:
    return [(r.client_id, r.name, r.buckets, r.total_cents, r.credit_cents, r.invoice_count, r.oldest_days)
            for r in screen.aging.model.visible_rows()]


def cell(model, row: int, column: int) -> str:
    return model.data(model.index(row, column))


def shot(widget, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    widget.grab().save(str(SHOTS / f"reports_{name}.png"))


def select(qtbot, screen: ReportsScreen, client_id: int) -> None:
    with qtbot.waitSignal(screen.aging.items_loaded, timeout=10_000):
        assert screen.aging.select_client(client_id)


# --- the table against the core ----------------------------------------------------------------

def test_client_rows_and_totals_are_the_aging_reports(app_ctx, screen, office) -> None:
    tab = screen.aging
    report = core_report(app_ctx)
    usd = report.section("USD")
    assert usd is not None
    # Alpha: A1 100,000 over 90 + A2 20,000 31–60 + A3 30,000 − 10,000 = 20,000 1–30 → 140,000.
    # Bravo: B1 50,000 31–60, B2 8,000 current → 58,000.  Charlie: C2 25,000 61–90, 5,000 credit.
    expected = {office["alpha"]: ((0, 20_000, 20_000, 0, 100_000), 140_000, 0, 3, 95),
                office["bravo"]: ((8_000, 0, 50_000, 0, 0), 58_000, 0, 2, 40),
                office["charlie"]: ((0, 0, 0, 25_000, 0), 25_000, 5_000, 1, 65)}
    assert {r[0]: r[2:] for r in shown_rows(screen)} == expected
    assert sorted(shown_rows(screen)) == sorted(
        (r.client_id, r.client_name, r.buckets, r.total_cents, r.credit_cents, r.invoice_count,
         r.oldest_days_past_due) for r in usd.rows)
    # The pinned Total row: the section's totals, bold, always in sight below the clients.
    total = tab.total_model.visible_rows()
    assert [(t.name, t.buckets, t.total_cents, t.credit_cents, t.invoice_count) for t in total] == [
        ("Total (USD)", (8_000, 20_000, 70_000, 25_000, 100_000), 223_000, 5_000, 6)]
    assert usd.total_cents == 223_000
    assert cell(tab.total_model, 0, 6) == "$2,230.00"
    assert tab.total_model.data(tab.total_model.index(0, 1), Qt.ItemDataRole.FontRole).bold()
    assert tab.footer.isVisible()
    # The cards: the total, each bucket with its share (Decimal, half up), the credit held.
    assert tab.total_card.value.text() == "$2,230.00"
    assert [c.value.text() for c in tab.bucket_cards] == ["$80.00", "$200.00", "$700.00", "$250.00", "$1,000.00"]
    # 70,000 / 223,000 = 31.390…% → 31.4%; 8,000 / 223,000 = 3.587…% → 3.6%
    assert tab.bucket_cards[2].note.text() == "31.4% of the total"
    assert tab.bucket_cards[0].note.text() == "3.6% of the total"
    assert tab.credit_card.value.text() == "$50.00"
    # Money right-aligned; overdue amounts tinted, current ones not.
    alpha = tab.model.find_row(lambda r: r.client_id == office["alpha"])
    align = tab.model.data(tab.model.index(alpha, 6), Qt.ItemDataRole.TextAlignmentRole)
    assert align & Qt.AlignmentFlag.AlignRight
    assert tab.model.data(tab.model.index(alpha, 5), Qt.ItemDataRole.BackgroundRole) is not None
    bravo = tab.model.find_row(lambda r: r.client_id == office["bravo"])
    assert tab.model.data(tab.model.index(bravo, 1), Qt.ItemDataRole.BackgroundRole) is None


def test_sorting_is_by_cents_and_the_filter_keeps_the_total(screen, office, qtbot) -> None:
    tab = screen.aging
    tab.table.sortByColumn(6, Qt.SortOrder.AscendingOrder)
    # By text "$1,400.00" < "$250.00" < "$580.00"; by cents 25,000 < 58,000 < 140,000.
    assert [r.total_cents for r in tab.model.visible_rows()] == [25_000, 58_000, 140_000]
    tab.filter.setText("alpha")
    qtbot.waitUntil(lambda: tab.model.rowCount() == 1, timeout=2_000)
    assert tab.model.visible_rows()[0].client_id == office["alpha"]
    assert tab.total_model.visible_rows()[0].total_cents == 223_000


def test_another_currency_is_shown_on_its_own_never_added(app_ctx, screen, office) -> None:
    tab = screen.aging
    assert tab.currency == "USD" and not tab._currency_group.isHidden()
    assert "EUR" in tab.currency_note.text() and "not added" in tab.currency_note.text()
    assert office["echelle"] not in [r.client_id for r in tab.model.visible_rows()]
    tab.choose_currency("EUR")
    assert [(r.client_id, r.buckets, r.total_cents) for r in tab.model.visible_rows()] == [
        (office["echelle"], (0, 40_000, 0, 0, 0), 40_000)]
    assert tab.total_card.value.text() == "€400.00"
    assert tab.total_model.visible_rows()[0].name == "Total (EUR)"
    shot(screen, "test_eur")
    assert core_report(app_ctx).section("EUR").total_cents == 40_000  # type: ignore[union-attr]


# --- the as-of day ------------------------------------------------------------------------------

def test_an_as_of_day_before_a_payment_shows_the_balance_then(app_ctx, screen, office, qtbot) -> None:
    tab = screen.aging
    with qtbot.waitSignal(tab.loaded, timeout=10_000):
        tab.set_as_of(ago(7))  # A3's $100.00 came 5 days ago
    wait_idle(qtbot, tab.ops)
    rows = {r[0]: r for r in shown_rows(screen)}
    # Seven days earlier: A1 88 days past due (61–90), A2 38 (31–60), A3 3 days and unpaid: $300.00.
    assert rows[office["alpha"]][2:4] == ((0, 30_000, 20_000, 100_000, 0), 150_000)
    before = core_report(app_ctx, ago(7)).section("USD")
    assert before is not None
    assert next(r.total_cents for r in before.rows if r.client_id == office["alpha"]) == 150_000
    assert tab.total_model.visible_rows()[0].total_cents == before.total_cents


def test_a_day_in_the_future_cannot_be_picked(screen) -> None:
    tab = screen.aging
    assert tab.as_of.maximumDate().toPython() == AS_OF
    assert tab.as_of_date() == AS_OF
    tab.as_of.setDate(tab.as_of.date().addDays(1))
    assert tab.as_of_date() == AS_OF
    tab.set_as_of(AS_OF + dt.timedelta(days=30))
    assert tab.as_of_date() == AS_OF


def test_an_office_owed_nothing_says_so_instead_of_an_empty_grid(app_ctx, ops, qtbot) -> None:
    setup_office(app_ctx.db)
    make_client(app_ctx.db, "Golf Club")
    screen = open_screen(ops, qtbot)
    tab = screen.aging
    assert tab.nothing.isVisible()
    assert tab.nothing.text() == "Nothing is owed as of 20 Nov 2026."
    assert not tab.table.isVisible()
    assert tab._currency_group.isHidden()
    shot(screen, "test_empty")


# --- the drill-down and the windows -----------------------------------------------------------

def test_selecting_a_client_lists_its_open_invoices(app_ctx, screen, office, qtbot) -> None:
    tab = screen.aging
    select(qtbot, screen, office["alpha"])
    with app_ctx.db.session() as s:
        items = client_items(s, AS_OF, office["alpha"], today=AS_OF)
    assert [i.invoice_id for i in tab.items_model.visible_rows()] == [i.invoice_id for i in items]
    assert {i.invoice_id: i.balance_cents for i in tab.items_model.visible_rows()} == {
        office["A1"]: 100_000, office["A2"]: 20_000, office["A3"]: 20_000}
    row = tab.items_model.find_row(lambda i: i.invoice_id == office["A1"])
    assert [cell(tab.items_model, row, c) for c in (3, 4, 5, 6)] == ["95", "Over 90 days", "$1,000.00", "$1,000.00"]
    assert "Alpha Dental" in tab.items_title.text() and "$1,400.00 owed" in tab.items_title.text()
    shot(screen, "test_usd_selected")
    # Another day: the drill-down follows (A3 unpaid then).
    with qtbot.waitSignal(tab.items_loaded, timeout=10_000):
        tab.set_as_of(ago(7))
    wait_idle(qtbot, tab.ops)
    assert {i.invoice_id: i.balance_cents for i in tab.items_model.visible_rows()}[office["A3"]] == 30_000

    # Double-click an invoice: its window opens.
    assert not tab.findChildren(InvoiceDialog)
    tab._item_double_clicked(tab.items_model.index(row, 0))
    dialogs = tab.findChildren(InvoiceDialog)
    assert [d.invoice_id for d in dialogs] == [office["A1"]]
    wait_idle(qtbot, tab.ops)
    dialogs[0].close()

    # Double-click a client: the client's window.
    from ui.client_dialog import ClientDialog

    client_row = tab.model.find_row(lambda r: r.client_id == office["alpha"])
    tab._client_double_clicked(tab.model.index(client_row, 0))
    opened = tab.findChildren(ClientDialog)
    assert [d.client_id for d in opened] == [office["alpha"]]
    wait_idle(qtbot, tab.ops)
    opened[0].close()


# --- exports ------------------------------------------------------------------------------------

def test_csv_export_writes_the_report(screen, office, qtbot, tmp_path, monkeypatch) -> None:
    tab = screen.aging
    target = tmp_path / "aging.csv"
    monkeypatch.setattr(reports_screen, "ask_save_path", lambda *_a: target)
    with qtbot.waitSignal(tab.saved, timeout=10_000):
        qtbot.mouseClick(tab.csv_button, Qt.MouseButton.LeftButton)
    data = target.read_bytes()
    assert data.startswith(codecs.BOM_UTF8)
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert tuple(rows[0]) == CSV_HEADERS
    by_name = {(r[0], r[1]): r for r in rows[1:]}
    assert by_name[("Alpha Dental", "USD")][2:9] == ["0.00", "200.00", "200.00", "0.00", "1000.00", "1400.00", "0.00"]
    assert by_name[("Total", "USD")][2:10] == ["80.00", "200.00", "700.00", "250.00", "1000.00", "2230.00", "50.00",
                                              "6"]
    assert by_name[("Total", "EUR")][7] == "400.00"
    assert "Saved the A/R aging" in tab.note.text() and str(target) in tab.note.text()


def test_pdf_export_writes_a_pdf_naming_the_clients(screen, office, qtbot, tmp_path, monkeypatch) -> None:
    tab = screen.aging
    target = tmp_path / "aging.pdf"
    monkeypatch.setattr(reports_screen, "ask_save_path", lambda *_a: target)
    with qtbot.waitSignal(tab.saved, timeout=20_000):
        qtbot.mouseClick(tab.pdf_button, Qt.MouseButton.LeftButton)
    data = target.read_bytes()
    assert data.startswith(b"%PDF-")
    text = "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages)
    for name in ("Alpha Dental", "Charlie Law", "Échelle Conseil"):
        assert name in text
    assert format_amount(223_000, "USD") in text


def test_a_failed_export_says_why_and_leaves_no_file(screen, office, qtbot, tmp_path, monkeypatch) -> None:
    tab = screen.aging
    target = tmp_path / "missing" / "aging.csv"
    monkeypatch.setattr(reports_screen, "ask_save_path", lambda *_a: target)
    qtbot.mouseClick(tab.csv_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: tab.note.isVisible(), timeout=10_000)
    assert "was not saved" in tab.note.text() and "does not exist" in tab.note.text()
    assert not target.exists()


# --- statements --------------------------------------------------------------------------------

def test_statement_opens_the_statement_dialog_ending_on_the_as_of_day(screen, office, qtbot) -> None:
    tab = screen.aging
    with qtbot.waitSignal(tab.loaded, timeout=10_000):
        tab.set_as_of(dt.date(2026, 10, 31))
    wait_idle(qtbot, tab.ops)
    select(qtbot, screen, office["charlie"])
    dialog = tab.statement_selected()
    assert isinstance(dialog, StatementDialog)
    assert dialog.client_id == office["charlie"]
    assert dialog.dates() == (dt.date(2026, 8, 1), dt.date(2026, 10, 31))
    dialog.close()


def test_statements_for_the_selected_clients_are_saved_into_a_folder(screen, office, qtbot, tmp_path,
                                                                     monkeypatch) -> None:
    tab = screen.aging
    folder = tmp_path / "statements"
    folder.mkdir()
    monkeypatch.setattr(reports_screen, "ask_folder", lambda *_a: folder)
    tab.table.selectAll()
    assert tab.statements_button.text() == "Statements (3)…"
    with qtbot.waitSignal(tab.statements_done, timeout=30_000) as done:
        qtbot.mouseClick(tab.statements_button, Qt.MouseButton.LeftButton)
    result = done.args[0]
    assert len(result.saved) == 3 and not result.skipped and not result.stopped
    names = sorted(p.name for p in folder.iterdir())
    assert len(names) == 3
    # Safe on Windows: "Bravo: Logistics/West" loses its colon and slash.
    assert not any(ch in name for name in names for ch in '<>:"/\\|?*')
    assert any(name.startswith("Statement Bravo Logistics West") for name in names)
    for path in folder.iterdir():
        reader = pypdf.PdfReader(path)
        assert "Statement" in reader.pages[0].extract_text()
    assert "Saved 3 statements" in tab.note.text()
    assert not tab.progress_row.isVisible()


def test_unique_names_and_shares_never_divide_by_zero() -> None:
    taken: set[str] = set()
    assert [unique_name("Statement Acme.pdf", taken) for _ in range(3)] == [
        "Statement Acme.pdf", "Statement Acme (2).pdf", "Statement Acme (3).pdf"]
    assert unique_name("statement acme.PDF", taken) == "statement acme (4).PDF"
    assert share_text(0, 0) == "—"
    assert share_text(1, 3) == "33.3% of the total"
    assert share_text(1, 8) == "12.5% of the total"
