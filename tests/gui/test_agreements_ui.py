"""Agreements through the real dialog, with its lines table."""

from __future__ import annotations

from decimal import Decimal

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox
from sqlalchemy import func, select

from mspbill.db.models import Agreement
from tests.gui.conftest import wait_idle
from ui.agreement_dialog import COL_AMOUNT, COL_DESC, COL_PRICE, COL_QTY, AgreementDialog
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
