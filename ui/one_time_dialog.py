"""The one-time invoice editor: project work, hardware, anything outside an
agreement, with free lines; optionally split into monthly instalments."""

from __future__ import annotations

import datetime as dt

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy.orm import Session

from mspbill.clients import client_choices
from mspbill.invoicing import (
    MAX_INSTALMENTS,
    ItemDraft,
    OneTimeDraft,
    create_one_time_invoice,
    one_time_draft,
    split_into_instalments,
    update_one_time_invoice,
)
from mspbill.money import format_amount
from mspbill.periods import Month
from ui.invoices_screen import recent_months
from ui.lines_editor import LineRow, LinesEditor
from ui.ops import Ops
from ui.widgets import FieldForm, error_label, searchable_combo


class OneTimeInvoiceDialog(QDialog):
    saved = Signal(int)  # the draft's id (the first instalment's, when split)

    def __init__(self, ops: Ops, parent: QWidget | None = None, *, invoice_id: int | None = None,
                 client_id: int | None = None):
        super().__init__(parent)
        self.ops = ops
        self.invoice_id = invoice_id
        self._preset_client = client_id
        self._currencies: dict[int, str] = {}
        self.setWindowTitle("New one-time invoice" if invoice_id is None else "Edit draft invoice")
        self.setMinimumSize(760, 560)
        self._build()
        self._set_enabled(False)
        ops.read(self, client_choices, self._clients_loaded)

    def _build(self) -> None:
        top = QWidget()
        self.form = FieldForm(QFormLayout(top))
        self.client = searchable_combo()
        self.client.currentIndexChanged.connect(self._client_changed)
        self.form.add("client_id", "Client", self.client)
        self.title = self.form.add("title", "Title", QLineEdit())
        self.title.setPlaceholderText("e.g. Server upgrade, Firewall appliance")
        self.editor = LinesEditor(lambda total, cur: f"Total before tax: {format_amount(total, cur)}",
                                  LineRow("", "1", "", True))
        self.memo = QPlainTextEdit()
        self.memo.setPlaceholderText("Note printed on the invoice (optional)")
        self.memo.setMaximumHeight(60)

        plan = QWidget()
        pl = QHBoxLayout(plan)
        pl.setContentsMargins(0, 0, 0, 0)
        pl.addWidget(QLabel("Bill in"))
        self.instalments = QSpinBox()
        self.instalments.setRange(1, MAX_INSTALMENTS)
        self.instalments.setValue(1)
        self.instalments.setSuffix(" invoice")
        self.instalments.valueChanged.connect(
            lambda v: self.instalments.setSuffix(" invoice" if v == 1 else " monthly instalments"))
        pl.addWidget(self.instalments)
        pl.addWidget(QLabel("starting"))
        self.first_month = QComboBox()
        for m in reversed(recent_months(dt.date.today(), back=1, ahead=12)):
            self.first_month.addItem(m.label, str(m))
        self.first_month.setCurrentIndex(self.first_month.findData(str(Month.of(dt.date.today()))))
        pl.addWidget(self.first_month)
        pl.addStretch()
        self.instalments.valueChanged.connect(lambda v: self.first_month.setEnabled(v > 1))
        self.first_month.setEnabled(False)
        self.plan_note = QLabel("Each instalment is its own invoice, issued with its month's invoices "
                                "(and charged like any other once autopay is on).")
        self.plan_note.setStyleSheet("color: #5f6368;")
        self.plan_note.setWordWrap(True)

        self.summary = error_label()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.save_button = self.buttons.addButton("Save draft", QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(top)
        layout.addWidget(QLabel("Lines"))
        layout.addWidget(self.editor, 1)
        layout.addWidget(QLabel("Note on the invoice"))
        layout.addWidget(self.memo)
        layout.addWidget(plan)
        layout.addWidget(self.plan_note)
        layout.addWidget(self.summary)
        layout.addWidget(self.buttons)

    def _set_enabled(self, enabled: bool) -> None:
        for w in (self.client, self.title, self.editor, self.memo, self.instalments):
            w.setEnabled(enabled)
        self.first_month.setEnabled(enabled and self.instalments.value() > 1)
        self.save_button.setEnabled(enabled)

    def _clients_loaded(self, choices: list[tuple[int, str, str]]) -> None:
        self.client.blockSignals(True)
        self.client.addItem("", None)
        for cid, name, currency in choices:
            self.client.addItem(name, cid)
            self._currencies[cid] = currency
        self.client.blockSignals(False)
        if self.invoice_id is not None:
            invoice_id = self.invoice_id
            self.ops.read(self, lambda s: one_time_draft(s, invoice_id), self._load)
            return
        if self._preset_client is not None:
            self.client.setCurrentIndex(max(0, self.client.findData(self._preset_client)))
        self.editor.add_line(LineRow("", "1", "", True))
        self._set_enabled(True)

    def _load(self, draft: OneTimeDraft) -> None:
        self.client.setCurrentIndex(max(0, self.client.findData(draft.client_id)))
        self.title.setText(draft.title)
        self.memo.setPlainText(draft.memo)
        for it in draft.lines:
            self.editor.add_line(LineRow(it.description, it.quantity, it.unit_price, it.taxable))
        self._set_enabled(True)

    def _client_changed(self, _index: int) -> None:
        cid = self.client.currentData()
        self.editor.set_currency(self._currencies.get(cid, "USD") if cid else "USD")

    def draft(self) -> OneTimeDraft:
        return OneTimeDraft(self.client.currentData(), self.title.text(), self.memo.toPlainText(),
                            [ItemDraft(r.description, r.quantity, r.unit_price, r.taxable) for r in self.editor.rows()])

    def show_issues(self, by_field: dict[str, list[str]]) -> None:
        leftover = [m for m in self.form.show_issues(by_field)
                    if not any(m in v for k, v in by_field.items() if k.startswith("lines"))]
        self.editor.show_issues(by_field)
        count = sum(len(v) for v in by_field.values())
        if count:
            self.summary.setText(f"Please correct {count} problem{'s' if count > 1 else ''} before saving."
                                 + ("\n" + "\n".join(leftover) if leftover else ""))
        self.summary.setVisible(bool(count))

    def save(self) -> None:
        draft = self.draft()
        invoice_id = self.invoice_id
        parts = self.instalments.value()
        first = self.first_month.currentData()
        first_month = Month(int(first[:4]), int(first[5:])) if first else None
        self._set_enabled(False)

        def work(session: Session) -> int:
            if invoice_id is None:
                new_id = create_one_time_invoice(session, draft).id
            else:
                new_id = update_one_time_invoice(session, invoice_id, draft).id
            if parts > 1:
                return split_into_instalments(session, new_id, parts, first_month)[0]
            return new_id

        self.ops.save_form(self, work, self._saved, show_issues=self.show_issues,
                           re_enable=lambda: self._set_enabled(True), label="Saving invoice")

    def _saved(self, invoice_id: int) -> None:
        self.show_issues({})
        self.invoice_id = invoice_id
        self.saved.emit(invoice_id)
        self.accept()
