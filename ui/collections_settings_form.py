"""Settings → Collections: the payment reminder schedule with each step's e-mail (a live
preview with example values), and the late-fee policy (off by default).

One Save for the tab: the schedule and the policy are checked together (the core's
validate_steps and validate_late_fees) and every problem is shown at once; nothing is
saved while one is left (house rule 5).  The write is one transaction through Ops.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy.orm import Session

from mspbill.collections.reminders import due_when
from mspbill.collections.settings import (
    DEFAULT_STEPS,
    OFFSET_MAX,
    OFFSET_MIN,
    REMINDER_PLACEHOLDERS,
    STEPS_MAX,
    CollectionPolicy,
    LateFeeDraft,
    StepDraft,
    collection_policy,
    save_late_fees,
    save_reminders,
    step_label,
    validate_late_fees,
    validate_steps,
)
from mspbill.company import get_company
from mspbill.db.models import LateFeeKind, LateFeePlacement, LateFeeRepeat
from mspbill.mail.templates import check_template, render, sample_values
from mspbill.money import format_decimal, from_minor
from mspbill.validation import Issue, ValidationError
from ui.ops import Ops
from ui.widgets import (
    ERROR_STYLE,
    MUTED_STYLE,
    NOTICE_STYLES,
    FieldForm,
    form_scroll,
    heading,
)

WHO_GETS_THEM = (
    "Reminders go to clients who pay by invoice. A client on autopay gets one only after a charge failed for "
    "good (the card or bank account was declined and a new one is needed); nothing is sent while the batch "
    "retries a charge or a bank debit settles. Each step goes once per invoice, through the Outbox, with the "
    "invoice PDF attached. To hold them for one client, tick “Pause payment reminders” on the client's "
    "Billing tab.")
FEE_FIELDS = ("kind", "flat_amount", "percent", "after_days", "repeat", "placement", "min_balance")
SAMPLE_DUE = dt.date(2026, 12, 1)   # sample_values() says the invoice is due on 1 Dec 2026
NEW_STEP_SUBJECT = "Reminder: invoice {number} is {days_overdue} days overdue"
NEW_STEP_BODY = ("Dear {client},\n\nInvoice {number} was due on {due_date} and {balance} is still open.\n\n"
                 "Payment: {payment_method}\n\nThe invoice is attached.\n\n{company}")


@dataclass(frozen=True)
class CollectionSettingsView:
    policy: CollectionPolicy
    currency: str


def load_collection_settings(session: Session) -> CollectionSettingsView:
    company = get_company(session)
    return CollectionSettingsView(collection_policy(session), company.currency if company else "USD")


def sample_reminder_values(offset_days: int) -> dict[str, str]:
    """The e-mail settings' example values, as they stand on the day of a step."""
    today = SAMPLE_DUE + dt.timedelta(days=offset_days)
    values = sample_values()
    values["days_overdue"] = str(max(0, offset_days))
    values["due_when"] = due_when(SAMPLE_DUE, today)
    return values


@dataclass
class _EditStep:
    """A step as edited (the table and the editor show the same object)."""

    offset_days: int
    subject: str
    body: str


class _FocusWatcher(QObject):
    """Remembers which template editor the user was in, for the placeholder list."""

    def __init__(self, form: CollectionsSettingsForm):
        super().__init__(form)
        self._form = form

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.FocusIn:
            self._form._template_target = watched  # type: ignore[assignment]
        return False


def _section(title: str) -> QLabel:
    label = heading(title, 14)
    label.setContentsMargins(0, 10, 0, 0)
    return label


def _muted(text: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setStyleSheet(MUTED_STYLE)
    return label


def _inline(*widgets: QWidget | str) -> QWidget:
    """Widgets (or a unit's text) side by side, left-aligned."""
    box = QWidget()
    row = QHBoxLayout(box)
    row.setContentsMargins(0, 0, 0, 0)
    for w in widgets:
        row.addWidget(QLabel(w) if isinstance(w, str) else w)
    row.addStretch()
    return box


class CollectionsSettingsForm(QWidget):
    saved = Signal()
    loaded = Signal()

    def __init__(self, ops: Ops, parent: QWidget | None = None):
        super().__init__(parent)
        self.ops = ops
        self.currency = "USD"
        self.steps: list[_EditStep] = []
        self._step_issues: dict[int, list[str]] = {}   # row → messages, after a Save that found some
        self._filling = False
        self._build()
        self._select_step(None)
        self._fees_changed()

    # --- building ---
    def _build(self) -> None:
        form_widget = QWidget()
        form_widget.setMaximumWidth(980)
        grid = QFormLayout(form_widget)
        grid.setContentsMargins(0, 0, 12, 0)
        self.grid = grid

        # --- reminders ---
        grid.addRow(heading("Payment reminders", 14))
        who = _muted(WHO_GETS_THEM)
        grid.addRow(who)
        self.reminders_enabled = QCheckBox("Send payment reminders")
        self.reminders_enabled.setToolTip("Off: no reminder is queued for any client; the schedule is kept.")
        grid.addRow("", self.reminders_enabled)

        schedule = QWidget()
        sl = QHBoxLayout(schedule)
        sl.setContentsMargins(0, 0, 0, 0)
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(("When", "Subject"))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.setColumnWidth(0, 150)
        self.table.verticalHeader().setDefaultSectionSize(24)
        self.table.setMinimumHeight(24 * 6 + 30)
        self.table.setMaximumHeight(24 * 8 + 30)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        sl.addWidget(self.table, 1)
        side = QVBoxLayout()
        self.add_button = QPushButton("Add step")
        self.add_button.setToolTip(f"Add a reminder step (at most {STEPS_MAX})")
        self.add_button.clicked.connect(lambda: self.add_step())
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Remove the selected step; reminders it already sent keep their record")
        self.remove_button.clicked.connect(lambda: self.remove_step())
        self.reset_button = QPushButton("Reset to defaults")
        self.reset_button.setToolTip("3 days before due, on the due date, 7, 14 and 30 days overdue, with the "
                                     "standard wording (saved when you Save)")
        self.reset_button.clicked.connect(lambda: self.reset_steps())
        for button in (self.add_button, self.remove_button, self.reset_button):
            button.setAutoDefault(False)
            side.addWidget(button)
        side.addStretch()
        sl.addLayout(side)
        grid.addRow("Schedule", schedule)
        self.schedule_issues = QLabel()
        self.schedule_issues.setStyleSheet(ERROR_STYLE)
        self.schedule_issues.setWordWrap(True)
        self.schedule_issues.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.schedule_issues.hide()
        grid.addRow("", self.schedule_issues)

        # --- the selected step ---
        self.step_heading = _section("Selected step")
        grid.addRow(self.step_heading)
        self.offset = QSpinBox()
        self.offset.setRange(OFFSET_MIN, OFFSET_MAX)
        self.offset.setToolTip("Days from the due date: −3 is three days before it, 0 the due date itself, "
                               "7 a week overdue")
        self.offset.setMinimumWidth(80)
        self.offset_label = QLabel()
        self.offset_label.setStyleSheet("font-weight: 600;")
        self.offset_row = _inline(self.offset, "days from the due date:", self.offset_label)
        grid.addRow("When", self.offset_row)
        self.subject = QLineEdit()
        grid.addRow("Subject", self.subject)
        body_row = QWidget()
        br = QHBoxLayout(body_row)
        br.setContentsMargins(0, 0, 0, 0)
        self.body = QPlainTextEdit()
        self.body.setTabChangesFocus(True)
        self.body.setMinimumHeight(self.body.fontMetrics().lineSpacing() * 13 + 14)
        br.addWidget(self.body, 3)
        placeholders_side = QVBoxLayout()
        placeholders_side.setSpacing(4)
        placeholders_side.addWidget(_muted("Placeholders — click one to insert it:"))
        self.placeholders = QListWidget()
        self.placeholders.setWordWrap(True)
        self.placeholders.setMinimumWidth(260)
        self.placeholders.setSpacing(2)
        self.placeholders.setCursor(Qt.CursorShape.PointingHandCursor)
        for name, meaning in REMINDER_PLACEHOLDERS.items():
            item = QListWidgetItem("{" + name + "} — " + meaning)
            item.setData(Qt.ItemDataRole.UserRole, "{" + name + "}")
            item.setToolTip(f"Click to insert {{{name}}}: {meaning}")
            self.placeholders.addItem(item)
        self.placeholders.itemClicked.connect(self._insert_placeholder)
        placeholders_side.addWidget(self.placeholders, 1)
        br.addLayout(placeholders_side, 2)
        grid.addRow("Text", body_row)
        self._template_target: QWidget = self.body
        watcher = _FocusWatcher(self)
        self.subject.installEventFilter(watcher)
        self.body.installEventFilter(watcher)

        preview = QVBoxLayout()
        preview.setSpacing(4)
        self.preview_subject = QLineEdit()
        self.preview_subject.setReadOnly(True)
        self.preview_subject.setFrame(False)
        self.preview_subject.setAccessibleName("Subject preview")
        self.preview_body = QPlainTextEdit()
        self.preview_body.setReadOnly(True)
        self.preview_body.setTabChangesFocus(True)
        self.preview_body.setAccessibleName("Text preview")
        self.preview_body.setMinimumHeight(self.preview_body.fontMetrics().lineSpacing() * 14 + 14)
        self.preview_note = _muted("")
        preview.addWidget(self.preview_subject)
        preview.addWidget(self.preview_body)
        preview.addWidget(self.preview_note)
        grid.addRow("Preview", preview)
        self.step_fields: tuple[QWidget, ...] = (self.offset, self.subject, self.body, self.placeholders)

        # --- late fees ---
        grid.addRow(_section("Late fees"))
        grid.addRow(_muted("Off unless you turn them on. A fee is a line of its own, never taxed, and never charged "
                           "on an invoice made for late fees. Every fee is listed under Collections → Late fees, "
                           "where it can be waived with a reason."))
        self.fees_form = FieldForm(grid)
        self.fees_enabled = QCheckBox("Charge late fees on overdue invoices")
        grid.addRow("", self.fees_enabled)
        self.kind_flat = QRadioButton("Flat amount")
        self.kind_percent = QRadioButton("Percentage of the overdue balance")
        self.kind_group = QButtonGroup(self)
        for radio in (self.kind_flat, self.kind_percent):
            self.kind_group.addButton(radio)
        self.kind_flat.setChecked(True)
        self.fees_form.add("kind", "Fee", _inline(self.kind_flat, self.kind_percent))
        self.flat_amount = QLineEdit()
        self.flat_amount.setMaximumWidth(120)
        self.flat_amount.setPlaceholderText("e.g. 25.00")
        self.flat_currency = QLabel("USD")
        self.fees_form.add("flat_amount", "Flat amount", _inline(self.flat_amount, self.flat_currency))
        self.fees_form.rows["flat_amount"].editor = self.flat_amount  # the red frame goes on the field
        self.percent = QLineEdit()
        self.percent.setMaximumWidth(120)
        self.percent.setPlaceholderText("e.g. 1.5")
        self.fees_form.add("percent", "Percentage", _inline(self.percent, "% of the balance still open"))
        self.fees_form.rows["percent"].editor = self.percent
        self.after_days = QSpinBox()
        self.after_days.setRange(1, 365)
        self.after_days.setValue(30)
        self.after_days.setMinimumWidth(80)
        self.fees_form.add("after_days", "After", _inline(self.after_days, "days overdue"))
        self.repeat_once = QRadioButton("Once per invoice")
        self.repeat_monthly = QRadioButton("Every month it stays unpaid")
        self.repeat_group = QButtonGroup(self)
        for radio in (self.repeat_once, self.repeat_monthly):
            self.repeat_group.addButton(radio)
        self.repeat_once.setChecked(True)
        self.fees_form.add("repeat", "How often", _inline(self.repeat_once, self.repeat_monthly))
        self.place_next = QRadioButton("On the client's next invoice")
        self.place_own = QRadioButton("On an invoice of its own")
        self.place_group = QButtonGroup(self)
        for radio in (self.place_next, self.place_own):
            self.place_group.addButton(radio)
        self.place_next.setChecked(True)
        self.place_next.setToolTip("The fee waits for the client's next generated invoice (the month-end preview "
                                   "shows it); a client with no active agreement gets an invoice of its own")
        self.place_own.setToolTip("An invoice for the fee is issued at once (and e-mailed when e-mail is set up)")
        self.fees_form.add("placement", "Billed", _inline(self.place_next, self.place_own))
        self.min_balance = QLineEdit()
        self.min_balance.setMaximumWidth(120)
        self.min_balance.setPlaceholderText("0.00")
        self.min_currency = QLabel("USD")
        self.fees_form.add("min_balance", "Minimum balance",
                           _inline(self.min_balance, self.min_currency, "— no fee on a smaller balance"))
        self.fees_form.rows["min_balance"].editor = self.min_balance
        self.fee_sentence = QLabel()
        self.fee_sentence.setWordWrap(True)
        self.fee_sentence.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        grid.addRow("In words", self.fee_sentence)
        self.fee_fields: tuple[QWidget, ...] = (
            self.kind_flat, self.kind_percent, self.flat_amount, self.percent, self.after_days, self.repeat_once,
            self.repeat_monthly, self.place_next, self.place_own, self.min_balance)

        self.scroll_area = form_scroll(form_widget)

        # --- the bottom bar ---
        self.summary = QLabel()
        self.summary.setStyleSheet(ERROR_STYLE)
        self.summary.setWordWrap(True)
        self.summary.hide()
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.save_button = QPushButton("Save")
        self.save_button.setDefault(True)
        self.save_button.clicked.connect(lambda: self.save())
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        bottom.addWidget(self.save_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.scroll_area, 1)
        layout.addWidget(self.summary)
        layout.addLayout(bottom)

        # --- live parts ---
        self.offset.valueChanged.connect(self._offset_changed)
        self.offset.editingFinished.connect(self._resort)
        self.subject.textChanged.connect(self._subject_changed)
        self.body.textChanged.connect(self._body_changed)
        self.fees_enabled.toggled.connect(lambda _on: self._fees_changed())
        for group in (self.kind_group, self.repeat_group, self.place_group):
            group.buttonToggled.connect(lambda _b, _on: self._fees_changed())
        for edit in (self.flat_amount, self.percent, self.min_balance):
            edit.textChanged.connect(lambda _t: self._fees_changed())
        self.after_days.valueChanged.connect(lambda _v: self._fees_changed())

    # --- loading ---
    def load(self) -> None:
        self.setEnabled(False)
        self.ops.read(self, load_collection_settings, self._loaded, label="Loading collections settings")

    def _loaded(self, view: CollectionSettingsView) -> None:
        self.setEnabled(True)
        self.currency = view.currency
        policy = view.policy
        self.reminders_enabled.setChecked(policy.reminders_enabled)
        self.set_steps([_EditStep(s.offset_days, s.subject, s.body.rstrip("\n")) for s in policy.steps])
        fees = policy.fees
        self.fees_enabled.setChecked(fees.enabled)
        (self.kind_flat if fees.kind is LateFeeKind.FLAT else self.kind_percent).setChecked(True)
        self.flat_amount.setText(f"{from_minor(fees.flat_cents, view.currency):f}" if fees.flat_cents else "")
        self.percent.setText(format_decimal(fees.percent) if fees.percent else "")
        self.after_days.setValue(fees.after_days)
        (self.repeat_once if fees.repeat is LateFeeRepeat.ONCE else self.repeat_monthly).setChecked(True)
        (self.place_next if fees.placement is LateFeePlacement.NEXT_INVOICE else self.place_own).setChecked(True)
        self.min_balance.setText(f"{from_minor(fees.min_balance_cents, view.currency):f}"
                                 if fees.min_balance_cents else "")
        for label in (self.flat_currency, self.min_currency):
            label.setText(view.currency)
        self.show_issues({})
        self._fees_changed()
        self.loaded.emit()

    # --- the schedule ---
    def set_steps(self, steps: list[_EditStep], select: int | None = 0) -> None:
        self.steps = sorted(steps, key=lambda s: s.offset_days)
        self._step_issues = {}
        self._fill_table()
        self._select_step(select if self.steps else None)

    def _fill_table(self) -> None:
        self.table.blockSignals(True)
        self.table.setRowCount(len(self.steps))
        for row, step in enumerate(self.steps):
            for col, text in enumerate((step_label(step.offset_days), step.subject)):
                item = QTableWidgetItem(text)
                messages = self._step_issues.get(row)
                if messages:
                    item.setForeground(QColor("#b3261e"))
                    item.setToolTip("\n".join(messages))
                elif col == 1:
                    item.setToolTip(text)
                self.table.setItem(row, col, item)
        self.table.blockSignals(False)
        self.add_button.setEnabled(len(self.steps) < STEPS_MAX)

    def _set_cell(self, row: int, col: int, text: str) -> None:
        item = self.table.item(row, col)
        if item is not None:
            item.setText(text)

    def current_row(self) -> int | None:
        rows = {i.row() for i in self.table.selectedIndexes()}
        return rows.pop() if len(rows) == 1 else None

    def current_step(self) -> _EditStep | None:
        row = self.current_row()
        return self.steps[row] if row is not None and row < len(self.steps) else None

    def _select_step(self, row: int | None) -> None:
        if row is None or not 0 <= row < len(self.steps):
            self.table.clearSelection()
        else:
            self.table.selectRow(row)
        self._selection_changed()

    def _selection_changed(self) -> None:
        step = self.current_step()
        self._filling = True
        try:
            for w in self.step_fields:
                w.setEnabled(step is not None)
            self.remove_button.setEnabled(step is not None)
            if step is None:
                self.offset.setValue(0)
                self.subject.clear()
                self.body.clear()
                self.offset_label.setText("")
                self.step_heading.setText("Selected step" if self.steps else "Selected step — add a step first")
            else:
                self.offset.setValue(step.offset_days)
                self.subject.setText(step.subject)
                self.subject.setCursorPosition(0)
                self.body.setPlainText(step.body)
                self.step_heading.setText(f"Selected step: {step_label(step.offset_days).lower()}")
        finally:
            self._filling = False
        self.update_preview()

    def _offset_changed(self, value: int) -> None:
        step, row = self.current_step(), self.current_row()
        self.offset_label.setText(step_label(value) if step is not None else "")
        if self._filling or step is None or row is None:
            return
        step.offset_days = value
        self._set_cell(row, 0, step_label(value))
        self.step_heading.setText(f"Selected step: {step_label(value).lower()}")
        self.update_preview()

    def _resort(self) -> None:
        """The schedule reads in order of its days; the edited step stays selected."""
        step = self.current_step()
        if step is None:
            return
        ordered = sorted(self.steps, key=lambda s: s.offset_days)
        if ordered == self.steps and all(a is b for a, b in zip(ordered, self.steps, strict=True)):
            return
        self.steps = ordered
        self._fill_table()
        self.table.blockSignals(True)
        self.table.selectRow(next(i for i, s in enumerate(self.steps) if s is step))
        self.table.blockSignals(False)

    def _subject_changed(self, text: str) -> None:
        step, row = self.current_step(), self.current_row()
        if self._filling or step is None or row is None:
            return
        step.subject = text
        self._set_cell(row, 1, text)
        self.update_preview()

    def _body_changed(self) -> None:
        step = self.current_step()
        if self._filling or step is None:
            return
        step.body = self.body.toPlainText()
        self.update_preview()

    def add_step(self) -> None:
        if len(self.steps) >= STEPS_MAX:
            return
        taken = {s.offset_days for s in self.steps}
        offset = max(taken) + 7 if taken else 0
        while offset in taken or offset > OFFSET_MAX:
            offset = offset + 1 if offset < OFFSET_MAX else OFFSET_MIN
        self.steps.append(_EditStep(offset, NEW_STEP_SUBJECT, NEW_STEP_BODY))
        self._fill_table()
        self._select_step(len(self.steps) - 1)
        self._resort()
        self.subject.setFocus()
        self.status.setText("Step added; Save to keep it.")

    def remove_step(self) -> None:
        row = self.current_row()
        if row is None:
            return
        del self.steps[row]
        self._step_issues = {}
        self._fill_table()
        self._select_step(min(row, len(self.steps) - 1) if self.steps else None)
        self.status.setText("Step removed; Save to keep the change.")

    def reset_steps(self) -> None:
        self.set_steps([_EditStep(o, s, b.rstrip("\n")) for o, s, b in DEFAULT_STEPS])
        self.status.setText("The default schedule is back; Save to keep it.")

    def _insert_placeholder(self, item: QListWidgetItem) -> None:
        text = str(item.data(Qt.ItemDataRole.UserRole))
        target = self._template_target
        if target is self.subject:
            self.subject.insert(text)
        else:
            self.body.insertPlainText(text)
        target.setFocus()

    def update_preview(self) -> None:
        step = self.current_step()
        if step is None:
            self.preview_subject.setText("")
            self.preview_body.setPlainText("")
            self.preview_note.setText("")
            return
        issues: list[Issue] = []
        check_template(step.subject, "subject", "subject", issues, REMINDER_PLACEHOLDERS)
        check_template(step.body, "body", "text", issues, REMINDER_PLACEHOLDERS)
        if issues:
            self.preview_subject.setStyleSheet(ERROR_STYLE + " font-weight: 600;")
            self.preview_subject.setText("The preview cannot be shown:")
            self.preview_body.setStyleSheet(ERROR_STYLE)
            self.preview_body.setPlainText("\n\n".join(i.message for i in issues))
            return
        values = sample_reminder_values(step.offset_days)
        self.preview_subject.setStyleSheet("font-weight: 600;")
        self.preview_subject.setText(" ".join(render(step.subject, values).split()) or "(no subject)")
        self.preview_subject.setCursorPosition(0)
        self.preview_body.setStyleSheet("")
        self.preview_body.setPlainText(render(step.body, values))
        when = step_label(step.offset_days).lower()
        self.preview_note.setText(f"With example values, as it would read {when} (the example is due "
                                  f"{values['due_date']}); each client's e-mail has its own, and the invoice PDF "
                                  "attached.")

    def step_drafts(self) -> list[StepDraft]:
        return [StepDraft(s.offset_days, s.subject, s.body) for s in self.steps]

    # --- late fees ---
    def fee_draft(self) -> LateFeeDraft:
        return LateFeeDraft(
            enabled=self.fees_enabled.isChecked(),
            kind=(LateFeeKind.FLAT if self.kind_flat.isChecked() else LateFeeKind.PERCENT).value,
            flat_amount=self.flat_amount.text(), percent=self.percent.text(), after_days=self.after_days.value(),
            repeat=(LateFeeRepeat.ONCE if self.repeat_once.isChecked() else LateFeeRepeat.MONTHLY).value,
            placement=(LateFeePlacement.NEXT_INVOICE if self.place_next.isChecked()
                       else LateFeePlacement.OWN_INVOICE).value,
            min_balance=self.min_balance.text())

    def _fees_changed(self) -> None:
        on = self.fees_enabled.isChecked()
        for w in self.fee_fields:
            w.setEnabled(on)
        if on:
            self.flat_amount.setEnabled(self.kind_flat.isChecked())
            self.percent.setEnabled(self.kind_percent.isChecked())
        policy, issues = validate_late_fees(self.fee_draft(), self.currency)
        if not on:
            self.fee_sentence.setStyleSheet(NOTICE_STYLES["info"])
            self.fee_sentence.setText("No late fees: turn them on above to set a policy.")
        elif issues:
            self.fee_sentence.setStyleSheet(MUTED_STYLE)
            self.fee_sentence.setText("The policy reads here in words once its fields are complete.")
        else:
            self.fee_sentence.setStyleSheet(NOTICE_STYLES["info"])
            self.fee_sentence.setText(policy.describe(self.currency))

    # --- saving ---
    def check(self) -> list[Issue]:
        """Every problem of the tab at once: the schedule's and the policy's."""
        _steps, step_issues = validate_steps(self.step_drafts())
        _policy, fee_issues = validate_late_fees(self.fee_draft(), self.currency)
        return step_issues + fee_issues

    def show_issues(self, by_field: dict[str, list[str]]) -> None:
        fee_issues = {k: v for k, v in by_field.items() if k in FEE_FIELDS}
        leftover = self.fees_form.show_issues(fee_issues)
        schedule: list[str] = []
        self._step_issues = {}
        for key, messages in by_field.items():
            if key in FEE_FIELDS:
                continue
            schedule.extend(messages)
            if key.startswith("steps[") and "]" in key:
                try:
                    row = int(key[6:key.index("]")]) - 1
                except ValueError:
                    continue
                self._step_issues.setdefault(row, []).extend(messages)
        selected = self.current_row()
        self._fill_table()
        if selected is not None:
            self.table.blockSignals(True)
            self.table.selectRow(selected)
            self.table.blockSignals(False)
        self.schedule_issues.setText("\n".join(f"• {m}" for m in schedule))
        self.schedule_issues.setVisible(bool(schedule))
        count = sum(len(v) for v in by_field.values())
        text = f"Nothing was saved: please correct {count} problem{'s' if count != 1 else ''} first." if count else ""
        if leftover:
            text = "\n".join([text, *leftover])
        self.summary.setText(text)
        self.summary.setVisible(bool(count))
        if schedule:
            self.scroll_area.ensureWidgetVisible(self.schedule_issues, 0, 40)
        elif fee_issues:
            first = self.fees_form.first_invalid()
            if first is not None:
                self.scroll_area.ensureWidgetVisible(first.parentWidget() or first, 0, 16)

    def save(self) -> None:
        issues = self.check()
        if issues:
            self.status.setText("")
            self.show_issues(ValidationError(issues).by_field())
            return
        self.show_issues({})
        enabled, drafts, fee = self.reminders_enabled.isChecked(), self.step_drafts(), self.fee_draft()

        def work(session: Session) -> CollectionSettingsView:
            save_reminders(session, enabled, drafts)
            save_late_fees(session, fee)
            return load_collection_settings(session)

        def re_enable() -> None:
            self.save_button.setEnabled(True)
            self.status.setText("")

        self.save_button.setEnabled(False)
        self.status.setText("Saving…")
        self.ops.save_form(self, work, self._saved, show_issues=self.show_issues, re_enable=re_enable,
                           label="Saving collections settings")

    def _saved(self, view: CollectionSettingsView) -> None:
        selected = self.current_row()
        self._loaded(view)
        if selected is not None and self.steps:
            self._select_step(min(selected, len(self.steps) - 1))
        self.save_button.setEnabled(True)
        self.status.setText("Saved.")
        self.saved.emit()
