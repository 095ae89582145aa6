"""Reports → Exports: the accountant's files for a date range (mspbill.exports).

Pick a format (each says in a line what it holds), a first and a last day (last month to start with),
and the preview says what the file will hold -- invoices, lines, payments, totals per currency -- and what
it leaves out and why, read again on a worker whenever the range settles (house rule 2).  "Export…" asks
where to save (a name like mspbill-qbo-2026-10-01_2026-10-31.csv in the folder last used), builds the file
on a worker and writes it through a temporary file, so a failure leaves nothing half-written; the notice
then names the file and offers to show it in its folder.

QuickBooks Online and Desktop files hold one currency: when the range holds several, a currency picker
appears (the company's first) and the preview says where the others went.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QDate, QSize, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QDateEdit,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from mspbill.exports import (
    FORMATS,
    ExportFormat,
    ExportOptions,
    ExportSummary,
    build_export,
    last_month,
    load_export_data,
    parse_range,
)
from mspbill.exports.common import IIF, QBO
from mspbill.validation import ValidationError
from ui.ops import USER_ERRORS, OpContext, Ops, describe_error
from ui.pdf_viewer import (
    default_folder,
    remember_folder,
    settings_for,
    write_atomically,
)
from ui.widgets import MUTED_STYLE, notice_label, show_notice

RANGE_SETTLE_MS = 350   # typing a date changes it digit by digit: the preview follows once it settles
ONE_CURRENCY_FORMATS = (QBO.key, IIF.key)
FILE_FILTERS = {".csv": "CSV files (*.csv)", ".iif": "QuickBooks IIF files (*.iif)", ".zip": "ZIP archives (*.zip)"}


class RowLabel(QLabel):
    """A label of the range row that is never clipped: a mnemonic draws its letter apart from the rest, so the
    pair loses its kerning ("To" drawn wider than measured showed as "Tc"); the width here is the letters'
    unkerned advances, worked out with the font the label has when laid out."""

    def sizeHint(self) -> QSize:
        hint = super().sizeHint()
        metrics = self.fontMetrics()
        text = self.text().replace("&&", "\0").replace("&", "").replace("\0", "&")
        unkerned = sum(metrics.horizontalAdvance(ch) for ch in text) + 2 * self.margin() + 2
        return QSize(max(hint.width(), unkerned), hint.height())

    def minimumSizeHint(self) -> QSize:
        return self.sizeHint()


def ask_save_path(parent: QWidget | None, title: str, suggested: Path, file_filter: str) -> Path | None:
    """The system's Save dialog; None when cancelled.  The suffix of `suggested` is added when left out.
    Tests replace this function."""
    name, _ = QFileDialog.getSaveFileName(parent, title, str(suggested), file_filter)
    if not name:
        return None
    path = Path(name)
    return path if path.suffix.lower() == suggested.suffix.lower() else path.with_name(path.name + suggested.suffix)


def show_in_folder(path: Path) -> None:
    """Open the folder holding `path` in the system's file manager."""
    QDesktopServices.openUrl(QUrl.fromLocalFile(str(path.parent)))


def _qdate(day: dt.date) -> QDate:
    return QDate(day.year, day.month, day.day)


def _date(q: QDate) -> dt.date:
    return dt.date(q.year(), q.month(), q.day())


def preview_text(summary: ExportSummary) -> tuple[str, str, str]:
    """(headline, totals and files, left out and notes as rich text) of a summary, as the panel shows them."""
    headline = summary.headline()
    if summary.nothing_issued:
        headline += " — there are no invoices in that range" + (
            "; the file holds the headers only." if not summary.payment_count else ".")
    body: list[str] = []
    body.extend(t.text() for t in summary.totals if t.text())
    if summary.entries:
        body.append(f"In the ZIP: {', '.join(summary.entries)}")
    sections = []
    for title, items in (("Left out", summary.left_out), ("Before importing", summary.notes)):
        if items:
            sections.append(f"<p style='margin: 6px 0 0 0; font-weight: 600;'>{title}</p>"
                            "<ul style='margin: 0 0 0 -24px;'>"
                            + "".join(f"<li>{html.escape(s)}</li>" for s in items) + "</ul>")
    return headline, "\n".join(body), "".join(sections)


class ExportsPanel(QWidget):
    changed = Signal()               # nothing here changes data; kept for the Reports screen's protocol
    previewed = Signal(object)       # ExportSummary, each time the preview is read
    exported = Signal(object)        # Path of a file written

    def __init__(self, ops: Ops, parent: QWidget | None = None, *, today: Callable[[], dt.date] = dt.date.today):
        super().__init__(parent)
        self.ops = ops
        self.today = today
        self.summary: ExportSummary | None = None
        self.last_path: Path | None = None
        self._seq = 0
        self._stale = True
        self._build()

    # --- building ---
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 6)

        top = QHBoxLayout()
        format_label = RowLabel("&Format")
        self.format_combo = QComboBox()
        for fmt in FORMATS.values():
            self.format_combo.addItem(fmt.label, fmt.key)
            self.format_combo.setItemData(self.format_combo.count() - 1, fmt.description,
                                          Qt.ItemDataRole.ToolTipRole)
        format_label.setBuddy(self.format_combo)
        self.format_combo.currentIndexChanged.connect(lambda _i: self._format_changed())
        # Shrinks (eliding the name) rather than push the row wider than a narrow window: the description
        # underneath says what the format is, and the list shows the whole names.
        self.format_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.format_combo.setMinimumContentsLength(24)
        self.format_combo.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        top.addWidget(format_label)
        top.addWidget(self.format_combo)
        top.addStretch(1)
        # The action at the top right, where a long preview cannot push it out of sight.
        self.export_button = QPushButton("&Export…")
        self.export_button.setToolTip("Choose where to save the file, then write it")
        self.export_button.clicked.connect(lambda: self.export())
        self.show_button = QPushButton("Show in &folder")
        self.show_button.setToolTip("Open the folder holding the file just exported")
        self.show_button.clicked.connect(lambda: self.show_folder())
        self.show_button.hide()
        top.addWidget(self.show_button)
        top.addWidget(self.export_button)
        layout.addLayout(top)
        self.description = QLabel()
        self.description.setWordWrap(True)
        self.description.setStyleSheet(MUTED_STYLE)
        layout.addWidget(self.description)

        # The range on a row of its own: with the format's on one row, a window 960 px wide squeezed it.
        top = QHBoxLayout()
        start_label, end_label = RowLabel("F&rom"), RowLabel("&To")
        self.start_edit, self.end_edit = QDateEdit(), QDateEdit()
        start_tip = "The first day of the range: invoices by issue date, payments by the day received"
        end_tip = "The last day of the range, included (today at the latest)"
        for label, edit, tip in ((start_label, self.start_edit, start_tip), (end_label, self.end_edit, end_tip)):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("yyyy-MM-dd")
            edit.setToolTip(tip)
            label.setBuddy(edit)
            edit.dateChanged.connect(lambda _d: self._range_edited())
            if edit is self.end_edit:
                top.addSpacing(6)
            top.addWidget(label)
            top.addWidget(edit)
        self.last_month_button = QPushButton("&Last month")
        self.last_month_button.setToolTip("The calendar month before this one")
        self.last_month_button.clicked.connect(lambda: self.set_range(*last_month(self.today())))
        top.addWidget(self.last_month_button)
        self.currency_label = RowLabel("&Currency")
        self.currency_combo = QComboBox()
        self.currency_combo.setToolTip("QuickBooks takes one currency per file: export each currency on its own")
        self.currency_label.setBuddy(self.currency_combo)
        self.currency_combo.activated.connect(lambda _i: self._range_edited())
        top.addWidget(self.currency_label)
        top.addWidget(self.currency_combo)
        # A label is never squeezed below its text (RowLabel).
        for label in (format_label, start_label, end_label, self.currency_label):
            label.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Preferred)
        self.currency_label.hide()
        self.currency_combo.hide()
        top.addStretch(1)
        layout.addLayout(top)

        self.preview = QFrame()
        self.preview.setObjectName("exportPreview")
        self.preview.setStyleSheet("#exportPreview { background: palette(base); border: 1px solid #d0d4da; "
                                   "border-radius: 6px; }")
        box = QVBoxLayout(self.preview)
        box.setContentsMargins(12, 10, 12, 10)
        self.preview_title = QLabel("The file will hold")
        self.preview_title.setStyleSheet("color: #5f6368; font-size: 11px;")
        self.headline = QLabel("Loading…")
        self.headline.setWordWrap(True)
        self.headline.setStyleSheet("font-size: 15px; font-weight: 600;")
        self.totals = QLabel()
        self.totals.setWordWrap(True)
        self.details = QLabel()
        self.details.setTextFormat(Qt.TextFormat.RichText)
        self.details.setWordWrap(True)
        self.details.setStyleSheet(MUTED_STYLE)
        for w in (self.preview_title, self.headline, self.totals, self.details):
            w.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            box.addWidget(w)
        # What the last export did (the file written, or why not), above the preview.
        self.note = notice_label()
        layout.addWidget(self.note)
        # The preview scrolls when a long summary does not fit the window, rather than being cut off.
        holder = QWidget()
        holder_box = QVBoxLayout(holder)
        holder_box.setContentsMargins(0, 0, 0, 0)
        holder_box.addWidget(self.preview)
        holder_box.addStretch(1)
        self.preview_scroll = QScrollArea()
        self.preview_scroll.setWidgetResizable(True)
        self.preview_scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.preview_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.preview_scroll.setWidget(holder)
        self.preview_scroll.viewport().setAutoFillBackground(False)
        holder.setAutoFillBackground(False)
        layout.addWidget(self.preview_scroll, 1)


        self._settle = QTimer(self)
        self._settle.setSingleShot(True)
        self._settle.setInterval(RANGE_SETTLE_MS)
        self._settle.timeout.connect(self.refresh)
        self._setting = True
        today = self.today()
        for edit in (self.start_edit, self.end_edit):
            edit.setMaximumDate(_qdate(today))
        self.set_range(*last_month(today))
        self._setting = False
        self._format_changed(refresh=False)

    # --- what is chosen ---
    def fmt(self) -> ExportFormat:
        return FORMATS[self.format_combo.currentData()]

    def set_format(self, key: str) -> None:
        self.format_combo.setCurrentIndex(self.format_combo.findData(key))

    def set_range(self, start: dt.date, end: dt.date) -> None:
        setting, self._setting = self._setting, True
        self.start_edit.setDate(_qdate(start))
        self.end_edit.setDate(_qdate(end))
        self._setting = setting
        self._range_edited()

    def range(self) -> tuple[dt.date, dt.date]:
        return _date(self.start_edit.date()), _date(self.end_edit.date())

    def options(self) -> ExportOptions:
        currency = self.currency_combo.currentData() if self.currency_combo.isVisible() else None
        return ExportOptions(currency=currency)

    # --- the preview ---
    def reload(self) -> None:
        """Called when the Reports screen is shown after a change elsewhere: read now if on show, else later."""
        if self.isVisible():
            self.refresh()
        else:
            self._stale = True

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self._stale:
            self.refresh()

    def _format_changed(self, refresh: bool = True) -> None:
        self.description.setText(self.fmt().description)
        if refresh:
            self._range_edited()

    def _range_edited(self) -> None:
        if self._setting:
            return
        self._seq += 1  # a preview on its way is now out of date
        self.headline.setText("Reading…")
        self._settle.start()

    def refresh(self) -> None:
        self._settle.stop()
        self._stale = False
        self._seq += 1
        seq = self._seq
        key, options = self.fmt().key, self.options()
        try:
            start, end = parse_range(*self.range(), self.today())
        except ValidationError as exc:
            self._show_problem(describe_error(exc))
            return

        def read(ctx: OpContext) -> ExportSummary:
            with ctx.db.session() as session:
                data = load_export_data(session, start, end)
            return build_export(data, key, options).summary

        def shown(summary: ExportSummary) -> None:
            if seq == self._seq:
                self._show_summary(summary)

        def failed(exc: BaseException) -> bool:
            if seq != self._seq:
                return True
            if isinstance(exc, USER_ERRORS):
                self._show_problem(describe_error(exc))
                return True
            return False

        self.headline.setText("Reading…")
        self.ops.run(self, read, on_success=shown, on_failure=failed, label="Reading what the export will hold")

    def _show_problem(self, text: str) -> None:
        self.summary = None
        self.headline.setText(text)
        self.totals.clear()
        self.details.clear()
        self.export_button.setEnabled(False)

    def _show_summary(self, summary: ExportSummary) -> None:
        self.summary = summary
        self._update_currencies(summary)
        headline, totals, details = preview_text(summary)
        self.headline.setText(headline)
        self.totals.setText(totals)
        self.totals.setVisible(bool(totals))
        self.details.setText(details)
        self.details.setVisible(bool(details))
        self.export_button.setEnabled(True)
        self.previewed.emit(summary)

    def _update_currencies(self, summary: ExportSummary) -> None:
        """The currency picker: for a one-currency format when the range holds more than one."""
        wanted = summary.format_key in ONE_CURRENCY_FORMATS and len(summary.currencies_in_range) > 1
        current = self.currency_combo.currentData()
        self.currency_combo.clear()
        for currency in summary.currencies_in_range:
            self.currency_combo.addItem(currency, currency)
        index = self.currency_combo.findData(current)
        self.currency_combo.setCurrentIndex(max(index, 0))
        self.currency_label.setVisible(wanted)
        self.currency_combo.setVisible(wanted)

    # --- exporting ---
    def show_folder(self) -> None:
        if self.last_path is not None:
            show_in_folder(self.last_path)

    def suggested_path(self) -> Path:
        start, end = self.range()
        return default_folder(settings_for(self)) / self.fmt().filename(start, end)

    def export(self) -> None:
        fmt = self.fmt()
        try:
            start, end = parse_range(*self.range(), self.today())
        except ValidationError as exc:
            self._show_problem(describe_error(exc))
            return
        suggested = self.suggested_path()
        path = ask_save_path(self, f"Export for the accountant: {fmt.label}", suggested,
                             f"{FILE_FILTERS[fmt.suffix]};;All files (*)")
        if path is None:
            return
        options = self.options()

        def work(ctx: OpContext) -> tuple[Path, ExportSummary]:
            with ctx.db.session() as session:
                data = load_export_data(session, start, end)
            result = build_export(data, fmt.key, options)
            write_atomically(path, result.data)
            return path, result.summary

        def saved(outcome: tuple[Path, ExportSummary]) -> None:
            written, summary = outcome
            self.last_path = written
            remember_folder(settings_for(self), written.parent)
            show_notice(self.note, f"Saved {summary.headline()} to {written}.", "ok")
            self.show_button.show()
            self.exported.emit(written)

        def failed(exc: BaseException) -> bool:
            self.show_button.hide()
            if isinstance(exc, OSError):
                # Imported here: reports_screen imports this module.
                from ui.reports_screen import save_error_text

                show_notice(self.note, save_error_text(path, exc, "export"), "error")
                return True
            return False

        show_notice(self.note, "")
        self.show_button.hide()
        self.ops.run(self, work, on_success=saved, on_failure=failed, label=f"Exporting {fmt.label}")
