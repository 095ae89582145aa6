"""Settings → Payments: which processor the office uses, this computer's Stripe
secret key, "Test connection", the options of payment setup links, and the
month-end batch's retry days and request limits.

The processor choice and the link options are the office's (in the database);
the key is this workstation's and goes to the OS keyring only (house rule 6),
written on a worker thread when the settings are saved.  The form learns only
whether a key is saved, its mode and a masked form -- never the key.  Without
a secure keyring it says so and a typed key is refused with nothing saved.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy.orm import Session

from mspbill.batch.retries import format_retry_days, parse_retry_days
from mspbill.batch.settings import (
    MARGIN_MAX,
    RATE_LIMIT_MAX,
    BatchSettings,
    batch_settings,
    save_batch_settings,
)
from mspbill.db.models import PaymentSettings
from mspbill.payments.gateway import (
    KeyProblem,
    NotConfiguredError,
    ProcessorMode,
    clean_secret_key,
    key_mode,
)
from mspbill.payments.processor import (
    NO_KEY,
    ConnectionReport,
    KeyStatus,
    PaymentSettingsDraft,
    check_connection,
    check_key_text,
    forget_cached_mode,
    sandbox_gateway,
    save_settings,
    save_stripe_key,
    settings_draft,
    stripe_gateway_for_key,
    stripe_key_status,
    validate_settings,
)
from mspbill.secrets import STRIPE_SECRET_KEY, KeyringUnavailableError, SecretStore
from mspbill.validation import ValidationError
from ui.ops import OpContext, Ops
from ui.payment_widgets import (
    ModeBadge,
    PaymentSession,
    close_gateway,
    processor_message,
)
from ui.widgets import (
    ERROR_STYLE,
    MUTED_STYLE,
    SUCCESS_STYLE,
    WARNING_STYLE,
    FieldForm,
    form_scroll,
    heading,
)

KEY_FIELD = "stripe_key"  # the core's field name for a pasted key (check_key_text)
PROCESSORS = (
    ("stripe", "Stripe", "Charge the cards and bank accounts clients save through Stripe's secure pages."),
    ("sandbox", "Sandbox — simulated, no money moves",
     ("A pretend processor for trying mspbill out and training: charges, declines and refunds behave like "
      "Stripe's, but nothing reaches a bank.")),
    ("none", "None", "Record payments by hand (checks, transfers); no autopay."),
)
NO_KEYRING_NOTE = (
    "No secure keyring is available on this computer, so the Stripe key cannot be saved here. mspbill keeps "
    "keys only in the operating system's keyring (Windows Credential Manager, the macOS Keychain, or GNOME "
    "Keyring or KWallet on Linux): start or unlock one, then paste the key again.")


@dataclass(frozen=True)
class _Loaded:
    draft: PaymentSettingsDraft
    account_id: str
    account_name: str
    batch: BatchSettings


def _load(session: Session) -> _Loaded:
    row = session.get(PaymentSettings, 1)
    return _Loaded(settings_draft(session), row.stripe_account_id if row else "",
                   row.stripe_account_name if row else "", batch_settings(session))


@dataclass(frozen=True)
class BatchDraft:
    """The Month-end batch group, as typed."""

    retry_days: str
    rate_limit_test: int
    rate_limit_live: int
    rate_margin_percent: int


def mode_of(processor: str, status: KeyStatus) -> ProcessorMode | None:
    """Where money would move with this processor choice and this computer's key (None: nowhere)."""
    if processor == "sandbox":
        return ProcessorMode.SANDBOX
    if processor == "stripe" and status.saved:
        return status.mode
    return None


def _section(title: str) -> QLabel:
    label = heading(title, 14)
    label.setContentsMargins(0, 10, 0, 0)
    return label


def _note(style: str = MUTED_STYLE) -> QLabel:
    label = QLabel()
    label.setWordWrap(True)
    label.setStyleSheet(style)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class PaymentSettingsForm(QWidget):
    saved = Signal()
    connection_checked = Signal(bool, str)  # reached?, the text shown

    def __init__(self, ops: Ops, parent: QWidget | None = None):
        super().__init__(parent)
        self.ops = ops
        self.session = PaymentSession.for_ops(ops)
        self.key_status = KeyStatus(saved=False)
        self._save_refused = False
        form_widget = QWidget()
        form_widget.setMaximumWidth(900)
        grid = QFormLayout(form_widget)
        grid.setContentsMargins(0, 0, 12, 0)
        self.form = FieldForm(grid)

        # --- the processor ---
        grid.addRow(heading("Payment processor", 14))
        choices = QWidget()
        cl = QVBoxLayout(choices)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.setSpacing(2)
        self.processor_group = QButtonGroup(self)
        self.processor_buttons: dict[str, QRadioButton] = {}
        for value, label, explanation in PROCESSORS:
            button = QRadioButton(label)
            self.processor_buttons[value] = button
            self.processor_group.addButton(button)
            note = _note()
            note.setText(explanation)
            note.setContentsMargins(22, 0, 0, 6)
            cl.addWidget(button)
            cl.addWidget(note)
        self.processor_buttons["none"].setChecked(True)
        self.form.add("processor", "Processor", choices)

        # --- the Stripe key (this computer's) ---
        self.key_heading = _section("Stripe secret key")
        grid.addRow(self.key_heading)
        saved_row = QWidget()
        sl = QHBoxLayout(saved_row)
        sl.setContentsMargins(0, 0, 0, 0)
        self.saved_key = QLabel("…")
        self.saved_key.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.key_badge = ModeBadge()
        self.remove_key_button = QPushButton("Remove key")
        self.remove_key_button.setToolTip("Delete the Stripe key from this computer's keyring. Autopay and "
                                          "Charge now stop working on this computer until a key is saved again.")
        self.remove_key_button.setEnabled(False)
        self.remove_key_button.clicked.connect(lambda: self.remove_key())
        sl.addWidget(self.saved_key)
        sl.addWidget(self.key_badge)
        sl.addStretch()
        sl.addWidget(self.remove_key_button)
        grid.addRow("Saved key", saved_row)
        self.saved_key_row = saved_row

        key_row = QWidget()
        kl = QVBoxLayout(key_row)
        kl.setContentsMargins(0, 0, 0, 0)
        kl.setSpacing(2)
        self.key = QLineEdit()
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        self.key.setPlaceholderText("Paste the secret key: sk_live_… or sk_test_…")
        self.key.setToolTip("Stripe Dashboard → Developers → API keys → Secret key. Kept in this computer's "
                            "keyring, never in a file. Leave it empty to keep the saved key.")
        kl.addWidget(self.key)
        self.key_note = _note()
        kl.addWidget(self.key_note)
        self.form.add(KEY_FIELD, "New key", key_row)
        self.form.rows[KEY_FIELD].editor = self.key  # the red frame goes on the field

        # --- test connection ---
        test_row = QWidget()
        tl = QVBoxLayout(test_row)
        tl.setContentsMargins(0, 0, 0, 0)
        tl.setSpacing(4)
        line = QHBoxLayout()
        self.test_button = QPushButton("Test connection")
        self.test_button.setToolTip("Reach the processor now with the key as typed (or the saved one) and show "
                                    "which account it belongs to.")
        self.test_button.clicked.connect(lambda: self.test_connection())
        self.test_button.setMinimumWidth(self.test_button.sizeHint().width() + 20)  # no jump at "Testing…"
        line.addWidget(self.test_button)
        self.account = _note()
        line.addWidget(self.account, 1)
        tl.addLayout(line)
        self.test_result = _note()
        self.test_result.hide()
        tl.addWidget(self.test_result)
        grid.addRow("Connection", test_row)
        self.grid = grid

        # --- setup links ---
        grid.addRow(_section("Payment setup links"))
        intro = _note()
        intro.setText("A setup link opens a page hosted by Stripe where the client saves a card or bank account; "
                      "mspbill never sees the number.")
        grid.addRow(intro)
        url_row = QWidget()
        ul = QVBoxLayout(url_row)
        ul.setContentsMargins(0, 0, 0, 0)
        ul.setSpacing(2)
        self.success_url = QLineEdit()
        self.success_url.setPlaceholderText("https://www.your-company.com/thank-you (optional)")
        ul.addWidget(self.success_url)
        url_note = _note()
        url_note.setText("Where the client lands after saving their card. Empty: a plain confirmation page.")
        ul.addWidget(url_note)
        self.form.add("setup_success_url", "Page after setup", url_row)
        self.form.rows["setup_success_url"].editor = self.success_url  # the red frame goes on the field
        self.link_hours = QSpinBox()
        self.link_hours.setRange(1, 24)
        self.link_hours.setValue(24)
        self.link_hours.setSuffix(" hours")
        self.link_hours.setMaximumWidth(120)
        self.link_hours.setToolTip("Stripe keeps a setup page open for at most 24 hours.")
        self.form.add("setup_link_hours", "Link stays usable", self.link_hours)

        # --- the month-end batch ---
        grid.addRow(_section("Month-end batch"))
        batch_intro = _note()
        batch_intro.setText("When the month-end run charges a declined card again, and how fast it may ask the "
                            "processor.")
        grid.addRow(batch_intro)
        retry_row = QWidget()
        rl = QVBoxLayout(retry_row)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.setSpacing(2)
        self.retry_days = QLineEdit()
        self.retry_days.setPlaceholderText("3, 5, 7")
        self.retry_days.setMaximumWidth(220)
        rl.addWidget(self.retry_days)
        retry_note = _note()
        retry_note.setText("Days after the first decline on which a run charges a soft decline (insufficient "
                           "funds, a processing error) again. Empty: never. A hard decline (lost card, closed "
                           "account) is never retried; the client is sent a new setup link.")
        rl.addWidget(retry_note)
        self.form.add("retry_days", "Retry after (days)", retry_row)
        self.form.rows["retry_days"].editor = self.retry_days  # the red frame goes on the field
        self.rate_test = self._rate_box(" requests/s", RATE_LIMIT_MAX)
        self.form.add("rate_limit_test", "Test-mode limit", self.rate_test)
        self.rate_live = self._rate_box(" requests/s", RATE_LIMIT_MAX)
        self.form.add("rate_limit_live", "Live-mode limit", self.rate_live)
        margin_row = QWidget()
        ml = QVBoxLayout(margin_row)
        ml.setContentsMargins(0, 0, 0, 0)
        ml.setSpacing(2)
        self.rate_margin = self._rate_box(" %", MARGIN_MAX, minimum=0)
        ml.addWidget(self.rate_margin)
        margin_note = _note()
        margin_note.setText("Stripe allows 25 requests a second in test mode and 100 live; the run stays this "
                            "far below the limit.")
        ml.addWidget(margin_note)
        self.form.add("rate_margin_percent", "Margin below the limit", margin_row)
        self.form.rows["rate_margin_percent"].editor = self.rate_margin
        self.set_batch(BatchSettings())

        scroll = form_scroll(form_widget)
        self.scroll_area = scroll

        self.summary = QLabel()
        self.summary.setStyleSheet(ERROR_STYLE)
        self.summary.setWordWrap(True)
        self.summary.hide()
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.save_button = QPushButton("Save")
        self.save_button.setDefault(True)
        self.save_button.clicked.connect(self.save)
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        bottom.addWidget(self.save_button)
        layout = QVBoxLayout(self)
        layout.addWidget(scroll, 1)
        layout.addWidget(self.summary)
        layout.addLayout(bottom)

        self.processor_group.buttonToggled.connect(lambda _b, _on: self._processor_changed())
        self.key.textChanged.connect(lambda _t: self._key_typed())
        self._processor_changed()

    @staticmethod
    def _rate_box(suffix: str, maximum: int, minimum: int = 1) -> QSpinBox:
        box = QSpinBox()
        box.setRange(minimum, maximum)
        box.setSuffix(suffix)
        box.setMaximumWidth(140)
        return box

    # --- values ---
    def batch_draft(self) -> BatchDraft:
        return BatchDraft(self.retry_days.text(), self.rate_test.value(), self.rate_live.value(),
                          self.rate_margin.value())

    def set_batch(self, batch: BatchSettings) -> None:
        self.retry_days.setText(format_retry_days(batch.retry_days))
        self.rate_test.setValue(batch.rate_limit_test)
        self.rate_live.setValue(batch.rate_limit_live)
        self.rate_margin.setValue(batch.rate_margin_percent)

    def processor(self) -> str:
        return next((v for v, b in self.processor_buttons.items() if b.isChecked()), "none")

    def set_processor(self, value: str) -> None:
        self.processor_buttons.get(value, self.processor_buttons["none"]).setChecked(True)

    def draft(self) -> PaymentSettingsDraft:
        return PaymentSettingsDraft(processor=self.processor(), setup_success_url=self.success_url.text(),
                                    setup_link_hours=str(self.link_hours.value()))

    # --- loading ---
    def load(self) -> None:
        self.setEnabled(False)
        self.ops.read(self, _load, self._loaded, label="Loading payment settings")
        self.refresh_key_status()

    def refresh_key_status(self) -> None:
        self.ops.run(self, lambda _ctx: stripe_key_status(), on_success=self._show_key_status,
                     label="Asking the keyring")

    def _loaded(self, loaded: _Loaded) -> None:
        self.setEnabled(True)
        d = loaded.draft
        self.set_processor(d.processor)
        self.success_url.setText(d.setup_success_url)
        self.link_hours.setValue(int(d.setup_link_hours) if d.setup_link_hours.isdigit() else 24)
        self.set_batch(loaded.batch)
        self.key.clear()
        self.show_issues({})
        self.test_result.hide()
        if loaded.account_id:
            name = f"{loaded.account_name} " if loaded.account_name else ""
            self.account.setText(f"Last connected: {name}({loaded.account_id})")
        else:
            self.account.setText("")

    def _show_key_status(self, status: KeyStatus) -> None:
        self.key_status = status
        self._save_refused = False
        self.remove_key_button.setEnabled(status.saved)
        if status.saved:
            kind = "restricted key " if status.restricted else ""
            self.saved_key.setText(f"{kind}{status.masked}")
            self.saved_key.setStyleSheet("font-family: monospace;")
            self.key_badge.set_mode(status.mode)
            self.key.setPlaceholderText("Paste a new key to replace the saved one")
        else:
            self.saved_key.setText("No key saved on this computer")
            self.saved_key.setStyleSheet(MUTED_STYLE)
            self.key_badge.hide()
            self.key.setPlaceholderText("cannot be saved on this computer" if status.problem
                                        else "Paste the secret key: sk_live_… or sk_test_…")
        self._key_typed()

    # --- live parts ---
    def _processor_changed(self) -> None:
        # The key is Stripe's alone: its rows are shown only when Stripe is chosen.
        stripe = self.processor() == "stripe"
        for widget in (self.key_heading, self.saved_key_row, self.form.rows[KEY_FIELD]):
            self.grid.setRowVisible(widget, stripe)
        self.test_button.setEnabled(self.processor() != "none")
        self.test_result.hide()

    def _key_typed(self) -> None:
        """Check a pasted key at once: a publishable key is refused before anything is saved."""
        text = self.key.text()
        status = self.key_status
        if text.strip():
            issues = check_key_text(text)
            self.form.rows[KEY_FIELD].set_error([i.message for i in issues])
            if issues:
                self.key_note.hide()
                return
            mode = key_mode(clean_secret_key(text))
            self._set_key_note("A live key: charges and refunds will move real money." if mode is ProcessorMode.LIVE
                               else "A test key: Stripe test mode, no real money moves.",
                               WARNING_STYLE if mode is ProcessorMode.LIVE else MUTED_STYLE)
            return
        self.form.rows[KEY_FIELD].set_error(None)
        if status.problem:
            self._set_key_note(NO_KEYRING_NOTE, WARNING_STYLE)
            found = re.search(r"\(found: ([^)]*)\)", status.problem)
            self.key_note.setToolTip(f"Keyrings found: {found.group(1)}." if found else "")
        elif status.saved:
            self._set_key_note(f"Kept in {status.keyring} on this computer, never in a file. Each computer "
                               "that charges clients keeps its own copy.", MUTED_STYLE)
        else:
            self._set_key_note(f"It will be kept in {status.keyring or 'the keyring'} on this computer, never in "
                               "a file.", MUTED_STYLE)
        if self._save_refused:
            self.key_note.hide()

    def _set_key_note(self, text: str, style: str) -> None:
        self.key_note.setStyleSheet(style)
        self.key_note.setText(text)
        self.key_note.setToolTip("")
        self.key_note.show()

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
            self.scroll_area.ensureWidgetVisible(first, 0, 16)

    # --- saving ---
    def save(self) -> None:
        draft = self.draft()
        batch = self.batch_draft()
        key_text = self.key.text() if draft.processor == "stripe" else ""
        _values, issues = validate_settings(draft)
        if key_text.strip():
            issues += check_key_text(key_text)
        try:
            parse_retry_days(batch.retry_days)
        except ValidationError as exc:
            issues += exc.issues
        if issues:
            self.show_issues(ValidationError(issues).by_field())
            return
        self.show_issues({})

        def work(session: Session) -> KeyStatus:
            save_settings(session, draft)
            save_batch_settings(session, batch.retry_days, batch.rate_limit_test, batch.rate_limit_live,
                                batch.rate_margin_percent)
            if key_text.strip():
                # Inside the transaction: if the keyring refuses, the processor choice is rolled back too.
                return save_stripe_key(key_text)
            return stripe_key_status()

        def failed(exc: BaseException) -> bool:
            self.save_button.setEnabled(True)
            self.status.clear()
            if isinstance(exc, ValidationError):
                self.show_issues(exc.by_field())
                return True
            if isinstance(exc, (KeyringUnavailableError, KeyProblem)):
                self._save_refused = True
                self.key_note.hide()  # the message at the field says it all
                self.show_issues({KEY_FIELD: [str(exc)]})
                self.summary.setText("Nothing was saved: the Stripe key cannot be kept safely on this computer."
                                     if isinstance(exc, KeyringUnavailableError) else "Nothing was saved.")
                return True
            return False

        self.save_button.setEnabled(False)
        self.status.setText("Saving…")
        self.ops.write(self, work, lambda status: self._saved(status, bool(key_text.strip()), draft.processor),
                       on_failure=failed, label="Saving payment settings")

    def _saved(self, status: KeyStatus, key_saved: bool, processor: str) -> None:
        self.save_button.setEnabled(True)
        self.key.clear()
        self._show_key_status(status)
        self.status.setStyleSheet(SUCCESS_STYLE)
        self.status.setText(f"Saved; the key is in {status.keyring}." if key_saved else "Saved.")
        self.session.set_mode(mode_of(processor, status))  # the status bar's badge follows
        self.saved.emit()

    def remove_key(self) -> None:
        from ui.payment_widgets import ask_yes_no

        if not ask_yes_no(self, "Remove the Stripe key",
                          "Remove the Stripe secret key from this computer's keyring?\n\nAutopay and Charge now "
                          "stop working on this computer until a key is pasted again. Nothing changes at Stripe."):
            return

        def work(ctx: OpContext) -> tuple[KeyStatus, str]:
            SecretStore().delete(STRIPE_SECRET_KEY)
            forget_cached_mode()
            with ctx.db.session() as s:
                processor = settings_draft(s).processor  # as saved, whatever the form shows now
            return stripe_key_status(), processor

        def removed(result: tuple[KeyStatus, str]) -> None:
            status, processor = result
            self._show_key_status(status)
            self.status.setStyleSheet("")
            self.status.setText(f"The Stripe key was removed from {status.keyring}.")
            self.session.set_mode(mode_of(processor, status))
            self.saved.emit()

        self.remove_key_button.setEnabled(False)
        self.ops.run(self, work, on_success=removed, label="Removing the Stripe key")

    # --- test connection ---
    def test_connection(self) -> None:
        """With the processor as chosen here and the key as typed (or the saved one), saved or not."""
        processor = self.processor()
        typed = self.key.text() if processor == "stripe" else ""
        if typed.strip() and check_key_text(typed):
            self._key_typed()
            return
        data_dir = self.session.data_dir

        def work(ctx: OpContext) -> ConnectionReport:
            if processor == "sandbox":
                if data_dir is None:
                    raise NotConfiguredError("mspbill does not know its data folder.")
                gateway = sandbox_gateway(data_dir)
            else:
                key = clean_secret_key(typed) if typed.strip() else SecretStore().get(STRIPE_SECRET_KEY)
                if not key:
                    raise NotConfiguredError(NO_KEY.replace("Paste it in Settings → Payments", "Paste it above"))
                gateway = stripe_gateway_for_key(key)
            try:
                return check_connection(ctx.db, gateway)
            finally:
                close_gateway(gateway)

        self.test_button.setEnabled(False)
        self.test_button.setText("Testing…")
        self._show_test("Reaching the processor…", None)
        self.ops.run(self, work, on_success=self._tested, on_failure=self._test_failed,
                     label="Testing the processor connection")

    def _test_idle(self) -> None:
        self.test_button.setText("Test connection")
        self.test_button.setEnabled(self.processor() != "none")

    def _show_test(self, text: str, ok: bool | None) -> None:
        self.test_result.setStyleSheet(MUTED_STYLE if ok is None else SUCCESS_STYLE if ok else ERROR_STYLE)
        self.test_result.setText(text)
        self.test_result.show()

    def _tested(self, report: ConnectionReport) -> None:
        self._test_idle()
        info = report.info
        if info.mode is ProcessorMode.SANDBOX:
            text = "The sandbox answers: charges and refunds are simulated; no money moves."
        else:
            who = info.display_name or "your Stripe account"
            text = f"Connected to {who}" + (f" ({info.account_id})" if info.account_id else "")
            text += f" in {'LIVE mode: real money' if info.mode is ProcessorMode.LIVE else 'test mode'}."
            if info.restricted_key:
                text += " This is a restricted key: it works only for what it was given permission to do."
            self.account.setText(f"Last connected: {info.display_name} ({info.account_id})" if info.account_id
                                 else "")
        self._show_test(text, True)
        if report.warning:
            self.test_result.setText(f"{text}\n\n⚠ {report.warning}")
            self.test_result.setStyleSheet(WARNING_STYLE)
        self.connection_checked.emit(True, self.test_result.text())

    def _test_failed(self, exc: BaseException) -> bool:
        self._test_idle()
        message = processor_message(exc)
        if message is None:
            if isinstance(exc, KeyProblem):
                message = str(exc)
            else:
                return False  # a bug: the error dialog explains
        text = f"Could not connect. {message}"
        self._show_test(text, False)
        self.connection_checked.emit(False, text)
        return True
