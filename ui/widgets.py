"""Small building blocks shared by the screens and dialogs."""

from __future__ import annotations

from typing import TypeVar

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFormLayout,
    QFrame,
    QLabel,
    QLineEdit,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

W = TypeVar("W", bound=QWidget)

ERROR_STYLE = "color: #b3261e;"
INVALID_STYLE = "border: 1px solid #b3261e; border-radius: 3px; padding: 2px;"


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


def expanding(widget: QWidget) -> QWidget:
    widget.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
    return widget
