"""Settings → Data: where the data lives, the backups (keep N, back up now, the list) and restore;
and the daily backup at start-up (DailyBackup), in the background.

Every backup and restore runs through Ops (house rule 2).  A restore is checked first (the
file, the current database, a month-end run under way) off the UI thread; the confirmation
says what is replaced and what is lost; then the work runs, and `restored` tells the main
window to read every screen again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from html import escape
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QStatusBar,
    QVBoxLayout,
    QWidget,
)

from mspbill.backups import (
    KEEP_MAX,
    KEEP_MIN,
    KEEP_SETTING,
    BackupError,
    DatabaseFacts,
    NotSqliteError,
    RestorePlan,
    RestoreReport,
    backup_now,
    daily_backup,
    keep_setting,
    list_backups,
    plan_restore,
    restore,
    sqlite_file,
    suggested_file_name,
)
from mspbill.context import AppContext
from ui.database_server_form import DatabaseGroup
from ui.ops import OpContext, Ops
from ui.table import Column, SnapshotTableModel
from ui.widgets import MUTED_STYLE, hline, notice_label, show_notice, snapshot_table

BACKUP_FILTER = "mspbill backups (*.sqlite3 *.sqlite *.db);;All files (*)"


def size_text(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    value = float(n)
    for unit in ("KB", "MB", "GB"):
        value /= 1024
        if value < 1024 or unit == "GB":
            return f"{value:.1f} {unit}"
    return f"{n} bytes"


def _when(f: DatabaseFacts) -> str:
    return f.taken_at.strftime("%Y-%m-%d %H:%M") if f.taken_at else ""


COLUMNS: list[Column[DatabaseFacts]] = [
    Column("Taken", _when, sort_key=lambda f: f.taken_at or dt.datetime.min),
    Column("Reason", lambda f: f.reason_text, muted=lambda f: bool(f.problem)),
    Column("Size", lambda f: size_text(f.size_bytes), sort_key=lambda f: f.size_bytes, align_right=True),
    Column("Schema", lambda f: f.revision or f.problem or "", muted=lambda f: bool(f.problem)),
    Column("Clients", lambda f: "" if f.clients is None else str(f.clients),
           sort_key=lambda f: f.clients or 0, align_right=True),
    Column("Invoices", lambda f: "" if f.invoices is None else str(f.invoices),
           sort_key=lambda f: f.invoices or 0, align_right=True),
    Column("File", lambda f: Path(f.path).name, tooltip=lambda f: f.path),
]


def confirmation_html(plan: RestorePlan) -> str:
    paragraphs = plan.confirmation(terminal=False)
    head, rest = paragraphs[0], paragraphs[1:]
    warn = [p for p in rest if p.startswith("Charges, payments")]
    body = "".join(f"<p>{escape(p)}</p>" for p in rest if p not in warn)
    body += "".join(f"<p><b>{escape(p)}</b></p>" for p in warn)
    return f"<p>{escape(head)}</p>{body}<p>Restore it now?</p>"


class DataSettingsForm(QWidget):
    """The Data tab of Settings."""

    restored = Signal()                 # the database was replaced: every screen reads it again

    def __init__(self, ops: Ops, ctx: AppContext, parent: QWidget | None = None,
                 today: Callable[[], dt.date] = dt.date.today):
        super().__init__(parent)
        self.ops, self.ctx, self.today = ops, ctx, today
        self.url = ctx.db.url
        try:
            sqlite_file(self.url)
            self.server_text = ""
        except NotSqliteError as exc:
            self.server_text = str(exc).replace(" Nothing was done.", "")
        self._loaded = False
        # The restore confirmation (a child message box) reads better wider than Qt's default.
        self.setStyleSheet("QMessageBox QLabel#qt_msgbox_label { min-width: 520px; }")
        self._build()

    # --- layout ---
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        self.database_group = DatabaseGroup(self.ops, self.ctx)
        layout.addWidget(self.database_group)
        where = QFormLayout()
        for label, value in (("Backups", str(self.ctx.paths.backup_dir)),
                             ("Settings file", str(self.ctx.paths.settings_file)),
                             ("Log", str(self.ctx.paths.log_file))):
            v = QLabel(value)
            v.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            where.addRow(label, v)
        layout.addLayout(where)
        layout.addWidget(hline())
        title = QLabel("Backups")
        title.setStyleSheet("font-size: 15px; font-weight: 600;")
        layout.addWidget(title)
        self.notice = notice_label()
        if self.server_text:
            show_notice(self.notice, self.server_text, "info")
            layout.addWidget(self.notice)
            layout.addStretch()
            return
        about = QLabel("mspbill backs up its database by itself once a day when it starts, before every month-end "
                       "run and before it updates the database to a new version. Backups are consistent while "
                       "mspbill is in use. Those you make by hand, and the one taken before a restore, are kept "
                       "until you delete them.")
        about.setWordWrap(True)
        about.setStyleSheet(MUTED_STYLE)
        layout.addWidget(about)

        keep_row = QHBoxLayout()
        keep_row.addWidget(QLabel("Keep the last"))
        self.keep = QSpinBox()
        self.keep.setRange(KEEP_MIN, KEEP_MAX)
        self.keep.setValue(keep_setting(self.ctx.settings))
        self.keep.setAccessibleName("Automatic backups kept")
        keep_row.addWidget(self.keep)
        keep_row.addWidget(QLabel("automatic backups"))
        self.save_keep = QPushButton("Save")
        self.save_keep.setEnabled(False)
        self.keep.valueChanged.connect(lambda _v: self.save_keep.setEnabled(
            self.keep.value() != keep_setting(self.ctx.settings)))
        self.save_keep.clicked.connect(self.save_keep_setting)
        keep_row.addWidget(self.save_keep)
        keep_row.addStretch()
        layout.addLayout(keep_row)

        actions = QHBoxLayout()
        self.backup_button = QPushButton("Back up now")
        self.backup_button.setToolTip("A backup into the backups folder, kept until you delete it")
        self.backup_button.clicked.connect(lambda: self.back_up())
        self.backup_file_button = QPushButton("Back up now to a file…")
        self.backup_file_button.clicked.connect(self.back_up_to_file)
        self.open_folder_button = QPushButton("Open backups folder")
        self.open_folder_button.clicked.connect(lambda: QDesktopServices.openUrl(
            QUrl.fromLocalFile(str(self.ctx.paths.backup_dir))))
        for b in (self.backup_button, self.backup_file_button, self.open_folder_button):
            actions.addWidget(b)
        actions.addStretch()
        layout.addLayout(actions)
        layout.addWidget(self.notice)

        self.model: SnapshotTableModel[DatabaseFacts] = SnapshotTableModel(COLUMNS, lambda f: f.path)
        self.table = snapshot_table(self.model, [130, 250, 80, 110, 70, 70, 300], 6)
        self.table.sortByColumn(0, Qt.SortOrder.DescendingOrder)   # newest first
        self.table.doubleClicked.connect(lambda _i: self.restore_selected())
        self.table.selectionModel().selectionChanged.connect(lambda *_a: self._selection_changed())
        layout.addWidget(self.table, 1)
        self.empty = QLabel("No backups yet.")
        self.empty.setStyleSheet(MUTED_STYLE)
        self.empty.hide()
        layout.addWidget(self.empty)

        restore_row = QHBoxLayout()
        self.restore_button = QPushButton("Restore…")
        self.restore_button.setEnabled(False)
        self.restore_button.setToolTip("Replace the database with the selected backup (asks first)")
        self.restore_button.clicked.connect(self.restore_selected)
        self.restore_file_button = QPushButton("Restore from file…")
        self.restore_file_button.clicked.connect(self.restore_from_file)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.load)
        for b in (self.restore_button, self.restore_file_button):
            restore_row.addWidget(b)
        restore_row.addStretch()
        restore_row.addWidget(self.refresh_button)
        layout.addLayout(restore_row)
        self._buttons = (self.backup_button, self.backup_file_button, self.restore_button, self.restore_file_button,
                         self.save_keep)

    # --- the list ---
    def load(self) -> None:
        """Read the backups folder again (in the background)."""
        if self.server_text:
            return
        folder = self.ctx.paths.backup_dir
        self.ops.run(self, lambda _c: list_backups(folder), on_success=self._loaded_rows, label="Reading backups")

    def ensure_loaded(self) -> None:
        if not self._loaded:
            self.load()

    def _loaded_rows(self, rows: list[DatabaseFacts]) -> None:
        self._loaded = True
        self.model.set_rows(rows)
        self.empty.setVisible(not rows)
        self._selection_changed()

    def _selection_changed(self) -> None:
        self.restore_button.setEnabled(self.selected() is not None)

    def selected(self) -> DatabaseFacts | None:
        rows = self.table.selectionModel().selectedRows()
        return self.model.row_at(rows[0].row()) if rows else None

    def _busy(self, busy: bool) -> None:
        for b in self._buttons:
            b.setEnabled(not busy)
        if not busy:
            self.save_keep.setEnabled(self.keep.value() != keep_setting(self.ctx.settings))
            self._selection_changed()

    # --- keep N ---
    def save_keep_setting(self) -> None:
        try:
            self.ctx.settings.set(KEEP_SETTING, int(self.keep.value()))
        except OSError as exc:
            show_notice(self.notice, f"The setting could not be saved ({exc.strerror or exc}).", "error")
            return
        self.save_keep.setEnabled(False)
        show_notice(self.notice, f"mspbill keeps the last {self.keep.value()} automatic backups; older ones are "
                                 "deleted when the next one is taken.", "ok")

    # --- back up ---
    def back_up(self, out: Path | None = None) -> None:
        paths, url = self.ctx.paths, self.url
        self._busy(True)
        show_notice(self.notice, "Backing up…", "info")

        def work(_ctx: OpContext) -> Path:
            return backup_now(paths, url, out=out, overwrite=out is not None)

        def done(path: Path) -> None:
            self._busy(False)
            show_notice(self.notice, f"Backed up to {path}.", "ok")
            self.load()

        def failed(exc: BaseException) -> bool:
            self._busy(False)
            if isinstance(exc, BackupError):
                show_notice(self.notice, str(exc), "error")
                return True
            show_notice(self.notice, "", "ok")
            return False

        self.ops.run(self, work, on_success=done, on_failure=failed, label="Backing up")

    def back_up_to_file(self) -> None:
        start = Path.home() / suggested_file_name(self.today())
        name, _ = QFileDialog.getSaveFileName(self, "Back up to a file", str(start), BACKUP_FILTER)
        if not name:
            return
        path = Path(name)
        if path.suffix.lower() not in (".sqlite3", ".sqlite", ".db"):
            path = path.with_name(path.name + ".sqlite3")
            # The save dialog asked about the name typed, not this one.
            if path.exists() and QMessageBox.question(
                    self, "Back up to a file", f"{path.name} already exists. Replace it?",
                    QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
                    QMessageBox.StandardButton.Cancel) != QMessageBox.StandardButton.Yes:
                return
        self.back_up(path)

    # --- restore ---
    def restore_selected(self) -> None:
        row = self.selected()
        if row is not None:
            self.restore_file(Path(row.path))

    def restore_from_file(self) -> None:
        name, _ = QFileDialog.getOpenFileName(self, "Restore from a backup file", str(self.ctx.paths.backup_dir),
                                              BACKUP_FILTER)
        if name:
            self.restore_file(Path(name))

    def restore_file(self, source: Path) -> None:
        """Check `source` and the database, ask, then restore (all but the asking in the background)."""
        url = self.url
        self._busy(True)
        show_notice(self.notice, f"Checking {source.name}…", "info")
        self.ops.run(self, lambda _c: plan_restore(url, source), on_success=self._ask,
                     on_failure=self._restore_failed, label="Checking the backup")

    def _restore_failed(self, exc: BaseException) -> bool:
        self._busy(False)
        if isinstance(exc, BackupError):
            show_notice(self.notice, str(exc), "error")
            return True
        show_notice(self.notice, "", "ok")
        return False

    def _ask(self, plan: RestorePlan) -> None:
        answer = QMessageBox.question(
            self, "Restore a backup", confirmation_html(plan),
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Cancel)
        if answer != QMessageBox.StandardButton.Yes:
            self._busy(False)
            show_notice(self.notice, "Not restored; nothing was changed.", "info")
            return
        if self.ops.active:
            # A background job (e-mail, payments, collections) would go on writing into the restored data.
            self._busy(False)
            show_notice(self.notice, "mspbill is busy with another job (sending e-mail or asking the payment "
                                     "processor). Try the restore again in a moment; nothing was changed.", "error")
            return
        paths, url, db = self.ctx.paths, self.url, self.ctx.db
        source = Path(plan.source.path)
        show_notice(self.notice, f"Restoring {source.name}…", "info")

        def work(_ctx: OpContext) -> RestoreReport:
            report = restore(paths, url, source, plan=plan)
            # Connections the pool kept read the new database anyway; fresh ones are simpler to reason about.
            db.dispose()
            return report

        self.ops.run(self, work, on_success=self._restored, on_failure=self._restore_failed, label="Restoring")

    def _restored(self, report: RestoreReport) -> None:
        self._busy(False)
        show_notice(self.notice, "\n".join(report.lines()), "ok")
        self.load()
        self.restored.emit()


class DailyBackup(QObject):
    """Once a day at start: a backup in the background unless one was taken today.  Quiet when all is
    well (a note in the status bar); a failure stays in the status bar in red, never a dialog."""

    finished = Signal(str, bool)        # text for the status bar, problem

    def __init__(self, ops: Ops, ctx: AppContext, status_bar: QStatusBar | None = None,
                 parent: QObject | None = None, now: Callable[[], dt.datetime] = dt.datetime.now):
        super().__init__(parent)
        self.ops, self.ctx, self.now = ops, ctx, now
        self.status_bar = status_bar
        self.label: QLabel | None = None
        self._started = False

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        paths, url, keep = self.ctx.paths, self.ctx.db.url, keep_setting(self.ctx.settings)
        when = self.now()

        def failed(exc: BaseException) -> bool:
            self._show(f"The daily backup failed: {exc}", True)
            return True

        self.ops.run(None, lambda _c: daily_backup(paths, url, keep=keep, now=when),
                     on_success=lambda path: self._show(f"Daily backup saved to {path.name}." if path else "", False),
                     on_failure=failed, label="Daily backup")

    def _show(self, text: str, problem: bool) -> None:
        self.finished.emit(text, problem)
        if self.status_bar is None or not text:
            return
        if not problem:
            self.status_bar.showMessage(text, 10_000)
            return
        if self.label is None:
            self.label = QLabel()
            self.label.setStyleSheet("color: #b3261e;")
            self.status_bar.addPermanentWidget(self.label)
        self.label.setText("Daily backup failed")
        self.label.setToolTip(text)
        self.label.show()
