"""The Dashboard, the Settings screen and the pages for areas still to come."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFormLayout,
    QFrame,
    QGridLayout,
    QLabel,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mspbill.clients import monthly_value_by_client
from mspbill.company import get_company
from mspbill.context import AppContext
from mspbill.db.models import (
    Agreement,
    AgreementStatus,
    Client,
    ClientCredit,
    ClientStatus,
    Invoice,
    InvoiceStatus,
)
from mspbill.invoicing import balance_sql
from mspbill.money import format_amount
from ui.company_form import CompanyForm
from ui.mail_settings_form import MailSettingsForm
from ui.ops import Ops
from ui.payment_settings_form import PaymentSettingsForm
from ui.widgets import heading


@dataclass(frozen=True)
class DashboardFigures:
    active_clients: int
    autopay_clients: int
    active_agreements: int
    monthly_recurring_cents: int
    currency: str
    unpaid_cents: int = 0
    unpaid_count: int = 0
    overdue_cents: int = 0
    overdue_count: int = 0
    draft_count: int = 0
    client_credit_cents: int = 0


def dashboard_figures(session: Session) -> DashboardFigures:
    active = Client.status == ClientStatus.ACTIVE
    clients = session.scalar(select(func.count(Client.id)).where(active)) or 0
    autopay = session.scalar(select(func.count(Client.id)).where(active, Client.autopay.is_(True))) or 0
    agreements = session.scalar(
        select(func.count(Agreement.id)).join(Client)
        .where(Agreement.status == AgreementStatus.ACTIVE, active)) or 0
    active_ids = set(session.scalars(select(Client.id).where(active)))
    mrr = sum(v for cid, v in monthly_value_by_client(session).items() if cid in active_ids)
    company = get_company(session)
    currency = company.currency if company else "USD"
    today = dt.date.today()
    balance = balance_sql()
    is_open = (Invoice.status == InvoiceStatus.OPEN, Invoice.currency == currency)
    unpaid_cents, unpaid_count = session.execute(
        select(func.coalesce(func.sum(balance), 0), func.count(Invoice.id)).where(*is_open)).one()
    overdue_cents, overdue_count = session.execute(
        select(func.coalesce(func.sum(balance), 0), func.count(Invoice.id))
        .where(*is_open, Invoice.due_date < today)).one()
    drafts = session.scalar(select(func.count(Invoice.id)).where(Invoice.status == InvoiceStatus.DRAFT)) or 0
    credit = session.scalar(select(func.coalesce(func.sum(ClientCredit.amount_cents), 0))) or 0
    return DashboardFigures(clients, autopay, agreements, mrr, currency, int(unpaid_cents), unpaid_count,
                            int(overdue_cents), overdue_count, drafts, int(credit))


class Card(QFrame):
    def __init__(self, title: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("card")
        self.setStyleSheet("#card { background: palette(base); border: 1px solid #d0d4da; border-radius: 8px; }")
        layout = QVBoxLayout(self)
        self.title = QLabel(title)
        self.title.setStyleSheet("color: #5f6368; font-size: 12px;")
        self.value = QLabel("…")
        self.value.setStyleSheet("font-size: 26px; font-weight: 600;")
        self.note = QLabel()
        self.note.setStyleSheet("color: #5f6368; font-size: 11px;")
        layout.addWidget(self.title)
        layout.addWidget(self.value)
        layout.addWidget(self.note)


class DashboardScreen(QWidget):
    def __init__(self, ops: Ops, parent: QWidget | None = None):
        super().__init__(parent)
        self.ops = ops
        layout = QVBoxLayout(self)
        layout.addWidget(heading("Dashboard"))
        grid = QGridLayout()
        self.clients = Card("Active clients")
        self.autopay = Card("On autopay")
        self.agreements = Card("Active agreements")
        self.mrr = Card("Monthly recurring revenue")
        self.unpaid = Card("Unpaid invoices")
        self.overdue = Card("Overdue")
        self.drafts = Card("Drafts to issue")
        self.credit = Card("Client credit held")
        for i, card in enumerate((self.clients, self.autopay, self.agreements, self.mrr)):
            grid.addWidget(card, 0, i)
        for i, card in enumerate((self.unpaid, self.overdue, self.drafts, self.credit)):
            grid.addWidget(card, 1, i)
        layout.addLayout(grid)
        coming = QLabel(
            "Coming next on this page: A/R aging, failed charges to follow up, and the month-end "
            "batch's last result.")
        coming.setWordWrap(True)
        coming.setStyleSheet("color: #5f6368; margin-top: 16px;")
        layout.addWidget(coming)
        layout.addStretch()

    def reload(self) -> None:
        self.ops.read(self, dashboard_figures, self._show, label="Loading dashboard")

    def _show(self, f: DashboardFigures) -> None:
        self.clients.value.setText(f"{f.active_clients:,}")
        share = round(100 * f.autopay_clients / f.active_clients) if f.active_clients else 0
        self.autopay.value.setText(f"{f.autopay_clients:,}")
        self.autopay.note.setText(f"{share}% of active clients")
        self.agreements.value.setText(f"{f.active_agreements:,}")
        self.mrr.value.setText(format_amount(f.monthly_recurring_cents, f.currency))
        self.unpaid.value.setText(format_amount(f.unpaid_cents, f.currency))
        self.unpaid.note.setText(f"{f.unpaid_count:,} open invoice{'s' if f.unpaid_count != 1 else ''}")
        self.overdue.value.setText(format_amount(f.overdue_cents, f.currency))
        self.overdue.value.setStyleSheet("font-size: 26px; font-weight: 600;"
                                         + (" color: #b3261e;" if f.overdue_count else ""))
        self.overdue.note.setText(f"{f.overdue_count:,} invoice{'s' if f.overdue_count != 1 else ''} past due")
        self.drafts.value.setText(f"{f.draft_count:,}")
        self.drafts.note.setText("Invoices → Drafts, then Issue")
        self.credit.value.setText(format_amount(f.client_credit_cents, f.currency))
        self.credit.note.setText("applied to each client's next invoice")
        self.mrr.note.setText("quarterly and annual agreements spread per month")


class ComingScreen(QWidget):
    """An area the product will have; says plainly what it will do."""

    def __init__(self, title: str, text: str, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.addWidget(heading(title))
        body = QLabel(text)
        body.setWordWrap(True)
        body.setTextFormat(Qt.TextFormat.RichText)
        body.setStyleSheet("font-size: 13px;")
        layout.addWidget(body)
        layout.addStretch()


COMING = {
    "Reports": "<p>A/R aging, KPIs and exports for your accountant (QuickBooks, Xero, CSV).</p>"
               "<p><i>Coming after month-end.</i></p>",
}


class SettingsScreen(QWidget):
    TABS = ("Company", "Payments", "E-mail", "Data")

    def __init__(self, ops: Ops, ctx: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.addWidget(heading("Settings"))
        self.tabs = QTabWidget()
        self.company = CompanyForm(ops)
        self.tabs.addTab(self.company, "Company")
        self.payments = PaymentSettingsForm(ops)
        self.tabs.addTab(self.payments, "Payments")
        self.mail = MailSettingsForm(ops)
        self.tabs.addTab(self.mail, "E-mail")
        data = QWidget()
        form = QFormLayout(data)
        for label, value in (("Database", ctx.db.describe()), ("Backups", str(ctx.paths.backup_dir)),
                             ("Settings file", str(ctx.paths.settings_file)), ("Log", str(ctx.paths.log_file))):
            v = QLabel(value)
            v.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            form.addRow(label, v)
        self.tabs.addTab(data, "Data")
        # The e-mail and payment tabs ask the keyring when opened, not every time Settings is.
        self._mail_stale = True
        self._payments_stale = True
        self.tabs.currentChanged.connect(lambda _i: self._load_current())
        layout.addWidget(self.tabs)

    def show_tab(self, name: str) -> None:
        self.tabs.setCurrentIndex(self.TABS.index(name))

    def reload(self) -> None:
        self.company.load()
        self._mail_stale = True
        self._payments_stale = True
        self._load_current()

    def _load_current(self) -> None:
        if self.tabs.currentWidget() is self.mail and self._mail_stale:
            self._mail_stale = False
            self.mail.load()
        elif self.tabs.currentWidget() is self.payments and self._payments_stale:
            self._payments_stale = False
            self.payments.load()
