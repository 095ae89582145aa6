"""Payments recorded by hand: check, cash, wire, ACH made outside the processor.

A payment is applied to one invoice.  A partial payment leaves the invoice open
with a balance; a payment larger than the balance is refused unless the caller
confirms the excess should become client credit (the form asks; the CLI wants
--credit-excess).  Payments are never edited or deleted (house rule 7).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mspbill import audit
from mspbill.agreements import parse_date
from mspbill.db.models import (
    REFUND_APPLIED_STATUSES,
    Client,
    ClientCredit,
    CreditReason,
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    Payment,
    PaymentMethod,
    Refund,
    utcnow,
)
from mspbill.invoicing import get_invoice
from mspbill.money import MoneyError, format_amount, parse_amount
from mspbill.periods import Month
from mspbill.validation import Issue, ValidationError

MANUAL_METHODS = (PaymentMethod.CHECK, PaymentMethod.CASH, PaymentMethod.WIRE, PaymentMethod.ACH,
                  PaymentMethod.OTHER)
_ALIASES = {"cheque": "check", "chq": "check", "bank transfer": "wire", "transfer": "wire", "wire transfer": "wire",
            "eft": "ach"}
REFERENCE_MAX = 100
EARLIEST = dt.date(2000, 1, 1)


class OverpaymentError(ValidationError):
    """The payment is more than the balance; ask before keeping the excess as client credit."""

    def __init__(self, invoice_number: str, amount_cents: int, balance_cents: int, currency: str):
        self.amount_cents, self.balance_cents = amount_cents, balance_cents
        self.excess_cents = amount_cents - balance_cents
        owed = (f"has a balance of {format_amount(balance_cents, currency)}" if balance_cents
                else "is already paid in full")
        message = (f"{format_amount(amount_cents, currency)} is more than {invoice_number} owes: it {owed}. "
                   f"Record it anyway and keep {format_amount(self.excess_cents, currency)} as client credit "
                   "for the next invoice?")
        super().__init__([Issue("amount", message)])


@dataclass(frozen=True)
class PaymentRow:
    id: int
    received_on: dt.date
    client_id: int
    client_name: str
    invoice_id: int | None
    invoice_number: str | None
    method: str
    method_label: str
    reference: str
    currency: str
    amount_cents: int
    applied_cents: int
    # Given back through the processor (refunds it accepted).
    refunded_cents: int = 0

    @property
    def credit_cents(self) -> int:
        return self.amount_cents - self.applied_cents


def parse_method(text: str) -> PaymentMethod:
    key = (text or "").strip().lower()
    key = _ALIASES.get(key, key)
    for m in MANUAL_METHODS:
        if key in (m.value, m.label.lower()):
            return m
    if key == "card":
        raise ValidationError([Issue("method", "Card payments come through Stripe; record check, cash, wire, "
                                               "ACH or other here.")])
    raise ValidationError([Issue("method", f"“{text}” is not a payment method; use check, cash, wire, ach or other.")])


def record_payment(session: Session, invoice_id: int, amount: str, method: str | PaymentMethod, *,
                   reference: str = "", received_on: str | dt.date | None = None, notes: str = "",
                   credit_excess: bool = False, today: dt.date | None = None) -> Payment:
    today = today or dt.date.today()
    inv = get_invoice(session, invoice_id)
    issues: list[Issue] = []
    label = inv.number or "This draft"
    if inv.kind is InvoiceKind.CREDIT_NOTE:
        issues.append(Issue("invoice", f"{label} is a credit note; record the payment against the invoice."))
    elif inv.status is InvoiceStatus.DRAFT:
        issues.append(Issue("invoice", "This invoice is still a draft; issue it before recording a payment."))
    elif inv.status is InvoiceStatus.VOID:
        issues.append(Issue("invoice", f"{label} is void, so it cannot take a payment. Record it against "
                                       "another of the client's invoices (a voided recurring invoice is not "
                                       "generated again; bill the period with a one-time invoice)."))
    cents = 0
    try:
        cents = parse_amount(amount, inv.currency, allow_negative=True)
        if cents == 0:
            issues.append(Issue("amount", "A payment is more than zero."))
        elif cents < 0:
            issues.append(Issue("amount", "A payment is more than zero; money given back is a refund, not a "
                                          "negative payment."))
    except MoneyError as exc:
        issues.append(Issue("amount", str(exc)))
    try:
        pm = method if isinstance(method, PaymentMethod) else parse_method(method)
        if pm not in MANUAL_METHODS:
            raise ValidationError([Issue("method", "Card payments come through Stripe.")])
    except ValidationError as exc:
        issues.extend(exc.issues)
        pm = PaymentMethod.OTHER
    day = parse_date(received_on, "received_on", "date received", issues, required=False) or today
    if day > today:
        issues.append(Issue("received_on", f"The date received ({day.isoformat()}) is in the future."))
    elif day < EARLIEST:
        issues.append(Issue("received_on", f"The date received ({day.isoformat()}) is too far in the past."))
    elif inv.issue_date is not None and day < inv.issue_date:
        issues.append(Issue("received_on", f"The date received ({day.isoformat()}) is before {label} was issued "
                                           f"({inv.issue_date.isoformat()}). If the client paid in advance, record "
                                           "it with the issue date and note the real date in the reference."))
    ref = (reference or "").strip()
    if len(ref) > REFERENCE_MAX:
        issues.append(Issue("reference", f"The reference is limited to {REFERENCE_MAX} characters."))
    if issues:
        raise ValidationError(issues)
    balance = inv.balance_cents
    if cents > balance and not credit_excess:
        raise OverpaymentError(inv.number or "", cents, balance, inv.currency)
    applied = min(cents, balance)
    payment = Payment(client_id=inv.client_id, invoice_id=inv.id, method=pm, amount_cents=cents,
                      applied_cents=applied, currency=inv.currency, received_on=day, reference=ref,
                      notes=(notes or "").strip())
    session.add(payment)
    inv.paid_cents += applied
    session.flush()
    # "by check", "by wire transfer", "by ACH (outside Stripe)": the label's own capitals are kept.
    by = ("another method" if pm is PaymentMethod.OTHER
          else pm.label if pm.label[:2].isupper() else pm.label[0].lower() + pm.label[1:])
    text = (f"Recorded payment of {format_amount(cents, inv.currency)} by {by} on {inv.number}"
            + (f" (ref {ref})" if ref else "") + f", received {day.isoformat()}")
    if cents > applied:
        session.add(ClientCredit(client_id=inv.client_id, amount_cents=cents - applied,
                                 reason=CreditReason.OVERPAYMENT, invoice_id=inv.id, payment_id=payment.id,
                                 memo=f"Overpayment on {inv.number}"))
        text += f"; {format_amount(cents - applied, inv.currency)} kept as client credit"
    if inv.balance_cents == 0 and inv.status in (InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE):
        inv.status, inv.closed_at = InvoiceStatus.PAID, utcnow()
        text += "; now paid in full"
    else:
        text += f"; {format_amount(inv.balance_cents, inv.currency)} still due"
    audit.record(session, "payment.recorded", "invoice", inv.id, text, {"payment_id": payment.id})
    session.flush()
    return payment


def list_payments(session: Session, *, client_id: int | None = None, month: Month | None = None,
                  search: str = "", limit: int | None = None) -> list[PaymentRow]:
    stmt = (select(Payment.id, Payment.received_on, Payment.client_id, Client.legal_name, Payment.invoice_id,
                   Invoice.number, Payment.method, Payment.reference, Payment.currency, Payment.amount_cents,
                   Payment.applied_cents, _refunded_sql())
            .join(Client, Client.id == Payment.client_id)
            .outerjoin(Invoice, Invoice.id == Payment.invoice_id))
    if client_id is not None:
        stmt = stmt.where(Payment.client_id == client_id)
    if month is not None:
        stmt = stmt.where(Payment.received_on.between(month.first_day, month.last_day))
    needle = search.strip()
    if needle:
        like = f"%{needle}%"
        stmt = stmt.where(Client.legal_name.ilike(like) | Invoice.number.ilike(like) | Payment.reference.ilike(like))
    stmt = stmt.order_by(Payment.received_on.desc(), Payment.id.desc())
    if limit:
        stmt = stmt.limit(limit)
    return [PaymentRow(pid, day, cid, cname, iid, number, m.value, m.label, ref, cur, amount, applied, int(refunded))
            for pid, day, cid, cname, iid, number, m, ref, cur, amount, applied, refunded in session.execute(stmt)]


def _refunded_sql():  # type: ignore[no-untyped-def]
    return (select(func.coalesce(func.sum(Refund.amount_cents), 0))
            .where(Refund.payment_id == Payment.id, Refund.status.in_(REFUND_APPLIED_STATUSES))
            .correlate(Payment).scalar_subquery())
