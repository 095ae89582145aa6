"""Agreements through the real dialog, with its lines table."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from PySide6.QtCore import QDate, Qt
from PySide6.QtWidgets import QDialogButtonBox
from sqlalchemy import func, select

from mspbill.agreements import LineDraft
from mspbill.db.models import Agreement, LineKind
from mspbill.periods import Month
from tests.gui.conftest import wait_idle
from ui.agreement_dialog import (
    COL_AMOUNT,
    COL_DESC,
    COL_PRICE,
    COL_QTY,
    AgreementDialog,
)
from ui.agreements_screen import AgreementsScreen


def _count(ctx) -> int:
    with ctx.db.session() as s:
        return s.scalar(select(func.count(Agreement.id))) or 0


def _save(qtbot, dialog: AgreementDialog) -> None:
    qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.StandardButton.Save), Qt.MouseButton.LeftButton)


def test_new_agreement_with_bad_lines_then_fixed(qtbot, ops, demo_ctx):
    before = _count(demo_ctx)
    screen = AgreementsScreen(ops)
    qtbot.addWidget(screen)
    screen.show()
    screen.reload()
    wait_idle(qtbot, ops)
    dialog = screen.new_item()
    wait_idle(qtbot, ops)
    dialog.client.setCurrentIndex(1)
    dialog.name.setText("Managed IT services")
    dialog.lines.item(0, COL_QTY).setText("0")
    dialog.lines.item(0, COL_PRICE).setText("-45.00")
    dialog.has_end.setChecked(True)
    dialog.end.setDate(dialog.start.date().addDays(-1))
    _save(qtbot, dialog)
    qtbot.waitUntil(lambda: dialog.line_errors.isVisible() or not dialog.summary.isHidden(), timeout=10_000)
    wait_idle(qtbot, ops)
    assert "quantity must be more than zero" in dialog.line_errors.text()
    assert "unit price cannot be negative" in dialog.line_errors.text()
    assert "before the start date" in dialog.form.rows["end_date"].error.text()
    assert _count(demo_ctx) == before

    dialog.has_end.setChecked(False)
    dialog.lines.item(0, COL_QTY).setText("12.5")
    dialog.lines.item(0, COL_PRICE).setText("$1,045.10")
    assert dialog.lines.item(0, COL_AMOUNT).text() == "$13,063.75"
    _save(qtbot, dialog)
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=10_000)
    wait_idle(qtbot, ops)
    assert _count(demo_ctx) == before + 1
    with demo_ctx.db.session() as s:
        agreement = s.get(Agreement, dialog.agreement_id)
        assert agreement.lines[0].quantity == Decimal("12.5")
        assert agreement.lines[0].unit_price_cents == 104510
    assert screen.selected() is not None and screen.selected().id == dialog.agreement_id


def test_edit_agreement_loads_lines(qtbot, ops, demo_ctx):
    screen = AgreementsScreen(ops)
    qtbot.addWidget(screen)
    screen.show()
    screen.reload()
    wait_idle(qtbot, ops)
    screen.table.selectRow(0)
    row = screen.selected()
    dialog = screen.edit_item(row)
    wait_idle(qtbot, ops)
    wait_idle(qtbot, ops)
    assert dialog.name.text() == row.name
    assert dialog.lines.rowCount() == row.line_count
    assert dialog.lines.item(0, COL_DESC).text()
    dialog.lines.item(0, COL_DESC).setText("Renamed line")
    _save(qtbot, dialog)
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=10_000)
    with demo_ctx.db.session() as s:
        assert s.get(Agreement, row.id).lines[0].description == "Renamed line"


# --- an agreement that has been invoiced: line changes take effect from a date ---------

def _invoiced_agreement(db) -> tuple[int, Month]:
    """Harbor Dental's agreement (10 seats × $50.00), invoiced and issued for this month."""
    from tests.billing_helpers import (
        make_agreement,
        make_client,
        run_month,
        setup_office,
    )

    month = Month.of(dt.date.today())
    setup_office(db)
    client = make_client(db, "Harbor Dental")
    agreement = make_agreement(db, client, month.shift(-2).first_day.isoformat(),
                               [LineDraft("Managed workstations", "10", "50.00"),
                                LineDraft("Cloud backup (per TB)", "2", "95.00")])
    run_month(db, month, dt.date.today())
    return agreement, month


def _open_editor(qtbot, ops, agreement_id: int) -> AgreementDialog:
    dialog = AgreementDialog(ops, agreement_id=agreement_id)
    qtbot.addWidget(dialog)
    dialog.show()
    wait_idle(qtbot, ops)
    wait_idle(qtbot, ops)
    assert dialog.lines.rowCount() > 0
    return dialog


def test_invoiced_agreement_asks_from_when(qtbot, ops, app_ctx):
    agreement_id, _month = _invoiced_agreement(app_ctx.db)
    dialog = _open_editor(qtbot, ops, agreement_id)
    assert dialog.effective_box.isVisible() and dialog.effective_note.isVisible()
    assert dialog.effective.isEnabled()
    assert not dialog.client.isEnabled() and not dialog.start.isEnabled() and not dialog.frequency.isEnabled()
    assert dialog.name.isEnabled() and dialog.lines.isEnabled() and dialog.has_end.isEnabled()


def test_agreement_not_yet_invoiced_has_no_effective_date(qtbot, ops, app_ctx):
    from tests.billing_helpers import make_agreement, make_client, setup_office

    setup_office(app_ctx.db)
    client = make_client(app_ctx.db, "Zephyr Labs")
    agreement_id = make_agreement(app_ctx.db, client, "2026-01-01", [LineDraft("Managed servers", "1", "195")])
    dialog = _open_editor(qtbot, ops, agreement_id)
    assert dialog.effective_box.isHidden() and dialog.effective_note.isHidden()
    assert dialog.client.isEnabled() and dialog.start.isEnabled() and dialog.frequency.isEnabled()


def test_quantity_change_mid_period_adjusts_the_next_invoice(qtbot, ops, app_ctx):
    from tests.billing_helpers import days, invoices_of, lines_of, prorated

    agreement_id, month = _invoiced_agreement(app_ctx.db)
    dialog = _open_editor(qtbot, ops, agreement_id)
    assert dialog.lines.item(0, COL_DESC).text() == "Managed workstations"
    dialog.lines.item(0, COL_QTY).setText("12")
    effective = month.first_day + dt.timedelta(days=14)
    dialog.effective.setDate(QDate(effective.year, effective.month, effective.day))
    _save(qtbot, dialog)
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=10_000)
    wait_idle(qtbot, ops)

    from ui.generate_dialog import GenerateDialog

    nxt = month.shift(1)
    gen = GenerateDialog(ops, today=month.first_day)
    qtbot.addWidget(gen)
    gen.show()
    wait_idle(qtbot, ops)
    gen.period.setCurrentIndex(gen.period.findData(str(nxt)))
    wait_idle(qtbot, ops)
    assert [gen.create_table.item(0, c).text() for c in (0, 2)] == ["Harbor Dental", "adjustments"]
    qtbot.mouseClick(gen.create_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not gen.isVisible(), timeout=10_000)
    wait_idle(qtbot, ops)

    invoices = invoices_of(app_ctx.db, agreement_id)
    assert len(invoices) == 2
    latest = invoices[-1]
    assert latest.period_start == nxt.first_day
    service = [(ln.description, ln.amount_cents) for ln in lines_of(latest, LineKind.SERVICE)]
    assert service == [("Managed workstations", 60_000), ("Cloud backup (per TB)", 19_000)]
    period_days = month.last_day.day
    covered = days(effective, month.last_day)
    [adjustment] = lines_of(latest, LineKind.ADJUSTMENT)
    assert adjustment.amount_cents == prorated("2", "50.00", covered, period_days)
    assert adjustment.description == (f"+2 Managed workstations from {effective.day} "
                                      f"{effective.strftime('%b')}, {covered}/{period_days} days")
