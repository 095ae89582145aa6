"""The Settings screen and the pages for areas still to come (the Dashboard is ui/dashboard_screen.py)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QLabel,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from mspbill.context import AppContext
from ui.collections_settings_form import CollectionsSettingsForm
from ui.company_form import CompanyForm
from ui.data_settings_form import DataSettingsForm
from ui.mail_settings_form import MailSettingsForm
from ui.ops import Ops
from ui.payment_settings_form import PaymentSettingsForm
from ui.widgets import heading


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


COMING: dict[str, str] = {}  # areas still to come: name → what they will do (none at the moment)


class SettingsScreen(QWidget):
    TABS = ("Company", "Payments", "E-mail", "Collections", "Data")

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
        self.collections = CollectionsSettingsForm(ops)
        self.tabs.addTab(self.collections, "Collections")
        self.data = DataSettingsForm(ops, ctx)
        self.tabs.addTab(self.data, "Data")
        # The e-mail and payment tabs ask the keyring when opened, not every time Settings is.
        self._mail_stale = True
        self._payments_stale = True
        self._collections_stale = True
        self.tabs.currentChanged.connect(lambda _i: self._load_current())
        layout.addWidget(self.tabs)

    def show_tab(self, name: str) -> None:
        self.tabs.setCurrentIndex(self.TABS.index(name))

    def reload(self) -> None:
        self.company.load()
        self._mail_stale = True
        self._payments_stale = True
        self._collections_stale = True
        self._load_current()

    def _load_current(self) -> None:
        if self.tabs.currentWidget() is self.mail and self._mail_stale:
            self._mail_stale = False
            self.mail.load()
        elif self.tabs.currentWidget() is self.payments and self._payments_stale:
            self._payments_stale = False
            self.payments.load()
        elif self.tabs.currentWidget() is self.collections and self._collections_stale:
            self._collections_stale = False
            self.collections.load()
        elif self.tabs.currentWidget() is self.data:
            self.data.load()
