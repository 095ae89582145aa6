"""Generate a period: preview what would be created (and what is left out, and
why), then create the drafts, optionally issuing them at once; when invoices
were issued and e-mail is set up, e-mail them all in one go."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy.orm import Session

from mspbill.generation import (
    GenerationPlan,
    GenerationResult,
    generate_period,
    plan_period,
)
from mspbill.invoicing import drafts_for_month, issue_invoices
from mspbill.mail import is_configured
from mspbill.money import format_amount
from mspbill.periods import Month
from ui.email_actions import EmailRunner, email_invoices
from ui.invoice_dialog import _fill, _table
from ui.ops import Ops


def default_month(today: dt.date) -> Month:
    """Billing is in advance: late in a month, the office is preparing the next one."""
    now = Month.of(today)
    return now.shift(1) if today.day >= 15 else now


@dataclass(frozen=True)
class GenerateOutcome:
    result: GenerationResult
    numbers: list[str]      # of the invoices issued, in order
    issued_ids: list[int]   # the same invoices' ids
    mail_configured: bool


class GenerateDialog(QDialog):
    generated = Signal(str, str)  # the month ("YYYY-MM") and what was done, in words
    previewed = Signal()

    def __init__(self, ops: Ops, parent: QWidget | None = None, *, today: dt.date | None = None):
        super().__init__(parent)
        self.ops = ops
        self.plan: GenerationPlan | None = None
        self._creating = False
        self.issued_ids: list[int] = []
        self.setWindowTitle("Generate a period's invoices")
        self.setMinimumSize(900, 600)
        today = today or dt.date.today()
        layout = QVBoxLayout(self)
        intro = QLabel("Every active agreement due in the period gets one draft invoice, billed in advance; "
                       "starts, ends and mid-period changes are prorated by day. Running a period again "
                       "creates only what is missing.")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        row = QHBoxLayout()
        row.addWidget(QLabel("Period"))
        self.period = QComboBox()
        now = Month.of(today)
        for k in range(-3, 4):
            m = now.shift(k)
            self.period.addItem(m.label, str(m))
        self.period.setCurrentIndex(self.period.findData(str(default_month(today))))
        self.period.currentIndexChanged.connect(lambda _i: self.preview())
        row.addWidget(self.period)
        row.addStretch()
        layout.addLayout(row)
        self.summary = QLabel("Working out the preview…")
        self.summary.setStyleSheet("font-size: 15px; font-weight: 600;")
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        self.tabs = QTabWidget()
        self.create_table = _table(("Client", "Invoice", "Notes", "Subtotal", "Tax", "Total"), right=(3, 4, 5))
        header = self.create_table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        for col, width in ((0, 210), (2, 110), (3, 95), (4, 75), (5, 95)):
            self.create_table.setColumnWidth(col, width)
        self.left_out_table = _table(("Client", "Agreement", "Reason"))
        self.left_out_table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.left_out_table.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.left_out_table.setColumnWidth(0, 210)
        self.left_out_table.setColumnWidth(1, 260)
        self.tabs.addTab(self.create_table, "To create")
        self.tabs.addTab(self.left_out_table, "Left out")
        layout.addWidget(self.tabs, 1)
        self.issue_now = QCheckBox("Issue this period's drafts straight away (numbers and due dates assigned today)")
        self.issue_now.toggled.connect(lambda _c: self._update_create())
        layout.addWidget(self.issue_now)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.create_button = self.buttons.addButton("Create", QDialogButtonBox.ButtonRole.AcceptRole)
        self.create_button.setEnabled(False)
        self.buttons.accepted.connect(self.create_drafts)
        self.buttons.rejected.connect(self.reject)
        # Shown once the run has issued invoices and e-mail is set up.
        self.email_button = self.buttons.addButton("E-mail all new invoices", QDialogButtonBox.ButtonRole.ActionRole)
        self.email_button.setToolTip("E-mail each client its new invoice with the PDF attached, with progress; "
                                     "invoices of clients without a billing e-mail are listed")
        self.email_button.clicked.connect(self.email_new_invoices)
        self.email_button.hide()
        layout.addWidget(self.buttons)
        self.preview()

    def month(self) -> Month:
        text = self.period.currentData()
        return Month(int(text[:4]), int(text[5:]))

    def preview(self) -> None:
        month = self.month()
        self.create_button.setEnabled(False)
        self.summary.setText(f"Working out {month.label}…")
        self.ops.read(self, lambda s: plan_period(s, month), self._show, label="Previewing period")

    def _show(self, plan: GenerationPlan) -> None:
        if plan.month != self.month():
            return  # the user picked another period meanwhile; its preview follows
        self.plan = plan
        text = plan.summary()
        if plan.invoices:
            totals = plan.totals_by_currency()
            text += " Subtotal " + ", ".join(format_amount(t.subtotal_cents, c) for c, t in totals.items())
            text += ", tax " + ", ".join(format_amount(t.tax_cents, c) for c, t in totals.items()) + "."
        if plan.instalments_due:
            text += f" {plan.instalments_due} instalment(s) also fall due this month (issued with the period)."
        self.summary.setText(text)
        _fill(self.create_table, [[inv.client_name, inv.title, inv.notes,
                                   format_amount(inv.totals.subtotal_cents, inv.currency),
                                   format_amount(inv.totals.tax_cents, inv.currency),
                                   format_amount(inv.totals.total_cents, inv.currency)] for inv in plan.invoices])
        _fill(self.left_out_table, [[x.client_name, x.agreement_name, x.reason] for x in plan.left_out])
        self.tabs.setTabText(0, f"To create ({len(plan.invoices)})")
        self.tabs.setTabText(1, f"Left out ({len(plan.left_out)})")
        self._update_create()
        self.previewed.emit()

    def _update_create(self) -> None:
        plan = self.plan
        if plan is None or plan.month != self.month() or self._creating:
            self.create_button.setEnabled(False)
            return
        count = len(plan.invoices)
        issue = self.issue_now.isChecked()
        s = "s" if count != 1 else ""
        if count:
            text = f"Create {count} draft{s}, then issue" if issue else f"Create {count} draft{s}"
        elif issue and (plan.instalments_due or plan.drafts_waiting):
            waiting = plan.instalments_due + plan.drafts_waiting
            text = f"Issue {waiting} draft{'s' if waiting != 1 else ''}"
        else:
            text = "Nothing to create"
        self.create_button.setText(text)
        self.create_button.setEnabled(count > 0 or (issue and plan.instalments_due + plan.drafts_waiting > 0))

    def create_drafts(self) -> None:
        month = self.month()
        issue = self.issue_now.isChecked()
        self._creating = True
        self.create_button.setEnabled(False)

        def work(session: Session) -> GenerateOutcome:
            result = generate_period(session, month)
            ids = drafts_for_month(session, month) if issue else []
            numbers = issue_invoices(session, ids) if ids else []
            return GenerateOutcome(result, numbers, ids, is_configured(session))

        self.ops.write(self, work, self._created, on_failure=self._failed, label="Generating invoices")

    def _failed(self, _exc: BaseException) -> bool:
        self._creating = False
        self._update_create()
        return False  # the error dialog explains

    def _created(self, outcome: GenerateOutcome) -> None:
        result, numbers = outcome.result, outcome.numbers
        label = result.plan.month.label
        text = f"Created {result.created} draft invoice{'s' if result.created != 1 else ''} for {label}."
        if numbers:
            many = len(numbers) != 1
            text = (f"Created {result.created} invoice{'s' if result.created != 1 else ''} for {label} and "
                    f"issued {len(numbers)} draft{'s' if many else ''}: "
                    + (f"{numbers[0]} to {numbers[-1]}." if many else f"{numbers[0]}."))
        elif result.created:
            text += "\nThey are drafts: review them on the Invoices screen, then Issue."
        self.result_text = text
        self.issued_ids = list(outcome.issued_ids)
        if self.issued_ids and outcome.mail_configured:
            # Stay open with the one thing left to do: e-mail them.
            self._offer_email(text)
            self.generated.emit(str(result.plan.month), text)
            return
        self.accept()
        self.generated.emit(str(result.plan.month), text)

    def _offer_email(self, text: str) -> None:
        count = len(self.issued_ids)
        self.summary.setText(text + f" E-mail {'it' if count == 1 else 'them'} to the client"
                             f"{'' if count == 1 else 's'} now?")
        self.period.setEnabled(False)
        self.issue_now.hide()
        self.create_button.hide()
        self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setText("Close")
        self.email_button.setText("E-mail the new invoice" if count == 1 else f"E-mail all {count} new invoices")
        self.email_button.show()
        self.email_button.setDefault(True)
        self.email_button.setFocus()

    def email_new_invoices(self) -> None:
        """Queue and send the issued invoices; progress and the summary show over the screen behind."""
        ids = list(self.issued_ids)
        if not ids:
            return
        parent = self.parentWidget()
        self.accept()
        email_invoices(parent, self.ops, EmailRunner.for_ops(self.ops), ids)
