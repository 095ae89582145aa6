"""Settings → Data → Database: where this workstation's data is (its own file or the office server), a button
to use or change the office server, and one back to this computer's own file.

A change is saved at once but takes effect when mspbill starts again (the open database is not swapped under
the screens); the group offers "Restart now", which closes the main window and opens it again on the new
database in the same process (ui.app.main's loop, RESTART_EXIT_CODE).
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QApplication,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from mspbill.context import AppContext
from mspbill.db.server import (
    forget,
    is_server,
    normalise,
    saved_url,
    server_name,
    shown,
    without_password,
)
from ui.database_server_dialog import DatabaseServerDialog
from ui.ops import Ops
from ui.widgets import MUTED_STYLE, notice_label, show_notice

RESTART_EXIT_CODE = 75          # ui.app.main opens the database again and shows a new main window


def restart_app(window: QWidget) -> bool:
    """Close the main window and end the event loop with RESTART_EXIT_CODE (False: the window would not close,
    for example a month-end run is under way and the person said so)."""
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    app.setQuitOnLastWindowClosed(False)      # ui.app.main sets it back
    if not window.close():
        app.setQuitOnLastWindowClosed(True)
        return False
    app.exit(RESTART_EXIT_CODE)
    return True


def where_text(url: str) -> str:
    """'This computer's file: …' or 'Office server: postgresql://user@host:5432/db' (never a password)."""
    if is_server(url):
        return f"Office server: {shown(url)}"
    from sqlalchemy.engine import make_url

    return f"This computer's file: {make_url(url).database}"


class DatabaseGroup(QGroupBox):
    """The "Database" group at the top of Settings → Data."""

    switched = Signal(str)          # the setting changed: the server's URL, or "" for this computer's file

    def __init__(self, ops: Ops, ctx: AppContext, parent: QWidget | None = None,
                 restart: Callable[[QWidget], bool] = restart_app):
        super().__init__("Database", parent)
        self.ops, self.ctx, self.restart = ops, ctx, restart
        self.overridden = self._overridden()     # as this session started; the setting may change below
        layout = QVBoxLayout(self)
        self.where = QLabel(where_text(ctx.db.url))
        self.where.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.where.setStyleSheet("font-weight: 600;")
        layout.addWidget(self.where)
        self.about = QLabel()
        self.about.setWordWrap(True)
        self.about.setStyleSheet(MUTED_STYLE)
        layout.addWidget(self.about)
        self.notice = notice_label()
        layout.addWidget(self.notice)
        row = QHBoxLayout()
        self.server_button = QPushButton()
        self.server_button.clicked.connect(self.open_server_dialog)
        self.local_button = QPushButton("Use this computer's own file")
        self.local_button.setToolTip("This computer stops using the office server; the server's data is untouched")
        self.local_button.clicked.connect(self.use_local_file)
        row.addWidget(self.server_button)
        row.addWidget(self.local_button)
        row.addStretch()
        layout.addLayout(row)
        self._refresh()

    # --- what it says ---
    def _overridden(self) -> bool:
        """The database in use was named by --db or MSPBILL_DATABASE_URL, not by the settings."""
        saved = saved_url(self.ctx.settings)
        current = self.ctx.db.url
        if is_server(current):
            return saved is None or server_name(saved) != server_name(current)
        return self.ctx.db.sqlite_path != self.ctx.paths.database_file

    def _refresh(self) -> None:
        saved = saved_url(self.ctx.settings)
        on_server = is_server(self.ctx.db.url)
        self.server_button.setText("Change…" if saved or on_server else "Use an office server…")
        self.local_button.setVisible(bool(saved))
        if on_server:
            text = ("Every workstation that uses this server shares one office. The password is in this "
                    "computer's keyring.")
        else:
            text = ("This computer keeps the office in its own file. To share one office between several "
                    "workstations, put it on a PostgreSQL server: \"Use an office server…\".")
        if self.overridden:
            text += (" This session's database was given with --db or MSPBILL_DATABASE_URL, which comes before "
                     "the setting here.")
        self.about.setText(text)

    # --- the buttons ---
    def server_dialog(self) -> DatabaseServerDialog:
        current = saved_url(self.ctx.settings) or (self.ctx.db.url if is_server(self.ctx.db.url) else None)
        dialog = DatabaseServerDialog(self.ops, self.ctx.settings, current_url=current,
                                      source_db=self.ctx.db if self.ctx.db.sqlite_path else None, parent=self)
        dialog.saved.connect(lambda url: self._saved(url, dialog))
        return dialog

    def open_server_dialog(self) -> None:
        self.server_dialog().exec()

    def _in_use(self, url: str) -> bool:
        """`url` (as saved: no password) is the database this session works on, connection options and all."""
        try:
            return is_server(self.ctx.db.url) and without_password(normalise(self.ctx.db.url)) == url
        except ValueError:
            return False

    def _saved(self, url: str, dialog: DatabaseServerDialog) -> None:
        self._refresh()
        if dialog.copied:
            self._copied(url)
            return
        if self._in_use(url):
            # Nothing to switch: no restart (a restart would open the very same database).
            extra = (" The password you typed is saved in the keyring; mspbill uses it from the next start."
                     if dialog.password_saved else "")
            show_notice(self.notice, f"Nothing to switch: this computer already uses {shown(url)}.{extra}", "ok")
            return
        self._switched(f"This computer will use the office server {shown(url)}.", url)

    def _copied(self, url: str) -> None:
        """The office was copied to the server and the file marked as moved: switch now, no "Later".

        This window works on the file; its outbox, payment sync and collections jobs must not go on there
        (an e-mail sent from both, a payment recorded where nobody looks).  Started with --db or
        MSPBILL_DATABASE_URL naming the file, the restart finds the file moved and offers the server."""
        self.switched.emit(url)
        QMessageBox.information(
            self, "Office copied",
            f"This office is now on the office server {shown(url)}, and this computer uses it from now on.\n\n"
            "mspbill restarts now to open it. The file stays on this computer, marked as copied.")
        if not self.restart(self.window()):
            show_notice(self.notice, f"The office is on {shown(url)} now, but mspbill could not restart. Quit "
                                     "mspbill and start it again before entering anything.", "error")

    def use_local_file(self) -> None:
        saved = saved_url(self.ctx.settings)
        if not saved:
            return
        answer = QMessageBox.question(
            self, "Use this computer's own file",
            f"This computer stops using the office server {shown(saved)} and keeps its data in its own file "
            f"({self.ctx.paths.database_file}).\n\nThe office's data on the server is untouched, and what you "
            "enter in the file is not seen by the other workstations.\n\nSwitch?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Cancel)
        if answer != QMessageBox.StandardButton.Yes:
            return
        try:
            forget(self.ctx.settings)
        except OSError as exc:
            show_notice(self.notice, f"The setting could not be saved ({exc.strerror or exc}).", "error")
            return
        self._refresh()
        self._switched(f"This computer will use its own file {self.ctx.paths.database_file}.", "")

    def _switched(self, what: str, url: str) -> None:
        self.switched.emit(url)
        if self.overridden:
            show_notice(self.notice, f"{what} It takes effect when mspbill starts without --db or "
                                     "MSPBILL_DATABASE_URL.", "info")
            return
        show_notice(self.notice, f"{what} mspbill switches when it starts again.", "ok")
        box = QMessageBox(QMessageBox.Icon.Question, "Restart mspbill",
                          f"{what}\n\nmspbill must restart to switch. Restart now?", parent=self)
        now = box.addButton("Restart now", QMessageBox.ButtonRole.AcceptRole)
        box.addButton("Later", QMessageBox.ButtonRole.RejectRole)
        box.exec()
        if box.clickedButton() is now and not self.restart(self.window()):
            show_notice(self.notice, f"{what} mspbill did not restart; it switches when it starts again.", "info")
