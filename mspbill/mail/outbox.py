"""The outbox: every e-mail is written down before any attempt to send it, so
a mail server that is down, a wrong password or a crash loses nothing.

Life of a message: queued → sending → sent, or back to queued after a passing
fault (attempts + 1, the reason, the next attempt by backoff — never given up),
or failed when the server refused this message for good (Retry re-queues it).
A message left in `sending` for over ten minutes (the program died mid-send)
counts as queued again.  It keeps the Message-ID it was given when queued, so
a copy that did reach the client before the crash is recognisably the same.

Queueing and the status functions take a Session and do not commit (house
rule 3).  `send_outbox` takes the Database, because it owns its transactions:
one short one to claim each message and one to record the outcome, and none
while talking to the server.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import ssl
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from email.utils import make_msgid

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, defer, selectinload

from mspbill import audit
from mspbill.db.engine import Database
from mspbill.db.models import (
    Client,
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    MailSettings,
    OutboxMessage,
    OutboxStatus,
)
from mspbill.invoicing import get_invoice
from mspbill.mail.settings import (
    NOT_CONFIGURED,
    SmtpAccount,
    is_configured,
    load_account,
)
from mspbill.mail.smtp import (
    Attachment,
    MailError,
    SmtpConnection,
    build_message,
    message_domain,
)
from mspbill.mail.templates import (
    CREDIT_NOTE_BODY,
    CREDIT_NOTE_SUBJECT,
    DEFAULT_INVOICE_BODY,
    DEFAULT_INVOICE_SUBJECT,
    invoice_body_template,
    invoice_values,
    render,
)
from mspbill.validation import Issue, ValidationError

log = logging.getLogger(__name__)

KIND_INVOICE = "invoice"
# Reminders (collections.reminders) follow up an invoice; they are not its e-mail: they
# neither count as the invoice having been sent nor show as its e-mail status.
KIND_REMINDER = "reminder"
# Minutes to wait after the 1st, 2nd, … failed attempt; then hourly, for ever.
BACKOFF_MINUTES = (1, 5, 15, 30)
LATER_MINUTES = 60
STALE_SENDING = dt.timedelta(minutes=10)
SUBJECT_MAX = 500
ERROR_MAX = 1000
_IN_CHUNK = 500

PasswordSource = str | None | Callable[[], str | None]
Progress = Callable[[int, int, str], None]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def backoff(attempts: int) -> dt.timedelta:
    """How long to wait after `attempts` failed attempts (1 → 1 min, 2 → 5 min, … then hourly)."""
    if attempts <= 0:
        return dt.timedelta(0)
    if attempts <= len(BACKOFF_MINUTES):
        return dt.timedelta(minutes=BACKOFF_MINUTES[attempts - 1])
    return dt.timedelta(minutes=LATER_MINUTES)


# --- snapshots ------------------------------------------------------------------

@dataclass(frozen=True)
class SkippedInvoice:
    invoice_id: int
    number: str
    client_name: str
    reason: str


@dataclass(frozen=True)
class QueueReport:
    queued: list[int] = field(default_factory=list)       # invoice ids now in the outbox
    outbox_ids: list[int] = field(default_factory=list)   # their messages, in the same order
    skipped: list[SkippedInvoice] = field(default_factory=list)
    # Queue-all only: invoices e-mailed (or queued) before, not listed in `skipped`.
    already_handled: int = 0

    @property
    def summary(self) -> str:
        text = f"{len(self.queued)} invoice e-mail{'s' if len(self.queued) != 1 else ''} queued"
        if self.skipped:
            text += f"; {len(self.skipped)} skipped"
        if self.already_handled:
            text += f"; {self.already_handled} e-mailed before"
        return text + "."


@dataclass(frozen=True)
class SendReport:
    sent: int = 0
    failed: int = 0
    still_queued: int = 0                  # of this run's messages, waiting for another try
    stopped_reason: str | None = None      # why the run stopped early (server unreachable, login refused, …)
    cancelled: bool = False
    sent_ids: list[int] = field(default_factory=list)
    failed_ids: list[int] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)   # message id → its last error in this run

    @property
    def summary(self) -> str:
        parts = [f"{self.sent} sent"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.still_queued:
            parts.append(f"{self.still_queued} still queued")
        text = ", ".join(parts) + "."
        if self.cancelled:
            text += " Cancelled."
        if self.stopped_reason:
            text += " " + self.stopped_reason
        return text


@dataclass(frozen=True)
class OutboxRow:
    id: int
    kind: str
    status: str
    to: str
    cc: str
    subject: str
    invoice_id: int | None
    invoice_number: str | None
    client_name: str | None
    attempts: int
    last_error: str
    next_attempt_at: dt.datetime | None
    sent_at: dt.datetime | None
    created_at: dt.datetime


@dataclass(frozen=True)
class EmailStatus:
    """The latest e-mail of an invoice, for the "E-mail" column."""

    status: str                       # queued, sending, sent, failed
    at: dt.datetime                   # sent_at when sent, else when it last changed
    error: str
    outbox_id: int
    to: str
    next_attempt_at: dt.datetime | None = None


# --- queueing ---------------------------------------------------------------------

def _require_configured(session: Session) -> MailSettings:
    settings = session.get(MailSettings, 1)
    if settings is None or not settings.host or not settings.from_address:
        raise ValidationError([Issue("mail", NOT_CONFIGURED)])
    return settings


def _invoice_problems(inv: Invoice) -> list[Issue]:
    """Why this invoice cannot be e-mailed (nothing: it can)."""
    issues: list[Issue] = []
    if inv.status is InvoiceStatus.DRAFT:
        issues.append(Issue("status", "Issue the invoice before e-mailing it."))
    elif inv.status is InvoiceStatus.VOID:
        issues.append(Issue("status", f"{inv.number} is void; a void invoice is not e-mailed."))
    if not inv.client.email_list:
        issues.append(Issue("client", f"{inv.client.legal_name} has no billing e-mail address; "
                                      "add one under Clients."))
    return issues


def _message_id(number: str, from_address: str) -> str:
    return make_msgid(idstring=re.sub(r"[^A-Za-z0-9-]", "", number)[:40] or None,
                      domain=message_domain(from_address))


def _render(settings: MailSettings, session: Session, inv: Invoice) -> tuple[str, str]:
    if inv.kind is InvoiceKind.CREDIT_NOTE:
        subject_tpl, body_tpl = CREDIT_NOTE_SUBJECT, CREDIT_NOTE_BODY
    else:
        subject_tpl = settings.invoice_subject or DEFAULT_INVOICE_SUBJECT
        body_tpl = invoice_body_template(settings.invoice_body)
    values = invoice_values(session, inv)
    try:
        subject, body = render(subject_tpl, values), render(body_tpl, values)
    except (KeyError, ValueError, IndexError):
        # A template saved by another program or an older version; never leave the client without mail.
        subject, body = render(DEFAULT_INVOICE_SUBJECT, values), render(DEFAULT_INVOICE_BODY, values)
    # A header is one line, whatever a placeholder held.
    return " ".join(subject.split())[:SUBJECT_MAX], body


def _queue(session: Session, settings: MailSettings, inv: Invoice, now: dt.datetime) -> OutboxMessage:
    emails = inv.client.email_list
    subject, body = _render(settings, session, inv)
    number = inv.number or ""
    msg = OutboxMessage(kind=KIND_INVOICE, status=OutboxStatus.QUEUED, invoice_id=inv.id, client_id=inv.client_id,
                        to_addrs=emails[0], cc_addrs=", ".join(emails[1:]), subject=subject, body=body,
                        attach_invoice_pdf=True, attachment_name=f"{number}.pdf",
                        message_id=_message_id(number, settings.from_address), attempts=0, last_error="",
                        next_attempt_at=now, queued_by=audit.current_actor(), created_at=now, updated_at=now)
    session.add(msg)
    session.flush()
    audit.record(session, "invoice.email_queued", "invoice", inv.id,
                 f"Queued e-mail of {number} to {_recipients_text(msg.to_addrs, msg.cc_addrs)}",
                 {"outbox_id": msg.id})
    return msg


def queue_invoice_email(session: Session, invoice_id: int, *, now: dt.datetime | None = None) -> int:
    """Put an e-mail of this invoice (PDF attached when sent) in the outbox; its id.

    An e-mail of the invoice already waiting in the outbox is brought up to date
    (addresses, text, due now) instead of queued twice."""
    now = now or _utcnow()
    inv = get_invoice(session, invoice_id)
    issues: list[Issue] = []
    settings = session.get(MailSettings, 1)
    if settings is None or not settings.host or not settings.from_address:
        issues.append(Issue("mail", NOT_CONFIGURED))
    issues += _invoice_problems(inv)
    if issues:
        raise ValidationError(issues)
    assert settings is not None
    waiting = session.scalar(select(OutboxMessage).where(
        OutboxMessage.invoice_id == inv.id, OutboxMessage.status == OutboxStatus.QUEUED,
        OutboxMessage.kind == KIND_INVOICE)
        .order_by(OutboxMessage.id.desc()).limit(1))
    if waiting is not None:
        emails = inv.client.email_list
        waiting.subject, waiting.body = _render(settings, session, inv)
        waiting.to_addrs, waiting.cc_addrs = emails[0], ", ".join(emails[1:])
        waiting.next_attempt_at, waiting.updated_at = now, now
        session.flush()
        return waiting.id
    return _queue(session, settings, inv, now).id


# Status lists read many messages: not their bodies, nor a stored attachment's bytes.
_NOT_BULKY = (defer(OutboxMessage.body), defer(OutboxMessage.attachment_data))


def _latest_messages(session: Session, invoice_ids: Sequence[int] | None) -> dict[int, OutboxMessage]:
    latest: dict[int, OutboxMessage] = {}
    newest = (select(func.max(OutboxMessage.id)).where(OutboxMessage.invoice_id.is_not(None),
                                                       OutboxMessage.kind != KIND_REMINDER)
              .group_by(OutboxMessage.invoice_id))
    chunks: Iterable[Sequence[int] | None]
    if invoice_ids is None:
        chunks = [None]
    else:
        ids = list(dict.fromkeys(invoice_ids))
        chunks = [ids[i:i + _IN_CHUNK] for i in range(0, len(ids), _IN_CHUNK)]
    for chunk in chunks:
        stmt = newest if chunk is None else newest.where(OutboxMessage.invoice_id.in_(chunk))
        for msg in session.scalars(select(OutboxMessage).options(*_NOT_BULKY)
                                   .where(OutboxMessage.id.in_(stmt.scalar_subquery()))):
            assert msg.invoice_id is not None
            latest[msg.invoice_id] = msg
    return latest


def _already_reason(msg: OutboxMessage) -> str:
    if msg.status is OutboxStatus.SENT:
        when = msg.sent_at.astimezone().strftime("%Y-%m-%d %H:%M") if msg.sent_at else "earlier"
        return f"Already e-mailed ({when}) to {msg.to_addrs}."
    if msg.status is OutboxStatus.FAILED:
        return f"Its e-mail failed: {msg.last_error} Retry it in the Outbox."
    return "Already waiting in the outbox."


# What "unsent" means, for queue_unsent_invoices and count_unsent_invoices alike.
_ISSUED = Invoice.status.in_([InvoiceStatus.OPEN, InvoiceStatus.PAID])
_EVER_QUEUED = select(OutboxMessage.id).where(OutboxMessage.invoice_id == Invoice.id,
                                              OutboxMessage.kind != KIND_REMINDER).exists()


@dataclass(frozen=True)
class UnsentCount:
    configured: bool
    can_go: int          # issued, never e-mailed, the client has a billing e-mail address
    no_address: int      # the same, but the client has none


def count_unsent_invoices(session: Session) -> UnsentCount:
    """How many invoices queue_unsent_invoices(session) would queue, and how many it
    would skip for want of an address; one query, nothing rendered or written."""
    has_address = func.trim(Client.billing_emails) != ""
    rows: dict[bool, int] = dict(session.execute(  # type: ignore[arg-type]
        select(has_address, func.count()).select_from(Invoice).join(Client, Client.id == Invoice.client_id)
        .where(_ISSUED, ~_EVER_QUEUED).group_by(has_address)).all())
    return UnsentCount(is_configured(session), int(rows.get(True, 0)), int(rows.get(False, 0)))


def queued_message_ids(session: Session) -> list[int]:
    """Every queued message, due or waiting for its next try ("Send now" sends them all)."""
    return list(session.scalars(select(OutboxMessage.id).where(OutboxMessage.status == OutboxStatus.QUEUED)
                                .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)))


def queue_unsent_invoices(session: Session, invoice_ids: list[int] | None = None, *,
                          now: dt.datetime | None = None) -> QueueReport:
    """"Email all new invoices": queue every issued invoice (open or paid; credit
    notes too) among `invoice_ids`, or all of them, that has never been queued or
    sent.

    With `invoice_ids`, every one not queued is in `skipped` with its reason
    (already e-mailed, no billing e-mail, draft, void, …).  Without, `skipped`
    lists only the invoices that need something done (a client without a billing
    e-mail address); those e-mailed or queued before are just counted in
    `already_handled`, so that years of sent invoices do not fill the list."""
    now = now or _utcnow()
    settings = _require_configured(session)
    stmt = select(Invoice).options(selectinload(Invoice.client)).order_by(Invoice.number_seq, Invoice.id)
    invoices: list[Invoice] = []
    already_handled = 0
    if invoice_ids is None:
        invoices = list(session.scalars(stmt.where(_ISSUED, ~_EVER_QUEUED)))
        already_handled = int(session.scalar(select(func.count()).select_from(Invoice)
                                             .where(_ISSUED, _EVER_QUEUED)) or 0)
        latest: dict[int, OutboxMessage] = {}
    else:
        ids = list(dict.fromkeys(invoice_ids))
        for i in range(0, len(ids), _IN_CHUNK):
            invoices += session.scalars(stmt.where(Invoice.id.in_(ids[i:i + _IN_CHUNK])))
        latest = _latest_messages(session, [inv.id for inv in invoices])
    queued: list[int] = []
    outbox_ids: list[int] = []
    skipped: list[SkippedInvoice] = []
    for inv in invoices:
        reason: str | None = None
        problems = _invoice_problems(inv)
        if inv.status is InvoiceStatus.UNCOLLECTIBLE:
            reason = f"{inv.number} was written off as uncollectible."
        elif problems:
            reason = problems[0].message
        elif inv.id in latest:
            reason = _already_reason(latest[inv.id])
        if reason is not None:
            skipped.append(SkippedInvoice(inv.id, inv.number or "Draft", inv.client.legal_name, reason))
            continue
        msg = _queue(session, settings, inv, now)
        queued.append(inv.id)
        outbox_ids.append(msg.id)
    if invoice_ids is not None:
        found = {inv.id for inv in invoices}
        skipped += [SkippedInvoice(i, "", "", "This invoice does not exist any more.")
                    for i in dict.fromkeys(invoice_ids) if i not in found]
    return QueueReport(queued, outbox_ids, skipped, already_handled)


# --- status -----------------------------------------------------------------------

def list_outbox(session: Session, *, status: str | None = None, limit: int = 500) -> list[OutboxRow]:
    stmt = (select(OutboxMessage, Invoice.number, Client.legal_name).options(*_NOT_BULKY)
            .outerjoin(Invoice, Invoice.id == OutboxMessage.invoice_id)
            .outerjoin(Client, Client.id == OutboxMessage.client_id)
            .order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
            .limit(limit))
    if status:
        stmt = stmt.where(OutboxMessage.status == OutboxStatus(status))
    return [OutboxRow(m.id, m.kind, m.status.value, m.to_addrs, m.cc_addrs, m.subject, m.invoice_id, number,
                      client_name, m.attempts, m.last_error, m.next_attempt_at, m.sent_at, m.created_at)
            for m, number, client_name in session.execute(stmt)]


def email_status_by_invoice(session: Session, invoice_ids: list[int] | None = None) -> dict[int, EmailStatus]:
    out: dict[int, EmailStatus] = {}
    for invoice_id, m in _latest_messages(session, invoice_ids).items():
        at = m.sent_at if m.status is OutboxStatus.SENT and m.sent_at else m.updated_at
        out[invoice_id] = EmailStatus(m.status.value, at, m.last_error, m.id,
                                      _recipients_text(m.to_addrs, m.cc_addrs), m.next_attempt_at)
    return out


def outbox_counts(session: Session) -> dict[str, int]:
    counts = {s.value: 0 for s in OutboxStatus}
    for status, n in session.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)):
        counts[status.value] = int(n)
    return counts


def _messages(session: Session, ids: Sequence[int]) -> list[OutboxMessage]:
    wanted = list(dict.fromkeys(ids))
    rows = {m.id: m for i in range(0, len(wanted), _IN_CHUNK)
            for m in session.scalars(select(OutboxMessage).where(OutboxMessage.id.in_(wanted[i:i + _IN_CHUNK])))}
    missing = [i for i in wanted if i not in rows]
    if missing:
        raise ValidationError([Issue("ids", f"Message {i} is no longer in the outbox.") for i in missing])
    return [rows[i] for i in wanted]


def _label(m: OutboxMessage, number: str | None) -> str:
    return f"The e-mail of {number}" if number else f"Message {m.id}"


def retry_messages(session: Session, ids: Sequence[int], now: dt.datetime | None = None) -> list[int]:
    """Queue failed (or waiting) messages to go now; an invoice e-mail takes the
    client's current billing addresses.  Every problem is reported at once and
    nothing changes while any stands."""
    now = now or _utcnow()
    messages = _messages(session, ids)
    issues: list[Issue] = []
    plans: list[tuple[OutboxMessage, list[str] | None, Invoice | None]] = []
    for m in messages:
        inv = session.get(Invoice, m.invoice_id) if m.invoice_id is not None else None
        label = _label(m, inv.number if inv else None)
        stale = m.status is OutboxStatus.SENDING and _is_stale(m, now)
        if m.status is OutboxStatus.SENT:
            issues.append(Issue("status", f"{label} was already sent; to send it again, e-mail the invoice again."))
            continue
        if m.status is OutboxStatus.SENDING and not stale:
            issues.append(Issue("status", f"{label} is being sent right now."))
            continue
        emails: list[str] | None = None
        if inv is not None:
            if inv.status is InvoiceStatus.VOID:
                issues.append(Issue("status", f"{inv.number} is void now; discard its e-mail instead."))
                continue
            emails = inv.client.email_list
            if not emails:
                issues.append(Issue("client", f"{inv.client.legal_name} has no billing e-mail address; "
                                              "add one under Clients."))
                continue
        plans.append((m, emails, inv))
    if issues:
        raise ValidationError(issues)
    for m, emails, inv in plans:
        previous = m.last_error
        if emails is not None:
            m.to_addrs, m.cc_addrs = emails[0], ", ".join(emails[1:])
        m.status, m.next_attempt_at, m.last_error, m.updated_at = OutboxStatus.QUEUED, now, "", now
        if inv is not None:
            audit.record(session, "invoice.email_retried", "invoice", inv.id,
                         f"Retrying the e-mail of {inv.number} to {_recipients_text(m.to_addrs, m.cc_addrs)}",
                         {"outbox_id": m.id, "previous_error": previous})
    session.flush()
    return [m.id for m, _e, _i in plans]


def discard_messages(session: Session, ids: Sequence[int]) -> int:
    """Remove queued or failed messages (never one sent or being sent); how many."""
    messages = _messages(session, ids)
    issues = [Issue("status", f"Message {m.id} is {m.status.value}; only queued or failed messages can be "
                              "discarded.")
              for m in messages if m.status not in (OutboxStatus.QUEUED, OutboxStatus.FAILED)]
    if issues:
        raise ValidationError(issues)
    for m in messages:
        inv = session.get(Invoice, m.invoice_id) if m.invoice_id is not None else None
        summary = (f"Discarded the {m.status.value} e-mail of {inv.number if inv else m.subject} to "
                   f"{_recipients_text(m.to_addrs, m.cc_addrs)}")
        details = {"outbox_id": m.id, "subject": m.subject, "last_error": m.last_error}
        if inv is not None:
            audit.record(session, "invoice.email_discarded", "invoice", inv.id, summary, details)
        else:
            audit.record(session, "outbox.discarded", "outbox", m.id, summary, details)
        session.delete(m)
    session.flush()
    return len(messages)


def _recipients_text(to: str, cc: str) -> str:
    return to + (f" (cc {cc})" if cc else "")


def _split(addrs: str) -> list[str]:
    return [a.strip() for a in addrs.split(",") if a.strip()]


# --- sending ------------------------------------------------------------------------

def _is_stale(m: OutboxMessage, now: dt.datetime) -> bool:
    return m.status is OutboxStatus.SENDING and m.updated_at is not None and m.updated_at < now - STALE_SENDING


def _claimable(m: OutboxMessage, now: dt.datetime, *, explicit: bool) -> bool:
    if m.status is OutboxStatus.QUEUED:
        return explicit or m.next_attempt_at is None or m.next_attempt_at <= now
    return _is_stale(m, now)


def _due_ids(session: Session, now: dt.datetime, message_ids: Sequence[int] | None) -> list[int]:
    claimable = or_(OutboxMessage.status == OutboxStatus.QUEUED,
                    and_(OutboxMessage.status == OutboxStatus.SENDING, OutboxMessage.updated_at < now - STALE_SENDING))
    if message_ids is not None:
        wanted = list(dict.fromkeys(message_ids))
        found: set[int] = set()
        for i in range(0, len(wanted), _IN_CHUNK):
            found.update(session.scalars(select(OutboxMessage.id).where(
                OutboxMessage.id.in_(wanted[i:i + _IN_CHUNK]), claimable)))
        return [i for i in wanted if i in found]
    due = or_(OutboxMessage.status == OutboxStatus.SENDING, OutboxMessage.next_attempt_at.is_(None),
              OutboxMessage.next_attempt_at <= now)
    return list(session.scalars(select(OutboxMessage.id).where(claimable, due)
                                .order_by(OutboxMessage.next_attempt_at.nulls_first(), OutboxMessage.id)))


@dataclass(frozen=True)
class _Claimed:
    id: int
    kind: str
    invoice_id: int | None
    client_id: int | None
    to: list[str]
    cc: list[str]
    subject: str
    body: str
    message_id: str
    attach_invoice_pdf: bool
    attachment_name: str
    attachment_data: bytes | None


def _claim(db: Database, message_id: int, now: dt.datetime, explicit: bool) -> _Claimed | None:
    with db.write_session() as s, s.begin():
        m = s.get(OutboxMessage, message_id)
        if m is None or not _claimable(m, now, explicit=explicit):
            return None  # sent, discarded or taken by another workstation meanwhile
        m.status, m.updated_at = OutboxStatus.SENDING, now
        return _Claimed(m.id, m.kind, m.invoice_id, m.client_id, _split(m.to_addrs), _split(m.cc_addrs),
                        m.subject, m.body, m.message_id, m.attach_invoice_pdf, m.attachment_name,
                        m.attachment_data)


def _withdrawn(db: Database, c: _Claimed, now: dt.datetime) -> bool:
    """A reminder whose invoice was paid, voided or paused since it was queued is withdrawn, not sent."""
    from mspbill.collections.reminders import withdraw_message, withdraw_reason

    if c.invoice_id is None:
        return False
    with db.write_session() as s, s.begin():
        reason = withdraw_reason(s, c.invoice_id, now.astimezone().date())
        m = s.get(OutboxMessage, c.id)
        if reason is None or m is None:
            return False
        withdraw_message(s, m, reason)
    log.info("outbox message %s withdrawn before sending: %s", c.id, reason)
    return True


def _attachments(db: Database, c: _Claimed) -> tuple[list[Attachment], str | None]:
    """The attachments and the invoice number, as of now; MailError(permanent) when it cannot be built."""
    attachments: list[Attachment] = []
    number: str | None = None
    if c.invoice_id is not None:
        with db.session() as s:
            inv = s.get(Invoice, c.invoice_id)
            if inv is None:
                raise MailError("The invoice of this e-mail no longer exists; it was not sent.", permanent=True)
            number = inv.number
            if inv.status is InvoiceStatus.VOID:
                raise MailError(f"{inv.number} was voided after its e-mail was queued; it was not sent.",
                                permanent=True)
            if inv.status is InvoiceStatus.DRAFT:
                raise MailError("The invoice is a draft again; it was not sent.", permanent=True)
            if c.attach_invoice_pdf:
                # Imported here: the PDF renderer (ReportLab, fonts) is only needed when mail goes out.
                from mspbill.pdf.invoice import invoice_pdf

                try:
                    pdf = invoice_pdf(s, inv.id)
                except Exception as exc:
                    log.exception("rendering the PDF of invoice %s for outbox message %s failed", inv.id, c.id)
                    raise MailError(f"The PDF of {inv.number} could not be made ({type(exc).__name__}: {exc}); "
                                    "the e-mail was not sent.", permanent=True) from exc
                attachments.append(Attachment(pdf.filename, pdf.data))
    if c.attachment_data is not None and c.attachment_name:
        subtype = "pdf" if c.attachment_name.lower().endswith(".pdf") else "octet-stream"
        attachments.append(Attachment(c.attachment_name, c.attachment_data, "application", subtype))
    if not c.to:
        raise MailError("This message has no recipient.", permanent=True)
    return attachments, number


def _record_sent(db: Database, c: _Claimed, now: dt.datetime, number: str | None,
                 attachments: list[Attachment], refused: dict[str, str]) -> None:
    with db.write_session() as s, s.begin():
        m = s.get(OutboxMessage, c.id)
        if m is None:
            return
        m.status, m.sent_at, m.updated_at, m.next_attempt_at = OutboxStatus.SENT, now, now, None
        m.attempts += 1
        m.last_error = ("Not accepted for " + "; ".join(f"{a} ({why})" for a, why in refused.items()))[:ERROR_MAX] \
            if refused else ""
        if c.attach_invoice_pdf and attachments:
            m.attachment_name = attachments[0].filename[:255]
        if c.invoice_id is not None:
            delivered = [a for a in c.to + c.cc if a not in refused]
            to_text = ", ".join(delivered)
            audit.record(s, "invoice.emailed", "invoice", c.invoice_id,
                         f"E-mailed {number or 'the invoice'} to {to_text}",
                         {"outbox_id": c.id, "message_id": c.message_id, "refused": refused or None})


def _record_failure(db: Database, ids: Sequence[int], error: MailError, now: dt.datetime, *,
                    claimed: bool) -> None:
    """Failed for good (error.permanent), or back to the queue with the reason and a next attempt."""
    with db.write_session() as s, s.begin():
        for message_id in ids:
            m = s.get(OutboxMessage, message_id)
            if m is None:
                continue
            if claimed:
                if m.status is not OutboxStatus.SENDING:
                    continue
            elif not _claimable(m, now, explicit=True):
                continue
            m.attempts += 1
            m.last_error = error.message[:ERROR_MAX]
            m.updated_at = now
            if error.permanent:
                m.status, m.next_attempt_at = OutboxStatus.FAILED, None
                inv = s.get(Invoice, m.invoice_id) if m.invoice_id is not None else None
                if inv is not None:
                    audit.record(s, "invoice.email_failed", "invoice", inv.id,
                                 f"E-mail of {inv.number} to {m.to_addrs} failed: {error.message}"[:500],
                                 {"outbox_id": m.id})
            else:
                m.status, m.next_attempt_at = OutboxStatus.QUEUED, now + backoff(m.attempts)


def _resolve_password(password: PasswordSource, account: SmtpAccount) -> str | None:
    if not account.username:
        return None
    if callable(password):
        try:
            return password()
        except Exception as exc:
            raise MailError(f"The e-mail password could not be read from this computer's keyring: {exc}",
                            stops_run=True) from exc
    return password


def send_outbox(db: Database, password: PasswordSource, *, message_ids: list[int] | None = None,
                now: dt.datetime | None = None, progress: Progress | None = None,
                cancelled: Callable[[], bool] | None = None, timeout: float = 20,
                ssl_context: ssl.SSLContext | None = None) -> SendReport:
    """Send the messages that are due (or the given ones) over one connection.

    `password` is the SMTP password, or a callable that returns it (asked only
    when the account has a user name).  `ssl_context` replaces the default,
    certificate-verifying one (tests use it to trust their own certificate)."""
    fixed_now = now

    def clock() -> dt.datetime:
        return fixed_now or _utcnow()

    explicit = message_ids is not None
    with db.session() as s:
        account = load_account(s)
        ids = _due_ids(s, clock(), message_ids)
    if not ids:
        return SendReport()
    if account is None:
        return SendReport(still_queued=len(ids), stopped_reason=NOT_CONFIGURED)
    total = len(ids)
    sent_ids: list[int] = []
    failed_ids: list[int] = []
    errors: dict[int, str] = {}
    stopped: MailError | None = None
    was_cancelled = False
    conn: SmtpConnection | None = None
    secret: str | None = None

    def report(done: int, text: str) -> None:
        if progress is not None:
            progress(done, total, text)

    def connect() -> SmtpConnection:
        connection = SmtpConnection(account, secret, timeout=timeout, ssl_context=ssl_context)
        connection.open()
        return connection

    remaining = list(ids)
    try:
        report(0, f"Connecting to {account.where}…")
        try:
            secret = _resolve_password(password, account)
            conn = connect()
        except MailError as exc:
            stopped = exc
        while remaining and stopped is None:
            if cancelled is not None and cancelled():
                was_cancelled = True
                break
            message_id = remaining.pop(0)
            done = total - len(remaining) - 1
            try:
                if conn is None or not conn.usable:
                    conn = connect()
            except MailError as exc:
                remaining.insert(0, message_id)
                stopped = exc
                break
            claimed = _claim(db, message_id, clock(), explicit)
            if claimed is None:
                continue
            if claimed.kind == KIND_REMINDER and _withdrawn(db, claimed, clock()):
                continue
            report(done, f"Sending to {', '.join(claimed.to)}…")
            number: str | None = None
            try:
                attachments, number = _attachments(db, claimed)
                msg = build_message(account, to=claimed.to, cc=claimed.cc, subject=claimed.subject,
                                    body=claimed.body, message_id=claimed.message_id, date=clock(),
                                    attachments=attachments)
                bcc = [account.from_address] if account.bcc_office and claimed.kind == KIND_INVOICE else []
                refused = conn.send(msg, recipients=claimed.to + claimed.cc, bcc=bcc)
            except MailError as exc:
                errors[message_id] = exc.message
                _record_failure(db, [message_id], exc, clock(), claimed=True)
                log.warning("outbox message %s (%s) via %s not sent: %s", message_id, claimed.message_id,
                            account.where, exc.message)
                if exc.permanent:
                    failed_ids.append(message_id)
                elif exc.stops_run:
                    stopped = exc
                continue
            except Exception as exc:
                # A bug or a broken message, never the server's fault: this one fails, the run goes on.
                log.exception("outbox message %s could not be built", message_id)
                error = MailError(f"The e-mail could not be prepared ({type(exc).__name__}: {exc}).",
                                  permanent=True)
                errors[message_id] = error.message
                _record_failure(db, [message_id], error, clock(), claimed=True)
                failed_ids.append(message_id)
                continue
            _record_sent(db, claimed, clock(), number, attachments, refused)
            sent_ids.append(message_id)
            log.info("sent outbox message %s (%s) via %s", message_id, claimed.message_id, account.where)
            report(done + 1, f"Sent to {', '.join(claimed.to)}")
        if stopped is not None and remaining:
            log.warning("e-mail run stopped (%s): %s; %d message(s) left queued", account.where,
                        stopped.message, len(remaining))
            for message_id in remaining:
                errors.setdefault(message_id, stopped.message)
            _record_failure(db, remaining, MailError(stopped.message, stops_run=True), clock(), claimed=False)
    finally:
        if conn is not None:
            conn.close()
        secret = None
    waiting = [OutboxStatus.QUEUED, OutboxStatus.SENDING]
    with db.session() as s:
        still = sum(int(s.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.id.in_(ids[i:i + _IN_CHUNK]), OutboxMessage.status.in_(waiting))) or 0)
            for i in range(0, len(ids), _IN_CHUNK))
    log.info("e-mail run via %s: %d sent, %d failed, %d still queued%s", account.where, len(sent_ids),
             len(failed_ids), still, " (cancelled)" if was_cancelled else "")
    report(total, "Done")
    return SendReport(sent=len(sent_ids), failed=len(failed_ids), still_queued=still,
                      stopped_reason=stopped.message if stopped else None, cancelled=was_cancelled,
                      sent_ids=sent_ids, failed_ids=failed_ids, errors=errors)
