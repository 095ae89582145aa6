"""Small building blocks shared by the screens and dialogs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from PySide6.QtCore import (
    QAbstractItemModel,
    QMargins,
    QPoint,
    QRect,
    QSize,
    Qt,
    QTimer,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QCompleter,
    QFormLayout,
    QFrame,
    QHeaderView,
    QLabel,
    QLayout,
    QLayoutItem,
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


# Message boxes: good news, information, a warning, a failure.
NOTICE_STYLES = {
    "ok": "background: #e6f4ea; color: #0d652d; padding: 6px 10px; border-radius: 4px;",
    "info": "background: #e8f0fe; color: #174ea6; padding: 6px 10px; border-radius: 4px;",
    "warn": "background: #fef7e0; color: #7a5900; padding: 6px 10px; border-radius: 4px;",
    "error": "background: #fce8e6; color: #8c1d18; padding: 6px 10px; border-radius: 4px;",
}


def notice_label() -> QLabel:
    """A hidden, wrapping, selectable message box in one of NOTICE_STYLES (see show_notice)."""
    label = QLabel()
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.hide()
    return label


def show_notice(label: QLabel, text: str, kind: str = "ok") -> None:
    """Show `text` in the box in the colours of `kind` (a key of NOTICE_STYLES); no text hides it."""
    label.setStyleSheet(NOTICE_STYLES[kind])
    label.setText(text)
    label.setVisible(bool(text))


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


class FlowLayout(QLayout):
    """Items left to right, wrapping onto the next line when the width runs out (a row of
    button groups that stays whole in a narrow window).  Each item keeps its size hint."""

    def __init__(self, parent: QWidget | None = None, *, h_spacing: int = 6, v_spacing: int = 6):
        super().__init__(parent)
        self._items: list[QLayoutItem] = []
        self._h, self._v = h_spacing, v_spacing
        self.setContentsMargins(0, 0, 0, 0)

    def addItem(self, item: QLayoutItem) -> None:
        self._items.append(item)

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, index: int) -> QLayoutItem | None:
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int) -> QLayoutItem | None:
        return self._items.pop(index) if 0 <= index < len(self._items) else None

    def expandingDirections(self) -> Qt.Orientation:
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return self._arrange(QRect(0, 0, width, 0), move=False)

    def setGeometry(self, rect: QRect) -> None:
        super().setGeometry(rect)
        self._arrange(rect, move=True)

    def sizeHint(self) -> QSize:
        """One line of everything."""
        visible = [i.sizeHint() for i in self._items if not i.isEmpty()]
        width = sum(s.width() for s in visible) + self._h * max(0, len(visible) - 1)
        height = max((s.height() for s in visible), default=0)
        return QSize(width, height).grownBy(self.contentsMargins())

    def minimumSize(self) -> QSize:
        """As wide as the widest item: narrower than that nothing could be shown whole."""
        size = QSize()
        for item in self._items:
            if not item.isEmpty():
                size = size.expandedTo(item.sizeHint())
        return size.grownBy(self.contentsMargins())

    def _arrange(self, rect: QRect, *, move: bool) -> int:
        m: QMargins = self.contentsMargins()
        area = rect.marginsRemoved(m)
        x, y, line_height = area.x(), area.y(), 0
        for item in self._items:
            if item.isEmpty():
                continue
            hint = item.sizeHint()
            if x > area.x() and x + hint.width() > area.right() + 1:
                x, y, line_height = area.x(), y + line_height + self._v, 0
            if move:
                item.setGeometry(QRect(QPoint(x, y), hint))
            x += hint.width() + self._h
            line_height = max(line_height, hint.height())
        return y + line_height - rect.y() + m.bottom()
