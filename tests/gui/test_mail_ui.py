"""E-mail in the desktop app, against a real SQLite office and aiosmtpd on 127.0.0.1:
Settings → E-mail, the test e-mail, the password in the keyring, the Outbox,
"e-mail these invoices", background sending and the generate dialog's offer."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import keyring
import keyring.backends.fail
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget
from smtp_server import SmtpTestServer, free_port
from sqlalchemy import select

from mspbill.agreements import LineDraft
from mspbill.db.models import MailSettings, OutboxMessage
from mspbill.mail import (
    MailSettingsDraft,
    SendReport,
    mail_settings_draft,
    queue_invoice_email,
    save_mail_settings,
)
from mspbill.periods import Month
from mspbill.secrets import SMTP_PASSWORD, SecretStore
from tests.billing_helpers import (
    issue_ids,
    make_agreement,
    make_client,
    one_time,
    setup_office,
)
from tests.gui.conftest import wait_idle
from ui import mail_settings_form
from ui.email_actions import (
    EmailRunner,
    SendOutcome,
    SendProgressDialog,
    UnsentCount,
    details,
    email_invoices,
    email_unsent_invoices,
    unsent_question,
)
from ui.generate_dialog import GenerateDialog
from ui.invoices_screen import InvoicesScreen
from ui.mail_settings_form import NO_KEYRING_NOTE, MailSettingsForm
from ui.main_window import MainWindow
from ui.outbox_screen import OutboxScreen

# aiosmtpd's own notices when a test server allows a login without TLS.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS",
                                        "ignore:Session.login_data is deprecated")

FROM = "billing@acme-it.example"
PASSWORD = "Grüezi-correct-hörse-2026"
SHOTS = Path("/tmp/shots")


# --- an office -----------------------------------------------------------------------

@dataclass(frozen=True)
class Office:
    harbor: int       # INV-000001, ap@harbor.example
    zephyr: int       # INV-000002, ap@zephyr.example
    orchard: int      # INV-000003, the client has no billing e-mail


@pytest.fixture(autouse=True)
def no_keyring_by_default(monkeypatch) -> None:
    """A test sees no secure keyring unless it asks for the private GNOME Keyring."""
    fail = keyring.backends.fail.Keyring()
    monkeypatch.setattr(keyring, "get_keyring", lambda: fail)


@pytest.fixture(autouse=True)
def runner_state_is_clean() -> Iterator[None]:
    yield
    assert not EmailRunner._waiting
    EmailRunner._busy = False


@pytest.fixture
def office(app_ctx) -> Office:
    db = app_ctx.db
    setup_office(db, email=FROM)
    harbor = make_client(db, "Harbor Dental", billing_emails="ap@harbor.example")
    zephyr = make_client(db, "Zephyr Labs", billing_emails="ap@zephyr.example")
    orchard = make_client(db, "Orchard Pediatrics", billing_emails="")
    ids = [one_time(db, client, ("Firewall appliance", "1", "1000.00")) for client in (harbor, zephyr, orchard)]
    issue_ids(db, ids, dt.date.today())
    return Office(*ids)


def configure(ctx, port: int, **extra: object) -> None:
    draft = MailSettingsDraft(host="127.0.0.1", port=str(port), security="none", from_address=FROM,
                              from_name="Acme IT")
    for key, value in extra.items():
        setattr(draft, key, value)
    with ctx.db.write_session() as s, s.begin():
        save_mail_settings(s, draft)


@pytest.fixture
def server() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as smtp:
        yield smtp


@pytest.fixture
def host(qtbot) -> QWidget:
    widget = QWidget()
    qtbot.addWidget(widget)
    widget.resize(900, 600)
    widget.show()
    return widget


def shot(widget: QWidget, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    widget.grab().save(str(SHOTS / f"{name}.png"))


def outbox_messages(ctx) -> list[OutboxMessage]:
    with ctx.db.session() as s:
        rows = list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
        for m in rows:
            s.expunge(m)
        return rows


def run_and_wait(qtbot, ops, runner: EmailRunner, start, timeout: int = 20_000) -> SendOutcome:
    with qtbot.waitSignal(runner.finished, timeout=timeout) as finished:
        start()
    wait_idle(qtbot, ops)
    return finished.args[0]


def close_report(runner: EmailRunner) -> tuple[str, str]:
    box = runner.report_box
    assert box is not None and box.isVisible()
    text = (box.text(), box.informativeText())
    box.close()
    runner.report_box = None
    return text


def attachments(received) -> list[tuple[str, str, bytes]]:
    return [(part.get_filename(), part.get_content_type(), part.get_content())
            for part in received.message.iter_attachments()]


# --- the words of the send report ----------------------------------------------------------

@pytest.mark.parametrize("still_queued, expected", [
    (1, "The e-mail not sent stays in the Outbox and is retried automatically."),
    (3, "The 3 e-mails not sent stay in the Outbox and are retried automatically."),
])
def test_a_stopped_send_says_what_happens_to_the_rest_in_singular_or_plural(still_queued, expected) -> None:
    outcome = SendOutcome(SendReport(still_queued=still_queued, stopped_reason="The server refused the login."),
                          still_queued=still_queued)
    assert details(outcome) == "Sending stopped: The server refused the login.\n\n" + expected


@pytest.mark.parametrize("still_queued, expected", [
    (1, ("You stopped the run. The e-mail not sent yet stays in the Outbox and goes with the next send "
         "(automatically within a few minutes), unless you discard it there.")),
    (2, ("You stopped the run. The 2 e-mails not sent yet stay in the Outbox and go with the next send "
         "(automatically within a few minutes), unless you discard them there.")),
])
def test_a_cancelled_send_says_what_happens_to_the_rest_in_singular_or_plural(still_queued, expected) -> None:
    outcome = SendOutcome(SendReport(sent=1, still_queued=still_queued, cancelled=True), sent=1,
                          still_queued=still_queued)
    assert details(outcome) == expected


@pytest.mark.parametrize("can_go, no_address, expected", [
    (1, 0, "E-mail 1 issued invoice that has never been e-mailed? The client receives it with the PDF attached."),
    (1, 3, ("E-mail 1 issued invoice that has never been e-mailed? The client receives it with the PDF attached."
            "\n\n3 more invoices cannot be e-mailed: their clients have no billing e-mail address (they are listed "
            "afterwards).")),
    (4, 1, ("E-mail 4 issued invoices that have never been e-mailed? Each client receives its invoice with the PDF "
            "attached.\n\n1 more invoice cannot be e-mailed: the client has no billing e-mail address (it is listed "
            "afterwards).")),
])
def test_the_unsent_question_in_singular_or_plural(can_go, no_address, expected) -> None:
    assert unsent_question(UnsentCount(True, can_go, no_address)) == expected


def test_the_invoice_list_has_room_for_the_email_status(qtbot, ops, app_ctx, office) -> None:
    screen = InvoicesScreen(ops)
    qtbot.addWidget(screen)
    screen.resize(1200, 700)
    screen.show()
    column = [c.title for c in screen.model.columns].index("E-mail")
    metrics = screen.table.fontMetrics()
    needed = max(metrics.horizontalAdvance(text) for text in ("Sent 2026-10-01", "Queued (retrying)"))
    assert screen.table.columnWidth(column) >= needed + 16  # the cell's margins


# --- Settings → E-mail -----------------------------------------------------------------

def _form(qtbot, ops) -> MailSettingsForm:
    form = MailSettingsForm(ops)
    qtbot.addWidget(form)
    form.resize(1000, 900)
    form.show()
    form.load()
    wait_idle(qtbot, ops)
    return form


def test_settings_round_trip_with_every_problem_shown_at_its_field(qtbot, ops, app_ctx, office):
    form = _form(qtbot, ops)
    assert form.from_address.text() == FROM  # taken from the company profile until saved
    assert form.security.currentData() == "starttls" and form.port.text() == "587"
    assert "{number}" in form.subject.text()

    form.host.setText("smtp://mail.acme-it.example")
    form.port.setText("eighty")
    form.from_address.setText("billing at acme")
    form.reply_to.setText("nobody@")
    form.subject.setText("Invoice {amount}")
    form.body.setPlainText("")
    form.save_button.click()
    errors = {name: row.error.text() for name, row in form.form.rows.items() if row.error.text()}
    assert set(errors) == {"host", "port", "from_address", "reply_to", "invoice_subject", "invoice_body"}
    assert "no “smtp://”" in errors["host"]
    assert "1 to 65535" in errors["port"]
    assert "{amount}" in errors["invoice_subject"]
    assert form.summary.text() == "Please correct 6 problems before saving."
    shot(form, "mail_settings_errors")
    wait_idle(qtbot, ops)
    with app_ctx.db.session() as s:
        assert s.get(MailSettings, 1) is None

    form.host.setText("smtp.acme-it.example")
    form.port.setText("587")
    form.security.setCurrentIndex(form.security.findData("ssl"))
    assert form.port.text() == "465"  # the usual port of SSL/TLS, since the port was not one of the user's own
    form.username.setText(FROM)
    form.from_address.setText(FROM)
    form.from_name.setText("Acme IT — Billing")
    form.reply_to.setText("office@acme-it.example")
    form.bcc_office.setChecked(True)
    form.subject.setText("Your invoice {number} from {company}")
    form.body.setPlainText("Hello {client},\n\nyour invoice {number} is attached.\n")
    with qtbot.waitSignal(form.saved, timeout=10_000):
        form.save_button.click()
    assert form.summary.isHidden()
    assert form.status.text() == "Saved."
    with app_ctx.db.session() as s:
        saved = mail_settings_draft(s)
    assert saved == MailSettingsDraft(host="smtp.acme-it.example", port="465", security="ssl", username=FROM,
                                      from_address=FROM, from_name="Acme IT — Billing",
                                      reply_to="office@acme-it.example", bcc_office=True,
                                      invoice_subject="Your invoice {number} from {company}",
                                      invoice_body="Hello {client},\n\nyour invoice {number} is attached.\n")
    again = _form(qtbot, ops)
    assert again.draft() == MailSettingsDraft(**{**saved.__dict__, "invoice_body": saved.invoice_body.rstrip()})
    assert again.bcc_office.isChecked() and again.security.currentText() == "SSL/TLS"


def test_security_suggests_its_port_and_warns_when_a_login_would_travel_unencrypted(qtbot, ops, app_ctx):
    form = _form(qtbot, ops)
    assert form.unencrypted_warning.isHidden()
    form.security.setCurrentIndex(form.security.findData("none"))
    assert form.port.text() == "25"
    form.security.setCurrentIndex(form.security.findData("ssl"))
    assert form.port.text() == "465"
    form.port.setText("2525")  # the user's own port stays
    form.security.setCurrentIndex(form.security.findData("starttls"))
    assert form.port.text() == "2525"
    form.security.setCurrentIndex(form.security.findData("none"))
    assert form.unencrypted_warning.isHidden()  # no login, nothing secret to send
    form.username.setText("relay-user")
    assert form.unencrypted_warning.isVisible()
    assert "unencrypted" in form.unencrypted_warning.text()
    form.security.setCurrentIndex(form.security.findData("starttls"))
    assert form.unencrypted_warning.isHidden()


def test_placeholders_insert_where_the_user_was_and_the_preview_follows(qtbot, ops, app_ctx, office):
    form = _form(qtbot, ops)
    assert "Zürich Dental GmbH" in form.preview_body.toPlainText()  # the sample values
    assert form.preview_subject.text() == "Invoice INV-000123 from Your company"
    form.body.setPlainText("Total: ")
    form.body.setFocus()
    form.body.moveCursor(form.body.textCursor().MoveOperation.End)
    total = form.placeholders.findItems("{total}", Qt.MatchFlag.MatchStartsWith)[0]
    form.placeholders.itemClicked.emit(total)
    assert form.body.toPlainText() == "Total: {total}"
    assert form.preview_body.toPlainText() == "Total: $1,234.50"
    form.subject.setFocus()
    form.subject.setText("Invoice ")
    form.placeholders.itemClicked.emit(form.placeholders.findItems("{number}", Qt.MatchFlag.MatchStartsWith)[0])
    assert form.subject.text() == "Invoice {number}"
    assert form.preview_subject.text() == "Invoice INV-000123"
    form.subject.setText("Invoice {amount")
    assert form.preview_subject.text() == "The preview cannot be shown:"
    assert "unbalanced brace" in form.preview_body.toPlainText()


def test_test_email_with_the_settings_as_typed_reaches_the_server(qtbot, ops, app_ctx, office, server,
                                                                   monkeypatch):
    asked: list[str] = []
    monkeypatch.setattr(mail_settings_form, "ask_test_address",
                        lambda _parent, default: asked.append(default) or "office@acme-it.example")
    form = _form(qtbot, ops)
    form.host.setText("127.0.0.1")
    form.security.setCurrentIndex(form.security.findData("none"))
    form.port.setText(str(server.port))
    with qtbot.waitSignal(form.test_finished, timeout=20_000) as finished:
        form.test_button.click()
        assert not form.test_button.isEnabled() and form.test_button.text() == "Sending…"
        assert form.test_busy.isVisible()
    assert finished.args[0] is True
    assert asked == [FROM]  # the From address is offered
    assert form.test_button.isEnabled() and form.test_busy.isHidden()
    assert "sent to office@acme-it.example" in form.test_result.text()
    assert len(server.received) == 1
    received = server.received[0]
    assert received.rcpt_tos == ["office@acme-it.example"]
    assert received.message["Subject"] == "mspbill test e-mail from Acme IT"
    shot(form, "mail_settings_test_sent")
    with app_ctx.db.session() as s:
        assert s.get(MailSettings, 1) is None  # a test does not save


def test_test_email_to_a_server_that_is_down_shows_why(qtbot, ops, app_ctx, office):
    form = _form(qtbot, ops)
    form.host.setText("127.0.0.1")
    form.security.setCurrentIndex(form.security.findData("none"))
    port = free_port()
    form.port.setText(str(port))
    with qtbot.waitSignal(form.test_finished, timeout=20_000) as finished:
        form.send_test("office@acme-it.example")
    assert finished.args[0] is False
    text = form.test_result.text()
    assert text.startswith("The test e-mail was not sent.")
    assert f"127.0.0.1 refused the connection on port {port}" in text
    # An address that is not one, and a field that is wrong: said where they belong.
    form.host.setText("")
    with qtbot.waitSignal(form.test_finished, timeout=20_000):
        form.send_test("not-an-address")
    assert "Enter the mail server's name" in form.form.rows["host"].error.text()
    assert "not-an-address" in form.test_result.text()


# --- the password and the keyring ---------------------------------------------------------

def _files_containing(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.mark.keyring
def test_password_goes_to_the_keyring_and_nowhere_else(qtbot, ops, app_ctx, office, secret_service,
                                                       monkeypatch, tmp_path):
    from keyring.backends import SecretService

    monkeypatch.setattr(keyring, "get_keyring", lambda: SecretService.Keyring())
    SecretStore().delete(SMTP_PASSWORD)
    users = {FROM: PASSWORD}
    with SmtpTestServer(users=users, auth_require_tls=False) as smtp:
        form = _form(qtbot, ops)
        assert "No password is saved" in form.password_note.text()
        assert not form.remove_password_button.isEnabled()
        form.host.setText("127.0.0.1")
        form.security.setCurrentIndex(form.security.findData("none"))
        form.port.setText(str(smtp.port))
        form.username.setText(FROM)
        form.password.setText(PASSWORD)
        with qtbot.waitSignal(form.saved, timeout=20_000):
            form.save_button.click()
        wait_idle(qtbot, ops)
        assert SecretStore().get(SMTP_PASSWORD) == PASSWORD
        assert form.password.text() == ""  # never kept on show
        assert form.password.placeholderText() == "saved in SecretService Keyring"
        assert "saved in SecretService Keyring" in form.password_note.text()
        assert form.status.text() == "Saved; the password is in SecretService Keyring."
        assert form.remove_password_button.isEnabled()
        shot(form, "mail_settings_saved_password")
        secret = PASSWORD.encode()
        with app_ctx.db.session() as s:
            assert s.get(MailSettings, 1).username == FROM
        for root in {tmp_path, app_ctx.paths.data_dir, app_ctx.paths.settings_file.parent, app_ctx.paths.log_dir}:
            assert _files_containing(Path(root), secret) == []

        # The runner reads it from the keyring, in its worker, to log in and send.
        runner = EmailRunner.for_ops(ops)
        email_invoices(None, ops, runner, [office.harbor])
        qtbot.waitUntil(lambda: runner.last_outcome is not None, timeout=20_000)
        wait_idle(qtbot, ops)
        assert runner.last_outcome.sent == 1, close_report(runner)
        close_report(runner)
        assert smtp.logins == [(FROM, True)]
        assert len(smtp.received) == 1

    form.remove_password_button.click()
    qtbot.waitUntil(lambda: "No password is saved" in form.password_note.text(), timeout=10_000)
    assert SecretStore().get(SMTP_PASSWORD) is None
    assert form.status.text() == "The password was removed from SecretService Keyring."


def test_without_a_secure_keyring_the_note_shows_only_when_a_password_is_needed(qtbot, ops, app_ctx, office):
    form = _form(qtbot, ops)  # the fail backend: no secure keyring; no user name saved
    assert form.username.text() == ""
    assert not form.password_note.isVisible()  # no login, no password: nothing to warn about
    form.username.setText(FROM)
    assert form.password_note.isVisible()
    note = form.password_note.text()
    assert note == NO_KEYRING_NOTE and note.startswith("No secure keyring is available on this computer")
    assert "nothing was saved" not in note.casefold()  # nothing has been tried: it must not read as a failure
    assert "leave the user name empty" in note
    tooltip = form.password_note.toolTip()  # the backends found, for whoever sets the computer up
    assert tooltip.startswith("Keyrings found: ") and "nothing was saved" not in tooltip
    form.username.setText("  ")
    assert not form.password_note.isVisible()


def test_without_a_secure_keyring_a_saved_user_name_shows_the_note_on_opening(qtbot, ops, app_ctx, office):
    configure(app_ctx, 587, username=FROM)
    form = _form(qtbot, ops)
    assert form.username.text() == FROM and form.password_note.isVisible()
    assert form.password_note.text() == NO_KEYRING_NOTE


def test_without_a_secure_keyring_the_form_says_so_and_saves_nothing(qtbot, ops, app_ctx, office):
    form = _form(qtbot, ops)  # the fail backend: no secure keyring
    form.host.setText("smtp.acme-it.example")
    form.username.setText(FROM)
    assert "No secure keyring is available" in form.password_note.text()
    form.password.setText(PASSWORD)
    form.save_button.click()
    qtbot.waitUntil(lambda: bool(form.form.rows["password"].error.text()), timeout=10_000)
    wait_idle(qtbot, ops)
    assert "No secure keyring is available" in form.form.rows["password"].error.text()
    assert "nothing was saved" in form.form.rows["password"].error.text()
    assert form.summary.text() == "Nothing was saved: the password cannot be kept safely on this computer."
    assert form.save_button.isEnabled()
    assert not form.password_note.isVisible()  # the password row says it all
    form.username.setText(FROM + "x")
    assert not form.password_note.isVisible()
    with app_ctx.db.session() as s:
        assert s.get(MailSettings, 1) is None  # the settings were rolled back with it
    shot(form, "mail_settings_no_keyring")


# --- the Outbox ---------------------------------------------------------------------------

def _outbox(qtbot, ops) -> OutboxScreen:
    screen = OutboxScreen(ops)
    qtbot.addWidget(screen)
    screen.resize(1250, 600)
    screen.show()
    screen.reload()
    wait_idle(qtbot, ops)
    return screen


def _row(screen: OutboxScreen, number: str):
    return next(r for r in screen.model.visible_rows() if r.invoice_number == number)


def _select(screen: OutboxScreen, *numbers: str) -> None:
    ids = [_row(screen, n).id for n in numbers]
    screen.select_ids(ids)
    assert sorted(r.id for r in screen.selected_rows()) == sorted(ids)


def _cell(screen: OutboxScreen, number: str, title: str) -> str:
    row = screen.model.find_row(lambda r: r.invoice_number == number)
    column = [c.title for c in screen.model.columns].index(title)
    return screen.model.index(row, column).data()


def test_queued_while_the_server_is_down_then_sent_once_with_the_pdf(qtbot, ops, app_ctx, office, host):
    port = free_port()
    configure(app_ctx, port)
    runner = EmailRunner.for_ops(ops)
    outcome = run_and_wait(qtbot, ops, runner, lambda: email_invoices(host, ops, runner, [office.harbor]))
    assert (outcome.sent, outcome.still_queued) == (0, 1)
    text, info = close_report(runner)
    assert text == "0 e-mails sent, 1 still queued."
    assert f"refused the connection on port {port}" in info
    assert "The e-mail not sent stays in the Outbox and is retried automatically." in info

    screen = _outbox(qtbot, ops)
    assert not screen.banner.isVisible()
    assert screen.filter_buttons["queued"].text() == "Queued (1)"
    assert screen.filter_buttons[None].text() == "All (1)"
    assert _cell(screen, "INV-000001", "Status") == "Queued"
    assert f"refused the connection on port {port}" in _cell(screen, "INV-000001", "Last error")
    assert _cell(screen, "INV-000001", "Client") == "Harbor Dental"
    assert _cell(screen, "INV-000001", "To") == "ap@harbor.example"
    assert _cell(screen, "INV-000001", "Tries") == "1"
    assert _cell(screen, "INV-000001", "Next try / sent").startswith("Next try ")
    assert screen.send_button.isEnabled()

    with SmtpTestServer(port=port) as smtp:
        outcome = run_and_wait(qtbot, ops, screen.runner, screen.send_button.click)
        assert outcome.sent == 1
        assert close_report(runner) == ("1 e-mail sent.", "")
        qtbot.waitUntil(lambda: _cell(screen, "INV-000001", "Status") == "Sent", timeout=10_000)
        assert len(smtp.received) == 1
        received = smtp.received[0]
    assert received.rcpt_tos == ["ap@harbor.example"]
    assert received.message["Subject"] == "Invoice INV-000001 from Acme IT"
    [(name, kind, data)] = attachments(received)
    assert (name, kind) == ("INV-000001 Harbor Dental.pdf", "application/pdf") and data.startswith(b"%PDF")
    assert _cell(screen, "INV-000001", "Last error") == ""
    assert _cell(screen, "INV-000001", "Next try / sent").startswith("Sent ")
    assert screen.filter_buttons["sent"].text() == "Sent (1)"
    assert not screen.send_button.isEnabled()  # nothing waits any more
    # Sending again sends nothing twice.
    outcome = run_and_wait(qtbot, ops, runner, lambda: runner.send(host))
    assert outcome.attempted == 0
    assert close_report(runner)[0] == "Nothing to send: no e-mail is waiting in the Outbox."
    assert [m.status.value for m in outbox_messages(app_ctx)] == ["sent"]


def test_failed_message_is_retried_and_queued_one_discarded(qtbot, ops, app_ctx, office, server, host,
                                                            monkeypatch):
    configure(app_ctx, server.port)
    server.refuse("ap@zephyr.example")
    runner = EmailRunner.for_ops(ops)
    outcome = run_and_wait(qtbot, ops, runner, lambda: email_invoices(host, ops, runner, [office.zephyr]))
    assert outcome.failed == 1
    text, info = close_report(runner)
    assert text == "0 e-mails sent, 1 failed."
    assert "Failed (fix the problem, then choose Retry in the Outbox):" in info
    assert "INV-000002 (Zephyr Labs, ap@zephyr.example): " in info and "refused the recipient" in info
    with app_ctx.db.write_session() as s, s.begin():
        queue_invoice_email(s, office.harbor)  # queued, not sent yet

    screen = _outbox(qtbot, ops)
    assert _cell(screen, "INV-000002", "Status") == "Failed"
    assert _cell(screen, "INV-000002", "Next try / sent") == "Waits for Retry"
    status_col = [c.title for c in screen.model.columns].index("Status")
    failed_row = screen.model.find_row(lambda r: r.invoice_number == "INV-000002")
    assert screen.model.index(failed_row, status_col).data(Qt.ItemDataRole.ForegroundRole).name() == "#b3261e"
    assert screen.filter_buttons["failed"].text() == "Failed (1)"
    screen.set_status_filter("failed")
    wait_idle(qtbot, ops)
    assert [r.invoice_number for r in screen.model.visible_rows()] == ["INV-000002"]
    screen.set_status_filter(None)
    wait_idle(qtbot, ops)
    shot(screen, "outbox_failed_and_queued")

    # The address is fixed: Retry sends it.
    server.accept("ap@zephyr.example")
    _select(screen, "INV-000002")
    assert screen.retry_button.isEnabled() and screen.discard_button.isEnabled()
    assert screen.detail.isVisible()
    assert screen.detail.text().startswith("INV-000002 to ap@zephyr.example — Failed after 1 try; correct the "
                                           "problem, then Retry:\n127.0.0.1 refused the recipient")
    shot(screen, "outbox_failed_selected")
    outcome = run_and_wait(qtbot, ops, runner, screen.retry_button.click)
    assert outcome.sent == 1 and outcome.attempted == 1
    close_report(runner)
    qtbot.waitUntil(lambda: _cell(screen, "INV-000002", "Status") == "Sent", timeout=10_000)
    assert [r.rcpt_tos for r in server.received] == [["ap@zephyr.example"]]

    # A sent message is neither retried nor discarded.
    _select(screen, "INV-000002")
    assert not screen.retry_button.isEnabled() and not screen.discard_button.isEnabled()

    # Discard asks first; No keeps it, Yes removes it.
    answers = [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes]
    asked: list[str] = []
    monkeypatch.setattr(QMessageBox, "question", lambda _p, _t, text, *a: asked.append(text) or answers.pop(0))
    _select(screen, "INV-000001")
    screen.discard_button.click()
    wait_idle(qtbot, ops)
    assert "Discard the e-mail of INV-000001 to ap@harbor.example?" in asked[0]
    assert _row(screen, "INV-000001").status == "queued"
    screen.discard_button.click()
    wait_idle(qtbot, ops)
    assert [m.invoice_id for m in outbox_messages(app_ctx)] == [office.zephyr]
    assert screen.model.find_row(lambda r: r.invoice_number == "INV-000001") == -1
    assert len(server.received) == 1


def test_not_configured_banner_leads_to_settings(qtbot, ops, app_ctx, office, monkeypatch):
    window = MainWindow(app_ctx, ops)
    qtbot.addWidget(window)
    window.show()
    window.go("Outbox")
    wait_idle(qtbot, ops)
    screen = window.outbox
    assert screen.banner.isVisible()
    assert "not set up" in screen.banner_text.text()
    assert not screen.send_button.isEnabled()
    shot(window, "outbox_not_configured")
    screen.banner_button.click()
    wait_idle(qtbot, ops)
    assert window.current_screen_name() == "Settings"
    assert window.settings.tabs.currentWidget() is window.settings.mail
    assert window.settings.mail.from_address.text() == FROM
    shot(window, "settings_email_tab")

    # E-mailing an invoice while mail is not set up offers the same way there.
    window.go("Outbox")
    wait_idle(qtbot, ops)
    asked: list[str] = []
    monkeypatch.setattr(QMessageBox, "question",
                        lambda _p, _t, text, *a: asked.append(text) or QMessageBox.StandardButton.Yes)
    email_invoices(window.invoices, ops, window.email_runner, [office.harbor])
    wait_idle(qtbot, ops)
    assert asked and "E-mail is not set up yet" in asked[0] and "Open Settings → E-mail now?" in asked[0]
    assert window.current_screen_name() == "Settings"
    assert outbox_messages(app_ctx) == []

    # Once saved, the banner goes.
    form = window.settings.mail
    form.host.setText("127.0.0.1")
    with qtbot.waitSignal(form.saved, timeout=10_000):
        form.save_button.click()
    window.go("Outbox")
    wait_idle(qtbot, ops)
    assert not screen.banner.isVisible()


# --- e-mail these invoices -----------------------------------------------------------------

def test_email_several_invoices_lists_the_one_that_could_not_go(qtbot, ops, app_ctx, office, server, host):
    configure(app_ctx, server.port)
    runner = EmailRunner.for_ops(ops)
    seen: list[SendOutcome | None] = []
    outcome = run_and_wait(qtbot, ops, runner, lambda: email_invoices(
        host, ops, runner, [office.harbor, office.zephyr, office.orchard], done=seen.append))
    assert seen == [outcome]
    assert (outcome.sent, outcome.failed, outcome.still_queued) == (2, 0, 0)
    assert [s.number for s in outcome.skipped] == ["INV-000003"]
    box = runner.report_box
    assert box.icon() == QMessageBox.Icon.Warning
    shot(box, "email_report_with_skip")
    text, info = close_report(runner)
    assert text == "2 e-mails sent."
    assert info.startswith("Not e-mailed:\n• INV-000003 (Orchard Pediatrics): Orchard Pediatrics has no billing "
                           "e-mail address; add one under Clients.")
    assert sorted(r.rcpt_tos[0] for r in server.received) == ["ap@harbor.example", "ap@zephyr.example"]

    # Again: both were e-mailed already, so nothing goes and the summary says why.
    seen.clear()
    email_invoices(host, ops, runner, [office.harbor, office.zephyr], done=seen.append)
    qtbot.waitUntil(lambda: bool(seen), timeout=10_000)
    wait_idle(qtbot, ops)
    assert seen[0].attempted == 0
    text, info = close_report(runner)
    assert text == "Nothing was e-mailed: 2 invoices could not be."
    assert "INV-000001 (Harbor Dental): Already e-mailed" in info
    # One invoice on its own is sent again on request (a re-send).
    outcome = run_and_wait(qtbot, ops, runner, lambda: email_invoices(host, ops, runner, [office.harbor]))
    assert outcome.sent == 1
    close_report(runner)
    assert len(server.received) == 3


def test_one_invoice_that_cannot_be_emailed_says_why(qtbot, ops, app_ctx, office, server, host):
    configure(app_ctx, server.port)
    runner = EmailRunner.for_ops(ops)
    seen: list[SendOutcome | None] = []
    email_invoices(host, ops, runner, [office.orchard], done=seen.append)
    qtbot.waitUntil(lambda: bool(seen), timeout=10_000)
    wait_idle(qtbot, ops)
    assert seen == [None]
    text, info = close_report(runner)
    assert text == "This invoice was not e-mailed."
    assert "Orchard Pediatrics has no billing e-mail address" in info
    assert outbox_messages(app_ctx) == []


def test_email_unsent_invoices_from_the_outbox(qtbot, ops, app_ctx, office, server, monkeypatch):
    configure(app_ctx, server.port)
    screen = _outbox(qtbot, ops)
    asked: list[str] = []
    monkeypatch.setattr(QMessageBox, "question",
                        lambda _p, _t, text, *a: asked.append(text) or QMessageBox.StandardButton.Yes)
    outcome = run_and_wait(qtbot, ops, screen.runner, screen.unsent_button.click)
    assert asked == [("E-mail 2 issued invoices that have never been e-mailed? Each client receives its invoice "
                      "with the PDF attached.\n\n1 more invoice cannot be e-mailed: the client has no billing "
                      "e-mail address (it is listed afterwards).")]
    assert outcome.sent == 2 and [s.number for s in outcome.skipped] == ["INV-000003"]
    close_report(screen.runner)
    qtbot.waitUntil(lambda: screen.model.rowCount() == 2, timeout=10_000)
    assert {r.status for r in screen.model.visible_rows()} == {"sent"}
    # Orchard's invoice was never queued, so it is still "unsent", but nothing is asked: it cannot go.
    asked.clear()
    seen: list[SendOutcome | None] = []
    email_unsent_invoices(screen, ops, done=seen.append)
    qtbot.waitUntil(lambda: bool(seen), timeout=10_000)
    wait_idle(qtbot, ops)
    assert asked == [] and seen[0].attempted == 0
    text, info = close_report(screen.runner)
    assert text == "Nothing was e-mailed: 1 invoice could not be."
    assert "INV-000003 (Orchard Pediatrics): Orchard Pediatrics has no billing e-mail address" in info
    assert len(server.received) == 2


def test_cancel_stops_before_the_next_message(qtbot, ops, app_ctx, office, server, host):
    configure(app_ctx, server.port)
    with app_ctx.db.write_session() as s, s.begin():
        ids = [queue_invoice_email(s, office.harbor), queue_invoice_email(s, office.zephyr)]
    runner = EmailRunner.for_ops(ops)
    dialogs: list[SendProgressDialog] = []

    def start() -> None:
        runner.send(host, ids)
        dialog = host.findChildren(SendProgressDialog)[0]
        dialogs.append(dialog)
        dialog.reject()  # Cancel (or Esc) before the first message is claimed

    outcome = run_and_wait(qtbot, ops, runner, start)
    assert dialogs[0].cancel_button.text() == "Stopping…"
    assert outcome.report.cancelled
    assert outcome.sent + outcome.still_queued == 2 and outcome.still_queued >= 1
    text, info = close_report(runner)
    assert "still queued" in text and "You stopped the run." in info
    assert len(server.received) == outcome.sent


def test_a_second_send_waits_for_the_first(qtbot, ops, app_ctx, office, server, host):
    configure(app_ctx, server.port)
    with app_ctx.db.write_session() as s, s.begin():
        first = queue_invoice_email(s, office.harbor)
        second = queue_invoice_email(s, office.zephyr)
    runner = EmailRunner.for_ops(ops)
    outcomes: list[SendOutcome] = []
    runner.send(host, [first], done=outcomes.append)
    assert runner.send_in_background() is False  # the background send skips its turn
    runner.send(host, [second], done=outcomes.append)
    waiting = [d for d in host.findChildren(SendProgressDialog) if d.headline.text() == "Waiting…"]
    assert len(waiting) == 1
    qtbot.waitUntil(lambda: len(outcomes) == 2, timeout=20_000)
    wait_idle(qtbot, ops)
    assert [o.sent for o in outcomes] == [1, 1]
    runner.report_box.close()
    for box in host.findChildren(QMessageBox):
        box.close()
    assert len(server.received) == 2


# --- background sending -------------------------------------------------------------------

def test_due_mail_goes_in_the_background_at_start_up_with_the_status_bar_only(qtbot, ops, app_ctx, office,
                                                                               monkeypatch):
    from ui import main_window

    server = SmtpTestServer().start()
    configure(app_ctx, server.port)
    with app_ctx.db.write_session() as s, s.begin():
        queue_invoice_email(s, office.harbor)
    monkeypatch.setattr(main_window, "MAIL_STARTUP_DELAY_MS", 0)
    window = MainWindow(app_ctx, ops)
    qtbot.addWidget(window)
    assert window.mail_timer.interval() == 5 * 60 * 1000
    with qtbot.waitSignal(window.email_runner.finished, timeout=20_000) as finished:
        window.show()
    wait_idle(qtbot, ops)
    assert window.mail_timer.isActive()
    outcome = finished.args[0]
    assert outcome.background and outcome.sent == 1
    assert window.email_runner.report_box is None  # no dialog for a background send
    assert not [w for w in window.findChildren(QMessageBox) if w.isVisible()]
    assert window.mail_status.isVisible() and "E-mail: 1 message sent at" in window.mail_status.text()
    assert len(server.received) == 1

    # Later the server is down: the status bar says so and links to the Outbox.
    server.stop()
    with app_ctx.db.write_session() as s, s.begin():
        queue_invoice_email(s, office.zephyr)
    with qtbot.waitSignal(window.email_runner.finished, timeout=20_000):
        assert window.send_due_mail()
    wait_idle(qtbot, ops)
    assert "1 message not sent" in window.mail_status.text() and 'href="outbox"' in window.mail_status.text()
    assert "refused the connection" in window.mail_status.toolTip()
    shot(window, "status_bar_mail_problem")
    window.mail_status.linkActivated.emit("outbox")
    wait_idle(qtbot, ops)
    assert window.current_screen_name() == "Outbox"
    assert _cell(window.outbox, "INV-000002", "Status") == "Queued"
    _select(window.outbox, "INV-000002")
    assert "Not sent yet (1 try); next try " in window.outbox.detail.text()
    shot(window, "outbox_in_window")


def test_nothing_is_sent_in_the_background_when_mail_is_not_set_up(qtbot, ops, app_ctx, office):
    with app_ctx.db.write_session() as s, s.begin():
        s.add(OutboxMessage(kind="invoice", to_addrs="ap@harbor.example", subject="x", body="x"))
    window = MainWindow(app_ctx, ops)
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.email_runner.finished, timeout=10_000) as finished:
        assert window.send_due_mail()
    wait_idle(qtbot, ops)
    assert finished.args[0].attempted == 0
    assert window.mail_status.isHidden()
    assert [m.status.value for m in outbox_messages(app_ctx)] == ["queued"]


# --- after generating a period ----------------------------------------------------------------

def test_generate_then_email_all_new_invoices(qtbot, ops, app_ctx, server, host):
    db = app_ctx.db
    setup_office(db, email=FROM)
    month = Month.of(dt.date.today())
    start = month.shift(-1).first_day.isoformat()
    for name in ("Harbor Dental", "Zephyr Labs"):
        client = make_client(db, name, billing_emails=f"ap@{name.split()[0].lower()}.example")
        make_agreement(db, client, start, [LineDraft("Managed workstations", "10", "50.00")])
    configure(app_ctx, server.port)
    dialog = GenerateDialog(ops, host)
    dialog.open()
    wait_idle(qtbot, ops)
    dialog.period.setCurrentIndex(dialog.period.findData(str(month)))
    wait_idle(qtbot, ops)
    dialog.issue_now.setChecked(True)
    with qtbot.waitSignal(dialog.generated, timeout=10_000) as generated:
        dialog.create_button.click()
    wait_idle(qtbot, ops)
    assert "issued 2 drafts" in generated.args[1]
    assert dialog.isVisible()  # it stays, offering the e-mail
    assert dialog.email_button.isVisible() and dialog.email_button.text() == "E-mail all 2 new invoices"
    assert dialog.summary.text().endswith("E-mail them to the clients now?")
    assert not dialog.create_button.isVisible()
    shot(dialog, "generate_offers_email")
    runner = EmailRunner.for_ops(ops)
    outcome = run_and_wait(qtbot, ops, runner, dialog.email_button.click)
    assert not dialog.isVisible()
    assert outcome.sent == 2
    assert close_report(runner) == ("2 e-mails sent.", "")
    assert sorted(r.rcpt_tos[0] for r in server.received) == ["ap@harbor.example", "ap@zephyr.example"]
    assert {a[0] for r in server.received for a in attachments(r)} == {"INV-000001 Harbor Dental.pdf",
                                                                      "INV-000002 Zephyr Labs.pdf"}


def test_progress_dialog_and_report_look_right(qtbot, host):
    dialog = SendProgressDialog(host)
    dialog.show()
    dialog.progress(2, 5, "Sending to ap@zephyr.example…")
    assert dialog.headline.text() == "Sent 2 of 5 e-mails"
    shot(dialog, "send_progress")
    dialog.finish()


# --- E-mail… from the invoice window, the Invoices list and the PDF preview -----------------

def test_email_button_of_the_invoice_window_sends_and_records_it(qtbot, ops, app_ctx, office, server):
    from ui.invoice_dialog import InvoiceDialog

    configure(app_ctx, server.port)
    runner = EmailRunner.for_ops(ops)
    dialog = InvoiceDialog(ops, office.harbor)
    qtbot.addWidget(dialog)
    dialog.show()
    wait_idle(qtbot, ops)
    assert dialog.email_button.isVisible() and dialog.email_button.isEnabled()
    with qtbot.waitSignal(dialog.changed, timeout=20_000):
        run_and_wait(qtbot, ops, runner, lambda: qtbot.mouseClick(dialog.email_button, Qt.MouseButton.LeftButton))
    wait_idle(qtbot, ops)
    close_report(runner)
    assert [r.rcpt_tos for r in server.received] == [["ap@harbor.example"]]
    assert any("INV-000001" in name for name, kind, _ in attachments(server.received[0]) if kind == "application/pdf")
    # The invoice's history now says it was e-mailed.
    history = [dialog.history.item(r, 2).text() for r in range(dialog.history.rowCount())]
    assert any("ap@harbor.example" in h for h in history), history


def test_drafts_offer_no_email_button(qtbot, ops, app_ctx, office):
    from ui.invoice_dialog import InvoiceDialog

    draft = one_time(app_ctx.db, office_client(app_ctx, "Harbor Dental"), ("Toner", "1", "42.00"))
    dialog = InvoiceDialog(ops, draft)
    qtbot.addWidget(dialog)
    dialog.show()
    wait_idle(qtbot, ops)
    assert not dialog.email_button.isVisible()


def office_client(ctx, name: str) -> int:
    from mspbill.db.models import Client

    with ctx.db.session() as s:
        return s.scalar(select(Client.id).where(Client.legal_name == name))


def test_email_several_from_the_invoices_list(qtbot, ops, app_ctx, office, server):
    from ui.invoices_screen import InvoicesScreen

    configure(app_ctx, server.port)
    runner = EmailRunner.for_ops(ops)
    screen = InvoicesScreen(ops)
    qtbot.addWidget(screen)
    screen.resize(1300, 700)
    screen.show()
    screen.reload()
    wait_idle(qtbot, ops)
    screen.table.selectAll()
    assert screen.email_button.isEnabled() and screen.email_button.text() == "E-mail 3…"
    run_and_wait(qtbot, ops, runner, screen.email_button.click)
    close_report(runner)
    assert sorted(r.rcpt_tos[0] for r in server.received) == ["ap@harbor.example", "ap@zephyr.example"]
    wait_idle(qtbot, ops)
    column = [c.title for c in screen.model.columns].index("E-mail")
    cells = {screen.model.row_at(r).display_number: screen.model.index(r, column).data()
             for r in range(screen.model.rowCount())}
    today = dt.date.today().isoformat()
    assert cells == {"INV-000001": f"Sent {today}", "INV-000002": f"Sent {today}", "INV-000003": ""}


def test_the_invoice_preview_offers_email(qtbot, ops, app_ctx, office, server):
    from ui.invoices_screen import preview_invoice

    configure(app_ctx, server.port)
    runner = EmailRunner.for_ops(ops)
    host = QWidget()
    qtbot.addWidget(host)
    viewer = preview_invoice(ops, host, office.zephyr, can_email=True)  # a window owned by host
    wait_idle(qtbot, ops)
    from PySide6.QtGui import QAction

    found = [a for a in viewer.findChildren(QAction) if a.text() == "E-mail…"]
    assert len(found) == 1 and found[0].isEnabled()
    action = found[0]
    run_and_wait(qtbot, ops, runner, action.trigger)
    close_report(runner)
    assert [r.rcpt_tos for r in server.received] == [["ap@zephyr.example"]]
