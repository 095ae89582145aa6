"""Agreements: every recurring agreement, with its client, terms and value."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QMessageBox, QPushButton, QWidget
from sqlalchemy.orm import Session

from mspbill.agreements import (
    AgreementRow,
    archive_agreement,
    list_agreements,
    restore_agreement,
)
from mspbill.money import format_amount
from ui.agreement_dialog import AgreementDialog
from ui.import_dialog import ImportDialog
from ui.list_screen import ListScreen
from ui.ops import Ops
from ui.table import Column

AGREEMENT_COLUMNS: list[Column[AgreementRow]] = [
    Column("Client", lambda r: r.client_name, lambda r: (r.client_name.casefold(), r.name.casefold()),
           muted=lambda r: r.status == "archived"),
    Column("Agreement", lambda r: r.name, lambda r: r.name.casefold()),
    Column("Bills", lambda r: r.frequency.capitalize(), lambda r: r.frequency),
    Column("Starts", lambda r: r.start_date.isoformat(), lambda r: r.start_date),
    Column("Ends", lambda r: r.end_date.isoformat() if r.end_date else "—",
           lambda r: r.end_date.isoformat() if r.end_date else "9999"),
    Column("Lines", lambda r: str(r.line_count), lambda r: r.line_count, align_right=True),
    Column("Per period", lambda r: format_amount(r.period_amount_cents, r.currency),
           lambda r: r.period_amount_cents, align_right=True),
    Column("Monthly value", lambda r: format_amount(r.monthly_value_cents, r.currency),
           lambda r: r.monthly_value_cents, align_right=True),
    Column("Status", lambda r: "Archived" if r.status == "archived" else "Active", lambda r: r.status),
]


class AgreementsScreen(ListScreen[AgreementRow]):
    title = "Agreements"
    noun = ("agreement", "agreements")
    new_label = "New agreement…"
    search_placeholder = "Search by client or agreement"
    column_widths = (240, 200, 80, 90, 90, 50, 110, 110, 70)

    def __init__(self, ops: Ops, parent: QWidget | None = None):
        super().__init__(ops, AGREEMENT_COLUMNS, parent)
        # Import… next to "New agreement…" (the heading row of the shared list layout).
        layout = self.layout()
        first = layout.itemAt(0) if layout is not None else None
        top = first.layout() if first is not None else None
        assert isinstance(top, QHBoxLayout)
        self.import_button = QPushButton("Import…")
        self.import_button.setToolTip("Import agreements and their lines from a CSV file")
        self.import_button.clicked.connect(lambda: self.import_csv())
        top.insertWidget(top.indexOf(self.new_button), self.import_button)

    def import_csv(self) -> ImportDialog:
        dialog = ImportDialog(self.ops, "agreements", self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.imported.connect(self._after_import)
        dialog.open()
        return dialog

    def _after_import(self, _result: object) -> None:
        self.reload()
        self.changed.emit()

    def haystack(self, row: AgreementRow) -> str:
        return f"{row.client_name}\n{row.name}"

    def fetch(self, session: Session, include_archived: bool) -> list[AgreementRow]:
        return list_agreements(session, include_archived=include_archived)

    def new_item(self, client_id: int | None = None) -> AgreementDialog:
        dialog = AgreementDialog(self.ops, self, client_id=client_id)
        dialog.saved.connect(self.after_change)
        dialog.open()
        return dialog

    def edit_item(self, row: AgreementRow) -> AgreementDialog:
        dialog = AgreementDialog(self.ops, self, agreement_id=row.id)
        dialog.saved.connect(self.after_change)
        dialog.open()
        return dialog

    def restore_item(self, row: AgreementRow) -> None:
        self.ops.write(self, lambda s: restore_agreement(s, row.id).id, self.after_change,
                       label="Restoring agreement")

    def archive_item(self, row: AgreementRow) -> None:
        answer = QMessageBox.question(
            self, "Archive agreement",
            f"Archive “{row.name}” for {row.client_name}?\n\nIt will not be billed while archived. "
            "Nothing is deleted; you can restore it at any time (Show archived).",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel)
        if answer == QMessageBox.StandardButton.Yes:
            self.ops.write(self, lambda s: archive_agreement(s, row.id).id, self.after_change,
                           label="Archiving agreement")
