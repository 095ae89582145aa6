"""Import clients or agreements from a CSV file: a four-step dialog.

1. File: choose it; the dialog says how it was read (encoding, separator, rows), or why not.
2. Columns: each field of the import against a column of the file, guessed from the
   header; required fields marked; a few of the column's values shown.
3. Preview: what each row will do (create, update, skip, error, with the reason) under
   the chosen treatment of duplicates (and, for agreements, the date order), with totals.
   Import stays disabled while any row has an error: nothing is half-imported.
4. Done: what was imported.

Reading the file, the preview and the import itself run through Ops (house rule 2);
what crosses threads is the read file (CsvTable) and frozen plans, never ORM objects.
The import plans again in its own write transaction and commits all or nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from mspbill.imports import plan_import, run_import
from mspbill.imports.export import export_clients_csv
from mspbill.imports.mapping import ColumnMapping, fields_for, guess_mapping
from mspbill.imports.plan import (
    ACTION_LABELS,
    DUPLICATE_CHOICES,
    ERROR,
    ImportOptions,
    ImportPlan,
    ImportRefusedError,
    ImportResult,
    PlannedRow,
)
from mspbill.imports.reading import CsvTable, ImportFileError, read_csv_file
from ui.ops import OpContext, Ops
from ui.pdf_viewer import (
    default_folder,
    remember_folder,
    settings_for,
    write_atomically,
)
from ui.table import Column, SnapshotTableModel
from ui.widgets import MUTED_STYLE, heading, notice_label, show_notice, snapshot_table

NOT_IMPORTED = "— not imported —"
SAMPLE_COUNT = 3
STEP_TITLES = ("1. Choose the file", "2. Match the columns", "3. Check the preview", "4. Done")
ERROR_COLOR = QColor("#b3261e")
ACTION_COLORS = {"create": QColor("#0d652d"), "update": QColor("#174ea6"), "skip": QColor("#5f6368"),
                 "error": ERROR_COLOR}
DATE_ORDER_LABELS = {"auto": "Work it out from the file", "mdy": "Month first (US: 03/04 is March 4)",
                     "dmy": "Day first (03/04 is 3 April)"}


# --- the questions (tests replace these) ---------------------------------------------------

def ask_open_path(parent: QWidget | None, title: str, start: Path) -> Path | None:
    """The system's Open dialog; None when cancelled."""
    name, _ = QFileDialog.getOpenFileName(parent, title, str(start), "CSV files (*.csv *.txt);;All files (*)")
    return Path(name) if name else None


def ask_save_path(parent: QWidget | None, title: str, suggested: Path) -> Path | None:
    """The system's Save dialog; None when cancelled.  ".csv" is added when left out."""
    name, _ = QFileDialog.getSaveFileName(parent, title, str(suggested), "CSV files (*.csv)")
    if not name:
        return None
    path = Path(name)
    return path if path.suffix.lower() == ".csv" else path.with_name(path.name + ".csv")


# --- the preview table -----------------------------------------------------------------------

def row_details(row: PlannedRow) -> str:
    if row.problems:
        return "  ".join(p.sentence() if p.line != row.line else (f"{p.column}: " if p.column else "") + p.message
                         for p in row.problems)
    parts = [row.detail, row.reason, *row.notes]
    return "  ".join(p.rstrip(".") + "." for p in parts if p)


def _lines_text(row: PlannedRow) -> str:
    lines = row.lines or (row.line,)
    return str(lines[0]) if len(lines) == 1 else f"{lines[0]} (+{len(lines) - 1})"


PREVIEW_COLUMNS: list[Column[PlannedRow]] = [
    Column("Line", _lines_text, lambda r: r.line, align_right=True,
           tooltip=lambda r: "Lines " + ", ".join(str(n) for n in r.lines) if len(r.lines) > 1 else ""),
    Column("Action", lambda r: ACTION_LABELS[r.action], lambda r: (r.action != ERROR, r.action)),
    Column("Name", lambda r: r.name, lambda r: r.name.casefold(), tooltip=lambda r: r.name),
    Column("Details", row_details, tooltip=lambda r: "\n".join(
        [p.sentence() for p in r.problems] or [x for x in (r.detail, r.reason, *r.notes) if x])),
]


class PreviewModel(SnapshotTableModel[PlannedRow]):
    """The plan's rows; the action in its colour, rows in error in red."""

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.ForegroundRole and index.isValid():
            row = self.row_at(index.row())
            if index.column() == 1 or row.action == ERROR:
                return ACTION_COLORS[row.action]
        if role == Qt.ItemDataRole.FontRole and index.isValid() and index.column() == 1:
            font = QFont()
            font.setBold(True)
            return font
        return super().data(index, role)


# --- the dialog ------------------------------------------------------------------------------

class ImportDialog(QDialog):
    imported = Signal(object)  # ImportResult

    def __init__(self, ops: Ops, kind: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.ops = ops
        self.kind = kind
        self.noun = "clients" if kind == "clients" else "agreements"
        self.fields = fields_for(kind)
        self.settings = settings_for(parent)
        self.table_data: CsvTable | None = None
        self.plan: ImportPlan | None = None
        self.import_result: ImportResult | None = None
        self.busy = False
        self.committing = False   # the all-or-nothing import is under way: it cannot be stopped part-way
        self._plan_serial = 0
        self.setWindowTitle(f"Import {self.noun}")
        self.resize(920, 620)
        self._build()
        self._go(0)

    # --- building ---
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        self.step_title = heading("", 16)
        layout.addWidget(self.step_title)
        self.pages = QStackedWidget()
        self.pages.addWidget(self._file_page())
        self.pages.addWidget(self._mapping_page())
        self.pages.addWidget(self._preview_page())
        self.pages.addWidget(self._done_page())
        layout.addWidget(self.pages, 1)
        # Reading, checking and importing 10,000 rows takes seconds: show that something is happening.
        self.busy_bar = QProgressBar()
        self.busy_bar.setRange(0, 0)
        self.busy_bar.setTextVisible(False)
        self.busy_bar.setMaximumHeight(6)
        self.busy_bar.hide()
        layout.addWidget(self.busy_bar)

        buttons = QHBoxLayout()
        buttons.addStretch()
        self.back_button = QPushButton("Back")
        self.back_button.clicked.connect(lambda: self._go(self.pages.currentIndex() - 1))
        self.next_button = QPushButton("Next")
        self.next_button.clicked.connect(self._next)
        self.import_button = QPushButton(f"Import {self.noun}")
        self.import_button.clicked.connect(self.start_import)
        self.close_button = QPushButton("Cancel")
        self.close_button.clicked.connect(self.reject)
        for b in (self.back_button, self.next_button, self.import_button, self.close_button):
            buttons.addWidget(b)
        layout.addLayout(buttons)

    def _file_page(self) -> QWidget:
        page = QWidget()
        v = QVBoxLayout(page)
        if self.kind == "clients":
            intro = ("Import clients from a CSV file: an export from your PSA (ConnectWise, Autotask, HaloPSA…), "
                     "QuickBooks, or a spreadsheet saved as CSV. A client already in mspbill (same name or "
                     "billing e-mail) is skipped or updated, as you choose on the preview.")
        else:
            intro = ("Import agreements from a CSV file with one row per agreement line (client, agreement name, "
                     "frequency, start date, description, quantity, unit price). Rows with the same client and "
                     "agreement name become one agreement. The clients must already be in mspbill: import them "
                     "first.")
        text = QLabel(intro)
        text.setWordWrap(True)
        v.addWidget(text)
        row = QHBoxLayout()
        self.path_edit = QLineEdit()
        self.path_edit.setReadOnly(True)
        self.path_edit.setPlaceholderText("No file chosen")
        row.addWidget(self.path_edit, 1)
        self.choose_button = QPushButton("Choose file…")
        self.choose_button.clicked.connect(self.choose_file)
        row.addWidget(self.choose_button)
        v.addLayout(row)
        self.file_notice = notice_label()
        v.addWidget(self.file_notice)
        hint = QLabel("UTF-8 (with or without BOM) or Windows-1252; separated by commas or semicolons; "
                      "up to 50,000 rows or 20 MB per file. In Excel: File › Save As › “CSV UTF-8”.")
        hint.setWordWrap(True)
        hint.setStyleSheet(MUTED_STYLE)
        v.addWidget(hint)
        v.addStretch()
        return page

    def _mapping_page(self) -> QWidget:
        page = QWidget()
        v = QVBoxLayout(page)
        intro = QLabel("Each field of mspbill is read from the column shown; change any of them, or choose "
                       f"“{NOT_IMPORTED}”. Fields marked * are required.")
        intro.setWordWrap(True)
        v.addWidget(intro)
        self.mapping_table = QTableWidget(len(self.fields), 3)
        self.mapping_table.setHorizontalHeaderLabels(["Field", "Column in the file", "Values in that column"])
        self.mapping_table.verticalHeader().hide()
        self.mapping_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.mapping_table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.mapping_table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.mapping_table.setWordWrap(False)
        header = self.mapping_table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.mapping_table.setColumnWidth(1, 240)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.combos: dict[str, QComboBox] = {}
        for i, f in enumerate(self.fields):
            item = QTableWidgetItem(f"{f.label} *" if f.required else f.label)
            if f.required:
                font = item.font()
                font.setBold(True)
                item.setFont(font)
            if f.hint:
                item.setToolTip(f.hint[0].upper() + f.hint[1:])
            self.mapping_table.setItem(i, 0, item)
            combo = QComboBox()
            combo.currentIndexChanged.connect(lambda _i, key=f.key: self._mapping_changed(key))
            self.combos[f.key] = combo
            self.mapping_table.setCellWidget(i, 1, combo)
            self.mapping_table.setItem(i, 2, QTableWidgetItem(""))
        v.addWidget(self.mapping_table, 1)
        self.mapping_notice = notice_label()
        v.addWidget(self.mapping_notice)
        return page

    def _preview_page(self) -> QWidget:
        page = QWidget()
        v = QVBoxLayout(page)
        form = QFormLayout()
        self.duplicates = QComboBox()
        for key, label in DUPLICATE_CHOICES.items():
            self.duplicates.addItem(label, key)
        self.duplicates.currentIndexChanged.connect(lambda _i: self.refresh_preview())
        what = "a client already in mspbill" if self.kind == "clients" else "an agreement already in mspbill"
        form.addRow(f"Rows matching {what}:", self.duplicates)
        self.date_order = QComboBox()
        for key, label in DATE_ORDER_LABELS.items():
            self.date_order.addItem(label, key)
        self.date_order.currentIndexChanged.connect(lambda _i: self.refresh_preview())
        if self.kind == "agreements":
            form.addRow("Dates such as 03/04/2026:", self.date_order)
        else:
            self.date_order.hide()
        v.addLayout(form)
        self.summary = notice_label()
        v.addWidget(self.summary)
        self.errors_only = QCheckBox("Show only rows with errors")
        self.errors_only.toggled.connect(self._filter_changed)
        v.addWidget(self.errors_only)
        self.preview_model = PreviewModel(PREVIEW_COLUMNS, lambda r: f"{r.name}\n{row_details(r)}", self)
        self.preview_table = snapshot_table(self.preview_model, (70, 70, 240, 400), 3)
        self.preview_table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.preview_table.selectionModel().selectionChanged.connect(lambda *_: self._show_row_details())
        v.addWidget(self.preview_table, 1)
        # The whole of the selected row's problems (the table cell shows the beginning).
        self.row_details = QLabel()
        self.row_details.setWordWrap(True)
        self.row_details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.row_details.setMinimumHeight(40)
        self.row_details.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        v.addWidget(self.row_details)
        return page

    def _done_page(self) -> QWidget:
        page = QWidget()
        v = QVBoxLayout(page)
        self.done_notice = notice_label()
        v.addWidget(self.done_notice)
        v.addStretch()
        return page

    # --- navigation ---
    def _go(self, index: int) -> None:
        index = max(0, min(index, self.pages.count() - 1))
        self.pages.setCurrentIndex(index)
        self.step_title.setText(STEP_TITLES[index])
        if index == 2:
            self.refresh_preview()
        self._update_buttons()

    def _next(self) -> None:
        self._go(self.pages.currentIndex() + 1)

    def _update_buttons(self) -> None:
        index = self.pages.currentIndex()
        done = index == 3
        self.back_button.setVisible(0 < index < 3)
        self.back_button.setEnabled(not self.busy)
        self.next_button.setVisible(index < 2)
        if index == 0:
            self.next_button.setEnabled(self.table_data is not None and not self.busy)
        elif index == 1:
            self.next_button.setEnabled(not self._missing_required())
        self.import_button.setVisible(index == 2)
        plan = self.plan
        can_import = (plan is not None and plan.ok and not self.busy
                      and plan.counts["create"] + plan.counts["update"] > 0)
        self.import_button.setEnabled(can_import)
        self.close_button.setText("Close" if done else "Cancel")
        self.close_button.setEnabled(not self.committing)
        self.close_button.setToolTip("The import is under way; it is all or nothing and finishes in a moment."
                                     if self.committing else "")
        self.busy_bar.setVisible(self.busy)
        self.choose_button.setEnabled(not self.busy)

    # --- step 1: the file ---
    def choose_file(self) -> None:
        path = ask_open_path(self, f"Import {self.noun} from a CSV file", default_folder(self.settings))
        if path is not None:
            self.load_file(path)

    def load_file(self, path: Path) -> None:
        self.path_edit.setText(str(path))
        self.busy = True
        self.table_data = None
        self.plan = None
        show_notice(self.file_notice, f"Reading {path.name}…", "info")
        self._update_buttons()

        def failed(exc: BaseException) -> bool:
            self.busy = False
            if isinstance(exc, ImportFileError):
                show_notice(self.file_notice, str(exc), "error")
                self._update_buttons()
                return True
            show_notice(self.file_notice, "", "error")
            self._update_buttons()
            return False

        self.ops.run(self, lambda _ctx: read_csv_file(path), on_success=self._file_read, on_failure=failed,
                     label="Reading the import file")

    def _file_read(self, table: CsvTable) -> None:
        self.busy = False
        self.table_data = table
        if self.settings is not None:
            remember_folder(self.settings, Path(self.path_edit.text()).parent)
        text = f"{table.file_name}: {table.describe()}."
        kind = "ok"
        if table.notices:
            text += "\n" + "\n".join(table.notices)
            kind = "warn"
        show_notice(self.file_notice, text, kind)
        self._fill_mapping(guess_mapping(self.kind, table.headers, table))
        self._update_buttons()

    # --- step 2: the columns ---
    def _fill_mapping(self, mapping: ColumnMapping) -> None:
        table = self.table_data
        assert table is not None
        for key, combo in self.combos.items():
            combo.blockSignals(True)
            combo.clear()
            combo.addItem(NOT_IMPORTED, -1)
            for i, h in enumerate(table.headers):
                combo.addItem(h, i)
            combo.setCurrentIndex(mapping[key] + 1 if key in mapping else 0)
            combo.blockSignals(False)
            self._show_sample(key)
        self._check_mapping()

    def mapping(self) -> ColumnMapping:
        out: ColumnMapping = {}
        for key, combo in self.combos.items():
            col = combo.currentData()
            if isinstance(col, int) and col >= 0:
                out[key] = col
        return out

    def set_column(self, key: str, header: str | None) -> None:
        """Choose the column for a field by its header (None: not imported), as a person would."""
        combo = self.combos[key]
        combo.setCurrentIndex(0 if header is None else combo.findText(header))

    def _mapping_changed(self, key: str) -> None:
        self._show_sample(key)
        self.plan = None
        self._check_mapping()
        self._update_buttons()

    def _show_sample(self, key: str) -> None:
        row = [f.key for f in self.fields].index(key)
        col = self.combos[key].currentData()
        text = ""
        if self.table_data is not None and isinstance(col, int) and col >= 0:
            values = [" ".join(v.split()) for v in self.table_data.column_values(col, SAMPLE_COUNT)]
            text = " · ".join(v if len(v) <= 40 else v[:39] + "…" for v in values) or "(empty)"
        item = self.mapping_table.item(row, 2)
        if item is None:
            return
        item.setText(text)
        item.setForeground(QColor("#5f6368"))

    def _missing_required(self) -> list[str]:
        mapping = self.mapping()
        return [f.label for f in self.fields if f.required and f.key not in mapping]

    def _check_mapping(self) -> None:
        missing = self._missing_required()
        used: dict[int, list[str]] = {}
        for f in self.fields:
            col = self.mapping().get(f.key)
            if col is not None:
                used.setdefault(col, []).append(f.label)
        twice = [labels for labels in used.values() if len(labels) > 1]
        messages = []
        if missing:
            messages.append("Choose a column for " + ", ".join(f"“{m}”" for m in missing) + " (required).")
        for labels in twice:
            messages.append(f"One column feeds {' and '.join(labels)}; check that this is meant.")
        show_notice(self.mapping_notice, " ".join(messages), "error" if missing else "warn")

    # --- step 3: the preview ---
    def options(self) -> ImportOptions:
        return ImportOptions(duplicates=str(self.duplicates.currentData()),
                             date_order=str(self.date_order.currentData()))

    def refresh_preview(self) -> None:
        table = self.table_data
        if table is None or self.pages.currentIndex() != 2:
            return
        kind, mapping, options = self.kind, self.mapping(), self.options()
        self._plan_serial += 1
        serial = self._plan_serial
        self.busy = True
        self.plan = None
        show_notice(self.summary, f"Checking {len(table.records):,} rows…", "info")
        self._update_buttons()

        def done(plan: ImportPlan) -> None:
            if serial != self._plan_serial:
                return  # an older preview finishing after the options changed again
            self.busy = False
            self._show_plan(plan)

        def failed(_exc: BaseException) -> bool:
            self.busy = False
            self._update_buttons()
            return False

        self.ops.read(self, lambda s: plan_import(s, kind, table, mapping, options), done, on_failure=failed,
                      label="Checking the import")

    def _show_plan(self, plan: ImportPlan) -> None:
        self.plan = plan
        self.preview_model.set_rows(list(plan.rows))
        self._filter_changed(self.errors_only.isChecked())
        text = plan.summary()
        if plan.notices:
            text += "\n" + "\n".join(plan.notices)
        nothing = plan.ok and plan.counts["create"] + plan.counts["update"] == 0
        if nothing:
            text += " There is nothing to import."
        show_notice(self.summary, text, "error" if not plan.ok else "warn" if nothing else "ok")
        self.errors_only.setVisible(plan.count(ERROR) > 0)
        self._update_buttons()

    def _filter_changed(self, errors_only: bool) -> None:
        self.preview_model.set_predicate((lambda r: r.action == ERROR) if errors_only else None)
        # Start on the first row in error, so its whole sentence shows below the table.
        first_error = self.preview_model.find_row(lambda r: r.action == ERROR)
        if first_error >= 0:
            self.preview_table.selectRow(first_error)
        self._show_row_details()

    def _show_row_details(self) -> None:
        indexes = self.preview_table.selectionModel().selectedRows()
        if not indexes:
            self.row_details.setText("")
            return
        row = self.preview_model.row_at(indexes[0].row())
        lines = [p.sentence() for p in row.problems] or [x for x in (row.detail, row.reason, *row.notes) if x]
        self.row_details.setStyleSheet(f"color: {ERROR_COLOR.name()};" if row.problems else MUTED_STYLE)
        self.row_details.setText("\n".join(lines))

    # --- step 4: the import ---
    def start_import(self) -> None:
        table, plan = self.table_data, self.plan
        if table is None or plan is None or not plan.ok:
            return
        kind, mapping, options = self.kind, self.mapping(), self.options()
        self.busy = True
        self.committing = True
        show_notice(self.summary, f"Importing {self.noun}… (all or nothing: this finishes before the window "
                                  "can close)", "info")
        self._update_buttons()

        def work(ctx: OpContext) -> ImportResult:
            with ctx.db.write_session() as session, session.begin():
                return run_import(session, kind, table, mapping, options)

        def failed(exc: BaseException) -> bool:
            self.busy = False
            self.committing = False
            if isinstance(exc, ImportRefusedError):
                # Something changed since the preview (another window added a client, say).
                self._show_plan(exc.plan)
                return True
            self._update_buttons()
            return False

        self.ops.run(self, work, on_success=self._imported, on_failure=failed, label=f"Importing {self.noun}")

    def reject(self) -> None:
        # Escape, the window's close button or Cancel: not while the import is being written, or the
        # clients would appear with nobody told (the import finishes either way).
        if self.committing:
            return
        super().reject()

    def _imported(self, result: ImportResult) -> None:
        self.busy = False
        self.committing = False
        self.import_result = result
        show_notice(self.done_notice, result.summary() + " The import is recorded in the audit trail.", "ok")
        self._go(3)
        self.imported.emit(result)


def export_clients(parent: QWidget, ops: Ops) -> None:
    """"Export clients…": the clients as CSV (the columns the import reads), saved where the person says."""
    settings = settings_for(parent)
    path = ask_save_path(parent, "Export clients", default_folder(settings) / "clients.csv")
    if path is None:
        return

    def work(ctx: OpContext) -> Path:
        with ctx.db.session() as session:
            data = export_clients_csv(session)
        write_atomically(path, data)
        return path

    def saved(_path: Path) -> None:
        remember_folder(settings, path.parent)

    def failed(exc: BaseException) -> bool:
        if isinstance(exc, OSError):
            QMessageBox.warning(parent, "Export clients",
                                f"Could not save {path}: {exc.strerror or exc}. Nothing was written.")
            return True
        return False

    ops.run(parent, work, on_success=saved, on_failure=failed, label="Exporting clients")
