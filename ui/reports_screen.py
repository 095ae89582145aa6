"""Reports: the A/R aging as of any day — who owed what, for how long — with the drill-down to each
client's open invoices, CSV and PDF exports, and client statements from the same screen.

Everything the screen reads or writes goes through Ops (house rule 2): the report
(mspbill.reports.aging_report) and a client's open invoices are read on a worker,
the CSV and the PDF are built and written there too, atomically, and the
statements for several clients are rendered and saved one by one on the pool
with progress and a Cancel.  What comes back are the core's frozen dataclasses.

One currency shows at a time (the company's first): amounts in different
currencies are never added (house rule 4); the exports carry every currency,
each totalled on its own.
"""

from __future__ import annotations

import datetime as dt
import errno
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QDate,
    QItemSelectionModel,
    QModelIndex,
    QPoint,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import (
    QColor,
    QFont,
    QKeySequence,
    QResizeEvent,
    QShortcut,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDateEdit,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QProgressBar,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from mspbill.aging import BUCKETS, OpenItem
from mspbill.money import format_amount
from mspbill.pdf.aging import aging_pdf
from mspbill.pdf.layout import fmt_date
from mspbill.pdf.statement import statement_pdf
from mspbill.periods import Month
from mspbill.reports import AsOfError
from mspbill.reports.aging_report import (
    AgingReport,
    Buckets,
    ClientAging,
    CurrencyAging,
    aging_csv,
    aging_report,
    client_items,
)
from mspbill.validation import NotFoundError, ValidationError
from ui.audit_panel import AuditPanel
from ui.exports_panel import ExportsPanel
from ui.month_end_screen import StatCard
from ui.ops import USER_ERRORS, OpContext, OpHandle, Ops, describe_error
from ui.pdf_viewer import (
    default_folder,
    remember_folder,
    settings_for,
    write_atomically,
)
from ui.statement_dialog import StatementDialog
from ui.table import Column, SnapshotTableModel
from ui.widgets import (
    MUTED_STYLE,
    FlowLayout,
    heading,
    notice_label,
    search_field,
    show_notice,
    snapshot_table,
)

AS_OF_SETTLE_MS = 350      # typing a date changes it digit by digit: the report follows once it settles
BUCKET_COLUMNS = range(1, 6)  # Current … Over 90 in the client table
OVERDUE_TINTS = {           # background of an overdue amount, deeper the older (1–30 … over 90)
    1: QColor("#fff6d5"), 2: QColor("#ffe7b8"), 3: QColor("#ffd8c2"), 4: QColor("#fbc9c5")}
TOTAL_BACKGROUND = QColor("#e8ebf0")
MIN_FIGURE_WIDTH = 64
CREDIT_COLOR = QColor("#0d652d")


# --- the questions (tests replace these) ---------------------------------------------------

def ask_save_path(parent: QWidget | None, title: str, suggested: Path, file_filter: str) -> Path | None:
    """The system's Save dialog; None when cancelled.  The suffix of `suggested` is added when left out."""
    name, _ = QFileDialog.getSaveFileName(parent, title, str(suggested), file_filter)
    if not name:
        return None
    path = Path(name)
    return path if path.suffix.lower() == suggested.suffix.lower() else path.with_name(path.name + suggested.suffix)


def ask_folder(parent: QWidget | None, title: str, start: Path) -> Path | None:
    """The system's folder chooser; None when cancelled."""
    name = QFileDialog.getExistingDirectory(parent, title, str(start))
    return Path(name) if name else None


# --- the rows of the client table ------------------------------------------------------------

@dataclass(frozen=True)
class AgingLine:
    """A client's row, or the currency's Total row (client_id None), as the table shows it."""

    client_id: int | None
    name: str
    currency: str
    buckets: Buckets
    total_cents: int
    credit_cents: int
    invoice_count: int
    oldest_days: int

    @property
    def is_total(self) -> bool:
        return self.client_id is None


def client_line(row: ClientAging) -> AgingLine:
    return AgingLine(row.client_id, row.client_name, row.currency, row.buckets, row.total_cents, row.credit_cents,
                     row.invoice_count, row.oldest_days_past_due)


def total_line(section: CurrencyAging) -> AgingLine:
    return AgingLine(None, f"Total ({section.currency})", section.currency, section.totals.buckets,
                     section.total_cents, section.credit_cents, section.totals.count, section.oldest_days_past_due)


def lines_of(section: CurrencyAging) -> list[AgingLine]:
    return [client_line(r) for r in section.rows]


def amount_text(cents: int, currency: str, *, always: bool = False) -> str:
    """An amount, or a dash for none (a column of dashes reads faster than one of $0.00)."""
    return format_amount(cents, currency) if cents or always else "—"


def share_text(part_cents: int, whole_cents: int) -> str:
    """"12.3% of the total" (Decimal, half up); a dash when nothing is owed (never a division by zero)."""
    if whole_cents <= 0:
        return "—"
    share = (Decimal(part_cents) * 100 / Decimal(whole_cents)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    return f"{share}% of the total"


def _bucket_column(i: int) -> Column[AgingLine]:
    label = "Current" if i == 0 else BUCKETS[i].label.replace(" days", "")
    return Column(label, lambda r: amount_text(r.buckets[i], r.currency, always=r.is_total),
                  lambda r: r.buckets[i], align_right=True,
                  muted=lambda r: not r.buckets[i] and not r.is_total)


def _oldest_tooltip(r: AgingLine) -> str:
    if not r.oldest_days:
        return "Nothing past due"
    return f"The oldest open invoice was {r.oldest_days:,} days past due"


AGING_COLUMNS: list[Column[AgingLine]] = [
    Column("Client", lambda r: r.name, lambda r: r.name.casefold(), tooltip=lambda r: r.name),
    *(_bucket_column(i) for i in range(len(BUCKETS))),
    Column("Total", lambda r: amount_text(r.total_cents, r.currency, always=True), lambda r: r.total_cents,
           align_right=True),
    Column("Credit", lambda r: amount_text(r.credit_cents, r.currency, always=r.is_total), lambda r: r.credit_cents,
           align_right=True, muted=lambda r: not r.credit_cents,
           tooltip=lambda r: "Client credit held: applied to the next invoice, not taken off the balance"
           if r.credit_cents else ""),
    Column("Invoices", lambda r: f"{r.invoice_count:,}" if r.invoice_count or r.is_total else "—",
           lambda r: r.invoice_count, align_right=True, muted=lambda r: not r.invoice_count),
    Column("Oldest (days)", lambda r: f"{r.oldest_days:,}" if r.oldest_days else "—", lambda r: r.oldest_days,
           align_right=True, muted=lambda r: not r.oldest_days, tooltip=_oldest_tooltip),
]
TOTAL_COLUMN = 6
CREDIT_COLUMN = 7


class AgingModel(SnapshotTableModel[AgingLine]):
    """The client rows (or the footer's Total row): the Total column and the Total row bold, overdue
    amounts tinted, credit in green."""

    def data(self, index: Any, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self.row_at(index.row())
        column = index.column()
        if role == Qt.ItemDataRole.FontRole and (row.is_total or column == TOTAL_COLUMN):
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.BackgroundRole:
            if row.is_total:
                return TOTAL_BACKGROUND
            bucket = column - 1
            if column in BUCKET_COLUMNS and bucket in OVERDUE_TINTS and row.buckets[bucket]:
                return OVERDUE_TINTS[bucket]
        if role == Qt.ItemDataRole.ForegroundRole and column == CREDIT_COLUMN and row.credit_cents \
                and not row.is_total:
            return CREDIT_COLOR
        return super().data(index, role)


def footer_table(model: AgingModel, over: QTableView) -> QTableView:
    """The Total row under `over`, always in sight: one row, no header, its columns following `over`'s
    widths and horizontal scrolling."""
    footer = QTableView()
    footer.setModel(model)
    footer.horizontalHeader().hide()
    footer.verticalHeader().hide()
    footer.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
    footer.verticalHeader().setDefaultSectionSize(over.verticalHeader().defaultSectionSize())
    footer.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
    footer.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    footer.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    footer.setWordWrap(False)
    footer.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    footer.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    footer.setFixedHeight(over.verticalHeader().defaultSectionSize() + 2 * footer.frameWidth())
    footer.setAccessibleName("Total")
    over.horizontalHeader().sectionResized.connect(lambda column, _old, new: footer.setColumnWidth(column, new))
    over.horizontalScrollBar().valueChanged.connect(footer.horizontalScrollBar().setValue)
    for column in range(model.columnCount()):
        footer.setColumnWidth(column, over.columnWidth(column))
    return footer


# --- the drill-down: a client's open invoices -----------------------------------------------

def _days_text(item: OpenItem) -> str:
    return f"{item.days_overdue:,}" if item.days_overdue else "—"


def _days_tooltip(item: OpenItem) -> str:
    if item.days_past_due > 0:
        return f"Due {item.due_date.isoformat()}: {item.days_past_due:,} days past due"
    if item.days_past_due == 0:
        return "Due that day"
    return f"Not yet due: due in {-item.days_past_due:,} days"


ITEM_COLUMNS: list[Column[OpenItem]] = [
    Column("Invoice", lambda i: i.number, lambda i: (i.issue_date, i.number),
           tooltip=lambda i: f"{i.number} — {i.title}" if i.title else i.number),
    Column("Issued", lambda i: i.issue_date.isoformat(), lambda i: i.issue_date),
    Column("Due", lambda i: i.due_date.isoformat(), lambda i: i.due_date),
    Column("Days past due", _days_text, lambda i: i.days_past_due, align_right=True,
           muted=lambda i: not i.days_overdue, tooltip=_days_tooltip),
    Column("Bucket", lambda i: i.bucket.label, lambda i: i.days_past_due),
    Column("Total", lambda i: format_amount(i.total_cents, i.currency), lambda i: i.total_cents, align_right=True),
    Column("Balance", lambda i: format_amount(i.balance_cents, i.currency), lambda i: i.balance_cents,
           align_right=True),
]
ITEM_BUCKET_COLUMN = 4
ITEM_BALANCE_COLUMN = 6


class ItemsModel(SnapshotTableModel[OpenItem]):
    def data(self, index: Any, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        column = index.column()
        if role == Qt.ItemDataRole.BackgroundRole and column == ITEM_BUCKET_COLUMN:
            bucket = next(n for n, b in enumerate(BUCKETS) if b.key == self.row_at(index.row()).bucket.key)
            return OVERDUE_TINTS.get(bucket)
        if role == Qt.ItemDataRole.FontRole and column == ITEM_BALANCE_COLUMN:
            font = QFont()
            font.setBold(True)
            return font
        return super().data(index, role)


# --- what the workers do ---------------------------------------------------------------------

def statement_start(as_of: dt.date) -> dt.date:
    """A statement ending on `as_of` opens on the first of the month two months before (three months,
    like the statement dialog's default)."""
    return Month.of(as_of).shift(-2).first_day


def unique_name(filename: str, taken: set[str]) -> str:
    """`filename`, or "stem (2).pdf", "stem (3).pdf"… when another statement of this run took it (two clients
    of the same name); compared without case, as Windows and macOS do."""
    path = Path(filename)
    candidate, n = filename, 1
    while candidate.casefold() in taken:
        n += 1
        candidate = f"{path.stem} ({n}){path.suffix}"
    taken.add(candidate.casefold())
    return candidate


@dataclass
class StatementsResult:
    folder: Path
    start: dt.date
    end: dt.date
    asked: int
    saved: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)   # "Client: why" for the clients without a statement
    stopped: str = ""                                  # why the run stopped early ("" when it did not)
    cancelled: bool = False


def save_statements(ctx: OpContext, clients: Sequence[tuple[int, str]], start: dt.date, end: dt.date,
                    folder: Path, today: dt.date) -> StatementsResult:
    """One statement PDF per client into `folder` (on a worker), each written atomically under a name every
    file system takes (RenderedPdf.filename, made unique within the run)."""
    result = StatementsResult(folder, start, end, len(clients))
    taken: set[str] = set()
    for n, (client_id, name) in enumerate(clients):
        if ctx.cancelled:
            result.cancelled = True
            break
        ctx.progress(n, len(clients), name)
        try:
            with ctx.db.session() as session:
                pdf = statement_pdf(session, client_id, start, end, today=today)
        except (ValidationError, NotFoundError) as exc:
            result.skipped.append(f"{name}: {describe_error(exc)}")
            continue
        path = folder / unique_name(pdf.filename, taken)
        try:
            write_atomically(path, pdf.data)
        except OSError as exc:
            # The folder or the disk: the next client would fail the same way.
            result.stopped = save_error_text(path, exc, "statement")
            break
        result.saved.append(path)
    ctx.progress(len(result.saved), len(clients), "")
    return result


def save_error_text(path: Path, exc: BaseException, what: str) -> str:
    """A sentence a person can act on, for a file that could not be written."""
    if isinstance(exc, OSError):
        denied = isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS)
        if denied and path.is_file():
            # Windows refuses to replace a file another program has open (a spreadsheet, a PDF reader).
            return (f"The {what} was not saved: {path.name} cannot be replaced. It may be open in another program "
                    "or read-only; close it, or save under another name.")
        if denied:
            return (f"The {what} was not saved: mspbill is not allowed to write in {path.parent}. "
                    "Choose another folder, such as Documents.")
        if exc.errno == errno.ENOSPC:
            return f"The {what} was not saved: the disk holding {path.parent} is full."
        if isinstance(exc, FileNotFoundError):
            return f"The {what} was not saved: the folder {path.parent} does not exist any more."
        return f"The {what} was not saved to {path}: {exc.strerror or exc}."
    return f"The {what} was not saved to {path}: {exc}"


def statements_text(result: StatementsResult) -> tuple[str, str]:
    """(sentence, notice kind) for the end of a statements run."""
    period = f"{fmt_date(result.start)} – {fmt_date(result.end)}"
    saved = len(result.saved)
    head = (f"Saved {saved:,} statement{'s' if saved != 1 else ''} ({period}) to {result.folder}."
            if saved else "No statement was saved.")
    parts = [head]
    if result.cancelled:
        parts.append(f"Cancelled: {result.asked - saved - len(result.skipped):,} not made.")
    if result.stopped:
        parts.append(result.stopped)
    if result.skipped:
        parts.append("Left out: " + "; ".join(result.skipped))
    kind = "ok" if saved == result.asked else ("error" if result.stopped or not saved else "warn")
    return " ".join(parts), kind


def _qdate(day: dt.date) -> QDate:
    return QDate(day.year, day.month, day.day)


def _date(q: QDate) -> dt.date:
    return dt.date(q.year(), q.month(), q.day())


# --- the screen ----------------------------------------------------------------------------------

class AgingTab(QWidget):
    """The A/R aging: as-of toolbar, summary cards, the client table and the drill-down below it."""

    changed = Signal()          # an invoice or client was changed from a window opened here
    loaded = Signal(object)     # AgingReport, once on show
    items_loaded = Signal(int)  # client id whose open invoices are on show
    saved = Signal(object)      # Path of an export written
    statements_done = Signal(object)  # StatementsResult

    def __init__(self, ops: Ops, today: Callable[[], dt.date] = dt.date.today, parent: QWidget | None = None):
        super().__init__(parent)
        self.ops = ops
        self.today = today
        self.report: AgingReport | None = None
        self.currency: str | None = None
        self.statements_job: OpHandle | None = None
        self._seq = 0
        self._items_seq = 0
        self._items_client: int | None = None
        self._items_as_of: dt.date | None = None
        self._follow_today = True   # the as-of day moves on with the calendar until someone picks one
        self._setting_date = False
        self._build()

    # --- building ---
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 6)

        # The toolbar in groups that wrap whole onto a second line when the window is narrow.
        bar = FlowLayout(h_spacing=14, v_spacing=6)
        as_of_label = QLabel("&As of")
        self.as_of = QDateEdit()
        self.as_of.setCalendarPopup(True)
        self.as_of.setDisplayFormat("yyyy-MM-dd")
        self.as_of.setToolTip("The report shows what was owed at the end of this day (today or earlier)")
        as_of_label.setBuddy(self.as_of)
        self._settle = QTimer(self)
        self._settle.setSingleShot(True)
        self._settle.setInterval(AS_OF_SETTLE_MS)
        self._settle.timeout.connect(self.reload)
        self.as_of.dateChanged.connect(self._as_of_edited)
        self.currency_label = QLabel("&Currency")
        self.currency_combo = QComboBox()
        self.currency_combo.setToolTip("Each currency is totalled on its own; amounts are never added across "
                                       "currencies")
        self.currency_label.setBuddy(self.currency_combo)
        self.currency_combo.activated.connect(lambda _i: self._currency_chosen())
        self.refresh_button = QPushButton("&Refresh")
        self.refresh_button.setToolTip("Read the report again (F5)")
        self.refresh_button.clicked.connect(lambda: self.reload())
        self.csv_button = QPushButton("Export &CSV…")
        self.csv_button.setToolTip("Save the report as a spreadsheet (CSV, UTF-8): a row per client and a Total "
                                   "row per currency")
        self.csv_button.clicked.connect(lambda: self.export_csv())
        self.pdf_button = QPushButton("Export &PDF…")
        self.pdf_button.setToolTip("Save the report as a PDF to print or send, every currency on its own")
        self.pdf_button.clicked.connect(lambda: self.export_pdf())
        self.statement_button = QPushButton("&Statement…")
        self.statement_button.setToolTip("A statement of account for the selected client, ending on the as-of day")
        self.statement_button.clicked.connect(lambda: self.statement_selected())
        self.statements_button = QPushButton("Statements…")
        self.statements_button.setToolTip("Save a statement PDF for each selected client into a folder "
                                          "(Ctrl+click or Shift+click to select several, Ctrl+A for all)")
        self.statements_button.clicked.connect(lambda: self.statements_selected())
        self._currency_group = _group(self.currency_label, self.currency_combo)
        for group in (_group(as_of_label, self.as_of), self._currency_group, _group(self.refresh_button),
                      _group(self.csv_button, self.pdf_button),
                      _group(self.statement_button, self.statements_button)):
            bar.addWidget(group)
        self._currency_group.hide()
        layout.addLayout(bar)
        QShortcut(QKeySequence(Qt.Key.Key_F5), self, self.reload, context=Qt.ShortcutContext.WidgetWithChildrenShortcut)

        self.currency_note = notice_label()
        layout.addWidget(self.currency_note)
        self.note = notice_label()
        layout.addWidget(self.note)

        # Statements being saved: progress and a Cancel.
        self.progress_row = QWidget()
        progress = QHBoxLayout(self.progress_row)
        progress.setContentsMargins(0, 0, 0, 0)
        self.progress_label = QLabel()
        self.progress_bar = QProgressBar()
        self.progress_bar.setTextVisible(False)
        self.progress_bar.setMaximumHeight(10)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(lambda: self.cancel_statements())
        progress.addWidget(self.progress_label)
        progress.addWidget(self.progress_bar, 1)
        progress.addWidget(self.cancel_button)
        self.progress_row.hide()
        layout.addWidget(self.progress_row)

        self.pages = QStackedWidget()
        self.pages.addWidget(self._build_report_page())
        self.nothing = QLabel()
        self.nothing.setWordWrap(True)
        self.nothing.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        # The space around the sentence as margins, not CSS padding: a wrapping label measures its height
        # without the padding, and the last line lost its descenders.
        self.nothing.setContentsMargins(18, 18, 18, 18)
        self.nothing.setStyleSheet("background: #e8f0fe; color: #174ea6; border-radius: 6px; font-size: 15px;")
        nothing_page = QWidget()
        nothing_layout = QVBoxLayout(nothing_page)
        nothing_layout.setContentsMargins(0, 6, 0, 0)
        nothing_layout.addWidget(self.nothing)
        nothing_layout.addStretch()
        self.pages.addWidget(nothing_page)
        layout.addWidget(self.pages, 1)
        self.set_today(self.today())
        self._update_buttons()

    def _build_report_page(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        self.cards = QGridLayout()
        self.cards.setContentsMargins(0, 0, 0, 0)
        self.cards.setSpacing(6)
        self._cards_per_row = 0
        self.total_card = StatCard("Total A/R")
        self.bucket_cards = [StatCard(b.label.replace(" days", " days past due") if i else "Current (not past due)")
                             for i, b in enumerate(BUCKETS)]
        self.credit_card = StatCard("Client credit held")
        layout.addLayout(self.cards)

        over = QHBoxLayout()
        self.status = QLabel("Loading…")
        self.status.setWordWrap(True)
        self.status.setStyleSheet(MUTED_STYLE)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.filter = search_field(self, "Filter by client name", self._filter_settled)
        self.filter.setMinimumWidth(240)
        over.addWidget(self.status, 1)
        over.addWidget(self.filter)
        layout.addLayout(over)

        self.model = AgingModel(AGING_COLUMNS, lambda r: r.name, self)
        # The figures keep their width ("$1,234,567.89" whole); the client's name takes what is left.
        self.table = snapshot_table(self.model, (220, 104, 96, 96, 96, 104, 112, 90, 70, 96), 0, multi_select=True)
        self.table.setAccessibleName("Clients by days past due")
        self.table.sortByColumn(TOTAL_COLUMN, Qt.SortOrder.DescendingOrder)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._selection_changed())
        self.table.doubleClicked.connect(self._client_double_clicked)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._client_menu)
        self.total_model = AgingModel(AGING_COLUMNS, lambda r: r.name, self)
        self.footer = footer_table(self.total_model, self.table)
        upper = QWidget()
        upper_layout = QVBoxLayout(upper)
        upper_layout.setContentsMargins(0, 0, 0, 0)
        upper_layout.setSpacing(0)
        upper_layout.addWidget(self.table, 1)
        upper_layout.addWidget(self.footer)

        lower = QWidget()
        lower_layout = QVBoxLayout(lower)
        lower_layout.setContentsMargins(0, 6, 0, 0)
        self.items_title = QLabel()
        self.items_title.setStyleSheet("font-weight: 600;")
        self.items_title.setWordWrap(True)
        self.items_model = ItemsModel(ITEM_COLUMNS, lambda i: i.number, self)
        self.items_table = snapshot_table(self.items_model, (140, 90, 90, 110, 110, 110, 110), 0)
        self.items_table.setAccessibleName("The selected client's open invoices")
        self.items_table.sortByColumn(2, Qt.SortOrder.AscendingOrder)
        self.items_table.doubleClicked.connect(self._item_double_clicked)
        self.items_table.activated.connect(self._item_double_clicked)
        self.items_table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.items_table.customContextMenuRequested.connect(self._item_menu)
        self.items_hint = hint = QLabel("Double-click to open · right-click for more")
        hint.setToolTip("Double-click a client to open it, an invoice to open the invoice; right-click either "
                        "for more")
        hint.setStyleSheet(MUTED_STYLE)
        title_row = QHBoxLayout()
        title_row.addWidget(self.items_title, 1)
        title_row.addWidget(hint, 0, Qt.AlignmentFlag.AlignBottom)
        lower_layout.addLayout(title_row)
        lower_layout.addWidget(self.items_table, 1)
        # However small the window, three clients and two invoices stay in sight.
        rows = self.table.verticalHeader().defaultSectionSize()
        self.table.setMinimumHeight(3 * rows + self.table.horizontalHeader().sizeHint().height() + 4)
        self.items_table.setMinimumHeight(2 * rows + self.items_table.horizontalHeader().sizeHint().height() + 4)

        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(upper)
        self.splitter.addWidget(lower)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        layout.addWidget(self.splitter, 1)
        self._show_items(None, [])
        self._arrange_cards()
        return page

    # --- the as-of day ---
    def as_of_date(self) -> dt.date:
        return _date(self.as_of.date())

    def set_today(self, today: dt.date) -> None:
        """The last day a report can be asked for (a later one cannot be picked)."""
        self._setting_date = True
        self.as_of.setMaximumDate(_qdate(today))
        if self._follow_today:
            self.as_of.setDate(_qdate(today))
        self._setting_date = False

    def set_as_of(self, day: dt.date) -> None:
        """Show the report as of `day` (clamped to today, as the date field is)."""
        self._setting_date = True
        self.as_of.setDate(_qdate(day))
        self._setting_date = False
        self._follow_today = self.as_of_date() == self.today()
        self._settle.stop()
        self.reload()

    def _as_of_edited(self, _date: QDate) -> None:
        if self._setting_date:
            return
        self._follow_today = self.as_of_date() == self.today()
        self._settle.start()

    # --- reading ---
    def reload(self) -> None:
        self._settle.stop()
        today = self.today()
        self.set_today(today)
        as_of = self.as_of_date()
        self._seq += 1
        seq = self._seq
        self.status.setText(f"Working out what was owed as of {fmt_date(as_of)}…")

        def loaded(report: AgingReport) -> None:
            if seq == self._seq:
                self.show_report(report)

        def failed(exc: BaseException) -> bool:
            if seq != self._seq:
                return True
            if isinstance(exc, (AsOfError, *USER_ERRORS)):
                self.status.setText("")
                show_notice(self.note, describe_error(exc), "error")
                return True
            return False

        self.ops.read(self, lambda s: aging_report(s, as_of, today=today), loaded, on_failure=failed,
                      label="Reading the A/R aging")

    def show_report(self, report: AgingReport) -> None:
        previous = self.report
        selected = self.selected_client_ids()
        self.report = report
        self._items_client = None  # a new report: the drill-down is read again with it
        if previous is None or previous.as_of != report.as_of:
            show_notice(self.note, "")
        currencies = [s.currency for s in report.sections]
        if self.currency not in currencies:
            self.currency = currencies[0] if currencies else report.company_currency
        self.currency_combo.clear()
        for cur in currencies:
            self.currency_combo.addItem(f"{cur} (company)" if cur == report.company_currency else cur, cur)
        self.currency_combo.setCurrentIndex(max(0, self.currency_combo.findData(self.currency)))
        self._currency_group.setVisible(len(currencies) > 1)
        self.pages.setCurrentIndex(1 if report.is_empty else 0)
        self.nothing.setText(f"Nothing is owed as of {fmt_date(report.as_of)}.")
        self._show_section(selected)
        self._update_buttons()
        self.loaded.emit(report)

    def section(self) -> CurrencyAging | None:
        return self.report.section(self.currency) if self.report and self.currency else None

    def _currency_chosen(self) -> None:
        chosen = self.currency_combo.currentData()
        if chosen and chosen != self.currency:
            self.currency = chosen
            self._show_section([])

    def choose_currency(self, currency: str) -> None:
        index = self.currency_combo.findData(currency)
        if index >= 0:
            self.currency_combo.setCurrentIndex(index)
            self._currency_chosen()

    def _show_section(self, keep_selected: Sequence[int]) -> None:
        report, section = self.report, self.section()
        if report is None:
            return
        others = [c for c in (s.currency for s in report.sections) if c != self.currency]
        if section is not None and others:
            home = report.company_currency
            if section.currency == home:
                text = (f"Also owed in {', '.join(others)}: choose the currency above. Amounts in other currencies "
                        f"are totalled on their own and not added to the {home} figures.")
            else:
                text = (f"Showing {section.currency}. These amounts are totalled on their own and not added to the "
                        f"{home} figures.")
            show_notice(self.currency_note, text, "info")
        else:
            show_notice(self.currency_note, "")
        self.model.set_rows(lines_of(section) if section is not None else [])
        self.total_model.set_rows([total_line(section)] if section is not None else [])
        self._fit_columns()
        self._show_cards(section)
        self.status.setText(self._summary(report, section))
        self._reselect(keep_selected)

    def _fit_columns(self) -> None:
        """The figures as wide as their widest text (a seven-figure total stays whole); the client's name
        takes the rest of the width."""
        for column in range(1, len(AGING_COLUMNS)):
            self.table.resizeColumnToContents(column)  # the rows in sight and the header
            widest = max(self.table.columnWidth(column), self.footer.sizeHintForColumn(column))
            self.table.setColumnWidth(column, max(widest + 6, MIN_FIGURE_WIDTH))

    def _show_cards(self, section: CurrencyAging | None) -> None:
        if section is None:
            for card in (self.total_card, *self.bucket_cards, self.credit_card):
                card.set("—")
            return
        cur, total = section.currency, section.total_cents
        self.total_card.set(format_amount(total, cur), f"{section.totals.count:,} open invoice"
                                                       f"{'s' if section.totals.count != 1 else ''}")
        for card, cents in zip(self.bucket_cards, section.totals.buckets, strict=True):
            card.set(format_amount(cents, cur), share_text(cents, total))
        holders = sum(1 for r in section.rows if r.credit_cents)
        self.credit_card.set(format_amount(section.credit_cents, cur),
                             f"{holders:,} client{'s' if holders != 1 else ''}" if holders else "none")
        self._arrange_cards()
        self.credit_card.setToolTip("Client credit held that day: paid or credited beyond their invoices, applied "
                                    "to the next invoice; not taken off the amounts owed")

    def all_cards(self) -> list[StatCard]:
        return [self.total_card, *self.bucket_cards, self.credit_card]

    def _arrange_cards(self) -> None:
        """The cards on one line when they fit whole, else on two (four and three)."""
        cards = self.all_cards()
        needed = sum(c.sizeHint().width() for c in cards) + self.cards.spacing() * (len(cards) - 1)
        box = self.layout()
        room = self.width() - (box.contentsMargins().left() + box.contentsMargins().right() if box else 0)
        per_row = len(cards) if needed <= room else 4
        if per_row == self._cards_per_row:
            return
        self._cards_per_row = per_row
        for card in cards:
            self.cards.removeWidget(card)
        for n, card in enumerate(cards):
            self.cards.addWidget(card, n // per_row, n % per_row)
        for column in range(len(cards)):
            self.cards.setColumnStretch(column, 1 if column < per_row else 0)
        # Two lines of cards take height from the tables: the notes (shares) move to the tooltips, and the
        # drill-down's hint goes.
        compact = per_row < len(cards)
        for card in cards:
            card.note.setVisible(not compact)
        self.items_hint.setVisible(not compact)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._arrange_cards()

    @staticmethod
    def _summary(report: AgingReport, section: CurrencyAging | None) -> str:
        when = fmt_date(report.as_of)
        if section is None or section.totals.count == 0:
            return (f"Nothing is owed as of {when}. Clients holding credit are listed below."
                    if section is not None else "")
        cur = section.currency
        overdue = section.total_cents - section.totals.buckets[0]
        owing = section.client_count
        text = (f"{owing:,} client{'s' if owing != 1 else ''} owed {format_amount(section.total_cents, cur)} on "
                f"{section.totals.count:,} open invoice{'s' if section.totals.count != 1 else ''} as of {when}")
        if overdue:
            text += f"; {format_amount(overdue, cur)} of it past due."
        else:
            text += "; none of it past due."
        return text

    def _filter_settled(self) -> None:
        self.model.set_filter_text(self.filter.text())

    # --- selection and the drill-down ---
    def selected_lines(self) -> list[AgingLine]:
        rows = sorted(i.row() for i in self.table.selectionModel().selectedRows())
        return [self.model.row_at(r) for r in rows]

    def selected_client_ids(self) -> list[int]:
        return [line.client_id for line in self.selected_lines() if line.client_id is not None]

    def select_client(self, client_id: int) -> bool:
        row = self.model.find_row(lambda r: r.client_id == client_id)
        if row < 0:
            return False
        self.table.selectRow(row)
        self.table.scrollTo(self.model.index(row, 0))
        return True

    def _reselect(self, client_ids: Sequence[int]) -> None:
        """Select these clients again after the rows were read anew (those still listed)."""
        self.table.clearSelection()
        wanted = set(client_ids)
        rows = [n for n, r in enumerate(self.model.visible_rows()) if r.client_id in wanted]
        if rows:
            self.table.selectRow(rows[0])
            flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
            for n in rows[1:]:
                self.table.selectionModel().select(self.model.index(n, 0), flags)
        self._selection_changed()

    def _selection_changed(self) -> None:
        lines = self.selected_lines()
        self._update_buttons()
        if len(lines) == 1 and lines[0].client_id is not None:
            fresh = self.report is not None and self._items_as_of == self.report.as_of
            if lines[0].client_id != self._items_client or not fresh:
                self._load_items(lines[0])
            return
        self._items_seq += 1
        self._items_client = None
        self._show_items(None, [], len(lines))

    def _load_items(self, line: AgingLine) -> None:
        report = self.report
        client_id = line.client_id
        if report is None or client_id is None:
            return
        self._items_seq += 1
        seq = self._items_seq
        self._items_client = client_id
        self._items_as_of = report.as_of
        as_of, today = report.as_of, self.today()
        self.items_title.setText(f"Open invoices of {line.name} as of {fmt_date(as_of)}…")

        def loaded(items: list[OpenItem]) -> None:
            if seq == self._items_seq:
                self._show_items(line, items)
                self.items_loaded.emit(client_id)

        def failed(exc: BaseException) -> bool:
            if seq != self._items_seq:
                return True
            if isinstance(exc, (AsOfError, *USER_ERRORS)):
                self.items_title.setText(describe_error(exc))
                return True
            return False

        self.ops.read(self, lambda s: client_items(s, as_of, client_id, today=today), loaded, on_failure=failed,
                      label="Reading the client's open invoices")

    def _show_items(self, line: AgingLine | None, items: list[OpenItem], selected: int = 0) -> None:
        self.items_model.set_rows(items)
        for column in range(1, len(ITEM_COLUMNS)):  # the invoice number takes what is left
            self.items_table.resizeColumnToContents(column)
            self.items_table.setColumnWidth(column, max(self.items_table.columnWidth(column) + 6, MIN_FIGURE_WIDTH))
        if line is None:
            self.items_title.setText(f"{selected:,} clients selected: select one to see its open invoices."
                                     if selected > 1 else "Select a client to see its open invoices.")
            return
        when = fmt_date(self._items_as_of) if self._items_as_of else ""
        if not items:
            text = f"{line.name} had no open invoice as of {when}"
        else:
            owed = sum(i.balance_cents for i in items)
            count = f"{len(items):,} invoice{'s' if len(items) != 1 else ''}"
            text = f"Open invoices of {line.name} as of {when}: {count}, {format_amount(owed, line.currency)} owed"
        if line.credit_cents:
            text += f"; {format_amount(line.credit_cents, line.currency)} credit held"
        self.items_title.setText(text + ".")

    def selected_item(self) -> OpenItem | None:
        rows = self.items_table.selectionModel().selectedRows()
        return self.items_model.row_at(rows[0].row()) if rows else None

    # --- opening windows ---
    def _client_double_clicked(self, index: QModelIndex) -> None:
        if index.isValid() and (cid := self.model.row_at(index.row()).client_id) is not None:
            self.open_client(cid)

    def _item_double_clicked(self, index: QModelIndex) -> None:
        if index.isValid():
            self.open_invoice(self.items_model.row_at(index.row()).invoice_id)

    def open_client(self, client_id: int) -> QWidget:
        from ui.client_dialog import ClientDialog

        dialog = ClientDialog(self.ops, self, client_id=client_id)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.saved.connect(lambda _id: self._changed_elsewhere())
        dialog.payment_methods_changed.connect(lambda _id: self._changed_elsewhere())
        dialog.open()
        return dialog

    def open_invoice(self, invoice_id: int) -> QWidget:
        from ui.invoice_dialog import InvoiceDialog

        dialog = InvoiceDialog(self.ops, invoice_id, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.changed.connect(lambda _id: self._changed_elsewhere())
        dialog.open()
        return dialog

    def _changed_elsewhere(self) -> None:
        self.changed.emit()
        self._items_client = None  # the drill-down reads again too
        self.reload()

    def _client_menu(self, pos: QPoint) -> QMenu | None:
        index = self.table.indexAt(pos)
        if not index.isValid():
            return None
        if not self.table.selectionModel().isRowSelected(index.row(), QModelIndex()):
            self.table.selectRow(index.row())
        menu = self.client_menu()
        menu.popup(self.table.viewport().mapToGlobal(pos))
        return menu

    def client_menu(self) -> QMenu:
        menu = QMenu(self)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        lines = self.selected_lines()
        open_action = menu.addAction("Open client…")
        open_action.setEnabled(len(lines) == 1)
        open_action.triggered.connect(lambda: self._open_selected_client())
        statement = menu.addAction("Statement…")
        statement.setEnabled(self.statement_button.isEnabled())
        statement.triggered.connect(lambda: self.statement_selected())
        many = menu.addAction(f"Save statements for {len(lines):,} clients…" if len(lines) > 1
                              else "Save statement to a folder…")
        many.setEnabled(self.statements_button.isEnabled())
        many.triggered.connect(lambda: self.statements_selected())
        menu.setDefaultAction(open_action)
        return menu

    def _open_selected_client(self) -> None:
        lines = self.selected_lines()
        if len(lines) == 1 and lines[0].client_id is not None:
            self.open_client(lines[0].client_id)

    def _item_menu(self, pos: QPoint) -> QMenu | None:
        index = self.items_table.indexAt(pos)
        if not index.isValid():
            return None
        self.items_table.selectRow(index.row())
        item = self.items_model.row_at(index.row())
        menu = QMenu(self)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        action = menu.addAction(f"Open invoice {item.number}…")
        action.triggered.connect(lambda: self.open_invoice(item.invoice_id))
        client = menu.addAction("Open client…")
        client.triggered.connect(lambda: self.open_client(item.client_id))
        menu.setDefaultAction(action)
        menu.popup(self.items_table.viewport().mapToGlobal(pos))
        return menu

    # --- buttons ---
    def _update_buttons(self) -> None:
        have = self.report is not None
        lines = self.selected_lines() if have else []
        running = self.statements_job is not None
        self.csv_button.setEnabled(have)
        self.pdf_button.setEnabled(have)
        self.statement_button.setEnabled(len(lines) == 1)
        self.statements_button.setEnabled(bool(lines) and not running)
        self.statements_button.setText(f"Statements ({len(lines):,})…" if len(lines) > 1 else "Statements…")

    # --- exports ---
    def _suggested(self, suffix: str) -> Path:
        as_of = self.report.as_of.isoformat() if self.report else self.as_of_date().isoformat()
        return default_folder(settings_for(self)) / f"AR aging {as_of}{suffix}"

    def export_csv(self) -> None:
        report = self.report
        if report is None:
            return
        path = ask_save_path(self, "Export the A/R aging", self._suggested(".csv"),
                             "CSV files (*.csv);;All files (*)")
        if path is None:
            return

        def work(_ctx: OpContext) -> Path:
            write_atomically(path, aging_csv(report))
            return path

        self._write(work, path, "CSV file", f"Saved the A/R aging as of {fmt_date(report.as_of)} to {path}.",
                    "Exporting the A/R aging")

    def export_pdf(self) -> None:
        report = self.report
        if report is None:
            return
        path = ask_save_path(self, "Export the A/R aging", self._suggested(".pdf"), "PDF documents (*.pdf)")
        if path is None:
            return

        def work(ctx: OpContext) -> Path:
            with ctx.db.session() as session:
                data = aging_pdf(session, report)
            write_atomically(path, data)
            return path

        self._write(work, path, "PDF", f"Saved the A/R aging as of {fmt_date(report.as_of)} to {path}.",
                    "Saving the A/R aging as a PDF")

    def _write(self, work: Callable[[OpContext], Path], path: Path, what: str, done_text: str, label: str) -> None:
        def saved(written: Path) -> None:
            remember_folder(settings_for(self), written.parent)
            show_notice(self.note, done_text, "ok")
            self.saved.emit(written)

        def failed(exc: BaseException) -> bool:
            if isinstance(exc, OSError):
                show_notice(self.note, save_error_text(path, exc, what), "error")
                return True
            return False

        show_notice(self.note, "")
        self.ops.run(self, work, on_success=saved, on_failure=failed, label=label)

    # --- statements ---
    def statement_selected(self) -> StatementDialog | None:
        """The statement dialog for the selected client, its period ending on the as-of day."""
        lines = self.selected_lines()
        if len(lines) != 1 or lines[0].client_id is None or self.report is None:
            return None
        today, as_of = self.today(), self.report.as_of
        dialog = StatementDialog(self.ops, lines[0].client_id, lines[0].name, self, today=today)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        if as_of != today:
            dialog.start.setDate(_qdate(statement_start(as_of)))
            dialog.end.setDate(_qdate(as_of))
        dialog.open()
        return dialog

    def statements_selected(self) -> None:
        """A statement PDF for each selected client (three months ending on the as-of day) into a folder."""
        lines = self.selected_lines()
        if not lines or self.report is None or self.statements_job is not None:
            return
        folder = ask_folder(self, f"Save {len(lines):,} statement{'s' if len(lines) != 1 else ''} into",
                            default_folder(settings_for(self)))
        if folder is None:
            return
        clients = [(line.client_id, line.name) for line in lines if line.client_id is not None]
        end, today = self.report.as_of, self.today()
        start = statement_start(end)
        self.progress_label.setText(f"Saving {len(clients):,} statements…")
        self.progress_bar.setRange(0, len(clients))
        self.progress_bar.setValue(0)
        self.cancel_button.setEnabled(True)
        self.progress_row.show()
        show_notice(self.note, "")

        def progressed(done: int, total: int, name: str) -> None:
            self.progress_bar.setValue(done)
            if name:
                self.progress_label.setText(f"Saving statement {done + 1:,} of {total:,}: {name}")

        def finished(result: StatementsResult) -> None:
            self._statements_over()
            if result.saved:
                remember_folder(settings_for(self), folder)
            text, kind = statements_text(result)
            show_notice(self.note, text, kind)
            self.statements_done.emit(result)

        def failed(_exc: BaseException) -> bool:
            self._statements_over()
            return False

        self.statements_job = self.ops.run(
            self, lambda ctx: save_statements(ctx, clients, start, end, folder, today), on_success=finished,
            on_failure=failed, on_progress=progressed, label="Saving statements")
        self._update_buttons()

    def cancel_statements(self) -> None:
        if self.statements_job is not None:
            self.statements_job.cancel()
            self.cancel_button.setEnabled(False)
            self.progress_label.setText("Stopping after the statement being saved…")

    def _statements_over(self) -> None:
        self.statements_job = None
        self.progress_row.hide()
        self._update_buttons()


def _group(*widgets: QWidget) -> QWidget:
    """Widgets kept together on one line of the toolbar."""
    box = QWidget()
    row = QHBoxLayout(box)
    row.setContentsMargins(0, 0, 0, 0)
    row.setSpacing(6)
    for w in widgets:
        row.addWidget(w)
    return box


class ReportsScreen(QWidget):
    """The Reports screen: the A/R aging, exports for the accountant and the audit trail."""

    changed = Signal()

    def __init__(self, ops: Ops, parent: QWidget | None = None, *, today: Callable[[], dt.date] = dt.date.today):
        super().__init__(parent)
        self.ops = ops
        self._stale = True
        layout = QVBoxLayout(self)
        layout.addWidget(heading("Reports"))
        self.tabs = QTabWidget()
        self.aging = AgingTab(ops, today, self)
        self.aging.changed.connect(self.changed.emit)
        self.tabs.addTab(self.aging, "A/R aging")
        self.exports = ExportsPanel(ops, self)
        self.exports.changed.connect(self.changed.emit)
        self.tabs.addTab(self.exports, "Exports")
        self.audit = AuditPanel(ops, self)
        self.audit.changed.connect(self.changed.emit)
        self.tabs.addTab(self.audit, "Audit trail")
        layout.addWidget(self.tabs, 1)

    # --- the list protocol of the main window ---
    def ensure_loaded(self) -> None:
        if self._stale:
            self.reload()

    def mark_stale(self) -> None:
        """Read again on the next visit (an invoice or payment changed elsewhere)."""
        self._stale = True

    def reload(self) -> None:
        self._stale = False
        self.aging.reload()
        self.exports.reload()
        self.audit.reload()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.ensure_loaded()

