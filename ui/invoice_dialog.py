"""One invoice: who it bills, its lines and totals, payments, credit notes, history and
charge attempts, with the actions its state allows (charge now, refund a processor
payment, check a charge's status) and its PDF (preview, print, save)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy.orm import Session

from mspbill.collections.late_fees import FeeRow, list_fees
from mspbill.collections.reminders import InvoiceReminders, invoice_reminders
from mspbill.db.models import IN_FLIGHT_STATUSES, Invoice, InvoiceKind
from mspbill.invoicing import InvoiceDetail, invoice_detail
from mspbill.money import format_amount, format_decimal
from mspbill.payments.charges import (
    AttemptRow,
    ChargeOutcome,
    attempts_for_invoice,
    resolve_attempt,
)
from mspbill.payments.gateway import ProcessorMode
from mspbill.payments.processor import office_mode
from mspbill.payments.refunds import refunded_by_payment
from mspbill.periods import Month
from ui import invoice_actions as actions
from ui.charge_dialog import CHARGE_KINDS
from ui.invoice_actions import InvoiceRef
from ui.invoices_screen import (
    can_email,
    email_invoice_ids,
    preview_invoice,
    print_invoice,
    save_invoice_pdf,
    status_text,
)
from ui.ops import Ops
from ui.payment_widgets import PaymentSession, processor_failure, refundable_payment_ids
from ui.widgets import notice_label, show_notice

STATUS_COLORS = {"draft": "#5f6368", "open": "#1a73e8", "paid": "#188038", "void": "#5f6368",
                 "uncollectible": "#b3261e"}


ATTEMPT_STATUS = {"pending": "Being sent", "processing": "Processing (bank debit)", "succeeded": "Succeeded",
                  "declined": "Declined", "unknown": "Outcome unknown", "not_charged": "Not charged"}


@dataclass(frozen=True)
class ProcessorFacts:
    """What the invoice window shows about charging: attempts, which payments can be refunded."""

    mode: ProcessorMode | None = None
    attempts: list[AttemptRow] = field(default_factory=list)
    processor_payment_ids: frozenset[int] = frozenset()
    refunded: dict[int, int] = field(default_factory=dict)

    @property
    def in_flight(self) -> AttemptRow | None:
        return next((a for a in self.attempts if a.status in IN_FLIGHT_STATUSES), None)


def processor_facts(session: Session, invoice_id: int) -> ProcessorFacts:
    ids = refundable_payment_ids(session, invoice_id=invoice_id)
    return ProcessorFacts(office_mode(session), attempts_for_invoice(session, invoice_id), ids,
                          refunded_by_payment(session, sorted(ids)) if ids else {})


REMINDER_STATUS = {"sent": "Sent", "queued": "In the Outbox", "failed": "Failed", "withdrawn": "Withdrawn",
                   "skipped": "Skipped", "due": "Due now", "upcoming": "Upcoming"}
FEE_STATUS = {"pending": "Pending", "billed": "Billed", "waived": "Waived"}


def collections_today() -> dt.date:
    """The day the reminders section is worked out for (tests replace it)."""
    return dt.date.today()


@dataclass(frozen=True)
class CollectionFacts:
    """What the Reminders & late fees tab shows: the invoice's reminders (taken, missed, to
    come) and its late fees: those charged for it being late and those billed on it."""

    reminders: InvoiceReminders
    fees: tuple[FeeRow, ...]


def collection_facts(session: Session, invoice_id: int, today: dt.date) -> CollectionFacts | None:
    """None for a credit note, or an invoice deleted meanwhile."""
    inv = session.get(Invoice, invoice_id)
    if inv is None or inv.kind is InvoiceKind.CREDIT_NOTE:
        return None
    fees = {f.id: f for f in list_fees(session, invoice_id=invoice_id)}
    fees.update({f.id: f for f in list_fees(session, billed_on=invoice_id)})
    return CollectionFacts(invoice_reminders(session, invoice_id, today),
                           tuple(sorted(fees.values(), key=lambda f: (f.assessed_on, f.id))))


def _table(headers: tuple[str, ...], right: tuple[int, ...] = (), center: tuple[int, ...] = ()) -> QTableWidget:
    t = QTableWidget(0, len(headers))
    t.setHorizontalHeaderLabels(headers)
    t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    t.verticalHeader().hide()
    t.setAlternatingRowColors(True)
    t.setWordWrap(False)
    t.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    t.setProperty("right_columns", right)
    t.setProperty("center_columns", center)
    return t


def _fill(t: QTableWidget, rows: list[list[str]]) -> None:
    right = t.property("right_columns") or ()
    center = t.property("center_columns") or ()
    t.setRowCount(len(rows))
    for r, cells in enumerate(rows):
        for c, text in enumerate(cells):
            item = QTableWidgetItem(text)
            if c in right:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            elif c in center:
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
            if len(text) > 30:  # columns are narrow; the whole text on hover
                item.setToolTip(text)
            t.setItem(r, c, item)


class InvoiceDialog(QDialog):
    changed = Signal(int)
    loaded = Signal()

    def __init__(self, ops: Ops, invoice_id: int, parent: QWidget | None = None):
        super().__init__(parent)
        self.ops = ops
        self.invoice_id = invoice_id
        self.detail: InvoiceDetail | None = None
        self.facts = ProcessorFacts()
        self.setWindowTitle("Invoice")
        self.setMinimumSize(820, 640)
        self._build()
        self.reload()

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        head = QHBoxLayout()
        self.title = QLabel("Loading…")
        self.title.setStyleSheet("font-size: 20px; font-weight: 600;")
        self.status = QLabel()
        self.status.setStyleSheet("font-size: 13px; padding: 2px 8px; border-radius: 8px;")
        head.addWidget(self.title)
        head.addWidget(self.status)
        head.addStretch()
        # The PDF, whatever the state: a draft shows with its DRAFT watermark.
        self.preview_button = QPushButton("Preview PDF")
        self.print_button = QPushButton("Print…")
        self.print_button.setToolTip("Print this invoice (Ctrl+P)")
        self.save_pdf_button = QPushButton("Save PDF…")
        self.email_button = QPushButton("E-mail…")
        self.email_button.setToolTip("E-mail this invoice to the client with the PDF attached")
        for button, handler in ((self.preview_button, self.preview_pdf), (self.print_button, self.print_pdf),
                                (self.save_pdf_button, self.save_pdf), (self.email_button, self.email)):
            button.setAutoDefault(False)
            button.clicked.connect(lambda _c=False, h=handler: h())
            head.addWidget(button)
        self.print_action = QAction("Print…", self)
        self.print_action.setShortcut(QKeySequence.StandardKey.Print)
        self.print_action.triggered.connect(lambda: self.print_pdf())
        self.addAction(self.print_action)
        layout.addLayout(head)
        self.subtitle = QLabel()
        self.subtitle.setStyleSheet("color: #5f6368;")
        self.subtitle.setWordWrap(True)
        layout.addWidget(self.subtitle)
        self.pdf_notice = notice_label()  # how the last print, save or status check went
        layout.addWidget(self.pdf_notice)

        info = QHBoxLayout()
        self.bill_to = QLabel()
        self.bill_to.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.bill_to.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.dates = QLabel()
        self.dates.setAlignment(Qt.AlignmentFlag.AlignTop)
        info.addWidget(self.bill_to, 1)
        info.addWidget(self.dates, 1)
        layout.addLayout(info)

        self.lines = _table(("Description", "Quantity", "Unit price", "Amount", "Tax"), right=(1, 2, 3), center=(4,))
        for col, width in ((1, 80), (2, 100), (3, 110), (4, 40)):
            self.lines.setColumnWidth(col, width)
        layout.addWidget(self.lines, 3)

        self.totals_box = QWidget()
        self.totals = QGridLayout(self.totals_box)
        self.totals.setContentsMargins(0, 0, 0, 0)
        self.totals.setColumnStretch(0, 1)
        row = QHBoxLayout()
        self.reason = QLabel()
        self.reason.setWordWrap(True)
        self.reason.setStyleSheet("color: #b3261e;")
        self.reason.setAlignment(Qt.AlignmentFlag.AlignTop)
        row.addWidget(self.reason, 1)
        row.addWidget(self.totals_box)
        layout.addLayout(row)

        self.tabs = QTabWidget()
        self.payments = _table(("Received", "Method", "Reference", "Amount", "Applied", "Refunded"),
                               right=(3, 4, 5))
        self.payments.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.payments.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.payments.itemSelectionChanged.connect(self._update_refund_button)
        self.refund_button = QPushButton("Refund…")
        self.refund_button.setToolTip("Give back all or part of the selected card or bank payment through the "
                                      "processor")
        self.refund_button.clicked.connect(lambda: self.refund_selected())
        self.charges = _table(("When", "Status", "Amount", "Charged to", "Code", "Message"), right=(2,))
        header = self.charges.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(5, QHeaderView.ResizeMode.Stretch)
        for col, width in ((0, 115), (1, 150), (2, 85), (3, 160), (4, 95)):
            self.charges.setColumnWidth(col, width)
        self.check_status_button = QPushButton("Check status")
        self.check_status_button.setToolTip("Ask the processor what became of the charge still in progress")
        self.check_status_button.clicked.connect(lambda: self.check_status())
        self.credit_notes = _table(("Credit note", "Issued", "Amount"), right=(2,))
        self.history = _table(("When", "Who", "What"))
        self.history.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.history.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.history.setColumnWidth(0, 140)
        self.tabs.addTab(_with_buttons(self.payments, self.refund_button), "Payments")
        self.tabs.addTab(self.credit_notes, "Credit notes")
        self.tabs.addTab(self.history, "History")
        self.charges_page = _with_buttons(self.charges, self.check_status_button)
        self.tabs.addTab(self.charges_page, "Charges")
        self.tabs.addTab(self._build_collections_page(), "Reminders && late fees")
        self.tabs.setTabVisible(4, False)
        layout.addWidget(self.tabs, 2)

        buttons = QHBoxLayout()
        self.issue_button = QPushButton("Issue…")
        self.edit_button = QPushButton("Edit…")
        self.pay_button = QPushButton("Record payment…")
        self.charge_button = QPushButton("Charge now…")
        self.charge_button.setToolTip("Charge the balance to the client's saved card or bank account now")
        self.credit_button = QPushButton("Credit note…")
        self.write_off_button = QPushButton("Write off…")
        self.void_button = QPushButton("Void…")
        self.delete_button = QPushButton("Delete draft")
        self.close_button = QPushButton("Close")
        wiring: list[tuple[QPushButton, Callable[[], object]]] = [
            (self.issue_button, self._issue), (self.edit_button, self._edit),
            (self.pay_button, lambda: self._act(actions.record_payment)),
            (self.charge_button, lambda: self._act(actions.charge)),
            (self.credit_button, lambda: self._act(actions.credit)),
            (self.write_off_button, lambda: self._act(actions.write_off)),
            (self.void_button, lambda: self._act(actions.void)),
            (self.delete_button, self._delete)]
        for button, handler in wiring:
            button.setAutoDefault(False)
            button.clicked.connect(lambda _c=False, h=handler: h())
            buttons.addWidget(button)
        buttons.addStretch()
        self.close_button.clicked.connect(self.accept)
        buttons.addWidget(self.close_button)
        layout.addLayout(buttons)
        self._set_actions(None)

    def _build_collections_page(self) -> QWidget:
        self.collection_facts: CollectionFacts | None = None
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(6, 6, 6, 0)
        layout.setSpacing(4)
        self.reminder_summary = QLabel()
        self.reminder_summary.setWordWrap(True)
        self.reminder_summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.reminder_summary)
        self.reminders_table = _table(("Reminder", "On", "Status", "Detail"))
        header = self.reminders_table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        for col, width in ((0, 150), (1, 90), (2, 100)):
            self.reminders_table.setColumnWidth(col, width)
        self.reminders_table.verticalHeader().setDefaultSectionSize(24)
        layout.addWidget(self.reminders_table, 2)
        self.fees_heading = QLabel("Late fees")
        self.fees_heading.setStyleSheet("font-weight: 600;")
        layout.addWidget(self.fees_heading)
        self.fees_table = _table(("Assessed", "Fee on", "Amount", "Status", "Billed on / reason"), right=(2,))
        header = self.fees_table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)
        for col, width in ((0, 90), (1, 100), (2, 90), (3, 75)):
            self.fees_table.setColumnWidth(col, width)
        self.fees_table.itemSelectionChanged.connect(self._update_waive_button)
        self.waive_button = QPushButton("Waive…")
        self.waive_button.setToolTip("Waive the selected late fee, with a reason (a billed fee is credited)")
        self.waive_button.clicked.connect(lambda: self.waive_selected_fee())
        self.fees_page = _with_buttons(self.fees_table, self.waive_button)
        self.fees_table.verticalHeader().setDefaultSectionSize(24)
        layout.addWidget(self.fees_page, 1)
        self.no_fees = QLabel("No late fees on this invoice.")
        self.no_fees.setStyleSheet("color: #5f6368;")
        layout.addWidget(self.no_fees)
        return page

    # --- data ---
    def reload(self) -> None:
        invoice_id = self.invoice_id
        self.ops.read(self, lambda s: (invoice_detail(s, invoice_id), processor_facts(s, invoice_id)),
                      lambda result: self._show(*result), label="Loading invoice")
        today = collections_today()
        self.ops.read(self, lambda s: collection_facts(s, invoice_id, today),
                      self._show_collections, label="Loading the invoice's reminders")

    def _show_collections(self, facts: CollectionFacts | None) -> None:
        self.collection_facts = facts
        self.tabs.setTabVisible(4, facts is not None)
        if facts is None:
            return
        rows = facts.reminders.rows
        self.reminder_summary.setText(facts.reminders.summary)
        _fill(self.reminders_table, [
            [r.label, r.step_on.isoformat(), REMINDER_STATUS.get(r.status, r.status), r.detail] for r in rows])
        self.reminders_table.setVisible(bool(rows))
        fees = facts.fees
        _fill(self.fees_table, [
            [f.assessed_on.isoformat(), f.invoice_number, format_amount(f.amount_cents, f.currency),
             FEE_STATUS.get(f.status, f.status), f.where] for f in fees])
        for r, f in enumerate(fees):
            item = self.fees_table.item(r, 4)
            if item is not None:
                item.setToolTip(f"{f.description}\n{f.where}")
        self.fees_heading.setVisible(bool(fees))
        self.fees_page.setVisible(bool(fees))
        self.no_fees.setVisible(not fees)
        taken = sum(1 for r in rows if r.status in ("sent", "queued", "failed", "withdrawn"))
        counts = [f"{n} {what}{'s' if n != 1 else ''}" for n, what in ((taken, "reminder"), (len(fees), "fee")) if n]
        self.tabs.setTabText(4, "Reminders && late fees" + (f" ({', '.join(counts)})" if counts else ""))
        self._update_waive_button()

    def selected_fee(self) -> FeeRow | None:
        rows = {i.row() for i in self.fees_table.selectedIndexes()}
        facts = self.collection_facts
        if facts is None or len(rows) != 1:
            return None
        row = rows.pop()
        return facts.fees[row] if row < len(facts.fees) else None

    def _update_waive_button(self) -> None:
        fee = self.selected_fee()
        self.waive_button.setEnabled(fee is not None and fee.status != "waived")

    def waive_selected_fee(self) -> bool:
        from ui.collections_screen import waive_with_reason

        fee = self.selected_fee()
        if fee is None:
            return False

        def waived(text: str) -> None:
            show_notice(self.pdf_notice, text, "ok")
            self._after()

        return waive_with_reason(self.ops, self, fee, collections_today(), waived)

    def _show(self, d: InvoiceDetail, processor: ProcessorFacts | None = None) -> None:
        if processor is not None:
            self.facts = processor
        self.detail = d
        r = d.row
        cur = r.currency
        is_note = r.kind == "credit_note"
        name = r.number or "Draft invoice"
        self.title.setText(name)
        self.setWindowTitle(f"{'Credit note' if is_note else 'Invoice'} {r.number or '(draft)'} — {r.client_name}")
        label = status_text(r) if not is_note else "Applied"
        color = "#b3261e" if r.overdue else STATUS_COLORS.get(r.status, "#5f6368")
        self.status.setText(label)
        self.status.setStyleSheet(f"font-size: 13px; padding: 2px 8px; border-radius: 8px; color: white; "
                                  f"background: {color};")
        sub = [r.title]
        if d.instalment:
            sub.append(d.instalment)
        if d.credit_for:
            sub.append(f"Credits invoice {d.credit_for}")
        if d.memo and not is_note:
            sub.append(d.memo)
        self.subtitle.setText(" · ".join(x for x in sub if x))
        bt = d.bill_to
        self.bill_to.setText("<b>Bill to</b><br>" + "<br>".join(
            escape(x) for x in [bt.get("name", ""), *bt.get("address", []), ", ".join(bt.get("emails", []))] if x))
        facts = []
        if r.issue_date:
            facts.append(f"Issued {r.issue_date.isoformat()}")
        if r.due_date and not is_note:
            facts.append(f"Due {r.due_date.isoformat()}")
        if r.period_start and r.period_start == d.period_end:
            # Adjustments on their own are filed under the last day of their month.
            facts.append(f"Adjustments generated for {Month.of(r.period_start).label}")
        elif r.period_start:
            end = d.period_end.isoformat() if d.period_end else ""
            facts.append(f"Period {r.period_start.isoformat()} – {end}" if end else
                         f"Period {Month.of(r.period_start).label}")
        if r.status == "draft":
            facts.append("Not issued yet: no number; the due date is set at issue.")
        self.dates.setText("<br>".join(escape(f) for f in facts))
        _fill(self.lines, [[ln.description, format_decimal(ln.quantity), format_amount(ln.unit_price_cents, cur),
                            format_amount(ln.amount_cents, cur), "✓" if ln.taxable else ""] for ln in d.lines])
        self.lines.resizeRowsToContents()
        self._totals(d)
        self.reason.setText(f"{r.status.capitalize()}: {d.status_reason}" if d.status_reason and not is_note else "")
        refunded = self.facts.refunded
        _fill(self.payments, [[p.received_on.isoformat(), p.method, p.reference, format_amount(p.amount_cents, cur),
                               format_amount(p.applied_cents, cur),
                               format_amount(refunded[p.id], cur) if refunded.get(p.id) else ""]
                              for p in d.payments])
        _fill(self.charges, [[a.created_at.astimezone().strftime("%Y-%m-%d %H:%M"),
                              ATTEMPT_STATUS.get(a.status, a.status) + (" (hard)" if a.hard else ""),
                              format_amount(a.amount_cents, a.currency), a.method_label, a.decline_code, a.message]
                             for a in self.facts.attempts])
        _fill(self.credit_notes, [[n.display_number, n.issue_date.isoformat() if n.issue_date else "",
                                   format_amount(n.total_cents, n.currency)] for n in d.credit_notes])
        _fill(self.history, [[h.at.astimezone().strftime("%Y-%m-%d %H:%M"), h.actor, h.summary] for h in d.history])
        self.tabs.setTabText(0, f"Payments ({len(d.payments)})")
        self.tabs.setTabText(1, f"Credit notes ({len(d.credit_notes)})")
        self.tabs.setTabText(2, f"History ({len(d.history)})")
        self.tabs.setTabText(3, f"Charges ({len(self.facts.attempts)})")
        self.tabs.setTabVisible(3, bool(self.facts.attempts))
        self._set_actions(d)
        self.loaded.emit()

    def _totals(self, d: InvoiceDetail) -> None:
        while self.totals.count():
            item = self.totals.takeAt(0)
            if item is not None and item.widget() is not None:
                item.widget().deleteLater()  # type: ignore[union-attr]
        cur = d.row.currency
        rows = [("Subtotal", d.subtotal_cents, False), (f"Tax ({format_decimal(d.tax_rate_percent)}%)",
                                                       d.tax_cents, False), ("Total", d.row.total_cents, True)]
        if d.row.kind == "invoice":
            for label, cents in (("Client credit applied", d.credit_applied_cents), ("Paid", d.paid_cents),
                                 ("Credited", d.credited_cents)):
                if cents:
                    rows.append((label, -cents, False))
            if d.row.status in ("open", "uncollectible", "paid"):
                rows.append(("Balance due", d.row.balance_cents, True))
        for i, (label, cents, bold) in enumerate(rows):
            left, right = QLabel(label), QLabel(format_amount(cents, cur))
            right.setAlignment(Qt.AlignmentFlag.AlignRight)
            right.setMinimumWidth(120)
            if bold:
                for w in (left, right):
                    w.setStyleSheet("font-weight: 600;")
            self.totals.addWidget(left, i, 1)
            self.totals.addWidget(right, i, 2)

    def _set_actions(self, d: InvoiceDetail | None) -> None:
        ref = self.ref()
        for pdf_control in (self.preview_button, self.print_button, self.save_pdf_button, self.print_action):
            pdf_control.setEnabled(d is not None)
        self.email_button.setVisible(d is not None and can_email(d.row))
        self.issue_button.setVisible(ref is not None and actions.can_issue(ref))
        # An instalment is generated from its plan: the core refuses edits to it (delete it instead).
        self.edit_button.setVisible(d is not None and d.editable and d.instalment is None)
        self.pay_button.setVisible(ref is not None and actions.can_pay(ref) and ref.status != "paid")
        self.charge_button.setVisible(ref is not None and actions.charge_offered(
            ref, self.facts.mode, self.facts.in_flight is not None))
        self.check_status_button.setVisible(self.facts.in_flight is not None)
        self._update_refund_button()
        self.credit_button.setVisible(ref is not None and actions.can_credit(ref))
        self.write_off_button.setVisible(ref is not None and actions.can_write_off(ref))
        # The core refuses to void what has money paid or credited against it: offer the credit note.
        self.void_button.setVisible(ref is not None and actions.can_void(ref) and d is not None
                                    and not d.paid_cents and not d.credited_cents)
        self.delete_button.setVisible(ref is not None and ref.status == "draft")

    def selected_payment_id(self) -> int | None:
        rows = {i.row() for i in self.payments.selectedIndexes()}
        if self.detail is None or len(rows) != 1:
            return None
        row = rows.pop()
        return self.detail.payments[row].id if row < len(self.detail.payments) else None

    def _update_refund_button(self) -> None:
        payment_id = self.selected_payment_id()
        self.refund_button.setVisible(bool(self.facts.processor_payment_ids))
        self.refund_button.setEnabled(payment_id is not None and payment_id in self.facts.processor_payment_ids)

    def ref(self) -> InvoiceRef | None:
        if self.detail is None:
            return None
        return InvoiceRef.of(self.detail.row)

    # --- the PDF ---
    def preview_pdf(self) -> QWidget | None:
        if self.detail is None:
            return None
        return preview_invoice(self.ops, self, self.invoice_id, can_email=can_email(self.detail.row),
                               emailed=self._emailed)

    def email(self) -> None:
        if self.detail is not None and can_email(self.detail.row):
            email_invoice_ids(self.ops, self, [self.invoice_id], self._emailed)

    def _emailed(self) -> None:
        self.reload()  # its history now says when and to whom
        self.changed.emit(self.invoice_id)

    def print_pdf(self) -> None:
        if self.detail is not None:
            print_invoice(self.ops, self, self.invoice_id, self.show_pdf_notice)

    def save_pdf(self) -> None:
        if self.detail is not None:
            save_invoice_pdf(self.ops, self, self.invoice_id, self.show_pdf_notice)

    def show_pdf_notice(self, text: str, error: bool = False) -> None:
        show_notice(self.pdf_notice, text, "error" if error else "ok")

    # --- actions ---
    def _after(self) -> None:
        self.reload()
        self.changed.emit(self.invoice_id)

    def refund_selected(self) -> QWidget | None:
        payment_id = self.selected_payment_id()
        if payment_id is None or payment_id not in self.facts.processor_payment_ids:
            return None
        return actions.refund(self.ops, self, payment_id, self._after)

    def check_status(self) -> None:
        attempt = self.facts.in_flight
        if attempt is None:
            return
        attempt_id = attempt.id
        job = PaymentSession.for_ops(self.ops).with_gateway(lambda db, gateway: resolve_attempt(db, gateway, attempt_id))

        def done(outcome: ChargeOutcome) -> None:
            self.check_status_button.setEnabled(True)
            text = outcome.message
            if outcome.status.value == "processing":
                # The core's sentence is for a debit just started; this one has been waiting.
                text = (f"The bank debit of {format_amount(outcome.amount_cents, outcome.currency)} is still "
                        "processing; it settles within about 4 business days, and mspbill checks it by itself.")
            # Coloured as the charge dialog colours its outcome: still processing or unknown is not good news.
            show_notice(self.pdf_notice, text, CHARGE_KINDS.get(outcome.status, "warn"))
            self._after()

        failed = processor_failure(
            lambda message: show_notice(self.pdf_notice, f"Could not find out: {message}", "error"),
            before=lambda: self.check_status_button.setEnabled(True))
        self.check_status_button.setEnabled(False)
        self.ops.run(self, job, on_success=done, on_failure=failed, label="Checking the charge")

    def _act(self, action: Callable[..., object]) -> object:
        ref = self.ref()
        return action(self.ops, self, ref, self._after) if ref is not None else None

    def _issue(self) -> object:
        ref = self.ref()
        if ref is None:
            return None
        return actions.issue(self.ops, self, [ref], lambda _n: self._after())

    def _delete(self) -> QWidget | None:
        ref = self.ref()
        if ref is None:
            return None

        def gone() -> None:
            self.changed.emit(self.invoice_id)
            self.accept()

        return actions.delete(self.ops, self, ref, gone)

    def _edit(self) -> QWidget:
        from ui.one_time_dialog import OneTimeInvoiceDialog

        dialog = OneTimeInvoiceDialog(self.ops, self, invoice_id=self.invoice_id)
        dialog.saved.connect(self._edited)
        dialog.open()
        return dialog

    def _edited(self, invoice_id: int) -> None:
        # Splitting into instalments replaces the draft: follow the first instalment.
        self.invoice_id = invoice_id
        self._after()


def _with_buttons(table: QTableWidget, *buttons: QPushButton) -> QWidget:
    """A tab page: the table, and its buttons under it on the left."""
    page = QWidget()
    layout = QVBoxLayout(page)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(4)
    layout.addWidget(table, 1)
    row = QHBoxLayout()
    for button in buttons:
        button.setAutoDefault(False)
        row.addWidget(button)
    row.addStretch()
    layout.addLayout(row)
    return page

