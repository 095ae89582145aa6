"""An editable table of lines (description, quantity, unit price, taxable) that
totals as you type.  Used by the agreement editor and the one-time invoice editor."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from mspbill.money import (
    MoneyError,
    format_amount,
    line_amount_cents,
    parse_amount,
    parse_decimal,
)
from ui.widgets import error_label

LINE_COLUMNS = ("Description", "Quantity", "Unit price", "Taxable", "Amount")
COL_DESC, COL_QTY, COL_PRICE, COL_TAX, COL_AMOUNT = range(5)
INVALID_BRUSH = QBrush(QColor("#f9dedc"))
KEY_ROLE = Qt.ItemDataRole.UserRole + 10


@dataclass(frozen=True)
class LineRow:
    description: str
    quantity: str
    unit_price: str
    taxable: bool
    key: Any = None  # what the row edits (an agreement line's series); None for a new line


class LinesEditor(QWidget):
    def __init__(self, caption: Callable[[int, str], str], new_line: LineRow, parent: QWidget | None = None):
        super().__init__(parent)
        self._caption = caption
        self._new_line = new_line
        self.currency = "USD"
        self.table = QTableWidget(0, len(LINE_COLUMNS))
        self.table.setHorizontalHeaderLabels(LINE_COLUMNS)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(COL_DESC, QHeaderView.ResizeMode.Stretch)
        for col, width in ((COL_QTY, 90), (COL_PRICE, 110), (COL_TAX, 70), (COL_AMOUNT, 120)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.Fixed)
            self.table.setColumnWidth(col, width)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().hide()
        self.table.itemChanged.connect(self._changed)
        buttons = QHBoxLayout()
        self.add_button, self.remove_button = QPushButton("Add line"), QPushButton("Remove line")
        for button in (self.add_button, self.remove_button):
            button.setAutoDefault(False)  # Enter saves the dialog, not "Add"
            buttons.addWidget(button)
        self.add_button.clicked.connect(lambda: self.add_line(self._new_line))
        self.remove_button.clicked.connect(self.remove_selected)
        buttons.addStretch()
        self.total = QLabel()
        self.total.setStyleSheet("font-weight: 600;")
        buttons.addWidget(self.total)
        self.errors = error_label()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.errors)

    def set_currency(self, currency: str) -> None:
        self.currency = currency
        self.recompute()

    def add_line(self, ln: LineRow) -> None:
        t = self.table
        t.blockSignals(True)
        r = t.rowCount()
        t.insertRow(r)
        desc = QTableWidgetItem(ln.description)
        desc.setData(KEY_ROLE, ln.key)
        t.setItem(r, COL_DESC, desc)
        for col, text in ((COL_QTY, ln.quantity), (COL_PRICE, ln.unit_price)):
            item = QTableWidgetItem(text)
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            t.setItem(r, col, item)
        tax = QTableWidgetItem()
        tax.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
        tax.setCheckState(Qt.CheckState.Checked if ln.taxable else Qt.CheckState.Unchecked)
        t.setItem(r, COL_TAX, tax)
        amount = QTableWidgetItem()
        amount.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
        amount.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        t.setItem(r, COL_AMOUNT, amount)
        t.blockSignals(False)
        self.recompute()

    def remove_selected(self) -> None:
        for r in sorted({i.row() for i in self.table.selectedIndexes()}, reverse=True):
            self.table.removeRow(r)
        self.recompute()

    def _changed(self, item: QTableWidgetItem) -> None:
        if item.column() != COL_AMOUNT:
            self.recompute()

    def cell(self, r: int, c: int) -> str:
        item = self.table.item(r, c)
        return item.text() if item else ""

    def recompute(self) -> None:
        """Show each line's amount as typed; a cell that is not a number shows why on save."""
        self.table.blockSignals(True)
        total = 0
        for r in range(self.table.rowCount()):
            amount_item = self.table.item(r, COL_AMOUNT)
            try:
                cents = line_amount_cents(parse_decimal(self.cell(r, COL_QTY), what="quantity"),
                                          parse_amount(self.cell(r, COL_PRICE), self.currency, allow_negative=True))
                total += cents
                text = format_amount(cents, self.currency)
            except MoneyError:
                text = "—"
            if amount_item is not None:
                amount_item.setText(text)
        self.table.blockSignals(False)
        self.total.setText(self._caption(total, self.currency))

    def rows(self) -> list[LineRow]:
        out = []
        for r in range(self.table.rowCount()):
            tax = self.table.item(r, COL_TAX)
            desc = self.table.item(r, COL_DESC)
            out.append(LineRow(self.cell(r, COL_DESC), self.cell(r, COL_QTY), self.cell(r, COL_PRICE),
                               tax is not None and tax.checkState() == Qt.CheckState.Checked,
                               desc.data(KEY_ROLE) if desc is not None else None))
        return out

    def show_issues(self, by_field: dict[str, list[str]]) -> None:
        for r in range(self.table.rowCount()):
            for col, key in ((COL_DESC, "description"), (COL_QTY, "quantity"), (COL_PRICE, "unit_price")):
                item = self.table.item(r, col)
                if item is not None:
                    bad = f"lines[{r}].{key}" in by_field
                    item.setBackground(INVALID_BRUSH if bad else QBrush())
        messages = [m for k, v in by_field.items() if k.startswith("lines") for m in v]
        self.errors.setText("\n".join(messages))
        self.errors.setVisible(bool(messages))

    def setEnabled(self, enabled: bool) -> None:  # noqa: N802 (Qt's name)
        self.table.setEnabled(enabled)
        self.add_button.setEnabled(enabled)
        self.remove_button.setEnabled(enabled)
