"""Invoices: every invoice and credit note, filtered by status, client and period,
with balances and what is overdue; generate a period, write a one-time invoice,
and act on the selection (including its PDF: preview, print, save)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QAction, QColor, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy.orm import Session

from mspbill.clients import client_choices
from mspbill.invoicing import InvoiceRow, list_invoices
from mspbill.mail import EmailStatus, email_status_by_invoice
from mspbill.money import format_amount
from mspbill.payments.gateway import ProcessorMode
from mspbill.payments.processor import office_mode
from mspbill.pdf.invoice import invoice_pdf
from mspbill.pdf.rendered import RenderedPdf
from mspbill.periods import Month
from ui import invoice_actions as actions
from ui import pdf_viewer
from ui.invoice_actions import InvoiceRef
from ui.ops import Ops
from ui.table import Column, SnapshotTableModel
from ui.widgets import (
    FlowLayout,
    heading,
    notice_label,
    search_field,
    searchable_combo,
    show_notice,
    snapshot_table,
)

STATUS_FILTERS: tuple[tuple[str, str | None], ...] = (
    ("All invoices", None), ("Drafts", "draft"), ("Unpaid", "unpaid"), ("Overdue", "overdue"),
    ("Paid", "paid"), ("Void", "void"), ("Uncollectible", "uncollectible"), ("Credit notes", "credit_note"))
OVERDUE_COLOR = QColor("#b3261e")


@dataclass(frozen=True)
class ChargeFacts:
    """What Charge now needs besides the row: the processor's mode, the invoices being charged."""

    mode: ProcessorMode | None = None
    in_flight: frozenset[int] = frozenset()


def status_text(r: InvoiceRow) -> str:
    if r.kind == "credit_note":
        return "Credit note"
    if r.overdue:
        return f"Overdue {r.overdue_days} day{'s' if r.overdue_days != 1 else ''}"
    if r.status == "open" and r.balance_cents < r.total_cents:
        return "Part paid"
    return r.status.capitalize()


INVOICE_COLUMNS: list[Column[InvoiceRow]] = [
    Column("Number", lambda r: r.display_number, lambda r: (r.number is None, r.number or "", -r.id)),
    Column("Client", lambda r: r.client_name, lambda r: r.client_name.casefold(), tooltip=lambda r: r.client_name),
    Column("Title", lambda r: r.title, lambda r: r.title.casefold(), tooltip=lambda r: r.title),
    Column("Issued", lambda r: r.issue_date.isoformat() if r.issue_date else "—",
           lambda r: r.issue_date or dt.date.max),
    Column("Due", lambda r: r.due_date.isoformat() if r.due_date else "—", lambda r: r.due_date or dt.date.max),
    Column("Total", lambda r: format_amount(r.total_cents, r.currency), lambda r: r.total_cents, align_right=True),
    Column("Balance", lambda r: format_amount(r.balance_cents, r.currency) if r.status in ("open", "uncollectible")
           else "—", lambda r: r.balance_cents if r.status in ("open", "uncollectible") else -1, align_right=True),
    Column("Status", status_text, lambda r: (r.status, -r.overdue_days), muted=lambda r: r.status == "void"),
]


def email_text(status: EmailStatus | None) -> str:
    if status is None:
        return ""
    when = status.at.astimezone().strftime("%Y-%m-%d") if status.at else ""
    return {"sent": f"Sent {when}", "queued": "Queued" + (" (retrying)" if status.error else ""),
            "sending": "Sending…", "failed": "Failed"}.get(status.status, status.status)


def email_tooltip(status: EmailStatus | None) -> str:
    if status is None:
        return "Not e-mailed"
    text = f"{email_text(status)} — to {status.to}"
    if status.error:
        text += f"\n{status.error}"
    if status.status == "queued" and status.next_attempt_at:
        text += f"\nNext try {status.next_attempt_at.astimezone().strftime('%Y-%m-%d %H:%M')}"
    return text


# --- an invoice's PDF, shared with the invoice window ---------------------------

def invoice_render(invoice_id: int) -> Callable[[Session], RenderedPdf]:
    def render(session: Session) -> RenderedPdf:
        return invoice_pdf(session, invoice_id)
    return render


def preview_invoice(ops: Ops, parent: QWidget, invoice_id: int, *, can_email: bool = False,
                    emailed: Callable[[], None] | None = None) -> pdf_viewer.PdfViewer:
    """Open the invoice's PDF in a viewer window (drafts carry their DRAFT watermark).

    `can_email`: an issued invoice; the viewer offers E-mail… next to Save as…."""
    viewer = pdf_viewer.preview(ops, parent, invoice_render(invoice_id), busy_text="Preparing the invoice…")
    if can_email:
        action = QAction("E-mail…", viewer)
        action.setToolTip("E-mail this invoice to the client with the PDF attached")
        action.triggered.connect(lambda: email_invoice_ids(ops, viewer, [invoice_id], emailed))
        viewer.add_action(action)
    return viewer


def can_email(row: InvoiceRow) -> bool:
    """Issued and not void: what the outbox will take (the core says why for the rest)."""
    return row.status in ("open", "paid", "uncollectible")


def email_invoice_ids(ops: Ops, parent: QWidget, invoice_ids: list[int],
                      done: Callable[[], None] | None = None) -> None:
    from ui.email_actions import email_invoices

    email_invoices(parent, ops, None, invoice_ids, done=(lambda _outcome: done()) if done else None)


def print_invoice(ops: Ops, parent: QWidget, invoice_id: int,
                  report: Callable[[str, bool], None] | None = None) -> None:
    """Render, then the print dialog, then print; `report(text, is_error)` says how it went."""
    def rendered(pdf: RenderedPdf) -> None:
        pdf_viewer.print_rendered(
            ops, parent, pdf,
            on_printed=(lambda n: report(f"Sent to the printer: {pdf.title} ({n} page{'s' if n != 1 else ''}).",
                                         False)) if report else None,
            on_error=(lambda text: report(text, True)) if report else None)

    pdf_viewer.render_then(ops, parent, invoice_render(invoice_id), rendered, label="Preparing the invoice")


def save_invoice_pdf(ops: Ops, parent: QWidget, invoice_id: int,
                     report: Callable[[str, bool], None] | None = None) -> None:
    """Render, then ask where to save it (last folder used), then write it."""
    def rendered(pdf: RenderedPdf) -> None:
        pdf_viewer.save_rendered(
            ops, parent, pdf,
            on_saved=(lambda path: report(f"Saved {Path(path).name} in {Path(path).parent}.", False))
            if report else None,
            on_error=(lambda text: report(text, True)) if report else None)

    pdf_viewer.render_then(ops, parent, invoice_render(invoice_id), rendered, label="Preparing the invoice")


class _Model(SnapshotTableModel[InvoiceRow]):
    def data(self, index, role=Qt.ItemDataRole.DisplayRole):  # type: ignore[no-untyped-def]
        if role == Qt.ItemDataRole.ForegroundRole and index.isValid():
            row = self.row_at(index.row())
            column = self.columns[index.column()]
            if row.overdue and column.title in ("Status", "Due", "Balance"):
                return OVERDUE_COLOR
            if column.title == "E-mail" and column.display(row) in ("Failed", "Queued (retrying)"):
                return OVERDUE_COLOR
        return super().data(index, role)


def recent_months(today: dt.date, back: int = 24, ahead: int = 3) -> list[Month]:
    now = Month.of(today)
    return [now.shift(k) for k in range(ahead, -back - 1, -1)]


class InvoicesScreen(QWidget):
    changed = Signal()
    loaded = Signal(int)

    def __init__(self, ops: Ops, parent: QWidget | None = None):
        super().__init__(parent)
        self.ops = ops
        # The latest e-mail of each invoice (from the outbox), refreshed with the list.
        self.email_status: dict[int, EmailStatus] = {}
        email_column: Column[InvoiceRow] = Column(
            "E-mail", lambda r: email_text(self.email_status.get(r.id)),
            lambda r: email_text(self.email_status.get(r.id)),
            tooltip=lambda r: email_tooltip(self.email_status.get(r.id)))
        self.model = _Model([*INVOICE_COLUMNS, email_column],
                            lambda r: f"{r.number or ''}\n{r.client_name}\n{r.title}", self)
        self._loaded_once = False
        self._clients_loaded = False
        self._pending_select: int | None = None
        self._load_seq = 0  # answers to earlier filter choices that arrive late are dropped
        self.charge_facts = ChargeFacts()
        self._build()

    # --- building ---
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        top.addWidget(heading("Invoices"))
        top.addStretch()
        self.generate_button = QPushButton("Generate period…")
        self.generate_button.setToolTip("Create this period's invoices from every agreement, after a preview")
        self.generate_button.clicked.connect(lambda: self.open_generate())
        self.one_time_button = QPushButton("New one-time invoice…")
        self.one_time_button.clicked.connect(lambda: self.new_one_time())
        top.addWidget(self.generate_button)
        top.addWidget(self.one_time_button)
        layout.addLayout(top)

        bar = QHBoxLayout()
        self.search = search_field(self, "Search by number, client or title", self.apply_filter)
        bar.addWidget(self.search, 1)
        self.status = QComboBox()
        for label, value in STATUS_FILTERS:
            self.status.addItem(label, value)
        self.status.setCurrentIndex(0)
        self.client = searchable_combo()
        self.client.setMinimumWidth(200)
        self.client.addItem("All clients", None)
        self.period = QComboBox()
        self.period.addItem("Any period", None)
        for m in recent_months(dt.date.today()):
            self.period.addItem(m.label, str(m))
        for combo in (self.status, self.client, self.period):
            combo.currentIndexChanged.connect(lambda _i: self._filter_changed())
            bar.addWidget(combo)
        layout.addLayout(bar)
        self.notice = notice_label()
        layout.addWidget(self.notice)

        # The title names the period ("Managed IT services — November 2026"), so no Period column;
        # the E-mail column has room for "Sent 2026-10-01" and "Queued (retrying)".
        self.table = snapshot_table(self.model, (95, 205, 260, 84, 84, 92, 92, 112, 150), 2, multi_select=True)
        # Newest first, and the header says so: drafts, then numbers descending.
        self.table.sortByColumn(0, Qt.SortOrder.DescendingOrder)
        self.table.doubleClicked.connect(lambda _i: self.open_selected())
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._update_buttons())
        self.model.modelReset.connect(self._update_buttons)
        self.model.layoutChanged.connect(self._update_buttons)
        layout.addWidget(self.table, 1)

        # Two groups, the PDF's and what changes the invoice, side by side when the window is
        # wide enough and one above the other when it is not: no button is ever cut.
        actions_bar = FlowLayout(h_spacing=16)
        self.open_button = QPushButton("Open…")
        # The PDF of the selected invoice: look, print, keep a copy.
        self.preview_button = QPushButton("Preview")
        self.preview_button.setToolTip("Show the selected invoice's PDF")
        self.print_button = QPushButton("Print…")
        self.print_button.setToolTip("Print the selected invoice (Ctrl+P)")
        self.save_pdf_button = QPushButton("Save PDF…")
        self.save_pdf_button.setToolTip("Save the selected invoice as a PDF file")
        self.email_button = QPushButton("E-mail…")
        self.email_button.setToolTip("E-mail the selected invoices to their clients with the PDF attached "
                                     "(several: those not e-mailed yet)")
        self.issue_button = QPushButton("Issue…")
        self.pay_button = QPushButton("Record payment…")
        self.charge_button = QPushButton("Charge now…")
        self.charge_button.setToolTip("Charge the balance to the client's saved card or bank account now")
        self.credit_button = QPushButton("Credit note…")
        self.void_button = QPushButton("Void…")
        self.delete_button = QPushButton("Delete draft")
        handlers: list[tuple[QPushButton, Callable[[], object]]] = [
            (self.open_button, self.open_selected), (self.preview_button, self.preview_selected),
            (self.print_button, self.print_selected), (self.save_pdf_button, self.save_pdf_selected),
            (self.email_button, self.email_selected), (self.issue_button, self.issue_selected),
            (self.pay_button, lambda: self._act(actions.record_payment)),
            (self.charge_button, lambda: self._act(actions.charge)),
            (self.credit_button, lambda: self._act(actions.credit)),
            (self.void_button, lambda: self._act(actions.void)),
            (self.delete_button, lambda: self._act(actions.delete))]
        group = QHBoxLayout()
        for button, handler in handlers:
            button.clicked.connect(lambda _c=False, h=handler: h())
            group.addWidget(button)
            if button is self.email_button or button is self.delete_button:
                box = QWidget()
                box.setLayout(group)
                group.setContentsMargins(0, 0, 0, 0)
                actions_bar.addWidget(box)
                group = QHBoxLayout()
        layout.addLayout(actions_bar)
        self.count_label = QLabel()
        self.count_label.setStyleSheet("color: #5f6368;")
        layout.addWidget(self.count_label)

        self.print_action = QAction("Print…", self)
        self.print_action.setShortcut(QKeySequence.StandardKey.Print)
        self.print_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.print_action.triggered.connect(lambda: self.print_selected())
        self.addAction(self.print_action)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self._update_buttons()

    # --- data ---
    def ensure_loaded(self) -> None:
        if not self._loaded_once:
            self.reload()

    def mark_stale(self) -> None:
        self._loaded_once = False

    def _filter_changed(self) -> None:
        self.notice.hide()  # it described the last generation; the user has moved on
        self.reload()

    def filters(self) -> dict[str, object]:
        status = self.status.currentData()
        period = self.period.currentData()
        return {
            "status": status if status not in ("overdue", "credit_note") else None,
            "overdue_only": status == "overdue",
            # Credit notes are stored as paid; a status filter means invoices, not credit notes.
            "kind": "credit_note" if status == "credit_note" else ("invoice" if status else None),
            "client_id": self.client.currentData(),
            "month": Month(int(period[:4]), int(period[5:])) if period else None,
        }

    def reload(self, select_id: int | None = None) -> None:
        if select_id is not None:
            self._pending_select = select_id
        if not self._clients_loaded:
            self._clients_loaded = True
            self.ops.read(self, client_choices, self._fill_clients, label="Loading clients")
        f = self.filters()
        if not self._loaded_once:
            self.count_label.setText("Loading invoices…")

        def fetch(session: Session) -> tuple[list[InvoiceRow], dict[int, EmailStatus], ChargeFacts]:
            return (list_invoices(session, **f), email_status_by_invoice(session),  # type: ignore[arg-type]
                    ChargeFacts(office_mode(session), actions.in_flight_invoice_ids(session)))

        self._load_seq += 1
        seq = self._load_seq
        self.ops.read(self, fetch, lambda result: self._loaded(*result) if seq == self._load_seq else None,
                      label="Loading invoices")

    def _fill_clients(self, choices: list[tuple[int, str, str]]) -> None:
        self.client.blockSignals(True)
        current = self.client.currentData()
        while self.client.count() > 1:
            self.client.removeItem(1)
        for cid, name, _currency in choices:
            self.client.addItem(name, cid)
        idx = self.client.findData(current)
        self.client.setCurrentIndex(max(0, idx))
        self.client.blockSignals(False)

    def _loaded(self, rows: list[InvoiceRow], email_status: dict[int, EmailStatus] | None = None,
                charge_facts: ChargeFacts | None = None) -> None:
        self._loaded_once = True
        self.email_status = email_status or {}
        self.charge_facts = charge_facts or ChargeFacts()
        self.model.set_rows(rows)
        self.apply_filter()
        if self._pending_select is not None:
            row = self.model.find_row(lambda r: r.id == self._pending_select)
            if row >= 0:
                self.table.selectRow(row)
                self.table.scrollTo(self.model.index(row, 0))
            self._pending_select = None
        self.loaded.emit(len(rows))

    def apply_filter(self) -> None:
        self.model.set_filter_text(self.search.text())
        rows = self.model.visible_rows()
        balances: dict[str, int] = {}
        overdue: dict[str, int] = {}
        for r in rows:
            if r.status in ("open",):
                balances[r.currency] = balances.get(r.currency, 0) + r.balance_cents
                if r.overdue:
                    overdue[r.currency] = overdue.get(r.currency, 0) + r.balance_cents
        total = self.model.total_count()
        text = f"{len(rows)} invoice{'s' if len(rows) != 1 else ''}"
        if len(rows) != total:
            text = f"{len(rows)} of {total} invoices"
        if balances:
            text += " · unpaid " + ", ".join(format_amount(v, c) for c, v in balances.items())
        if overdue:
            text += " · overdue " + ", ".join(format_amount(v, c) for c, v in overdue.items())
        self.count_label.setText(text)
        self._update_buttons()

    def selected_rows(self) -> list[InvoiceRow]:
        return [self.model.row_at(i.row()) for i in self.table.selectionModel().selectedRows()]

    def select_id(self, invoice_id: int) -> None:
        row = self.model.find_row(lambda r: r.id == invoice_id)
        if row >= 0:
            self.table.selectRow(row)

    def _update_buttons(self, *_args: object) -> None:
        refs = [InvoiceRef.of(r) for r in self.selected_rows()]
        one = refs[0] if len(refs) == 1 else None
        self.open_button.setEnabled(one is not None)
        for pdf_control in (self.preview_button, self.print_button, self.save_pdf_button, self.print_action):
            pdf_control.setEnabled(one is not None)
        mailable = [r for r in self.selected_rows() if can_email(r)]
        self.email_button.setEnabled(bool(mailable))
        self.email_button.setText(f"E-mail {len(mailable)}…" if len(mailable) > 1 else "E-mail…")
        drafts = [r for r in refs if actions.can_issue(r)]
        self.issue_button.setEnabled(bool(drafts) and len(drafts) == len(refs))
        self.issue_button.setText(f"Issue {len(drafts)}…" if len(drafts) > 1 else "Issue…")
        self.pay_button.setEnabled(one is not None and actions.can_pay(one))
        self.charge_button.setEnabled(one is not None and actions.charge_offered(
            one, self.charge_facts.mode, one.id in self.charge_facts.in_flight))
        self.credit_button.setEnabled(one is not None and actions.can_credit(one))
        self.void_button.setEnabled(one is not None and actions.can_void(one))
        self.delete_button.setEnabled(one is not None and one.status == "draft")

    # --- actions ---
    def after_change(self, select_id: int | None = None) -> None:
        self.reload(select_id=select_id)
        self.changed.emit()

    def _act(self, action: Callable[..., object]) -> object:
        rows = self.selected_rows()
        if len(rows) != 1:
            return None
        ref = InvoiceRef.of(rows[0])
        return action(self.ops, self, ref, lambda: self.after_change(ref.id))

    def issue_selected(self) -> object:
        refs = [InvoiceRef.of(r) for r in self.selected_rows()]
        if not refs:
            return None
        first = refs[0].id
        return actions.issue(self.ops, self, refs, lambda _numbers: self.after_change(first))

    def _context_menu(self, pos: QPoint) -> QMenu | None:
        index = self.table.indexAt(pos)
        if not index.isValid():
            return None
        if index.row() not in {i.row() for i in self.table.selectionModel().selectedRows()}:
            self.table.selectRow(index.row())
        menu = self.context_menu()
        menu.popup(self.table.viewport().mapToGlobal(pos))
        return menu

    def context_menu(self) -> QMenu:
        """What can be done to the selection, as the buttons offer it."""
        menu = QMenu(self)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        buttons = [self.open_button, self.preview_button, self.print_button, self.save_pdf_button,
                   self.email_button, None,
                   self.issue_button, self.pay_button, self.charge_button, self.credit_button, self.void_button,
                   self.delete_button]
        for button in buttons:
            if button is None:
                menu.addSeparator()
                continue
            text = "Preview PDF" if button is self.preview_button else button.text()
            action = menu.addAction(text)
            action.setEnabled(button.isEnabled())
            if button is self.print_button:
                action.setShortcut(self.print_action.shortcut())
            action.triggered.connect(button.click)
        menu.setDefaultAction(menu.actions()[0])
        return menu

    def _one_selected_id(self) -> int | None:
        rows = self.selected_rows()
        return rows[0].id if len(rows) == 1 else None

    def preview_selected(self) -> QWidget | None:
        rows = self.selected_rows()
        if len(rows) != 1:
            return None
        return preview_invoice(self.ops, self, rows[0].id, can_email=can_email(rows[0]),
                               emailed=lambda: self.reload(select_id=rows[0].id))

    def email_selected(self) -> None:
        ids = [r.id for r in self.selected_rows() if can_email(r)]
        if ids:
            email_invoice_ids(self.ops, self, ids, lambda: self.reload(select_id=ids[0]))

    def print_selected(self) -> None:
        invoice_id = self._one_selected_id()
        if invoice_id is not None:
            print_invoice(self.ops, self, invoice_id, self.show_notice)

    def save_pdf_selected(self) -> None:
        invoice_id = self._one_selected_id()
        if invoice_id is not None:
            save_invoice_pdf(self.ops, self, invoice_id, self.show_notice)

    def show_notice(self, text: str, error: bool = False) -> None:
        show_notice(self.notice, text, "error" if error else "ok")

    def open_selected(self) -> QWidget | None:
        rows = self.selected_rows()
        return self.open_invoice(rows[0].id) if rows else None

    def open_invoice(self, invoice_id: int) -> QWidget:
        from ui.invoice_dialog import InvoiceDialog

        dialog = InvoiceDialog(self.ops, invoice_id, self)
        dialog.changed.connect(self.after_change)
        dialog.open()
        return dialog

    def open_generate(self) -> QWidget:
        from ui.generate_dialog import GenerateDialog

        dialog = GenerateDialog(self.ops, self)
        dialog.generated.connect(self._generated)
        dialog.open()
        return dialog

    def _generated(self, month_text: str, text: str) -> None:
        self.show_notice(text.replace("\n", " "))
        # Show what was just generated: that period, every status and client, no search.
        idx = self.period.findData(month_text)
        for combo in (self.period, self.status, self.client):
            combo.blockSignals(True)
        if idx >= 0:
            self.period.setCurrentIndex(idx)
        self.status.setCurrentIndex(0)
        self.client.setCurrentIndex(0)
        for combo in (self.period, self.status, self.client):
            combo.blockSignals(False)
        self.search.clear()
        self.after_change()

    def new_one_time(self, client_id: int | None = None) -> QWidget:
        from ui.one_time_dialog import OneTimeInvoiceDialog

        dialog = OneTimeInvoiceDialog(self.ops, self, client_id=client_id)
        dialog.saved.connect(self.after_change)
        dialog.open()
        return dialog
