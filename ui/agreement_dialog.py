"""The agreement editor: client, dates, frequency and the lines that recur."""

from __future__ import annotations

import datetime as dt

from PySide6.QtCore import QDate, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDateEdit,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
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
from mspbill.money import format_amount
from ui.lines_editor import (
    COL_AMOUNT,
    COL_DESC,
    COL_PRICE,
    COL_QTY,
    COL_TAX,
    LineRow,
    LinesEditor,
)
from ui.ops import Ops
from ui.widgets import FieldForm, error_label, searchable_combo

__all__ = ["AgreementDialog", "COL_AMOUNT", "COL_DESC", "COL_PRICE", "COL_QTY", "COL_TAX"]

FREQUENCIES = (("Monthly", "monthly"), ("Quarterly", "quarterly"), ("Annual", "annual"))


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
        self._invoiced = False
        self.editor: LinesEditor
        self.setWindowTitle("New agreement" if agreement_id is None else "Edit agreement")
        self.setMinimumSize(760, 560)
        self._build()
        self._set_enabled(False)
        ops.read(self, client_choices, self._clients_loaded)

    def _build(self) -> None:
        top = QWidget()
        self.form = FieldForm(QFormLayout(top))
        f = self.form
        self.client = searchable_combo()
        self.client.currentIndexChanged.connect(self._client_changed)
        f.add("client_id", "Client", self.client)
        self.name = f.add("name", "Agreement", QLineEdit())
        self.name.setPlaceholderText("e.g. Managed IT services")
        self.frequency = QComboBox()
        for label, value in FREQUENCIES:
            self.frequency.addItem(label, value)
        self.frequency.currentIndexChanged.connect(lambda _i: self.editor.recompute())
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

        self.editor = LinesEditor(self._caption, LineRow("", "1", "", True))
        self.lines = self.editor.table
        self.line_errors = self.editor.errors
        self.effective_note = QLabel(
            "This agreement has been invoiced, so its client, start date and frequency are fixed. "
            "Changed lines take effect from the date below; any period already invoiced is adjusted "
            "on the next invoice (nobody re-sends the agreement).")
        self.effective_note.setWordWrap(True)
        self.effective_note.setStyleSheet("color: #5f6368;")
        self.effective_note.hide()
        eff = QWidget()
        self.effective_form = FieldForm(QFormLayout(eff))
        self.effective = QDateEdit(_qdate(dt.date.today()))
        self.effective.setCalendarPopup(True)
        self.effective.setDisplayFormat("yyyy-MM-dd")
        self.effective_form.add("effective_date", "Line changes take effect from", self.effective)
        self.effective_box = eff
        eff.hide()

        self.notes = QPlainTextEdit()
        self.notes.setPlaceholderText("Internal notes")
        self.notes.setMaximumHeight(60)
        self.summary = error_label()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save
                                        | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(top)
        layout.addWidget(QLabel("Lines billed every period"))
        layout.addWidget(self.editor, 1)
        layout.addWidget(self.effective_note)
        layout.addWidget(self.effective_box)
        layout.addWidget(self.notes)
        layout.addWidget(self.summary)
        layout.addWidget(self.buttons)

    def _set_enabled(self, enabled: bool) -> None:
        for w in (self.client, self.name, self.frequency, self.start, self.has_end, self.editor, self.notes,
                  self.effective):
            w.setEnabled(enabled)
        if self._invoiced:
            for w in (self.client, self.frequency, self.start):
                w.setEnabled(False)
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
        self.editor.add_line(LineRow("Managed workstations (per seat)", "1", "", True))
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
            self.editor.add_line(LineRow(ln.description, ln.quantity, ln.unit_price, ln.taxable, ln.series))
        self._invoiced = detail.invoiced
        self.effective_note.setVisible(detail.invoiced)
        self.effective_box.setVisible(detail.invoiced)
        self._set_enabled(True)

    def _client_changed(self, _index: int) -> None:
        cid = self.client.currentData()
        self._currency = self._currencies.get(cid, "USD") if cid else "USD"
        self.editor.set_currency(self._currency)

    def _caption(self, total: int, currency: str) -> str:
        return f"Total per period ({self.frequency.currentText().lower()}): {format_amount(total, currency)}"

    # --- saving ---
    def draft(self) -> AgreementDraft:
        lines = [LineDraft(r.description, r.quantity, r.unit_price, r.taxable, r.key) for r in self.editor.rows()]
        return AgreementDraft(
            client_id=self.client.currentData(), name=self.name.text(),
            start_date=_pydate(self.start.date()),
            end_date=_pydate(self.end.date()) if self.has_end.isChecked() else None,
            frequency=self.frequency.currentData(), notes=self.notes.toPlainText(), lines=lines)

    def show_issues(self, by_field: dict[str, list[str]]) -> None:
        self.form.show_issues(by_field)
        self.effective_form.show_issues(by_field)
        self.editor.show_issues(by_field)
        known = set(self.form.rows) | set(self.effective_form.rows)
        other = [m for k, v in by_field.items() if k not in known and not k.startswith("lines") for m in v]
        count = sum(len(v) for v in by_field.values())
        if count:
            self.summary.setText(f"Please correct {count} problem{'s' if count > 1 else ''} before saving."
                                 + ("\n" + "\n".join(other) if other else ""))
        self.summary.setVisible(bool(count))

    def save(self) -> None:
        draft = self.draft()
        self._set_enabled(False)
        agreement_id = self.agreement_id
        effective = _pydate(self.effective.date()) if self._invoiced else None

        def work(session: Session) -> int:
            if agreement_id is None:
                return create_agreement(session, draft).id
            return update_agreement(session, agreement_id, draft, effective_date=effective).id

        self.ops.save_form(self, work, self._saved, show_issues=self.show_issues,
                           re_enable=lambda: self._set_enabled(True), label="Saving agreement")

    def _saved(self, agreement_id: int) -> None:
        self.show_issues({})
        self.agreement_id = agreement_id
        self.saved.emit(agreement_id)
        self.accept()
