"""The SMTP layer against real servers on 127.0.0.1: the test e-mail, TLS both
ways, logins, and every failure turned into a sentence that names the server
and says what to do."""

from __future__ import annotations

import smtplib
import socket
import ssl
from pathlib import Path

import pytest
from smtp_server import (
    Certificate,
    SilentServer,
    SmtpTestServer,
    free_port,
    make_certificate,
)

from mspbill.db.models import SmtpSecurity
from mspbill.mail import MailError, MailSettingsDraft, classify, send_test_email
from mspbill.mail.settings import SmtpAccount
from mspbill.mail.smtp import Attachment, build_message
from mspbill.validation import ValidationError

# aiosmtpd's own notices when a test server allows a login without TLS.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS",
                                        "ignore:Session.login_data is deprecated")

USER, PASSWORD = "billing@acme-it.example", "Grüezi-2026!"
TO = "office@client.example"


def _draft(port: int, security: str = "none", username: str = "", host: str = "127.0.0.1") -> MailSettingsDraft:
    return MailSettingsDraft(host=host, port=str(port), security=security, username=username,
                             from_address="billing@acme-it.example", from_name="Acme IT Zürich")


def _fails(draft: MailSettingsDraft, password: str | None = None, *, timeout: float = 5,
           ssl_context: ssl.SSLContext | None = None, to: str = TO) -> MailError:
    with pytest.raises(MailError) as caught:
        send_test_email(draft, password, to, timeout=timeout, ssl_context=ssl_context)
    return caught.value


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("cert"))


# --- it works ---------------------------------------------------------------------------

def test_test_email_arrives() -> None:
    with SmtpTestServer() as srv:
        send_test_email(_draft(srv.port), None, TO)
    [got] = srv.received
    assert got.rcpt_tos == [TO] and got.mail_from == "billing@acme-it.example"
    msg = got.message
    assert msg["Subject"] == "mspbill test e-mail from Acme IT Zürich"
    assert msg["From"].addresses[0].display_name == "Acme IT Zürich"
    assert f"127.0.0.1:{srv.port}" in msg.get_content()


@pytest.mark.parametrize("tls", ["starttls", "ssl"])
def test_encrypted_with_a_utf8_password(cert: Certificate, tls: str) -> None:
    with SmtpTestServer(users={USER: PASSWORD}, tls=tls, certificate=cert) as srv:
        send_test_email(_draft(srv.port, tls, USER), PASSWORD, TO, ssl_context=cert.client_context())
    assert srv.logins == [(USER, True)] and len(srv.received) == 1


def test_internationalised_recipient() -> None:
    with SmtpTestServer() as srv:
        send_test_email(_draft(srv.port), None, "jürgen@bücher.example")
    assert srv.received[0].rcpt_tos == ["jürgen@xn--bcher-kva.example"]


# --- TLS trouble ----------------------------------------------------------------------

def test_self_signed_certificate_is_not_trusted_by_default(cert: Certificate) -> None:
    with SmtpTestServer(tls="starttls", certificate=cert) as srv:
        err = _fails(_draft(srv.port, "starttls"))
    assert f"The certificate of 127.0.0.1:{srv.port} could not be verified" in str(err)
    assert err.stops_run and not err.permanent and srv.received == []


def test_certificate_for_another_name(tmp_path: Path) -> None:
    other = make_certificate(tmp_path, names=("mail.other.example",))
    with SmtpTestServer(tls="ssl", certificate=other) as srv:
        err = _fails(_draft(srv.port, "ssl"), ssl_context=other.client_context())
    assert "made out for another name" in str(err)


def test_ssl_chosen_for_a_starttls_port() -> None:
    with SmtpTestServer() as srv:
        err = _fails(_draft(srv.port, "ssl"))
    assert f"127.0.0.1:{srv.port} did not answer with SSL/TLS" in str(err)
    assert "choose STARTTLS" in str(err) and err.stops_run


def test_starttls_chosen_for_an_implicit_tls_port(cert: Certificate) -> None:
    with SmtpTestServer(tls="ssl", certificate=cert) as srv:
        err = _fails(_draft(srv.port, "starttls"), timeout=1, ssl_context=cert.client_context())
    assert "did not greet within 1 second" in str(err) and "choose SSL/TLS" in str(err)


def test_server_without_starttls() -> None:
    with SmtpTestServer() as srv:
        err = _fails(_draft(srv.port, "starttls"))
    assert f"127.0.0.1:{srv.port} does not offer STARTTLS" in str(err)
    assert srv.received == []


# --- cannot reach it -----------------------------------------------------------------------

def test_unknown_host_name() -> None:
    err = _fails(_draft(587, "starttls", host="no-such-mail-server.invalid"))
    assert "“no-such-mail-server.invalid” could not be found" in str(err) and "Settings → E-mail" in str(err)


def test_connection_refused() -> None:
    port = free_port()
    err = _fails(_draft(port, "starttls"))
    assert f"127.0.0.1 refused the connection on port {port}" in str(err)
    assert "STARTTLS usually uses port 587" in str(err) and err.stops_run


def test_server_that_never_answers() -> None:
    with SilentServer() as silent:
        err = _fails(_draft(silent.port), timeout=0.5)
    assert f"127.0.0.1:{silent.port} accepted the connection but did not greet within 0.5 seconds" in str(err)


# --- logins ---------------------------------------------------------------------------

def test_wrong_password_is_tried_once() -> None:
    with SmtpTestServer(users={USER: PASSWORD}, auth_require_tls=False) as srv:
        err = _fails(_draft(srv.port, "none", USER), "Gruezi-2026!")
    assert "refused the login as “billing@acme-it.example”" in str(err) and "535" in str(err)
    assert err.stops_run and srv.logins == [(USER, False)]


def test_login_needed_but_no_password_saved() -> None:
    with SmtpTestServer(users={USER: PASSWORD}, auth_require_tls=False) as srv:
        err = _fails(_draft(srv.port, "none", USER), None)
    assert "save the password in Settings → E-mail" in str(err) and srv.logins == []


def test_server_wants_a_login_but_no_user_name_is_set() -> None:
    with SmtpTestServer(users={USER: PASSWORD}, auth_require_tls=False) as srv:
        err = _fails(_draft(srv.port))
    assert "accepts mail only after a login" in str(err) and "530" in str(err) and err.stops_run


def test_user_name_set_but_server_offers_no_login() -> None:
    with SmtpTestServer() as srv:
        err = _fails(_draft(srv.port, "none", USER), PASSWORD)
    assert "does not offer a login (SMTP AUTH)" in str(err)


# --- the message is refused ------------------------------------------------------------------

def test_recipient_refused() -> None:
    with SmtpTestServer() as srv:
        srv.refuse(TO, "550 5.1.1 Mailbox does not exist")
        err = _fails(_draft(srv.port))
    assert f"refused the recipient {TO} (550 5.1.1 Mailbox does not exist)" in str(err)
    assert err.permanent and not err.stops_run and "Clients" in str(err)


def test_invalid_settings_or_address_are_validation_errors() -> None:
    with pytest.raises(ValidationError) as caught:
        send_test_email(MailSettingsDraft(host="", port="0", from_address="x"), None, "not an address")
    assert set(caught.value.by_field()) == {"host", "port", "from_address", "to"}


# --- classify: the replies a test server does not give -----------------------------------------

ACCOUNT = SmtpAccount(host="smtp.acme.example", port=587, security=SmtpSecurity.STARTTLS, username="",
                      from_address="billing@acme.example", from_name="", reply_to="", bcc_office=False)


@pytest.mark.parametrize("exc, stops_run, permanent, words", [
    (smtplib.SMTPSenderRefused(553, b"5.7.1 Sender address rejected: not owned by user", "billing@acme.example"),
     True, False, ["refused the sender address billing@acme.example", "From address"]),
    (smtplib.SMTPSenderRefused(552, b"5.3.4 Message size exceeds fixed limit", "billing@acme.example"),
     False, True, ["too big for smtp.acme.example:587"]),
    (smtplib.SMTPDataError(552, b"5.3.4 Message too big"), False, True, ["too big"]),
    (smtplib.SMTPDataError(554, b"5.7.1 Spam detected"), False, True, ["refused the message", "Spam detected"]),
    (smtplib.SMTPDataError(451, b"4.3.0 Try again"), False, False, ["temporarily", "tried again later"]),
    (smtplib.SMTPSenderRefused(421, b"4.7.0 Too many connections", "billing@acme.example"),
     True, False, ["closed the connection", "Too many connections"]),
    (smtplib.SMTPRecipientsRefused({"a@b.example": (421, b"closing")}), True, False, ["closed the connection"]),
    (smtplib.SMTPServerDisconnected("Connection unexpectedly closed"), True, False, ["closed the connection"]),
    (socket.gaierror(-2, "Name or service not known"), True, False, ["could not be found"]),
    (OSError(101, "Network is unreachable"), True, False, ["Network is unreachable", "online"]),
])
def test_classify(exc: BaseException, stops_run: bool, permanent: bool, words: list[str]) -> None:
    err = classify(exc, ACCOUNT, stage="send")
    assert (err.stops_run, err.permanent) == (stops_run, permanent)
    for word in words:
        assert word in str(err)


# --- building the message ---------------------------------------------------------------------

def test_message_headers_and_attachment_names_are_encoded() -> None:
    account = SmtpAccount(host="h", port=25, security=SmtpSecurity.NONE, username="",
                          from_address="billing@acme.example", from_name="Büro Zürich",
                          reply_to="", bcc_office=False)
    msg = build_message(account, to=["ap@dental.example"], subject="Rechnung für Zürich Dental GmbH",
                        body="Grüezi\n", message_id="<1@acme.example>",
                        attachments=[Attachment("INV-000001 Zürich Dental GmbH.pdf", b"%PDF-1.4 test")])
    raw = msg.as_bytes()
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()  # RFC 2047 encoded words, no raw 8-bit in the headers
    assert b"filename*=utf-8''INV-000001%20Z%C3%BCrich" in raw
    body = msg.get_body(("plain",))
    assert body is not None and body["Content-Transfer-Encoding"] == "quoted-printable"
