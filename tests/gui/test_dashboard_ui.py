"""The Dashboard (ui/dashboard_screen.py) on a real SQLite file: what compute_kpis says, on cards, a chart
and tables; an empty office; another "as of" day."""

from __future__ import annotations

import datetime as dt

import pytest
from PySide6.QtCore import QPointF
from PySide6.QtGui import Qt, QTextDocumentFragment

from mspbill.agreements import LineDraft
from mspbill.payments.manual import record_payment
from mspbill.reports.kpis import Kpis, compute_kpis
from tests.billing_helpers import (
    d,
    issue_ids,
    make_agreement,
    make_client,
    one_time,
    setup_office,
)
from tests.gui.conftest import wait_idle
from ui import ops as ops_module
from ui.dashboard_screen import DashboardScreen, compact_amount, nice_axis, rich_tooltip

TODAY = d("2026-11-21")
LATER = d("2026-12-31")  # "today" for recording payments: no date below is refused


def _invoice(db, client_id: int, amount: str, issued: dt.date) -> int:
    inv = one_time(db, client_id, ("Project work", "1", amount))
    issue_ids(db, [inv], issued)
    return inv


def _pay(db, invoice_id: int, amount: str, received: dt.date) -> None:
    with db.write_session() as s, s.begin():
        record_payment(s, invoice_id, amount, "check", received_on=received, today=LATER)


@pytest.fixture
def office(app_ctx) -> dict[str, int]:
    """Three clients; the arithmetic of what the dashboard must show is in the tests' comments."""
    db = app_ctx.db
    setup_office(db)
    ids = {
        "A": make_client(db, "Alder Dental", payment_terms_days="30"),
        "B": make_client(db, "Birch Law", payment_terms_days="15"),
        "C": make_client(db, "Cedar Clinic", payment_terms_days="30"),
    }
    make_agreement(db, ids["A"], "2026-01-01", [LineDraft("Managed services", "10", "100.00")])  # MRR $1,000
    ids["a1"] = _invoice(db, ids["A"], "1000.00", d("2026-07-01"))    # due Jul 31
    _pay(db, ids["a1"], "1000.00", d("2026-09-15"))                     # 46 days late
    ids["b1"] = _invoice(db, ids["B"], "500.00", d("2026-08-01"))     # due Aug 16, never paid
    ids["a2"] = _invoice(db, ids["A"], "2000.00", d("2026-09-01"))    # due Oct 1
    _pay(db, ids["a2"], "2000.00", d("2026-10-20"))                     # 19 days late
    ids["a3"] = _invoice(db, ids["A"], "1500.00", d("2026-10-15"))    # due Nov 14, unpaid
    ids["c1"] = _invoice(db, ids["C"], "300.00", d("2026-11-10"))     # due Dec 10
    _pay(db, ids["c1"], "100.00", d("2026-11-18"))
    return ids


def _kpis(app_ctx, as_of: dt.date = TODAY) -> Kpis:
    with app_ctx.db.session() as s:
        return compute_kpis(s, as_of, today=TODAY)


def _screen(qtbot, ops) -> DashboardScreen:
    screen = DashboardScreen(ops)
    screen.today = lambda: TODAY
    qtbot.addWidget(screen)
    screen.resize(1100, 900)
    with qtbot.waitSignal(screen.loaded, timeout=20_000):
        screen.show()  # shown: it loads
    wait_idle(qtbot, ops)
    return screen


def _plain(tooltip: str) -> str:
    return QTextDocumentFragment.fromHtml(tooltip).toPlainText()


def _column(section, column: int) -> list[str]:
    model = section.model
    return [model.data(model.index(row, column)) for row in range(model.rowCount())]


def test_cards_show_compute_kpis_figures_with_how_each_was_computed(qtbot, ops, app_ctx, office):
    screen = _screen(qtbot, ops)
    k = _kpis(app_ctx)
    assert screen.data is not None and screen.data.kpis == k
    cards = screen.cards
    for key, figure in (("mrr", k.mrr), ("ar_total", k.ar_total), ("ar_overdue", k.ar_overdue), ("dso", k.dso),
                        ("cei", k.cei), ("autopay", k.autopay_clients), ("failed_charges", k.failed_charges),
                        ("credit_held", k.credit_held)):
        card = cards[key]
        assert card.value.text() == figure.text, key
        if key != "autopay":
            assert card.explain == figure.explain, key
            assert _plain(card.toolTip()) == figure.explain, key  # the tooltip is the explanation, wrapped
    # The autopay card holds both shares: its tooltip explains each.
    assert cards["autopay"].explain == (f"Clients: {k.autopay_clients.explain}\n\n"
                                        f"MRR: {k.autopay_mrr.explain}")
    # The figures themselves, worked out: MRR 10 × $100; A/R b1 $500 + a3 $1,500 + c1 $200 = $2,200, of which
    # b1 (97 days) and a3 (7 days) are past due = $2,000.
    assert cards["mrr"].value.text() == "$1,000.00"
    assert (cards["ar_total"].value.text(), cards["ar_overdue"].value.text()) == ("$2,200.00", "$2,000.00")
    assert cards["ar_total"].note.text() == "3 open invoices"
    assert cards["ar_overdue"].note.text() == "2 invoices past due"
    assert "#b3261e" in cards["ar_overdue"].value.styleSheet()           # red: something is past due
    assert "#b3261e" not in cards["failed_charges"].value.styleSheet()   # nothing awaits action
    # No processor, no autopay client: no share of the clients on autopay is "—", and the note says why.
    assert cards["autopay"].value.text() == k.autopay_clients.text == "0.0 %"
    assert "No payment processor is set up" in cards["autopay"].toolTip()
    assert cards["drafts"].value.text() == "0" and "Invoices → Drafts" in cards["drafts"].note.text()
    assert cards["clients"].value.text() == "3"
    assert all(card.toolTip() for card in cards.values())
    assert screen.cards["dso"].toolTip() == rich_tooltip(k.dso.explain)


def test_the_chart_has_twelve_months_of_cash(qtbot, ops, app_ctx, office):
    screen = _screen(qtbot, ops)
    chart = screen.chart
    assert chart.bar_count() == 12
    cash = {m.label: m.cents for m in chart.months}
    # Sep: a1's $1,000; Oct: a2's $2,000; Nov: $100 on c1; nothing else in the 12 months Dec 2025 – Nov 2026.
    assert list(cash) == [f"{m} 2025" for m in ("Dec",)] + [
        f"{m} 2026" for m in ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov")]
    assert (cash["Sep 2026"], cash["Oct 2026"], cash["Nov 2026"]) == (100_000, 200_000, 10_000)
    assert sum(cash.values()) == 310_000
    assert chart.months == _kpis(app_ctx).cash_by_month
    # Each bar's tooltip has the exact amount; the month under way says so.
    assert chart.bar_tooltip(10) == "Oct 2026: $2,000.00 collected"
    assert chart.bar_tooltip(11) == "Nov 1 – 21, 2026 (so far): $100.00 collected"
    # The tallest bar is October's, and pointing at it finds it.
    rects = [chart.bar_rect(i) for i in range(12)]
    assert max(range(12), key=lambda i: rects[i].height()) == 10
    assert rects[10].height() == pytest.approx(2 * rects[9].height(), rel=0.02)
    assert chart.bar_at(QPointF(rects[10].center().x(), rects[10].bottom() - 1)) == 10
    assert "$100.00" in screen.cash_caption.text()
    assert screen.cash_caption.toolTip() == rich_tooltip(_kpis(app_ctx).cash_this_month.explain)
    assert not chart.grab().isNull()  # it paints


def test_most_overdue_and_at_risk_tables_name_the_clients(qtbot, ops, app_ctx, office):
    screen = _screen(qtbot, ops)
    # Past due: Alder Dental $1,500 (a3, 7 days) before Birch Law $500 (b1, 97 days).
    assert _column(screen.overdue, 0) == ["Alder Dental", "Birch Law"]
    assert _column(screen.overdue, 1) == ["$1,500.00", "$500.00"]
    assert _column(screen.overdue, 2) == ["7 days past due", "97 days past due"]
    assert screen.overdue.table.isVisibleTo(screen) and not screen.overdue.empty.isVisibleTo(screen)
    # At risk: Alder paid both its invoices late; Birch's oldest is more than 60 days past due.
    risk = screen.risk
    assert _column(risk, 0) == ["Alder Dental", "Birch Law"]
    assert _column(risk, 3) == ["2 of 2", "—"]
    assert _column(risk, 2) == ["62.5", "—"]    # (76 + 49) / 2 days from issue to payment
    assert _column(risk, 5)[0] == "Paid 2 of the last 2 invoices more than 7 days late."
    assert _column(risk, 5)[1].startswith("Oldest open invoice")
    assert [b.client_name for b in _kpis(app_ctx).at_risk] == _column(risk, 0)
    # Nothing awaits action: a sentence instead of a table.
    assert not screen.awaiting.table.isVisibleTo(screen)
    assert screen.awaiting.empty.isVisibleTo(screen) and "No failed charge awaits action" in screen.awaiting.empty.text()

    # A double-click asks for the client's window.
    with qtbot.waitSignal(screen.open_client) as opened:
        risk.table.doubleClicked.emit(risk.model.index(1, 0))
    assert opened.args == [office["B"]]


def test_changing_as_of_reloads(qtbot, ops, app_ctx, office):
    screen = _screen(qtbot, ops)
    assert screen.as_of.maximumDate().toPython() == TODAY  # no day after today
    # On Sep 30 only b1 ($500, 45 days past due) and a2 ($2,000, due Oct 1) were owed.
    with qtbot.waitSignal(screen.loaded, timeout=20_000):
        screen.as_of.setDate(screen.as_of.date().addDays(-52))   # as a person would: it settles, then loads
    wait_idle(qtbot, ops)
    k = _kpis(app_ctx, d("2026-09-30"))
    assert screen.data is not None and screen.data.kpis.as_of == d("2026-09-30")
    assert screen.cards["ar_total"].value.text() == k.ar_total.text == "$2,500.00"
    assert screen.cards["ar_overdue"].value.text() == k.ar_overdue.text == "$500.00"
    assert screen.cards["dso"].explain == k.dso.explain
    assert _column(screen.overdue, 0) == ["Birch Law"]
    assert screen.chart.months[-1].label == "Sep 2026" and screen.chart.months[-1].cents == 100_000
    assert "Sep 30, 2026" in screen.status.text()
    # Refresh keeps the day chosen.
    with qtbot.waitSignal(screen.loaded, timeout=20_000):
        screen.refresh_button.click()
    assert screen.data.kpis.as_of == d("2026-09-30")


def test_an_empty_office_shows_zeros_and_sentences(qtbot, ops, app_ctx, monkeypatch):
    errors: list[BaseException] = []
    monkeypatch.setattr(ops_module, "show_error", lambda _parent, exc, title="": errors.append(exc))
    screen = _screen(qtbot, ops)
    assert errors == []
    k = _kpis(app_ctx)
    assert screen.cards["mrr"].value.text() == "$0.00"
    assert screen.cards["dso"].value.text() == "—" and "No DSO" in screen.cards["dso"].explain
    assert screen.cards["cei"].value.text() == "—"
    assert screen.cards["autopay"].value.text() == "—" and "No active clients" in screen.cards["autopay"].explain
    assert screen.cards["dso"].explain == k.dso.explain
    assert screen.chart.bar_count() == 12 and all(m.cents == 0 for m in screen.chart.months)
    for section in (screen.overdue, screen.risk, screen.awaiting):
        assert not section.table.isVisibleTo(screen) and section.empty.text()
    assert screen.overdue.empty.text() == "Nobody is past due as of Nov 21, 2026."
    assert not screen.error.isVisibleTo(screen) and not screen.notes.isVisibleTo(screen)
    assert not screen.grab().isNull()


def test_receivables_in_another_currency_get_a_note(qtbot, ops, app_ctx):
    setup_office(app_ctx.db)
    usd = make_client(app_ctx.db, "Harbor Freight Law", payment_terms_days="0")
    eur = make_client(app_ctx.db, "Wien IT GmbH", currency="EUR", payment_terms_days="0")
    _invoice(app_ctx.db, usd, "100.00", d("2026-11-01"))
    _invoice(app_ctx.db, eur, "2000.00", d("2026-11-02"))
    screen = _screen(qtbot, ops)
    assert screen.notes.isVisibleTo(screen) and "€2,000.00 owed in EUR" in screen.notes.text()
    assert screen.cards["ar_total"].value.text() == "$100.00"  # the euros are not added in


def test_a_hidden_dashboard_loads_when_shown(qtbot, ops, app_ctx, office):
    screen = DashboardScreen(ops)
    screen.today = lambda: TODAY
    qtbot.addWidget(screen)
    screen.reload()  # hidden (another screen is on show): nothing is read until it is shown
    assert ops.active == 0 and screen.data is None
    with qtbot.waitSignal(screen.loaded, timeout=20_000):
        screen.show()
    assert screen.data is not None and screen.cards["mrr"].value.text() == "$1,000.00"


def test_the_main_window_loads_the_dashboard_once_a_visit_and_opens_the_client(qtbot, ops, app_ctx, office):
    from ui.client_dialog import ClientDialog
    from ui.main_window import MainWindow

    window = MainWindow(app_ctx, ops)
    qtbot.addWidget(window)
    window.show()
    window.go("Clients")
    wait_idle(qtbot, ops)
    jobs: list[str] = []
    ops.job_started.connect(jobs.append)
    window.go("Dashboard")
    wait_idle(qtbot, ops)
    qtbot.waitUntil(lambda: window.dashboard.data is not None, timeout=20_000)
    wait_idle(qtbot, ops)
    assert jobs.count("Loading dashboard") == 1  # shown and asked to reload: one read, not two
    window.dashboard.open_client.emit(office["A"])
    dialog = window.findChild(ClientDialog)
    assert dialog is not None
    wait_idle(qtbot, ops)
    dialog.close()


def test_chart_axis_and_labels_come_from_cents():
    assert nice_axis(0, 15_232_606, "USD") == (0, 20_000_000, 5_000_000)     # $0 … $200k by $50k
    assert nice_axis(0, 0, "USD") == (0, 10_000, 2_500)                      # an empty year still reads as money
    assert nice_axis(-5_000, 30_000, "USD") == (-10_000, 30_000, 10_000)
    assert compact_amount(854_900, "USD") == "$8,549"
    assert compact_amount(2_186_199, "USD") == "$21.9k"
    assert compact_amount(20_000_000, "USD") == "$200k"
    assert compact_amount(123_456_789, "USD") == "$1.23M"
    assert compact_amount(-5_000, "EUR") == "-€50"
    assert compact_amount(150_000, "JPY") == "¥150k" or compact_amount(150_000, "JPY").endswith("150k JPY")


def test_tooltips_wrap_and_keep_the_text():
    text = "A/R $3,200.00 ÷ net credit sales <$5,300.00> × 90 = 54.3 days.\nSecond line & more."
    assert _plain(rich_tooltip(text)) == text
    assert Qt.mightBeRichText(rich_tooltip(text))  # so Qt word-wraps it (a plain-text tooltip is one line)
