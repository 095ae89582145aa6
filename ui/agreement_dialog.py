"""The agreement editor: client, dates, frequency and the lines that recur."""

from __future__ import annotations

import datetime as dt

from PySide6.QtCore import QDate, Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QCompleter,
    QDateEdit,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy.orm import Session

from mspbill.agreements import (
    AgreementDetail,
    AgreementDraft,
    LineDraft,
    agreement_detail,
    create_agreement,
    update_agreement,
)
from mspbill.clients import client_choices
from mspbill.money import MoneyError, format_amount, line_amount_cents, parse_amount, parse_decimal
from ui.ops import Ops
from ui.widgets import ERROR_STYLE, FieldForm

LINE_COLUMNS = ("Description", "Quantity", "Unit price", "Taxable", "Amount")
COL_DESC, COL_QTY, COL_PRICE, COL_TAX, COL_AMOUNT = range(5)
FREQUENCIES = (("Monthly", "monthly"), ("Quarterly", "quarterly"), ("Annual", "annual"))
INVALID_BRUSH = QBrush(QColor("#f9dedc"))


def _qdate(d: dt.date) -> QDate:
    return QDate(d.year, d.month, d.day)


def _pydate(q: QDate) -> dt.date:
    return dt.date(q.year(), q.month(), q.day())


class AgreementDialog(QDialog):
    saved = Signal(int)

    def __init__(self, ops: Ops, parent: QWidget | None = None, *, agreement_id: int | None = None,
                 client_id: int | None = None):
        super().__init__(parent)
        self.ops = ops
        self.agreement_id = agreement_id
        self._preset_client = client_id
        self._currency = "USD"
        self._currencies: dict[int, str] = {}
        self.setWindowTitle("New agreement" if agreement_id is None else "Edit agreement")
        self.setMinimumSize(760, 560)
        self._build()
        self._set_enabled(False)
        ops.read(self, client_choices, self._clients_loaded)

    def _build(self) -> None:
        top = QWidget()
        self.form = FieldForm(QFormLayout(top))
        f = self.form
        self.client = QComboBox()
        self.client.setEditable(True)
        self.client.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        completer = self.client.completer()
        if completer is not None:  # type to find a client among hundreds
            completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
            completer.setFilterMode(Qt.MatchFlag.MatchContains)
        self.client.currentIndexChanged.connect(self._client_changed)
        f.add("client_id", "Client", self.client)
        self.name = f.add("name", "Agreement", QLineEdit())
        self.name.setPlaceholderText("e.g. Managed IT services")
        self.frequency = QComboBox()
        for label, value in FREQUENCIES:
            self.frequency.addItem(label, value)
        self.frequency.currentIndexChanged.connect(lambda _i: self._recompute())
        f.add("frequency", "Bills", self.frequency)
        self.start = QDateEdit(_qdate(dt.date.today().replace(day=1)))
        self.start.setCalendarPopup(True)
        self.start.setDisplayFormat("yyyy-MM-dd")
        f.add("start_date", "Starts", self.start)
        end_row = QWidget()
        er = QHBoxLayout(end_row)
        er.setContentsMargins(0, 0, 0, 0)
        self.has_end = QCheckBox("Ends on")
        self.end = QDateEdit(_qdate(dt.date.today()))
        self.end.setCalendarPopup(True)
        self.end.setDisplayFormat("yyyy-MM-dd")
        self.end.setEnabled(False)
        self.has_end.toggled.connect(self.end.setEnabled)
        er.addWidget(self.has_end)
        er.addWidget(self.end)
        er.addStretch()
        f.add("end_date", "End", end_row)

        self.lines = QTableWidget(0, len(LINE_COLUMNS))
        self.lines.setHorizontalHeaderLabels(LINE_COLUMNS)
        header = self.lines.horizontalHeader()
        header.setSectionResizeMode(COL_DESC, QHeaderView.ResizeMode.Stretch)
        for col, width in ((COL_QTY, 90), (COL_PRICE, 110), (COL_TAX, 70), (COL_AMOUNT, 120)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.Fixed)
            self.lines.setColumnWidth(col, width)
        self.lines.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.lines.verticalHeader().hide()
        self.lines.itemChanged.connect(self._line_changed)
        line_buttons = QHBoxLayout()
        add, remove = QPushButton("Add line"), QPushButton("Remove line")
        for button in (add, remove):
            button.setAutoDefault(False)  # Enter saves the dialog, not "Add"
        add.clicked.connect(lambda: self._add_line(LineDraft(quantity="1", unit_price="")))
        remove.clicked.connect(self._remove_lines)
        line_buttons.addWidget(add)
        line_buttons.addWidget(remove)
        line_buttons.addStretch()
        self.total = QLabel()
        self.total.setStyleSheet("font-weight: 600;")
        line_buttons.addWidget(self.total)
        self.line_errors = QLabel()
        self.line_errors.setStyleSheet(ERROR_STYLE)
        self.line_errors.setWordWrap(True)
        self.line_errors.hide()

        self.notes = QPlainTextEdit()
        self.notes.setPlaceholderText("Internal notes")
        self.notes.setMaximumHeight(60)
        self.summary = QLabel()
        self.summary.setStyleSheet(ERROR_STYLE)
        self.summary.setWordWrap(True)
        self.summary.hide()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save
                                        | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(top)
        layout.addWidget(QLabel("Lines billed every period"))
        layout.addWidget(self.lines, 1)
        layout.addLayout(line_buttons)
        layout.addWidget(self.line_errors)
        layout.addWidget(self.notes)
        layout.addWidget(self.summary)
        layout.addWidget(self.buttons)

    def _set_enabled(self, enabled: bool) -> None:
        for w in (self.client, self.name, self.frequency, self.start, self.has_end, self.lines, self.notes):
            w.setEnabled(enabled)
        self.end.setEnabled(enabled and self.has_end.isChecked())
        self.buttons.button(QDialogButtonBox.StandardButton.Save).setEnabled(enabled)

    # --- loading ---
    def _clients_loaded(self, choices: list[tuple[int, str, str]]) -> None:
        self.client.blockSignals(True)
        self.client.addItem("", None)
        for cid, name, currency in choices:
            self.client.addItem(name, cid)
            self._currencies[cid] = currency
        self.client.blockSignals(False)
        if self.agreement_id is not None:
            agreement_id = self.agreement_id
            self.ops.read(self, lambda s: agreement_detail(s, agreement_id), self._load)
            return
        if self._preset_client is not None:
            self._select_client(self._preset_client, "")
        self._add_line(LineDraft("Managed workstations (per seat)", "1", ""))
        self._set_enabled(True)

    def _select_client(self, client_id: int, name: str) -> None:
        idx = self.client.findData(client_id)
        if idx < 0:  # an archived client's agreement: still show whose it is
            self.client.addItem(f"{name} (archived)", client_id)
            idx = self.client.count() - 1
        self.client.setCurrentIndex(idx)

    def _load(self, detail: AgreementDetail) -> None:
        d = detail.draft
        assert d.client_id is not None
        self._currencies.setdefault(d.client_id, detail.currency)
        self._select_client(d.client_id, detail.client_name)
        self.name.setText(d.name)
        self.frequency.setCurrentIndex(max(0, self.frequency.findData(d.frequency)))
        self.start.setDate(_qdate(dt.date.fromisoformat(str(d.start_date))))
        if d.end_date:
            self.has_end.setChecked(True)
            self.end.setDate(_qdate(dt.date.fromisoformat(str(d.end_date))))
        self.notes.setPlainText(d.notes)
        for ln in d.lines:
            self._add_line(ln)
        self._set_enabled(True)

    def _client_changed(self, _index: int) -> None:
        cid = self.client.currentData()
        self._currency = self._currencies.get(cid, "USD") if cid else "USD"
        self._recompute()

    # --- lines ---
    def _add_line(self, ln: LineDraft) -> None:
        self.lines.blockSignals(True)
        r = self.lines.rowCount()
        self.lines.insertRow(r)
        self.lines.setItem(r, COL_DESC, QTableWidgetItem(ln.description))
        for col, text in ((COL_QTY, ln.quantity), (COL_PRICE, ln.unit_price)):
            item = QTableWidgetItem(text)
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.lines.setItem(r, col, item)
        tax = QTableWidgetItem()
        tax.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
        tax.setCheckState(Qt.CheckState.Checked if ln.taxable else Qt.CheckState.Unchecked)
        self.lines.setItem(r, COL_TAX, tax)
        amount = QTableWidgetItem()
        amount.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
        amount.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.lines.setItem(r, COL_AMOUNT, amount)
        self.lines.blockSignals(False)
        self._recompute()

    def _remove_lines(self) -> None:
        for r in sorted({i.row() for i in self.lines.selectedIndexes()}, reverse=True):
            self.lines.removeRow(r)
        self._recompute()

    def _line_changed(self, item: QTableWidgetItem) -> None:
        if item.column() != COL_AMOUNT:
            self._recompute()

    def _cell(self, r: int, c: int) -> str:
        item = self.lines.item(r, c)
        return item.text() if item else ""

    def _recompute(self) -> None:
        """Show each line's amount as typed; a cell that is not a number shows why on save."""
        self.lines.blockSignals(True)
        total = 0
        for r in range(self.lines.rowCount()):
            amount_item = self.lines.item(r, COL_AMOUNT)
            try:
                cents = line_amount_cents(parse_decimal(self._cell(r, COL_QTY), what="quantity"),
                                          parse_amount(self._cell(r, COL_PRICE), self._currency,
                                                       allow_negative=True))
                total += cents
                text = format_amount(cents, self._currency)
            except MoneyError:
                text = "—"
            if amount_item is not None:
                amount_item.setText(text)
        self.lines.blockSignals(False)
        freq = self.frequency.currentText().lower()
        self.total.setText(f"Total per period ({freq}): {format_amount(total, self._currency)}")

    # --- saving ---
    def draft(self) -> AgreementDraft:
        lines = []
        for r in range(self.lines.rowCount()):
            tax = self.lines.item(r, COL_TAX)
            lines.append(LineDraft(self._cell(r, COL_DESC), self._cell(r, COL_QTY), self._cell(r, COL_PRICE),
                                   tax is not None and tax.checkState() == Qt.CheckState.Checked))
        return AgreementDraft(
            client_id=self.client.currentData(), name=self.name.text(),
            start_date=_pydate(self.start.date()),
            end_date=_pydate(self.end.date()) if self.has_end.isChecked() else None,
            frequency=self.frequency.currentData(), notes=self.notes.toPlainText(), lines=lines)

    def show_issues(self, by_field: dict[str, list[str]]) -> None:
        self.form.show_issues(by_field)
        for r in range(self.lines.rowCount()):
            for col, key in ((COL_DESC, "description"), (COL_QTY, "quantity"), (COL_PRICE, "unit_price")):
                item = self.lines.item(r, col)
                if item is not None:
                    bad = f"lines[{r}].{key}" in by_field
                    item.setBackground(INVALID_BRUSH if bad else QBrush())
        line_msgs = [m for k, v in by_field.items() if k.startswith("lines") for m in v]
        self.line_errors.setText("\n".join(line_msgs))
        self.line_errors.setVisible(bool(line_msgs))
        other = [m for k, v in by_field.items()
                 if k not in self.form.rows and not k.startswith("lines") for m in v]
        count = sum(len(v) for v in by_field.values())
        if count:
            self.summary.setText(f"Please correct {count} problem{'s' if count > 1 else ''} before saving."
                                 + ("\n" + "\n".join(other) if other else ""))
        self.summary.setVisible(bool(count))

    def save(self) -> None:
        draft = self.draft()
        self._set_enabled(False)
        agreement_id = self.agreement_id

        def work(session: Session) -> int:
            if agreement_id is None:
                return create_agreement(session, draft).id
            return update_agreement(session, agreement_id, draft).id

        self.ops.save_form(self, work, self._saved, show_issues=self.show_issues,
                           re_enable=lambda: self._set_enabled(True), label="Saving agreement")

    def _saved(self, agreement_id: int) -> None:
        self.show_issues({})
        self.agreement_id = agreement_id
        self.saved.emit(agreement_id)
        self.accept()
