"""The batch's mail: a receipt for every autopay charge that went through (the invoice
PDF attached, marked paid), the invoice e-mail for every other invoice it issued."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from mspbill import audit
from mspbill.db.models import (
    ChargeAttempt,
    ChargeAttemptStatus,
    Client,
    CompanyProfile,
    Invoice,
    MailSettings,
    OutboxMessage,
    OutboxStatus,
    utcnow,
)
from mspbill.mail.outbox import queue_unsent_invoices
from mspbill.money import format_amount

KIND_RECEIPT = "receipt"


@dataclass
class MailReport:
    receipts: int = 0
    invoices: int = 0
    not_configured: bool = False
    skipped: list[str] = field(default_factory=list)   # "INV-…: why"


def mail_configured(session: Session) -> bool:
    settings = session.get(MailSettings, 1)
    return settings is not None and bool(settings.host) and bool(settings.from_address)


def receipt_text(company: str, client: str, number: str, amount: str, method: str, day: dt.date,
                 balance: str | None) -> tuple[str, str]:
    subject = f"Receipt for {number}: {amount} paid"
    tail = (f"\n{balance} of this invoice is still due.\n" if balance else "\nThe invoice is paid in full; there is "
            "nothing more to do.\n")
    body = (f"Hello {client},\n\n"
            f"Thank you: {amount} for invoice {number} was charged to your {method} on {day:%B} {day.day}, "
            f"{day:%Y}, as set up for automatic payment.\n{tail}\n"
            "The invoice is attached for your records.\n\n"
            f"Thank you,\n{company}\n")
    return subject, body


def queue_receipt(session: Session, attempt_id: int, now: dt.datetime | None = None) -> int | None:
    """A receipt for a succeeded charge, once per invoice; None when the client has no address."""
    now = now or utcnow()
    attempt = session.get(ChargeAttempt, attempt_id)
    if attempt is None or attempt.status is not ChargeAttemptStatus.SUCCEEDED:
        return None
    if session.scalar(select(OutboxMessage.id).where(OutboxMessage.kind == KIND_RECEIPT,
                                                     OutboxMessage.invoice_id == attempt.invoice_id).limit(1)):
        return None
    inv = session.get(Invoice, attempt.invoice_id)
    client = session.get(Client, attempt.client_id)
    assert inv is not None and client is not None
    emails = client.email_list
    if not emails:
        return None
    company = session.get(CompanyProfile, 1)
    number = inv.number or ""
    balance = format_amount(inv.balance_cents, inv.currency) if inv.balance_cents > 0 else None
    subject, body = receipt_text(company.name if company else "Your IT provider", client.legal_name, number,
                                 format_amount(attempt.amount_cents, attempt.currency), attempt.method_label,
                                 (attempt.resolved_at or now).date(), balance)
    msg = OutboxMessage(kind=KIND_RECEIPT, status=OutboxStatus.QUEUED, invoice_id=inv.id, client_id=client.id,
                        to_addrs=emails[0], cc_addrs=", ".join(emails[1:]), subject=subject, body=body,
                        attach_invoice_pdf=True, attachment_name=f"{number}.pdf", message_id="", attempts=0,
                        last_error="", next_attempt_at=now, queued_by=audit.current_actor(), created_at=now,
                        updated_at=now)
    session.add(msg)
    session.flush()
    audit.record(session, "invoice.receipt_queued", "invoice", inv.id,
                 f"Queued the receipt for {number} to {', '.join(emails)}", {"outbox_id": msg.id})
    return msg.id


def queue_batch_mail(session: Session, issued_invoice_ids: Sequence[int], succeeded_attempt_ids: Sequence[int],
                     now: dt.datetime | None = None) -> MailReport:
    """Receipts for the charges that went through, then the invoice e-mail of every other issued invoice."""
    report = MailReport()
    if not mail_configured(session):
        report.not_configured = True
        return report
    receipted: set[int] = set()
    for attempt_id in succeeded_attempt_ids:
        attempt = session.get(ChargeAttempt, attempt_id)
        if attempt is None:
            continue
        if queue_receipt(session, attempt_id, now) is not None:
            report.receipts += 1
        receipted.add(attempt.invoice_id)
    rest = [i for i in issued_invoice_ids if i not in receipted]
    if rest:
        queued = queue_unsent_invoices(session, rest, now=now)
        report.invoices = len(queued.queued)
        report.skipped = [f"{s.number or 'Invoice'} ({s.client_name}): {s.reason}" for s in queued.skipped
                          if not s.reason.startswith(("Already", "Its e-mail"))]
    return report
