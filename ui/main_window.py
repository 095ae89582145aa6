"""The main window: navigation on the left, one screen at a time on the right."""

from __future__ import annotations

import base64
from html import escape

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, QTimer, QUrl
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QColor,
    QDesktopServices,
    QIcon,
    QKeySequence,
    QPainter,
    QPalette,
    QPen,
    QPixmap,
    QShowEvent,
)
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
from mspbill.db.server import is_server
from mspbill.db.server_check import data_location
from ui.agreements_screen import AgreementsScreen
from ui.client_dialog import ClientDialog
from ui.clients_screen import ClientsScreen
from ui.collections_screen import CollectionsScreen
from ui.collections_sync import CollectionsSync
from ui.dashboard_screen import DashboardScreen
from ui.data_settings_form import DailyBackup
from ui.email_actions import EmailRunner, SendOutcome
from ui.email_actions import status_text as mail_status_text
from ui.invoices_screen import InvoicesScreen
from ui.month_end_screen import MonthEndScreen
from ui.ops import Ops
from ui.outbox_screen import OutboxScreen
from ui.payment_sync import PaymentSync
from ui.payment_widgets import ModeBadge, PaymentSession
from ui.payments_screen import PaymentsScreen
from ui.reports_screen import ReportsScreen
from ui.screens import COMING, ComingScreen, SettingsScreen

NAV = ("Dashboard", "Clients", "Agreements", "Invoices", "Payments", "Outbox", "Collections", "Month-end", "Reports", "Settings")
_ICONS = {
    "Dashboard": QStyle.StandardPixmap.SP_ComputerIcon,
    "Clients": QStyle.StandardPixmap.SP_DirHomeIcon,
    "Agreements": QStyle.StandardPixmap.SP_FileDialogDetailedView,
    "Invoices": QStyle.StandardPixmap.SP_FileIcon,
    "Payments": QStyle.StandardPixmap.SP_DialogApplyButton,
    "Outbox": None,  # an envelope, drawn (the style has none)
    "Collections": QStyle.StandardPixmap.SP_BrowserReload,  # following up, again and again
    "Month-end": QStyle.StandardPixmap.SP_MediaPlay,
    "Reports": QStyle.StandardPixmap.SP_FileDialogContentsView,
    "Settings": QStyle.StandardPixmap.SP_FileDialogInfoView,
}
# Background e-mail: the first look soon after start-up, then every five minutes.
MAIL_STARTUP_DELAY_MS = 3_000
MAIL_INTERVAL_MS = 5 * 60 * 1000
GEOMETRY_KEY = "window.geometry"
SCREEN_KEY = "window.screen"


def envelope_icon(color: QColor) -> QIcon:
    """A plain envelope in the style's icon colour, for the Outbox."""
    icon = QIcon()
    for size in (18, 36):
        pixmap = QPixmap(size, size)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        pen = QPen(color, size / 12)
        pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
        painter.setPen(pen)
        m = size / 9
        body = QRectF(m, size * 0.22, size - 2 * m, size * 0.56)
        painter.drawRoundedRect(body, size / 14, size / 14)
        painter.drawPolyline([QPointF(body.left(), body.top()), QPointF(size / 2, body.top() + body.height() * 0.55),
                              QPointF(body.right(), body.top())])
        painter.end()
        icon.addPixmap(pixmap)
    return icon


class MainWindow(QMainWindow):
    def __init__(self, ctx: AppContext, ops: Ops):
        super().__init__()
        self.ctx = ctx
        self.ops = ops
        # Before the screens: they open the processor through it (the data folder holds the sandbox's ledger).
        self.payment_session = PaymentSession.install(ops, ctx.paths.data_dir)
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
            pixmap = _ICONS[name]
            icon = self.style().standardIcon(pixmap) if pixmap is not None else \
                envelope_icon(self.palette().color(QPalette.ColorRole.WindowText))
            self.nav.addItem(QListWidgetItem(icon, name))

        self.dashboard = DashboardScreen(ops)
        self.clients = ClientsScreen(ops, self.company_defaults)
        self.agreements = AgreementsScreen(ops)
        self.invoices = InvoicesScreen(ops)
        self.payments = PaymentsScreen(ops)
        # The one e-mail runner of this window: screens and dialogs reach it with EmailRunner.for_ops(ops).
        self.email_runner = EmailRunner.for_ops(ops)
        self.outbox = OutboxScreen(ops, self.email_runner)
        self.collections = CollectionsScreen(ops)
        self.month_end = MonthEndScreen(ops, ctx.paths.backup_dir)
        self.reports = ReportsScreen(ops)
        self.settings = SettingsScreen(ops, ctx)
        self.screens: dict[str, QWidget] = {
            "Dashboard": self.dashboard, "Clients": self.clients, "Agreements": self.agreements,
            "Invoices": self.invoices, "Payments": self.payments, "Outbox": self.outbox,
            "Collections": self.collections,
            "Month-end": self.month_end, "Reports": self.reports, "Settings": self.settings}
        self._lists = (self.clients, self.agreements, self.invoices, self.payments, self.outbox, self.collections,
                       self.month_end, self.reports)
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
        # Where money would move, always in sight once a processor is set up.
        self.mode_badge = ModeBadge(hide_when_off=True)
        self.payment_session.mode_changed.connect(self.mode_badge.set_mode)
        self.payments_status = QLabel()
        self.payments_status.hide()
        self.mail_status = QLabel()
        self.mail_status.setTextFormat(Qt.TextFormat.RichText)
        self.mail_status.linkActivated.connect(lambda _link: self.show_outbox())
        self.mail_status.hide()
        self.collections_status = QLabel()
        self.collections_status.hide()
        self.statusBar().addPermanentWidget(self.payments_status)
        self.statusBar().addPermanentWidget(self.collections_status)
        self.statusBar().addPermanentWidget(self.mail_status)
        self.statusBar().addPermanentWidget(self.busy_label)
        self.statusBar().addPermanentWidget(self.mode_badge)
        where = data_location(ctx.db.url)
        if is_server(ctx.db.url):
            # Which office this window writes to stays in sight (messages replace the left-hand text).
            self.server_badge = QLabel(where)
            self.statusBar().addPermanentWidget(self.server_badge)
        else:
            self.statusBar().showMessage(where)
        # A bound method, not a lambda: Qt forgets it with the window (a job may end after it closed).
        ops.busy_changed.connect(self._show_busy)

        for screen in self._lists:
            screen.changed.connect(self._data_changed)
        self.payments.open_invoice.connect(self.invoices.open_invoice)
        self.dashboard.open_invoice.connect(self.invoices.open_invoice)
        self.dashboard.open_client.connect(self.open_client)
        self.outbox.open_invoice.connect(self.invoices.open_invoice)
        self.collections.open_invoice.connect(self.invoices.open_invoice)
        self.collections.open_settings.connect(self.show_collections_settings)
        self.outbox.open_mail_settings.connect(self.show_mail_settings)
        self.month_end.open_outbox.connect(self.show_outbox)
        self.settings.company.saved.connect(self.reload_company)
        self.settings.mail.saved.connect(self._mail_settings_saved)
        self.settings.payments.saved.connect(self._payment_settings_saved)
        self.settings.collections.saved.connect(self.collections.mark_stale)
        self.payment_sync = PaymentSync(ops, self.payment_session, self)
        self.payment_sync.finished.connect(self._payments_synced)
        self.email_runner.finished.connect(self._mail_sent)
        self.collections_sync = CollectionsSync(ops, self)
        self.collections_sync.finished.connect(self._collections_ran)
        self.daily_backup = DailyBackup(ops, ctx, self.statusBar(), self)
        self.settings.data.restored.connect(self.database_restored)
        self.mail_timer = QTimer(self)
        self.mail_timer.setInterval(MAIL_INTERVAL_MS)
        self.mail_timer.timeout.connect(self.send_due_mail)
        self._mail_started = False
        self._build_menus()
        self.restore_geometry()
        self.reload_company()
        self.payment_session.refresh_mode(self)
        start = self.ctx.settings.get(SCREEN_KEY, "Dashboard")
        self.nav.setCurrentRow(NAV.index(start) if start in NAV else 0)

    def _show_busy(self, busy: bool) -> None:
        self.busy_label.setText("Working…" if busy else "")

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
            if i < 10:  # Ctrl+1 … Ctrl+9, then Ctrl+0 for the tenth
                action.setShortcut(QKeySequence(f"Ctrl+{(i + 1) % 10}"))
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
                                   f"{data_location(self.ctx.db.url)}"))
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

    def database_restored(self) -> None:
        """Settings → Data put a backup in place of the database: every screen reads it again."""
        for screen in self._lists:
            if screen.isVisible():
                screen.reload()
            else:
                screen.mark_stale()
        self.dashboard.reload()
        self.settings.reload()  # the forms showed the old database's settings
        self.reload_company()
        self.payment_session.refresh_mode(self)

    def open_client(self, client_id: int) -> QWidget:
        """The client's window, as Clients opens it (from the Dashboard's tables)."""
        dialog = ClientDialog(self.ops, self.clients, client_id=client_id)
        dialog.saved.connect(self.clients.after_change)
        dialog.payment_methods_changed.connect(self.clients.after_change)
        dialog.open()
        return dialog

    def show_outbox(self) -> None:
        self.go("Outbox")

    def show_mail_settings(self) -> None:
        self.settings.show_tab("E-mail")
        self.go("Settings")

    def show_payment_settings(self) -> None:
        self.settings.show_tab("Payments")
        self.go("Settings")

    def show_collections_settings(self) -> None:
        self.settings.show_tab("Collections")
        self.go("Settings")

    # --- the processor in the background ---
    def _payment_settings_saved(self) -> None:
        # The mode badge follows (the form asks the session); lists naming methods read them again.
        for screen in (self.clients, self.invoices, self.payments, self.month_end):
            screen.mark_stale()
        self.payment_sync.sync()

    def _payments_synced(self, text: str, tooltip: str, problem: bool, changed: bool) -> None:
        if changed:
            for screen in self._lists:
                if screen.isVisible():
                    screen.reload()
                else:
                    screen.mark_stale()
            self.dashboard.reload()
        if not text:
            return  # nothing new: the last note stays
        self.payments_status.setText(text)
        self.payments_status.setStyleSheet("color: #b3261e;" if problem else "")
        self.payments_status.setToolTip(tooltip)
        self.payments_status.show()

    # --- e-mail in the background ---
    def start_background_mail(self) -> None:
        """Send what is due soon after start-up, then every five minutes while the app is open."""
        if self._mail_started:
            return
        self._mail_started = True
        QTimer.singleShot(MAIL_STARTUP_DELAY_MS, self, self.send_due_mail)
        self.mail_timer.start()
        self.payment_sync.start()
        self.collections_sync.start()  # its first pass after the payment sync's
        self.daily_backup.start()  # once a day, in the background

    def send_due_mail(self) -> bool:
        """Due messages go in the background (nothing happens when mail is not set up or nothing is due)."""
        return self.email_runner.send_in_background()

    def _mail_sent(self, outcome: SendOutcome) -> None:
        if not outcome.attempted and not outcome.error:
            return  # nothing was due: the last result stays on show
        if outcome.attempted:  # the Invoices list's E-mail column
            if self.invoices.isVisible():
                self.invoices.reload()
            else:
                self.invoices.mark_stale()
        text, tooltip, problem = mail_status_text(outcome)
        # A problem links to the Outbox, where the messages and their reasons are.
        self.mail_status.setText(f'<a href="outbox" style="color: #b3261e;">{escape(text)}</a>' if problem
                                 else escape(text))
        self.mail_status.setToolTip(tooltip)
        self.mail_status.show()

    # --- collections in the background ---
    def _collections_ran(self, text: str, tooltip: str, problem: bool, changed: bool) -> None:
        if changed:
            for screen in self._lists:
                if screen.isVisible():
                    screen.reload()
                else:
                    screen.mark_stale()
            self.dashboard.reload()
            self.send_due_mail()  # the reminders just queued go now, not at the next mail tick
        if not text:
            return  # nothing new: the last note stays
        self.collections_status.setText(text)
        self.collections_status.setStyleSheet("color: #b3261e;" if problem else "")
        self.collections_status.setToolTip(tooltip)
        self.collections_status.show()

    def _mail_settings_saved(self) -> None:
        if self.outbox.isVisible():
            self.outbox.reload()
        else:
            self.outbox.mark_stale()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.start_background_mail()

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
        if self.month_end.running:
            answer = QMessageBox.question(
                self, "A month-end run is under way",
                "A month-end run is under way. Quit anyway?\n\nNo new charge starts; those already sent to the "
                "processor finish and are recorded before mspbill closes. Run the month again later to charge the "
                "rest: nothing is charged twice.",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Cancel)
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
            self.month_end.cancel_run()
        # Written once at close, not on every navigation (a settings write is an fsync).
        self.save_geometry()
        self.mail_timer.stop()
        self.payment_sync.stop()
        self.collections_sync.stop()
        self.email_runner.cancel()  # a send under way stops after its current message; the rest stay queued
        self.ctx.settings.set(SCREEN_KEY, self.current_screen_name())
        super().closeEvent(event)
