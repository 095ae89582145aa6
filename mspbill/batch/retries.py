"""When a declined autopay charge is tried again.

A soft decline (insufficient funds, a processing error) is retried on a schedule
counted from its *first* failure: by default 3, 5 and 7 days after it.  A hard
decline (lost or stolen card, closed account, authentication required) is never
retried on the same method: the client must give a new one.  A new default
method starts afresh: the invoice is charged to it at the next run.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence
from dataclasses import dataclass

from mspbill.db.models import ChargeAttempt
from mspbill.validation import Issue, ValidationError

DEFAULT_RETRY_DAYS: tuple[int, ...] = (3, 5, 7)
MAX_RETRIES = 10
MAX_RETRY_DAY = 60


def parse_retry_days(text: str) -> tuple[int, ...]:
    """"3, 5, 7" -> (3, 5, 7): days after the first failure, increasing, 1 to 60; blank = no retries."""
    raw = (text or "").replace(";", ",").replace(" ", ",")
    parts = [p for p in raw.split(",") if p.strip()]
    days: list[int] = []
    for part in parts:
        try:
            day = int(part.strip())
        except ValueError:
            raise ValidationError([Issue("retry_days", f"“{part.strip()}” is not a whole number of days; write "
                                                       "the days after the first failure, for example 3, 5, 7.")]) from None
        if not 1 <= day <= MAX_RETRY_DAY:
            raise ValidationError([Issue("retry_days", f"{day} is not between 1 and {MAX_RETRY_DAY} days.")])
        if days and day <= days[-1]:
            raise ValidationError([Issue("retry_days", "Write the days in increasing order, for example 3, 5, 7.")])
        days.append(day)
    if len(days) > MAX_RETRIES:
        raise ValidationError([Issue("retry_days", f"At most {MAX_RETRIES} retries.")])
    return tuple(days)


def format_retry_days(days: Sequence[int]) -> str:
    return ", ".join(str(d) for d in days)


class RetryKind(str, enum.Enum):
    FRESH = "fresh"           # never declined on this method: charge now
    DUE = "due"               # a retry whose day has come
    WAITING = "waiting"       # declined; the next retry is later
    EXHAUSTED = "exhausted"   # every retry of the schedule has failed
    HARD = "hard"             # declined for good on this method


@dataclass(frozen=True)
class Failure:
    """A declined attempt on an invoice."""

    method_id: str
    on: dt.date
    hard: bool

    @classmethod
    def of(cls, attempt: ChargeAttempt) -> Failure:
        """A declined attempt, on the office's date (not UTC's) of its answer."""
        return cls(attempt.method_id, (attempt.resolved_at or attempt.created_at).astimezone().date(),
                   bool(attempt.decline_hard))


@dataclass(frozen=True)
class RetryDecision:
    kind: RetryKind
    failures: int = 0                   # declines on the current method
    next_on: dt.date | None = None      # WAITING: the day of the next retry; DUE: the day it was due
    first_failed_on: dt.date | None = None

    @property
    def retry_number(self) -> int:
        """1 for the first retry, …; 0 for a first charge."""
        return self.failures if self.kind is RetryKind.DUE else 0


def retry_decision(failures: Sequence[Failure], method_id: str, schedule: Sequence[int],
                   today: dt.date) -> RetryDecision:
    """What to do with an invoice whose earlier charges on `method_id` failed as `failures`."""
    mine = sorted((f for f in failures if f.method_id == method_id), key=lambda f: f.on)
    if not mine:
        return RetryDecision(RetryKind.FRESH)
    first = mine[0].on
    if any(f.hard for f in mine):
        return RetryDecision(RetryKind.HARD, len(mine), None, first)
    done = len(mine) - 1            # retries already made
    if done >= len(schedule):
        return RetryDecision(RetryKind.EXHAUSTED, len(mine), None, first)
    # Counted from the first failure -- but never on or before the latest one: a retry made late
    # (the computer was off) is not followed by another the same day.
    next_on = max(first + dt.timedelta(days=schedule[done]), mine[-1].on + dt.timedelta(days=1))
    kind = RetryKind.DUE if next_on <= today else RetryKind.WAITING
    return RetryDecision(kind, len(mine), next_on, first)


def next_retry_after_failure(failures: Sequence[Failure], method_id: str, schedule: Sequence[int]) -> dt.date | None:
    """After the latest failure: the day of the next retry, or None (hard, or retries used up)."""
    decision = retry_decision(failures, method_id, schedule, dt.date.min)
    return decision.next_on if decision.kind is RetryKind.WAITING else None
