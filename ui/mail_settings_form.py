"""Settings → E-mail: the office's mail server and sender, the invoice e-mail
template with a live preview, and a test e-mail with the settings as typed.

The password goes to the OS keyring (house rule 6), written on a worker
thread when the settings are saved; the form only ever learns whether one is
saved, never what it is.  Without a secure keyring the form says so once a
user name is entered (without one no password is needed), and a typed
password is refused with nothing saved.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy.orm import Session

from mspbill.db.models import SmtpSecurity
from mspbill.mail import (
    PLACEHOLDERS,
    MailError,
    MailSettingsDraft,
    mail_settings_draft,
    render,
    sample_values,
    save_mail_settings,
    send_test_email,
    validate_mail_settings,
)
from mspbill.mail.settings import DEFAULT_PORTS
from mspbill.mail.templates import check_template
from mspbill.secrets import SMTP_PASSWORD, KeyringUnavailableError, SecretStore
from mspbill.validation import Issue, ValidationError
from ui.ops import OpContext, Ops
from ui.widgets import (
    ERROR_STYLE,
    MUTED_STYLE,
    SUCCESS_STYLE,
    WARNING_STYLE,
    FieldForm,
    form_scroll,
    heading,
)

# Typed text, not a field the core knows: where the keyring's refusal is shown.
PASSWORD_FIELD = "password"
# Shown while a user name is entered on a computer without a secure keyring: nothing has
# been tried yet, so it says what will happen, not that saving failed.
NO_KEYRING_NOTE = (
    "No secure keyring is available on this computer, so a password for this user name cannot be saved "
    "here. mspbill keeps passwords only in the operating system's keyring (Windows Credential Manager, the "
    "macOS Keychain, or GNOME Keyring or KWallet on Linux): start or unlock one before you save a password. "
    "If your mail server needs no login, leave the user name empty.")


@dataclass(frozen=True)
class PasswordState:
    """Whether a password is saved, and where; never the password."""

    saved: bool
    keyring: str = ""
    problem: str = ""  # why there is no secure keyring (nothing can be saved)


def password_state() -> PasswordState:
    """Asks the keyring (on a worker thread)."""
    store = SecretStore()
    try:
        saved = store.get(SMTP_PASSWORD) is not None
    except KeyringUnavailableError as exc:
        return PasswordState(False, "", str(exc))
    return PasswordState(saved, store.describe())


def ask_test_address(parent: QWidget, default: str) -> str | None:
    """Who receives the test e-mail (tests replace this)."""
    text, ok = QInputDialog.getText(parent, "Send a test e-mail",
                                    "Send a test e-mail, with the settings as typed, to:",
                                    QLineEdit.EchoMode.Normal, default)
    return text.strip() if ok and text.strip() else None


def _section(title: str) -> QLabel:
    label = heading(title, 14)
    label.setContentsMargins(0, 10, 0, 0)
    return label


class _FocusWatcher(QObject):
    """Remembers which template editor the user was in, for the placeholder list."""

    def __init__(self, form: MailSettingsForm):
        super().__init__(form)
        self._form = form

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.FocusIn:
            self._form._template_target = watched  # type: ignore[assignment]
        return False


class MailSettingsForm(QWidget):
    saved = Signal()
    test_finished = Signal(bool, str)  # sent?, the message shown

    def __init__(self, ops: Ops, parent: QWidget | None = None):
        super().__init__(parent)
        self.ops = ops
        self._password_state = PasswordState(False)
        self._save_refused = False  # the keyring refused on saving: the password row shows why
        self._loaded_once = False
        form_widget = QWidget()
        form_widget.setMaximumWidth(980)
        # One form layout, so every section's fields line up.
        grid = QFormLayout(form_widget)
        grid.setContentsMargins(0, 0, 12, 0)
        self.form = FieldForm(grid)
        f = self.form

        # --- the server ---
        grid.addRow(heading("Mail server", 14))
        self.host = f.add("host", "Server", QLineEdit())
        self.host.setPlaceholderText("e.g. smtp.office365.com")
        self.security = QComboBox()
        for sec in SmtpSecurity:
            self.security.addItem(sec.label, sec.value)
        self.security.setToolTip("STARTTLS (usually port 587) or SSL/TLS (usually port 465) encrypt the "
                                 "connection. “None” is only for a relay inside your own network.")
        f.add("security", "Security", self.security)
        self.port = f.add("port", "Port", QLineEdit("587"))
        self.port.setMaximumWidth(90)
        self.username = f.add("username", "User name", QLineEdit())
        self.username.setPlaceholderText("usually the mailbox's address; empty if the server needs no login")

        password_row = QWidget()
        pl = QVBoxLayout(password_row)
        pl.setContentsMargins(0, 0, 0, 0)
        pl.setSpacing(2)
        line = QHBoxLayout()
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setPlaceholderText("not saved")
        self.password.setToolTip("Kept in this computer's keyring, never in a file. Type a new one to replace "
                                 "the saved one; leave it empty to keep it.")
        self.remove_password_button = QPushButton("Remove password")
        self.remove_password_button.setToolTip("Delete the saved password from this computer's keyring.")
        self.remove_password_button.clicked.connect(self.remove_password)
        self.remove_password_button.setEnabled(False)
        line.addWidget(self.password, 1)
        line.addWidget(self.remove_password_button)
        pl.addLayout(line)
        self.password_note = QLabel()
        self.password_note.setWordWrap(True)
        self.password_note.setStyleSheet(MUTED_STYLE)
        pl.addWidget(self.password_note)
        # A warning, not a block: some office relays do take a login without encryption.
        self.unencrypted_warning = QLabel(
            "With security “None” the user name and password travel unencrypted. Use it only for a "
            "relay inside your own network; otherwise choose STARTTLS or SSL/TLS.")
        self.unencrypted_warning.setWordWrap(True)
        self.unencrypted_warning.setStyleSheet(WARNING_STYLE)
        self.unencrypted_warning.hide()
        pl.addWidget(self.unencrypted_warning)
        f.add(PASSWORD_FIELD, "Password", password_row)

        # --- the sender ---
        grid.addRow(_section("Sender"))
        self.from_address = f.add("from_address", "From address", QLineEdit())
        self.from_address.setPlaceholderText("e.g. billing@your-company.com")
        self.from_name = f.add("from_name", "From name", QLineEdit())
        self.from_name.setPlaceholderText("e.g. Northwind Managed IT — Billing")
        self.reply_to = f.add("reply_to", "Reply-To", QLineEdit())
        self.reply_to.setPlaceholderText("optional: where clients' replies go, if not the From address")
        self.bcc_office = QCheckBox("Send me a blind copy of every invoice e-mail")
        self.bcc_office.setToolTip("A copy of each invoice e-mail goes to the From address; clients do not see it.")
        grid.addRow("", self.bcc_office)

        # --- the invoice e-mail ---
        grid.addRow(_section("Invoice e-mail"))
        self.subject = f.add("invoice_subject", "Subject", QLineEdit())
        body_row = QWidget()
        br = QHBoxLayout(body_row)
        br.setContentsMargins(0, 0, 0, 0)
        self.body = QPlainTextEdit()
        self.body.setTabChangesFocus(True)
        self.body.setMinimumHeight(self.body.fontMetrics().lineSpacing() * 15 + 14)
        br.addWidget(self.body, 3)
        side = QVBoxLayout()
        side.setSpacing(4)
        hint = QLabel("Placeholders — click one to insert it:")
        hint.setStyleSheet(MUTED_STYLE)
        side.addWidget(hint)
        self.placeholders = QListWidget()
        self.placeholders.setWordWrap(True)
        self.placeholders.setMinimumWidth(260)
        self.placeholders.setSpacing(2)
        self.placeholders.setCursor(Qt.CursorShape.PointingHandCursor)
        for name, meaning in PLACEHOLDERS.items():
            item = QListWidgetItem("{" + name + "} — " + meaning)
            item.setData(Qt.ItemDataRole.UserRole, "{" + name + "}")
            item.setToolTip(f"Click to insert {{{name}}}: {meaning}")
            self.placeholders.addItem(item)
        self.placeholders.itemClicked.connect(self._insert_placeholder)
        side.addWidget(self.placeholders, 1)
        br.addLayout(side, 2)
        f.add("invoice_body", "Text", body_row)
        self._template_target: QWidget = self.body
        watcher = _FocusWatcher(self)
        self.subject.installEventFilter(watcher)
        self.body.installEventFilter(watcher)

        preview = QVBoxLayout()
        preview.setSpacing(4)
        self.preview_subject = QLineEdit()
        self.preview_subject.setReadOnly(True)
        self.preview_subject.setFrame(False)
        self.preview_subject.setAccessibleName("Subject preview")
        self.preview_body = QPlainTextEdit()
        self.preview_body.setReadOnly(True)
        self.preview_body.setAccessibleName("Text preview")
        self.preview_body.setTabChangesFocus(True)
        self.preview_body.setMinimumHeight(self.preview_body.fontMetrics().lineSpacing() * 17 + 14)
        preview_note = QLabel("With example values; each client's e-mail has its own, and the invoice PDF "
                              "attached.")
        preview_note.setWordWrap(True)
        preview_note.setStyleSheet(MUTED_STYLE)
        preview.addWidget(self.preview_subject)
        preview.addWidget(self.preview_body)
        preview.addWidget(preview_note)
        grid.addRow("Preview", preview)

        scroll = form_scroll(form_widget)
        self.scroll_area = scroll

        # --- the bottom bar ---
        self.summary = QLabel()
        self.summary.setStyleSheet(ERROR_STYLE)
        self.summary.setWordWrap(True)
        self.summary.hide()
        self.test_result = QLabel()
        self.test_result.setWordWrap(True)
        self.test_result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.test_result.hide()
        self.status = QLabel()
        self.test_busy = QProgressBar()
        self.test_busy.setRange(0, 0)
        self.test_busy.setMaximumWidth(80)
        self.test_busy.setTextVisible(False)
        self.test_busy.hide()
        self.test_button = QPushButton("Send test e-mail…")
        self.test_button.setToolTip("Send a short e-mail now with the settings as typed, saved or not.")
        self.test_button.clicked.connect(lambda: self.send_test())
        self.test_button.setMinimumWidth(self.test_button.sizeHint().width())  # no jump while it says "Sending…"
        self.save_button = QPushButton("Save")
        self.save_button.setDefault(True)
        self.save_button.clicked.connect(self.save)
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        bottom.addWidget(self.test_busy)
        bottom.addWidget(self.test_button)
        bottom.addWidget(self.save_button)
        layout = QVBoxLayout(self)
        layout.addWidget(scroll, 1)
        layout.addWidget(self.summary)
        layout.addWidget(self.test_result)
        layout.addLayout(bottom)

        self.security.currentIndexChanged.connect(self._security_changed)
        self.username.textChanged.connect(lambda _t: self._update_warning())
        self.username.textChanged.connect(lambda _t: self._update_password_note())
        self.subject.textChanged.connect(lambda _t: self.update_preview())
        self.body.textChanged.connect(self.update_preview)
        self.update_preview()

    # --- loading ---
    def load(self) -> None:
        self.setEnabled(False)
        self.ops.read(self, mail_settings_draft, self._loaded, label="Loading e-mail settings")
        self.refresh_password_state()

    def ensure_loaded(self) -> None:
        if not self._loaded_once:
            self.load()

    def refresh_password_state(self) -> None:
        self.ops.run(self, lambda _ctx: password_state(), on_success=self._show_password_state,
                     label="Asking the keyring")

    def _loaded(self, draft: MailSettingsDraft) -> None:
        self._loaded_once = True
        self.setEnabled(True)
        for editor, value in ((self.host, draft.host), (self.port, draft.port), (self.username, draft.username),
                              (self.from_address, draft.from_address), (self.from_name, draft.from_name),
                              (self.reply_to, draft.reply_to), (self.subject, draft.invoice_subject)):
            editor.setText(value)
        index = self.security.findData(draft.security)
        self.security.blockSignals(True)
        self.security.setCurrentIndex(max(index, 0))
        self.security.blockSignals(False)
        self.bcc_office.setChecked(draft.bcc_office)
        self.body.setPlainText(draft.invoice_body.rstrip("\n"))
        self.password.clear()
        self.show_issues({})
        self._update_warning()
        self.update_preview()

    def _show_password_state(self, state: PasswordState) -> None:
        self._password_state = state
        self._save_refused = False
        self.remove_password_button.setEnabled(state.saved)
        self.password_note.show()
        if state.problem:
            self.password_note.setStyleSheet(WARNING_STYLE)
            self.password_note.setText(NO_KEYRING_NOTE)
            # Which keyrings were found, for whoever sets the computer up (not the core's
            # "nothing was saved": nothing has been tried yet).
            found = re.search(r"\(found: ([^)]*)\)", state.problem)
            self.password_note.setToolTip(f"Keyrings found: {found.group(1)}." if found else "")
            self.password.setPlaceholderText("cannot be saved on this computer")
            self._update_password_note()
        elif state.saved:
            self.password_note.setStyleSheet(MUTED_STYLE)
            self.password_note.setText(f"A password is saved in {state.keyring}. Type a new one to replace it.")
            self.password.setPlaceholderText(f"saved in {state.keyring}")
        else:
            self.password_note.setStyleSheet(MUTED_STYLE)
            self.password_note.setText(f"No password is saved. It will be kept in {state.keyring}, never in a "
                                       "file.")
            self.password.setPlaceholderText("not saved")
        if not state.problem:
            self.password_note.setToolTip("")

    def _update_password_note(self) -> None:
        """The no-keyring warning matters only when the server needs a login (a user name is
        entered); without one no password is needed, and the warning would read as a failure."""
        if self._password_state.problem:
            self.password_note.setVisible(bool(self.username.text().strip()) and not self._save_refused)

    # --- live parts ---
    def _security_changed(self, _index: int) -> None:
        new = self.security.currentData()
        port = self.port.text().strip()
        # Suggest the usual port, unless the user typed a port of their own.
        if not port or port in {str(p) for p in DEFAULT_PORTS.values()}:
            self.port.setText(str(DEFAULT_PORTS[SmtpSecurity(new)]))
        self._update_warning()

    def _update_warning(self) -> None:
        self.unencrypted_warning.setVisible(
            self.security.currentData() == SmtpSecurity.NONE.value and bool(self.username.text().strip()))

    def _insert_placeholder(self, item: QListWidgetItem) -> None:
        text = str(item.data(Qt.ItemDataRole.UserRole))
        target = self._template_target
        if target is self.subject:
            self.subject.insert(text)
        else:
            self.body.insertPlainText(text)
        target.setFocus()

    def update_preview(self) -> None:
        subject, body = self.subject.text(), self.body.toPlainText()
        issues: list[Issue] = []
        check_template(subject, "invoice_subject", "subject", issues)
        check_template(body, "invoice_body", "text", issues)
        if issues:
            self.preview_subject.setStyleSheet(ERROR_STYLE + " font-weight: 600;")
            self.preview_subject.setText("The preview cannot be shown:")
            self.preview_body.setStyleSheet(ERROR_STYLE)
            self.preview_body.setPlainText("\n\n".join(i.message for i in issues))
            return
        values = sample_values()
        self.preview_subject.setStyleSheet("font-weight: 600;")
        self.preview_subject.setText(render(subject, values) or "(no subject)")
        self.preview_subject.setCursorPosition(0)
        self.preview_body.setStyleSheet("")
        self.preview_body.setPlainText(render(body, values))

    # --- the form's values ---
    def draft(self) -> MailSettingsDraft:
        return MailSettingsDraft(
            host=self.host.text(), port=self.port.text(), security=self.security.currentData() or "",
            username=self.username.text(), from_address=self.from_address.text(),
            from_name=self.from_name.text(), reply_to=self.reply_to.text(),
            bcc_office=self.bcc_office.isChecked(), invoice_subject=self.subject.text(),
            invoice_body=self.body.toPlainText())

    def show_issues(self, by_field: dict[str, list[str]]) -> None:
        leftover = self.form.show_issues(by_field)
        count = sum(len(v) for v in by_field.values())
        text = f"Please correct {count} problem{'s' if count != 1 else ''} before saving." if count else ""
        if leftover:
            text = "\n".join([text, *leftover]).strip()
        self.summary.setText(text)
        self.summary.setVisible(bool(count))
        first = self.form.first_invalid()
        if first is not None:
            self.scroll_area.ensureWidgetVisible(first.parentWidget() or first, 0, 16)

    # --- saving ---
    def save(self) -> None:
        draft = self.draft()
        _values, issues = validate_mail_settings(draft)
        if issues:
            self.show_issues(ValidationError(issues).by_field())
            return
        self.show_issues({})
        password = self.password.text()

        def work(session: Session) -> PasswordState:
            save_mail_settings(session, draft)
            if password:
                # Inside the transaction: if the keyring refuses, the settings are rolled back too.
                SecretStore().set(SMTP_PASSWORD, password)
            return password_state()

        def failed(exc: BaseException) -> bool:
            self.save_button.setEnabled(True)
            self.status.clear()
            if isinstance(exc, ValidationError):
                self.show_issues(exc.by_field())
                return True
            if isinstance(exc, KeyringUnavailableError):
                self._save_refused = True
                self.password_note.hide()  # the message below says it all
                self.show_issues({PASSWORD_FIELD: [str(exc)]})
                self.summary.setText("Nothing was saved: the password cannot be kept safely on this computer.")
                return True
            return False

        self.save_button.setEnabled(False)
        self.status.setText("Saving…")
        self.ops.write(self, work, lambda state: self._saved(state, bool(password)), on_failure=failed,
                       label="Saving e-mail settings")

    def _saved(self, state: PasswordState, password_saved: bool) -> None:
        self.save_button.setEnabled(True)
        self.password.clear()
        self._show_password_state(state)
        self.status.setText(f"Saved; the password is in {state.keyring}." if password_saved else "Saved.")
        self.saved.emit()

    def remove_password(self) -> None:
        def work(_ctx: OpContext) -> PasswordState:
            SecretStore().delete(SMTP_PASSWORD)
            return password_state()

        def removed(state: PasswordState) -> None:
            self._show_password_state(state)
            self.status.setText(f"The password was removed from {state.keyring}.")

        self.remove_password_button.setEnabled(False)
        self.ops.run(self, work, on_success=removed, label="Removing the password")

    # --- the test e-mail ---
    def send_test(self, to: str | None = None) -> None:
        """Ask for the address (the From address by default), then send with the settings as typed."""
        draft = self.draft()
        if to is None:
            to = ask_test_address(self, draft.from_address.strip())
        if not to:
            return
        typed = self.password.text()
        address = to

        def work(_ctx: OpContext) -> None:
            password: str | None = None
            if draft.username.strip():
                password = typed or SecretStore().get(SMTP_PASSWORD)
            send_test_email(draft, password, address)

        self.test_button.setEnabled(False)
        self.test_button.setText("Sending…")
        self.test_busy.show()
        self._show_test_result(f"Sending a test e-mail to {address} through {draft.host.strip()}:"
                               f"{draft.port.strip()}…", None)
        self.ops.run(self, work, on_success=lambda _r: self._test_done(address), on_failure=self._test_failed,
                     label="Sending a test e-mail")

    def _test_idle(self) -> None:
        self.test_button.setEnabled(True)
        self.test_button.setText("Send test e-mail…")
        self.test_busy.hide()

    def _show_test_result(self, text: str, ok: bool | None) -> None:
        self.test_result.setStyleSheet(MUTED_STYLE if ok is None else SUCCESS_STYLE if ok else ERROR_STYLE)
        self.test_result.setText(text)
        self.test_result.show()

    def _test_done(self, address: str) -> None:
        self._test_idle()
        text = f"The test e-mail was sent to {address}. Check that it arrived (and not in the spam folder)."
        self._show_test_result(text, True)
        self.test_finished.emit(True, text)

    def _test_failed(self, exc: BaseException) -> bool:
        self._test_idle()
        if isinstance(exc, ValidationError):
            by_field = exc.by_field()
            self.show_issues({k: v for k, v in by_field.items() if k != "to"})
            if not any(k != "to" for k in by_field):
                self.summary.hide()
            messages = by_field.get("to", [])
            text = "The test e-mail was not sent: " + (
                " ".join(messages) if messages else "correct the settings marked above first.")
        elif isinstance(exc, (MailError, KeyringUnavailableError)):
            text = f"The test e-mail was not sent. {exc}"
        else:
            return False  # a bug: the error dialog explains
        self._show_test_result(text, False)
        self.test_finished.emit(False, text)
        return True
