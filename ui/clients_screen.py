"""Clients: a sortable, filterable list; new, edit, archive and restore; a client's statement.
"Pays by" names the card or bank account autopay charges, from one grouped query."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QHBoxLayout, QMenu, QMessageBox, QPushButton, QWidget
from sqlalchemy.orm import Session

from mspbill.clients import (
    ClientRow,
    archive_client,
    client_detail,
    list_clients,
    restore_client,
)
from mspbill.money import format_amount
from mspbill.payments.methods import default_method_labels
from mspbill.payments.processor import office_mode
from ui.client_dialog import ClientDialog
from ui.import_dialog import ImportDialog, export_clients
from ui.list_screen import ListScreen
from ui.ops import Ops
from ui.statement_dialog import StatementDialog
from ui.table import Column


class ClientRows(list[ClientRow]):
    """The rows, with each client's default payment method in the office's mode (None: no processor)."""

    method_labels: dict[int, str] | None = None


def pays_by(row: ClientRow, method_labels: dict[int, str] | None) -> str:
    """"Autopay · Visa ending 4242", "Autopay · no method", "Invoice"."""
    if not row.autopay:
        return "Invoice"
    if method_labels is None:
        return "Autopay"  # no processor: nothing to name
    return f"Autopay · {method_labels.get(row.id, 'no method')}"


CLIENT_COLUMNS: list[Column[ClientRow]] = [
    Column("Client", lambda r: r.legal_name, lambda r: r.legal_name.casefold(),
           muted=lambda r: r.status == "archived"),
    Column("Billing e-mail", lambda r: r.primary_email, lambda r: r.primary_email.casefold(),
           tooltip=lambda r: r.billing_emails),
    Column("City", lambda r: f"{r.city}, {r.region}" if r.region else r.city, lambda r: r.city.casefold()),
    # "Pays by" is added per screen: it reads the screen's method labels.
    Column("Agreements", lambda r: str(r.agreement_count), lambda r: r.agreement_count, align_right=True),
    Column("Monthly value", lambda r: format_amount(r.monthly_value_cents, r.currency),
           lambda r: r.monthly_value_cents, align_right=True),
    # Client credit on account, applied to the next invoice issued; blank when there is none.
    Column("Credit", lambda r: format_amount(r.credit_cents, r.currency) if r.credit_cents else "",
           lambda r: r.credit_cents, align_right=True,
           tooltip=lambda r: "Client credit, applied to the next invoice issued" if r.credit_cents else ""),
    Column("Status", lambda r: "Archived" if r.status == "archived" else "Active", lambda r: r.status),
]


class ClientsScreen(ListScreen[ClientRow]):
    title = "Clients"
    noun = ("client", "clients")
    new_label = "New client…"
    search_placeholder = "Search by name, e-mail or city"
    # The client's name takes what is left (at least ~150 px in a 1280 px window); "Pays by" shows
    # "Autopay · Visa ending 4242" whole, a long bank name elided with the whole text on hover.
    column_widths = (260, 185, 115, 230, 85, 100, 80, 70)

    def __init__(self, ops: Ops, company_defaults: Callable[[], tuple[str, int]] = lambda: ("USD", 30),
                 parent: QWidget | None = None):
        self.company_defaults = company_defaults
        self.statement_button: QPushButton | None = None
        self.method_labels: dict[int, str] | None = None
        pays_by_column: Column[ClientRow] = Column(
            "Pays by", lambda r: pays_by(r, self.method_labels), lambda r: (r.autopay, pays_by(r, self.method_labels)),
            tooltip=lambda r: pays_by(r, self.method_labels) if r.autopay else "Pays by invoice")
        columns = [*CLIENT_COLUMNS[:3], pays_by_column, *CLIENT_COLUMNS[3:]]
        super().__init__(ops, columns, parent)
        self.statement_button = QPushButton("Statement…")
        self.statement_button.setToolTip("A statement of account for the selected client, to print or save")
        self.statement_button.clicked.connect(lambda: self.statement_selected())
        bar = self._bar_of(self.edit_button)
        bar.insertWidget(bar.indexOf(self.edit_button), self.statement_button)
        # Import… and Export… next to "New client…" (ui/import_dialog.py).
        top = self._bar_of(self.new_button)
        self.import_button = QPushButton("Import…")
        self.import_button.setToolTip("Import clients from a CSV file (PSA, QuickBooks or spreadsheet export)")
        self.import_button.clicked.connect(lambda: self.import_csv())
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("Save the clients as a CSV file (the columns Import… reads back)")
        self.export_button.clicked.connect(lambda: export_clients(self, self.ops))
        top.insertWidget(top.indexOf(self.new_button), self.import_button)
        top.insertWidget(top.indexOf(self.new_button), self.export_button)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self._update_buttons()

    def _bar_of(self, button: QWidget) -> QHBoxLayout:
        """The row of the shared list layout that holds `button` (Edit…, Archive)."""
        layout = self.layout()
        for i in range(layout.count()):
            row = layout.itemAt(i).layout()
            if isinstance(row, QHBoxLayout) and row.indexOf(button) >= 0:
                return row
        raise LookupError("the list screen has no row with that button")

    def _update_buttons(self, *args: object) -> None:
        super()._update_buttons(*args)
        if self.statement_button is not None:
            self.statement_button.setEnabled(self.selected() is not None)

    # --- import ---
    def import_csv(self) -> ImportDialog:
        dialog = ImportDialog(self.ops, "clients", self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.imported.connect(self._after_import)
        dialog.open()
        return dialog

    def _after_import(self, _result: object) -> None:
        self.reload()
        self.changed.emit()

    # --- statement ---
    def statement_selected(self) -> StatementDialog | None:
        row = self.selected()
        if row is None:
            return None
        dialog = StatementDialog(self.ops, row.id, row.legal_name, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def _context_menu(self, pos: QPoint) -> QMenu | None:
        index = self.table.indexAt(pos)
        if not index.isValid():
            return None
        self.table.selectRow(index.row())
        menu = self.context_menu()
        menu.popup(self.table.viewport().mapToGlobal(pos))
        return menu

    def context_menu(self) -> QMenu:
        menu = QMenu(self)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        buttons = (self.edit_button, self.statement_button, None, self.archive_button)
        for button in buttons:
            if button is None:
                menu.addSeparator()
                continue
            action = menu.addAction(button.text())
            action.setEnabled(button.isEnabled())
            action.triggered.connect(button.click)
        menu.setDefaultAction(menu.actions()[0])
        return menu

    def haystack(self, row: ClientRow) -> str:
        return f"{row.legal_name}\n{row.billing_emails}\n{row.city}"

    def fetch(self, session: Session, include_archived: bool) -> list[ClientRow]:
        rows = ClientRows(list_clients(session, include_archived=include_archived))
        mode = office_mode(session)  # on the worker: for Stripe it may ask the keyring
        rows.method_labels = default_method_labels(session, mode) if mode is not None else None
        return rows

    def _loaded(self, rows: list[ClientRow], select_id: int | None) -> None:
        self.method_labels = getattr(rows, "method_labels", None)
        super()._loaded(rows, select_id)

    def new_item(self) -> ClientDialog:
        currency, terms = self.company_defaults()
        dialog = ClientDialog(self.ops, self, default_currency=currency, default_terms=terms)
        dialog.saved.connect(self.after_change)
        dialog.open()
        return dialog

    def edit_item(self, row: ClientRow) -> ClientDialog:
        dialog = ClientDialog(self.ops, self, client_id=row.id)
        dialog.saved.connect(self.after_change)
        dialog.payment_methods_changed.connect(self.after_change)
        dialog.open()
        return dialog

    def restore_item(self, row: ClientRow) -> None:
        self.ops.write(self, lambda s: restore_client(s, row.id).id, self.after_change, label="Restoring client")

    def archive_item(self, row: ClientRow) -> None:
        self.ops.read(self, lambda s: client_detail(s, row.id).active_agreement_count,
                      lambda n: self._confirm_archive(row, n))

    def _confirm_archive(self, row: ClientRow, active_agreements: int) -> None:
        text = f"Archive {row.legal_name}?"
        if active_agreements:
            text += (f"\n\nThey have {active_agreements} active agreement"
                     f"{'s' if active_agreements > 1 else ''}, which will not be billed while the "
                     "client is archived.")
        text += "\n\nNothing is deleted; you can restore the client at any time (Show archived)."
        answer = QMessageBox.question(self, "Archive client", text,
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
                                      QMessageBox.StandardButton.Cancel)
        if answer == QMessageBox.StandardButton.Yes:
            self.ops.write(self, lambda s: archive_client(s, row.id).id, self.after_change,
                           label="Archiving client")
