"""A client's statement: ask the dates, render it through Ops, show it in the PDF viewer."""

from __future__ import annotations

import datetime as dt
from html import escape

from PySide6.QtCore import QDate, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDateEdit,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QProgressBar,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy.orm import Session

from mspbill.pdf.rendered import RenderedPdf
from mspbill.pdf.statement import statement_pdf
from mspbill.periods import Month
from mspbill.settings import Settings
from mspbill.validation import NotFoundError, ValidationError
from ui.ops import Ops, describe_error
from ui.pdf_viewer import PdfViewer, settings_for
from ui.widgets import error_label

PRESETS: tuple[tuple[str, str], ...] = (
    ("this_month", "This month"), ("last_month", "Last month"), ("last_3_months", "Last 3 months"),
    ("this_year", "This year"), ("custom", "Custom dates"))
DEFAULT_PRESET = "last_3_months"


def preset_range(preset: str, today: dt.date) -> tuple[dt.date, dt.date]:
    """The dates a preset stands for, both included.

    "Last 3 months" is this month so far and the two before it, from the first
    of the month, so the statement opens on a month boundary.
    """
    month = Month.of(today)
    if preset == "this_month":
        return month.first_day, today
    if preset == "last_month":
        last = month.shift(-1)
        return last.first_day, last.last_day
    if preset == "last_3_months":
        return month.shift(-2).first_day, today
    if preset == "this_year":
        return dt.date(today.year, 1, 1), today
    raise ValueError(f"no dates for preset {preset!r}")


def _qdate(day: dt.date) -> QDate:
    return QDate(day.year, day.month, day.day)


def _date(q: QDate) -> dt.date:
    return dt.date(q.year(), q.month(), q.day())


class StatementDialog(QDialog):
    """Asks the period of a statement for one client and opens it in a viewer."""

    opened = Signal(object)  # the PdfViewer

    def __init__(self, ops: Ops, client_id: int, client_name: str, parent: QWidget | None = None, *,
                 settings: Settings | None = None, today: dt.date | None = None):
        super().__init__(parent)
        self.ops = ops
        self.client_id = client_id
        self.settings = settings if settings is not None else settings_for(parent)
        self.today = today or dt.date.today()
        self.viewer: PdfViewer | None = None
        self.setWindowTitle(f"Statement — {client_name}")
        self.setMinimumWidth(440)

        layout = QVBoxLayout(self)
        intro = QLabel(f"A statement of account for <b>{escape(client_name)}</b>: what was invoiced, "
                       "paid and credited between two dates, and what is still owed.")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        form = QFormLayout()
        self.preset = QComboBox()
        for key, label in PRESETS:
            self.preset.addItem(label, key)
        self.start = QDateEdit()
        self.end = QDateEdit()
        for edit in (self.start, self.end):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("yyyy-MM-dd")
            # A statement ends today at the latest: what is owed on a later day is not known yet.
            edit.setMaximumDate(_qdate(self.today))
        form.addRow("Period", self.preset)
        form.addRow("From", self.start)
        form.addRow("To", self.end)
        layout.addLayout(form)
        self.message = error_label()
        layout.addWidget(self.message)
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setTextVisible(False)
        self.busy.setMaximumHeight(6)
        self.busy.hide()
        layout.addWidget(self.busy)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.open_button = self.buttons.addButton("Open statement", QDialogButtonBox.ButtonRole.AcceptRole)
        self.open_button.setDefault(True)
        self.buttons.accepted.connect(self.open_statement)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)

        self.preset.currentIndexChanged.connect(lambda _i: self._preset_chosen())
        # Editing a date by hand makes the period custom (the preset no longer describes it).
        self.start.dateChanged.connect(lambda _d: self._dates_edited())
        self.end.dateChanged.connect(lambda _d: self._dates_edited())
        self._setting_dates = False
        self.set_preset(DEFAULT_PRESET)

    # --- dates ---
    def set_preset(self, key: str) -> None:
        self.preset.setCurrentIndex(self.preset.findData(key))
        self._preset_chosen()

    def _preset_chosen(self) -> None:
        key = self.preset.currentData()
        if key == "custom":
            return
        start, end = preset_range(key, self.today)
        self._setting_dates = True
        self.start.setDate(_qdate(start))
        self.end.setDate(_qdate(end))
        self._setting_dates = False
        self.message.hide()

    def _dates_edited(self) -> None:
        self.message.hide()
        if self._setting_dates:
            return
        self.preset.blockSignals(True)
        self.preset.setCurrentIndex(self.preset.findData("custom"))
        self.preset.blockSignals(False)

    def dates(self) -> tuple[dt.date, dt.date]:
        return _date(self.start.date()), _date(self.end.date())

    # --- open ---
    def open_statement(self) -> None:
        start, end = self.dates()
        if start > end:
            self._show_message("The start date is after the end date.")
            return
        client_id = self.client_id

        def render(session: Session) -> RenderedPdf:
            return statement_pdf(session, client_id, start, end)

        self._set_busy(True)
        self.ops.read(self, render, self._rendered, on_failure=self._failed, label="Preparing statement")

    def _rendered(self, pdf: RenderedPdf) -> None:
        self._set_busy(False)
        # The viewer belongs to the window the dialog was opened from: it stays when this closes.
        viewer = PdfViewer(self.ops, self.parentWidget(), settings=self.settings)
        viewer.show_pdf(pdf)
        viewer.show()
        self.viewer = viewer
        self.opened.emit(viewer)
        self.accept()

    def _failed(self, exc: BaseException) -> bool:
        self._set_busy(False)
        if isinstance(exc, (ValidationError, NotFoundError)):
            self._show_message(describe_error(exc))
            return True
        return False

    def _set_busy(self, busy: bool) -> None:
        self.busy.setVisible(busy)
        for w in (self.preset, self.start, self.end, self.open_button):
            w.setEnabled(not busy)
        if busy:
            self.message.hide()

    def _show_message(self, text: str) -> None:
        self.message.setText(text)
        self.message.show()


def open_statement_dialog(ops: Ops, parent: QWidget | None, client_id: int, client_name: str) -> StatementDialog:
    dialog = StatementDialog(ops, client_id, client_name, parent)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.open()
    return dialog

