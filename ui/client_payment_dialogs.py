"""The dialogs of a client's payment methods: the setup link is ready (e-mail it,
copy it), link an existing customer at the processor, and -- sandbox only --
act as the client on the hosted page.  Processor calls run through Ops with the
gateway opened on the worker, as in the panel (ui/client_payments.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from html import escape

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from mspbill.payments.gateway import ProcessorMode
from mspbill.payments.methods import (
    CustomerChoice,
    LinkResult,
    PaymentProfile,
    find_existing_customers,
    link_existing_customer,
    queue_setup_link_email,
)
from ui.ops import Ops
from ui.payment_widgets import ModeBadge, PaymentSession, processor_failure
from ui.widgets import (
    MUTED_STYLE,
    WARNING_STYLE,
    error_label,
    notice_label,
    show_notice,
)

# What the client could save on the sandbox's hosted page, and how each behaves when charged.
SIMULATED_METHODS: tuple[tuple[str, str], ...] = (
    ("Visa card — charges succeed", "pm_card_visa"),
    ("Mastercard — charges succeed", "pm_card_mastercard"),
    ("US bank account (ACH) — processing, then settles after a few days", "pm_usBankAccount_success"),
    ("Card with insufficient funds — declined, retried later", "pm_card_visa_chargeDeclinedInsufficientFunds"),
    ("Lost card — declined for good", "pm_card_visa_chargeDeclinedLostCard"),
    ("Card that asks for authentication — declined for good off-session", "pm_card_authenticationRequired"),
    ("Visa expiring this month", "pm_card_visa_expiring"),
)


def local_time(moment: dt.datetime) -> str:
    """"Nov 22, 2026 at 15:55", in this computer's time zone."""
    local = moment.astimezone()
    return f"{local:%b} {local.day}, {local:%Y} at {local:%H:%M}"


# --- e-mailing a link -----------------------------------------------------------------------


def email_setup_link(ops: Ops, parent: QWidget, link_id: int, report: Callable[[str, str], object]) -> None:
    """Queue the setup link e-mail in the outbox and send it now; `report(text, kind)` says how it went."""
    from ui.email_actions import EmailRunner, SendOutcome, headline

    def sent(outcome: SendOutcome) -> None:
        if outcome.ok and outcome.sent:
            report("The setup link was e-mailed to the client.", "ok")
        else:
            report(headline(outcome) + " It stays in the Outbox and is retried automatically.", "warn")

    def queued(message_id: int) -> None:
        EmailRunner.for_ops(ops).send(parent, [message_id], done=sent)

    ops.write(parent, lambda s: queue_setup_link_email(s, link_id), queued,
              on_failure=processor_failure(lambda message: report(message, "error")),
              label="Queueing the setup link e-mail")


class SetupLinkDialog(QDialog):
    """The link is ready: e-mail it to the client's billing addresses, or copy it."""

    emailed = Signal()

    def __init__(self, ops: Ops, parent: QWidget | None, link_id: int, url: str, expires_at: dt.datetime,
                 client_name: str, emails: list[str], *, sandbox: bool = False):
        super().__init__(parent)
        self.ops = ops
        self.link_id = link_id
        self.setWindowTitle("Payment setup link")
        self.setMinimumWidth(560)
        layout = QVBoxLayout(self)
        text = QLabel(f"The payment setup link for <b>{escape(client_name)}</b> is ready. On the page it opens, "
                      "hosted by Stripe, the client saves a card or US bank account; it then appears in their "
                      f"payment methods and autopay uses it.<br><br>It can be used until "
                      f"<b>{local_time(expires_at)}</b>.")
        text.setWordWrap(True)
        text.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(text)
        if sandbox:
            note = QLabel("Sandbox: this address opens nothing. Use “Simulate the client completing the link…” "
                          "to act as the client.")
            note.setWordWrap(True)
            note.setStyleSheet(MUTED_STYLE)
            layout.addWidget(note)
        row = QHBoxLayout()
        self.url = QLineEdit(url)
        self.url.setReadOnly(True)
        self.url.setCursorPosition(0)
        self.copy_button = QPushButton("Copy link")
        self.copy_button.setAutoDefault(False)
        self.copy_button.clicked.connect(self.copy)
        row.addWidget(self.url, 1)
        row.addWidget(self.copy_button)
        layout.addLayout(row)
        self.notice = notice_label()
        layout.addWidget(self.notice)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.email_button = self.buttons.addButton(
            f"E-mail it to {', '.join(emails)}" if emails else "E-mail it…", QDialogButtonBox.ButtonRole.ActionRole)
        if not emails:
            self.email_button.setEnabled(False)
            self.email_button.setToolTip("The client has no billing e-mail address: copy the link instead.")
        self.email_button.clicked.connect(self.email)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.url.text())
        show_notice(self.notice, "Copied: paste it into an e-mail or a chat with the client.", "ok")

    def email(self) -> None:
        self.email_button.setEnabled(False)

        def report(text: str, kind: str) -> None:
            show_notice(self.notice, text, kind)
            self.email_button.setEnabled(kind == "error")
            self.emailed.emit()

        email_setup_link(self.ops, self, self.link_id, report)


# --- linking an existing customer -------------------------------------------------------------


class LinkCustomerDialog(QDialog):
    """Customers at the processor with the client's e-mail addresses, or a typed cus_ id."""

    linked = Signal(object)  # LinkResult

    def __init__(self, ops: Ops, parent: QWidget | None, client_id: int, profile: PaymentProfile):
        super().__init__(parent)
        self.ops = ops
        self.client_id = client_id
        self.profile = profile
        self.session = PaymentSession.for_ops(ops)
        self.choices: list[CustomerChoice] = []
        self.setWindowTitle("Link an existing customer")
        self.setMinimumSize(900, 420)
        layout = QVBoxLayout(self)
        where = "the sandbox" if profile.mode is ProcessorMode.SANDBOX else "your Stripe account"
        intro = QLabel(f"Use a customer that already exists in {where} for {profile.client_name} — for example "
                       "one set up before mspbill — with the cards and bank accounts saved there. Customers with "
                       "the client's billing e-mail addresses:")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.table = QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(("Customer", "Name", "E-mail", "Default method", "Note"))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        self.table.horizontalHeader().setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)
        for col, width in ((0, 250), (1, 140), (2, 150), (3, 230)):
            self.table.setColumnWidth(col, width)
        self.table.itemSelectionChanged.connect(self._update)
        layout.addWidget(self.table, 1)
        self.search_note = QLabel("Looking for customers…")
        self.search_note.setWordWrap(True)
        self.search_note.setStyleSheet(MUTED_STYLE)
        layout.addWidget(self.search_note)
        row = QHBoxLayout()
        row.addWidget(QLabel("Or type the customer id:"))
        self.typed = QLineEdit()
        self.typed.setPlaceholderText("cus_…  (Stripe Dashboard → Customers → the customer)")
        self.typed.textChanged.connect(lambda _t: self._update())
        row.addWidget(self.typed, 1)
        layout.addLayout(row)
        self.replace_warning = QLabel()
        self.replace_warning.setWordWrap(True)
        self.replace_warning.setStyleSheet(WARNING_STYLE)
        self.replace_warning.hide()
        layout.addWidget(self.replace_warning)
        self.message = error_label()
        layout.addWidget(self.message)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.link_button = self.buttons.addButton("Link", QDialogButtonBox.ButtonRole.AcceptRole)
        self.link_button.setEnabled(False)
        self.buttons.accepted.connect(self.submit)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.search()

    def search(self) -> None:
        client_id = self.client_id
        job = self.session.with_gateway(lambda db, gateway: find_existing_customers(db, gateway, client_id))
        self.ops.run(self, job, on_success=self._found, on_failure=processor_failure(self.search_note.setText),
                     label="Looking up customers")

    def _found(self, choices: list[CustomerChoice]) -> None:
        self.choices = choices
        self.table.setRowCount(len(choices))
        for r, c in enumerate(choices):
            method = c.default_method_label or "no card or bank account"
            if c.method_count > 1:
                method += f" (+{c.method_count - 1} more)"
            note = f"Linked to {c.linked_to_client}" if c.linked_to_client else (
                "Linked to this client now" if c.customer_id == self.profile.customer_id else "")
            for col, text in enumerate((c.customer_id, c.name, c.email, method, note)):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                if c.linked_to_client:
                    item.setForeground(QColor("#8a8f98"))
                self.table.setItem(r, col, item)
        self.search_note.setText(f"{len(choices)} customer{'s' if len(choices) != 1 else ''} found." if choices
                                 else "No customer with the client's billing e-mail addresses was found.")
        if len(choices) == 1 and not choices[0].linked_to_client:
            self.table.selectRow(0)
        self._update()

    def chosen_id(self) -> str:
        typed = self.typed.text().strip()
        if typed:
            return typed
        rows = {i.row() for i in self.table.selectedIndexes()}
        return self.choices[rows.pop()].customer_id if len(rows) == 1 else ""

    def _update(self) -> None:
        chosen = self.chosen_id()
        current = self.profile.customer_id
        replacing = bool(chosen and current and chosen != current)
        if replacing:
            count = len(self.profile.methods)
            self.replace_warning.setText(
                f"{self.profile.client_name} is linked to {current} now. Linking {chosen} replaces it"
                + (f": the {count} card{'s' if count != 1 else ''} or bank account{'s' if count != 1 else ''} "
                   "saved through it will no longer be charged." if count else "."))
        self.replace_warning.setVisible(replacing)
        self.link_button.setText("Link and replace" if replacing else "Link")
        self.link_button.setEnabled(bool(chosen) and chosen != current)

    def submit(self) -> None:
        customer_id, client_id = self.chosen_id(), self.client_id
        if not customer_id:
            return
        self.link_button.setEnabled(False)
        self.message.hide()
        job = self.session.with_gateway(
            lambda db, gateway: link_existing_customer(db, gateway, client_id, customer_id))

        def done(result: LinkResult) -> None:
            self.linked.emit(result)
            self.accept()

        def refused(message: str) -> None:
            self.message.setText(message)
            self.message.show()

        self.ops.run(self, job, on_success=done, on_failure=processor_failure(refused, before=self._update),
                     label="Linking the customer")


# --- the sandbox's hosted page -------------------------------------------------------------


class SimulateDialog(QDialog):
    """Sandbox only: act as the client on the hosted page and save a test method."""

    chosen = Signal(str)  # the test token

    def __init__(self, parent: QWidget | None):
        super().__init__(parent)
        self.setWindowTitle("Simulate the client (sandbox)")
        self.setMinimumWidth(520)
        layout = QVBoxLayout(self)
        layout.addWidget(ModeBadge(ProcessorMode.SANDBOX), 0, Qt.AlignmentFlag.AlignLeft)
        text = QLabel("Act as the client on the setup page: choose what they save. Each test method behaves at "
                      "charge time the way a real one of its kind would at Stripe.")
        text.setWordWrap(True)
        layout.addWidget(text)
        self.methods = QListWidget()
        for label, token in SIMULATED_METHODS:
            item = QListWidgetItem(label)
            item.setData(Qt.ItemDataRole.UserRole, token)
            self.methods.addItem(item)
        self.methods.setCurrentRow(0)
        self.methods.setMinimumHeight(self.methods.sizeHintForRow(0) * len(SIMULATED_METHODS) + 8)
        self.methods.itemDoubleClicked.connect(lambda _i: self.accept())
        layout.addWidget(self.methods)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        buttons.addButton("Save this method", QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def choose(self, token: str) -> None:
        for row in range(self.methods.count()):
            if self.methods.item(row).data(Qt.ItemDataRole.UserRole) == token:
                self.methods.setCurrentRow(row)
                return
        raise ValueError(f"no test method {token!r}")

    def accept(self) -> None:
        item = self.methods.currentItem()
        super().accept()
        if item is not None:
            self.chosen.emit(str(item.data(Qt.ItemDataRole.UserRole)))

