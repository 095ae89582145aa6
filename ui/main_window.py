"""The main window: navigation on the left, one screen at a time on the right."""

from __future__ import annotations

import base64

from PySide6.QtCore import QSize, QUrl
from PySide6.QtGui import QAction, QCloseEvent, QDesktopServices, QKeySequence
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from mspbill import __version__
from mspbill.company import CompanySnapshot, company_snapshot
from mspbill.context import AppContext
from ui.agreements_screen import AgreementsScreen
from ui.clients_screen import ClientsScreen
from ui.invoices_screen import InvoicesScreen
from ui.ops import Ops
from ui.payments_screen import PaymentsScreen
from ui.screens import COMING, ComingScreen, DashboardScreen, SettingsScreen

NAV = ("Dashboard", "Clients", "Agreements", "Invoices", "Payments", "Month-end", "Reports", "Settings")
_ICONS = {
    "Dashboard": QStyle.StandardPixmap.SP_ComputerIcon,
    "Clients": QStyle.StandardPixmap.SP_DirHomeIcon,
    "Agreements": QStyle.StandardPixmap.SP_FileDialogDetailedView,
    "Invoices": QStyle.StandardPixmap.SP_FileIcon,
    "Payments": QStyle.StandardPixmap.SP_DialogApplyButton,
    "Month-end": QStyle.StandardPixmap.SP_MediaPlay,
    "Reports": QStyle.StandardPixmap.SP_FileDialogContentsView,
    "Settings": QStyle.StandardPixmap.SP_FileDialogInfoView,
}
GEOMETRY_KEY = "window.geometry"
SCREEN_KEY = "window.screen"


class MainWindow(QMainWindow):
    def __init__(self, ctx: AppContext, ops: Ops):
        super().__init__()
        self.ctx = ctx
        self.ops = ops
        self._company: CompanySnapshot | None = None
        self.setWindowTitle("mspbill")
        self.setMinimumSize(QSize(960, 600))

        self.nav = QListWidget()
        self.nav.setFixedWidth(180)
        self.nav.setIconSize(QSize(18, 18))
        self.nav.setStyleSheet("QListWidget { border: none; background: palette(window); font-size: 14px; }"
                               "QListWidget::item { padding: 8px 10px; }"
                               "QListWidget::item:selected { background: #1a73e8; color: white; "
                               "border-radius: 6px; }")
        for name in NAV:
            self.nav.addItem(QListWidgetItem(self.style().standardIcon(_ICONS[name]), name))

        self.dashboard = DashboardScreen(ops)
        self.clients = ClientsScreen(ops, self.company_defaults)
        self.agreements = AgreementsScreen(ops)
        self.invoices = InvoicesScreen(ops)
        self.payments = PaymentsScreen(ops)
        self.settings = SettingsScreen(ops, ctx)
        self.screens: dict[str, QWidget] = {
            "Dashboard": self.dashboard, "Clients": self.clients, "Agreements": self.agreements,
            "Invoices": self.invoices, "Payments": self.payments, "Settings": self.settings}
        self._lists = (self.clients, self.agreements, self.invoices, self.payments)
        for name, text in COMING.items():
            self.screens[name] = ComingScreen(name, text)
        self.stack = QStackedWidget()
        for name in NAV:
            self.stack.addWidget(self.screens[name])
        self.nav.currentRowChanged.connect(self._show_screen)

        self.demo_banner = QLabel("Demo office — sample data. Nothing here is real, and no money moves.")
        self.demo_banner.setStyleSheet("background: #fef7e0; color: #7a5900; padding: 6px 12px;")
        self.demo_banner.hide()

        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.setSpacing(0)
        rl.addWidget(self.demo_banner)
        body = QWidget()
        bl = QVBoxLayout(body)
        bl.setContentsMargins(16, 12, 16, 12)
        bl.addWidget(self.stack)
        rl.addWidget(body, 1)
        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(8, 8, 0, 0)
        layout.addWidget(self.nav)
        layout.addWidget(right, 1)
        self.setCentralWidget(central)

        self.busy_label = QLabel()
        self.statusBar().addPermanentWidget(self.busy_label)
        self.statusBar().showMessage(f"Database: {ctx.db.describe()}")
        ops.busy_changed.connect(lambda busy: self.busy_label.setText("Working…" if busy else ""))

        for screen in self._lists:
            screen.changed.connect(self._data_changed)
        self.payments.open_invoice.connect(self.invoices.open_invoice)
        self.settings.company.saved.connect(self.reload_company)
        self._build_menus()
        self.restore_geometry()
        self.reload_company()
        start = self.ctx.settings.get(SCREEN_KEY, "Dashboard")
        self.nav.setCurrentRow(NAV.index(start) if start in NAV else 0)

    # --- menus ---
    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        new_client = QAction("New &client…", self)
        new_client.setShortcut(QKeySequence("Ctrl+N"))
        new_client.triggered.connect(lambda: self._new_in("Clients"))
        new_agreement = QAction("New &agreement…", self)
        new_agreement.triggered.connect(lambda: self._new_in("Agreements"))
        new_invoice = QAction("New one-time &invoice…", self)
        new_invoice.triggered.connect(lambda: self._new_in("Invoices"))
        generate = QAction("&Generate period…", self)
        generate.setShortcut(QKeySequence("Ctrl+G"))
        generate.triggered.connect(self.generate_period)
        record = QAction("&Record payment…", self)
        record.triggered.connect(self.record_payment)
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        for a in (new_client, new_agreement, new_invoice, generate, record):
            file_menu.addAction(a)
        file_menu.addSeparator()
        file_menu.addAction(quit_action)
        go_menu = self.menuBar().addMenu("&Go")
        for i, name in enumerate(NAV):
            action = QAction(name, self)
            action.setShortcut(QKeySequence(f"Ctrl+{i + 1}"))
            action.triggered.connect(lambda _c=False, n=name: self.go(n))
            go_menu.addAction(action)
        help_menu = self.menuBar().addMenu("&Help")
        for label, path in (("Open data folder", self.ctx.paths.data_dir),
                            ("Open log folder", self.ctx.paths.log_dir)):
            action = QAction(label, self)
            action.triggered.connect(lambda _c=False, p=path: QDesktopServices.openUrl(QUrl.fromLocalFile(str(p))))
            help_menu.addAction(action)
        about = QAction("About mspbill", self)
        about.triggered.connect(lambda: QMessageBox.about(
            self, "About mspbill", f"mspbill {__version__}\nBilling for Managed Service Providers.\n\n"
                                   f"Database: {self.ctx.db.describe()}"))
        help_menu.addAction(about)

    def generate_period(self) -> None:
        self.go("Invoices")
        self.invoices.open_generate()

    def record_payment(self) -> None:
        self.go("Payments")
        self.payments.record_payment()

    def _new_in(self, name: str) -> None:
        self.go(name)
        if name == "Invoices":
            self.invoices.new_one_time()
        else:
            (self.clients if name == "Clients" else self.agreements).new_item()

    # --- navigation ---
    def go(self, name: str) -> None:
        self.nav.setCurrentRow(NAV.index(name))

    def current_screen_name(self) -> str:
        return NAV[self.stack.currentIndex()]

    def _show_screen(self, row: int) -> None:
        if row < 0:
            return
        name = NAV[row]
        self.stack.setCurrentIndex(row)
        screen = self.screens[name]
        if screen is self.dashboard:
            self.dashboard.reload()
        elif screen in self._lists:
            screen.ensure_loaded()  # type: ignore[attr-defined]
        elif screen is self.settings:
            self.settings.reload()

    def _data_changed(self) -> None:
        # One screen's change can show on another (counts, values); reload them lazily.
        for screen in self._lists:
            if not screen.isVisible():
                screen.mark_stale()
        self.dashboard.reload()

    # --- company ---
    def reload_company(self) -> None:
        self.ops.read(self, company_snapshot, self._company_loaded)

    def _company_loaded(self, snap: CompanySnapshot | None) -> None:
        self._company = snap
        name = snap.draft.name if snap else ""
        self.setWindowTitle(f"{name} — mspbill" if name else "mspbill")
        self.demo_banner.setVisible(bool(snap and snap.is_demo))

    def company_defaults(self) -> tuple[str, int]:
        if self._company is None:
            return "USD", 30
        d = self._company.draft
        return d.currency, int(d.default_payment_terms_days or 30)

    # --- geometry ---
    def restore_geometry(self) -> None:
        saved = self.ctx.settings.get(GEOMETRY_KEY)
        restored = False
        if isinstance(saved, str):
            try:
                restored = self.restoreGeometry(base64.b64decode(saved))
            except ValueError:
                restored = False
        if not restored:
            self.resize(1280, 800)

    def save_geometry(self) -> None:
        self.ctx.settings.set(GEOMETRY_KEY, base64.b64encode(bytes(self.saveGeometry().data())).decode())

    def closeEvent(self, event: QCloseEvent) -> None:
        # Written once at close, not on every navigation (a settings write is an fsync).
        self.save_geometry()
        self.ctx.settings.set(SCREEN_KEY, self.current_screen_name())
        super().closeEvent(event)
