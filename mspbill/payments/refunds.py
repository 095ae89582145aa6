"""Refunds of payments taken through the processor: all or part, written before the call.

A refund gives money back; by itself it leaves the invoice owing that money
again (the payment no longer covers it).  When the client no longer owes it --
the usual case: a service not delivered, a charge that was wrong -- the office
ticks "the client no longer owes it" and a credit note of exactly the refunded
amount is issued with it, so the invoice stays settled.

Like a charge, a refund is a row with its idempotency key committed before the
processor is called; an unknown outcome is found out (the refunds of the
payment are searched for the key, or the same request is sent again with the
same key) before the invoice is touched.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mspbill import audit
from mspbill.db.engine import Database
from mspbill.db.models import (
    ChargeAttempt,
    Invoice,
    InvoiceStatus,
    Payment,
    Refund,
    RefundStatus,
    utcnow,
)
from mspbill.invoicing import create_credit_note
from mspbill.money import MoneyError, format_amount, parse_amount
from mspbill.payments import gateway as gw
from mspbill.payments.charges import REPLAY_WINDOW, STALE_PENDING
from mspbill.payments.gateway import Gateway, ProcessorError, ProcessorMode
from mspbill.payments.methods import new_key
from mspbill.payments.processor import to_db_mode
from mspbill.validation import Issue, ValidationError

log = logging.getLogger(__name__)

REASON_MAX = 500


@dataclass(frozen=True)
class RefundPlan:
    payment_id: int
    invoice_id: int | None
    invoice_number: str
    client_name: str
    currency: str
    amount_cents: int          # the payment
    refunded_cents: int        # already refunded (or on its way)
    refundable_cents: int
    method_label: str
    mode: ProcessorMode | None
    problems: list[str]


@dataclass(frozen=True)
class RefundOutcome:
    refund_row_id: int
    status: RefundStatus
    amount_cents: int
    currency: str
    message: str
    credit_note_number: str | None = None


def _refunded(session: Session, payment_id: int) -> int:
    return int(session.scalar(select(func.coalesce(func.sum(Refund.amount_cents), 0)).where(
        Refund.payment_id == payment_id, Refund.status != RefundStatus.FAILED)) or 0)


def _payment_mode(session: Session, payment: Payment) -> ProcessorMode | None:
    mode = session.scalar(select(ChargeAttempt.mode).where(ChargeAttempt.payment_id == payment.id).limit(1))
    return ProcessorMode(mode.value) if mode is not None else None


def plan_refund(session: Session, payment_id: int) -> RefundPlan:
    payment = session.get(Payment, payment_id)
    if payment is None:
        raise ValidationError([Issue("payment", f"There is no payment {payment_id}.")])
    inv = session.get(Invoice, payment.invoice_id) if payment.invoice_id else None
    problems: list[str] = []
    mode = _payment_mode(session, payment)
    if not payment.method.through_processor or not payment.processor_intent_id:
        problems.append(f"This payment ({payment.method.label.lower()}) was not taken through Stripe; give the "
                        "money back by your own means and issue a credit note for it.")
    refunded = _refunded(session, payment.id)
    # Only the part that paid the invoice: an excess kept as client credit may already have been used.
    refundable = max(0, payment.applied_cents - refunded)
    if not problems and refundable <= 0:
        problems.append("This payment has already been refunded in full.")
    return RefundPlan(payment_id=payment.id, invoice_id=payment.invoice_id,
                      invoice_number=(inv.number if inv else None) or "", client_name=payment.client.legal_name,
                      currency=payment.currency, amount_cents=payment.amount_cents, refunded_cents=refunded,
                      refundable_cents=refundable, method_label=payment.notes or payment.method.label, mode=mode,
                      problems=problems)


def refund_payment(db: Database, gateway: Gateway, payment_id: int, *, amount: str | None, reason: str,
                   credit_note: bool, now: dt.datetime | None = None) -> RefundOutcome:
    """Refund `amount` (all that is refundable when None or blank) of a processor payment."""
    now = now or utcnow()
    text = " ".join((reason or "").split())
    with db.write_session() as s, s.begin():
        plan = plan_refund(s, payment_id)
        issues = [Issue("payment", p) for p in plan.problems]
        if plan.mode is not None and plan.mode is not gateway.mode:
            issues.append(Issue("mode", f"This payment was taken in {plan.mode.label}; it can only be refunded "
                                        f"there (now: {gateway.mode.label})."))
        if not text:
            issues.append(Issue("reason", "Say why the money is given back; it goes in the invoice's history."))
        elif len(text) > REASON_MAX:
            issues.append(Issue("reason", f"The reason is limited to {REASON_MAX} characters."))
        cents = plan.refundable_cents
        if amount is not None and str(amount).strip():
            try:
                cents = parse_amount(str(amount), plan.currency)
            except MoneyError as exc:
                issues.append(Issue("amount", str(exc)))
            else:
                if cents <= 0:
                    issues.append(Issue("amount", "A refund must be more than zero."))
                elif cents > plan.refundable_cents:
                    issues.append(Issue("amount", f"At most {format_amount(plan.refundable_cents, plan.currency)} "
                                                  "of this payment can be refunded."))
        if issues:
            raise ValidationError(issues)
        payment = s.get(Payment, payment_id)
        assert payment is not None
        row = Refund(payment_id=payment.id, invoice_id=payment.invoice_id, client_id=payment.client_id,
                     mode=to_db_mode(gateway.mode), amount_cents=cents, currency=payment.currency,
                     idempotency_key=new_key("refund"), status=RefundStatus.REQUESTED, reason=text, message="",
                     with_credit_note=credit_note, actor=audit.current_actor(), created_at=now, updated_at=now)
        s.add(row)
        s.flush()
        if payment.invoice_id is not None:
            audit.record(s, "payment.refund_started", "invoice", payment.invoice_id,
                         f"Refunding {format_amount(cents, payment.currency)} of the payment {payment.reference} "
                         f"({gateway.mode.label}): {text}", {"refund_id": row.id})
        refund_id, intent_id, key = row.id, payment.processor_intent_id or "", row.idempotency_key
    return _send(db, gateway, refund_id, intent_id, cents, key)


def _send(db: Database, gateway: Gateway, refund_id: int, intent_id: str, cents: int, key: str) -> RefundOutcome:
    try:
        result = gateway.refund(intent_id=intent_id, amount_cents=cents, idempotency_key=key,
                                metadata={"mspbill_refund_key": key, "mspbill_refund_id": str(refund_id)})
    except ProcessorError as exc:
        if exc.nothing_happened:
            result = gw.RefundResult(status=gw.RefundStatus.FAILED, message=exc.message)
        else:
            result = gw.RefundResult(status=gw.RefundStatus.UNKNOWN, message=exc.message)
    return record_refund(db, refund_id, result)


def record_refund(db: Database, refund_id: int, result: gw.RefundResult,
                  now: dt.datetime | None = None) -> RefundOutcome:
    now = now or utcnow()
    with db.write_session() as s, s.begin():
        row = s.get(Refund, refund_id)
        assert row is not None
        amount = format_amount(row.amount_cents, row.currency)
        was = row.status
        row.updated_at = now
        if result.refund_id:
            row.refund_id = result.refund_id
        note_number = None
        inv = s.get(Invoice, row.invoice_id) if row.invoice_id else None
        if result.status in (gw.RefundStatus.SUCCEEDED, gw.RefundStatus.PENDING):
            row.status = RefundStatus.SUCCEEDED if result.status is gw.RefundStatus.SUCCEEDED else RefundStatus.PENDING
            if was in (RefundStatus.REQUESTED, RefundStatus.UNKNOWN):
                row.refunded_on = now.astimezone().date()
            if was in (RefundStatus.REQUESTED, RefundStatus.UNKNOWN) and inv is not None:
                # The money is (or is on its way) back: the payment no longer covers this much.
                inv.paid_cents = max(0, inv.paid_cents - row.amount_cents)
                if inv.status is InvoiceStatus.PAID and inv.balance_cents > 0:
                    inv.status, inv.closed_at = InvoiceStatus.OPEN, None
                text = f"Refunded {amount} ({row.refund_id}): {row.reason}"
                if row.status is RefundStatus.PENDING:
                    text = f"Refund of {amount} on its way to the bank account ({row.refund_id}): {row.reason}"
                audit.record(s, "payment.refunded", "invoice", inv.id, text[:500], {"refund_id": row.id})
                if row.with_credit_note:
                    note = create_credit_note(s, inv.id, f"Refund: {row.reason}"[:REASON_MAX],
                                              total_cents=row.amount_cents)
                    row.credit_note_id, note_number = note.id, note.number
            message = f"Refunded {amount}." if row.status is RefundStatus.SUCCEEDED else (
                f"The refund of {amount} is on its way; bank refunds take a few business days.")
            if note_number:
                message += f" Credit note {note_number} was issued, so the invoice stays settled."
            elif inv is not None and inv.balance_cents > 0:
                message += (f" {inv.number} now shows {format_amount(inv.balance_cents, inv.currency)} due again; "
                            "issue a credit note if the client no longer owes it.")
        elif result.status is gw.RefundStatus.FAILED:
            if was in (RefundStatus.SUCCEEDED, RefundStatus.PENDING) and inv is not None:
                # A bank refund that bounced: the money never left, so the payment covers the invoice again.
                inv.paid_cents += row.amount_cents
                if inv.status is InvoiceStatus.OPEN and inv.balance_cents <= 0:
                    inv.status, inv.closed_at = InvoiceStatus.PAID, utcnow()
            row.status, row.message = RefundStatus.FAILED, (result.message or "Refused by the processor.")[:500]
            if inv is not None:
                audit.record(s, "payment.refund_failed", "invoice", inv.id,
                             f"Refund of {amount} failed: {row.message}"[:500], {"refund_id": row.id})
            message = f"The refund of {amount} was not made: {row.message}"
        else:
            row.status, row.message = RefundStatus.UNKNOWN, (result.message or "No answer.")[:500]
            if inv is not None:
                audit.record(s, "payment.refund_unknown", "invoice", inv.id,
                             f"Refund of {amount}: outcome unknown ({row.message})"[:500], {"refund_id": row.id})
            message = (f"No clear answer from the processor about the refund of {amount} ({row.message}). "
                       "mspbill will find out before anything else is done (Check status).")
        return RefundOutcome(row.id, row.status, row.amount_cents, row.currency, message, note_number)


def resolve_refund(db: Database, gateway: Gateway, refund_row_id: int, now: dt.datetime | None = None
                   ) -> RefundOutcome:
    """Find out about a refund left unknown, requested (a crash), or pending (ACH)."""
    now = now or utcnow()
    with db.session() as s:
        row = s.get(Refund, refund_row_id)
        if row is None:
            raise ValidationError([Issue("refund", f"There is no refund {refund_row_id}.")])
        payment = s.get(Payment, row.payment_id)
        assert payment is not None
        status, refund_id, key, created = row.status, row.refund_id, row.idempotency_key, row.created_at
        intent_id, cents = payment.processor_intent_id or "", row.amount_cents
    if status in (RefundStatus.SUCCEEDED, RefundStatus.FAILED):
        return RefundOutcome(refund_row_id, status, cents, payment.currency, "Already settled.")
    if status is RefundStatus.PENDING and refund_id:
        return record_refund(db, refund_row_id, gateway.get_refund(refund_id), now=now)
    found = gateway.find_refunds(intent_id=intent_id, metadata={"mspbill_refund_key": key})
    if found:
        return record_refund(db, refund_row_id, found[0], now=now)
    if status is RefundStatus.REQUESTED and now - created < STALE_PENDING:
        return RefundOutcome(refund_row_id, status, cents, payment.currency, "The refund is still being sent.")
    if now - created < REPLAY_WINDOW:
        return _send(db, gateway, refund_row_id, intent_id, cents, key)
    return record_refund(db, refund_row_id, gw.RefundResult(
        status=gw.RefundStatus.FAILED, message="The processor has no such refund; nothing was given back."), now=now)


def refunded_by_payment(session: Session, payment_ids: list[int] | None = None) -> dict[int, int]:
    stmt = select(Refund.payment_id, func.sum(Refund.amount_cents)).where(
        Refund.status != RefundStatus.FAILED).group_by(Refund.payment_id)
    if payment_ids is not None:
        stmt = stmt.where(Refund.payment_id.in_(payment_ids))
    return {pid: int(total) for pid, total in session.execute(stmt)}
