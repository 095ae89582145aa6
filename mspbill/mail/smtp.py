"""Talking to the mail server: connect, secure, log in, send; and every way
that can go wrong turned into a sentence a person can act on (`MailError`).

What a failure means for the outbox is decided here as well:
- `stops_run`: the server or the account is at fault (cannot reach it, the
  TLS set-up fails, the login is refused, the sender address is refused):
  every other message would fail the same way, so a run stops and leaves
  them queued with this reason.
- `permanent`: the server refused this one message for good (5xx for all of
  its recipients or for its content, too big), or it cannot be built.
- neither: a passing fault of this message (4xx); it is tried again later.

The password is passed in, used for `login` and dropped; it is never logged,
stored, or put into a message (smtplib's debug output, which would show it, is
never switched on).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import email.policy
import hmac
import logging
import smtplib
import socket
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.base64mime import body_encode as encode_base64
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any, Self

from mspbill.clients import check_email
from mspbill.db.models import SmtpSecurity
from mspbill.mail.settings import MailSettingsDraft, SmtpAccount, account_from_draft
from mspbill.validation import Issue, ValidationError

log = logging.getLogger(__name__)

SETTINGS_PLACE = "Settings → E-mail"


class MailError(Exception):
    """A mail failure, as a message for the person at the screen."""

    def __init__(self, message: str, *, stops_run: bool = False, permanent: bool = False,
                 code: int | None = None):
        super().__init__(message)
        self.message = message
        self.stops_run = stops_run
        self.permanent = permanent
        self.code = code

    def __str__(self) -> str:
        return self.message


# --- messages -----------------------------------------------------------------

@dataclass(frozen=True)
class Attachment:
    filename: str
    data: bytes
    maintype: str = "application"
    subtype: str = "pdf"


def _needs_smtputf8(address: str) -> bool:
    local, _, _domain = address.rpartition("@")
    return not local.isascii()


def _ascii_domain(address: str) -> str:
    """user@bücher.example → user@xn--bcher-kva.example (what the SMTP envelope and headers need)."""
    local, at, domain = address.rpartition("@")
    if not at or domain.isascii():
        return address
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        return address


def _address(addr_spec: str, display_name: str = "") -> Address:
    local, _, domain = _ascii_domain(addr_spec).rpartition("@")
    return Address(display_name=display_name, username=local, domain=domain)


def build_message(account: SmtpAccount, *, to: Sequence[str], cc: Sequence[str] = (), subject: str,
                  body: str, message_id: str, date: dt.datetime | None = None,
                  attachments: Iterable[Attachment] = ()) -> EmailMessage:
    """A MIME message: headers encoded for non-ASCII names and subjects, text as
    quoted-printable UTF-8, attachments base64 with RFC 2231 file names."""
    utf8 = any(_needs_smtputf8(a) for a in [account.from_address, *to, *cc])
    msg = EmailMessage(policy=email.policy.SMTPUTF8 if utf8 else email.policy.SMTP)
    msg["From"] = _address(account.from_address, account.from_name)
    msg["To"] = [_address(a) for a in to]
    if cc:
        msg["Cc"] = [_address(a) for a in cc]
    if account.reply_to:
        msg["Reply-To"] = _address(account.reply_to)
    msg["Subject"] = subject
    msg["Date"] = format_datetime((date or dt.datetime.now(dt.UTC)).astimezone())
    msg["Message-ID"] = message_id
    msg.set_content(body, cte="quoted-printable")
    for item in attachments:
        msg.add_attachment(item.data, maintype=item.maintype, subtype=item.subtype, filename=item.filename)
    return msg


# --- the connection -------------------------------------------------------------

class _Stage:
    """Where a connection got to, so a failure can be explained precisely."""

    def __init__(self) -> None:
        self.name = "connect"


class _Utf8Auth(smtplib.SMTP):
    """smtplib.SMTP.auth, but the credentials are sent as UTF-8: Python 3.11's
    smtplib encodes them as ASCII and fails on a password such as "Grüezi-2026"."""

    _host: str  # set by smtplib; what starttls() and SMTP_SSL check the certificate against

    def auth(self, mechanism: str, authobject: Any, *, initial_response_ok: bool = True) -> tuple[int, bytes]:
        mechanism = mechanism.upper()
        initial_response = authobject() if initial_response_ok else None
        if initial_response is not None:
            response = encode_base64(initial_response.encode("utf-8"), eol="")
            code, resp = self.docmd("AUTH", mechanism + " " + response)
            self._auth_challenge_count = 1
        else:
            code, resp = self.docmd("AUTH", mechanism)
            self._auth_challenge_count = 0
        while code == 334:
            self._auth_challenge_count += 1
            challenge = base64.decodebytes(resp)
            response = encode_base64(authobject(challenge).encode("utf-8"), eol="")
            code, resp = self.docmd(response)
            if self._auth_challenge_count > smtplib._MAXCHALLENGE:  # type: ignore[attr-defined]
                raise smtplib.SMTPException("Server AUTH mechanism infinite loop. Last response: "
                                            + repr((code, resp)))
        if code in (235, 503):
            return code, resp
        raise smtplib.SMTPAuthenticationError(code, resp)

    def login(self, user: str, password: str, *, initial_response_ok: bool = True) -> tuple[int, bytes]:
        """smtplib.SMTP.login, but a refused password (535) ends it: smtplib would try
        every other method with the same wrong password, and some servers count each
        as a failed login towards locking the account."""
        self.ehlo_or_helo_if_needed()
        if not self.has_extn("auth"):
            raise smtplib.SMTPNotSupportedError("SMTP AUTH extension not supported by server.")
        advertised = self.esmtp_features["auth"].upper().split()
        methods = [m for m in ("CRAM-MD5", "PLAIN", "LOGIN") if m in advertised]
        if not methods:
            raise smtplib.SMTPException("No suitable authentication method found.")
        self.user, self.password = user, password
        last: smtplib.SMTPAuthenticationError | None = None
        try:
            for method in methods:
                name = "auth_" + method.lower().replace("-", "_")
                try:
                    return self.auth(method, getattr(self, name), initial_response_ok=initial_response_ok)
                except smtplib.SMTPAuthenticationError as exc:
                    last = exc
                    if exc.smtp_code == 535:
                        break
            assert last is not None
            raise last
        finally:
            self.password = ""

    def auth_cram_md5(self, challenge: bytes | None = None) -> str | None:  # type: ignore[override]
        if challenge is None:
            return None
        return self.user + " " + hmac.HMAC(self.password.encode("utf-8"), challenge, "md5").hexdigest()


class _SMTP(_Utf8Auth):
    def __init__(self, stage: _Stage, **kwargs: Any):
        self._stage = stage
        super().__init__(**kwargs)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = super()._get_socket(host, port, timeout)  # type: ignore[misc]
        self._stage.name = "greeting"
        return sock


class _SMTP_SSL(smtplib.SMTP_SSL, _Utf8Auth):
    def __init__(self, stage: _Stage, **kwargs: Any):
        self._stage = stage
        super().__init__(**kwargs)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = socket.create_connection((host, port), timeout, self.source_address)
        self._stage.name = "tls"
        try:
            tls = self.context.wrap_socket(sock, server_hostname=self._host)
        except BaseException:
            sock.close()
            raise
        self._stage.name = "greeting"
        return tls


def default_ssl_context() -> ssl.SSLContext:
    """Certificates verified against the system's trust store, host name checked."""
    return ssl.create_default_context()


class SmtpConnection:
    """One open, secured and logged-in connection; use as a context manager."""

    def __init__(self, account: SmtpAccount, password: str | None, *, timeout: float = 20,
                 ssl_context: ssl.SSLContext | None = None):
        self.account = account
        self.timeout = timeout
        self._ssl_context = ssl_context
        self._password = password
        self.smtp: smtplib.SMTP | None = None

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        account = self.account
        if account.username and not self._password:
            raise MailError(
                f"{account.host} needs a login as “{account.username}”, but no password is saved on this "
                f"computer: save the password in {SETTINGS_PLACE}.", stops_run=True)
        context = self._ssl_context or default_ssl_context()
        stage = _Stage()
        smtp: smtplib.SMTP | None = None
        # The EHLO name: a fixed one, because socket.getfqdn() can take seconds on
        # some networks and says nothing a mail server needs.
        local_name = "mspbill.localdomain"
        try:
            if account.security is SmtpSecurity.SSL:
                smtp = _SMTP_SSL(stage, local_hostname=local_name, timeout=self.timeout, context=context)
            else:
                smtp = _SMTP(stage, local_hostname=local_name, timeout=self.timeout)
            smtp._host = account.host  # what starttls() checks the certificate against
            code, greeting = smtp.connect(account.host, account.port)
            if code != 220:
                raise smtplib.SMTPConnectError(code, greeting)
            stage.name = "ehlo"
            smtp.ehlo()
            if account.security is SmtpSecurity.STARTTLS:
                stage.name = "starttls"
                if not smtp.has_extn("starttls"):
                    raise smtplib.SMTPNotSupportedError("STARTTLS extension not supported by server.")
                smtp.starttls(context=context)
                stage.name = "ehlo"
                smtp.ehlo()
            if account.username:
                stage.name = "login"
                smtp.login(account.username, self._password or "")
            stage.name = "ready"
        except Exception as exc:
            if smtp is not None:
                _close_quietly(smtp)
            raise classify(exc, account, stage=stage.name, timeout=self.timeout) from exc
        finally:
            self._password = None  # not kept a moment longer than needed
        self.smtp = smtp
        log.info("connected to %s (%s)", account.where, account.security.value)

    def send(self, msg: EmailMessage, *, recipients: Sequence[str], bcc: Sequence[str] = ()) -> dict[str, str]:
        """Send to `recipients` (To and Cc) and `bcc`.  Returns the addresses refused
        while others accepted it ({address: server's reason}); raises MailError when
        the message did not go to any of `recipients`."""
        if self.smtp is None:
            raise MailError("Not connected to the mail server.", stops_run=True)
        try:
            return self._transact(msg, list(recipients), list(bcc))
        except MailError:
            raise
        except Exception as exc:
            raise classify(exc, self.account, stage="send", timeout=self.timeout) from exc

    def _transact(self, msg: EmailMessage, recipients: list[str], bcc: list[str]) -> dict[str, str]:
        smtp = self.smtp
        assert smtp is not None
        utf8 = msg.policy is email.policy.SMTPUTF8 or getattr(msg.policy, "utf8", False)
        data = msg.as_bytes()
        options: list[str] = []
        smtp.ehlo_or_helo_if_needed()
        if utf8:
            if not smtp.has_extn("smtputf8"):
                raise MailError(
                    f"An address of this message has letters outside A–Z before the “@”, and "
                    f"{self.account.host} cannot take such addresses (it lacks SMTPUTF8). Use a plain "
                    "address for the client, or another mail server.", permanent=True)
            options += ["SMTPUTF8", "BODY=8BITMIME"]
        if smtp.does_esmtp and smtp.has_extn("size"):
            options.append(f"SIZE={len(data)}")
        sender = _ascii_domain(self.account.from_address)
        code, resp = smtp.mail(sender, options)
        if code != 250:
            self._abort(code)
            raise smtplib.SMTPSenderRefused(code, resp, sender)
        refused: dict[str, tuple[int, bytes]] = {}
        wanted = [_ascii_domain(a) for a in recipients]
        for rcpt in wanted + [_ascii_domain(a) for a in bcc if a.lower() not in {w.lower() for w in wanted}]:
            code, resp = smtp.rcpt(rcpt)
            if code not in (250, 251):
                refused[rcpt] = (code, resp)
            if code == 421:
                smtp.close()
                raise smtplib.SMTPRecipientsRefused(refused)
        if all(r in refused for r in wanted):
            # Not one of the client's addresses took it (an office copy alone is no delivery).
            self._abort(0)
            raise smtplib.SMTPRecipientsRefused({r: refused[r] for r in wanted})
        code, resp = smtp.data(data)
        if code != 250:
            self._abort(code)
            raise smtplib.SMTPDataError(code, resp)
        return {r: f"{c} {_text(t)}" for r, (c, t) in refused.items()}

    def _abort(self, code: int) -> None:
        smtp = self.smtp
        assert smtp is not None
        if code == 421:
            smtp.close()
            return
        try:
            smtp.rset()
        except (smtplib.SMTPException, OSError):
            smtp.close()

    @property
    def usable(self) -> bool:
        return self.smtp is not None and getattr(self.smtp, "sock", None) is not None

    def close(self) -> None:
        if self.smtp is not None:
            smtp, self.smtp = self.smtp, None
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                _close_quietly(smtp)


def _close_quietly(smtp: smtplib.SMTP) -> None:
    # Closing after a failure: there is nothing more to report.
    with contextlib.suppress(OSError, smtplib.SMTPException):
        smtp.close()


# --- classify --------------------------------------------------------------------

def _text(raw: bytes | str | None) -> str:
    if raw is None:
        return ""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return " ".join(text.split())[:300]


def _said(code: int | None, raw: bytes | str | None) -> str:
    text = _text(raw)
    if code and code > 0:
        text = f"{code} {text}".strip()
    return f" (the server said: “{text}”)" if text else ""


def _is_too_big(code: int, raw: bytes | str | None) -> bool:
    text = _text(raw).lower()
    return code == 552 and ("size" in text or "big" in text or "5.3.4" in text or "exceed" in text or not text) \
        or "5.3.4" in text


def _port_hint(account: SmtpAccount) -> str:
    if account.security is SmtpSecurity.SSL:
        return "SSL/TLS usually uses port 465"
    if account.security is SmtpSecurity.STARTTLS:
        return "STARTTLS usually uses port 587"
    return "an unencrypted relay usually uses port 25"


def classify(exc: BaseException, account: SmtpAccount, *, stage: str = "send",
             timeout: float = 20) -> MailError:
    """The MailError for an exception raised while talking to `account`'s server.

    `stage` says how far the connection got: connect, tls, greeting, ehlo,
    starttls, login, send."""
    if isinstance(exc, MailError):
        return exc
    host, port, where = account.host, account.port, account.where
    code: int
    raw: bytes | str
    secs = f"{timeout:g} second{'s' if timeout != 1 else ''}"

    def stop(message: str, code: int | None = None) -> MailError:
        return MailError(message, stops_run=True, code=code)

    # --- network and TLS ---
    if isinstance(exc, socket.gaierror):
        return stop(f"The mail server “{host}” could not be found (port {port}). Check the server name in "
                    f"{SETTINGS_PLACE} and that this computer is online.")
    if isinstance(exc, ConnectionRefusedError):
        return stop(f"{host} refused the connection on port {port}: no mail server is listening there. "
                    f"Check the port in {SETTINGS_PLACE} ({_port_hint(account)}), or try again later if the "
                    "server is down.")
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or exc.reason or str(exc)
        if exc.verify_code in (62, 64) or "mismatch" in str(reason).lower():
            advice = (f"the certificate is made out for another name. Enter the server name exactly as your "
                      f"provider gives it in {SETTINGS_PLACE}")
        else:
            advice = ("it is not signed by an authority this computer trusts (self-signed, expired or "
                      "incomplete). Ask your provider for the right server name, or have the certificate fixed")
        return stop(f"The certificate of {where} could not be verified ({reason}): {advice}. Nothing was sent.")
    if _is_timeout(exc):
        if stage == "connect":
            return stop(f"No answer from {host} on port {port} within {secs}. Check the server name and port "
                        f"in {SETTINGS_PLACE} and that no firewall blocks outgoing mail, then try again.")
        if stage == "greeting" and account.security is not SmtpSecurity.SSL:
            return stop(f"{where} accepted the connection but did not greet within {secs}. If this port "
                        f"expects SSL/TLS from the start (usually port 465), choose SSL/TLS as the security in "
                        f"{SETTINGS_PLACE}; otherwise the server is not responding, try again later.")
        if stage == "tls":
            return stop(f"The SSL/TLS handshake with {where} did not finish within {secs}. Check the port and "
                        f"security in {SETTINGS_PLACE} ({_port_hint(account)}), then try again.")
        return stop(f"{where} stopped answering for {secs} ({_stage_words(stage)}). Try again later; if it "
                    "keeps happening, check the server name and port.")
    if isinstance(exc, ssl.SSLError):
        reason = (exc.reason or str(exc)).replace("_", " ").lower()
        if account.security is SmtpSecurity.SSL and stage in ("tls", "greeting", "connect"):
            return stop(f"{where} did not answer with SSL/TLS ({reason}). Port {port} probably expects "
                        f"STARTTLS (usually port 587): choose STARTTLS as the security in {SETTINGS_PLACE}, "
                        "or use the server's SSL/TLS port (usually 465).")
        return stop(f"The encrypted connection to {where} failed ({reason}). Check the security and port in "
                    f"{SETTINGS_PLACE} ({_port_hint(account)}).")

    # --- SMTP replies ---
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        if stage == "starttls":
            return stop(f"{where} does not offer STARTTLS, so the password and invoices would travel "
                        f"unencrypted. Choose SSL/TLS in {SETTINGS_PLACE} if the server has it (usually port "
                        "465); choose “None” only for a relay inside your own network.")
        if stage == "login":
            return stop(f"{where} does not offer a login (SMTP AUTH) on this connection. Choose STARTTLS or "
                        f"SSL/TLS in {SETTINGS_PLACE} (many servers offer a login only once encrypted), or "
                        "clear the user name if this relay needs none.")
        return stop(f"{where} does not support what mspbill asked of it ({_text(str(exc))}).")
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return stop(f"{host} refused the login as “{account.username}”: the user name or password is wrong"
                    f"{_said(exc.smtp_code, exc.smtp_error)}. Check the user name and save the password again "
                    f"in {SETTINGS_PLACE}; some providers (Microsoft 365, Gmail) need an app password or SMTP "
                    "login switched on for the mailbox.", exc.smtp_code)
    if isinstance(exc, smtplib.SMTPSenderRefused):
        code, raw = exc.smtp_code, exc.smtp_error
        if code == 421:
            return stop(f"{where} closed the connection{_said(code, raw)}. It will be tried again later.", code)
        if _is_too_big(code, raw):
            return _too_big(where, code, raw)
        if code in (530, 550, 554) and "auth" in _text(raw).lower() or code == 530:
            return stop(f"{host} accepts mail only after a login{_said(code, raw)}: enter the user name in "
                        f"{SETTINGS_PLACE} and save the password.", code)
        if 400 <= code < 500:
            return MailError(f"{host} temporarily refused to take this message{_said(code, raw)}. It will be "
                             "tried again later.", code=code)
        sender = exc.sender.decode() if isinstance(exc.sender, bytes) else exc.sender
        return stop(f"{host} refused the sender address {sender}{_said(code, raw)}. Enter an address this "
                    f"account may send from as the From address in {SETTINGS_PLACE}.", code)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        items = list(exc.recipients.items())
        codes = [c for _, (c, _t) in items]
        listed = "; ".join(f"{addr} ({c} {_text(t)})".strip() for addr, (c, t) in items)
        if any(c == 421 for c in codes):
            return stop(f"{where} closed the connection while taking the recipients ({listed}). "
                        "It will be tried again later.", 421)
        if any(400 <= c < 500 for c in codes):
            return MailError(f"{host} temporarily refused the recipients: {listed}. It will be tried again "
                             "later.", code=codes[0] if codes else None)
        noun = "recipient" if len(items) == 1 else "recipients"
        return MailError(f"{host} refused the {noun} {listed}. Correct the billing e-mail address under Clients, "
                         "then choose Retry in the Outbox.", permanent=True, code=codes[0] if codes else None)
    if isinstance(exc, smtplib.SMTPDataError):
        code, raw = exc.smtp_code, exc.smtp_error
        if code == 421:
            return stop(f"{where} closed the connection{_said(code, raw)}. It will be tried again later.", code)
        if _is_too_big(code, raw):
            return _too_big(where, code, raw)
        if 400 <= code < 500:
            return MailError(f"{host} temporarily refused the message{_said(code, raw)}. It will be tried "
                             "again later.", code=code)
        return MailError(f"{host} refused the message{_said(code, raw)}.", permanent=True, code=code)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        hint = ""
        if stage == "greeting" and account.security is not SmtpSecurity.SSL:
            hint = (f" If this port expects SSL/TLS from the start (usually port 465), choose SSL/TLS as the "
                    f"security in {SETTINGS_PLACE}.")
        return stop(f"{where} closed the connection unexpectedly ({_stage_words(stage)}). Try again "
                    f"later.{hint}")
    if isinstance(exc, smtplib.SMTPConnectError):
        return stop(f"{where} refused service{_said(exc.smtp_code, exc.smtp_error)}. Try again later, or "
                    "check the server name and port.", exc.smtp_code)
    if isinstance(exc, smtplib.SMTPResponseException):
        code, raw = exc.smtp_code, exc.smtp_error
        return stop(f"{where} answered with an error ({_stage_words(stage)}){_said(code, raw)}. Try again "
                    f"later; if it persists, check the settings in {SETTINGS_PLACE}.", code)
    if isinstance(exc, smtplib.SMTPException):
        text = _text(str(exc))
        if stage == "login":
            return stop(f"{where} offers no login method mspbill can use ({text}). Check the security "
                        f"setting in {SETTINGS_PLACE}.")
        return stop(f"Sending through {where} failed: {text}.")
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc) or type(exc).__name__
        return stop(f"Could not reach {host} on port {port}: {reason}. Check that this computer is online "
                    f"and the server name and port in {SETTINGS_PLACE}.")
    return stop(f"Sending through {where} failed unexpectedly: {type(exc).__name__}: {_text(str(exc))}.")


def _is_timeout(exc: BaseException) -> bool:
    # smtplib reports a read that timed out as SMTPServerDisconnected("… timed out").
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return True
    return isinstance(exc, smtplib.SMTPServerDisconnected) and (
        isinstance(exc.__context__, (TimeoutError, socket.timeout)) or "timed out" in str(exc))


def _too_big(where: str, code: int, raw: bytes | str | None) -> MailError:
    return MailError(f"The message is too big for {where}{_said(code, raw)}. Attachments that large are "
                     "refused; send the invoice another way.", permanent=True, code=code)


def _stage_words(stage: str) -> str:
    return {"connect": "while connecting", "tls": "during the SSL/TLS handshake",
            "greeting": "before its greeting", "ehlo": "after the greeting", "starttls": "while starting TLS",
            "login": "while logging in", "send": "while sending"}.get(stage, stage)


# --- the test e-mail ----------------------------------------------------------------

def send_test_email(draft: MailSettingsDraft, password: str | None, to: str, *, timeout: float = 20,
                    ssl_context: ssl.SSLContext | None = None) -> None:
    """Send a short e-mail straight away (not through the outbox) with the settings
    as typed, saved or not.  Raises ValidationError for settings or an address
    that are not valid, MailError (a sentence to show) when sending fails."""
    issues: list[Issue] = []
    try:
        account = account_from_draft(draft)
    except ValidationError as exc:
        issues += exc.issues
        account = None
    address = check_email((to or "").strip(), "to", issues, label=(to or "").strip() or "(empty)")
    if issues or account is None or address is None:
        raise ValidationError(issues)
    sender = account.from_name or account.from_address
    body = (f"This is a test e-mail from mspbill.\n\n"
            f"It was sent through {account.where} ({account.security.label})"
            f"{' as ' + account.username if account.username else ''}, from {account.from_address}.\n"
            "If you can read it, invoices can be e-mailed with these settings.\n")
    msg = build_message(account, to=[address], subject=f"mspbill test e-mail from {sender}", body=body,
                        message_id=make_msgid(domain=message_domain(account.from_address)))
    with SmtpConnection(account, password, timeout=timeout, ssl_context=ssl_context) as conn:
        conn.send(msg, recipients=[address])
    log.info("test e-mail sent via %s", account.where)


def message_domain(address: str) -> str:
    domain = address.rpartition("@")[2]
    try:
        return domain.encode("idna").decode("ascii") or "mspbill.localdomain"
    except UnicodeError:
        return "mspbill.localdomain"
