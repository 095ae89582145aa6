"""A client's payment methods, in the client window: the card or bank account
autopay charges, setup links that collect one, linking an existing Stripe
customer, and -- in the sandbox -- simulating the client on the hosted page
(the dialogs are in ui/client_payment_dialogs.py).

Every processor call runs through Ops with the gateway opened on the worker.
While a setup link is open and the panel is on screen it asks the processor
every few seconds whether the client has finished, so the new card appears
without anyone clicking.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor, QGuiApplication, QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from mspbill.db.engine import Database
from mspbill.db.models import Client, SetupLink
from mspbill.payments.gateway import (
    Gateway,
    InvalidRequest,
    ProcessorMode,
)
from mspbill.payments.methods import (
    LinkResult,
    PaymentProfile,
    PollReport,
    RefreshReport,
    SavedMethodView,
    SetupLinkResult,
    cancel_setup_link,
    create_setup_link,
    payment_profile,
    poll_setup_links,
    refresh_methods,
    remove_method,
    set_default,
)
from ui import payment_widgets as pw
from ui.client_payment_dialogs import (
    LinkCustomerDialog,
    SetupLinkDialog,
    SimulateDialog,
    email_setup_link,
    local_time,
)
from ui.ops import Ops
from ui.payment_widgets import (
    ModeBadge,
    PaymentSession,
    processor_failure,
    processor_message,
)
from ui.widgets import MUTED_STYLE, error_label, notice_label, show_notice

log = logging.getLogger(__name__)

POLL_INTERVAL_MS = 10_000
WARN_COLOR = QColor("#b3261e")


def method_notes(m: SavedMethodView) -> tuple[str, bool]:
    """What to say about a method, and whether it is a problem (shown in red)."""
    if m.hard_declined:
        return f"Declined for good ({m.hard_decline_reason}); autopay will not use it", True
    if m.expired:
        return f"Expired {m.expiry}", True
    if m.expires_before_next_run:
        return f"Expires {m.expiry}, before the next autopay run", True
    source = {"setup_link": "Saved by the client through a setup link",
              "linked_customer": "From the linked Stripe customer",
              "demo": "A sample of the demo office (sandbox)"}.get(m.source, "")
    return source, False


@dataclass(frozen=True)
class _Loaded:
    profile: PaymentProfile
    not_configured: str
    emails: tuple[str, ...]  # the saved billing addresses: where a setup link e-mail goes


# --- the panel ----------------------------------------------------------------------------


class ClientPaymentsPanel(QWidget):
    """The "Payment methods" tab of an existing client."""

    loaded = Signal()
    changed = Signal(int)  # the client id: a method was saved, removed or made default

    def __init__(self, ops: Ops, client_id: int, parent: QWidget | None = None):
        super().__init__(parent)
        self.ops = ops
        self.client_id = client_id
        self.session = PaymentSession.for_ops(ops)
        self.profile: PaymentProfile | None = None
        self.emails: list[str] = []
        self.link_dialog: SetupLinkDialog | None = None
        self.customer_dialog: LinkCustomerDialog | None = None
        self.simulate_dialog: SimulateDialog | None = None
        self._polling = False
        self._loaded_once = False
        self._build()
        self.poll_timer = QTimer(self)
        self.poll_timer.setInterval(POLL_INTERVAL_MS)
        self.poll_timer.timeout.connect(self.poll)

    def _build(self) -> None:
        # Top to bottom, each part as tall as its content: who the client is at the processor,
        # warnings, the methods (the table takes the spare height; without methods a stretch
        # at the bottom does, so nothing floats), the open link, the actions, the last notice.
        layout = self.main_layout = QVBoxLayout(self)
        layout.setSpacing(8)
        top = QHBoxLayout()
        self.badge = ModeBadge()  # hidden until the mode is known
        self.customer = QLabel("Loading…")
        self.customer.setStyleSheet(MUTED_STYLE)
        self.customer.setWordWrap(True)  # a long sentence wraps beside the badge, never under it
        self.customer.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        top.addWidget(self.customer, 1)
        top.addWidget(self.badge, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(top)
        self.warnings = error_label()
        layout.addWidget(self.warnings)

        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(("Payment method", "Expires", "Default", "Notes"))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        for col, width in ((0, 200), (1, 70), (2, 70)):
            self.table.setColumnWidth(col, width)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        layout.addWidget(self.table, 1)
        self.empty = QLabel("No card or bank account is on file. Send the client a payment setup link: they save "
                            "it on a secure page hosted by Stripe, and it appears here.")
        self.empty.setWordWrap(True)
        self.empty.setStyleSheet(MUTED_STYLE)
        self.empty.hide()
        layout.addWidget(self.empty)

        # What can be done to the selected method, right under the table.
        self.method_buttons = QWidget()
        mb = QHBoxLayout(self.method_buttons)
        mb.setContentsMargins(0, 0, 0, 0)
        self.default_button = QPushButton("Make default")
        self.default_button.setToolTip("Autopay and Charge now use the default method.")
        self.remove_button = QPushButton("Remove…")
        for button, handler in ((self.default_button, self.make_default), (self.remove_button, self.remove)):
            button.setAutoDefault(False)
            button.clicked.connect(lambda _c=False, h=handler: h())
            mb.addWidget(button)
        mb.addStretch()
        self.method_buttons.hide()
        layout.addWidget(self.method_buttons)

        # The open setup link, if any.
        self.link_box = QFrame()
        self.link_box.setObjectName("linkBox")
        self.link_box.setStyleSheet("#linkBox { background: #e8f0fe; border-radius: 6px; }")
        self.link_box.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)  # never padded out
        lb = QVBoxLayout(self.link_box)
        lb.setContentsMargins(10, 8, 10, 8)
        lb.setSpacing(6)
        self.link_text = QLabel()
        self.link_text.setWordWrap(True)
        self.link_text.setStyleSheet("color: #174ea6;")
        lb.addWidget(self.link_text)
        link_buttons = QHBoxLayout()
        self.copy_link_button = QPushButton("Copy link")
        self.email_link_button = QPushButton("E-mail it…")
        self.withdraw_button = QPushButton("Withdraw link")
        self.withdraw_button.setToolTip("Close the page so the link can no longer be used.")
        self.simulate_button = QPushButton("Simulate the client completing the link…")
        self.simulate_button.setToolTip("Sandbox only: act as the client on the hosted page and save a test "
                                        "card or bank account. No real card is involved.")
        for button, handler in ((self.copy_link_button, self.copy_link), (self.email_link_button, self.email_link),
                                (self.withdraw_button, self.withdraw_link),
                                (self.simulate_button, self.simulate)):
            button.setAutoDefault(False)
            button.clicked.connect(lambda _c=False, h=handler: h())
            link_buttons.addWidget(button)
            if button is self.withdraw_button:
                link_buttons.addStretch()
        lb.addLayout(link_buttons)
        self.link_box.hide()
        layout.addWidget(self.link_box)

        buttons = QHBoxLayout()
        self.send_link_button = QPushButton("Send payment setup link…")
        self.send_link_button.setToolTip("A secure page, hosted by Stripe, where the client saves a card or US bank "
                                         "account for autopay. mspbill never sees the number.")
        self.link_customer_button = QPushButton("Link existing Stripe customer…")
        self.link_customer_button.setToolTip("Use a customer that already exists in your Stripe account, with the "
                                             "cards and bank accounts saved there.")
        self.check_button = QPushButton("Check now")
        self.check_button.setToolTip("Ask the processor now: a setup link finished, a card renewed or removed.")
        for button, handler in ((self.send_link_button, self.send_link),
                                (self.link_customer_button, self.link_customer),
                                (self.check_button, self.check_now)):
            button.setAutoDefault(False)
            button.clicked.connect(lambda _c=False, h=handler: h())
            buttons.addWidget(button)
            if button is self.link_customer_button:
                buttons.addStretch()
        layout.addLayout(buttons)
        self.notice = notice_label()
        layout.addWidget(self.notice)
        self._tail = layout.count()
        layout.addStretch(1)  # takes the spare height while there is no table (see _loaded)
        self._update_buttons()

    # --- data ---
    def ensure_loaded(self) -> None:
        if not self._loaded_once:
            self.load()

    def load(self) -> None:
        client_id = self.client_id

        def work(s: Session) -> _Loaded:
            mode, note = pw.office_mode_and_note(s)
            client = s.get(Client, client_id)
            emails = tuple(client.email_list) if client is not None else ()
            return _Loaded(payment_profile(s, client_id, mode), note, emails)

        self.ops.read(self, work, self._loaded, label="Loading payment methods")

    def _loaded(self, loaded: _Loaded) -> None:
        self._loaded_once = True
        self.emails = list(loaded.emails)
        p = self.profile = loaded.profile
        self.badge.set_mode(p.mode)
        if p.mode is None:
            self.customer.setText(loaded.not_configured or "No payment processor is set up (Settings → Payments).")
        elif p.customer_id:
            how = "linked existing customer" if p.customer_linked else "customer"
            self.customer.setText(f"{'Stripe' if p.mode is not ProcessorMode.SANDBOX else 'Sandbox'} {how} "
                                  f"{p.customer_id}")
        else:
            self.customer.setText("Not yet a customer at the processor: sending a setup link creates one.")
        self.warnings.setText("\n".join(p.warnings))
        self.warnings.setVisible(bool(p.warnings))
        selected = self.selected_method()
        self.table.setRowCount(len(p.methods))
        for r, m in enumerate(p.methods):
            notes, problem = method_notes(m)
            cells = (m.label, m.expiry or "—", "✓ Default" if m.is_default else "", notes)
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, m.id)
                if problem and c in (0, 3):
                    item.setForeground(WARN_COLOR)
                if c == 3:
                    item.setToolTip(text)
                self.table.setItem(r, c, item)
            if selected is not None and m.id == selected.id:
                self.table.selectRow(r)
        self.table.setVisible(bool(p.methods))
        self.method_buttons.setVisible(bool(p.methods))
        self.main_layout.setStretch(self._tail, 0 if p.methods else 1)
        self.empty.setVisible(not p.methods and p.mode is not None)
        link = p.open_link
        if link is not None:
            sent = f" E-mailed to {link.sent_to}." if link.sent_to else " Not e-mailed yet."
            error = f" Last check: {link.last_error}" if link.last_error else ""
            self.link_text.setText(f"A payment setup link is open until {local_time(link.expires_at)}.{sent} "
                                   f"mspbill checks every few seconds whether the client has finished.{error}")
            self.simulate_button.setVisible(p.mode is ProcessorMode.SANDBOX)
        self.link_box.setVisible(link is not None)
        self._update_buttons()
        self._update_polling()
        self.loaded.emit()

    def selected_method(self) -> SavedMethodView | None:
        if self.profile is None:
            return None
        rows = {i.row() for i in self.table.selectedIndexes()}
        if len(rows) != 1:
            return None
        item = self.table.item(rows.pop(), 0)
        method_id = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        return next((m for m in self.profile.methods if m.id == method_id), None)

    def _update_buttons(self) -> None:
        usable = self.profile is not None and self.profile.mode is not None
        method = self.selected_method()
        for button in (self.send_link_button, self.link_customer_button, self.check_button):
            button.setEnabled(usable)
        self.link_customer_button.setText("Link existing Stripe customer…" if self.profile is None
                                          or self.profile.mode is not ProcessorMode.SANDBOX
                                          else "Link existing customer…")
        self.default_button.setEnabled(usable and method is not None and not method.is_default)
        self.remove_button.setEnabled(usable and method is not None)

    # --- polling while a link is open ---
    def _update_polling(self) -> None:
        wanted = self.isVisible() and self.profile is not None and self.profile.open_link is not None
        if wanted and not self.poll_timer.isActive():
            self.poll_timer.start()
        elif not wanted:
            self.poll_timer.stop()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._update_polling()

    def hideEvent(self, event: QHideEvent) -> None:
        super().hideEvent(event)
        self.poll_timer.stop()

    def poll(self) -> None:
        """Quietly ask whether the open link was completed; a problem is a note, never a dialog."""
        if self._polling:
            return
        self._polling = True
        client_id = self.client_id
        job = self.session.with_gateway(lambda db, gateway: poll_setup_links(db, gateway, client_id=client_id))

        def done(report: PollReport) -> None:
            self._polling = False
            if report.completed:
                self._saved_from_link(report)
            elif report.expired:
                show_notice(self.notice, "The setup link expired before the client used it. Send a new one.",
                            "warn")
                self.load()
            elif report.errors:
                show_notice(self.notice, f"Could not check the setup link: {report.errors[0]}", "warn")

        def failed(exc: BaseException) -> bool:
            self._polling = False
            log.info("polling the setup link of client %s failed: %s", client_id, exc)
            message = processor_message(exc)
            if message is not None:
                show_notice(self.notice, f"Could not check the setup link: {message}", "warn")
            return True

        self.ops.run(self, job, on_success=done, on_failure=failed, label="Checking the setup link")

    def _saved_from_link(self, report: PollReport) -> None:
        saved = ", ".join(text.split(": ", 1)[-1] for text in report.completed)
        show_notice(self.notice, f"The client saved {saved}; it is now the default for autopay.", "ok")
        self.load()
        self.changed.emit(self.client_id)

    # --- running processor work ---
    def _run(self, work: Callable[[Database, Gateway], object], done: Callable[[object], None], label: str,
             busy: QPushButton | None = None) -> None:
        """Processor work with the buttons held; a processor's or the core's refusal is a notice."""
        if busy is not None:
            busy.setEnabled(False)

        def finished(result: object) -> None:
            self._update_buttons()
            done(result)

        failed = processor_failure(lambda message: show_notice(self.notice, message, "error"),
                                   before=self._update_buttons)
        self.ops.run(self, self.session.with_gateway(work), on_success=finished, on_failure=failed, label=label)

    # --- actions ---
    def send_link(self) -> None:
        profile = self.profile
        if profile is None or profile.mode is None:
            return
        if profile.open_link is not None and not pw.ask_yes_no(
                self, "Send a new setup link",
                f"A setup link is already open until {local_time(profile.open_link.expires_at)}.\n\n"
                "Create a new one? The earlier link stops working."):
            return
        client_id = self.client_id
        self._run(lambda db, gateway: create_setup_link(db, gateway, client_id),
                  lambda result: self._link_created(result),  # type: ignore[arg-type]
                  "Creating a payment setup link", busy=self.send_link_button)

    def _link_created(self, result: SetupLinkResult) -> None:
        self.notice.hide()
        self.load()
        profile = self.profile
        self.link_dialog = SetupLinkDialog(self.ops, self, result.link_id, result.url, result.expires_at,
                                           profile.client_name if profile else "", self.emails,
                                           sandbox=profile is not None and profile.mode is ProcessorMode.SANDBOX)
        self.link_dialog.emailed.connect(lambda: self.load())
        self.link_dialog.open()

    def copy_link(self) -> None:
        link = self.profile.open_link if self.profile else None
        if link is not None:
            QGuiApplication.clipboard().setText(link.url)
            show_notice(self.notice, "The link is copied: paste it into an e-mail or a chat with the client.", "ok")

    def email_link(self) -> None:
        link = self.profile.open_link if self.profile else None
        if link is not None:
            email_setup_link(self.ops, self, link.id, self._notice_and_reload)

    def _notice_and_reload(self, text: str, kind: str = "ok") -> None:
        show_notice(self.notice, text, kind)
        self.load()

    def withdraw_link(self) -> None:
        link = self.profile.open_link if self.profile else None
        if link is None or not pw.ask_yes_no(self, "Withdraw the setup link",
                                             "Close the setup page so the link can no longer be used?"):
            return
        link_id = link.id
        self._run(lambda db, gateway: cancel_setup_link(db, gateway, link_id),
                  lambda _r: self._notice_and_reload("The setup link was withdrawn."),
                  "Withdrawing the setup link", busy=self.withdraw_button)

    def link_customer(self) -> None:
        profile = self.profile
        if profile is None or profile.mode is None:
            return
        self.customer_dialog = LinkCustomerDialog(self.ops, self, self.client_id, profile)
        self.customer_dialog.linked.connect(self._customer_linked)
        self.customer_dialog.open()

    def _customer_linked(self, result: LinkResult) -> None:
        text = f"Linked customer {result.customer_id}"
        text += f"; autopay will charge {result.default_label}." if result.default_label else (
            ". It has no card or bank account yet: send a setup link.")
        if result.replaced_customer:
            text += f" It replaces {result.replaced_customer}."
        show_notice(self.notice, text, "ok")
        self.load()
        self.changed.emit(self.client_id)

    def make_default(self) -> None:
        method = self.selected_method()
        if method is None:
            return
        method_id = method.id
        self._run(lambda db, gateway: set_default(db, gateway, method_id),
                  lambda label: self._method_changed(f"{label} is now the default for autopay."),
                  "Changing the default method", busy=self.default_button)

    def remove(self) -> None:
        method = self.selected_method()
        if method is None:
            return
        extra = " Autopay then charges the next method on file, if any." if method.is_default else ""
        if not pw.ask_yes_no(self, "Remove payment method",
                             f"Remove {method.label}?\n\nIt is detached at the processor and can no longer be "
                             f"charged; the client would have to save it again.{extra}"):
            return
        method_id = method.id
        self._run(lambda db, gateway: remove_method(db, gateway, method_id),
                  lambda text: self._method_changed(f"{text}."), "Removing the payment method",
                  busy=self.remove_button)

    def _method_changed(self, text: str) -> None:
        show_notice(self.notice, text, "ok")
        self.load()
        self.changed.emit(self.client_id)

    def check_now(self) -> None:
        client_id = self.client_id

        def work(db: Database, gateway: Gateway) -> tuple[PollReport, RefreshReport]:
            return poll_setup_links(db, gateway, client_id=client_id), refresh_methods(db, gateway, client_id)

        self._run(work, lambda result: self._checked(*result),  # type: ignore[misc]
                  "Checking payment methods", busy=self.check_button)

    def _checked(self, poll: PollReport, refresh: RefreshReport) -> None:
        parts = []
        if poll.completed:
            parts.append("Saved from the setup link: " + ", ".join(t.split(": ", 1)[-1] for t in poll.completed) + ".")
        if poll.expired:
            parts.append("The setup link expired unused.")
        if refresh.updated:
            parts.append(f"{refresh.updated} card{'s' if refresh.updated != 1 else ''} renewed (new expiry date).")
        if refresh.removed:
            parts.append("No longer at the processor, removed: " + ", ".join(refresh.removed) + ".")
        if refresh.customer_deleted:
            parts.append("The customer was deleted at the processor; the client is unlinked.")
        if poll.errors:
            parts.append("Problem: " + poll.errors[0])
        show_notice(self.notice, " ".join(parts) or "Up to date: nothing has changed at the processor.",
                    "warn" if poll.errors else "ok")
        self.load()
        if poll.completed or refresh.removed or refresh.customer_deleted or refresh.updated:
            self.changed.emit(self.client_id)

    def simulate(self) -> None:
        link = self.profile.open_link if self.profile else None
        if link is None:
            return
        self.simulate_dialog = SimulateDialog(self)
        link_id = link.id
        self.simulate_dialog.chosen.connect(lambda token: self._simulate(link_id, token))
        self.simulate_dialog.open()

    def _simulate(self, link_id: int, token: str) -> None:
        client_id = self.client_id

        def work(db: Database, gateway: Gateway) -> PollReport:
            complete = getattr(gateway, "complete_setup_session", None)
            if complete is None:
                raise InvalidRequest("Only the sandbox can simulate a client; with Stripe the client uses the link.")
            with db.session() as s:
                session_id = s.scalar(select(SetupLink.session_id).where(SetupLink.id == link_id))
            if session_id is None:
                raise InvalidRequest("That setup link no longer exists.")
            complete(session_id, token)
            return poll_setup_links(db, gateway, client_id=client_id)

        def done(report: PollReport) -> None:
            if report.completed:
                self._saved_from_link(report)
            else:
                self.load()

        self._run(work, done, "Simulating the client", busy=self.simulate_button)  # type: ignore[arg-type]
