"""Small building blocks shared by the screens and dialogs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from PySide6.QtCore import QAbstractItemModel, Qt, QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QCompleter,
    QFormLayout,
    QFrame,
    QHeaderView,
    QLabel,
    QLineEdit,
    QScrollArea,
    QSizePolicy,
    QTableView,
    QVBoxLayout,
    QWidget,
)

W = TypeVar("W", bound=QWidget)

ERROR_STYLE = "color: #b3261e;"
INVALID_STYLE = "border: 1px solid #b3261e; border-radius: 3px; padding: 2px;"


# Shared by the settings forms: hints, warnings and good news.
MUTED_STYLE = "color: #5f6368;"
WARNING_STYLE = "background: #fef7e0; color: #7a5900; padding: 6px 8px; border-radius: 4px;"
SUCCESS_STYLE = "color: #0d652d;"


def error_label() -> QLabel:
    """A hidden, wrapping label in the error colour, for what a form cannot save."""
    label = QLabel()
    label.setStyleSheet(ERROR_STYLE)
    label.setWordWrap(True)
    label.hide()
    return label


class FieldRow(QWidget):
    """An input with the message that explains what is wrong with it, right below."""

    def __init__(self, editor: QWidget, parent: QWidget | None = None):
        super().__init__(parent)
        self.editor = editor
        self.error = QLabel()
        self.error.setStyleSheet(ERROR_STYLE)
        self.error.setWordWrap(True)
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(editor)
        layout.addWidget(self.error)

    def set_error(self, messages: list[str] | None) -> None:
        if messages:
            self.error.setText("\n".join(messages))
            self.error.show()
            if isinstance(self.editor, QLineEdit):
                self.editor.setStyleSheet(INVALID_STYLE)
            self.editor.setAccessibleDescription(" ".join(messages))
        else:
            self.error.clear()
            self.error.hide()
            if isinstance(self.editor, QLineEdit):
                self.editor.setStyleSheet("")
            self.editor.setAccessibleDescription("")


class FieldForm:
    """A QFormLayout whose rows are addressed by the core's field names."""

    def __init__(self, layout: QFormLayout):
        self.layout = layout
        self.rows: dict[str, FieldRow] = {}

    def add(self, field: str, label: str, editor: W) -> W:
        row = FieldRow(editor)
        self.rows[field] = row
        self.layout.addRow(label, row)
        return editor

    def show_issues(self, by_field: dict[str, list[str]]) -> list[str]:
        """Show each message at its field; return the ones that have no field here."""
        leftover: list[str] = []
        for field, row in self.rows.items():
            row.set_error(by_field.get(field))
        for field, messages in by_field.items():
            if field not in self.rows:
                leftover.extend(messages)
        return leftover

    def first_invalid(self) -> QWidget | None:
        for row in self.rows.values():
            if row.error.isVisible() or row.error.text():
                return row.editor
        return None


def heading(text: str, size: int = 18) -> QLabel:
    label = QLabel(text)
    label.setStyleSheet(f"font-size: {size}px; font-weight: 600;")
    return label


def hline() -> QFrame:
    line = QFrame()
    line.setFrameShape(QFrame.Shape.HLine)
    line.setFrameShadow(QFrame.Shadow.Sunken)
    return line


def form_scroll(form_widget: QWidget) -> QScrollArea:
    """A settings form in a scroll area that shows the tab's own background (setWidget
    turns the form's on), scrolling only up and down."""
    scroll = QScrollArea()
    scroll.setWidget(form_widget)
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    form_widget.setAutoFillBackground(False)
    scroll.viewport().setAutoFillBackground(False)
    return scroll


def expanding(widget: QWidget) -> QWidget:
    widget.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
    return widget


def searchable_combo() -> QComboBox:
    """A combo to pick one of hundreds (clients, invoices) by typing any part of its name."""
    combo = QComboBox()
    combo.setEditable(True)
    combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
    completer = combo.completer()
    if completer is not None:
        completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
    return combo


def search_field(owner: QWidget, placeholder: str, on_settled: Callable[[], None]) -> QLineEdit:
    """A search box that calls `on_settled` once typing pauses (120 ms), not on every key."""
    field = QLineEdit()
    field.setPlaceholderText(placeholder)
    field.setClearButtonEnabled(True)
    debounce = QTimer(owner)
    debounce.setSingleShot(True)
    debounce.setInterval(120)
    debounce.timeout.connect(on_settled)
    field.textChanged.connect(lambda _t: debounce.start())
    return field


def snapshot_table(model: QAbstractItemModel, widths: Sequence[int], stretch: int, *,
                   multi_select: bool = False) -> QTableView:
    """The read-only, sortable, row-selecting table every list screen shows."""
    table = QTableView()
    table.setModel(model)
    table.setSortingEnabled(True)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection if multi_select
                           else QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setAlternatingRowColors(True)
    table.setWordWrap(False)
    table.verticalHeader().hide()
    table.verticalHeader().setDefaultSectionSize(26)
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    header.setHighlightSections(False)
    for col, width in enumerate(widths):
        table.setColumnWidth(col, width)
    header.setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)
    return table
