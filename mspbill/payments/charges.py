"""Charging an invoice through the processor, never twice.

Every charge is a `ChargeAttempt` written -- with the idempotency key it will
use -- and committed *before* the processor is called.  The database allows
one attempt in flight per invoice (a partial unique index), so a double click,
a second window or a second workstation cannot start another.  The answer is
recorded in a second transaction:

* succeeded  -> a Payment (its PaymentIntent id is unique, so it is never recorded twice)
* processing -> ACH: the attempt waits; `sync_charges` settles it later
* declined   -> the codes; a hard decline marks the method so autopay stops using it
* unknown    -> the attempt stays in flight until `resolve_attempt` finds out:
                the processor's PaymentIntents are searched for the attempt's
                key in their metadata and, within 24 hours, the same request is
                sent again with the same key (Stripe answers with the first result).

An attempt left `pending` by a crash is resolved the same way.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mspbill import audit
from mspbill.db.engine import Database
from mspbill.db.models import (
    IN_FLIGHT_STATUSES,
    BatchRun,
    BatchRunStatus,
    ChargeAttempt,
    ChargeAttemptStatus,
    Client,
    ClientCredit,
    ClientStatus,
    CreditReason,
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    Payment,
    PaymentMethod,
    SavedPaymentMethod,
    utcnow,
)
from mspbill.money import format_amount
from mspbill.payments.gateway import (
    ChargeRequest,
    ChargeResult,
    ChargeStatus,
    Gateway,
    MethodKind,
    ProcessorError,
    ProcessorMode,
    RateLimited,
    decline_reason_text,
)
from mspbill.payments.methods import default_method, method_facts, method_label, new_key
from mspbill.payments.processor import to_db_mode
from mspbill.validation import Issue, ValidationError

log = logging.getLogger(__name__)

# Stripe's smallest charge is about 50 cents in most currencies.
MINIMUM_CHARGE_CENTS = 50
# Stripe keeps an idempotency key at least 24 hours; replay only well inside that.
REPLAY_WINDOW = dt.timedelta(hours=23)
# A `pending` attempt older than this was left by a crash (a charge call never takes so long).
STALE_PENDING = dt.timedelta(minutes=10)
# How far before an attempt's creation to look for its PaymentIntent (clocks differ).
CLOCK_SKEW = dt.timedelta(minutes=15)


@dataclass(frozen=True)
class ChargePlan:
    """What "Charge now" would do, for the confirmation; `problems` say why it cannot."""

    invoice_id: int
    invoice_number: str
    client_id: int
    client_name: str
    amount_cents: int
    currency: str
    method_label: str
    method_kind: str
    over_cap: bool
    cap_cents: int | None
    problems: list[str] = field(default_factory=list)
    customer_id: str = ""       # the default method's, at the processor
    method_id: str = ""

    @property
    def amount_text(self) -> str:
        return format_amount(self.amount_cents, self.currency)


@dataclass(frozen=True)
class ChargeOutcome:
    attempt_id: int
    status: ChargeAttemptStatus
    invoice_number: str
    amount_cents: int
    currency: str
    method_label: str
    mode: ProcessorMode
    message: str               # one sentence for the office
    payment_id: int | None = None
    hard_decline: bool = False
    intent_id: str | None = None


def _in_flight(session: Session, invoice_id: int) -> ChargeAttempt | None:
    return session.scalar(select(ChargeAttempt).where(
        ChargeAttempt.invoice_id == invoice_id, ChargeAttempt.status.in_(IN_FLIGHT_STATUSES)).limit(1))


def _in_flight_text(attempt: ChargeAttempt, number: str) -> str:
    amount = format_amount(attempt.amount_cents, attempt.currency)
    if attempt.status is ChargeAttemptStatus.PROCESSING:
        return (f"A bank debit of {amount} on {number} is still processing (up to 4 business days); it is not "
                "charged again.")
    if attempt.status is ChargeAttemptStatus.UNKNOWN:
        return (f"An earlier charge of {amount} on {number} has no known outcome yet; mspbill must find out from "
                "the processor before charging again (Check status).")
    return f"A charge of {amount} on {number} is under way (another window or workstation)."


def plan_charge(session: Session, invoice_id: int, mode: ProcessorMode | None,
                amount_cents: int | None = None, today: dt.date | None = None) -> ChargePlan:
    today = today or dt.date.today()
    inv = session.get(Invoice, invoice_id)
    if inv is None:
        raise ValidationError([Issue("invoice", f"There is no invoice {invoice_id}.")])
    client = session.get(Client, inv.client_id)
    assert client is not None
    number = inv.number or "This draft"
    problems: list[str] = []
    if mode is None:
        problems.append("No payment processor is set up (Settings → Payments).")
    if inv.kind is InvoiceKind.CREDIT_NOTE:
        problems.append(f"{number} is a credit note; there is nothing to charge.")
    elif inv.status is InvoiceStatus.DRAFT:
        problems.append("Issue the invoice before charging it.")
    elif inv.status is InvoiceStatus.VOID:
        problems.append(f"{number} is void.")
    elif inv.balance_cents <= 0:
        problems.append(f"{number} has nothing left to pay.")
    amount = inv.balance_cents if amount_cents is None else amount_cents
    if amount_cents is not None and not 0 < amount_cents <= inv.balance_cents:
        problems.append(f"The amount must be more than zero and at most the balance, "
                        f"{format_amount(inv.balance_cents, inv.currency)}.")
    elif 0 < amount < MINIMUM_CHARGE_CENTS:
        problems.append(f"Stripe does not charge less than {format_amount(MINIMUM_CHARGE_CENTS, inv.currency)}; "
                        "record this balance by hand or credit it.")
    label, kind, customer_id, method_id = "", "", "", ""
    if mode is not None:
        method = default_method(session, client.id, mode)
        if method is None:
            problems.append(f"{client.legal_name} has no card or bank account on file in {mode.label}. "
                            "Send them a payment setup link.")
        else:
            label, kind = method_label(method), method.kind
            customer_id, method_id = method.customer_id, method.method_id
            if method_facts(method).expires_before(today):
                problems.append(f"{label} expired ({method.exp_month:02d}/{method.exp_year}); the client needs "
                                "to give a new card.")
            if method.hard_declined_at is not None:
                problems.append(f"{label} was declined for good ({method.hard_decline_reason}); the client needs "
                                "to give a new method.")
        busy = _in_flight(session, inv.id)
        if busy is not None:
            problems.append(_in_flight_text(busy, number))
    cap = client.autopay_cap_cents
    return ChargePlan(invoice_id=inv.id, invoice_number=number, client_id=client.id, client_name=client.legal_name,
                      amount_cents=amount, currency=inv.currency, method_label=label, method_kind=kind, over_cap=cap is not None and amount > cap,
                      cap_cents=cap, problems=problems, customer_id=customer_id, method_id=method_id)


def _metadata(attempt: ChargeAttempt, invoice_number: str) -> dict[str, str]:
    # Fixed by the attempt alone, so that the same request can be sent again with the same key.
    return {"mspbill_attempt_key": attempt.idempotency_key, "mspbill_invoice_id": str(attempt.invoice_id),
            "mspbill_invoice_number": invoice_number, "mspbill_client_id": str(attempt.client_id)}


def _request(attempt: ChargeAttempt, invoice_number: str) -> ChargeRequest:
    return ChargeRequest(customer_id=attempt.customer_id, method_id=attempt.method_id,
                         method_kind=MethodKind(attempt.method_kind), amount_cents=attempt.amount_cents,
                         currency=attempt.currency, idempotency_key=attempt.idempotency_key,
                         description=f"Invoice {invoice_number}", metadata=_metadata(attempt, invoice_number))


def start_attempt(db: Database, gateway: Gateway, invoice_id: int, *, amount_cents: int | None = None,
                  origin: str = "manual", approve_over_cap: bool = False, batch_run_id: int | None = None,
                  guard: Callable[[Session], None] | None = None, today: dt.date | None = None,
                  now: dt.datetime | None = None) -> tuple[int, ChargeRequest]:
    """Write the attempt and its key (committed) and return the request to send.

    `guard` runs first in the same transaction and may raise to write nothing (the
    month-end batch checks there that it still holds its run)."""
    now = now or utcnow()
    mode = gateway.mode
    with db.write_session() as s, s.begin():
        if guard is not None:
            guard(s)
        # The office's date, not UTC's: a card good through this month is good on its last evening.
        plan = plan_charge(s, invoice_id, mode, amount_cents, today=today or now.astimezone().date())
        if plan.problems:
            raise ValidationError([Issue("charge", p) for p in plan.problems])
        if plan.over_cap and not approve_over_cap:
            raise ValidationError([Issue("charge", f"{plan.amount_text} is above {plan.client_name}'s autopay "
                                                   f"cap of {format_amount(plan.cap_cents or 0, plan.currency)}; "
                                                   "approve it first.")])
        assert plan.method_id  # no problems: the client has a default method
        attempt = ChargeAttempt(
            invoice_id=invoice_id, client_id=plan.client_id, mode=to_db_mode(mode),
            idempotency_key=new_key("charge"), amount_cents=plan.amount_cents, currency=plan.currency,
            customer_id=plan.customer_id, method_id=plan.method_id, method_kind=plan.method_kind,
            method_label=plan.method_label, status=ChargeAttemptStatus.PENDING, decline_code="", message="",
            origin=origin, batch_run_id=batch_run_id, actor=audit.current_actor(), created_at=now, updated_at=now)
        s.add(attempt)
        try:
            s.flush()
        except IntegrityError:
            raise ValidationError([Issue("charge", f"A charge of {plan.invoice_number} is already under way "
                                                   "(another window or workstation).")]) from None
        audit.record(s, "invoice.charge_started", "invoice", invoice_id,
                     f"Charging {plan.amount_text} to {plan.method_label} ({mode.label})"
                     + (" — above the autopay cap, approved" if plan.over_cap else ""),
                     {"attempt_id": attempt.id, "idempotency_key": attempt.idempotency_key})
        return attempt.id, _request(attempt, plan.invoice_number)


def charge_invoice(db: Database, gateway: Gateway, invoice_id: int, *, amount_cents: int | None = None,
                   origin: str = "manual", approve_over_cap: bool = False,
                   now: dt.datetime | None = None) -> ChargeOutcome:
    """Charge the invoice's balance (or `amount_cents`) to the client's default method now."""
    _look_up_charges_since_restore(db, gateway, invoice_id)
    attempt_id, request = start_attempt(db, gateway, invoice_id, amount_cents=amount_cents, origin=origin,
                                        approve_over_cap=approve_over_cap, now=now)
    return send_attempt(db, gateway, attempt_id, request)


def _look_up_charges_since_restore(db: Database, gateway: Gateway, invoice_id: int) -> None:
    """After a restore from a backup, the processor may hold a charge of this invoice made after the
    backup was taken; bring it in first (it then shows as under way) rather than charge again.
    Problems are not fatal here: the month-end run's own pass reports them."""
    from mspbill.backups import pending_restore, reconcile_after_restore

    with db.session() as s:
        inv = s.get(Invoice, invoice_id)
        if inv is None or pending_restore(s) is None:
            return
        client_id = inv.client_id
    problems = reconcile_after_restore(db, gateway, finish=False, client_ids=[client_id])
    for problem in problems:
        log.warning("after a restore: %s", problem)


def send_attempt(db: Database, gateway: Gateway, attempt_id: int, request: ChargeRequest) -> ChargeOutcome:
    try:
        result = gateway.charge(request)
    except RateLimited as exc:
        return record_not_charged(db, attempt_id, "Stripe asked mspbill to slow down (too many requests); nothing "
                                                  "was charged. Try again in a moment.", code=exc.code)
    except ProcessorError as exc:
        if exc.nothing_happened:
            return record_not_charged(db, attempt_id, exc.message, code=exc.code)
        result = ChargeResult(status=ChargeStatus.UNKNOWN, message=exc.message)
    except Exception as exc:  # a bug or an unexpected library error: the charge may have been made
        log.exception("charge attempt %s raised", attempt_id)
        result = ChargeResult(status=ChargeStatus.UNKNOWN, message=f"{type(exc).__name__}: {exc}")
    return record_result(db, attempt_id, result)


def record_not_charged(db: Database, attempt_id: int, message: str, *, code: str = "",
                       now: dt.datetime | None = None) -> ChargeOutcome:
    now = now or utcnow()
    with db.write_session() as s, s.begin():
        attempt = s.get(ChargeAttempt, attempt_id)
        assert attempt is not None
        inv = s.get(Invoice, attempt.invoice_id)
        number = inv.number if inv is not None and inv.number else "the invoice"
        attempt.status, attempt.message, attempt.decline_code = (
            ChargeAttemptStatus.NOT_CHARGED, message[:500], code[:100])
        attempt.updated_at = attempt.resolved_at = now
        audit.record(s, "invoice.charge_not_made", "invoice", attempt.invoice_id,
                     f"Not charged: {message}"[:500], {"attempt_id": attempt.id})
        return _outcome(attempt, number, message)


def _outcome(attempt: ChargeAttempt, number: str, message: str) -> ChargeOutcome:
    return ChargeOutcome(attempt_id=attempt.id, status=attempt.status, invoice_number=number,
                         amount_cents=attempt.amount_cents, currency=attempt.currency,
                         method_label=attempt.method_label, mode=ProcessorMode(attempt.mode.value), message=message,
                         payment_id=attempt.payment_id, hard_decline=bool(attempt.decline_hard),
                         intent_id=attempt.intent_id)


def _record_payment(s: Session, attempt: ChargeAttempt, inv: Invoice, result: ChargeResult,
                    now: dt.datetime) -> Payment | None:
    """The Payment for a succeeded charge, once (its PaymentIntent id is unique)."""
    intent_id = result.intent_id or attempt.intent_id
    if intent_id:
        existing = s.scalar(select(Payment).where(Payment.processor_intent_id == intent_id))
        if existing is not None:
            return existing
    amount = result.amount_cents or attempt.amount_cents
    applied = max(0, min(amount, inv.balance_cents)) if inv.status is not InvoiceStatus.VOID else 0
    method = PaymentMethod.BANK_DEBIT if attempt.method_kind == MethodKind.US_BANK_ACCOUNT.value \
        else PaymentMethod.CARD
    payment = Payment(client_id=attempt.client_id, invoice_id=inv.id, method=method, amount_cents=amount,
                      applied_cents=applied, currency=attempt.currency, received_on=now.date(),
                      reference=(intent_id or "")[:100], notes=attempt.method_label, processor_intent_id=intent_id)
    s.add(payment)
    inv.paid_cents += applied
    s.flush()
    if amount > applied:
        # Paid meanwhile by other means: the money taken is kept as client credit (and can be refunded).
        s.add(ClientCredit(client_id=attempt.client_id, amount_cents=amount - applied,
                           reason=CreditReason.OVERPAYMENT, invoice_id=inv.id, payment_id=payment.id,
                           memo=f"Charge on {inv.number} after it was settled otherwise"))
    if inv.balance_cents == 0 and inv.status in (InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE):
        inv.status, inv.closed_at = InvoiceStatus.PAID, utcnow()
    return payment


def record_result(db: Database, attempt_id: int, result: ChargeResult,
                  now: dt.datetime | None = None) -> ChargeOutcome:
    """Record what the processor said about an attempt (from the charge call, a status check or a search)."""
    now = now or utcnow()
    with db.write_session() as s, s.begin():
        attempt = s.get(ChargeAttempt, attempt_id)
        assert attempt is not None
        inv = s.get(Invoice, attempt.invoice_id)
        assert inv is not None
        number = inv.number or "the invoice"
        amount = format_amount(attempt.amount_cents, attempt.currency)
        mode = ProcessorMode(attempt.mode.value)
        if attempt.status in (ChargeAttemptStatus.SUCCEEDED, ChargeAttemptStatus.DECLINED,
                              ChargeAttemptStatus.NOT_CHARGED):
            # Already settled (another workstation, or an earlier check): never record twice.
            return _outcome(attempt, number, attempt.message or f"{number}: {attempt.status.value}.")
        attempt.updated_at = now
        if result.intent_id:
            attempt.intent_id = result.intent_id
        details = {"attempt_id": attempt.id, "intent_id": attempt.intent_id}
        if result.status is ChargeStatus.SUCCEEDED:
            settled = attempt.status is ChargeAttemptStatus.PROCESSING  # a bank debit that has now cleared
            payment = _record_payment(s, attempt, inv, result, now)
            attempt.status, attempt.resolved_at = ChargeAttemptStatus.SUCCEEDED, now
            attempt.payment_id = payment.id if payment else None
            attempt.message = f"Charged {amount} to {attempt.method_label}."
            tail = "; now paid in full" if inv.status is InvoiceStatus.PAID else (
                f"; {format_amount(inv.balance_cents, inv.currency)} still due" if inv.balance_cents > 0 else "")
            if payment is not None and payment.amount_cents > payment.applied_cents:
                tail += (f"; {format_amount(payment.amount_cents - payment.applied_cents, payment.currency)} "
                         "kept as client credit")
            audit.record(s, "payment.settled" if settled else "payment.charged", "invoice", inv.id,
                         ("Bank debit settled: charged" if settled else "Charged")
                         + f" {amount} to {attempt.method_label} ({mode.label}, {attempt.intent_id}){tail}",
                         details | {"payment_id": attempt.payment_id})
            message = f"Charged {amount} to {attempt.method_label} for {number}."
        elif result.status is ChargeStatus.PROCESSING:
            attempt.status = ChargeAttemptStatus.PROCESSING
            attempt.message = "Bank debit processing; it settles within about 4 business days."
            audit.record(s, "payment.processing", "invoice", inv.id,
                         f"Bank debit of {amount} from {attempt.method_label} started ({mode.label}, "
                         f"{attempt.intent_id}); it settles within about 4 business days", details)
            message = (f"The bank debit of {amount} for {number} has started; it settles within about 4 business "
                       "days and mspbill records it then.")
        elif result.status in (ChargeStatus.DECLINED, ChargeStatus.REQUIRES_ACTION):
            decline = result.decline
            hard = decline.hard if decline is not None else result.status is ChargeStatus.REQUIRES_ACTION
            code = (decline.decline_code or decline.code) if decline is not None else "authentication_required"
            why = decline.message if decline is not None else "The bank asked for the cardholder to authenticate."
            attempt.status, attempt.resolved_at = ChargeAttemptStatus.DECLINED, now
            attempt.decline_code, attempt.decline_hard, attempt.message = code[:100], hard, why[:500]
            if hard:
                method = s.scalar(select(SavedPaymentMethod).where(
                    SavedPaymentMethod.mode == attempt.mode, SavedPaymentMethod.method_id == attempt.method_id))
                if method is not None and method.hard_declined_at is None:
                    method.hard_declined_at = now
                    method.hard_decline_reason = f"{decline_reason_text(code)}, {code}"[:500]
            next_step = ("The client must give a new card or bank account; it will not be retried."
                         if hard else "It can be retried later.")
            audit.record(s, "payment.declined", "invoice", inv.id,
                         f"{attempt.method_label} was declined for {amount} ({code}{', hard' if hard else ''}): "
                         f"{why}"[:500], details)
            message = (f"{attempt.method_label} was declined for {number}: {decline_reason_text(code)} "
                       f"(“{why.rstrip('.')}”). {next_step}")
        else:
            attempt.status = ChargeAttemptStatus.UNKNOWN
            attempt.message = (result.message or "No answer from the processor.")[:500]
            audit.record(s, "payment.unknown", "invoice", inv.id,
                         f"Charge of {amount} to {attempt.method_label}: outcome unknown ({attempt.message})"[:500],
                         details)
            message = (f"No clear answer from the processor about {number} ({attempt.message}). The charge may or "
                       "may not have been made; mspbill will find out before charging it again (Check status).")
        return _outcome(attempt, number, message)


# --- what the client's documents say --------------------------------------------------


@dataclass(frozen=True)
class AutopayState:
    """What will happen to an autopay client's open invoice, for its PDF and e-mail.

    ready: it will be charged to `method_label`; processing: a bank debit is settling;
    retrying: a soft decline, tried again on `next_try_on`; approval: above the client's autopay
    cap, the office confirms first; needs_method: nothing can charge it (no
    method in the office's processor, or it declined for good or expired) -- the client must
    pay another way or give a new method.  Without a processor the office charges some other
    way, and the invoice says it will be charged."""

    kind: str
    method_label: str | None = None
    next_try_on: dt.date | None = None   # retrying: the day of the next automatic try


def autopay_state(session: Session, inv: Invoice, today: dt.date | None = None) -> AutopayState:
    from mspbill.payments.processor import office_mode

    today = today or dt.date.today()
    latest = session.scalar(select(ChargeAttempt).where(ChargeAttempt.invoice_id == inv.id)
                            .order_by(ChargeAttempt.id.desc()).limit(1))
    if latest is not None and latest.status in IN_FLIGHT_STATUSES:
        kind = "processing" if latest.status is ChargeAttemptStatus.PROCESSING else "ready"
        return AutopayState(kind, latest.method_label)
    mode = office_mode(session)
    if mode is None:
        # No processor in mspbill: the office charges its autopay clients some other way.
        return AutopayState("ready")
    method = default_method(session, inv.client_id, mode)
    if method is None:
        return AutopayState("needs_method")
    label = method_label(method)
    if method.hard_declined_at is not None or method_facts(method).expires_before(max(today, inv.due_date or today)):
        return AutopayState("needs_method", label)
    if latest is not None and latest.status is ChargeAttemptStatus.DECLINED and not latest.decline_hard:
        from mspbill.batch.plan import retry_schedule
        from mspbill.batch.retries import Failure, RetryKind, retry_decision

        failures = [Failure.of(a) for a in session.scalars(select(ChargeAttempt).where(
            ChargeAttempt.invoice_id == inv.id, ChargeAttempt.status == ChargeAttemptStatus.DECLINED))]
        decision = retry_decision(failures, method.method_id, retry_schedule(session), today)
        if decision.kind in (RetryKind.EXHAUSTED, RetryKind.HARD):
            # Every retry of the schedule failed: nothing will charge it again by itself.
            return AutopayState("needs_method", label)
        if decision.kind in (RetryKind.WAITING, RetryKind.DUE):
            return AutopayState("retrying", label, decision.next_on)
    cap = inv.client.autopay_cap_cents
    if cap is not None and inv.balance_cents > cap and inv.status is InvoiceStatus.OPEN:
        from mspbill.batch.plan import approved_amount

        allowed = approved_amount(session, inv)
        if allowed is None or inv.balance_cents > allowed:
            # Above the client's autopay limit: the office confirms before charging it.
            return AutopayState("approval", label)
    return AutopayState("ready", label)


# --- finding out ------------------------------------------------------------------


def _sender_gone(s: Session, attempt: ChargeAttempt, idle_run_ids: Collection[int]) -> bool:
    """True when nothing can still be sending a pending attempt: its batch run ended, died
    (taken over) or says it has stopped sending (`idle_run_ids`)."""
    if attempt.batch_run_id is None:
        return False
    if attempt.batch_run_id in idle_run_ids:
        return True
    run = s.get(BatchRun, attempt.batch_run_id)
    return run is None or run.status is not BatchRunStatus.RUNNING


def _no_longer_due(s: Session, attempt: ChargeAttempt, today: dt.date) -> str | None:
    """Why a month-end attempt that was never sent should not be sent now (None: it should)."""
    if attempt.origin != "batch":
        return None
    client = s.get(Client, attempt.client_id)
    if client is None or not client.autopay or client.status is not ClientStatus.ACTIVE:
        return "the client is no longer on autopay."
    method = default_method(s, attempt.client_id, ProcessorMode(attempt.mode.value))
    if method is None or method.method_id != attempt.method_id:
        return "the client's payment method changed since."
    if method.hard_declined_at is not None:
        return f"{method_label(method)} was declined for good since."
    if method_facts(method).expires_before(today):
        return f"{method_label(method)} has expired."
    return None


def resolve_attempt(db: Database, gateway: Gateway, attempt_id: int, now: dt.datetime | None = None, *,
                    idle_run_ids: Collection[int] = ()) -> ChargeOutcome:
    """Find out what happened to an attempt whose outcome is unknown (or left pending by a crash),
    or whether an ACH debit has settled."""
    now = now or utcnow()
    with db.session() as s:
        attempt = s.get(ChargeAttempt, attempt_id)
        if attempt is None:
            raise ValidationError([Issue("attempt", f"There is no charge attempt {attempt_id}.")])
        inv = s.get(Invoice, attempt.invoice_id)
        assert inv is not None
        number = inv.number or "the invoice"
        if attempt.mode.value != gateway.mode.value:
            raise ValidationError([Issue("mode", f"This charge was made in {ProcessorMode(attempt.mode.value).label}"
                                                 f"; switch to it to check its status.")])
        if attempt.status not in IN_FLIGHT_STATUSES:
            return _outcome(attempt, number, attempt.message)
        status, intent_id, created = attempt.status, attempt.intent_id, attempt.created_at
        sender_gone = _sender_gone(s, attempt, idle_run_ids)
        request = _request(attempt, number)
        still_owed = inv.status in (InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE) and \
            inv.balance_cents >= attempt.amount_cents
        no_longer_due = _no_longer_due(s, attempt, now.astimezone().date()) \
            if status is ChargeAttemptStatus.PENDING else None
    if status is ChargeAttemptStatus.PROCESSING and intent_id:
        return record_result(db, attempt_id, gateway.get_charge(intent_id), now)
    # Unknown, or pending: look for the PaymentIntent by the attempt's key in its metadata.
    found = gateway.find_charges(customer_id=request.customer_id, created_since=created - CLOCK_SKEW,
                                 metadata={"mspbill_attempt_key": request.idempotency_key})
    if found:
        best = _most_settled(found)
        return record_result(db, attempt_id, best, now)
    if status is ChargeAttemptStatus.PENDING and now - created < STALE_PENDING and not sender_gone:
        return _outcome_of(db, attempt_id, "This charge is still being sent.")
    if no_longer_due:
        # Written by a run that died before sending it, and the processor has never seen it: the
        # office changed things since (autopay off, card flagged...); it is not sent at all.
        return record_not_charged(db, attempt_id, f"Not sent: {no_longer_due}", code="no_longer_due", now=now)
    if now - created < REPLAY_WINDOW and still_owed:
        # The request may never have arrived: send the very same request with the very same key.
        # If it did arrive, the processor answers with the first result and charges nothing more.
        # Whatever goes wrong now, the attempt stays in flight (unknown): "not charged" would let a
        # new key charge the invoice while this one may still succeed.
        try:
            result = gateway.charge(request)
        except ProcessorError as exc:
            result = ChargeResult(status=ChargeStatus.UNKNOWN, message=exc.message)
        except Exception as exc:
            log.exception("replaying charge attempt %s raised", attempt_id)
            result = ChargeResult(status=ChargeStatus.UNKNOWN, message=f"{type(exc).__name__}: {exc}")
        return record_result(db, attempt_id, result, now)
    return record_not_charged(db, attempt_id, "The processor has no charge for this attempt; nothing was taken.",
                              code="not_found", now=now)


def _most_settled(found: Sequence[ChargeResult]) -> ChargeResult:
    order = [ChargeStatus.SUCCEEDED, ChargeStatus.PROCESSING, ChargeStatus.REQUIRES_ACTION, ChargeStatus.DECLINED,
             ChargeStatus.UNKNOWN]
    if sum(1 for r in found if r.status is ChargeStatus.SUCCEEDED) > 1:
        log.error("several succeeded PaymentIntents carry one attempt key: %s", [r.intent_id for r in found])
    return min(found, key=lambda r: order.index(r.status))


def _outcome_of(db: Database, attempt_id: int, message: str) -> ChargeOutcome:
    with db.session() as s:
        attempt = s.get(ChargeAttempt, attempt_id)
        assert attempt is not None
        inv = s.get(Invoice, attempt.invoice_id)
        return _outcome(attempt, (inv.number if inv else None) or "the invoice", message)


@dataclass
class SyncReport:
    checked: int = 0
    succeeded: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    still_processing: int = 0
    still_unknown: int = 0
    not_charged: int = 0
    errors: list[str] = field(default_factory=list)


def sync_charges(db: Database, gateway: Gateway, *, invoice_ids: Sequence[int] | None = None,
                 now: dt.datetime | None = None, idle_run_ids: Collection[int] = ()) -> SyncReport:
    """Settle ACH debits and resolve unknown or crashed attempts of the gateway's mode."""
    now = now or utcnow()
    report = SyncReport()
    with db.session() as s:
        stmt = select(ChargeAttempt.id).where(ChargeAttempt.status.in_(IN_FLIGHT_STATUSES),
                                              ChargeAttempt.mode == to_db_mode(gateway.mode))
        if invoice_ids is not None:
            stmt = stmt.where(ChargeAttempt.invoice_id.in_(list(invoice_ids)))
        ids = list(s.scalars(stmt.order_by(ChargeAttempt.id)))
    for attempt_id in ids:
        report.checked += 1
        try:
            outcome = resolve_attempt(db, gateway, attempt_id, now, idle_run_ids=idle_run_ids)
        except ProcessorError as exc:
            report.errors.append(exc.message)
            if isinstance(exc, RateLimited) or not exc.nothing_happened:
                break  # the processor is struggling: stop asking now, the rest waits for the next sync
            continue
        line = f"{outcome.invoice_number}: {format_amount(outcome.amount_cents, outcome.currency)}"
        if outcome.status is ChargeAttemptStatus.SUCCEEDED:
            report.succeeded.append(line)
        elif outcome.status is ChargeAttemptStatus.DECLINED:
            report.failed.append(f"{line} — {outcome.message}")
        elif outcome.status is ChargeAttemptStatus.PROCESSING:
            report.still_processing += 1
        elif outcome.status is ChargeAttemptStatus.NOT_CHARGED:
            report.not_charged += 1
        else:
            report.still_unknown += 1
    return report


# --- reading ----------------------------------------------------------------------


@dataclass(frozen=True)
class AttemptRow:
    id: int
    created_at: dt.datetime
    status: str
    amount_cents: int
    currency: str
    method_label: str
    mode: str
    intent_id: str | None
    decline_code: str
    hard: bool
    message: str
    origin: str
    actor: str


def attempts_for_invoice(session: Session, invoice_id: int) -> list[AttemptRow]:
    return [AttemptRow(a.id, a.created_at, a.status.value, a.amount_cents, a.currency, a.method_label, a.mode.value,
                       a.intent_id, a.decline_code, bool(a.decline_hard), a.message, a.origin, a.actor)
            for a in session.scalars(select(ChargeAttempt).where(ChargeAttempt.invoice_id == invoice_id)
                                     .order_by(ChargeAttempt.id.desc()))]
