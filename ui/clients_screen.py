"""Clients: a sortable, filterable list; new, edit, archive and restore."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QMessageBox, QWidget
from sqlalchemy.orm import Session

from mspbill.clients import (
    ClientRow,
    archive_client,
    client_detail,
    list_clients,
    restore_client,
)
from mspbill.money import format_amount
from ui.client_dialog import ClientDialog
from ui.list_screen import ListScreen
from ui.ops import Ops
from ui.table import Column

CLIENT_COLUMNS: list[Column[ClientRow]] = [
    Column("Client", lambda r: r.legal_name, lambda r: r.legal_name.casefold(),
           muted=lambda r: r.status == "archived"),
    Column("Billing e-mail", lambda r: r.primary_email, lambda r: r.primary_email.casefold(),
           tooltip=lambda r: r.billing_emails),
    Column("City", lambda r: f"{r.city}, {r.region}" if r.region else r.city, lambda r: r.city.casefold()),
    Column("Pays by", lambda r: "Autopay" if r.autopay else "Invoice", lambda r: r.autopay),
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
    column_widths = (280, 240, 150, 80, 90, 120, 100, 80)

    def __init__(self, ops: Ops, company_defaults: Callable[[], tuple[str, int]] = lambda: ("USD", 30),
                 parent: QWidget | None = None):
        self.company_defaults = company_defaults
        super().__init__(ops, CLIENT_COLUMNS, parent)

    def haystack(self, row: ClientRow) -> str:
        return f"{row.legal_name}\n{row.billing_emails}\n{row.city}"

    def fetch(self, session: Session, include_archived: bool) -> list[ClientRow]:
        return list_clients(session, include_archived=include_archived)

    def new_item(self) -> ClientDialog:
        currency, terms = self.company_defaults()
        dialog = ClientDialog(self.ops, self, default_currency=currency, default_terms=terms)
        dialog.saved.connect(self.after_change)
        dialog.open()
        return dialog

    def edit_item(self, row: ClientRow) -> ClientDialog:
        dialog = ClientDialog(self.ops, self, client_id=row.id)
        dialog.saved.connect(self.after_change)
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
