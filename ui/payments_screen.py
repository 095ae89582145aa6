"""Payments: every payment received, newest first, with what was kept as client credit
and what was refunded; refund a card or bank payment taken through the processor."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping

from PySide6.QtCore import QModelIndex, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy.orm import Session

from mspbill.money import format_amount
from mspbill.payments.manual import PaymentRow, list_payments
from mspbill.payments.refunds import refunded_by_payment
from mspbill.periods import Month
from ui import invoice_actions
from ui.ops import Ops
from ui.payment_dialog import RecordPaymentDialog
from ui.payment_widgets import refundable_payment_ids
from ui.table import Column, SnapshotTableModel
from ui.widgets import heading, search_field, snapshot_table

MONTHS_OFFERED = 24

PAYMENT_COLUMNS: list[Column[PaymentRow]] = [
    Column("Received", lambda r: r.received_on.isoformat(), lambda r: (r.received_on, r.id)),
    Column("Client", lambda r: r.client_name, lambda r: (r.client_name.casefold(), r.received_on, r.id)),
    Column("Invoice", lambda r: r.invoice_number or "—", lambda r: (r.invoice_number or "", r.id)),
    Column("Method", lambda r: r.method_label, lambda r: (r.method_label, r.received_on, r.id)),
    Column("Reference", lambda r: r.reference, lambda r: (r.reference.casefold(), r.id)),
    Column("Amount", lambda r: format_amount(r.amount_cents, r.currency),
           lambda r: (r.currency, r.amount_cents, r.id), align_right=True),
    Column("To credit", lambda r: format_amount(r.credit_cents, r.currency) if r.credit_cents else "",
           lambda r: (r.currency, r.credit_cents, r.id), align_right=True,
           tooltip=lambda r: "Kept as client credit for the next invoice" if r.credit_cents else ""),
]
COLUMN_WIDTHS = (100, 240, 110, 140, 180, 110, 100, 100)
CLIENT_COLUMN = 1


def load_payments(session: Session) -> tuple[list[PaymentRow], dict[int, int], frozenset[int]]:
    """Every payment, what was refunded of each (one grouped query), and which can be refunded."""
    return list_payments(session), refunded_by_payment(session), refundable_payment_ids(session)


def _sums(rows: list[PaymentRow], refunded: Mapping[int, int] | None
          ) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    received: dict[str, int] = defaultdict(int)
    credit: dict[str, int] = defaultdict(int)
    given_back: dict[str, int] = defaultdict(int)
    for r in rows:
        received[r.currency] += r.amount_cents
        credit[r.currency] += r.credit_cents
        given_back[r.currency] += refunded.get(r.id, 0) if refunded is not None else r.refunded_cents
    return received, credit, given_back


def totals_text(rows: list[PaymentRow], refunded: Mapping[int, int] | None = None) -> str:
    """Received per currency, never added across currencies, and what was given back of it:
    "$1,200.00, refunded $200.00 · €300.00".

    `refunded`: per payment id, as the Refunded column shows it (by default each row's own)."""
    received, credit, given_back = _sums(rows, refunded)
    parts = []
    for cur in sorted(received):
        text = format_amount(received[cur], cur)
        if credit[cur]:
            text += f" (of which {format_amount(credit[cur], cur)} to credit)"
        if given_back[cur]:
            text += f", refunded {format_amount(given_back[cur], cur)}"
        parts.append(text)
    return " · ".join(parts)


def net_text(rows: list[PaymentRow], refunded: Mapping[int, int] | None = None) -> str:
    """Received less refunded, per currency; empty when nothing was refunded."""
    received, _credit, given_back = _sums(rows, refunded)
    if not any(given_back.values()):
        return ""
    return "Kept after refunds: " + " · ".join(
        format_amount(received[cur] - given_back[cur], cur) for cur in sorted(received))


class PaymentsScreen(QWidget):
    changed = Signal()
    loaded = Signal(int)
    open_invoice = Signal(int)

    def __init__(self, ops: Ops, parent: QWidget | None = None):
        super().__init__(parent)
        self.ops = ops
        self.refunded: dict[int, int] = {}
        self.refundable: frozenset[int] = frozenset()
        refunded_column: Column[PaymentRow] = Column(
            "Refunded", lambda r: format_amount(self.refunded[r.id], r.currency) if self.refunded.get(r.id) else "",
            lambda r: (r.currency, self.refunded.get(r.id, 0), r.id), align_right=True,
            tooltip=lambda r: "Given back through the processor" if self.refunded.get(r.id) else "")
        self.model: SnapshotTableModel[PaymentRow] = SnapshotTableModel(
            [*PAYMENT_COLUMNS, refunded_column], self.haystack, self)
        self._loaded_once = False
        self._build()

    @staticmethod
    def haystack(row: PaymentRow) -> str:
        return f"{row.client_name}\n{row.invoice_number or ''}\n{row.reference}"

    # --- building ---
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        top.addWidget(heading("Payments"))
        top.addStretch()
        self.refund_button = QPushButton("Refund…")
        self.refund_button.setToolTip("Give back all or part of the selected card or bank payment through the "
                                      "processor")
        self.refund_button.clicked.connect(lambda: self.refund_selected())
        self.record_button = QPushButton("Record payment…")
        self.record_button.clicked.connect(lambda: self.record_payment())
        top.addWidget(self.refund_button)
        top.addWidget(self.record_button)
        layout.addLayout(top)

        bar = QHBoxLayout()
        self.search = search_field(self, "Search by client, invoice number or reference", self.apply_filter)
        bar.addWidget(self.search, 1)
        self.month = QComboBox()
        self.month.addItem("All dates", None)
        this_month = Month.of(dt.date.today())
        for back in range(MONTHS_OFFERED):
            m = this_month.shift(-back)
            self.month.addItem(m.label, m)
        self.month.setMaxVisibleItems(MONTHS_OFFERED + 1)
        self.month.currentIndexChanged.connect(lambda _i: self.apply_filter())
        bar.addWidget(self.month)
        layout.addLayout(bar)

        self.table = snapshot_table(self.model, COLUMN_WIDTHS, CLIENT_COLUMN)
        self.table.sortByColumn(0, Qt.SortOrder.DescendingOrder)
        self.table.doubleClicked.connect(self._double_clicked)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._update_buttons())
        self.model.modelReset.connect(self._update_buttons)
        self.model.layoutChanged.connect(self._update_buttons)
        layout.addWidget(self.table, 1)

        self.count_label = QLabel()
        layout.addWidget(self.count_label)
        self._update_buttons()

    def _update_buttons(self) -> None:
        row = self.selected()
        self.refund_button.setEnabled(row is not None and row.id in self.refundable)

    # --- data ---
    def ensure_loaded(self) -> None:
        if not self._loaded_once:
            self.reload()

    def mark_stale(self) -> None:
        """Reload on the next visit (another screen changed what this one shows)."""
        self._loaded_once = False

    def reload(self) -> None:
        if not self._loaded_once:
            self.count_label.setText("Loading payments…")
        self.ops.read(self, load_payments, lambda result: self._loaded(*result), label="Loading payments")

    def _loaded(self, rows: list[PaymentRow], refunded: dict[int, int] | None = None,
                refundable: frozenset[int] = frozenset()) -> None:
        self._loaded_once = True
        self.refunded = refunded or {}
        self.refundable = refundable
        self.model.set_rows(rows)
        self.apply_filter()
        self.loaded.emit(len(rows))

    def selected_month(self) -> Month | None:
        month = self.month.currentData()
        return month if isinstance(month, Month) else None

    def apply_filter(self) -> None:
        month = self.selected_month()
        if month is None:
            self.model.set_predicate(None)
        else:
            first, last = month.first_day, month.last_day
            self.model.set_predicate(lambda r: first <= r.received_on <= last)
        self.model.set_filter_text(self.search.text())
        self._update_footer()

    def _update_footer(self) -> None:
        visible = self.model.visible_rows()
        shown, total = len(visible), self.model.total_count()
        noun = "payment" if total == 1 else "payments"
        count = f"{total} {noun}" if shown == total else f"{shown} of {total} {noun}"
        received = totals_text(visible, self.refunded)
        self.count_label.setText(f"{count} · received {received}" if received else count)
        self.count_label.setToolTip(net_text(visible, self.refunded))

    def selected(self) -> PaymentRow | None:
        indexes = self.table.selectionModel().selectedRows()
        return self.model.row_at(indexes[0].row()) if indexes else None

    # --- actions ---
    def record_payment(self, invoice_id: int | None = None) -> RecordPaymentDialog:
        dialog = RecordPaymentDialog(self.ops, self, invoice_id=invoice_id)
        dialog.saved.connect(self._after_payment)
        dialog.open()
        return dialog

    def refund_selected(self) -> QWidget | None:
        row = self.selected()
        if row is None or row.id not in self.refundable:
            return None
        return invoice_actions.refund(self.ops, self, row.id, lambda: self._after_payment(row.invoice_id or 0))

    def _after_payment(self, _invoice_id: int) -> None:
        self.reload()
        self.changed.emit()

    def _double_clicked(self, index: QModelIndex) -> None:
        if not index.isValid():
            return
        row = self.model.row_at(index.row())
        if row.invoice_id is not None:
            self.open_invoice.emit(row.invoice_id)
