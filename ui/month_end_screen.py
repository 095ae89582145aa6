"""Month-end: preview the batch of a month (what is issued, charged and left out, and
why), run it, follow its progress, and read its account; earlier runs below.

Every read and the run itself go through Ops (house rule 2).  The run is one long
job: it opens the processor on its worker, and its progress snapshots cross to
the UI thread through a locked holder (`ProgressBox`) that the job's progress
signal only says to read.  Cancel sets the job's cancel event: no new charge
starts, those in flight finish and are recorded.  A run under way anywhere in the
office (another window, process or workstation) is polled while the screen is on
show; Run waits for it.
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QHideEvent, QKeySequence, QResizeEvent, QShortcut, QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QStackedWidget,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from mspbill.batch.plan import (
    DAYS_LATE,
    MONTHS_AHEAD,
    BatchPreview,
    InvoiceToIssue,
    LeftOutCharge,
    PlannedCharge,
    approve_over_cap,
    money_text,
    preview_batch,
    preview_csv,
)
from mspbill.batch.run import (
    BatchBusyError,
    BatchProgress,
    BatchReport,
    RunOptions,
    RunRow,
    list_runs,
    run_batch,
    run_is_dead,  # the lock's own rule: its process is gone
    run_report,
    running_run,
)
from mspbill.db.models import (
    Client,
    PaymentSettings,
    ProcessorKind,
    utcnow,
)
from mspbill.invoicing import drafts_for_month
from mspbill.payments.gateway import Gateway, NotConfiguredError, ProcessorMode
from mspbill.periods import Month
from mspbill.validation import Issue, ValidationError
from ui.month_end_dialogs import (
    LEFT_OUT_COLUMNS,
    MODE_LABELS,
    RUN_STATUS_COLORS,
    RUN_STATUS_LABELS,
    ProgressPanel,
    ResultPanel,
    RunConfirmDialog,
    approval_question,
    local_time,
    money,
    pays_by_invoice,
    plural,
    processor_unusable,
    short_number,
    target_columns,
    unusable_processor_text,
    what_text,
)
from ui.ops import USER_ERRORS, OpContext, OpHandle, Ops, describe_error
from ui.payment_widgets import (
    ModeBadge,
    PaymentSession,
    ask_yes_no,
    close_gateway,
    office_mode_and_note,
    processor_message,
)
from ui.table import Column, SnapshotTableModel
from ui.widgets import MUTED_STYLE, heading, notice_label, show_notice, snapshot_table

NARROW = 950               # below this width the Detail columns give way (the selected row's shows below)
POLL_MS = 5_000            # how often a run under way elsewhere is looked for while the screen shows
PROGRESS_EVERY = 0.1       # seconds between progress signals from the run (stage changes always go)


# --- what the screen reads (on workers) ----------------------------------------------------


def period_choices(today: dt.date) -> list[Month]:
    """The months a run may bill today (plan.check_period's window), oldest first."""
    month = Month.of(today).shift(MONTHS_AHEAD)
    oldest = today - dt.timedelta(days=DAYS_LATE)
    months = []
    while month.last_day >= oldest:
        months.append(month)
        month = month.shift(-1)
    return months[::-1]


def default_period(session: Session, today: dt.date) -> Month:
    """The earliest month whose drafts wait to be issued; else the coming month from the 20th on,
    else this month."""
    for month in period_choices(today):
        if drafts_for_month(session, month):
            return month
    return Month.of(today).shift(1) if today.day >= 20 else Month.of(today)


@dataclass(frozen=True)
class PreviewView:
    preview: BatchPreview
    caps: dict[int, int]        # client id -> autopay cap, for the invoices over it
    mode_note: str              # why no processor can be used ("" when one can)


def load_preview(session: Session, month: Month, today: dt.date | None = None) -> PreviewView:
    mode, note = office_mode_and_note(session)
    preview = preview_batch(session, month, today=today, mode=mode, use_office_mode=False)
    over = sorted({lo.target.client_id for lo in preview.left_out if lo.approvable})
    caps = {c.id: c.autopay_cap_cents for c in session.scalars(select(Client).where(Client.id.in_(over)))
            if c.autopay_cap_cents is not None} if over else {}
    return PreviewView(preview, caps, note)


@dataclass(frozen=True)
class RunningInfo:
    """The office's run under way, as the lock row says."""

    id: int
    period: str
    host: str
    actor: str
    started_at: dt.datetime
    this_computer: bool
    answering: bool             # False: its process stopped; the next run takes it over

    def text(self) -> str:
        label = Month(int(self.period[:4]), int(self.period[5:])).label
        where = "this computer" if self.this_computer else (self.host or "another workstation")
        who = f" by {self.actor}" if self.actor else ""
        if not self.answering:
            return (f"The {label} run started on {where} ({local_time(self.started_at)}{who}) stopped answering. "
                    "Running again takes it over and resumes it; nothing is charged twice.")
        return (f"A month-end run for {label} is under way on {where} (started {local_time(self.started_at)}{who}). "
                "Run is off until it finishes; its account then shows under Past runs.")


@dataclass(frozen=True)
class RunsView:
    running: RunningInfo | None
    runs: list[RunRow]


def load_runs(session: Session) -> RunsView:
    row = running_run(session)
    info = None
    if row is not None:
        info = RunningInfo(row.id, row.period, row.host, row.actor, row.started_at,
                           row.host == socket.gethostname(), not run_is_dead(row, utcnow()))
    return RunsView(info, list_runs(session))


def processor_chosen(session: Session) -> bool:
    row = session.get(PaymentSettings, 1)
    return row is not None and row.processor is not ProcessorKind.NONE


class ProgressBox:
    """The run's latest progress, written by its worker thread and read on the UI thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: BatchProgress | None = None
        self._sent_at = 0.0
        self._sent_stage = ""

    def put(self, progress: BatchProgress) -> bool:
        """Keep it; True when the UI should be told now (a new stage, the last charge, or a while since)."""
        now = time.monotonic()
        with self._lock:
            self._latest = progress
            due = (progress.stage != self._sent_stage or progress.done == progress.total
                   or now - self._sent_at >= PROGRESS_EVERY)
            if due:
                self._sent_at, self._sent_stage = now, progress.stage
            return due

    def latest(self) -> BatchProgress | None:
        with self._lock:
            return self._latest


# --- tables ------------------------------------------------------------------------------


CHARGE_COLUMNS: list[Column[PlannedCharge]] = [
    *target_columns(),
    Column("Method", lambda c: c.method_label, tooltip=lambda c: c.method_label),
    Column("What", what_text, tooltip=what_text),
]
INVOICE_COLUMNS: list[Column[InvoiceToIssue]] = [
    Column("Client", lambda i: i.client_name, lambda i: i.client_name.casefold(), tooltip=lambda i: i.client_name),
    Column("Title", lambda i: short_number(i.title), lambda i: i.title.casefold(), tooltip=lambda i: i.title),
    Column("Total", lambda i: money(i.total_cents, i.currency), lambda i: i.total_cents, align_right=True),
    Column("Paid by", lambda i: "Autopay" if i.autopay else "E-mailed invoice"),
    Column("Note", lambda i: i.notes, tooltip=lambda i: i.notes),
]
RUN_COLUMNS: list[Column[RunRow]] = [
    Column("Started", lambda r: local_time(r.started_at), lambda r: r.started_at),
    Column("Period", lambda r: Month(int(r.period[:4]), int(r.period[5:])).label, lambda r: (r.period, r.id)),
    Column("Mode", lambda r: MODE_LABELS.get(r.mode, r.mode)),
    Column("Status", lambda r: RUN_STATUS_LABELS.get(r.status, r.status), tooltip=lambda r: r.message),
    Column("Issued", lambda r: f"{r.issued:,}", lambda r: r.issued, align_right=True),
    Column("Charged", lambda r: f"{r.succeeded:,}", lambda r: r.succeeded, align_right=True),
    Column("Collected", lambda r: money_text(r.collected), lambda r: sum(r.collected.values()), align_right=True),
    Column("Declined", lambda r: f"{r.failed:,}", lambda r: r.failed, align_right=True),
    Column("By", lambda r: r.actor, tooltip=lambda r: f"{r.actor} on {r.host}"),
]
class _RunModel(SnapshotTableModel[RunRow]):
    def data(self, index, role=Qt.ItemDataRole.DisplayRole):  # type: ignore[no-untyped-def]
        if role == Qt.ItemDataRole.ForegroundRole and index.isValid() and self.columns[index.column()].title == \
                "Status":
            return RUN_STATUS_COLORS.get(self.row_at(index.row()).status)
        return super().data(index, role)


class StatCard(QFrame):
    """A small figure with its title and a note, for the totals strip."""

    def __init__(self, title: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("stat")
        self.setStyleSheet("#stat { background: palette(base); border: 1px solid #d0d4da; border-radius: 6px; }")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.setSpacing(1)
        self.title = QLabel(title)
        self.title.setStyleSheet("color: #5f6368; font-size: 11px;")
        self.value = QLabel("…")
        self.value.setStyleSheet("font-size: 16px; font-weight: 600;")
        self.note = QLabel()
        self.note.setStyleSheet("color: #5f6368; font-size: 11px;")
        for label in (self.title, self.value, self.note):
            layout.addWidget(label)

    def set(self, value: str, note: str = "") -> None:
        self.value.setText(value)
        self.note.setText(note)
        self.setToolTip(f"{self.title.text()}: {value}" + (f" — {note}" if note else ""))


def _tab_page(*widgets: QWidget) -> QWidget:
    page = QWidget()
    layout = QVBoxLayout(page)
    layout.setContentsMargins(0, 6, 0, 0)
    for w in widgets:
        layout.addWidget(w, 1 if isinstance(w, QTableView) else 0)
    return page


def ask_save_path(parent: QWidget, title: str, suggested: str) -> str:
    """Where to write the CSV (tests replace this)."""
    path, _filter = QFileDialog.getSaveFileName(parent, title, suggested, "CSV files (*.csv);;All files (*)")
    return path


def write_csv(path: str, text: str) -> str:
    # UTF-8 with a byte-order mark: Excel then reads the names as UTF-8; the core's lines end in CRLF.
    with open(path, "w", encoding="utf-8-sig", newline="") as out:
        out.write(text)
    return path


# --- the screen ---------------------------------------------------------------------------


@dataclass
class _RunJob:
    preview: BatchPreview
    handle: OpHandle
    box: ProgressBox = field(default_factory=ProgressBox)


class MonthEndScreen(QWidget):
    changed = Signal()
    open_outbox = Signal()
    previewed = Signal()          # a preview is on show
    runs_loaded = Signal()
    run_finished = Signal(object)  # BatchReport of a run started here
    run_failed = Signal(str)       # the banner's text
    report_shown = Signal(object)  # BatchReport

    def __init__(self, ops: Ops, backup_dir: Path | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.ops = ops
        self.backup_dir = backup_dir
        self.session = PaymentSession.for_ops(ops)
        self.today: Callable[[], dt.date] = dt.date.today
        self.view: PreviewView | None = None
        self.runs: RunsView | None = None
        self.job: _RunJob | None = None
        self.confirm_dialog: RunConfirmDialog | None = None
        self._loaded_once = False
        self._preview_seq = 0
        self._runs_loading = False
        self._build()
        self.poll = QTimer(self)
        self.poll.setInterval(POLL_MS)
        self.poll.timeout.connect(self.refresh_runs)
        self.session.mode_changed.connect(self._mode_changed)  # bound: forgotten with the screen

    # --- building ---
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        top.addWidget(heading("Month-end"))
        top.addStretch()
        self.badge = ModeBadge()
        top.addWidget(self.badge)
        layout.addLayout(top)

        bar = QHBoxLayout()
        period_label = QLabel("&Period")
        self.period = QComboBox()
        self.period.setMinimumContentsLength(14)
        self.period.setToolTip("The month the run bills: the current or the coming one (or one a little late)")
        period_label.setBuddy(self.period)
        self.period.activated.connect(lambda _i: self.preview_now())
        self.preview_button = QPushButton("Pre&view")
        self.preview_button.setToolTip("Work out again what the run would do (F5); nothing is written")
        self.preview_button.clicked.connect(lambda: self.preview_now())
        self.export_button = QPushButton("&Export CSV…")
        self.export_button.setToolTip("Save the preview as a spreadsheet (CSV, UTF-8)")
        self.export_button.clicked.connect(lambda: self.export_csv())
        self.run_button = QPushButton("&Run…")
        self.run_button.setToolTip("Issue the invoices and charge the autopay clients, after a confirmation")
        self.run_button.setStyleSheet("QPushButton:enabled { font-weight: 600; }")
        self.run_button.clicked.connect(lambda: self.ask_to_run())
        for w in (period_label, self.period, self.preview_button, self.export_button):
            bar.addWidget(w)
        bar.addStretch()
        bar.addWidget(self.run_button)
        layout.addLayout(bar)
        QShortcut(QKeySequence(Qt.Key.Key_F5), self, self.preview_now,
                  context=Qt.ShortcutContext.WidgetWithChildrenShortcut)

        self.status = QLabel("Loading…")
        self.status.setWordWrap(True)
        self.status.setStyleSheet(MUTED_STYLE)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.status)
        self.running_banner = notice_label()
        layout.addWidget(self.running_banner)
        self.banner = notice_label()
        layout.addWidget(self.banner)

        self.pages = QStackedWidget()
        self.pages.addWidget(self._build_preview_page())
        self.progress = ProgressPanel()
        self.progress.cancel_clicked.connect(self.cancel_run)
        self.pages.addWidget(self.progress)
        self.result = ResultPanel()
        self.result.back_clicked.connect(self.show_preview_page)
        self.result.outbox_clicked.connect(self.open_outbox.emit)
        self.pages.addWidget(self.result)
        self.pages.currentChanged.connect(lambda _i: self._page_changed())
        layout.addWidget(self.pages, 1)
        self._update_buttons()

    def _build_preview_page(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 4, 0, 0)
        strip = QHBoxLayout()
        self.invoices_card = StatCard("Invoices to issue")
        self.charges_card = StatCard("Charges")
        self.retries_card = StatCard("Retries due")
        self.left_card = StatCard("Left out")
        for card in (self.invoices_card, self.charges_card, self.retries_card, self.left_card):
            strip.addWidget(card, 1)
        self.totals = QWidget()
        self.totals.setLayout(strip)
        strip.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.totals)
        self.nothing = QLabel()
        self.nothing.setWordWrap(True)
        self.nothing.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.nothing.setStyleSheet(
            "background: #e8f0fe; color: #174ea6; padding: 18px; border-radius: 6px; font-size: 15px;")
        self.nothing.hide()
        layout.addWidget(self.nothing)
        self.mode_notice = notice_label()
        layout.addWidget(self.mode_notice)
        self.note = notice_label()
        layout.addWidget(self.note)

        self.tabs = QTabWidget()
        self.charge_model = SnapshotTableModel(CHARGE_COLUMNS, lambda c: f"{c.target.client_name}\n{c.target.number}",
                                               self)
        self.charge_table = snapshot_table(self.charge_model, (200, 240, 100, 170, 130), 1)
        self.charge_table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.tabs.addTab(_tab_page(self.charge_table), "Charges")

        self.left_model = SnapshotTableModel(LEFT_OUT_COLUMNS, lambda r: f"{r.target.client_name}\n{r.target.number}",
                                             self)
        self.left_table = snapshot_table(self.left_model, (170, 150, 90, 250, 80, 300), 5, multi_select=True)
        self.left_table.sortByColumn(3, Qt.SortOrder.AscendingOrder)
        self.left_table.selectionModel().selectionChanged.connect(lambda *_: self._left_selected())
        self.left_model.modelReset.connect(self._left_selected)
        self.left_detail = QLabel()
        self.left_detail.setWordWrap(True)
        self.left_detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.left_detail.setStyleSheet(MUTED_STYLE)
        self.approve_button = QPushButton("Approve over cap…")
        self.approve_button.setToolTip("Let the run charge the selected invoices although they are above the "
                                       "client's autopay cap")
        self.approve_button.clicked.connect(lambda: self.approve_selected())
        under = QHBoxLayout()
        under.addWidget(self.left_detail, 1)
        under.addWidget(self.approve_button, 0, Qt.AlignmentFlag.AlignTop)
        left_page = _tab_page(self.left_table)
        left_layout = left_page.layout()
        assert isinstance(left_layout, QVBoxLayout)
        left_layout.addLayout(under)
        self.tabs.addTab(left_page, "Left out")

        self.invoice_model = SnapshotTableModel(INVOICE_COLUMNS, lambda i: f"{i.client_name}\n{i.title}", self)
        self.invoice_table = snapshot_table(self.invoice_model, (200, 280, 100, 115, 110), 1)
        self.invoice_table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.tabs.addTab(_tab_page(self.invoice_table), "Invoices to issue")

        self.retry_model = SnapshotTableModel(CHARGE_COLUMNS, lambda c: f"{c.target.client_name}\n{c.target.number}",
                                              self)
        self.retry_table = snapshot_table(self.retry_model, (200, 240, 100, 170, 130), 1)
        self.retry_table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.retry_page = _tab_page(self.retry_table)
        self.tabs.addTab(self.retry_page, "Retries due")

        self.runs_model = _RunModel(RUN_COLUMNS, lambda r: f"{r.period}\n{r.actor}\n{r.host}", self)
        self.runs_table = snapshot_table(self.runs_model, (125, 110, 75, 85, 55, 60, 100, 65, 100), 8)
        self.runs_table.sortByColumn(0, Qt.SortOrder.DescendingOrder)
        self.runs_table.doubleClicked.connect(self._run_double_clicked)
        self.runs_table.activated.connect(self._run_double_clicked)
        hint = QLabel("Double-click a run (or press Enter) to read its account.")
        hint.setStyleSheet(MUTED_STYLE)
        self.runs_page = _tab_page(self.runs_table, hint)
        self.tabs.addTab(self.runs_page, "Past runs")
        layout.addWidget(self.tabs, 1)
        return page

    def _mode_changed(self, _mode: object) -> None:
        self.mark_stale()

    # --- the list protocol of the main window ---
    def ensure_loaded(self) -> None:
        if not self._loaded_once:
            self.reload()

    def mark_stale(self) -> None:
        """Work the preview out again on the next visit (a payment or invoice changed elsewhere)."""
        self._loaded_once = False

    def reload(self) -> None:
        self._loaded_once = True
        self.refresh_runs()
        if self.period.count() == 0:
            self.choose_default_period()
        elif self.job is None:
            self.preview_now(switch_page=False)

    # --- showing ---
    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.poll.start()
        self._fit_columns()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit_columns()

    def _fit_columns(self) -> None:
        narrow = self.width() < NARROW
        for table in (self.left_table, self.result.left_table):
            table.setColumnHidden(5, narrow)

    def hideEvent(self, event: QHideEvent) -> None:
        super().hideEvent(event)
        self.poll.stop()

    def show_preview_page(self) -> None:
        self.pages.setCurrentIndex(0)
        self._update_buttons()

    def _page_changed(self) -> None:
        # The summary line speaks of the preview: on the progress and result pages it would mislead.
        p = self.view.preview if self.view else None
        self.status.setVisible(self.pages.currentIndex() == 0 and not (p is not None and p.nothing_to_do))

    def showing(self) -> str:
        return ("preview", "progress", "result")[self.pages.currentIndex()]

    # --- the period ---
    def month(self) -> Month | None:
        text = self.period.currentData()
        return Month(int(text[:4]), int(text[5:])) if text else None

    def set_month(self, month: Month) -> None:
        index = self.period.findData(str(month))
        if index >= 0:
            self.period.setCurrentIndex(index)

    def _fill_periods(self, chosen: Month) -> None:
        self.period.clear()
        for m in period_choices(self.today()):
            self.period.addItem(m.label, str(m))
        self.set_month(chosen)

    def choose_default_period(self) -> None:
        today = self.today()

        def chosen(month: Month) -> None:
            self._fill_periods(month)
            self.preview_now()

        self.ops.read(self, lambda s: default_period(s, today), chosen, label="Finding the month to bill")

    # --- the preview ---
    def preview_now(self, switch_page: bool = True, then: Callable[[PreviewView], None] | None = None) -> None:
        month = self.month()
        if month is None:
            return
        self._preview_seq += 1
        seq = self._preview_seq
        today = self.today()
        if switch_page and self.job is None:
            # Asked for: the preview shows, and the last failure's banner goes.
            self.show_preview_page()
            show_notice(self.banner, "")
        self.status.setText(f"Working out the {month.label} month-end…")

        def loaded(view: PreviewView) -> None:
            if seq != self._preview_seq:
                return  # another month was chosen meanwhile; its preview follows
            self._show_preview(view)
            if then is not None:
                then(view)

        def failed(exc: BaseException) -> bool:
            if seq != self._preview_seq:
                return True
            if isinstance(exc, USER_ERRORS):
                self.status.setText("")
                show_notice(self.banner, describe_error(exc), "error")
                return True
            return False

        self.ops.read(self, lambda s: load_preview(s, month, today), loaded, on_failure=failed,
                      label="Previewing the month-end")

    def _show_preview(self, view: PreviewView) -> None:
        self.view = view
        p = view.preview
        self.badge.set_mode(p.mode)
        self.status.setText(p.summary())
        invoice_total = money_text(p.invoice_totals())
        self.invoices_card.set(f"{len(p.invoices):,}", invoice_total)
        where = p.mode.label.split(" (")[0] if p.mode else "No processor"
        self.charges_card.set(f"{len(p.charges):,}", f"{money_text(p.charge_totals())} · {where}")
        self.retries_card.set(f"{len(p.retries):,}", "of earlier declines" if p.retries else "none due")
        by_invoice = pays_by_invoice(p.left_out)
        self.left_card.set(f"{len(p.left_out):,}", f"{by_invoice:,} pay by invoice" if by_invoice else "")
        self.totals.setVisible(not p.nothing_to_do)
        self.nothing.setText(f"Nothing to do for {p.month.label}: no invoice to issue and no charge due."
                             + ("\nThe autopay invoices left out are listed under Left out." if p.left_out else ""))
        self.nothing.setVisible(p.nothing_to_do)
        self._page_changed()
        if processor_unusable(p.mode, view.mode_note):
            show_notice(self.mode_notice, unusable_processor_text(view.mode_note), "warn")
        elif p.mode is None:
            show_notice(self.mode_notice, "No payment processor is set up: the run issues and e-mails the invoices; "
                                          "nothing is charged.", "info")
        else:
            show_notice(self.mode_notice, "")
        self.charge_model.set_rows(p.charges)
        self.left_model.set_rows(p.left_out)
        self.invoice_model.set_rows(p.invoices)
        self.retry_model.set_rows(p.retries)
        self.tabs.setTabText(0, f"Charges ({len(p.charges):,})")
        self.tabs.setTabText(1, f"Left out ({len(p.left_out):,})")
        self.tabs.setTabText(2, f"Invoices to issue ({len(p.invoices):,})")
        retry_index = self.tabs.indexOf(self.retry_page)
        self.tabs.setTabText(retry_index, f"Retries due ({len(p.retries):,})")
        self.tabs.setTabVisible(retry_index, bool(p.retries))
        self._update_buttons()
        self.previewed.emit()

    # --- past runs and the run under way elsewhere ---
    def refresh_runs(self) -> None:
        if self._runs_loading:
            return
        self._runs_loading = True

        def loaded(view: RunsView) -> None:
            self._runs_loading = False
            self._show_runs(view)

        def failed(_exc: BaseException) -> bool:
            self._runs_loading = False
            return False

        self.ops.read(self, load_runs, loaded, on_failure=failed, label="Looking for month-end runs")

    def _show_runs(self, view: RunsView) -> None:
        before = self.runs.running if self.runs else None
        self.runs = view
        self.runs_model.set_rows(view.runs)
        self.tabs.setTabText(self.tabs.indexOf(self.runs_page), f"Past runs ({len(view.runs):,})")
        elsewhere = view.running if self.job is None else None
        if elsewhere is not None:
            show_notice(self.running_banner, elsewhere.text(), "warn" if elsewhere.answering else "info")
        else:
            show_notice(self.running_banner, "")
        if before is not None and view.running is None and self.job is None:
            # The other run finished: what it did shows in the preview now.
            self.changed.emit()
            self.preview_now(switch_page=False)
        self._update_buttons()
        self.runs_loaded.emit()

    def busy_elsewhere(self) -> bool:
        running = self.runs.running if self.runs else None
        return running is not None and running.answering and self.job is None

    def _run_double_clicked(self, index: QModelIndex) -> None:
        if index.isValid():
            self.open_report(self.runs_model.row_at(index.row()).id)

    def open_report(self, run_id: int) -> None:
        self.ops.read(self, lambda s: run_report(s, run_id), self.show_report, label="Reading the run's account")

    def show_report(self, report: BatchReport) -> None:
        self.result.show_report(report)
        self.pages.setCurrentWidget(self.result)
        self._update_buttons()
        self.report_shown.emit(report)

    # --- buttons ---
    def _update_buttons(self) -> None:
        p = self.view.preview if self.view else None
        running = self.job is not None
        self.period.setEnabled(not running)
        self.preview_button.setEnabled(not running and self.month() is not None)
        self.export_button.setEnabled(p is not None and not running)
        can_run = (p is not None and not p.nothing_to_do and not running and not self.busy_elsewhere()
                   and not (self.view is not None and processor_unusable(p.mode, self.view.mode_note)))
        self.run_button.setEnabled(can_run)
        if self.busy_elsewhere():
            self.run_button.setToolTip("A month-end run is under way; Run waits for it to finish")
        elif p is not None and p.nothing_to_do:
            self.run_button.setToolTip(f"Nothing to do for {p.month.label}")
        else:
            self.run_button.setToolTip("Issue the invoices and charge the autopay clients, after a confirmation")
        self._left_selected()

    def _left_selected(self) -> None:
        rows = self.selected_left_out()
        self.approve_button.setEnabled(self.job is None and any(r.approvable for r in rows))
        self.left_detail.setText(f"{rows[0].target.client_name} — {rows[0].detail}" if len(rows) == 1 else "")

    def selected_left_out(self) -> list[LeftOutCharge]:
        return [self.left_model.row_at(i.row()) for i in self.left_table.selectionModel().selectedRows()]

    # --- export ---
    def export_csv(self) -> None:
        if self.view is None:
            return
        preview = self.view.preview
        suggested = str(Path.home() / f"month-end-{preview.month}-preview.csv")
        path = ask_save_path(self, "Export the month-end preview", suggested)
        if not path:
            return
        text = preview_csv(preview)

        def saved(written: str) -> None:
            show_notice(self.note, f"Saved the preview of {preview.month.label} to {written}.", "ok")

        def failed(exc: BaseException) -> bool:
            if isinstance(exc, OSError):
                show_notice(self.note, f"Could not save {path}: {exc.strerror or exc}.", "error")
                return True
            return False

        self.ops.run(self, lambda _ctx: write_csv(path, text), on_success=saved, on_failure=failed,
                     label="Exporting the preview")

    # --- approving above the cap ---
    def approve_selected(self) -> None:
        if self.view is None:
            return
        rows = [r for r in self.selected_left_out() if r.approvable]
        if not rows:
            return
        title, text = approval_question(rows, self.view.caps)
        if not ask_yes_no(self, title, text):
            return
        targets = [r.target for r in rows]

        def work(session: Session) -> int:
            for target in targets:
                approve_over_cap(session, target)
            return len(targets)

        def approved(n: int) -> None:
            show_notice(self.note, f"Approved {plural(n, 'charge')} above the autopay cap: "
                                   f"{'it moves' if n == 1 else 'they move'} to Charges.", "ok")
            self.changed.emit()
            self.preview_now()

        self.approve_button.setEnabled(False)
        self.ops.write(self, work, approved, label="Approving charges above the cap")

    # --- running ---
    def ask_to_run(self) -> None:
        """Work the preview out afresh (what the confirmation states must be true now), then ask."""
        if self.job is not None or self.busy_elsewhere():
            return
        self.run_button.setEnabled(False)
        self.preview_now(then=self._confirm)

    def _confirm(self, view: PreviewView) -> None:
        p = view.preview
        if p.nothing_to_do or self.busy_elsewhere() or processor_unusable(p.mode, view.mode_note):
            return  # the fresh preview says why, and Run stays off
        dialog = RunConfirmDialog(self, p)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.confirm_dialog = dialog

        def accepted() -> None:
            if p.mode is ProcessorMode.LIVE:
                self.session.live_confirmed = True  # asked here with the tick: Charge now won't ask again
            self.start_run(p)

        def closed() -> None:
            self.confirm_dialog = None

        dialog.accepted.connect(accepted)
        dialog.finished.connect(lambda _r: closed())
        dialog.open()

    def start_run(self, preview: BatchPreview) -> None:
        """Run `preview.month` now, in the mode the preview named (the run refuses another)."""
        session, backup_dir, month, expected = self.session, self.backup_dir, preview.month, preview.mode
        today = self.today()
        box = ProgressBox()

        def work(ctx: OpContext) -> BatchReport:
            gateway: Gateway | None = None
            try:
                gateway = session.open_gateway(ctx.db)
            except NotConfiguredError:
                with ctx.db.session() as s:
                    if processor_chosen(s):
                        raise  # chosen but not usable here: never e-mail autopay invoices instead of charging
            try:
                mode = gateway.mode if gateway is not None else None
                if mode is not expected:
                    was = expected.label if expected else "no processor"
                    now = mode.label if mode else "no processor"
                    raise ValidationError([Issue("mode", f"The payment mode changed since the preview ({was}, now "
                                                         f"{now}); nothing was done. Preview again, then Run.")])

                def progress(p: BatchProgress) -> None:
                    if box.put(p):
                        ctx.progress(p.done, p.total, p.stage)

                return run_batch(ctx.db, gateway, month, backup_dir=backup_dir, progress=progress,
                                 cancel=ctx.cancel_event, options=RunOptions(today=today))
            finally:
                if gateway is not None:
                    close_gateway(gateway)

        self.progress.start(preview)
        self.pages.setCurrentWidget(self.progress)
        show_notice(self.banner, "")
        show_notice(self.running_banner, "")
        handle = self.ops.run(self, work, on_success=self._run_done, on_failure=self._run_failed,
                              on_progress=lambda _d, _t, _s: self._show_progress(),
                              label=f"Running the {month.label} month-end")
        self.job = _RunJob(preview, handle, box)
        self._update_buttons()

    @property
    def running(self) -> bool:
        return self.job is not None

    def _show_progress(self) -> None:
        if self.job is not None and (latest := self.job.box.latest()) is not None:
            self.progress.show_progress(latest)

    def cancel_run(self) -> None:
        if self.job is None:
            return
        self.job.handle.cancel()
        self.progress.stopping()

    def _run_done(self, report: BatchReport) -> None:
        self.job = None
        self.show_report(report)
        self.changed.emit()
        self.run_finished.emit(report)
        self.refresh_runs()
        self.preview_now(switch_page=False)  # "Back to preview" shows what is left

    def _run_failed(self, exc: BaseException) -> bool:
        self.job = None
        self.show_preview_page()
        self.changed.emit()
        self.refresh_runs()
        if isinstance(exc, BatchBusyError):
            text, kind = str(exc), "warn"
        elif (message := processor_message(exc)) is not None:
            text, kind = f"The run did not finish: {message}", "error"
        elif isinstance(exc, USER_ERRORS):
            text, kind = describe_error(exc), "error"
        else:
            self.preview_now(switch_page=False)
            return False  # a bug: the error dialog explains
        show_notice(self.banner, text, kind)
        self.run_failed.emit(text)
        self.preview_now(switch_page=False)
        return True
