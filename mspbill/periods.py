"""Billing periods and proration by days.

Agreements bill in advance on calendar periods: a month, a calendar quarter
or a calendar year.  Proration is by days, both ends included:

    amount × days covered ÷ days in the period, rounded half-up to the cent

computed from quantity × unit price exactly, so the only rounding is that one
(house rule 4).
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass

from mspbill.db.models import QUANTITY_SCALE, BillingFrequency

_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
_MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})
_MONTHS["sept"] = 9

MIN_YEAR, MAX_YEAR = 2000, 2100


class PeriodError(ValueError):
    """A period the user typed that we cannot read; the message says what to type."""


@dataclass(frozen=True, order=True)
class Month:
    year: int
    month: int

    @property
    def first_day(self) -> dt.date:
        return dt.date(self.year, self.month, 1)

    @property
    def last_day(self) -> dt.date:
        return dt.date(self.year, self.month, calendar.monthrange(self.year, self.month)[1])

    def shift(self, months: int) -> Month:
        index = self.year * 12 + self.month - 1 + months
        return Month(index // 12, index % 12 + 1)

    @classmethod
    def of(cls, day: dt.date) -> Month:
        return cls(day.year, day.month)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def label(self) -> str:
        return f"{calendar.month_name[self.month]} {self.year}"


def parse_period(text: str) -> Month:
    """Read a month the way a person writes it: 2026-11, 2026/11, 11/2026, Nov 2026, November 2026.

    A month without a year ("nov") or a month number out of range ("2026-13")
    is refused with a message saying what to type.
    """
    raw = (text or "").strip()
    if not raw:
        raise PeriodError("Enter a billing period as YYYY-MM, for example 2026-11.")
    t = raw.lower().replace(",", " ").replace(".", " ")
    year = month = None
    if m := re.fullmatch(r"(\d{4})\s*[-/]\s*(\d{1,2})", t):
        year, month = int(m[1]), int(m[2])
    elif m := re.fullmatch(r"(\d{1,2})\s*[-/]\s*(\d{4})", t):
        month, year = int(m[1]), int(m[2])
    elif m := re.fullmatch(r"([a-z]+)\s*[-/ ]?\s*(\d{4})", t):
        if m[1] not in _MONTHS:
            raise PeriodError(f"“{raw}” is not a month; use YYYY-MM, for example 2026-11.")
        month, year = _MONTHS[m[1]], int(m[2])
    elif m := re.fullmatch(r"(\d{4})\s*[-/ ]?\s*([a-z]+)", t):
        if m[2] not in _MONTHS:
            raise PeriodError(f"“{raw}” is not a month; use YYYY-MM, for example 2026-11.")
        year, month = int(m[1]), _MONTHS[m[2]]
    elif t in _MONTHS:
        raise PeriodError(f"“{raw}” needs a year: use YYYY-MM, for example {dt.date.today().year}-"
                          f"{_MONTHS[t]:02d}.")
    else:
        raise PeriodError(f"“{raw}” is not a billing period; use YYYY-MM, for example 2026-11.")
    if not 1 <= month <= 12:
        raise PeriodError(f"“{raw}”: there is no month {month}; months run from 01 to 12.")
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise PeriodError(f"“{raw}”: the year must be between {MIN_YEAR} and {MAX_YEAR}.")
    return Month(year, month)


@dataclass(frozen=True)
class Period:
    """A calendar billing period [start, end], both days included."""

    start: dt.date
    end: dt.date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def __contains__(self, day: object) -> bool:
        return isinstance(day, dt.date) and self.start <= day <= self.end

    def label(self, frequency: BillingFrequency) -> str:
        if frequency is BillingFrequency.MONTHLY:
            return Month.of(self.start).label
        if frequency is BillingFrequency.QUARTERLY:
            return f"Q{(self.start.month - 1) // 3 + 1} {self.start.year}"
        return str(self.start.year)


def billing_period(frequency: BillingFrequency, day: dt.date) -> Period:
    """The calendar period of `frequency` that contains `day`."""
    months = frequency.months
    first_month = (day.month - 1) // months * months + 1
    start = dt.date(day.year, first_month, 1)
    end = Month(day.year, first_month).shift(months - 1).last_day
    return Period(start, end)


def next_period(frequency: BillingFrequency, period: Period) -> Period:
    return billing_period(frequency, period.end + dt.timedelta(days=1))


def _div_half_up(numerator: int, denominator: int) -> int:
    """round_half_up(numerator / denominator) for a positive denominator, any sign."""
    if numerator < 0:
        return -_div_half_up(-numerator, denominator)
    return (2 * numerator + denominator) // (2 * denominator)


def prorate_cents(quantity_e4: int, unit_price_cents: int, days: int, period_days: int) -> int:
    """round_half_up(quantity × unit price × days ÷ period days), in exact integers."""
    if period_days <= 0 or not 0 <= days <= period_days:
        raise ValueError(f"{days} days do not fit a period of {period_days}")
    return _div_half_up(quantity_e4 * unit_price_cents * days, QUANTITY_SCALE * period_days)


def prorate_change_cents(old: tuple[int, int] | None, new: tuple[int, int] | None, days: int,
                         period_days: int) -> int:
    """An adjustment: round_half_up((new − old quantity × price) × days ÷ period days).

    The exact difference is rounded once, so "+4 seats for 10/30 days" is
    4 × price × 10 ÷ 30 rounded, not the difference of two rounded amounts.
    """
    if period_days <= 0 or not 0 <= days <= period_days:
        raise ValueError(f"{days} days do not fit a period of {period_days}")
    delta = (new[0] * new[1] if new else 0) - (old[0] * old[1] if old else 0)
    return _div_half_up(delta * days, QUANTITY_SCALE * period_days)


def percent_of(amount_cents: int, percent: object) -> int:
    """round_half_up(amount × percent ÷ 100), percent a Decimal (tax, discount)."""
    from decimal import Decimal

    from mspbill.money import round_half_up

    if not isinstance(percent, Decimal):
        raise TypeError("a percentage is a Decimal")
    return int(round_half_up(Decimal(amount_cents) * percent / 100))


def day_label(day: dt.date) -> str:
    """15 Nov — how an adjustment line names a date."""
    return f"{day.day} {calendar.month_abbr[day.month]}"
