"""Outbox: every e-mail waiting to go, sent, or failed, newest first; send now,
retry, discard, and e-mail the invoices never e-mailed."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from PySide6.QtCore import QItemSelectionModel, QModelIndex, Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy.orm import Session

from mspbill.mail import (
    OutboxRow,
    discard_messages,
    is_configured,
    list_outbox,
    outbox_counts,
    retry_messages,
)
from ui.email_actions import ALL_QUEUED, EmailRunner, SendOutcome, email_unsent_invoices
from ui.ops import Ops
from ui.table import Column, SnapshotTableModel
from ui.widgets import heading, search_field, snapshot_table

LIMIT = 500
FILTERS = (("queued", "Queued"), ("failed", "Failed"), ("sent", "Sent"), (None, "All"))
STATUS_LABELS = {"queued": "Queued", "sending": "Sending…", "sent": "Sent", "failed": "Failed"}
ERROR_RED = "#b3261e"
WAITING_AMBER = "#8a5a00"


def _local(moment: dt.datetime | None) -> str:
    """"today 14:31", or the date and time on another day."""
    if moment is None:
        return ""
    local = moment.astimezone()
    if local.date() == dt.date.today():
        return local.strftime("today %H:%M")
    return local.strftime("%Y-%m-%d %H:%M")


def when_text(row: OutboxRow, now: dt.datetime | None = None) -> str:
    """Sent at, or when the next try is."""
    if row.status == "sent":
        return f"Sent {_local(row.sent_at)}"
    if row.status == "sending":
        return "Sending now"
    if row.status == "failed":
        return "Waits for Retry"
    now = now or dt.datetime.now(dt.UTC)
    if row.next_attempt_at is None or row.next_attempt_at <= now:
        return "Due now"
    return f"Next try {_local(row.next_attempt_at)}"


def _when_key(row: OutboxRow) -> tuple[int, dt.datetime, int]:
    moment = row.sent_at if row.status == "sent" else row.next_attempt_at
    return (0 if row.status == "sent" else 1, moment or row.created_at, row.id)


def _recipients(row: OutboxRow) -> str:
    return row.to + (f", cc {row.cc}" if row.cc else "")


def _status_color(row: OutboxRow) -> str | None:
    if row.status == "failed":
        return ERROR_RED
    if row.status == "queued" and row.last_error:
        return WAITING_AMBER
    return None


OUTBOX_COLUMNS: list[Column[OutboxRow]] = [
    Column("Status", lambda r: STATUS_LABELS.get(r.status, r.status),
           lambda r: (list(STATUS_LABELS).index(r.status) if r.status in STATUS_LABELS else 9, r.id),
           tooltip=lambda r: r.last_error),
    Column("Invoice", lambda r: r.invoice_number or "—", lambda r: (r.invoice_number or "", r.id)),
    Column("Client", lambda r: r.client_name or "", lambda r: ((r.client_name or "").casefold(), r.id),
           tooltip=lambda r: r.client_name or ""),
    Column("To", _recipients, lambda r: (r.to.casefold(), r.id), tooltip=_recipients),
    Column("Subject", lambda r: r.subject, lambda r: (r.subject.casefold(), r.id), tooltip=lambda r: r.subject),
    Column("Tries", lambda r: str(r.attempts), lambda r: (r.attempts, r.id), align_right=True),
    Column("Last error", lambda r: r.last_error, lambda r: (r.last_error, r.id), tooltip=lambda r: r.last_error),
    Column("Next try / sent", when_text, _when_key),
    Column("Queued", lambda r: _local(r.created_at), lambda r: (r.created_at, r.id)),
]
# The subject takes what room is left: it mostly repeats the invoice number; the reason matters more.
COLUMN_WIDTHS = (75, 90, 130, 160, 120, 40, 220, 140, 110)
SUBJECT_COLUMN = 4
LAST_ERROR_COLUMN = 6
QUEUED_COLUMN = 8


class _OutboxModel(SnapshotTableModel[OutboxRow]):
    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> object:  # type: ignore[override]
        if role == Qt.ItemDataRole.ForegroundRole and index.isValid() and index.column() in (0, LAST_ERROR_COLUMN):
            color = _status_color(self.row_at(index.row()))
            if color:
                from PySide6.QtGui import QColor

                return QColor(color)
        return super().data(index, role)


@dataclass(frozen=True)
class OutboxView:
    rows: list[OutboxRow]
    counts: dict[str, int]
    configured: bool


def fetch_outbox(session: Session, status: str | None) -> OutboxView:
    if status == "queued":  # a message being sent is still on its way
        rows = list_outbox(session, status="queued", limit=LIMIT) + list_outbox(session, status="sending",
                                                                                 limit=LIMIT)
        rows.sort(key=lambda r: (r.created_at, r.id), reverse=True)
    else:
        rows = list_outbox(session, status=status, limit=LIMIT)
    return OutboxView(rows[:LIMIT], outbox_counts(session), is_configured(session))


class OutboxScreen(QWidget):
    changed = Signal()
    loaded = Signal(int)
    open_invoice = Signal(int)
    open_mail_settings = Signal()

    def __init__(self, ops: Ops, runner: EmailRunner | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.ops = ops
        self.runner = runner or EmailRunner.for_ops(ops)
        self.model = _OutboxModel(OUTBOX_COLUMNS, self.haystack, self)
        self.counts: dict[str, int] = {}
        self.configured = True
        self._loaded_once = False
        self._build()
        self.runner.started.connect(self._update_buttons)
        self.runner.finished.connect(self._after_send)

    @staticmethod
    def haystack(row: OutboxRow) -> str:
        return f"{row.invoice_number or ''}\n{row.client_name or ''}\n{row.to}\n{row.cc}\n{row.subject}"

    # --- building ---
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        top.addWidget(heading("Outbox"))
        top.addStretch()
        self.unsent_button = QPushButton("E-mail unsent invoices…")
        self.unsent_button.setToolTip("E-mail every issued invoice that has never been e-mailed, with its PDF")
        self.unsent_button.clicked.connect(lambda: self.email_unsent())
        self.send_button = QPushButton("Send now")
        self.send_button.setToolTip("Send every queued e-mail now, including those waiting for their next try")
        self.send_button.clicked.connect(lambda: self.send_now())
        top.addWidget(self.unsent_button)
        top.addWidget(self.send_button)
        layout.addLayout(top)

        self.banner = QFrame()
        self.banner.setObjectName("banner")
        self.banner.setStyleSheet("#banner { background: #fef7e0; border-radius: 4px; } "
                                  "#banner QLabel { color: #7a5900; }")
        bl = QHBoxLayout(self.banner)
        bl.setContentsMargins(10, 6, 10, 6)
        self.banner_text = QLabel("E-mail is not set up yet, so nothing here can be sent: enter the mail server "
                                  "and the sender address first.")
        self.banner_text.setWordWrap(True)
        self.banner_button = QPushButton("Set up Settings → E-mail")
        self.banner_button.clicked.connect(self.open_mail_settings.emit)
        bl.addWidget(self.banner_text, 1)
        bl.addWidget(self.banner_button)
        self.banner.hide()
        layout.addWidget(self.banner)

        bar = QHBoxLayout()
        self.filter_group = QButtonGroup(self)
        self.filter_group.setExclusive(True)
        self.filter_buttons: dict[str | None, QPushButton] = {}
        for status, label in FILTERS:
            button = QPushButton(label)
            button.setCheckable(True)
            button.setProperty("status", status)
            button.setStyleSheet("QPushButton { padding: 4px 12px; } "
                                 "QPushButton:checked { background: #1a73e8; color: white; border: none; "
                                 "border-radius: 4px; }")
            self.filter_group.addButton(button)
            self.filter_buttons[status] = button
            bar.addWidget(button)
        self.filter_buttons[None].setChecked(True)
        self.filter_group.buttonClicked.connect(lambda _b: self.reload())
        bar.addSpacing(12)
        self.search = search_field(self, "Search by invoice, client, address or subject", self.apply_filter)
        bar.addWidget(self.search, 1)
        self.retry_button = QPushButton("Retry selected")
        self.retry_button.setToolTip("Queue the selected failed or waiting e-mails again and send them now")
        self.retry_button.clicked.connect(lambda: self.retry_selected())
        self.discard_button = QPushButton("Discard selected…")
        self.discard_button.setToolTip("Remove the selected queued or failed e-mails; they are not sent")
        self.discard_button.clicked.connect(lambda: self.discard_selected())
        bar.addWidget(self.retry_button)
        bar.addWidget(self.discard_button)
        layout.addLayout(bar)

        self.table = snapshot_table(self.model, COLUMN_WIDTHS, SUBJECT_COLUMN, multi_select=True)
        self.table.sortByColumn(QUEUED_COLUMN, Qt.SortOrder.DescendingOrder)
        self.table.doubleClicked.connect(self._double_clicked)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._update_buttons())
        self.model.modelReset.connect(self._update_buttons)
        layout.addWidget(self.table, 1)

        # The reasons are sentences; the table shows their start, this the whole of the selected one.
        self.detail = QLabel()
        self.detail.setWordWrap(True)
        self.detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.detail.setStyleSheet("background: palette(base); border: 1px solid #d0d4da; border-radius: 4px; "
                                  "padding: 6px 8px;")
        self.detail.hide()
        layout.addWidget(self.detail)

        self.count_label = QLabel()
        layout.addWidget(self.count_label)
        self._update_buttons()

    # --- data ---
    def ensure_loaded(self) -> None:
        if not self._loaded_once:
            self.reload()

    def mark_stale(self) -> None:
        """Reload on the next visit."""
        self._loaded_once = False

    def status_filter(self) -> str | None:
        checked = self.filter_group.checkedButton()
        return checked.property("status") if checked is not None else None

    def set_status_filter(self, status: str | None) -> None:
        self.filter_buttons[status].setChecked(True)
        self.reload()

    def reload(self, select_ids: list[int] | None = None) -> None:
        status = self.status_filter()
        if not self._loaded_once:
            self.count_label.setText("Loading the outbox…")
        self.ops.read(self, lambda s: fetch_outbox(s, status), lambda view: self._loaded(view, status, select_ids),
                      label="Loading the outbox")

    def _loaded(self, view: OutboxView, status: str | None, select_ids: list[int] | None) -> None:
        if status != self.status_filter():
            return  # another filter was chosen meanwhile; its rows follow
        self._loaded_once = True
        self.counts = view.counts
        self.configured = view.configured
        self.banner.setVisible(not view.configured)
        c = view.counts
        numbers = {"queued": c.get("queued", 0) + c.get("sending", 0), "failed": c.get("failed", 0),
                   "sent": c.get("sent", 0), None: sum(c.values())}
        for key, label in FILTERS:
            self.filter_buttons[key].setText(f"{label} ({numbers[key]:,})")
        self.model.set_rows(view.rows)
        self.apply_filter()
        if select_ids:
            self.select_ids(select_ids)
        self.loaded.emit(len(view.rows))

    def apply_filter(self) -> None:
        self.model.set_filter_text(self.search.text())
        shown, total = self.model.rowCount(), self.model.total_count()
        noun = "message" if total == 1 else "messages"
        text = f"{total:,} {noun}" if shown == total else f"{shown:,} of {total:,} {noun}"
        if total >= LIMIT:
            text += f" (the newest {LIMIT:,})"
        self.count_label.setText(text)
        self._update_buttons()

    def select_ids(self, ids: list[int]) -> None:
        selection = self.table.selectionModel()
        flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
        self.table.clearSelection()
        wanted = set(ids)
        for row, r in enumerate(self.model.visible_rows()):
            if r.id in wanted:
                selection.select(self.model.index(row, 0), flags)

    def selected_rows(self) -> list[OutboxRow]:
        return [self.model.row_at(i.row()) for i in self.table.selectionModel().selectedRows()]

    def _show_detail(self, rows: list[OutboxRow]) -> None:
        row = rows[0] if len(rows) == 1 else None
        if row is None or not row.last_error:
            self.detail.hide()
            return
        what = f"{row.invoice_number} to {_recipients(row)}" if row.invoice_number else _recipients(row)
        tries = f"{row.attempts} {'try' if row.attempts == 1 else 'tries'}"
        if row.status == "failed":
            state = f"Failed after {tries}; correct the problem, then Retry"
        elif row.status == "sent":
            state = "Sent, but not to every address"
        else:
            state = f"Not sent yet ({tries}); {when_text(row).lower()}, automatically"
        self.detail.setText(f"{what} — {state}:\n{row.last_error}")
        self.detail.show()

    def _update_buttons(self, *_args: object) -> None:
        rows = self.selected_rows()
        self._show_detail(rows)
        actionable = bool(rows) and all(r.status in ("queued", "failed") for r in rows)
        waiting = self.counts.get("queued", 0)
        self.retry_button.setEnabled(actionable and self.configured)
        self.discard_button.setEnabled(actionable)
        n = len(rows)
        self.retry_button.setText(f"Retry {n} selected" if n > 1 else "Retry selected")
        self.discard_button.setText(f"Discard {n} selected…" if n > 1 else "Discard selected…")
        self.send_button.setEnabled(self.configured and waiting > 0 and not EmailRunner.busy())
        self.send_button.setText(f"Send {waiting:,} now" if waiting > 1 else "Send now")

    # --- actions ---
    def send_now(self) -> None:
        self.runner.send(self, ALL_QUEUED)

    def retry_selected(self) -> None:
        ids = [r.id for r in self.selected_rows() if r.status in ("queued", "failed")]
        if not ids:
            return

        def retried(message_ids: list[int]) -> None:
            self.reload(select_ids=message_ids)
            self.runner.send(self, message_ids)

        self.ops.write(self, lambda s: retry_messages(s, ids), retried, label="Retrying e-mails")

    def discard_selected(self) -> None:
        rows = [r for r in self.selected_rows() if r.status in ("queued", "failed")]
        if not rows:
            return
        if len(rows) == 1:
            r = rows[0]
            what = f"the e-mail of {r.invoice_number} to {r.to}" if r.invoice_number else f"the e-mail to {r.to}"
        else:
            what = f"these {len(rows)} e-mails"
        answer = QMessageBox.question(self, "Discard e-mails",
                                      f"Discard {what}? {'It is' if len(rows) == 1 else 'They are'} not sent; "
                                      "the invoice's history keeps a note.",
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        if answer != QMessageBox.StandardButton.Yes:
            return
        ids = [r.id for r in rows]
        self.ops.write(self, lambda s: discard_messages(s, ids), lambda _n: self._after_change(),
                       label="Discarding e-mails")

    def email_unsent(self) -> None:
        email_unsent_invoices(self, self.ops, self.runner)

    def _after_change(self) -> None:
        self.reload()
        self.changed.emit()

    def _after_send(self, outcome: SendOutcome) -> None:
        if not outcome.attempted and not outcome.error:
            self._update_buttons()
            return  # nothing was due: nothing changed
        if self.isVisible():
            self.reload()
        else:
            self.mark_stale()
        self.changed.emit()

    def _double_clicked(self, index: QModelIndex) -> None:
        if not index.isValid():
            return
        row = self.model.row_at(index.row())
        if row.invoice_id is not None:
            self.open_invoice.emit(row.invoice_id)
