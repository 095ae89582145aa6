"""Record a check, cash, wire or ACH payment made outside the processor against one invoice."""

from __future__ import annotations

import datetime as dt

from PySide6.QtCore import QDate, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDateEdit,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy.orm import Session

from mspbill.invoicing import InvoiceRow, invoice_detail, list_invoices
from mspbill.money import format_amount, from_minor, minor_units
from mspbill.payments.manual import (
    EARLIEST,
    MANUAL_METHODS,
    OverpaymentError,
    record_payment,
)
from mspbill.validation import Issue, ValidationError
from ui.ops import Ops
from ui.widgets import FieldForm, error_label, searchable_combo

MUTED_STYLE = "color: #5f6368;"


def _qdate(d: dt.date) -> QDate:
    return QDate(d.year, d.month, d.day)


def _pydate(q: QDate) -> dt.date:
    return dt.date(q.year(), q.month(), q.day())


def amount_text(cents: int, currency: str) -> str:
    """What the amount box is prefilled with: the balance as a plain number, "1234.00"."""
    return f"{from_minor(cents, currency):.{minor_units(currency)}f}"


def invoice_choice_text(row: InvoiceRow) -> str:
    return f"{row.display_number} — {row.client_name} — balance {format_amount(row.balance_cents, row.currency)}"


def invoice_facts(row: InvoiceRow) -> str:
    """The line under the invoice: what is owed and since when."""
    balance = format_amount(row.balance_cents, row.currency)
    parts = [f"Balance {balance} of {format_amount(row.total_cents, row.currency)}"]
    if row.due_date is not None:
        parts.append(f"due {row.due_date.isoformat()}")
    if row.overdue_days:
        parts.append(f"{row.overdue_days} day{'s' if row.overdue_days != 1 else ''} overdue")
    if row.status not in ("open", "uncollectible"):
        parts.append(row.status)
    return " · ".join(parts)


class RecordPaymentDialog(QDialog):
    """One payment on one invoice; an amount above the balance asks before becoming client credit."""

    saved = Signal(int)  # the invoice id

    def __init__(self, ops: Ops, parent: QWidget | None = None, *, invoice_id: int | None = None):
        super().__init__(parent)
        self.ops = ops
        self.invoice_id = invoice_id
        self._fixed = invoice_id is not None
        self._rows: dict[int, InvoiceRow] = {}
        self._prefill = ""  # the balance last put in the amount box, replaced while untouched
        self.setWindowTitle("Record payment")
        self.setMinimumWidth(560)
        self._build()
        self._set_enabled(False)
        if invoice_id is not None:
            fixed_id = invoice_id
            ops.read(self, lambda s: invoice_detail(s, fixed_id).row, self._invoice_loaded,
                     label="Loading invoice")
        else:
            ops.read(self, lambda s: list_invoices(s, status="unpaid"), self._choices_loaded,
                     label="Loading unpaid invoices")

    # --- building ---
    def _build(self) -> None:
        top = QWidget()
        form_layout = QFormLayout(top)
        form_layout.setContentsMargins(0, 0, 0, 0)
        form_layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.form = FieldForm(form_layout)
        f = self.form
        self.invoice: QComboBox | None = None
        self.invoice_label: QLabel | None = None
        self.client_label: QLabel | None = None
        if self._fixed:
            self.invoice_label = QLabel("…")
            self.invoice_label.setStyleSheet("font-weight: 600;")
            self.invoice_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            f.add("invoice", "Invoice", self.invoice_label)
            self.client_label = QLabel()
            self.client_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            form_layout.addRow("Client", self.client_label)
        else:
            self.invoice = searchable_combo()  # type part of a number or a client's name
            self.invoice.setMaxVisibleItems(15)
            line = self.invoice.lineEdit()
            if line is not None:
                line.setPlaceholderText("Type an invoice number or client name")
            self.invoice.currentIndexChanged.connect(self._choice_changed)
            f.add("invoice", "Invoice", self.invoice)
        self.facts = QLabel()
        self.facts.setStyleSheet(MUTED_STYLE)
        form_layout.addRow("", self.facts)

        self.amount = f.add("amount", "Amount", QLineEdit())
        self.amount.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.amount.setMaximumWidth(200)
        self.method = QComboBox()
        for m in MANUAL_METHODS:
            self.method.addItem(m.label, m.value)
        self.method.setMaximumWidth(200)
        f.add("method", "Method", self.method)
        self.reference = f.add("reference", "Reference", QLineEdit())
        self.reference.setPlaceholderText("Check number, wire reference…")
        today = dt.date.today()
        self.received = QDateEdit(_qdate(today))
        self.received.setCalendarPopup(True)
        self.received.setDisplayFormat("yyyy-MM-dd")
        self.received.setMinimumDate(_qdate(EARLIEST))
        self.received.setMaximumDate(_qdate(today))
        self.received.setMaximumWidth(200)
        f.add("received_on", "Date received", self.received)
        self.notes = f.add("notes", "Notes", QPlainTextEdit())
        self.notes.setPlaceholderText("Internal notes")
        self.notes.setTabChangesFocus(True)
        self.notes.setFixedHeight(64)

        self.summary = error_label()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save
                                        | QDialogButtonBox.StandardButton.Cancel)
        save = self.buttons.button(QDialogButtonBox.StandardButton.Save)
        save.setText("Record payment")
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(top)
        layout.addStretch()
        layout.addWidget(self.summary)
        layout.addWidget(self.buttons)

    def _set_enabled(self, enabled: bool) -> None:
        editors: list[QWidget] = [self.amount, self.method, self.reference, self.received, self.notes]
        if self.invoice is not None:
            editors.append(self.invoice)
        for w in editors:
            w.setEnabled(enabled)
        self.buttons.button(QDialogButtonBox.StandardButton.Save).setEnabled(enabled)

    # --- loading ---
    def _invoice_loaded(self, row: InvoiceRow) -> None:
        assert self.invoice_label is not None and self.client_label is not None
        self._rows[row.id] = row
        self.invoice_label.setText(row.display_number)
        self.client_label.setText(row.client_name)
        self._show_invoice(row)
        self._set_enabled(True)
        self.amount.setFocus()
        self.amount.selectAll()

    def _choices_loaded(self, rows: list[InvoiceRow]) -> None:
        assert self.invoice is not None
        self.invoice.blockSignals(True)
        self.invoice.addItem("", None)
        for row in rows:
            self._rows[row.id] = row
            self.invoice.addItem(invoice_choice_text(row), row.id)
        self.invoice.setCurrentIndex(0)
        self.invoice.blockSignals(False)
        self._show_invoice(None)
        if not rows:
            self.facts.setText("There are no unpaid invoices.")
        self._set_enabled(bool(rows))
        if rows:
            self.invoice.setFocus()

    def _choice_changed(self, _index: int) -> None:
        invoice_id = self.invoice.currentData() if self.invoice is not None else None
        self._show_invoice(self._rows.get(invoice_id) if invoice_id is not None else None)

    def _show_invoice(self, row: InvoiceRow | None) -> None:
        self.facts.setText(invoice_facts(row) if row is not None else "")
        self.facts.setVisible(row is not None)
        new_prefill = amount_text(row.balance_cents, row.currency) if row is not None else ""
        if self.amount.text().strip() in ("", self._prefill):  # not typed over: follow the invoice
            self.amount.setText(new_prefill)
        self._prefill = new_prefill

    def selected_invoice_id(self) -> int | None:
        """The invoice chosen; text typed into the chooser that names no invoice chooses none."""
        if self.invoice is None:
            return self.invoice_id
        text = self.invoice.currentText().strip()
        if not text:
            return None
        index = self.invoice.currentIndex()
        if index < 0 or self.invoice.itemText(index) != self.invoice.currentText():
            index = self.invoice.findText(self.invoice.currentText(), Qt.MatchFlag.MatchFixedString)
        return self.invoice.itemData(index) if index >= 0 else None

    # --- saving ---
    def show_issues(self, by_field: dict[str, list[str]]) -> None:
        other = self.form.show_issues(by_field)
        count = sum(len(v) for v in by_field.values())
        if count:
            self.summary.setText(f"Please correct {count} problem{'s' if count > 1 else ''} before saving."
                                 + ("\n" + "\n".join(other) if other else ""))
        self.summary.setVisible(bool(count))
        first = self.form.first_invalid()
        if first is not None and first.isEnabled():
            first.setFocus()

    def save(self, credit_excess: bool = False) -> None:
        invoice_id = self.selected_invoice_id()
        amount, method = self.amount.text(), self.method.currentData()
        reference, notes = self.reference.text(), self.notes.toPlainText()
        received_on = _pydate(self.received.date())
        self._set_enabled(False)

        def work(session: Session) -> int:
            if invoice_id is None:
                raise ValidationError([Issue("invoice", "Choose the invoice this payment is for.")])
            record_payment(session, invoice_id, amount, method, reference=reference, received_on=received_on,
                           notes=notes, credit_excess=credit_excess)
            return invoice_id

        def failed(exc: BaseException) -> bool:
            self._set_enabled(True)
            if isinstance(exc, OverpaymentError):
                self.show_issues({})
                message = exc.issues[0].message if exc.issues else str(exc)
                # Ask once the job has finished reporting, not from inside its callback.
                QTimer.singleShot(0, lambda: self._ask_overpayment(message))
                return True
            if isinstance(exc, ValidationError):
                self.show_issues(exc.by_field())
                return True
            return False

        self.ops.write(self, work, self._saved, on_failure=failed, label="Recording payment")

    def _ask_overpayment(self, message: str) -> None:
        if self.confirm_overpayment(message):
            self.save(credit_excess=True)
        else:
            self.amount.setFocus()
            self.amount.selectAll()

    def confirm_overpayment(self, message: str) -> bool:
        """Yes keeps the excess as client credit; tests replace this."""
        answer = QMessageBox.question(
            self, "More than the balance", message,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def _saved(self, invoice_id: int) -> None:
        self.show_issues({})
        self.invoice_id = invoice_id
        self.saved.emit(invoice_id)
        self.accept()
