"""E-mail from the desktop app: the one runner that sends the outbox, and the
"e-mail these invoices" flow every window shares.

    runner = EmailRunner.for_ops(ops)        # the main window's: window.email_runner
    runner.send(parent)                      # every due message, progress dialog, then a summary
    runner.send(parent, [outbox_id, …])      # these messages (queued or retried ones)
    runner.send_in_background()              # due messages, status bar only (start-up, every 5 minutes)
    email_invoices(parent, ops, runner, [invoice_id, …], done=callback)
    email_unsent_invoices(parent, ops, runner)

The runner sends through `Ops.run` (house rule 2): the SMTP password is read
from the keyring in the worker, only when the account has a user name, and
never crosses to the UI thread.  One send at a time in this process: a send
asked for while another runs waits for it (a background one is skipped).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import shiboken6
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from mspbill.db.models import (
    Client,
    Invoice,
    OutboxMessage,
    OutboxStatus,
)
from mspbill.mail import (
    QueueReport,
    SendReport,
    SkippedInvoice,
    UnsentCount,
    count_unsent_invoices,
    is_configured,
    queue_invoice_email,
    queue_unsent_invoices,
    queued_message_ids,
    send_outbox,
)
from mspbill.secrets import SMTP_PASSWORD, SecretStore
from mspbill.validation import ValidationError
from ui.ops import OpContext, Ops, describe_error

LISTED_MAX = 8  # lines per list in a summary; the Outbox shows the rest
SHOW_PROGRESS_AFTER_MS = 400  # a quick send does not flash a dialog
SETTINGS_PLACE = "Settings → E-mail"


def keyring_password() -> str | None:
    """The saved SMTP password; called on a worker thread, only when the account has a user name."""
    return SecretStore().get(SMTP_PASSWORD)


# --- what a send did, as frozen values for the UI thread --------------------------

@dataclass(frozen=True)
class MessageProblem:
    """A message that did not go: failed for good, or waiting for another try."""

    outbox_id: int
    status: str           # "failed" or "queued"
    label: str            # "INV-000123 (Zephyr Labs, ap@zephyr.example)"
    reason: str


@dataclass(frozen=True)
class SendOutcome:
    """The end of one send, user-started or in the background.

    With explicit message ids the counts are those messages' statuses after the
    run, so a message another send took meanwhile still counts as sent."""

    report: SendReport = field(default_factory=SendReport)
    sent: int = 0
    failed: int = 0
    still_queued: int = 0
    problems: tuple[MessageProblem, ...] = ()
    skipped: tuple[SkippedInvoice, ...] = ()
    background: bool = False
    error: str = ""       # the run itself broke (a bug, the database); shown, logged

    @property
    def attempted(self) -> int:
        return self.sent + self.failed + self.still_queued

    @property
    def ok(self) -> bool:
        return not (self.failed or self.still_queued or self.skipped or self.error)


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _listed(lines: list[str]) -> str:
    shown = [f"• {line}" for line in lines[:LISTED_MAX]]
    if len(lines) > LISTED_MAX:
        shown.append(f"… and {len(lines) - LISTED_MAX} more (see the Outbox).")
    return "\n".join(shown)


def headline(outcome: SendOutcome) -> str:
    """One sentence: "3 e-mails sent, 1 failed, 2 still queued." """
    if outcome.error:
        return "Sending e-mail failed."
    if not outcome.attempted:
        if outcome.skipped:
            return f"Nothing was e-mailed: {_plural(len(outcome.skipped), 'invoice')} could not be."
        return "Nothing to send: no e-mail is waiting in the Outbox."
    parts = [f"{_plural(outcome.sent, 'e-mail')} sent"]
    if outcome.failed:
        parts.append(f"{outcome.failed} failed")
    if outcome.still_queued:
        parts.append(f"{outcome.still_queued} still queued")
    return ", ".join(parts) + "."


def details(outcome: SendOutcome) -> str:
    """What went wrong and what happens next, in paragraphs."""
    report = outcome.report
    paragraphs: list[str] = []
    if outcome.error:
        paragraphs.append(outcome.error)
    waiting_count = outcome.still_queued
    one = waiting_count == 1
    the_unsent = "The e-mail not sent" if one else f"The {waiting_count} e-mails not sent"
    if report.cancelled and waiting_count:
        paragraphs.append(
            f"You stopped the run. {the_unsent} yet {'stays' if one else 'stay'} in the Outbox and "
            f"{'goes' if one else 'go'} with the next send (automatically within a few minutes), unless you "
            f"discard {'it' if one else 'them'} there.")
    elif report.stopped_reason and waiting_count:
        paragraphs.append(f"Sending stopped: {report.stopped_reason}")
        paragraphs.append(f"{the_unsent} {'stays' if one else 'stay'} in the Outbox and "
                          f"{'is' if one else 'are'} retried automatically.")
    failed = [f"{p.label}: {p.reason}" for p in outcome.problems if p.status == "failed"]
    if failed:
        paragraphs.append("Failed (fix the problem, then choose Retry in the Outbox):\n" + _listed(failed))
    waiting = [f"{p.label}: {p.reason}" for p in outcome.problems
               if p.status == "queued" and p.reason and p.reason != report.stopped_reason]
    if waiting:
        paragraphs.append("Waiting for another try (automatic):\n" + _listed(waiting))
    if outcome.skipped:
        skipped = [f"{s.number or 'An invoice'}{f' ({s.client_name})' if s.client_name else ''}: {s.reason}"
                   for s in outcome.skipped]
        paragraphs.append("Not e-mailed:\n" + _listed(skipped))
    return "\n\n".join(paragraphs)


def status_text(outcome: SendOutcome, now: dt.datetime | None = None) -> tuple[str, str, bool]:
    """For the status bar: (short text, full text for the tooltip, is it a problem)."""
    at = (now or dt.datetime.now()).strftime("%H:%M")
    if outcome.error:
        return f"E-mail: sending failed at {at}", outcome.error, True
    if outcome.still_queued or outcome.failed:
        waiting = outcome.still_queued + outcome.failed
        text = f"E-mail: {_plural(waiting, 'message')} not sent ({at}), see the Outbox"
        return text, "\n\n".join(x for x in (headline(outcome), details(outcome)) if x), True
    return f"E-mail: {_plural(outcome.sent, 'message')} sent at {at}", headline(outcome), False


# --- the worker's side ------------------------------------------------------------

def _label(number: str | None, client: str | None, to: str) -> str:
    inside = ", ".join(x for x in (client, to) if x)
    return f"{number or 'E-mail'}{f' ({inside})' if inside else ''}"


def _outcome(session: Session, report: SendReport, requested: list[int] | None,
             skipped: Sequence[SkippedInvoice], background: bool) -> SendOutcome:
    ids = list(requested) if requested is not None else list(report.errors)
    rows: list[Any] = []
    for i in range(0, len(ids), 500):
        rows += session.execute(
            select(OutboxMessage.id, OutboxMessage.status, OutboxMessage.last_error, OutboxMessage.to_addrs,
                   Invoice.number, Client.legal_name)
            .outerjoin(Invoice, Invoice.id == OutboxMessage.invoice_id)
            .outerjoin(Client, Client.id == OutboxMessage.client_id)
            .where(OutboxMessage.id.in_(ids[i:i + 500]))).all()
    problems: list[MessageProblem] = []
    counts = {"sent": 0, "failed": 0, "queued": 0}
    position = {message_id: n for n, message_id in enumerate(ids)}
    for message_id, status, last_error, to, number, client in sorted(rows, key=lambda r: position[r[0]]):
        state = "queued" if status in (OutboxStatus.QUEUED, OutboxStatus.SENDING) else status.value
        counts[state] = counts.get(state, 0) + 1
        if state in ("failed", "queued"):
            problems.append(MessageProblem(message_id, state, _label(number, client, to),
                                           report.errors.get(message_id) or last_error))
    if requested is None:  # every due message: the run's own counts
        counts = {"sent": report.sent, "failed": report.failed, "queued": report.still_queued}
    return SendOutcome(report, counts["sent"], counts["failed"], counts["queued"], tuple(problems),
                       tuple(skipped), background)


ALL_QUEUED = "all queued"


def _send_work(message_ids: list[int] | str | None, skipped: Sequence[SkippedInvoice], background: bool,
               password: Callable[[], str | None]) -> Callable[[OpContext], SendOutcome | None]:
    def work(ctx: OpContext) -> SendOutcome | None:
        with ctx.db.session() as session:
            if not is_configured(session):
                return None
            ids = queued_message_ids(session) if message_ids == ALL_QUEUED else message_ids
        assert not isinstance(ids, str)
        report = send_outbox(ctx.db, password, message_ids=ids, progress=ctx.progress,
                             cancelled=lambda: ctx.cancelled)
        with ctx.db.session() as session:
            return _outcome(session, report, ids, skipped, background)
    return work


# --- the progress dialog ------------------------------------------------------------

class SendProgressDialog(QDialog):
    """Counts, the current recipient, and Cancel (stops before the next message)."""

    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None, title: str = "Sending e-mail"):
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setWindowModality(Qt.WindowModality.WindowModal)
        self.setMinimumWidth(460)
        layout = QVBoxLayout(self)
        self.headline = QLabel("Preparing…")
        self.headline.setStyleSheet("font-size: 14px; font-weight: 600;")
        self.detail = QLabel()
        self.detail.setWordWrap(True)
        self.detail.setStyleSheet("color: #5f6368;")
        self.bar = QProgressBar()
        self.bar.setRange(0, 0)  # busy until the first count arrives
        self.bar.setTextVisible(False)
        layout.addWidget(self.headline)
        layout.addWidget(self.detail)
        layout.addWidget(self.bar)
        buttons = QHBoxLayout()
        buttons.addStretch()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop after the message being sent now; the others stay in the Outbox.")
        self.cancel_button.clicked.connect(self.reject)
        buttons.addWidget(self.cancel_button)
        layout.addLayout(buttons)
        self._finished = False

    def show_if_running(self) -> None:
        if not self._finished:
            self.show()

    def waiting(self) -> None:
        self.show()
        self.headline.setText("Waiting…")
        self.detail.setText("Another send is under way; this one starts when it is done.")

    def progress(self, done: int, total: int, text: str) -> None:
        if total <= 0:
            return
        self.bar.setRange(0, total)
        self.bar.setValue(done)
        self.headline.setText(f"Sent {done} of {_plural(total, 'e-mail')}" if done < total
                              else f"Sent {_plural(total, 'e-mail')}")
        self.detail.setText(text)

    def reject(self) -> None:
        # Esc, the window's close button and Cancel all mean "stop after this message".
        if self._finished:
            super().reject()
            return
        if self.cancel_button.isEnabled():
            self.cancel_button.setEnabled(False)
            self.cancel_button.setText("Stopping…")
            self.detail.setText("Stopping after the message being sent now…")
            self.cancel_requested.emit()

    def finish(self) -> None:
        self._finished = True
        self.done(QDialog.DialogCode.Accepted)
        self.deleteLater()


# --- the runner ------------------------------------------------------------------------

@dataclass(eq=False)
class _Request:
    message_ids: list[int] | str | None
    background: bool
    parent: QWidget | None
    skipped: tuple[SkippedInvoice, ...]
    done: Callable[[SendOutcome], None] | None
    dialog: SendProgressDialog | None = None


def main_window_of(widget: QWidget | None) -> Any:
    """The main window a widget belongs to (it has `show_outbox`), or None."""
    w = widget
    while w is not None and shiboken6.isValid(w):
        if hasattr(w, "show_outbox") and hasattr(w, "show_mail_settings"):
            return w
        w = w.parentWidget()
    return None


class EmailRunner(QObject):
    """Sends the outbox for one main window; one send at a time in this process."""

    started = Signal()
    finished = Signal(object)  # SendOutcome, after every send (user-started or background)

    # Shared by every runner of this process (touched on the UI thread only).
    _busy: ClassVar[bool] = False
    _waiting: ClassVar[list[tuple[EmailRunner, _Request]]] = []

    def __init__(self, ops: Ops, parent: QObject | None = None, *,
                 password: Callable[[], str | None] = keyring_password):
        super().__init__(parent)
        self.ops = ops
        self.password = password
        self.running = False
        self.report_box: QMessageBox | None = None
        self.last_outcome: SendOutcome | None = None
        self._handle: Any = None

    @classmethod
    def for_ops(cls, ops: Ops) -> EmailRunner:
        """The runner of this Ops (one per main window), made on first use."""
        runner = getattr(ops, "_email_runner", None)
        if not isinstance(runner, EmailRunner):
            runner = cls(ops, ops)
            ops._email_runner = runner  # type: ignore[attr-defined]
        return runner

    @classmethod
    def busy(cls) -> bool:
        return cls._busy

    def send(self, parent: QWidget | None, message_ids: list[int] | str | None = None, *,
             skipped: Sequence[SkippedInvoice] = (),
             done: Callable[[SendOutcome], None] | None = None) -> None:
        """Send with a progress dialog, then a summary box.

        `message_ids`: these messages (queued ones; failed ones must be retried
        first), None for every due message, or ALL_QUEUED for every queued one,
        due or waiting for its next try.  `skipped` invoices are listed in the
        summary.  `done(outcome)` is called after the summary is shown."""
        request = _Request(list(message_ids) if isinstance(message_ids, (list, tuple)) else message_ids,
                           False, parent, tuple(skipped), done)
        dialog = request.dialog = SendProgressDialog(parent)
        QTimer.singleShot(SHOW_PROGRESS_AFTER_MS, dialog, dialog.show_if_running)
        if EmailRunner._busy:
            dialog.waiting()
            entry = (self, request)
            EmailRunner._waiting.append(entry)

            def give_up() -> None:
                # Cancelled before it started: nothing was sent, nothing to report.
                if entry in EmailRunner._waiting:
                    EmailRunner._waiting.remove(entry)
                    dialog.finish()
                    if done is not None:
                        done(SendOutcome(skipped=request.skipped))

            dialog.cancel_requested.connect(give_up)
            return
        self._start(request)

    def cancel(self) -> None:
        """Stop the running send after the message being sent now (the window is closing)."""
        if self._handle is not None:
            self._handle.cancel()

    def send_in_background(self) -> bool:
        """Send the due messages without a dialog (start-up and the timer); False when
        another send is under way (the next timer tick catches up)."""
        if EmailRunner._busy:
            return False
        self._start(_Request(None, True, None, (), None))
        return True

    def _start(self, request: _Request) -> None:
        EmailRunner._busy = True
        self.running = True
        self.started.emit()
        dialog = request.dialog
        work = _send_work(request.message_ids, request.skipped, request.background, self.password)

        def progress(done: int, total: int, text: str) -> None:
            if dialog is not None and shiboken6.isValid(dialog):
                dialog.progress(done, total, text)

        def failed(exc: BaseException) -> bool:
            message = describe_error(exc) if isinstance(exc, ValidationError) else \
                f"Something went wrong while sending: {exc}. Nothing was lost: what was not sent stays in the Outbox."
            self._finish(request, SendOutcome(skipped=request.skipped, background=request.background,
                                              error=message))
            return True

        # No parent for Ops: the runner must hear the end even if the window that asked is closed.
        self._handle = self.ops.run(None, work, on_success=lambda outcome: self._finish(request, outcome),
                                    on_failure=failed, on_progress=progress,
                                    label="Sending e-mail in the background" if request.background
                                    else "Sending e-mail")
        if dialog is not None:
            dialog.cancel_requested.connect(self._handle.cancel)

    def _finish(self, request: _Request, outcome: SendOutcome | None) -> None:
        EmailRunner._busy = False
        self.running = False
        self._handle = None
        dialog = request.dialog
        if dialog is not None and shiboken6.isValid(dialog):
            dialog.finish()
        if outcome is None:  # mail was not set up (or was removed meanwhile): nothing was tried
            if not request.background:
                offer_mail_settings(request.parent)
            outcome = SendOutcome(skipped=request.skipped, background=request.background)
        else:
            self.last_outcome = outcome
            if not request.background:
                self._show_report(request.parent, outcome)
        self.finished.emit(outcome)
        if request.done is not None:
            request.done(outcome)
        self._next()

    def _next(self) -> None:
        while EmailRunner._waiting and not EmailRunner._busy:
            runner, request = EmailRunner._waiting.pop(0)
            if shiboken6.isValid(runner):
                runner._start(request)

    def _show_report(self, parent: QWidget | None, outcome: SendOutcome) -> None:
        if parent is not None and not shiboken6.isValid(parent):
            parent = None
        box = QMessageBox(QMessageBox.Icon.Information if outcome.ok else QMessageBox.Icon.Warning,
                          "E-mail", headline(outcome), QMessageBox.StandardButton.Ok, parent)
        text = details(outcome)
        if text:
            box.setInformativeText(text)
        window = main_window_of(parent)
        if window is not None and (outcome.failed or outcome.still_queued):
            outbox = box.addButton("Show Outbox", QMessageBox.ButtonRole.ActionRole)
            outbox.clicked.connect(window.show_outbox)
        _open_box(box)
        self.report_box = box


def _open_box(box: QMessageBox) -> None:
    """Shown without blocking; wide enough for sentences and lists (QMessageBox alone makes it narrow)."""
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    for label in box.findChildren(QLabel):
        if label.objectName() in ("qt_msgbox_label", "qt_msgbox_informativelabel"):
            label.setMinimumWidth(440)
    box.open()


# --- "E-mail these invoices" ------------------------------------------------------------

def offer_mail_settings(parent: QWidget | None) -> bool:
    """Mail is not set up: offer to open Settings → E-mail; True if it was opened."""
    window = main_window_of(parent)
    text = ("E-mail is not set up yet: enter the mail server and the sender address under "
            f"{SETTINGS_PLACE} first.")
    if window is None:
        QMessageBox.information(parent, "E-mail", text)
        return False
    answer = QMessageBox.question(parent, "E-mail", text + f"\n\nOpen {SETTINGS_PLACE} now?",
                                  QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                  QMessageBox.StandardButton.Yes)
    if answer == QMessageBox.StandardButton.Yes:
        window.show_mail_settings()
        return True
    return False


def email_invoices(parent: QWidget | None, ops: Ops, runner: EmailRunner | None, invoice_ids: Sequence[int], *,
                   done: Callable[[SendOutcome | None], None] | None = None) -> None:
    """E-mail these invoices (PDF attached) now, with progress, then a summary.

    One id: that invoice is queued even if it was e-mailed before (a re-send);
    what stands in the way (a draft, a void invoice, no billing e-mail) is shown.
    Several: those never e-mailed are queued; the rest are listed in the summary
    with their reasons.  Mail not set up: offers Settings → E-mail instead.
    `runner` None means the main window's (`EmailRunner.for_ops(ops)`).
    `done(outcome)` is called once at the end: the SendOutcome, or None when
    nothing was sent.  Returns at once; everything runs through `ops`."""
    ids = list(dict.fromkeys(invoice_ids))
    if not ids:
        if done is not None:
            done(None)
        return

    def queue(session: Session) -> QueueReport | None:
        if not is_configured(session):
            return None
        if len(ids) == 1:
            message_id = queue_invoice_email(session, ids[0])
            return QueueReport(queued=[ids[0]], outbox_ids=[message_id])
        return queue_unsent_invoices(session, ids)

    _queue_then_send(parent, ops, runner or EmailRunner.for_ops(ops), queue, done,
                     single=len(ids) == 1)


def unsent_question(count: UnsentCount) -> str:
    """"E-mail 2 issued invoices that have never been e-mailed? …", singular or plural."""
    one = count.can_go == 1
    question = (f"E-mail {_plural(count.can_go, 'issued invoice')} that {'has' if one else 'have'} never "
                f"been e-mailed? {'The client receives it' if one else 'Each client receives its invoice'} "
                "with the PDF attached.")
    if count.no_address == 1:
        question += ("\n\n1 more invoice cannot be e-mailed: the client has no billing e-mail address "
                     "(it is listed afterwards).")
    elif count.no_address:
        question += (f"\n\n{count.no_address} more invoices cannot be e-mailed: their clients have no "
                     "billing e-mail address (they are listed afterwards).")
    return question


def email_unsent_invoices(parent: QWidget | None, ops: Ops, runner: EmailRunner | None = None, *,
                          done: Callable[[SendOutcome | None], None] | None = None) -> None:
    """"E-mail unsent invoices…": every issued invoice never e-mailed, after a question
    that says how many.  Same `done` contract as email_invoices."""
    runner = runner or EmailRunner.for_ops(ops)

    def send_them() -> None:
        _queue_then_send(parent, ops, runner, lambda s: queue_unsent_invoices(s) if is_configured(s) else None,
                         done, single=False)

    def counted(count: UnsentCount) -> None:
        if not count.configured:
            offer_mail_settings(parent)
        elif count.can_go == 0 and count.no_address == 0:
            QMessageBox.information(parent, "E-mail unsent invoices",
                                    "Every issued invoice has been e-mailed or is waiting in the Outbox.")
        elif count.can_go == 0:
            send_them()  # nothing goes; the summary names the clients without an address
            return
        else:
            answer = QMessageBox.question(parent, "E-mail unsent invoices", unsent_question(count),
                                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                          QMessageBox.StandardButton.No)
            if answer == QMessageBox.StandardButton.Yes:
                send_them()
                return
        if done is not None:
            done(None)

    ops.read(parent, count_unsent_invoices, counted, label="Counting unsent invoices")


def _queue_then_send(parent: QWidget | None, ops: Ops, runner: EmailRunner,
                     queue: Callable[[Session], QueueReport | None],
                     done: Callable[[SendOutcome | None], None] | None, *, single: bool) -> None:
    def finished(outcome: SendOutcome | None) -> None:
        if done is not None:
            done(outcome)

    def queued(report: QueueReport | None) -> None:
        if report is None:
            offer_mail_settings(parent)
            finished(None)
            return
        if not report.outbox_ids:
            outcome = SendOutcome(skipped=tuple(report.skipped))
            runner._show_report(parent, outcome)
            finished(outcome)
            return
        runner.send(parent, report.outbox_ids, skipped=report.skipped, done=finished)

    def failed(exc: BaseException) -> bool:
        if single and isinstance(exc, ValidationError):
            box = QMessageBox(QMessageBox.Icon.Warning, "E-mail", "This invoice was not e-mailed.",
                              QMessageBox.StandardButton.Ok, parent)
            box.setInformativeText(describe_error(exc))
            _open_box(box)
            runner.report_box = box
            finished(None)
            return True
        finished(None)
        return False  # the error dialog explains

    ops.write(parent, queue, queued, on_failure=failed, label="Queueing invoice e-mails")
