"""A table model over frozen snapshots, with its own fast sort and filter.

QSortFilterProxyModel calls back into Python for every comparison, which is
too slow for 10,000 rows; sorting and filtering Python lists here keeps the
Clients screen instant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

R = TypeVar("R")
AnyIndex = QModelIndex | QPersistentModelIndex

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
ROW_ROLE = Qt.ItemDataRole.UserRole + 2


@dataclass(frozen=True)
class Column(Generic[R]):
    title: str
    display: Callable[[R], str]
    sort_key: Callable[[R], Any] | None = None
    align_right: bool = False
    tooltip: Callable[[R], str] | None = None
    muted: Callable[[R], bool] | None = None


class SnapshotTableModel(QAbstractTableModel, Generic[R]):
    def __init__(self, columns: Sequence[Column[R]], haystack: Callable[[R], str], parent: Any = None):
        super().__init__(parent)
        self.columns = list(columns)
        self._haystack_of = haystack
        self._all: list[R] = []
        self._haystacks: list[str] = []
        self._visible: list[int] = []
        self._needle = ""
        self._sort: tuple[int, Qt.SortOrder] | None = None
        self._predicate: Callable[[R], bool] | None = None

    # --- data in ---
    def set_rows(self, rows: Sequence[R]) -> None:
        self.beginResetModel()
        self._all = list(rows)
        self._haystacks = [self._haystack_of(r).casefold() for r in self._all]
        self._recompute()
        self.endResetModel()

    def set_filter_text(self, text: str) -> None:
        needle = text.strip().casefold()
        if needle == self._needle:
            return
        self.beginResetModel()
        self._needle = needle
        self._recompute()
        self.endResetModel()

    def set_predicate(self, predicate: Callable[[R], bool] | None) -> None:
        self.beginResetModel()
        self._predicate = predicate
        self._recompute()
        self.endResetModel()

    def _recompute(self) -> None:
        needle, pred = self._needle, self._predicate
        self._visible = [i for i, h in enumerate(self._haystacks)
                         if (not needle or needle in h) and (pred is None or pred(self._all[i]))]
        if self._sort is not None:
            self._apply_sort(*self._sort)

    def _apply_sort(self, column: int, order: Qt.SortOrder) -> None:
        col = self.columns[column]
        key = col.sort_key or col.display
        rows = self._all
        self._visible.sort(key=lambda i: key(rows[i]), reverse=order == Qt.SortOrder.DescendingOrder)

    # --- QAbstractTableModel ---
    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._visible)

    def columnCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.columns)

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self._all[self._visible[index.row()]]
        col = self.columns[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return col.display(row)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            if col.align_right:
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            return int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole and col.tooltip is not None:
            return col.tooltip(row)
        if role == Qt.ItemDataRole.ForegroundRole and col.muted is not None and col.muted(row):
            from PySide6.QtGui import QColor

            return QColor("#8a8f98")
        if role == SORT_ROLE:
            return (col.sort_key or col.display)(row)
        if role == ROW_ROLE:
            return row
        return None

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.columns[section].title
        if role == Qt.ItemDataRole.TextAlignmentRole and orientation == Qt.Orientation.Horizontal:
            if self.columns[section].align_right:
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        self.layoutAboutToBeChanged.emit()
        self._sort = (column, order)
        self._apply_sort(column, order)
        self.layoutChanged.emit()

    # --- lookups ---
    def row_at(self, row: int) -> R:
        return self._all[self._visible[row]]

    def visible_rows(self) -> list[R]:
        return [self._all[i] for i in self._visible]

    def total_count(self) -> int:
        return len(self._all)

    def find_row(self, predicate: Callable[[R], bool]) -> int:
        for n, i in enumerate(self._visible):
            if predicate(self._all[i]):
                return n
        return -1
