"""Collections: what the next pass of follow-up would do today (the reminders due, the
late fees due, and the overdue invoices held back with why), Run now; the log of the
reminders taken and what became of their e-mail; the late fees, with Waive….

Every read and write goes through Ops (house rule 2); what crosses back to the UI thread
are the core's frozen rows.  The background pass (ui/collections_sync.py) runs the same
core function as Run now, once an hour.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QModelIndex, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy.orm import Session

from mspbill.batch.plan import money_text
from mspbill.collections.eligibility import Candidate
from mspbill.collections.late_fees import (
    REASON_MAX,
    DueFee,
    FeeRow,
    fee_totals,
    list_fees,
    plan_late_fees,
    waive_fee,
)
from mspbill.collections.reminders import (
    DueReminder,
    ReminderLogRow,
    plan_reminders,
    reminder_log,
)
from mspbill.collections.run import CollectionsReport, run_collections
from mspbill.collections.settings import collection_policy
from mspbill.company import get_company
from mspbill.db.models import Invoice
from mspbill.mail.settings import NOT_CONFIGURED, is_configured
from mspbill.money import format_amount
from ui.email_actions import EmailRunner, SendOutcome
from ui.month_end_screen import StatCard
from ui.ops import USER_ERRORS, OpContext, Ops, describe_error
from ui.table import Column, SnapshotTableModel
from ui.widgets import (
    MUTED_STYLE,
    heading,
    notice_label,
    search_field,
    show_notice,
    snapshot_table,
)

LOG_LIMIT = 2000
FEE_FILTERS = ((None, "All"), ("pending", "Pending"), ("billed", "Billed"), ("waived", "Waived"))
FEE_STATUS_LABELS = {"pending": "Pending", "billed": "Billed", "waived": "Waived"}
LOG_STATUS_LABELS = {"queued": "In the Outbox", "sending": "Sending…", "sent": "Sent", "failed": "Failed",
                     "withdrawn": "Withdrawn", "discarded": "Discarded"}
STATUS_COLORS = {"failed": "#b3261e", "sent": "#188038", "withdrawn": "#5f6368", "discarded": "#5f6368",
                 "waived": "#5f6368", "pending": "#8a5a00"}


def plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def day_text(day: dt.date) -> str:
    """"21 Nov 2026", as the invoices print dates."""
    return f"{day.day} {day:%b %Y}"


def _local(moment: dt.datetime | None) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M") if moment is not None else ""


# --- what the screen reads (on workers) ----------------------------------------------------


@dataclass(frozen=True)
class HeldBack:
    """An overdue invoice the pass would follow up but cannot or should not, and why."""

    what: str          # "Reminder" or "Late fee"
    candidate: Candidate
    reason: str


@dataclass(frozen=True)
class ReminderDue:
    """A reminder the pass would queue, and how late its invoice is today."""

    due: DueReminder
    days_overdue: int

    @property
    def candidate(self) -> Candidate:
        return self.due.candidate


@dataclass(frozen=True)
class DueView:
    today: dt.date
    reminders_enabled: bool
    fees_enabled: bool
    fee_policy: str          # the policy in words
    mail_ready: bool
    reminders: tuple[ReminderDue, ...]
    fees: tuple[DueFee, ...]
    held: tuple[HeldBack, ...]

    @property
    def nothing_due(self) -> bool:
        return not self.reminders and not self.fees


def load_due(session: Session, today: dt.date) -> DueView:
    """What a pass run now would do (the core's plans; nothing is written)."""
    policy = collection_policy(session)
    company = get_company(session)
    reminders = plan_reminders(session, today)
    fees = plan_late_fees(session, today)
    held = [HeldBack("Reminder", s.candidate, s.reason) for s in reminders.skipped] if reminders.enabled else []
    held += [HeldBack("Late fee", s.candidate, s.reason) for s in fees.skipped]
    return DueView(today, reminders.enabled, fees.enabled,
                   policy.fees.describe(company.currency if company else "USD"), is_configured(session),
                   tuple(ReminderDue(d, d.candidate.days_overdue(today)) for d in reminders.due)
                   if reminders.enabled else (), tuple(fees.due), tuple(held))


@dataclass(frozen=True)
class FeesView:
    rows: list[FeeRow]
    totals: dict[str, dict[str, int]]    # status → currency → cents
    counts: dict[str, int]
    currency: str


def load_fees(session: Session) -> FeesView:
    rows = list_fees(session)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    company = get_company(session)
    return FeesView(rows, fee_totals(rows), counts, company.currency if company else "USD")


def run_summary(report: CollectionsReport) -> tuple[str, str]:
    """(text, notice kind) for what Run now did; the invoices held back are counted, not listed
    (Due today lists them with their reasons)."""
    lines = [ln for ln in report.lines() if not ln.startswith(("Not sent: ", "No late fee on "))]
    held = sum(1 for s in report.reminders.skipped if s.reason != NOT_CONFIGURED) + len(report.fees.skipped)
    if held:
        lines.append(f"{plural(held, 'invoice')} held back: Due today says why.")
    kind = "warn" if report.reminders.not_configured else "ok"
    return "\n".join(lines) or "Nothing to follow up today.", kind


# --- waiving a fee (also from the invoice window) ------------------------------------------


def waive_consequence(fee: FeeRow) -> str:
    amount = format_amount(fee.amount_cents, fee.currency)
    if fee.status == "pending":
        return "It has not been billed yet: it will not be."
    if fee.where == "Draft invoice":
        return "Its line is taken off the draft invoice that carries it."
    if fee.where.endswith("(void)"):
        return f"{fee.where.removesuffix(' (void)')} is void: nothing else changes."
    return f"It is billed on {fee.where}: a credit note of {amount} is issued against that invoice."


class WaiveDialog(QDialog):
    """Asks why a fee is waived; the reason is required and kept with the invoice."""

    def __init__(self, parent: QWidget | None, fee: FeeRow):
        super().__init__(parent)
        self.setWindowTitle("Waive late fee")
        self.setMinimumWidth(480)
        layout = QVBoxLayout(self)
        amount = format_amount(fee.amount_cents, fee.currency)
        title = QLabel(f"Waive the late fee of {amount} on {fee.invoice_number} ({fee.client_name})?")
        title.setWordWrap(True)
        title.setStyleSheet("font-weight: 600;")
        layout.addWidget(title)
        what = QLabel(waive_consequence(fee))
        what.setWordWrap(True)
        what.setStyleSheet(MUTED_STYLE)
        layout.addWidget(what)
        layout.addWidget(QLabel("Reason (required; kept in the invoice's history):"))
        self.reason = QLineEdit()
        self.reason.setMaxLength(REASON_MAX)
        self.reason.setPlaceholderText("e.g. First late payment in years; goodwill")
        layout.addWidget(self.reason)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.waive_button = self.buttons.addButton("Waive fee", QDialogButtonBox.ButtonRole.AcceptRole)
        self.waive_button.setEnabled(False)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.reason.textChanged.connect(lambda t: self.waive_button.setEnabled(bool(t.strip())))
        layout.addWidget(self.buttons)

    def reason_text(self) -> str:
        return " ".join(self.reason.text().split())


def ask_waive_reason(parent: QWidget | None, fee: FeeRow) -> str | None:
    """The reason, or None when the person cancelled (tests replace this)."""
    dialog = WaiveDialog(parent, fee)
    return dialog.reason_text() or None if dialog.exec() == QDialog.DialogCode.Accepted else None


def _waive(session: Session, fee_id: int, reason: str, today: dt.date) -> str:
    fee = waive_fee(session, fee_id, reason, today=today)
    invoice = session.get(Invoice, fee.invoice_id)
    number = invoice.number if invoice is not None else ""
    text = f"Waived the late fee of {format_amount(fee.amount_cents, fee.currency)} on {number}"
    if fee.waive_credit_note_id is not None:
        note = session.get(Invoice, fee.waive_credit_note_id)
        text += f" (credit note {note.number if note else ''} issued)"
    return text + "."


def waive_with_reason(ops: Ops, parent: QWidget, fee: FeeRow, today: dt.date,
                      done: Callable[[str], None]) -> bool:
    """Ask for the reason, then waive in one transaction; False when not asked to."""
    if fee.status == "waived":
        return False
    reason = ask_waive_reason(parent, fee)
    if not reason:
        return False
    ops.write(parent, lambda s: _waive(s, fee.id, reason, today), done, label="Waiving a late fee")
    return True


# --- tables --------------------------------------------------------------------------------


REMINDER_COLUMNS: list[Column[ReminderDue]] = [
    Column("Client", lambda d: d.candidate.client_name, lambda d: d.candidate.client_name.casefold(),
           tooltip=lambda d: d.candidate.client_name),
    Column("Invoice", lambda d: d.candidate.number),
    Column("Step", lambda d: d.due.step.label, lambda d: d.due.step.offset_days),
    Column("Due date", lambda d: d.candidate.due_date.isoformat()),
    Column("Days overdue", lambda d: str(d.days_overdue), lambda d: d.days_overdue, align_right=True),
    Column("Balance", lambda d: format_amount(d.candidate.balance_cents, d.candidate.currency),
           lambda d: d.candidate.balance_cents, align_right=True),
]
FEE_DUE_COLUMNS: list[Column[DueFee]] = [
    Column("Client", lambda f: f.candidate.client_name, lambda f: f.candidate.client_name.casefold(),
           tooltip=lambda f: f.candidate.client_name),
    Column("Invoice", lambda f: f.candidate.number),
    Column("Days overdue", lambda f: str(f.days_overdue), lambda f: f.days_overdue, align_right=True),
    Column("Balance", lambda f: format_amount(f.candidate.balance_cents, f.candidate.currency),
           lambda f: f.candidate.balance_cents, align_right=True),
    Column("Fee", lambda f: format_amount(f.amount_cents, f.candidate.currency), lambda f: f.amount_cents,
           align_right=True),
    Column("Line", lambda f: f.description, tooltip=lambda f: f.description),
]
HELD_COLUMNS: list[Column[HeldBack]] = [
    Column("Client", lambda h: h.candidate.client_name, lambda h: h.candidate.client_name.casefold(),
           tooltip=lambda h: h.candidate.client_name),
    Column("Invoice", lambda h: h.candidate.number),
    Column("Follow-up", lambda h: h.what),
    Column("Balance", lambda h: format_amount(h.candidate.balance_cents, h.candidate.currency),
           lambda h: h.candidate.balance_cents, align_right=True),
    Column("Why not", lambda h: h.reason[:1].upper() + h.reason[1:], tooltip=lambda h: h.reason),
]
LOG_COLUMNS: list[Column[ReminderLogRow]] = [
    Column("Queued", lambda r: r.queued_on.isoformat(), lambda r: (r.queued_on, r.id)),
    Column("Client", lambda r: r.client_name, lambda r: (r.client_name.casefold(), r.id),
           tooltip=lambda r: r.client_name),
    Column("Invoice", lambda r: r.invoice_number, lambda r: (r.invoice_number, r.id)),
    Column("Step", lambda r: r.label, lambda r: (r.offset_days, r.id)),
    Column("Status", lambda r: LOG_STATUS_LABELS.get(r.status, r.status), tooltip=lambda r: r.detail),
    Column("Sent", lambda r: _local(r.sent_at), lambda r: (r.sent_at is not None, r.sent_at or r.queued_on, r.id)),
    Column("To", lambda r: r.sent_to, tooltip=lambda r: r.sent_to),
    Column("Balance then", lambda r: format_amount(r.balance_cents, r.currency), lambda r: r.balance_cents,
           align_right=True),
    Column("Detail", lambda r: r.detail, tooltip=lambda r: r.detail),
]
FEE_COLUMNS: list[Column[FeeRow]] = [
    Column("Assessed", lambda f: f.assessed_on.isoformat(), lambda f: (f.assessed_on, f.id)),
    Column("Client", lambda f: f.client_name, lambda f: (f.client_name.casefold(), f.id),
           tooltip=lambda f: f.client_name),
    Column("Invoice", lambda f: f.invoice_number, lambda f: (f.invoice_number, f.id)),
    Column("Days overdue", lambda f: str(f.days_overdue), lambda f: f.days_overdue, align_right=True),
    Column("Amount", lambda f: format_amount(f.amount_cents, f.currency), lambda f: f.amount_cents,
           align_right=True),
    Column("Status", lambda f: FEE_STATUS_LABELS.get(f.status, f.status)),
    Column("Billed on / reason", lambda f: f.where, tooltip=lambda f: f"{f.description}\n{f.where}"),
]


class _StatusModel(SnapshotTableModel):  # type: ignore[type-arg]
    """Colours the Status column by the row's status."""

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):  # type: ignore[no-untyped-def]
        if role == Qt.ItemDataRole.ForegroundRole and index.isValid() and \
                self.columns[index.column()].title == "Status":
            color = STATUS_COLORS.get(getattr(self.row_at(index.row()), "status", ""))
            return QColor(color) if color else None
        return super().data(index, role)


def _section(text: str) -> QLabel:
    label = QLabel(text)
    label.setStyleSheet("font-weight: 600; margin-top: 6px;")
    return label


def _page(layout_of: Callable[[QVBoxLayout], None]) -> QWidget:
    page = QWidget()
    layout = QVBoxLayout(page)
    layout.setContentsMargins(0, 6, 0, 0)
    layout_of(layout)
    return page


# --- the screen ----------------------------------------------------------------------------


class CollectionsScreen(QWidget):
    changed = Signal()
    open_invoice = Signal(int)
    open_settings = Signal()
    due_loaded = Signal()
    log_loaded = Signal()
    fees_loaded = Signal()
    ran = Signal(object)          # CollectionsReport of a Run now

    def __init__(self, ops: Ops, parent: QWidget | None = None):
        super().__init__(parent)
        self.ops = ops
        self.today: Callable[[], dt.date] = dt.date.today
        self.runner = EmailRunner.for_ops(ops)
        # How Run now sends what it queued: like the mail timer, in the background (tests replace it).
        self.send_mail: Callable[[], bool] = self.runner.send_in_background
        self.due: DueView | None = None
        self.fees: FeesView | None = None
        self.running = False
        self._loaded_once = False
        self._log_seq = 0
        self._build()
        self.runner.finished.connect(self._after_send)

    # --- building ---
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        top.addWidget(heading("Collections"))
        top.addStretch()
        self.settings_button = QPushButton("Settings…")
        self.settings_button.setToolTip("The reminder schedule, its e-mails and the late-fee policy "
                                        "(Settings → Collections)")
        self.settings_button.clicked.connect(self.open_settings.emit)
        self.run_button = QPushButton("Run now")
        self.run_button.setToolTip("Queue today's reminders and assess today's late fees now, then send the "
                                   "Outbox; mspbill also does this by itself every hour while it is open")
        self.run_button.setStyleSheet("QPushButton:enabled { font-weight: 600; }")
        self.run_button.clicked.connect(lambda: self.run_now())
        top.addWidget(self.settings_button)
        top.addWidget(self.run_button)
        layout.addLayout(top)
        self.status = QLabel("Loading…")
        self.status.setWordWrap(True)
        self.status.setStyleSheet(MUTED_STYLE)
        layout.addWidget(self.status)
        self.mail_notice = notice_label()
        layout.addWidget(self.mail_notice)
        self.notice = notice_label()
        layout.addWidget(self.notice)

        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_due_page(), "Due today")
        self.tabs.addTab(self._build_log_page(), "Reminders")
        self.tabs.addTab(self._build_fees_page(), "Late fees")
        self.tabs.currentChanged.connect(lambda _i: self._tab_changed())
        layout.addWidget(self.tabs, 1)

    def _build_due_page(self) -> QWidget:
        self.reminder_model: SnapshotTableModel[ReminderDue] = SnapshotTableModel(
            REMINDER_COLUMNS, lambda d: f"{d.candidate.client_name}\n{d.candidate.number}", self)
        self.reminder_table = snapshot_table(self.reminder_model, (300, 110, 150, 100, 100, 110), 0)
        self.reminder_table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.fee_due_model: SnapshotTableModel[DueFee] = SnapshotTableModel(
            FEE_DUE_COLUMNS, lambda f: f"{f.candidate.client_name}\n{f.candidate.number}", self)
        self.fee_due_table = snapshot_table(self.fee_due_model, (300, 110, 100, 110, 90, 200), 5)
        self.fee_due_table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.held_model: SnapshotTableModel[HeldBack] = SnapshotTableModel(
            HELD_COLUMNS, lambda h: f"{h.candidate.client_name}\n{h.candidate.number}", self)
        self.held_table = snapshot_table(self.held_model, (300, 110, 90, 110, 300), 4)
        self.held_table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        for table, model in ((self.reminder_table, self.reminder_model), (self.fee_due_table, self.fee_due_model),
                             (self.held_table, self.held_model)):
            table.doubleClicked.connect(lambda index, m=model: self._open_candidate(m, index))
            table.activated.connect(lambda index, m=model: self._open_candidate(m, index))
        self.reminders_title = _section("Reminders to queue")
        self.reminders_off = QLabel()
        self.reminders_off.setStyleSheet(MUTED_STYLE)
        self.reminders_off.setWordWrap(True)
        self.fees_title = _section("Late fees to assess")
        self.fees_note = QLabel()
        self.fees_note.setStyleSheet(MUTED_STYLE)
        self.fees_note.setWordWrap(True)
        self.held_title = _section("Held back")
        hint = QLabel("Double-click a row (or press Enter) to open its invoice.")
        hint.setStyleSheet(MUTED_STYLE)

        def fill(layout: QVBoxLayout) -> None:
            layout.addWidget(self.reminders_title)
            layout.addWidget(self.reminders_off)
            layout.addWidget(self.reminder_table, 3)
            layout.addWidget(self.fees_title)
            layout.addWidget(self.fees_note)
            layout.addWidget(self.fee_due_table, 2)
            layout.addWidget(self.held_title)
            layout.addWidget(self.held_table, 1)
            layout.addStretch(0)   # takes the room when every table is hidden (nothing due)
            layout.addWidget(hint)

        self.due_page = _page(fill)
        return self.due_page

    def _build_log_page(self) -> QWidget:
        self.log_model: SnapshotTableModel[ReminderLogRow] = _StatusModel(
            LOG_COLUMNS, lambda r: f"{r.client_name}\n{r.invoice_number}", self)
        self.log_table = snapshot_table(self.log_model, (85, 165, 90, 125, 85, 115, 150, 90, 200), 8)
        self.log_table.sortByColumn(0, Qt.SortOrder.DescendingOrder)
        self.log_table.doubleClicked.connect(lambda index: self._open_row(self.log_model, index))
        self.log_table.activated.connect(lambda index: self._open_row(self.log_model, index))
        self.log_search = search_field(self, "Filter by client name", lambda: self.reload_log())
        self.log_count = QLabel()
        self.log_count.setStyleSheet(MUTED_STYLE)
        # The reasons are sentences; the table shows their start, this the whole of the selected one.
        self.log_detail = QLabel()
        self.log_detail.setWordWrap(True)
        self.log_detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.log_detail.setStyleSheet("background: palette(base); border: 1px solid #d0d4da; border-radius: 4px; "
                                      "padding: 6px 8px;")
        self.log_detail.hide()
        self.log_table.selectionModel().selectionChanged.connect(lambda *_: self._log_selected())
        self.log_model.modelReset.connect(self._log_selected)

        def fill(layout: QVBoxLayout) -> None:
            bar = QHBoxLayout()
            bar.addWidget(self.log_search, 1)
            layout.addLayout(bar)
            layout.addWidget(self.log_table, 1)
            layout.addWidget(self.log_detail)
            layout.addWidget(self.log_count)

        self.log_page = _page(fill)
        return self.log_page

    def _build_fees_page(self) -> QWidget:
        self.pending_card = StatCard("Pending")
        self.billed_card = StatCard("Billed")
        self.waived_card = StatCard("Waived")
        self.fee_filter = QComboBox()
        for status, label in FEE_FILTERS:
            self.fee_filter.addItem(label, status)
        self.fee_filter.setToolTip("Show the fees of one status")
        self.fee_filter.currentIndexChanged.connect(lambda _i: self._apply_fee_filter())
        self.fee_model: SnapshotTableModel[FeeRow] = _StatusModel(
            FEE_COLUMNS, lambda f: f"{f.client_name}\n{f.invoice_number}\n{f.where}", self)
        self.fee_table = snapshot_table(self.fee_model, (90, 200, 100, 95, 90, 75, 250), 6)
        self.fee_table.sortByColumn(0, Qt.SortOrder.DescendingOrder)
        self.fee_table.doubleClicked.connect(lambda index: self._open_row(self.fee_model, index))
        self.fee_table.activated.connect(lambda index: self._open_row(self.fee_model, index))
        self.fee_table.selectionModel().selectionChanged.connect(lambda *_: self._fee_selected())
        self.fee_model.modelReset.connect(self._fee_selected)
        self.waive_button = QPushButton("Waive…")
        self.waive_button.setToolTip("Waive the selected fee, with a reason (a billed fee is credited)")
        self.waive_button.clicked.connect(lambda: self.waive_selected())
        self.fee_detail = QLabel()
        self.fee_detail.setWordWrap(True)
        self.fee_detail.setStyleSheet(MUTED_STYLE)
        self.fee_detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        def fill(layout: QVBoxLayout) -> None:
            strip = QHBoxLayout()
            for card in (self.pending_card, self.billed_card, self.waived_card):
                strip.addWidget(card, 1)
            layout.addLayout(strip)
            bar = QHBoxLayout()
            show = QLabel("&Show")
            show.setBuddy(self.fee_filter)
            bar.addWidget(show)
            bar.addWidget(self.fee_filter)
            bar.addStretch()
            bar.addWidget(self.waive_button)
            layout.addLayout(bar)
            layout.addWidget(self.fee_table, 1)
            layout.addWidget(self.fee_detail)

        self.fees_page = _page(fill)
        return self.fees_page

    # --- the list protocol of the main window ---
    def ensure_loaded(self) -> None:
        if not self._loaded_once:
            self.reload()

    def mark_stale(self) -> None:
        self._loaded_once = False

    def reload(self) -> None:
        self._loaded_once = True
        self.reload_due()
        self.reload_log()
        self.reload_fees()

    def _tab_changed(self) -> None:
        self._update_status()

    # --- Due today ---
    def reload_due(self) -> None:
        today = self.today()
        self.ops.read(self, lambda s: load_due(s, today), self._show_due, label="Working out today's follow-up")

    def _show_due(self, view: DueView) -> None:
        self.due = view
        self.reminder_model.set_rows(view.reminders)
        self.fee_due_model.set_rows(view.fees)
        self.held_model.set_rows(view.held)
        self.reminders_title.setText(f"Reminders to queue ({len(view.reminders):,})")
        self.fees_title.setText(f"Late fees to assess ({len(view.fees):,})" if view.fees_enabled
                                else "Late fees")
        self.held_title.setText(f"Held back ({len(view.held):,})")
        if not view.reminders_enabled:
            self.reminders_off.setText("Reminders are off: nothing is queued. Turn them on in Settings → Collections.")
        else:
            self.reminders_off.setText("" if view.reminders else "No reminder is due today.")
        self.reminders_off.setVisible(bool(self.reminders_off.text()))
        self.reminder_table.setVisible(bool(view.reminders))
        if view.fees_enabled:
            self.fees_note.setText(f"Policy: {view.fee_policy}" + ("" if view.fees else "\nNo late fee is due today."))
        else:
            self.fees_note.setText("Late fees are off (Settings → Collections).")
        self.fee_due_table.setVisible(bool(view.fees))
        self.held_title.setVisible(bool(view.held))
        self.held_table.setVisible(bool(view.held))
        if view.reminders and not view.mail_ready:
            show_notice(self.mail_notice, "E-mail is not set up, so Run now cannot queue these reminders: enter the "
                                          "mail server and sender in Settings → E-mail first.", "warn")
        else:
            show_notice(self.mail_notice, "")
        self.tabs.setTabText(0, f"Due today ({len(view.reminders) + len(view.fees):,})")
        self._update_status()
        self._update_run_button()
        self.due_loaded.emit()

    def _update_status(self) -> None:
        view = self.due
        if view is None:
            return
        if view.nothing_due:
            text = f"Nothing to follow up today ({day_text(view.today)})."
        else:
            parts = []
            if view.reminders:
                parts.append(plural(len(view.reminders), "reminder") + " to queue")
            if view.fees:
                parts.append(plural(len(view.fees), "late fee") + " to assess")
            text = f"Today ({day_text(view.today)}): " + " and ".join(parts) + "."
        if view.held:
            text += f" {plural(len(view.held), 'invoice')} held back."
        text += " mspbill runs this by itself every hour while it is open."
        self.status.setText(text)

    def _update_run_button(self) -> None:
        self.run_button.setEnabled(not self.running)
        self.run_button.setText("Running…" if self.running else "Run now")

    def _open_candidate(self, model: SnapshotTableModel, index: QModelIndex) -> None:  # type: ignore[type-arg]
        if index.isValid():
            self.open_invoice.emit(model.row_at(index.row()).candidate.invoice_id)

    def _open_row(self, model: SnapshotTableModel, index: QModelIndex) -> None:  # type: ignore[type-arg]
        if index.isValid():
            self.open_invoice.emit(model.row_at(index.row()).invoice_id)

    # --- Run now ---
    def run_now(self) -> None:
        if self.running:
            return
        today = self.today()
        self.running = True
        self._update_run_button()
        show_notice(self.notice, "")

        def work(ctx: OpContext) -> CollectionsReport:
            return run_collections(ctx.db, today)

        def done(report: CollectionsReport) -> None:
            self.running = False
            self._update_run_button()
            text, kind = run_summary(report)
            show_notice(self.notice, text, kind)
            if report.reminders.queued or report.fees.own_invoices:
                self.send_mail()
            self.changed.emit()
            self.reload()
            self.ran.emit(report)

        def failed(exc: BaseException) -> bool:
            self.running = False
            self._update_run_button()
            if isinstance(exc, USER_ERRORS):
                show_notice(self.notice, describe_error(exc), "error")
                return True
            return False

        self.ops.run(self, work, on_success=done, on_failure=failed, label="Following up overdue invoices")

    def _after_send(self, outcome: SendOutcome) -> None:
        if not outcome.attempted:
            return
        # A reminder sent (or refused) changes its row in the log.
        if self.isVisible():
            self.reload_log()
        else:
            self.mark_stale()

    # --- the reminder log ---
    def reload_log(self) -> None:
        text = self.log_search.text()
        self._log_seq += 1
        seq = self._log_seq

        def loaded(rows: list[ReminderLogRow]) -> None:
            if seq != self._log_seq:
                return  # typed on meanwhile: the newer filter's rows follow
            self.log_model.set_rows(rows)
            n = len(rows)
            text_shown = plural(n, "reminder") + (f" (the newest {LOG_LIMIT:,})" if n >= LOG_LIMIT else "")
            if self.log_search.text().strip():
                text_shown += f" for clients matching “{self.log_search.text().strip()}”"
            self.log_count.setText(text_shown + ". Double-click one to open its invoice.")
            self.log_loaded.emit()

        self.ops.read(self, lambda s: reminder_log(s, client_text=text, limit=LOG_LIMIT), loaded,
                      label="Loading the reminder log")

    def _log_selected(self) -> None:
        rows = self.log_table.selectionModel().selectedRows()
        row = self.log_model.row_at(rows[0].row()) if len(rows) == 1 else None
        if row is None or not row.detail:
            self.log_detail.hide()
            return
        status = LOG_STATUS_LABELS.get(row.status, row.status)
        self.log_detail.setText(f"{row.invoice_number}, {row.label.lower()}, to {row.sent_to} — {status}:\n{row.detail}")
        self.log_detail.show()

    # --- late fees ---
    def reload_fees(self) -> None:
        self.ops.read(self, load_fees, self._show_fees, label="Loading late fees")

    def _show_fees(self, view: FeesView) -> None:
        self.fees = view
        for card, status in ((self.pending_card, "pending"), (self.billed_card, "billed"),
                             (self.waived_card, "waived")):
            totals = view.totals.get(status, {})
            n = view.counts.get(status, 0)
            card.set(money_text(totals) if totals else format_amount(0, view.currency), plural(n, "fee"))
        self.pending_card.note.setText(self.pending_card.note.text() + " · waiting for the next invoice")
        self.fee_model.set_rows(view.rows)
        self._apply_fee_filter()
        self.tabs.setTabText(2, f"Late fees ({len(view.rows):,})")
        self.fees_loaded.emit()

    def fee_status_filter(self) -> str | None:
        data = self.fee_filter.currentData()
        return str(data) if data else None

    def set_fee_filter(self, status: str | None) -> None:
        self.fee_filter.setCurrentIndex(max(0, self.fee_filter.findData(status)))

    def _apply_fee_filter(self) -> None:
        status = self.fee_status_filter()
        self.fee_model.set_predicate((lambda f: f.status == status) if status else None)

    def selected_fee(self) -> FeeRow | None:
        rows = self.fee_table.selectionModel().selectedRows()
        return self.fee_model.row_at(rows[0].row()) if len(rows) == 1 else None

    def _fee_selected(self) -> None:
        fee = self.selected_fee()
        self.waive_button.setEnabled(fee is not None and fee.status != "waived")
        self.fee_detail.setText(f"{fee.description} — {fee.where}" if fee is not None else
                                "Select a fee to waive it; double-click to open the invoice it was charged on.")

    def select_fee(self, fee_id: int) -> bool:
        row = self.fee_model.find_row(lambda f: f.id == fee_id)
        if row >= 0:
            self.fee_table.selectRow(row)
        return row >= 0

    def waive_selected(self) -> bool:
        fee = self.selected_fee()
        if fee is None:
            return False

        def waived(text: str) -> None:
            show_notice(self.notice, text, "ok")
            self.changed.emit()
            self.reload()

        return waive_with_reason(self.ops, self, fee, self.today(), waived)
