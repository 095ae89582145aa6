"""Charge an invoice now, refund a processor payment, and the once-a-session
confirmation before real money moves in live mode.

Both dialogs load their plan from the core (what would happen, and why it
cannot), run the processor call through Ops, and then show the core's outcome
sentence in place of the form.  Nothing is charged or refunded from the UI
thread, and a failure that the processor explains is shown in the dialog, not
as an error box.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from html import escape

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy.orm import Session

from mspbill.db.models import ChargeAttemptStatus, RefundStatus
from mspbill.money import MoneyError, format_amount, parse_amount
from mspbill.payments.charges import (
    ChargeOutcome,
    ChargePlan,
    charge_invoice,
    plan_charge,
)
from mspbill.payments.gateway import ProcessorMode
from mspbill.payments.refunds import (
    RefundOutcome,
    RefundPlan,
    plan_refund,
    refund_payment,
)
from mspbill.validation import ValidationError
from ui.ops import Ops
from ui.payment_widgets import (
    ModeBadge,
    PaymentSession,
    office_mode_and_note,
    processor_message,
)
from ui.widgets import (
    ERROR_STYLE,
    MUTED_STYLE,
    WARNING_STYLE,
    FieldForm,
    error_label,
    heading,
    notice_label,
    show_notice,
)

CREDIT_NOTE_ON = ("A credit note of the refunded amount is issued with the refund, so the invoice stays settled "
                  "and the client's statement shows the money given back.")
CREDIT_NOTE_OFF = ("Without a credit note the invoice shows the refunded amount as due again: untick this only "
                   "when the client still owes it (for example, they will pay it another way).")


# --- live mode: once per session ------------------------------------------------------


class LiveConfirmDialog(QDialog):
    """Names real money, the amount and the client; the button waits for the checkbox."""

    def __init__(self, parent: QWidget | None, *, verb: str, amount_text: str, client_name: str, what: str,
                 money_line: str):
        super().__init__(parent)
        self.setWindowTitle("Stripe LIVE — real money")
        self.setMinimumWidth(500)
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        top.addWidget(ModeBadge(ProcessorMode.LIVE))
        top.addStretch()
        layout.addLayout(top)
        title = heading(f"{verb.capitalize()} {amount_text} of real money?", 16)
        title.setWordWrap(True)
        layout.addWidget(title)
        self.text = QLabel(
            f"mspbill is connected to Stripe with a <b>live</b> key. This {verb}s <b>{escape(amount_text)}</b> "
            f"to <b>{escape(client_name)}</b> ({escape(what)}). {escape(money_line)}"
            "<br><br>mspbill asks once each time it is started; later charges and refunds go ahead without "
            "this question until you quit.")
        self.text.setWordWrap(True)
        self.text.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(self.text)
        self.understood = QCheckBox(f"I understand this {verb}s real money")
        layout.addWidget(self.understood)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.go = self.buttons.addButton(f"{verb.capitalize()} {amount_text}", QDialogButtonBox.ButtonRole.AcceptRole)
        self.go.setEnabled(False)
        self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setDefault(True)
        self.understood.toggled.connect(self.go.setEnabled)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)


def confirm_live(session: PaymentSession, parent: QWidget | None, mode: ProcessorMode | None, *, verb: str,
                 amount_text: str, client_name: str, what: str, money_line: str, proceed: Callable[[], None]
                 ) -> LiveConfirmDialog | None:
    """Call `proceed` now, or -- live mode, not yet confirmed in this session -- after the
    confirmation dialog is accepted.  Returns the dialog while it is open."""
    if mode is not ProcessorMode.LIVE or session.live_confirmed:
        proceed()
        return None
    dialog = LiveConfirmDialog(parent, verb=verb, amount_text=amount_text, client_name=client_name, what=what,
                               money_line=money_line)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

    def accepted() -> None:
        session.live_confirmed = True  # for this run of the app only: never saved
        proceed()

    dialog.accepted.connect(accepted)
    dialog.open()
    return dialog


# --- shared shape ---------------------------------------------------------------------


class _MoneyDialog(QDialog):
    """Badge, a form, problems, a result, and [Cancel] [Do it] that turns into [Close]."""

    def __init__(self, ops: Ops, parent: QWidget | None, title: str, action_text: str):
        super().__init__(parent)
        self.ops = ops
        self.session = PaymentSession.for_ops(ops)
        self.setWindowTitle(title)
        self.setMinimumWidth(520)
        self.mode: ProcessorMode | None = None
        self.confirm_dialog: LiveConfirmDialog | None = None
        layout = self.main_layout = QVBoxLayout(self)
        top = QHBoxLayout()
        self.heading = heading(title, 16)
        top.addWidget(self.heading)
        top.addStretch()
        self.badge = ModeBadge()  # hidden until the mode is known
        top.addWidget(self.badge)
        layout.addLayout(top)
        self.body = QWidget()
        self.form_layout = QFormLayout(self.body)
        self.form_layout.setContentsMargins(0, 4, 0, 4)
        self.form = FieldForm(self.form_layout)
        layout.addWidget(self.body)
        self.problems = error_label()
        layout.addWidget(self.problems)
        self.result_label = notice_label()
        layout.addWidget(self.result_label)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.go = self.buttons.addButton(action_text, QDialogButtonBox.ButtonRole.AcceptRole)
        self.go.setEnabled(False)
        self.buttons.accepted.connect(self._go_clicked)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)

    def add_row(self, label: str, text: str = "") -> QLabel:
        value = QLabel(text)
        value.setWordWrap(True)
        value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.form_layout.addRow(label, value)
        return value

    def show_problems(self, problems: list[str]) -> None:
        self.problems.setText("\n".join(f"• {p}" for p in problems) if len(problems) > 1 else "".join(problems))
        self.problems.setVisible(bool(problems))
        self.fit()

    def fit(self) -> None:
        """Take the height the content needs at the current width, after a line was shown,
        hidden or reworded: wrapped text is never cut and no gap is left."""
        if not self.isVisible():
            return  # showing it sizes it
        layout = self.main_layout
        layout.invalidate()
        layout.activate()
        width = self.width()
        height = (layout.totalHeightForWidth(width) if layout.hasHeightForWidth()
                  else layout.totalSizeHint().height())
        self.resize(width, max(height, layout.totalMinimumSize().height()))

    def set_mode(self, mode: ProcessorMode | None) -> None:
        self.mode = mode
        self.badge.set_mode(mode)

    def finished_with(self, text: str, kind: str) -> None:
        """The outcome replaces the action: only Close is left."""
        show_notice(self.result_label, text, kind)
        self.go.hide()
        cancel = self.buttons.button(QDialogButtonBox.StandardButton.Cancel)
        cancel.setText("Close")
        cancel.setDefault(True)
        self.fit()

    def _go_clicked(self) -> None:
        raise NotImplementedError


# --- charge now -----------------------------------------------------------------------


@dataclass(frozen=True)
class _ChargeLoad:
    plan: ChargePlan
    mode: ProcessorMode | None
    not_configured: str


CHARGE_KINDS = {ChargeAttemptStatus.SUCCEEDED: "ok", ChargeAttemptStatus.PROCESSING: "info",
                ChargeAttemptStatus.DECLINED: "error", ChargeAttemptStatus.NOT_CHARGED: "error",
                ChargeAttemptStatus.UNKNOWN: "warn", ChargeAttemptStatus.PENDING: "warn"}


class ChargeDialog(_MoneyDialog):
    """Charge the invoice's balance to the client's default method now."""

    charged = Signal(int)  # the invoice id, after any attempt (its state changed)

    def __init__(self, ops: Ops, parent: QWidget | None, invoice_id: int):
        super().__init__(ops, parent, "Charge now", "Charge")
        self.invoice_id = invoice_id
        self.plan: ChargePlan | None = None
        self.outcome: ChargeOutcome | None = None
        self.client = self.add_row("Client")
        self.invoice = self.add_row("Invoice")
        self.amount = self.add_row("Amount")
        self.amount.setStyleSheet("font-size: 15px; font-weight: 600;")
        self.method = self.add_row("Charged to")
        self.cap_note = QLabel()
        self.cap_note.setWordWrap(True)
        self.cap_note.setStyleSheet(WARNING_STYLE)
        self.cap_note.hide()
        self.main_layout.insertWidget(2, self.cap_note)
        self.loading = QLabel("Checking the invoice and the client's payment method…")
        self.loading.setStyleSheet(MUTED_STYLE)
        self.main_layout.insertWidget(1, self.loading)
        self.load()

    def load(self) -> None:
        invoice_id = self.invoice_id

        def work(s: Session) -> _ChargeLoad:
            mode, note = office_mode_and_note(s)
            return _ChargeLoad(plan_charge(s, invoice_id, mode), mode, note)

        self.ops.read(self, work, self._loaded, label="Preparing the charge")

    def _loaded(self, load: _ChargeLoad) -> None:
        plan = self.plan = load.plan
        self.loading.hide()
        self.set_mode(load.mode)
        self.client.setText(plan.client_name)
        self.invoice.setText(plan.invoice_number)
        self.amount.setText(plan.amount_text)
        self.method.setText(plan.method_label or "—")
        if plan.over_cap and plan.cap_cents is not None:
            self.cap_note.setText(
                f"{plan.amount_text} is above {plan.client_name}'s autopay cap of "
                f"{format_amount(plan.cap_cents, plan.currency)}. Autopay would wait for your approval; "
                "charging now counts as that approval.")
            self.cap_note.show()
        problems = list(plan.problems)
        if load.not_configured and load.not_configured not in " ".join(problems):
            problems = [load.not_configured, *[p for p in problems if "No payment processor" not in p]]
        self.show_problems(problems)
        self.go.setText(f"Charge {plan.amount_text}")
        self.go.setEnabled(not problems)
        if not problems:
            self.go.setDefault(True)
        self.adjustSize()  # the loading line is gone; notes and problems may have come

    def _go_clicked(self) -> None:
        plan = self.plan
        if plan is None or not self.go.isEnabled():
            return
        self.confirm_dialog = confirm_live(
            self.session, self, self.mode, verb="charge", amount_text=plan.amount_text,
            client_name=plan.client_name, what=f"{plan.method_label}, for {plan.invoice_number}",
            money_line="This is real money, taken from the client's card or bank account.", proceed=self._charge)

    def _charge(self) -> None:
        plan = self.plan
        assert plan is not None
        self.go.setEnabled(False)
        self.go.setText("Charging…")
        invoice_id, approve = self.invoice_id, plan.over_cap
        job = self.session.with_gateway(
            lambda db, gateway: charge_invoice(db, gateway, invoice_id, approve_over_cap=approve))
        self.ops.run(self, job, on_success=self._charged, on_failure=self._failed, label="Charging the invoice")

    def _charged(self, outcome: ChargeOutcome) -> None:
        self.outcome = outcome
        self.finished_with(outcome.message, CHARGE_KINDS.get(outcome.status, "warn"))
        self.charged.emit(self.invoice_id)

    def _failed(self, exc: BaseException) -> bool:
        message = processor_message(exc)
        if message is None:
            self.go.setEnabled(True)
            return False  # a bug: the error dialog explains
        if isinstance(exc, ValidationError):
            # Refused before anything was sent (another window charged it, the method changed):
            # the plan, read again, says why.
            self.load()
            return True
        self.finished_with(f"Nothing was charged. {message}", "error")
        self.charged.emit(self.invoice_id)  # the attempt is on record
        return True


# --- refund ---------------------------------------------------------------------------


REFUND_KINDS = {RefundStatus.SUCCEEDED: "ok", RefundStatus.PENDING: "info", RefundStatus.FAILED: "error",
                RefundStatus.UNKNOWN: "warn", RefundStatus.REQUESTED: "warn"}


class RefundDialog(_MoneyDialog):
    """Give back all or part of a payment taken through the processor."""

    refunded = Signal(int)  # the payment id

    def __init__(self, ops: Ops, parent: QWidget | None, payment_id: int):
        super().__init__(ops, parent, "Refund payment", "Refund")
        self.payment_id = payment_id
        self.plan: RefundPlan | None = None
        self.outcome: RefundOutcome | None = None
        self.client = self.add_row("Client")
        self.payment = self.add_row("Payment")
        self.refundable = self.add_row("Refundable")
        self.refundable.setStyleSheet("font-weight: 600;")
        self.amount_field = self.form.add("amount", "Amount", QLineEdit())
        self.amount_field.setMaximumWidth(160)
        self.reason = self.form.add("reason", "Reason", QLineEdit())
        self.reason.setPlaceholderText("Required: kept in the invoice's history (e.g. service cancelled)")
        self.credit_note = QCheckBox("The client no longer owes this amount (issue a credit note)")
        self.credit_note.setChecked(True)
        self.credit_explained = QLabel(CREDIT_NOTE_ON)
        self.credit_explained.setWordWrap(True)
        self.credit_explained.setStyleSheet(MUTED_STYLE)
        box = QWidget()
        bl = QVBoxLayout(box)
        bl.setContentsMargins(0, 0, 0, 0)
        bl.setSpacing(2)
        bl.addWidget(self.credit_note)
        bl.addWidget(self.credit_explained)
        self.form_layout.addRow("", box)
        self.credit_note.toggled.connect(self._credit_note_toggled)
        self.amount_field.textChanged.connect(lambda _t: self._amount_changed())
        self.reason.textChanged.connect(lambda _t: self._update_button())
        self.load()

    def load(self) -> None:
        payment_id = self.payment_id
        self.ops.read(self, lambda s: plan_refund(s, payment_id), self._loaded, label="Preparing the refund")

    def _loaded(self, plan: RefundPlan) -> None:
        self.plan = plan
        self.set_mode(plan.mode)
        self.client.setText(plan.client_name)
        paid = format_amount(plan.amount_cents, plan.currency)
        self.payment.setText(f"{paid} by {plan.method_label}" + (f" on {plan.invoice_number}"
                                                                  if plan.invoice_number else ""))
        text = format_amount(plan.refundable_cents, plan.currency)
        if plan.refunded_cents:
            text += f" (already refunded: {format_amount(plan.refunded_cents, plan.currency)})"
        self.refundable.setText(text)
        self.amount_field.setPlaceholderText(format_amount(plan.refundable_cents, plan.currency, symbol=False))
        self.amount_field.setToolTip("Leave empty to refund all that can be refunded.")
        self.show_problems(plan.problems)
        for editor in (self.amount_field, self.reason, self.credit_note):
            editor.setEnabled(not plan.problems)
        self._update_button()

    def _credit_note_toggled(self, on: bool) -> None:
        self.credit_explained.setText(CREDIT_NOTE_ON if on else CREDIT_NOTE_OFF)
        self.fit()  # the two explanations differ in length

    def over_refundable(self) -> bool:
        """The amount typed is more than can be refunded."""
        cents = self.amount_cents()
        return self.plan is not None and cents is not None and cents > self.plan.refundable_cents

    def _amount_changed(self) -> None:
        plan = self.plan
        # Said at once, as the core would say it, instead of after a click on a button that cannot work.
        self.form.rows["amount"].set_error(
            [f"At most {format_amount(plan.refundable_cents, plan.currency)} of this payment can be refunded."]
            if plan is not None and self.over_refundable() else None)
        self._update_button()
        self.fit()

    def amount_cents(self) -> int | None:
        """What the button would refund; None when the amount typed is not an amount."""
        plan = self.plan
        if plan is None:
            return None
        text = self.amount_field.text().strip()
        if not text:
            return plan.refundable_cents
        try:
            return parse_amount(text, plan.currency)
        except MoneyError:
            return None

    def _update_button(self) -> None:
        plan = self.plan
        if plan is None or self.result_label.isVisible():
            return
        cents = self.amount_cents()
        # Nothing that cannot be refunded is offered: not an amount, zero or less, or above the refundable.
        valid = cents is not None and 0 < cents <= plan.refundable_cents
        self.go.setText(f"Refund {format_amount(cents, plan.currency)}" if valid and cents else "Refund")
        self.go.setEnabled(not plan.problems and bool(self.reason.text().strip()) and valid)

    def _go_clicked(self) -> None:
        plan, cents = self.plan, self.amount_cents()
        if plan is None or not self.go.isEnabled() or not cents or self.over_refundable():
            return
        self.confirm_dialog = confirm_live(
            self.session, self, self.mode, verb="refund", amount_text=format_amount(cents, plan.currency),
            client_name=plan.client_name,
            what=f"{plan.method_label}" + (f", paid on {plan.invoice_number}" if plan.invoice_number else ""),
            money_line="This is real money, given back from your Stripe balance.", proceed=self._refund)

    def _refund(self) -> None:
        self.form.show_issues({})
        self.go.setEnabled(False)
        self.go.setText("Refunding…")
        payment_id, amount = self.payment_id, self.amount_field.text().strip() or None
        reason, credit_note = self.reason.text(), self.credit_note.isChecked()
        job = self.session.with_gateway(lambda db, gateway: refund_payment(
            db, gateway, payment_id, amount=amount, reason=reason, credit_note=credit_note))
        self.ops.run(self, job, on_success=self._refunded, on_failure=self._failed, label="Refunding")

    def _refunded(self, outcome: RefundOutcome) -> None:
        self.outcome = outcome
        for editor in (self.amount_field, self.reason, self.credit_note):
            editor.setEnabled(False)
        self.finished_with(outcome.message, REFUND_KINDS.get(outcome.status, "warn"))
        self.refunded.emit(self.payment_id)

    def _failed(self, exc: BaseException) -> bool:
        if isinstance(exc, ValidationError):
            leftover = self.form.show_issues(exc.by_field())
            self.show_problems(leftover)  # fits the dialog to the messages at the fields too
            self._update_button()
            return True
        message = processor_message(exc)
        if message is None:
            self._update_button()
            return False
        self.problems.setStyleSheet(ERROR_STYLE)
        self.show_problems([f"Nothing was refunded. {message}"])
        self._update_button()
        return True
