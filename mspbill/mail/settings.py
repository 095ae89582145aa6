"""The office's outgoing mail account and invoice e-mail template (one row).

The password is not here: it lives in each workstation's OS keyring
(`mspbill.secrets.SMTP_PASSWORD`); the UI and CLI fetch it and hand it to
`send_test_email` and `send_outbox`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy.orm import Session

from mspbill import audit
from mspbill.clients import check_email, check_name
from mspbill.db.models import MailSettings, SmtpSecurity
from mspbill.mail.templates import (
    DEFAULT_INVOICE_BODY,
    DEFAULT_INVOICE_SUBJECT,
    check_template,
    invoice_body_template,
)
from mspbill.validation import Issue, ValidationError

DEFAULT_PORTS = {SmtpSecurity.STARTTLS: 587, SmtpSecurity.SSL: 465, SmtpSecurity.NONE: 25}
SUBJECT_MAX = 500
BODY_MAX = 10_000
# RFC 1123 host names (IDN already in their Unicode form are accepted too) or an IP address.
_HOST = re.compile(r"^(?=.{1,253}$)(?!-)[\w-]{1,63}(?<!-)(\.(?!-)[\w-]{1,63}(?<!-))*\.?$|^\[?[0-9a-fA-F:.]+\]?$")


@dataclass
class MailSettingsDraft:
    """The Settings → E-mail form, as typed."""

    host: str = ""
    port: str = "587"
    security: str = SmtpSecurity.STARTTLS.value
    username: str = ""
    from_address: str = ""
    from_name: str = ""
    reply_to: str = ""
    bcc_office: bool = False
    invoice_subject: str = DEFAULT_INVOICE_SUBJECT
    invoice_body: str = DEFAULT_INVOICE_BODY


@dataclass(frozen=True)
class SmtpAccount:
    """What sending needs, as a frozen snapshot (safe to hand to a worker thread)."""

    host: str
    port: int
    security: SmtpSecurity
    username: str
    from_address: str
    from_name: str
    reply_to: str
    bcc_office: bool

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


def mail_settings_draft(session: Session) -> MailSettingsDraft:
    """The saved settings, or defaults (sender taken from the company profile) when none are saved."""
    row = session.get(MailSettings, 1)
    if row is None:
        from mspbill.company import get_company

        company = get_company(session)
        return MailSettingsDraft(from_address=company.email if company else "",
                                 from_name=company.name if company else "")
    return MailSettingsDraft(
        host=row.host, port=str(row.port), security=row.security.value, username=row.username,
        from_address=row.from_address, from_name=row.from_name, reply_to=row.reply_to,
        bcc_office=row.bcc_office, invoice_subject=row.invoice_subject or DEFAULT_INVOICE_SUBJECT,
        invoice_body=invoice_body_template(row.invoice_body))


def validate_mail_settings(draft: MailSettingsDraft) -> tuple[dict[str, object], list[Issue]]:
    issues: list[Issue] = []
    v: dict[str, object] = {}
    host = (draft.host or "").strip()
    if not host:
        issues.append(Issue("host", "Enter the mail server's name, for example smtp.office365.com."))
    elif len(host) > 255 or not _HOST.match(host):
        issues.append(Issue("host", f"“{host}” is not a server name; enter a name such as smtp.gmail.com "
                                    "(no “smtp://”, no port, no spaces)."))
    v["host"] = host.strip("[]")
    security_text = (draft.security or "").strip().lower()
    try:
        security = SmtpSecurity(security_text)
    except ValueError:
        issues.append(Issue("security", "Security is STARTTLS, SSL/TLS or None."))
        security = SmtpSecurity.STARTTLS
    v["security"] = security
    port_text = str(draft.port or "").strip()
    port = DEFAULT_PORTS[security]
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        issues.append(Issue("port", "The port is a number from 1 to 65535 (usually 587 for STARTTLS, "
                                    "465 for SSL/TLS)."))
    else:
        port = int(port_text)
    v["port"] = port
    v["username"] = check_name(draft.username, "username", "user name", issues, required=False, limit=320)
    from_address = (draft.from_address or "").strip()
    if not from_address:
        issues.append(Issue("from_address", "Enter the address invoices are sent from, for example "
                                            "billing@your-company.com."))
        v["from_address"] = ""
    else:
        v["from_address"] = check_email(from_address, "from_address", issues) or from_address
    v["from_name"] = check_name(draft.from_name, "from_name", "sender name", issues, required=False)
    reply_to = (draft.reply_to or "").strip()
    v["reply_to"] = (check_email(reply_to, "reply_to", issues) or reply_to) if reply_to else ""
    v["bcc_office"] = bool(draft.bcc_office)
    subject = (draft.invoice_subject or "").strip()
    if not subject:
        issues.append(Issue("invoice_subject", f"Enter a subject, for example “{DEFAULT_INVOICE_SUBJECT}”."))
    elif len(subject) > SUBJECT_MAX:
        issues.append(Issue("invoice_subject", f"The subject is limited to {SUBJECT_MAX} characters."))
    elif "\n" in subject or "\r" in subject:
        issues.append(Issue("invoice_subject", "The subject is one line."))
    else:
        check_template(subject, "invoice_subject", "subject", issues)
    v["invoice_subject"] = subject
    body = (draft.invoice_body or "").replace("\r\n", "\n").strip("\n")
    if not body.strip():
        issues.append(Issue("invoice_body", "Enter the text of the e-mail."))
    elif len(body) > BODY_MAX:
        issues.append(Issue("invoice_body", f"The text is limited to {BODY_MAX:,} characters."))
    else:
        check_template(body, "invoice_body", "text", issues)
    v["invoice_body"] = body + "\n"
    return v, issues


def save_mail_settings(session: Session, draft: MailSettingsDraft) -> None:
    values, issues = validate_mail_settings(draft)
    if issues:
        raise ValidationError(issues)
    row = session.get(MailSettings, 1)
    created = row is None
    if row is None:
        row = MailSettings(id=1)
        session.add(row)
    before = {k: getattr(row, k, None) for k in values}
    for k, val in values.items():
        setattr(row, k, val)
    session.flush()
    changes = audit.diff(before, values)
    # The template texts are long; the history says they changed, not how.
    for key in ("invoice_subject", "invoice_body"):
        if key in changes:
            changes[key] = ["", "changed"]
    audit.record(session, "settings.mail", "settings", 1,
                 f"{'Set up' if created else 'Updated'} the e-mail account ({values['host']}:{values['port']}, "
                 f"from {values['from_address']})", {"changes": changes})


def is_configured(session: Session) -> bool:
    row = session.get(MailSettings, 1)
    return row is not None and bool(row.host) and bool(row.from_address)


def account_from_draft(draft: MailSettingsDraft) -> SmtpAccount:
    """A validated account from a form (for the test e-mail before saving)."""
    values, issues = validate_mail_settings(draft)
    account_fields = ("host", "port", "security", "username", "from_address")
    relevant = [i for i in issues if i.field in account_fields + ("from_name", "reply_to")]
    if relevant:
        raise ValidationError(relevant)
    return SmtpAccount(host=str(values["host"]), port=int(values["port"]),  # type: ignore[call-overload]
                       security=values["security"], username=str(values["username"]),  # type: ignore[arg-type]
                       from_address=str(values["from_address"]), from_name=str(values["from_name"]),
                       reply_to=str(values["reply_to"]), bcc_office=bool(values["bcc_office"]))


def load_account(session: Session) -> SmtpAccount | None:
    row = session.get(MailSettings, 1)
    if row is None or not row.host or not row.from_address:
        return None
    return SmtpAccount(host=row.host, port=row.port, security=row.security, username=row.username,
                       from_address=row.from_address, from_name=row.from_name, reply_to=row.reply_to,
                       bcc_office=row.bcc_office)


NOT_CONFIGURED = ("E-mail is not set up yet: enter the mail server and the sender address under "
                  "Settings → E-mail first.")
