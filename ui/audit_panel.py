"""Reports → Audit trail: who (the operating-system user) changed what, and when.

Newest first, a page of PAGE_SIZE entries at a time: the filter (local day range, user,
area, words in the summary) goes to the database (mspbill.audit.search_audit with LIMIT
and OFFSET, on a worker through Ops), so 200,000 entries page as quickly as 200.  The
selected entry's full summary and its changes ("Field: old → new") show below the table.
"Export CSV…" writes every entry matching the filter, not only the page on show.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QDate, QModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut, QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QDateEdit,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy.orm import Session

from mspbill.audit import (
    AREAS,
    AuditFilter,
    AuditPage,
    AuditRow,
    actors,
    export_audit_csv,
    search_audit,
)
from ui.ops import USER_ERRORS, OpContext, Ops, describe_error
from ui.pdf_viewer import default_folder, remember_folder, settings_for
from ui.table import Column, SnapshotTableModel
from ui.widgets import (
    MUTED_STYLE,
    FlowLayout,
    notice_label,
    search_field,
    show_notice,
    snapshot_table,
)

PAGE_SIZE = 500
DEFAULT_DAYS = 30          # the range on show at first: the last 30 days
DATE_SETTLE_MS = 350       # typing a date changes it digit by digit: the list follows once it settles
EVERYONE = "Everyone"


def ask_save_path(parent: QWidget | None, title: str, suggested: Path) -> Path | None:
    """The system's Save dialog; None when cancelled.  Tests replace this function."""
    name, _ = QFileDialog.getSaveFileName(parent, title, str(suggested), "CSV files (*.csv);;All files (*)")
    if not name:
        return None
    path = Path(name)
    return path if path.suffix.lower() == ".csv" else path.with_name(path.name + ".csv")


def when_text(row: AuditRow) -> str:
    return f"{row.local_at:%Y-%m-%d %H:%M:%S}"


COLUMNS: tuple[Column[AuditRow], ...] = (
    Column("When", when_text, tooltip=lambda r: r.local_at.isoformat(timespec="seconds")),
    Column("Who", lambda r: r.actor),
    Column("Area", lambda r: r.area.label),
    Column("What", lambda r: r.action_label, tooltip=lambda r: r.action),
    Column("Item", lambda r: r.item,
           tooltip=lambda r: "Double-click to open" if r.item_exists else "",
           muted=lambda r: not r.item_exists),
    Column("Summary", lambda r: " ".join(r.summary.split()), tooltip=lambda r: r.summary),
)
SUMMARY_COLUMN = len(COLUMNS) - 1


def details_text(row: AuditRow) -> str:
    """The details pane: the whole entry, its changes as "Field: old → new"."""
    head = f"{row.action_label} — {row.item}"
    when = f"{row.local_at:%A %d %B %Y, %H:%M:%S} (UTC{row.local_at:%z}) by {row.actor} · {row.area.label}"
    parts = [head, when, "", row.summary]
    lines = row.details_lines
    if lines:
        parts += ["", *lines]
    what = f"{row.entity_type} {row.entity_id}" if row.entity_id is not None else row.entity_type
    parts += ["", f"Action {row.action} · {what} · entry {row.id}"]
    return "\n".join(parts).rstrip()


def _qdate(day: dt.date) -> QDate:
    return QDate(day.year, day.month, day.day)


def _date(q: QDate) -> dt.date:
    return dt.date(q.year(), q.month(), q.day())


class AuditPanel(QWidget):
    changed = Signal()          # an invoice or client was changed from a window opened here
    loaded = Signal(object)     # AuditPage, each time a page is on show
    saved = Signal(object)      # Path of an export written

    def __init__(self, ops: Ops, parent: QWidget | None = None, *,
                 today: Callable[[], dt.date] = dt.date.today):
        super().__init__(parent)
        self.ops = ops
        self.today = today
        self.page: AuditPage | None = None
        self.offset = 0
        self._seq = 0
        self._setting = False
        self._stale = True
        self._follow_today = True   # the last 30 days up to today, until someone picks days
        self._build()

    # --- building ---
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 6)
        bar = FlowLayout(h_spacing=14, v_spacing=6)

        today = self.today()
        self.from_edit = self._date_edit(today - dt.timedelta(days=DEFAULT_DAYS - 1),
                                         "The first day shown (a day on this computer's clock)")
        self.to_edit = self._date_edit(today, "The last day shown (included)")
        self._settle = QTimer(self)
        self._settle.setSingleShot(True)
        self._settle.setInterval(DATE_SETTLE_MS)
        self._settle.timeout.connect(self._filter_changed)
        from_label, to_label = QLabel("&From"), QLabel("&to")
        from_label.setBuddy(self.from_edit)
        to_label.setBuddy(self.to_edit)

        user_label = QLabel("&User")
        self.user_combo = QComboBox()
        self.user_combo.setToolTip("Only what this operating-system user did")
        self.user_combo.addItem(EVERYONE, None)
        self.user_combo.setMinimumContentsLength(10)
        self.user_combo.activated.connect(lambda _i: self._filter_changed())
        user_label.setBuddy(self.user_combo)

        area_label = QLabel("&Area")
        self.area_combo = QComboBox()
        self.area_combo.addItem("All", None)
        for area in AREAS:
            self.area_combo.addItem(area.label, area.key)
        self.area_combo.setToolTip("Payments include card and bank charges, refunds and payments recorded by hand")
        self.area_combo.activated.connect(lambda _i: self._filter_changed())
        area_label.setBuddy(self.area_combo)

        self.search = search_field(self, "Search the summaries", self._filter_changed)
        self.search.setMinimumWidth(220)
        self.refresh_button = QPushButton("&Refresh")
        self.refresh_button.setToolTip("Read the trail again (F5)")
        self.refresh_button.clicked.connect(lambda: self.reload())
        self.csv_button = QPushButton("Export &CSV…")
        self.csv_button.setToolTip("Save every entry matching the filter (not only this page) as a spreadsheet "
                                   "(CSV, UTF-8)")
        self.csv_button.clicked.connect(lambda: self.export_csv())
        for widgets in ((from_label, self.from_edit, to_label, self.to_edit), (user_label, self.user_combo),
                        (area_label, self.area_combo), (self.search,), (self.refresh_button, self.csv_button)):
            bar.addWidget(_group(*widgets))
        layout.addLayout(bar)
        QShortcut(QKeySequence(Qt.Key.Key_F5), self, self.reload, context=Qt.ShortcutContext.WidgetWithChildrenShortcut)

        self.note = notice_label()
        layout.addWidget(self.note)

        paging = QHBoxLayout()
        self.status = QLabel("Loading…")
        self.status.setStyleSheet(MUTED_STYLE)
        self.newer_button = QPushButton("◀ &Newer")
        self.newer_button.setToolTip(f"The {PAGE_SIZE} entries before these")
        self.newer_button.clicked.connect(lambda: self.go_to(self.offset - PAGE_SIZE))
        self.older_button = QPushButton("&Older ▶")
        self.older_button.setToolTip(f"The next {PAGE_SIZE} entries")
        self.older_button.clicked.connect(lambda: self.go_to(self.offset + PAGE_SIZE))
        paging.addWidget(self.status, 1)
        paging.addWidget(self.newer_button)
        paging.addWidget(self.older_button)
        layout.addLayout(paging)

        self.model: SnapshotTableModel[AuditRow] = SnapshotTableModel(COLUMNS, lambda r: r.summary, self)
        self.table = snapshot_table(self.model, (140, 80, 80, 175, 160, 400), SUMMARY_COLUMN)
        # The database gives the order (newest first, across every page); sorting one page would mislead.
        self.table.setSortingEnabled(False)
        self.table.setAccessibleName("Audit entries, newest first")
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._show_selected())
        self.table.doubleClicked.connect(self._double_clicked)
        self.table.activated.connect(self._double_clicked)

        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.details.setAccessibleName("The selected entry")
        self.details.setPlaceholderText("Select an entry to see what changed.")

        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(self.details)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        layout.addWidget(self.splitter, 1)
        self._update_paging()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self._stale:
            self.reload()

    def _date_edit(self, day: dt.date, tip: str) -> QDateEdit:
        edit = QDateEdit(_qdate(day))
        edit.setCalendarPopup(True)
        edit.setDisplayFormat("yyyy-MM-dd")
        edit.setToolTip(tip)
        edit.dateChanged.connect(lambda _d: None if self._setting else self._date_edited())
        return edit

    def _date_edited(self) -> None:
        self._follow_today = False
        self._settle.start()

    def _set_dates(self, start: dt.date, end: dt.date) -> None:
        self._setting = True
        try:
            self.from_edit.setDate(_qdate(start))
            self.to_edit.setDate(_qdate(end))
        finally:
            self._setting = False

    # --- the filter ---
    def current_filter(self) -> AuditFilter:
        start, end = _date(self.from_edit.date()), _date(self.to_edit.date())
        if start > end:
            start, end = end, start  # a range typed backwards means the same days
        return AuditFilter(from_day=start, to_day=end, actor=self.user_combo.currentData(),
                           area=self.area_combo.currentData(), text=self.search.text())

    def set_range(self, start: dt.date, end: dt.date) -> None:
        self._follow_today = False
        self._set_dates(start, end)
        self._filter_changed()

    def set_area(self, key: str | None) -> None:
        self.area_combo.setCurrentIndex(max(0, self.area_combo.findData(key)))
        self._filter_changed()

    def set_user(self, actor: str | None) -> None:
        index = self.user_combo.findData(actor)
        if index < 0 and actor:
            self.user_combo.addItem(actor, actor)
            index = self.user_combo.count() - 1
        self.user_combo.setCurrentIndex(max(0, index))
        self._filter_changed()

    def _filter_changed(self) -> None:
        self._settle.stop()
        self.offset = 0
        self.reload()

    # --- loading ---
    def reload(self) -> None:
        """Read the page on show again (also called when the Reports screen is shown after a change;
        while the tab is hidden, that waits until it is shown)."""
        self._settle.stop()
        if not self.isVisible():
            self._stale = True
            return
        self._stale = False
        if self._follow_today:
            # Left open overnight, the default range moves on with the calendar (until someone picks days).
            today = self.today()
            self._set_dates(today - dt.timedelta(days=DEFAULT_DAYS - 1), today)
        self._seq += 1
        seq, flt, offset = self._seq, self.current_filter(), self.offset
        self.status.setText("Reading the audit trail…")

        def read(s: Session) -> tuple[AuditPage, list[str]]:
            return search_audit(s, flt, limit=PAGE_SIZE, offset=offset), actors(s)

        def done(result: tuple[AuditPage, list[str]]) -> None:
            if seq == self._seq:
                self.show_page(*result)

        def failed(exc: BaseException) -> bool:
            if seq != self._seq:
                return True
            if isinstance(exc, USER_ERRORS):
                self.status.setText("")
                show_notice(self.note, describe_error(exc), "error")
                return True
            return False

        self.ops.read(self, read, done, on_failure=failed, label="Reading the audit trail")

    def go_to(self, offset: int) -> None:
        total = self.page.total if self.page else 0
        self.offset = max(0, min(offset, max(0, total - 1) // PAGE_SIZE * PAGE_SIZE))
        self.reload()

    def show_page(self, page: AuditPage, users: list[str]) -> None:
        selected = self.selected_row()
        self.page = page
        self._fill_users(users)
        self.model.set_rows(page.rows)
        show_notice(self.note, "")
        if page.total:
            self.status.setText(f"{page.range_text} entries, newest first")
        else:
            self.status.setText("No entries match: widen the dates, or clear the user, area or search.")
        row = self.model.find_row(lambda r: r.id == selected.id) if selected else -1
        if row >= 0:
            self.table.selectRow(row)
        else:
            self._show_selected()
        self._update_paging()
        self.loaded.emit(page)

    def _fill_users(self, users: list[str]) -> None:
        current = self.user_combo.currentData()
        self.user_combo.clear()
        self.user_combo.addItem(EVERYONE, None)
        for user in users:
            self.user_combo.addItem(user, user)
        if current and current not in users:
            self.user_combo.addItem(current, current)
        self.user_combo.setCurrentIndex(max(0, self.user_combo.findData(current)))

    def _update_paging(self) -> None:
        page = self.page
        self.newer_button.setEnabled(bool(page) and self.offset > 0)
        self.older_button.setEnabled(bool(page) and page is not None and page.last < page.total)
        self.csv_button.setEnabled(bool(page and page.total))

    # --- the selected entry ---
    def selected_row(self) -> AuditRow | None:
        rows = self.table.selectionModel().selectedRows()
        return self.model.row_at(rows[0].row()) if rows else None

    def _show_selected(self) -> None:
        row = self.selected_row()
        self.details.setPlainText(details_text(row) if row else "")

    def _double_clicked(self, index: QModelIndex) -> None:
        if index.isValid():
            self.open_item(self.model.row_at(index.row()))

    def open_item(self, row: AuditRow) -> QWidget | None:
        """The invoice or client the entry is about, in its own window (when it is still there)."""
        if not row.item_exists or row.entity_id is None:
            return None
        if row.entity_type == "invoice":
            from ui.invoice_dialog import InvoiceDialog

            dialog: QWidget = InvoiceDialog(self.ops, row.entity_id, self)
            dialog.changed.connect(lambda _id: self._changed_elsewhere())  # type: ignore[attr-defined]
        elif row.entity_type == "client":
            from ui.client_dialog import ClientDialog

            dialog = ClientDialog(self.ops, self, client_id=row.entity_id)
            dialog.saved.connect(lambda _id: self._changed_elsewhere())  # type: ignore[attr-defined]
        else:
            return None
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()  # type: ignore[attr-defined]
        return dialog

    def _changed_elsewhere(self) -> None:
        self.changed.emit()
        self.reload()

    # --- export ---
    def export_csv(self) -> None:
        flt = self.current_filter()
        suggested = default_folder(settings_for(self)) / (
            f"Audit trail {flt.from_day.isoformat() if flt.from_day else ''} to "
            f"{flt.to_day.isoformat() if flt.to_day else ''}.csv")
        path = ask_save_path(self, "Export the audit trail", suggested)
        if path is None:
            return

        def work(ctx: OpContext) -> int:
            with ctx.db.session() as s:
                return export_audit_csv(s, flt, path)

        def written(count: int) -> None:
            remember_folder(settings_for(self), path.parent)
            show_notice(self.note, f"Saved {count:,} audit entr{'y' if count == 1 else 'ies'} to {path}.", "ok")
            self.saved.emit(path)

        def failed(exc: BaseException) -> bool:
            if isinstance(exc, OSError):
                from ui.reports_screen import save_error_text

                show_notice(self.note, save_error_text(path, exc, "audit trail"), "error")
                return True
            return False

        show_notice(self.note, "")
        self.ops.run(self, work, on_success=written, on_failure=failed, label="Exporting the audit trail")


def _group(*widgets: QWidget) -> QWidget:
    box = QWidget()
    row = QHBoxLayout(box)
    row.setContentsMargins(0, 0, 0, 0)
    row.setSpacing(6)
    for w in widgets:
        row.addWidget(w)
    return box
