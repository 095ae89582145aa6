"""The retry schedule of declined autopay charges (mspbill.batch.retries): the settings text
and the decision for one invoice, counted from its first failure."""

from __future__ import annotations

import datetime as dt

import pytest

from mspbill.batch.retries import (
    DEFAULT_RETRY_DAYS,
    Failure,
    RetryKind,
    format_retry_days,
    next_retry_after_failure,
    parse_retry_days,
    retry_decision,
)
from mspbill.validation import ValidationError

CARD = "pm_card_1"
OTHER_CARD = "pm_card_2"
FIRST = dt.date(2026, 11, 1)


def _day(n: int) -> dt.date:
    return FIRST + dt.timedelta(days=n)


def _soft(day: int, method: str = CARD) -> Failure:
    return Failure(method, _day(day), hard=False)


# --- parse_retry_days ------------------------------------------------------------------


@pytest.mark.parametrize(("text", "days"), [
    ("3, 5, 7", (3, 5, 7)),
    ("3,5,7", (3, 5, 7)),
    ("3;5;7", (3, 5, 7)),
    ("3 5 7", (3, 5, 7)),
    (" 1 ,, 60 ", (1, 60)),
    ("", ()),
    ("   ", ()),
    (",", ()),
])
def test_retry_days_are_read_in_any_usual_separator(text: str, days: tuple[int, ...]) -> None:
    assert parse_retry_days(text) == days


def test_the_default_is_3_5_7_days_and_reads_back() -> None:
    assert DEFAULT_RETRY_DAYS == (3, 5, 7)
    assert parse_retry_days(format_retry_days(DEFAULT_RETRY_DAYS)) == DEFAULT_RETRY_DAYS
    assert format_retry_days(()) == ""


@pytest.mark.parametrize(("text", "message"), [
    ("3, five, 7", ("“five” is not a whole number of days; write the days after the first failure, "
                    "for example 3, 5, 7.")),
    ("3.5", "“3.5” is not a whole number of days"),
    ("0", "0 is not between 1 and 60 days."),
    ("61", "61 is not between 1 and 60 days."),
    ("-3", "-3 is not between 1 and 60 days."),
    ("7, 5, 3", "Write the days in increasing order, for example 3, 5, 7."),
    ("3, 3", "Write the days in increasing order"),
    (",".join(str(d) for d in range(1, 12)), "At most 10 retries."),
])
def test_bad_retry_days_are_refused_with_a_sentence_for_the_field(text: str, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_retry_days(text)
    [issue] = caught.value.issues
    assert issue.field == "retry_days"
    assert issue.message.startswith(message)


def test_ten_retries_are_allowed() -> None:
    assert len(parse_retry_days(",".join(str(d) for d in range(1, 11)))) == 10


# --- retry_decision -----------------------------------------------------------------------


def test_an_invoice_never_declined_is_charged_fresh() -> None:
    decision = retry_decision([], CARD, DEFAULT_RETRY_DAYS, FIRST)
    assert decision.kind is RetryKind.FRESH and decision.retry_number == 0 and decision.next_on is None


def test_retries_fall_3_5_and_7_days_after_the_first_failure() -> None:
    """Each retry day is counted from the first failure, not from the latest one."""
    one = [_soft(0)]
    assert retry_decision(one, CARD, DEFAULT_RETRY_DAYS, _day(2)).kind is RetryKind.WAITING
    assert retry_decision(one, CARD, DEFAULT_RETRY_DAYS, _day(2)).next_on == _day(3)
    due = retry_decision(one, CARD, DEFAULT_RETRY_DAYS, _day(3))
    assert (due.kind, due.next_on, due.retry_number, due.first_failed_on) == (RetryKind.DUE, _day(3), 1, _day(0))

    # The first retry was made late (day 4) and failed: the second is still on day 5, not day 4 + 5.
    two = [_soft(0), _soft(4)]
    waiting = retry_decision(two, CARD, DEFAULT_RETRY_DAYS, _day(4))
    assert (waiting.kind, waiting.next_on, waiting.failures) == (RetryKind.WAITING, _day(5), 2)
    assert retry_decision(two, CARD, DEFAULT_RETRY_DAYS, _day(5)).retry_number == 2

    three = [_soft(0), _soft(3), _soft(5)]
    assert retry_decision(three, CARD, DEFAULT_RETRY_DAYS, _day(6)).next_on == _day(7)
    assert retry_decision(three, CARD, DEFAULT_RETRY_DAYS, _day(7)).kind is RetryKind.DUE


def test_the_order_of_the_failures_given_does_not_matter() -> None:
    shuffled = [_soft(5), _soft(0), _soft(3)]
    assert retry_decision(shuffled, CARD, DEFAULT_RETRY_DAYS, _day(6)).next_on == _day(7)


def test_after_the_last_retry_fails_the_retries_are_used_up() -> None:
    four = [_soft(0), _soft(3), _soft(5), _soft(7)]
    decision = retry_decision(four, CARD, DEFAULT_RETRY_DAYS, _day(30))
    assert (decision.kind, decision.failures, decision.first_failed_on, decision.next_on) == (
        RetryKind.EXHAUSTED, 4, _day(0), None)
    assert decision.retry_number == 0


def test_a_hard_decline_is_never_retried() -> None:
    failures = [_soft(0), Failure(CARD, _day(3), hard=True)]
    decision = retry_decision(failures, CARD, DEFAULT_RETRY_DAYS, _day(30))
    assert decision.kind is RetryKind.HARD and decision.next_on is None
    assert next_retry_after_failure(failures, CARD, DEFAULT_RETRY_DAYS) is None


def test_a_new_method_starts_afresh() -> None:
    failures = [Failure(CARD, _day(0), hard=True), _soft(1), _soft(4)]
    assert retry_decision(failures, OTHER_CARD, DEFAULT_RETRY_DAYS, _day(1)).kind is RetryKind.FRESH
    # Its own failures count from its own first one.
    failures.append(_soft(10, OTHER_CARD))
    decision = retry_decision(failures, OTHER_CARD, DEFAULT_RETRY_DAYS, _day(11))
    assert (decision.kind, decision.next_on, decision.failures) == (RetryKind.WAITING, _day(13), 1)


def test_a_custom_schedule_is_followed() -> None:
    schedule = parse_retry_days("1; 10")
    assert retry_decision([_soft(0)], CARD, schedule, _day(1)).kind is RetryKind.DUE
    assert retry_decision([_soft(0), _soft(1)], CARD, schedule, _day(9)).next_on == _day(10)
    assert retry_decision([_soft(0), _soft(1), _soft(10)], CARD, schedule, _day(40)).kind is RetryKind.EXHAUSTED


def test_without_retries_one_soft_decline_uses_them_up() -> None:
    assert retry_decision([_soft(0)], CARD, (), _day(100)).kind is RetryKind.EXHAUSTED
    assert next_retry_after_failure([_soft(0)], CARD, ()) is None


def test_the_next_retry_after_a_failure_is_dated_from_the_first() -> None:
    assert next_retry_after_failure([_soft(0)], CARD, DEFAULT_RETRY_DAYS) == _day(3)
    assert next_retry_after_failure([_soft(0), _soft(3)], CARD, DEFAULT_RETRY_DAYS) == _day(5)
    assert next_retry_after_failure([_soft(0), _soft(3), _soft(5), _soft(7)], CARD, DEFAULT_RETRY_DAYS) is None


def test_a_retry_made_late_is_not_followed_by_another_the_same_day() -> None:
    """First failure on day 0, the first retry (due day 3) only made on day 8 (the computer was off):
    the second (due day 5) comes the day after, not again on day 8."""
    failures = [_soft(0), _soft(8)]
    assert retry_decision(failures, CARD, (3, 5, 7), _day(8)).kind is RetryKind.WAITING
    decision = retry_decision(failures, CARD, (3, 5, 7), _day(9))
    assert (decision.kind, decision.next_on) == (RetryKind.DUE, _day(9))
    assert next_retry_after_failure(failures, CARD, (3, 5, 7)) == _day(9)
