"""What can be done to an invoice, shared by the Invoices screen and the invoice window:
issue, void, write off, credit note, delete draft, record payment, charge now.

Each asks what it must (a reason, an amount, a confirmation), runs the core
function through Ops in one transaction, and calls `done` on success.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QDate, Qt
from PySide6.QtWidgets import (
    QDateEdit,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from mspbill.db.models import IN_FLIGHT_STATUSES, ChargeAttempt
from mspbill.invoicing import (
    create_credit_note,
    delete_draft,
    issue_invoices,
    mark_uncollectible,
    void_invoice,
)
from mspbill.money import format_amount
from mspbill.payments.gateway import ProcessorMode
from ui.ops import Ops
from ui.widgets import FieldForm, error_label


@dataclass(frozen=True)
class InvoiceRef:
    """Enough about an invoice to act on it (from an InvoiceRow or InvoiceDetail)."""

    id: int
    number: str | None
    client_name: str
    status: str
    kind: str
    total_cents: int
    balance_cents: int
    currency: str
    settled_cents: int = 0  # paid or credited against it

    @property
    def label(self) -> str:
        return self.number or "this draft"

    @classmethod
    def of(cls, row: object) -> InvoiceRef:
        g = row.__getattribute__
        return cls(g("id"), g("number"), g("client_name"), g("status"), g("kind"), g("total_cents"),
                   g("balance_cents"), g("currency"), g("settled_cents"))


def can_issue(r: InvoiceRef) -> bool:
    return r.status == "draft"


def can_pay(r: InvoiceRef) -> bool:
    return r.kind == "invoice" and r.status in ("open", "uncollectible", "paid")


def can_void(r: InvoiceRef) -> bool:
    # Once anything is paid or credited, the way back is a credit note.
    return r.kind == "invoice" and r.status in ("open", "uncollectible") and r.settled_cents == 0


def can_credit(r: InvoiceRef) -> bool:
    return r.kind == "invoice" and r.status in ("open", "paid", "uncollectible")


def can_write_off(r: InvoiceRef) -> bool:
    return r.kind == "invoice" and r.status == "open"


def can_charge(r: InvoiceRef) -> bool:
    """Issued with something left to pay; the charge dialog says what else stands in the way."""
    return r.kind == "invoice" and r.status in ("open", "uncollectible") and r.balance_cents > 0


def charge_offered(r: InvoiceRef, mode: ProcessorMode | None, in_flight: bool) -> bool:
    """Charge now, as the Invoices list and the invoice window offer it: only with a processor set
    up and no charge of the invoice under way (then "Check status" is the action); the dialog says
    what else stands in the way (no card on file)."""
    return mode is not None and not in_flight and can_charge(r)


def in_flight_invoice_ids(session: Session) -> frozenset[int]:
    """The invoices with a charge under way (sent, processing, or outcome unknown)."""
    return frozenset(session.scalars(select(ChargeAttempt.invoice_id).distinct()
                                     .where(ChargeAttempt.status.in_(IN_FLIGHT_STATUSES))))


class ReasonDialog(QDialog):
    """Asks for a reason (and, for a credit note, an optional amount); core issues shown at the fields."""

    def __init__(self, parent: QWidget | None, title: str, explanation: str, action: str, *,
                 amount_hint: str | None = None):
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setMinimumWidth(460)
        layout = QVBoxLayout(self)
        text = QLabel(explanation)
        text.setWordWrap(True)
        layout.addWidget(text)
        box = QWidget()
        self.form = FieldForm(QFormLayout(box))
        self.amount: QLineEdit | None = None
        if amount_hint is not None:
            self.amount = self.form.add("amount", "Amount before tax", QLineEdit())
            self.amount.setPlaceholderText(amount_hint)
        self.reason = self.form.add("reason", "Reason", QLineEdit())
        self.reason.setPlaceholderText("Kept with the invoice and in its history")
        layout.addWidget(box)
        self.message = error_label()
        layout.addWidget(self.message)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.ok = self.buttons.addButton(action, QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.accepted.connect(self._submit)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.submit: Callable[[ReasonDialog], None] = lambda _d: None

    def _submit(self) -> None:
        self.ok.setEnabled(False)
        self.submit(self)

    def show_issues(self, by_field: dict[str, list[str]]) -> None:
        leftover = self.form.show_issues(by_field)
        self.message.setText("\n".join(leftover))
        self.message.setVisible(bool(leftover))
        self.ok.setEnabled(True)
        self.adjustSize()  # make room for the messages rather than squeezing the fields


@dataclass(frozen=True)
class _Values:
    reason: str
    amount: str | None


def _run_reason(ops: Ops, parent: QWidget | None, dialog: ReasonDialog,
                work: Callable[[Session, _Values], object], done: Callable[[], None], label: str) -> ReasonDialog:
    def submit(d: ReasonDialog) -> None:
        reason = d.reason.text()
        amount = d.amount.text() if d.amount is not None else None

        def job(session: Session) -> object:
            return work(session, _Values(reason, amount))

        def saved(_result: object) -> None:
            d.accept()
            done()

        ops.save_form(d, job, saved, show_issues=d.show_issues, re_enable=lambda: d.ok.setEnabled(True), label=label)

    dialog.submit = submit
    dialog.open()
    return dialog


def void(ops: Ops, parent: QWidget | None, ref: InvoiceRef, done: Callable[[], None]) -> ReasonDialog:
    dialog = ReasonDialog(parent, f"Void {ref.label}",
                          f"Voiding cancels {ref.label} for {ref.client_name} "
                          f"({format_amount(ref.total_cents, ref.currency)}). It keeps its number and stays on "
                          "record as void; nothing is owed on it any more. An invoice generated from an "
                          "agreement is not generated again for its period: to bill that period after all, "
                          "create a one-time invoice.", "Void invoice")
    return _run_reason(ops, parent, dialog, lambda s, v: void_invoice(s, ref.id, v.reason).id, done,
                       "Voiding invoice")


def write_off(ops: Ops, parent: QWidget | None, ref: InvoiceRef, done: Callable[[], None]) -> ReasonDialog:
    dialog = ReasonDialog(parent, f"Write off {ref.label}",
                          f"Mark {ref.label} as uncollectible: its balance of "
                          f"{format_amount(ref.balance_cents, ref.currency)} is no longer chased. A payment that "
                          "arrives later can still be recorded.", "Write off")
    return _run_reason(ops, parent, dialog, lambda s, v: mark_uncollectible(s, ref.id, v.reason).id, done,
                       "Writing off invoice")


def credit(ops: Ops, parent: QWidget | None, ref: InvoiceRef, done: Callable[[], None]) -> ReasonDialog:
    dialog = ReasonDialog(parent, f"Credit note for {ref.label}",
                          f"Issue a credit note on {ref.label} ({format_amount(ref.total_cents, ref.currency)}). "
                          "Leave the amount empty to credit the whole invoice; an amount is before tax and "
                          "its tax is credited too. The credit reduces what the invoice still owes; anything "
                          "beyond that becomes client credit for the next invoice.", "Issue credit note",
                          amount_hint="Empty: the whole invoice")
    return _run_reason(ops, parent, dialog,
                       lambda s, v: create_credit_note(s, ref.id, v.reason, v.amount or None).number, done,
                       "Issuing credit note")


def delete(ops: Ops, parent: QWidget | None, ref: InvoiceRef, done: Callable[[], None],
           confirm: Callable[[str], bool] | None = None) -> QMessageBox | None:
    """Delete a draft after a confirmation.

    With `confirm` (a callable answering the question), it is asked synchronously;
    otherwise a window-modal question box is opened (not exec'd, so nothing blocks)
    and returned, and the draft is deleted when the user answers Yes.
    """
    text = (f"Delete this draft for {ref.client_name} ({format_amount(ref.total_cents, ref.currency)})?\n\n"
            "Drafts have no number, so this leaves no gap. A draft generated from an agreement is "
            "created again the next time you generate its period.")

    def go() -> None:
        ops.write(parent, lambda s: delete_draft(s, ref.id), lambda _r: done(), label="Deleting draft")

    if confirm is not None:
        if confirm(text):
            go()
        return None
    box = QMessageBox(QMessageBox.Icon.Question, "Delete draft", text,
                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, parent)
    box.setDefaultButton(QMessageBox.StandardButton.No)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

    def answered(button: object) -> None:
        if box.standardButton(button) == QMessageBox.StandardButton.Yes:  # type: ignore[arg-type]
            go()

    box.buttonClicked.connect(answered)
    box.open()
    return box


class IssueDialog(QDialog):
    """Confirms issuing drafts and asks for the issue date."""

    def __init__(self, parent: QWidget | None, count: int, total_text: str):
        super().__init__(parent)
        self.setWindowTitle("Issue invoices")
        layout = QVBoxLayout(self)
        text = QLabel(f"Issue {count} draft invoice{'s' if count != 1 else ''} ({total_text})?\n\n"
                      "Each gets the next invoice number and its due date from the client's terms "
                      "(autopay clients: due on issue). Issued invoices cannot be edited, only voided "
                      "or credited.")
        text.setWordWrap(True)
        layout.addWidget(text)
        form = QFormLayout()
        today = dt.date.today()
        self.date = QDateEdit(QDate(today.year, today.month, today.day))
        self.date.setCalendarPopup(True)
        self.date.setDisplayFormat("yyyy-MM-dd")
        form.addRow("Issue date", self.date)
        layout.addLayout(form)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        buttons.addButton("Issue", QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def issue_date(self) -> dt.date:
        q = self.date.date()
        return dt.date(q.year(), q.month(), q.day())


def issue(ops: Ops, parent: QWidget | None, refs: list[InvoiceRef], done: Callable[[list[str]], None]) -> IssueDialog:
    drafts = [r for r in refs if can_issue(r)]
    totals: dict[str, int] = {}
    for r in drafts:
        totals[r.currency] = totals.get(r.currency, 0) + r.total_cents
    dialog = IssueDialog(parent, len(drafts), ", ".join(format_amount(v, c) for c, v in totals.items()))
    ids = [r.id for r in drafts]

    def accepted() -> None:
        day = dialog.issue_date()
        ops.write(parent, lambda s: issue_invoices(s, ids, day), done, label="Issuing invoices")

    dialog.accepted.connect(accepted)
    dialog.open()
    return dialog


def record_payment(ops: Ops, parent: QWidget | None, ref: InvoiceRef, done: Callable[[], None]) -> QDialog:
    from ui.payment_dialog import RecordPaymentDialog

    dialog = RecordPaymentDialog(ops, parent, invoice_id=ref.id)
    dialog.saved.connect(lambda _id: done())
    dialog.open()
    return dialog


def charge(ops: Ops, parent: QWidget | None, ref: InvoiceRef, done: Callable[[], None]) -> QDialog:
    """Charge the balance to the client's default card or bank account now."""
    from ui.charge_dialog import ChargeDialog

    dialog = ChargeDialog(ops, parent, ref.id)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.charged.connect(lambda _id: done())
    dialog.open()
    return dialog


def refund(ops: Ops, parent: QWidget | None, payment_id: int, done: Callable[[], None]) -> QDialog:
    """Give back all or part of a payment taken through the processor."""
    from ui.charge_dialog import RefundDialog

    dialog = RefundDialog(ops, parent, payment_id)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.refunded.connect(lambda _id: done())
    dialog.open()
    return dialog
