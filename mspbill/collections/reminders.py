"""Payment reminders: each step of the schedule sent once per invoice, through the outbox.

The rule for a day T and an invoice due on D, issued on I:
- a step is *due* when D + offset ≤ T, and counts only if it falls after the issue day
  (a reminder on the day the invoice went out says nothing new);
- only the latest due step is sent -- steps missed while the app was closed or the
  client was paused are not sent late, one after the other;
- never a step already taken for the invoice, nor one earlier than a step taken.
The step taken is a row in invoice_reminders, unique per invoice and step, written in
the same transaction as its outbox message: a second run on the same day, in another
window or on another workstation, finds the row (or collides with it) and sends nothing.

A reminder still in the outbox when the invoice is paid, voided, or the client paused
is withdrawn rather than sent (`withdraw_unwanted`, and again right before sending).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mspbill import audit
from mspbill.collections.eligibility import Candidate, left_alone, open_candidates
from mspbill.collections.settings import Step, collection_policy, step_label
from mspbill.db.models import (
    Client,
    Invoice,
    InvoiceReminder,
    InvoiceStatus,
    MailSettings,
    OutboxMessage,
    OutboxStatus,
    utcnow,
)
from mspbill.mail.outbox import KIND_REMINDER
from mspbill.mail.settings import NOT_CONFIGURED
from mspbill.mail.templates import format_date, invoice_values, render
from mspbill.money import format_amount
from mspbill.validation import Issue, ValidationError

SUBJECT_MAX = 500
NOTE_MAX = 500
FOLLOWED = "Reminders follow the office's schedule."


def due_when(due: dt.date, today: dt.date) -> str:
    days = (due - today).days
    if days == 0:
        return "today"
    if days == 1:
        return "tomorrow"
    if days == -1:
        return "yesterday"
    return f"in {days} days" if days > 0 else f"{-days} days ago"


@dataclass(frozen=True)
class DueReminder:
    candidate: Candidate
    step: Step
    step_on: dt.date


@dataclass(frozen=True)
class Skipped:
    candidate: Candidate
    reason: str


@dataclass
class ReminderPlan:
    today: dt.date
    enabled: bool
    due: list[DueReminder] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)    # would be due, but cannot or should not go


@dataclass
class ReminderReport:
    queued: list[DueReminder] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    withdrawn: int = 0
    already: int = 0              # taken meanwhile by another run
    not_configured: bool = False
    enabled: bool = True

    def lines(self) -> list[str]:
        out: list[str] = []
        if not self.enabled:
            return ["Reminders are off (Settings → Collections)."]
        if self.not_configured:
            waiting = len(self.queued) + len(self.skipped)
            out.append(f"E-mail is not set up, so no reminder was queued ({waiting} waiting).")
        if self.queued:
            out.append(f"{len(self.queued)} reminder{'s' if len(self.queued) != 1 else ''} queued.")
        for s in self.skipped:
            out.append(f"Not sent: {s.candidate.number} ({s.candidate.client_name}): {s.reason}")
        if self.withdrawn:
            out.append(f"{self.withdrawn} queued reminder{'s' if self.withdrawn != 1 else ''} withdrawn "
                       "(paid or paused since).")
        return out


def _latest_due_step(steps: Sequence[Step], c: Candidate, today: dt.date) -> tuple[Step, dt.date] | None:
    best: tuple[Step, dt.date] | None = None
    for step in steps:
        on = c.due_date + dt.timedelta(days=step.offset_days)
        if on <= today and on > c.issue_date:
            best = (step, on)   # steps are in order of their day
    return best


def _taken(session: Session, invoice_ids: list[int]) -> dict[int, int]:
    """Invoice id → the latest step (offset) already taken for it."""
    out: dict[int, int] = {}
    for i in range(0, len(invoice_ids), 500):
        for invoice_id, offset in session.execute(
                select(InvoiceReminder.invoice_id, func.max(InvoiceReminder.offset_days))
                .where(InvoiceReminder.invoice_id.in_(invoice_ids[i:i + 500]))
                .group_by(InvoiceReminder.invoice_id)):
            out[int(invoice_id)] = int(offset)
    return out


def plan_reminders(session: Session, today: dt.date, *, invoice_ids: Sequence[int] | None = None) -> ReminderPlan:
    """The reminders due today, and those due that cannot or should not go.  Reads only."""
    policy = collection_policy(session)
    plan = ReminderPlan(today, policy.reminders_enabled)
    if not policy.steps:
        return plan
    latest_day = today - dt.timedelta(days=policy.steps[0].offset_days)
    candidates = open_candidates(session, due_on_or_before=latest_day, invoice_ids=invoice_ids)
    due = [(c, found) for c in candidates if (found := _latest_due_step(policy.steps, c, today)) is not None]
    taken = _taken(session, [c.invoice_id for c, _ in due])
    due = [(c, found) for c, found in due if taken.get(c.invoice_id, -10**6) < found[0].offset_days]
    alone = left_alone(session, [c for c, _ in due], today)
    for c, (step, on) in due:
        if c.invoice_id in alone:
            continue  # not followed up at all: not a reminder "not sent"
        if c.paused:
            plan.skipped.append(Skipped(c, "reminders are paused for this client"))
        elif not c.has_email:
            plan.skipped.append(Skipped(c, "the client has no billing e-mail address"))
        else:
            plan.due.append(DueReminder(c, step, on))
    return plan


def reminder_values(session: Session, inv: Invoice, today: dt.date) -> dict[str, str]:
    values = invoice_values(session, inv, today)
    due = inv.due_date or today
    values["days_overdue"] = str(max(0, (today - due).days))
    values["due_when"] = due_when(due, today)
    return values


def render_reminder(session: Session, inv: Invoice, step: Step, today: dt.date) -> tuple[str, str]:
    values = reminder_values(session, inv, today)
    try:
        subject, body = render(step.subject, values), render(step.body, values)
    except (KeyError, ValueError, IndexError):
        # A template saved by another program: the client still gets a plain reminder.
        subject = f"Reminder: invoice {values['number']} ({values['balance']})"
        body = (f"Dear {values['client']},\n\nInvoice {values['number']} for {values['balance']} was due on "
                f"{values['due_date']}.\n\nPayment: {values['payment_method']}\n\n{values['company']}\n")
    return " ".join(subject.split())[:SUBJECT_MAX], body


def _mail_ready(session: Session) -> bool:
    settings = session.get(MailSettings, 1)
    return settings is not None and bool(settings.host) and bool(settings.from_address)


def queue_reminders(session: Session, today: dt.date, *, invoice_ids: Sequence[int] | None = None,
                    now: dt.datetime | None = None) -> ReminderReport:
    """Queue today's due reminders in the outbox, each in its own savepoint (a step another
    run took meanwhile is skipped, not an error).  The caller commits."""
    now = now or utcnow()
    plan = plan_reminders(session, today, invoice_ids=invoice_ids)
    report = ReminderReport(enabled=plan.enabled, skipped=list(plan.skipped))
    report.withdrawn = withdraw_unwanted(session, today)
    if not plan.enabled:
        return report
    if not plan.due:
        return report
    if not _mail_ready(session):
        report.not_configured = True
        report.skipped += [Skipped(d.candidate, NOT_CONFIGURED) for d in plan.due]
        return report
    actor = audit.current_actor()
    for due in plan.due:
        c = due.candidate
        try:
            with session.begin_nested():
                inv = session.get(Invoice, c.invoice_id)
                client = session.get(Client, c.client_id)
                assert inv is not None and client is not None
                emails = client.email_list
                subject, body = render_reminder(session, inv, due.step, today)
                record = InvoiceReminder(invoice_id=inv.id, client_id=client.id, offset_days=due.step.offset_days,
                                         step_on=due.step_on, queued_on=today, status="queued",
                                         sent_to=", ".join(emails)[:1000], balance_cents=c.balance_cents,
                                         actor=actor, created_at=now)
                session.add(record)
                session.flush()   # the unique (invoice, step) row first: a second run stops here
                msg = OutboxMessage(kind=KIND_REMINDER, status=OutboxStatus.QUEUED, invoice_id=inv.id,
                                    client_id=client.id, to_addrs=emails[0], cc_addrs=", ".join(emails[1:]),
                                    subject=subject, body=body, attach_invoice_pdf=True,
                                    attachment_name=f"{inv.number}.pdf", message_id="", attempts=0, last_error="",
                                    next_attempt_at=now, queued_by=actor, created_at=now, updated_at=now)
                session.add(msg)
                session.flush()
                record.outbox_id = msg.id
                audit.record(session, "invoice.reminder_queued", "invoice", inv.id,
                             f"Queued reminder ({step_label(due.step.offset_days).lower()}) for {inv.number} "
                             f"to {', '.join(emails)}: {format_amount(c.balance_cents, c.currency)} open"[:500],
                             {"outbox_id": msg.id, "offset_days": due.step.offset_days})
        except IntegrityError:
            report.already += 1
            continue
        report.queued.append(due)
    return report


def withdraw_reason(session: Session, invoice_id: int, today: dt.date | None = None) -> str | None:
    """Why a queued reminder of this invoice should no longer go (None: it should)."""
    inv = session.get(Invoice, invoice_id)
    if inv is None:
        return "the invoice no longer exists"
    if not collection_policy(session).reminders_enabled:
        return "reminders were turned off (Settings → Collections)"
    if inv.status is not InvoiceStatus.OPEN or inv.balance_cents <= 0:
        return f"{inv.number} is {inv.status.value} now" if inv.status is not InvoiceStatus.OPEN \
            else f"{inv.number} is paid now"
    if inv.client.reminders_paused:
        return f"reminders are paused for {inv.client.legal_name}"
    candidates = open_candidates(session, due_on_or_before=dt.date.max, invoice_ids=[invoice_id])
    if candidates:
        reason = left_alone(session, candidates, today or dt.date.today()).get(invoice_id)
        if reason:
            return reason
    return None


def withdraw_message(session: Session, message: OutboxMessage, reason: str) -> None:
    """Take a queued reminder out of the outbox (it was not sent) and say so on the invoice."""
    session.query(InvoiceReminder).filter(InvoiceReminder.outbox_id == message.id).update(
        {InvoiceReminder.status: "withdrawn", InvoiceReminder.outbox_id: None}, synchronize_session=False)
    if message.invoice_id is not None:
        audit.record(session, "invoice.reminder_withdrawn", "invoice", message.invoice_id,
                     f"Reminder to {message.to_addrs} withdrawn before it was sent: {reason}"[:500],
                     {"outbox_id": message.id})
    session.delete(message)
    session.flush()


def withdraw_unwanted(session: Session, today: dt.date) -> int:
    """Withdraw queued reminders whose invoice was paid, voided or paused since; how many."""
    waiting = list(session.scalars(select(OutboxMessage).where(
        OutboxMessage.kind == KIND_REMINDER, OutboxMessage.status.in_([OutboxStatus.QUEUED, OutboxStatus.FAILED]))))
    count = 0
    for msg in waiting:
        if msg.invoice_id is None:
            continue
        reason = withdraw_reason(session, msg.invoice_id, today)
        if reason:
            withdraw_message(session, msg, reason)
            count += 1
    return count


# --- what an invoice shows ----------------------------------------------------------------

@dataclass(frozen=True)
class ReminderRow:
    label: str           # "7 days overdue"
    step_on: dt.date     # the day the step falls on
    status: str          # sent, queued, failed, withdrawn, skipped, due (the next pass takes it), upcoming
    detail: str          # "Sent 8 Dec 2026 to ap@client.example", "Paused", …
    offset_days: int


@dataclass(frozen=True)
class InvoiceReminders:
    rows: tuple[ReminderRow, ...]
    summary: str         # one sentence: why (or why not) this invoice gets reminders


def invoice_reminders(session: Session, invoice_id: int, today: dt.date | None = None) -> InvoiceReminders:
    """The reminders of an invoice: those taken (sent, waiting, withdrawn), missed and to come."""
    today = today or dt.date.today()
    inv = session.get(Invoice, invoice_id)
    if inv is None:
        raise ValidationError([Issue("invoice", f"There is no invoice {invoice_id}.")])
    policy = collection_policy(session)
    records = list(session.scalars(select(InvoiceReminder).where(InvoiceReminder.invoice_id == invoice_id)
                                   .order_by(InvoiceReminder.offset_days)))
    messages = {m.id: m for m in session.scalars(select(OutboxMessage).where(
        OutboxMessage.id.in_([r.outbox_id for r in records if r.outbox_id is not None])))}
    rows: list[ReminderRow] = []
    taken = {r.offset_days for r in records}
    for r in records:
        msg = messages.get(r.outbox_id) if r.outbox_id is not None else None
        if r.status == "withdrawn":
            status, detail = "withdrawn", f"Queued {format_date(r.queued_on)}, withdrawn before sending"
        elif msg is None:   # sent messages stay in the outbox: this one was discarded there
            status, detail = "withdrawn", f"Queued {format_date(r.queued_on)}, discarded from the Outbox"
        elif msg.status is OutboxStatus.SENT:
            when = msg.sent_at.astimezone().date() if msg.sent_at else r.queued_on
            status, detail = "sent", f"Sent {format_date(when)} to {r.sent_to}"
        elif msg.status is OutboxStatus.FAILED:
            status, detail = "failed", f"Not sent: {msg.last_error}"
        else:
            status, detail = "queued", f"In the outbox since {format_date(r.queued_on)}"
        rows.append(ReminderRow(step_label(r.offset_days), r.step_on, status, detail, r.offset_days))
    summary = ""
    if inv.status is not InvoiceStatus.OPEN or inv.balance_cents <= 0 or inv.due_date is None:
        summary = "No reminders: nothing is owed on this invoice." if inv.status is not InvoiceStatus.DRAFT \
            else "Reminders start once the invoice is issued."
    elif not policy.reminders_enabled:
        summary = "Reminders are off for the office (Settings → Collections)."
    elif inv.client.reminders_paused:
        note = f" ({inv.client.reminders_pause_note})" if inv.client.reminders_pause_note else ""
        summary = f"Reminders are paused for {inv.client.legal_name}{note}."
    else:
        candidates = open_candidates(session, due_on_or_before=dt.date.max, invoice_ids=[invoice_id])
        reason = left_alone(session, candidates, today).get(invoice_id) if candidates else None
        summary = f"No reminders: {reason}." if reason else FOLLOWED
        if not reason and not inv.client.email_list:
            summary = "No reminders can be sent: the client has no billing e-mail address."
    if inv.status is InvoiceStatus.OPEN and inv.due_date is not None and inv.issue_date is not None:
        highest = max(taken) if taken else None
        # The step the next pass takes (plan_reminders' rule): the latest due, later than any taken.
        due_now = [s.offset_days for s in policy.steps if s.offset_days not in taken
                   and (highest is None or s.offset_days > highest)
                   and inv.issue_date < inv.due_date + dt.timedelta(days=s.offset_days) <= today]
        next_step = max(due_now) if due_now else None
        for step in policy.steps:
            if step.offset_days in taken:
                continue
            on = inv.due_date + dt.timedelta(days=step.offset_days)
            if on <= inv.issue_date:
                continue
            if step.offset_days == next_step:
                rows.append(ReminderRow(step.label, on, "due", "Due now: it goes with the next collections pass"
                                        if summary == FOLLOWED else "Due, but not sent (see above)", step.offset_days))
            elif highest is not None and step.offset_days < highest:
                rows.append(ReminderRow(step.label, on, "skipped", "Passed over: a later step was already due "
                                        "when reminders went out (one reminder at a time, the latest)",
                                        step.offset_days))
            elif on <= today:
                rows.append(ReminderRow(step.label, on, "skipped", "Not sent: the next step was due before it went "
                                        "out (the client was paused, had no e-mail address, or e-mail was not set "
                                        "up)" if on < today else "Due today", step.offset_days))
            else:
                rows.append(ReminderRow(step.label, on, "upcoming", f"Due {format_date(on)}", step.offset_days))
    rows.sort(key=lambda r: (r.step_on, r.offset_days))
    return InvoiceReminders(tuple(rows), summary)


# --- pausing ------------------------------------------------------------------------------

def set_reminders_paused(session: Session, client_id: int, paused: bool, note: str = "") -> Client:
    client = session.get(Client, client_id)
    if client is None:
        raise ValidationError([Issue("client", f"There is no client {client_id}.")])
    note = " ".join((note or "").split())
    if len(note) > NOTE_MAX:
        raise ValidationError([Issue("note", f"The note is longer than {NOTE_MAX} characters.")])
    if client.reminders_paused == paused and client.reminders_pause_note == (note if paused else ""):
        return client
    client.reminders_paused = paused
    client.reminders_pause_note = note if paused else ""
    session.flush()
    what = "paused" if paused else "resumed"
    audit.record(session, f"client.reminders_{what}", "client", client.id,
                 f"Reminders {what} for {client.legal_name}" + (f": {note}" if paused and note else ""))
    if paused:
        withdraw_unwanted_for_client(session, client.id)
    return client


def withdraw_unwanted_for_client(session: Session, client_id: int) -> int:
    waiting = list(session.scalars(select(OutboxMessage).where(
        OutboxMessage.kind == KIND_REMINDER, OutboxMessage.client_id == client_id,
        OutboxMessage.status.in_([OutboxStatus.QUEUED, OutboxStatus.FAILED]))))
    for msg in waiting:
        withdraw_message(session, msg, "reminders were paused for the client")
    return len(waiting)


# --- the reminder log (the Collections screen) ----------------------------------------------

@dataclass(frozen=True)
class ReminderLogRow:
    id: int
    invoice_id: int
    invoice_number: str
    client_id: int
    client_name: str
    offset_days: int
    step_on: dt.date
    queued_on: dt.date
    status: str          # queued, sending, sent, failed, withdrawn, discarded
    sent_at: dt.datetime | None
    sent_to: str
    balance_cents: int   # what was open when it was queued
    currency: str
    detail: str          # the outbox's last error, or why it did not go

    @property
    def label(self) -> str:
        return step_label(self.offset_days)


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def reminder_log(session: Session, *, client_text: str = "", invoice_id: int | None = None,
                 limit: int = 2000) -> list[ReminderLogRow]:
    """The reminders taken, newest first, with what became of their e-mail.  `client_text`
    keeps the clients whose name contains it (any case).  Reads only."""
    stmt = (select(InvoiceReminder, Invoice.number, Invoice.currency, Client.legal_name, OutboxMessage.status,
                   OutboxMessage.sent_at, OutboxMessage.last_error)
            .join(Invoice, Invoice.id == InvoiceReminder.invoice_id)
            .join(Client, Client.id == InvoiceReminder.client_id)
            .outerjoin(OutboxMessage, OutboxMessage.id == InvoiceReminder.outbox_id)
            .order_by(InvoiceReminder.queued_on.desc(), InvoiceReminder.id.desc())
            .limit(limit))
    text = " ".join((client_text or "").split())
    if text:
        stmt = stmt.where(Client.legal_name.ilike(_like(text), escape="\\"))
    if invoice_id is not None:
        stmt = stmt.where(InvoiceReminder.invoice_id == invoice_id)
    rows: list[ReminderLogRow] = []
    for r, number, currency, client_name, msg_status, sent_at, last_error in session.execute(stmt):
        detail = last_error or ""
        if r.status == "withdrawn":
            status, detail = "withdrawn", "Withdrawn before it was sent (paid, voided or paused since)"
        elif msg_status is None:
            status, detail = "discarded", "Discarded from the Outbox before it was sent"
        else:
            status = OutboxStatus(msg_status).value
        rows.append(ReminderLogRow(r.id, r.invoice_id, number or "", r.client_id, client_name, r.offset_days,
                                   r.step_on, r.queued_on, status, sent_at if status == "sent" else None,
                                   r.sent_to, r.balance_cents, currency, detail))
    return rows
