"""The shape shared by the Clients and Agreements screens.

A heading with a "New" button, a search box, "Show archived", Edit and
Archive/Restore, a sortable table of snapshots and a count.  Subclasses say
how to load rows and what the actions do.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy.orm import Session

from ui.ops import Ops
from ui.table import Column, SnapshotTableModel
from ui.widgets import heading, search_field, snapshot_table

R = TypeVar("R")


class ListScreen(QWidget, Generic[R]):
    changed = Signal()
    loaded = Signal(int)

    title = ""
    noun = ("item", "items")
    new_label = "New…"
    search_placeholder = "Search"
    column_widths: tuple[int, ...] = ()

    def __init__(self, ops: Ops, columns: list[Column[R]], parent: QWidget | None = None):
        super().__init__(parent)
        self.ops = ops
        self.model: SnapshotTableModel[R] = SnapshotTableModel(columns, self.haystack, self)
        self._loaded_once = False
        self._build()

    # --- to override ---
    def haystack(self, row: R) -> str:
        raise NotImplementedError

    def fetch(self, session: Session, include_archived: bool) -> list[R]:
        raise NotImplementedError

    def row_id(self, row: R) -> int:
        return int(getattr(row, "id"))

    def is_archived(self, row: R) -> bool:
        return getattr(row, "status", "") == "archived"

    def new_item(self) -> QWidget | None:
        raise NotImplementedError

    def edit_item(self, row: R) -> QWidget | None:
        raise NotImplementedError

    def archive_item(self, row: R) -> None:
        raise NotImplementedError

    def restore_item(self, row: R) -> None:
        raise NotImplementedError

    # --- building ---
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        top.addWidget(heading(self.title))
        top.addStretch()
        self.new_button = QPushButton(self.new_label)
        self.new_button.clicked.connect(lambda: self.new_item())
        top.addWidget(self.new_button)
        layout.addLayout(top)

        bar = QHBoxLayout()
        self.search = search_field(self, self.search_placeholder, self.apply_filter)
        bar.addWidget(self.search, 1)
        self.show_archived = QCheckBox("Show archived")
        self.show_archived.toggled.connect(lambda _c: self.reload())
        bar.addWidget(self.show_archived)
        self.edit_button = QPushButton("Edit…")
        self.edit_button.clicked.connect(self.edit_selected)
        self.archive_button = QPushButton("Archive")
        self.archive_button.clicked.connect(self.archive_or_restore_selected)
        bar.addWidget(self.edit_button)
        bar.addWidget(self.archive_button)
        layout.addLayout(bar)

        self.table = snapshot_table(self.model, self.column_widths, 0)
        self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.table.doubleClicked.connect(lambda _i: self.edit_selected())
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._update_buttons())
        self.model.modelReset.connect(self._update_buttons)
        self.model.layoutChanged.connect(self._update_buttons)
        layout.addWidget(self.table, 1)

        self.count_label = QLabel()
        layout.addWidget(self.count_label)
        self._update_buttons()

    # --- data ---
    def ensure_loaded(self) -> None:
        if not self._loaded_once:
            self.reload()

    def mark_stale(self) -> None:
        """Reload on the next visit (another screen changed what this one shows)."""
        self._loaded_once = False

    def reload(self, select_id: int | None = None) -> None:
        include_archived = self.show_archived.isChecked()
        if not self._loaded_once:
            self.count_label.setText(f"Loading {self.noun[1]}…")
        self.ops.read(self, lambda s: self.fetch(s, include_archived),
                      lambda rows: self._loaded(rows, select_id), label=f"Loading {self.noun[1]}")

    def _loaded(self, rows: list[R], select_id: int | None) -> None:
        self._loaded_once = True
        self.model.set_rows(rows)
        self.apply_filter()
        if select_id is not None:
            self.select_id(select_id)
        self.loaded.emit(len(rows))

    def apply_filter(self) -> None:
        self.model.set_filter_text(self.search.text())
        shown, total = self.model.rowCount(), self.model.total_count()
        noun = self.noun[0] if total == 1 else self.noun[1]
        self.count_label.setText(f"{total} {noun}" if shown == total else f"{shown} of {total} {noun}")
        self._update_buttons()

    def select_id(self, item_id: int) -> None:
        row = self.model.find_row(lambda r: self.row_id(r) == item_id)
        if row >= 0:
            self.table.selectRow(row)
            self.table.scrollTo(self.model.index(row, 0))

    def selected(self) -> R | None:
        indexes = self.table.selectionModel().selectedRows()
        return self.model.row_at(indexes[0].row()) if indexes else None

    def _update_buttons(self, *_args: object) -> None:
        row = self.selected()
        self.edit_button.setEnabled(row is not None)
        self.archive_button.setEnabled(row is not None)
        self.archive_button.setText("Restore" if row is not None and self.is_archived(row) else "Archive")

    # --- actions ---
    def edit_selected(self) -> QWidget | None:
        row = self.selected()
        return self.edit_item(row) if row is not None else None

    def archive_or_restore_selected(self) -> None:
        row = self.selected()
        if row is None:
            return
        if self.is_archived(row):
            self.restore_item(row)
        else:
            self.archive_item(row)

    def after_change(self, item_id: int) -> None:
        self.reload(select_id=item_id)
        self.changed.emit()
