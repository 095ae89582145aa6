"""The collections settings (Settings → Collections): the reminder schedule with its
e-mails, and the late-fee policy (off by default)."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import TypeVar

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mspbill import audit
from mspbill.db.models import (
    CollectionSettings,
    CompanyProfile,
    LateFeeKind,
    LateFeePlacement,
    LateFeeRepeat,
    ReminderStep,
)
from mspbill.mail.templates import PLACEHOLDERS, check_template
from mspbill.money import (
    MoneyError,
    format_amount,
    format_decimal,
    parse_amount,
    parse_decimal,
)
from mspbill.validation import Issue, ValidationError

E = TypeVar("E", bound=enum.Enum)

# Placeholders a reminder may use: the invoice e-mail's, and two of its own.
REMINDER_PLACEHOLDERS: dict[str, str] = {
    **PLACEHOLDERS,
    "days_overdue": "Days past the due date when the reminder is queued (0 before and on the due date)",
    "due_when": "When it is or was due, in words: \"in 3 days\", \"today\", \"7 days ago\"",
}

OFFSET_MIN, OFFSET_MAX = -60, 365
STEPS_MAX = 12
SUBJECT_MAX = 500
BODY_MAX = 10_000
FEE_AFTER_MAX = 365
FEE_PERCENT_MAX = Decimal(25)
FEE_FLAT_MAX_CENTS = 100_000_00

_SIGNATURE = "\n\nIf you have already paid, thank you, and please ignore this reminder.\n\n{company}\n"

DEFAULT_STEPS: tuple[tuple[int, str, str], ...] = (
    (-3, "Reminder: invoice {number} is due {due_when}",
     "Dear {client},\n\nA friendly reminder that invoice {number} for {total} is due on {due_date} "
     "({due_when}). The balance is {balance}.\n\nPayment: {payment_method}\n\nThe invoice is attached." + _SIGNATURE),
    (0, "Invoice {number} is due {due_when}",
     "Dear {client},\n\nInvoice {number} is due {due_when} ({due_date}); {balance} is still open.\n\n"
     "Payment: {payment_method}\n\nThe invoice is attached." + _SIGNATURE),
    (7, "Overdue: invoice {number} ({balance})",
     "Dear {client},\n\nInvoice {number} was due on {due_date} and is now {days_overdue} days overdue. "
     "The balance is {balance}.\n\nPayment: {payment_method}\n\nIf something about this invoice is not "
     "right, just reply to this e-mail and we will sort it out. The invoice is attached." + _SIGNATURE),
    (14, "Second notice: invoice {number} is {days_overdue} days overdue",
     "Dear {client},\n\nWe have not yet received payment of {balance} for invoice {number}, which was due "
     "on {due_date} ({days_overdue} days ago).\n\nPayment: {payment_method}\n\nPlease let us know when we "
     "can expect payment. The invoice is attached." + _SIGNATURE),
    (30, "Final notice: invoice {number} is {days_overdue} days overdue",
     "Dear {client},\n\nInvoice {number} for {balance} is now {days_overdue} days past its due date of "
     "{due_date}. Please pay the balance now, or reply today to arrange payment.\n\nPayment: "
     "{payment_method}\n\nThe invoice is attached." + _SIGNATURE),
)


def step_label(offset_days: int) -> str:
    """"3 days before due", "On the due date", "7 days overdue"."""
    if offset_days == 0:
        return "On the due date"
    n = abs(offset_days)
    unit = "day" if n == 1 else "days"
    return f"{n} {unit} before due" if offset_days < 0 else f"{n} {unit} overdue"


@dataclass(frozen=True)
class StepDraft:
    offset_days: str | int
    subject: str
    body: str


@dataclass(frozen=True)
class Step:
    offset_days: int
    subject: str
    body: str

    @property
    def label(self) -> str:
        return step_label(self.offset_days)


@dataclass(frozen=True)
class LateFeePolicy:
    enabled: bool = False
    kind: LateFeeKind = LateFeeKind.FLAT
    flat_cents: int = 0
    percent: Decimal = Decimal(0)
    after_days: int = 30
    repeat: LateFeeRepeat = LateFeeRepeat.ONCE
    placement: LateFeePlacement = LateFeePlacement.NEXT_INVOICE
    min_balance_cents: int = 0

    def describe(self, currency: str) -> str:
        """"1.5 % of the overdue balance, 30 days after the due date, every month, on the next invoice"."""
        if not self.enabled:
            return "No late fees."
        what = (f"A fee of {format_amount(self.flat_cents, currency)}" if self.kind is LateFeeKind.FLAT
                else f"A fee of {format_decimal(self.percent)} % of the overdue balance")
        when = f"{self.after_days} day{'s' if self.after_days != 1 else ''} after the due date"
        often = "once per invoice" if self.repeat is LateFeeRepeat.ONCE else "then again every month it stays unpaid"
        where = ("as a line on the client's next invoice" if self.placement is LateFeePlacement.NEXT_INVOICE
                 else "on an invoice of its own")
        floor = (f"; none on a balance under {format_amount(self.min_balance_cents, currency)}"
                 if self.min_balance_cents else "")
        return f"{what}, {when}, {often}, {where}{floor}."


@dataclass(frozen=True)
class CollectionPolicy:
    reminders_enabled: bool
    steps: tuple[Step, ...]
    fees: LateFeePolicy


@dataclass(frozen=True)
class LateFeeDraft:
    enabled: bool = False
    kind: str = "flat"
    flat_amount: str = "0.00"
    percent: str = "0"
    after_days: str | int = 30
    repeat: str = "once"
    placement: str = "next_invoice"
    min_balance: str = "0.00"


def settings_row(session: Session) -> CollectionSettings:
    """The settings row, created with the defaults (and the default schedule) the first time."""
    row = session.get(CollectionSettings, 1)
    if row is None:
        row = CollectionSettings(id=1)
        session.add(row)
        if session.scalar(select(ReminderStep.id).limit(1)) is None:
            for offset, subject, body in DEFAULT_STEPS:
                session.add(ReminderStep(offset_days=offset, subject=subject, body=body))
        session.flush()
    return row


def _fee_policy(row: CollectionSettings | None) -> LateFeePolicy:
    if row is None:
        return LateFeePolicy()
    return LateFeePolicy(bool(row.late_fee_enabled), row.late_fee_kind, int(row.late_fee_flat_cents or 0),
                         Decimal(row.late_fee_percent or 0), int(row.late_fee_after_days or 30),
                         row.late_fee_repeat, row.late_fee_placement, int(row.late_fee_min_balance_cents or 0))


def collection_policy(session: Session) -> CollectionPolicy:
    """What the office has set (the defaults before anything was saved).  Reads only."""
    row = session.get(CollectionSettings, 1)
    if row is None:
        steps = tuple(Step(o, s, b) for o, s, b in DEFAULT_STEPS)
        return CollectionPolicy(True, steps, LateFeePolicy())
    steps = tuple(Step(r.offset_days, r.subject, r.body)
                  for r in session.scalars(select(ReminderStep).order_by(ReminderStep.offset_days)))
    return CollectionPolicy(bool(row.reminders_enabled), steps, _fee_policy(row))


def validate_steps(drafts: list[StepDraft]) -> tuple[list[Step], list[Issue]]:
    """Every problem of the schedule at once (house rule 5)."""
    issues: list[Issue] = []
    steps: list[Step] = []
    seen: dict[int, int] = {}
    if len(drafts) > STEPS_MAX:
        issues.append(Issue("steps", f"At most {STEPS_MAX} reminder steps; remove some."))
    for i, draft in enumerate(drafts, start=1):
        where = f"Step {i}"
        try:
            offset = int(str(draft.offset_days).strip())
        except ValueError:
            issues.append(Issue(f"steps[{i}].offset_days", f"{where}: the day must be a whole number of days "
                                "from the due date (−3 for three days before, 7 for a week overdue)."))
            continue
        if not OFFSET_MIN <= offset <= OFFSET_MAX:
            issues.append(Issue(f"steps[{i}].offset_days", f"{where}: the day must be between {OFFSET_MIN} "
                                f"(before due) and {OFFSET_MAX} (overdue)."))
        if offset in seen:
            issues.append(Issue(f"steps[{i}].offset_days", f"{where} falls on the same day as step {seen[offset]} "
                                f"({step_label(offset)}); each day can have one reminder."))
        seen.setdefault(offset, i)
        subject = " ".join((draft.subject or "").split())
        body = (draft.body or "").replace("\r\n", "\n").strip("\n")
        if not subject:
            issues.append(Issue(f"steps[{i}].subject", f"{where}: the subject is empty."))
        elif len(subject) > SUBJECT_MAX:
            issues.append(Issue(f"steps[{i}].subject", f"{where}: the subject is longer than {SUBJECT_MAX} "
                                "characters."))
        if not body.strip():
            issues.append(Issue(f"steps[{i}].body", f"{where}: the message is empty."))
        elif len(body) > BODY_MAX:
            issues.append(Issue(f"steps[{i}].body", f"{where}: the message is longer than {BODY_MAX:,} characters."))
        check_template(subject, f"steps[{i}].subject", f"subject of step {i}", issues, REMINDER_PLACEHOLDERS)
        check_template(body, f"steps[{i}].body", f"message of step {i}", issues, REMINDER_PLACEHOLDERS)
        steps.append(Step(offset, subject, body + "\n"))
    return sorted(steps, key=lambda s: s.offset_days), issues


def save_reminders(session: Session, enabled: bool, drafts: list[StepDraft]) -> tuple[Step, ...]:
    """Turn reminders on or off and replace the schedule (validated as a whole first).

    Reminders already sent keep their record: a step whose day is kept is never sent twice."""
    steps, issues = validate_steps(drafts)
    if issues:
        raise ValidationError(issues)
    row = settings_row(session)
    old_steps = list(session.scalars(select(ReminderStep).order_by(ReminderStep.offset_days)))
    old_bodies = {st.offset_days: st.body for st in old_steps}
    was = {"reminders": bool(row.reminders_enabled),
           "steps": [f"{step_label(st.offset_days)}: {st.subject}" for st in old_steps]}
    row.reminders_enabled = bool(enabled)
    session.execute(delete(ReminderStep))
    session.flush()
    for step in steps:
        session.add(ReminderStep(offset_days=step.offset_days, subject=step.subject, body=step.body))
    session.flush()
    days = ", ".join(step_label(s.offset_days) for s in steps) or "no steps"
    changes = audit.diff(was, {"reminders": bool(enabled), "steps": [f"{st.label}: {st.subject}" for st in steps]})
    # The messages are long; the trail says which changed, not how.
    reworded = [st.label for st in steps if st.offset_days in old_bodies and old_bodies[st.offset_days] != st.body]
    if reworded:
        changes["messages"] = ["", "changed: " + ", ".join(reworded)]
    audit.record(session, "settings.reminders", "settings", 1,
                 f"Reminders {'on' if enabled else 'off'}: {days}"[:500], {"changes": changes})
    return tuple(steps)


def _choice(enum_cls: type[E], text: str, field: str, what: str, issues: list[Issue]) -> E:
    try:
        return enum_cls((text or "").strip().lower())
    except ValueError:
        allowed = ", ".join(str(m.value) for m in enum_cls)
        issues.append(Issue(field, f"{what} must be one of: {allowed}."))
        return next(iter(enum_cls))


def validate_late_fees(draft: LateFeeDraft, currency: str) -> tuple[LateFeePolicy, list[Issue]]:
    issues: list[Issue] = []
    kind = _choice(LateFeeKind, draft.kind, "kind", "The kind of fee", issues)
    repeat = _choice(LateFeeRepeat, draft.repeat, "repeat", "How often", issues)
    placement = _choice(LateFeePlacement, draft.placement, "placement", "Where the fee goes", issues)
    flat = percent = None
    try:
        flat = parse_amount(str(draft.flat_amount or "0"), currency)
        if flat < 0 or flat > FEE_FLAT_MAX_CENTS:
            issues.append(Issue("flat_amount", f"The flat fee must be between 0 and "
                                               f"{format_amount(FEE_FLAT_MAX_CENTS, currency)}."))
    except MoneyError as exc:
        issues.append(Issue("flat_amount", f"The flat fee: {exc}"))
    try:
        percent = parse_decimal(str(draft.percent or "0").replace("%", ""), what="the percentage", max_places=3)
        if percent < 0 or percent > FEE_PERCENT_MAX:
            issues.append(Issue("percent", f"The percentage must be between 0 and {FEE_PERCENT_MAX} %."))
    except (ValueError, MoneyError) as exc:
        issues.append(Issue("percent", f"The percentage: {exc}"))
    try:
        after = int(str(draft.after_days).strip())
        if not 1 <= after <= FEE_AFTER_MAX:
            issues.append(Issue("after_days", f"The days overdue before a fee must be between 1 and {FEE_AFTER_MAX}."))
    except ValueError:
        after = 30
        issues.append(Issue("after_days", "The days overdue before a fee must be a whole number."))
    floor = 0
    try:
        floor = parse_amount(str(draft.min_balance or "0"), currency)
        if floor < 0:
            issues.append(Issue("min_balance", "The smallest balance for a fee cannot be negative."))
    except MoneyError as exc:
        issues.append(Issue("min_balance", f"The smallest balance for a fee: {exc}"))
    if draft.enabled and not issues:
        if kind is LateFeeKind.FLAT and not flat:
            issues.append(Issue("flat_amount", "Enter the flat fee (more than zero), or turn late fees off."))
        if kind is LateFeeKind.PERCENT and not percent:
            issues.append(Issue("percent", "Enter the percentage (more than zero), or turn late fees off."))
    policy = LateFeePolicy(bool(draft.enabled), kind, flat or 0, percent or Decimal(0), after, repeat, placement,
                           max(floor, 0))
    return policy, issues


def save_late_fees(session: Session, draft: LateFeeDraft) -> LateFeePolicy:
    company = session.get(CompanyProfile, 1)
    currency = company.currency if company else "USD"
    policy, issues = validate_late_fees(draft, currency)
    if issues:
        raise ValidationError(issues)
    row = settings_row(session)
    before = _fee_policy(row)
    row.late_fee_enabled, row.late_fee_kind, row.late_fee_flat_cents = policy.enabled, policy.kind, policy.flat_cents
    row.late_fee_percent, row.late_fee_after_days = policy.percent, policy.after_days
    row.late_fee_repeat, row.late_fee_placement = policy.repeat, policy.placement
    row.late_fee_min_balance_cents = policy.min_balance_cents
    session.flush()
    audit.record(session, "settings.late_fees", "settings", 1, f"Late fees: {policy.describe(currency)}"[:500],
                 {"changes": audit.diff(asdict(before), asdict(policy))})
    return policy
