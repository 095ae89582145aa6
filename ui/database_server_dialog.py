"""The office's database server: address, user and password; Test connection; Use this server; and, when the
server's database is empty and this computer keeps its office in its own file, Copy this office to the server.

Every connection, keyring write and the copy run through Ops (house rule 2).  The password goes to the OS
keyring only; the settings file gets the address (mspbill.db.server.remember).  The dialog saves; whoever
opened it decides what happens next (Settings → Data offers a restart; the start-up message tries again).
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressDialog,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from mspbill.db.engine import Database
from mspbill.db.schema import DatabaseServerError
from mspbill.db.server import (
    ADVICE_DIALOG,
    DatabaseUrlError,
    is_server,
    normalise,
    parse,
    remember,
    save_password,
    server_name,
    shown,
)
from mspbill.db.server_check import (
    CURRENT,
    EMPTY,
    OLDER,
    ServerCheck,
    ServerFields,
    check_server_url,
    fields_of,
    options_text,
    query_options,
    same_server,
    server_url,
)
from mspbill.secrets import KeyringUnavailableError
from mspbill.settings import Settings
from mspbill.validation import ValidationError
from ui.ops import OpContext, Ops
from ui.widgets import MUTED_STYLE, FieldForm, notice_label, show_notice

CopyFunction = Callable[..., object]


def check_text(check: ServerCheck, *, can_copy: bool) -> tuple[str, str]:
    """(text, notice kind) for what Test connection found."""
    if check.state == EMPTY:
        if can_copy:
            return "Connected: an empty database — copy this office into it first.", "ok"
        return "Connected: an empty database — mspbill sets up its tables there when it first opens it.", "ok"
    if check.state == CURRENT:
        n = check.clients or 0
        return f"Connected: mspbill database, {n} client{'s' if n != 1 else ''}.", "ok"
    if check.state == OLDER:
        return check.sentence(), "ok"
    return check.sentence(), "error"


def _server_or_none(url: str | None) -> str | None:
    """`url` as the engine spells it when it names a server; None for a file or an address that cannot work."""
    if not url:
        return None
    try:
        return normalise(url) if is_server(url) else None
    except DatabaseUrlError:
        return None


class DatabaseServerDialog(QDialog):
    """Server, Port, Database, User, Password; Test connection; Use this server; Copy this office…

    `current_url`: the server this computer uses now (its connection options — sslmode=… — are kept while the
    fields name the same server, and choosing an empty database instead asks first).  `source_db`: the office in
    this computer's own file, which "Copy this office to the server…" copies.  After a copy, `copied` is True:
    the office lives on the server now, and whoever opened the dialog switches to it at once.
    """

    saved = Signal(str)          # the server's URL as saved (no password)

    def __init__(self, ops: Ops, settings: Settings, *, current_url: str | None = None,
                 source_db: Database | None = None, intro: str = "", parent: QWidget | None = None,
                 copy_function: CopyFunction | None = None):
        super().__init__(parent)
        self.ops, self.settings = ops, settings
        self.source_db = source_db if source_db is not None and source_db.sqlite_path is not None else None
        self.current_url = _server_or_none(current_url)
        self._options = query_options(self.current_url)
        self._copy_function = copy_function
        self.saved_url: str | None = None
        self.password_saved = False          # Use this server also saved a password typed here
        self.copied = False
        self.last_check: ServerCheck | None = None
        self._checked_url: str | None = None
        self.progress: QProgressDialog | None = None
        self.setWindowTitle("Office database server")
        self.setMinimumWidth(560)
        self._build(intro, fields_of(self.current_url))
        self._fields_changed()

    # --- layout ---
    def _build(self, intro: str, start: ServerFields) -> None:
        layout = self._layout = QVBoxLayout(self)
        about = QLabel(intro or "Several workstations share one office when they all use the same PostgreSQL "
                                "database. The password is kept in this computer's keyring, never in the "
                                "settings file.")
        about.setWordWrap(True)
        about.setStyleSheet(MUTED_STYLE)
        self.about = about
        layout.addWidget(about)
        grid = QFormLayout()
        # Rows keep their height when a message appears below a field: the dialog grows instead (_fit).
        grid.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.form = FieldForm(grid)
        self.host = self.form.add("host", "Server", QLineEdit(start.host))
        self.host.setPlaceholderText("db.office.lan or 192.168.1.20")
        self.port = self.form.add("port", "Port", QLineEdit(start.port))
        self.port.setMaximumWidth(90)
        self.database = self.form.add("database", "Database", QLineEdit(start.database))
        self.database.setPlaceholderText("mspbill")
        self.user = self.form.add("user", "User", QLineEdit(start.user))
        self.password = self.form.add("password", "Password", QLineEdit())
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setPlaceholderText("leave empty to use the one saved in the keyring" if start.host
                                         else "kept in this computer's keyring")
        for label, editor in (("Server", self.host), ("Port", self.port), ("Database", self.database),
                              ("User", self.user), ("Password", self.password)):
            editor.setAccessibleName(label)
            editor.textChanged.connect(lambda _t: self._fields_changed())
        layout.addLayout(grid)
        self.options = QLabel()
        self.options.setWordWrap(True)
        self.options.setStyleSheet(MUTED_STYLE)
        self.options.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.options.hide()
        layout.addWidget(self.options)
        self.notice = notice_label()
        layout.addWidget(self.notice)

        buttons = QHBoxLayout()
        self.test_button = QPushButton("Test connection")
        self.test_button.clicked.connect(self.test_connection)
        self.copy_button = QPushButton("Copy this office to the server…")
        self.copy_button.setToolTip("Copy every client, agreement, invoice and payment of this computer's file "
                                    "into the empty database, and check every table afterwards")
        self.copy_button.clicked.connect(self.copy_office)
        self.copy_button.hide()
        self.use_button = QPushButton("Use this server")
        self.use_button.setDefault(True)
        self.use_button.clicked.connect(self.use_server)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.reject)
        buttons.addWidget(self.test_button)
        buttons.addWidget(self.copy_button)
        buttons.addStretch()
        buttons.addWidget(self.use_button)
        buttons.addWidget(self.cancel_button)
        layout.addLayout(buttons)
        self._buttons = (self.test_button, self.copy_button, self.use_button)

    def _fit(self) -> None:
        """Tall enough for every message shown (a wrapped label needs more height than its minimum says)."""
        layout = self._layout
        layout.activate()
        width = max(self.width(), self.minimumWidth())
        # A wrapped label's size hint assumes a narrower line than it has here: ask for this width's height.
        need = max(layout.totalHeightForWidth(width) if layout.hasHeightForWidth()
                   else layout.totalSizeHint().height(), layout.totalMinimumSize().height())
        self.setMinimumHeight(need)
        if self.height() != need:
            self.resize(width, need)

    def showEvent(self, event) -> None:  # type: ignore[no-untyped-def]
        super().showEvent(event)
        self._fit()

    def _notify(self, text: str, kind: str = "ok") -> None:
        show_notice(self.notice, text, kind)
        self._fit()

    # --- the fields ---
    def fields(self) -> ServerFields:
        return ServerFields(self.host.text(), self.port.text(), self.database.text(), self.user.text(),
                            self.password.text())

    def _query(self) -> dict[str, str | tuple[str, ...]]:
        """The saved address's connection options, while the fields name the same server."""
        return dict(self._options) if self._options and same_server(self.current_url, self.fields()) else {}

    def _url(self) -> str | None:
        """The address without password, or None after showing every problem at its field.

        What the last test or save said is cleared first: it was about other fields."""
        self._notify("")
        try:
            url = server_url(self.fields(), query=self._query())
        except ValidationError as exc:
            self.form.show_issues(exc.by_field())
            self._fit()
            first = self.form.first_invalid()
            if first is not None:
                first.setFocus()
            return None
        self.form.show_issues({})
        self._fit()
        return url

    def _fields_changed(self) -> None:
        # What was tested is not what is typed any more.
        self.last_check = None
        self._checked_url = None
        self.copy_button.hide()
        query = self._query()
        self.options.setText(f"Connection options kept from the saved address: {options_text(query)}"
                             if query else "")
        self.options.setVisible(bool(query))
        self._fit()

    def _busy(self, busy: bool, text: str = "") -> None:
        for b in self._buttons:
            b.setEnabled(not busy)
        if text:
            self._notify(text, "info")

    def _failed(self, exc: BaseException) -> bool:
        self._busy(False)
        if isinstance(exc, (DatabaseServerError, KeyringUnavailableError)):
            self._notify(str(exc), "error")
            return True
        self._notify("", "ok")
        return False

    # --- Test connection ---
    def test_connection(self) -> None:
        url = self._url()
        if url is None:
            return
        password = self.password.text() or None
        self._busy(True, f"Connecting to {shown(url)}…")
        self.ops.run(self, lambda _c: check_server_url(url, password, advice=ADVICE_DIALOG),
                     on_success=lambda check: self._tested(url, check), on_failure=self._failed,
                     label="Testing the database server")

    def _tested(self, url: str, check: ServerCheck) -> None:
        self._busy(False)
        self.last_check, self._checked_url = check, url
        text, kind = check_text(check, can_copy=self.source_db is not None)
        self._notify(text, kind)
        self.copy_button.setVisible(check.state == EMPTY and self.source_db is not None)

    # --- Use this server ---
    def use_server(self) -> None:
        url = self._url()
        if url is None:
            return
        password = self.password.text() or None
        self._busy(True, f"Connecting to {shown(url)}…")
        self.ops.run(self, lambda _c: check_server_url(url, password, advice=ADVICE_DIALOG),
                     on_success=lambda found: self._use_checked(url, password, found), on_failure=self._failed,
                     label="Testing the database server")

    def _empty_question(self, url: str) -> str | None:
        """What to ask before an empty database replaces the office this computer uses now (None: nothing to)."""
        target = server_name(url)
        if self.source_db is not None:
            return (f"The database {target} is empty. If you use it as it is, this computer starts a new, empty "
                    "office there; the office in this computer's file stays in the file.\n\nTo bring this office "
                    "along, choose \"Copy this office to the server…\" first.\n\nUse the empty database anyway?")
        if self.current_url is not None and server_name(self.current_url) != target:
            parsed = parse(url)
            return (f"The database '{parsed.database}' on {parsed.host}:{parsed.port} is empty: using it "
                    f"starts a new, empty office — your office's data stays on {shown(self.current_url)}."
                    "\n\nUse the empty database?")
        return None

    def _use_checked(self, url: str, password: str | None, found: ServerCheck) -> None:
        self._busy(False)
        if not found.usable:
            self._notify(f"{found.sentence()} Nothing was saved.", "error")
            return
        question = self._empty_question(url) if found.state == EMPTY else None
        if question is not None:
            answer = QMessageBox.question(self, "The server's database is empty", question,
                                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                          QMessageBox.StandardButton.No)
            if answer != QMessageBox.StandardButton.Yes:
                self._notify("Not switched: this computer still uses what it used before.", "info")
                return
        self._save(url, password)

    def _save(self, url: str, password: str | None) -> None:
        """The password to the keyring (in the background), then the address to the settings file."""
        if not password:
            self._remember(url, False)
            return

        def work(_c: OpContext) -> bool:
            save_password(url, password)             # KeyringUnavailableError: nothing saved
            return True

        self._busy(True, "Saving the password in this computer's keyring…")
        self.ops.run(self, work, on_success=lambda _ok: self._remember(url, True), on_failure=self._failed,
                     label="Saving the database password")

    def _remember(self, url: str, password_saved: bool) -> None:
        self._busy(False)
        try:
            # The UI thread owns the settings file (the main window writes it too); the address only.
            self.saved_url = remember(self.settings, url)
        except OSError as exc:
            self._notify(f"The setting could not be saved ({exc.strerror or exc}).", "error")
            return
        self.password_saved = password_saved
        self.saved.emit(self.saved_url)
        self.accept()

    # --- Copy this office to the server ---
    def copy_office(self) -> None:
        url = self._url()
        source = self.source_db
        if url is None or source is None:
            return
        password = self.password.text() or None
        copy = self._copy_function
        if copy is None:
            from mspbill.db.copy import copy_database

            copy = copy_database

        def work(ctx: OpContext) -> list[str]:
            from mspbill.db.server_check import connect_url

            if password:
                # Before the copy, not after: once copied, the file is marked as moved and this computer must
                # switch — a keyring that refuses the password (KeyringUnavailableError) stops it here, with
                # nothing copied.
                save_password(url, password)
            report = copy(source, connect_url(url, password), ctx.progress)
            return list(report.lines())  # type: ignore[attr-defined]

        self._busy(True, f"Copying this office to {shown(url)}…")
        self.progress = QProgressDialog("Copying this office to the server…", "", 0, 0, self)
        self.progress.setWindowTitle("Copying")
        self.progress.setCancelButton(None)          # a copy commits all or nothing; it is not stopped halfway
        self.progress.setWindowModality(Qt.WindowModality.WindowModal)
        self.progress.setMinimumDuration(0)
        self.progress.show()
        self.ops.run(self, work, on_success=lambda lines: self._copied(url, password, lines),
                     on_failure=self._copy_failed, on_progress=self._copy_progress,
                     label="Copying the office to the server")

    def _copy_progress(self, done: int, total: int, text: str) -> None:
        if self.progress is not None:
            self.progress.setMaximum(max(total, 0))
            self.progress.setValue(min(done, total) if total else 0)
            if text:
                self.progress.setLabelText(text)

    def _close_progress(self) -> None:
        if self.progress is not None:
            self.progress.close()
            self.progress.deleteLater()
            self.progress = None

    def _copy_failed(self, exc: BaseException) -> bool:
        self._close_progress()
        from mspbill.db.copy import CopyRefusedError

        if isinstance(exc, CopyRefusedError):
            self._busy(False)
            self._notify(f"{exc}", "error")
            return True
        return self._failed(exc)

    def _copied(self, url: str, password: str | None, lines: list[str]) -> None:
        """The office lives on the server now (and the file says so): no "Later" — this computer switches.

        The window still open on the file would go on sending its outbox and syncing payments from the
        file; whoever opened the dialog restarts on the server at once (`copied`)."""
        self._close_progress()
        self._busy(False)
        self.copy_button.hide()
        self.last_check = None               # the database is not empty any more
        self.copied = True
        self.copy_lines = lines
        summary = next((line for line in reversed(lines) if line.strip()), "Copied.")
        self._notify(f"{summary} This computer now switches to {shown(url)}.", "ok")
        self._remember(url, bool(password))       # the password went to the keyring before the copy
