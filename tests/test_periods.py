"""Billing periods, proration by days and period parsing (pure functions, no database)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing_helpers import half_up, prorated
from mspbill.db.models import QUANTITY_SCALE, BillingFrequency
from mspbill.generation import compute_totals
from mspbill.periods import (
    Month,
    Period,
    PeriodError,
    billing_period,
    day_label,
    next_period,
    parse_period,
    percent_of,
    prorate_cents,
)

# --- parsing what a person types ------------------------------------------------


@pytest.mark.parametrize("text", ["2026-11", "2026/11", "11/2026", "Nov 2026", "November 2026",
                                  " nov 2026 ", "NOVEMBER, 2026", "2026-11 ", "2026 Nov", "11-2026"])
def test_parse_period_accepts_the_ways_people_write_a_month(text: str) -> None:
    assert parse_period(text) == Month(2026, 11)


def test_parse_period_single_digit_month_and_september_abbreviation() -> None:
    assert parse_period("2026-3") == Month(2026, 3)
    assert parse_period("Sept 2026") == Month(2026, 9)


@pytest.mark.parametrize(("text", "needle"), [
    ("2026-13", "there is no month 13"),
    ("2026-00", "there is no month 0"),
    ("13/2026", "there is no month 13"),
    ("nov", "needs a year"),
    ("", "Enter a billing period"),
    ("   ", "Enter a billing period"),
    ("abc", "is not a billing period"),
    ("Novembr 2026", "is not a month"),
    ("1999-12", "the year must be between"),
    ("2026-11-15", "is not a billing period"),
])
def test_parse_period_refuses_with_a_message_saying_what_to_type(text: str, needle: str) -> None:
    with pytest.raises(PeriodError) as excinfo:
        parse_period(text)
    message = str(excinfo.value)
    assert needle in message
    assert "YYYY-MM" in message or "months run from 01 to 12" in message or "year must be" in message


def test_parse_period_needs_a_year_message_names_the_month() -> None:
    with pytest.raises(PeriodError) as excinfo:
        parse_period("nov")
    assert f"{dt.date.today().year}-11" in str(excinfo.value)


def test_month_helpers() -> None:
    m = Month(2026, 11)
    assert (m.first_day, m.last_day) == (dt.date(2026, 11, 1), dt.date(2026, 11, 30))
    assert Month(2028, 2).last_day == dt.date(2028, 2, 29)
    assert m.shift(2) == Month(2027, 1) and m.shift(-11) == Month(2025, 12) and m.shift(0) == m
    assert str(m) == "2026-11" and m.label == "November 2026"
    assert Month.of(dt.date(2026, 1, 31)) == Month(2026, 1)
    assert day_label(dt.date(2026, 11, 15)) == "15 Nov"


# --- calendar periods ----------------------------------------------------------------


@pytest.mark.parametrize(("frequency", "day", "start", "end", "label"), [
    (BillingFrequency.MONTHLY, "2026-11-15", "2026-11-01", "2026-11-30", "November 2026"),
    (BillingFrequency.MONTHLY, "2028-02-29", "2028-02-01", "2028-02-29", "February 2028"),
    (BillingFrequency.QUARTERLY, "2026-11-15", "2026-10-01", "2026-12-31", "Q4 2026"),
    (BillingFrequency.QUARTERLY, "2026-01-01", "2026-01-01", "2026-03-31", "Q1 2026"),
    (BillingFrequency.QUARTERLY, "2026-06-30", "2026-04-01", "2026-06-30", "Q2 2026"),
    (BillingFrequency.QUARTERLY, "2026-08-01", "2026-07-01", "2026-09-30", "Q3 2026"),
    (BillingFrequency.ANNUAL, "2026-11-15", "2026-01-01", "2026-12-31", "2026"),
])
def test_billing_periods_are_calendar_periods(frequency, day, start, end, label) -> None:
    period = billing_period(frequency, dt.date.fromisoformat(day))
    assert (period.start, period.end) == (dt.date.fromisoformat(start), dt.date.fromisoformat(end))
    assert period.label(frequency) == label
    assert dt.date.fromisoformat(day) in period and period.end + dt.timedelta(days=1) not in period


def test_period_lengths_and_next_period() -> None:
    assert billing_period(BillingFrequency.QUARTERLY, dt.date(2026, 11, 1)).days == 92
    assert billing_period(BillingFrequency.QUARTERLY, dt.date(2026, 2, 1)).days == 90
    assert billing_period(BillingFrequency.ANNUAL, dt.date(2028, 5, 1)).days == 366
    q4 = billing_period(BillingFrequency.QUARTERLY, dt.date(2026, 11, 1))
    assert next_period(BillingFrequency.QUARTERLY, q4) == Period(dt.date(2027, 1, 1), dt.date(2027, 3, 31))
    dec = billing_period(BillingFrequency.MONTHLY, dt.date(2026, 12, 5))
    assert next_period(BillingFrequency.MONTHLY, dec).start == dt.date(2027, 1, 1)


# --- proration ---------------------------------------------------------------------------


def _e4(quantity: str) -> int:
    return int(Decimal(quantity) * QUANTITY_SCALE)


@pytest.mark.parametrize(("quantity", "price_cents", "covered", "period_days"), [
    ("10", 5000, 22, 31),        # 10 seats from 10 Oct
    ("5", 5000, 16, 30),         # +5 from 15 Nov
    ("3.25", 9500, 7, 31),
    ("0.3333", 3, 1, 31),
    ("1", 1, 15, 30),            # exactly half a cent rounds up
    ("1", 75001, 47, 92),        # quarterly, from 15 Nov
    ("1", 18900, 47, 365),       # annual, from 15 Nov
    ("2", 9500, 31, 31),         # a whole period is the plain line amount
])
def test_prorate_cents_is_quantity_times_price_times_days_over_period_days(quantity, price_cents, covered,
                                                                           period_days) -> None:
    expected = prorated(quantity, str(Decimal(price_cents) / 100), covered, period_days)
    assert prorate_cents(_e4(quantity), price_cents, covered, period_days) == expected


def test_prorate_rounds_half_up_and_negative_halves_away_from_zero() -> None:
    assert prorate_cents(QUANTITY_SCALE, 1, 15, 30) == 1   # 0.5 → 1
    assert prorate_cents(QUANTITY_SCALE, 1, 14, 30) == 0   # 0.4666 → 0
    assert percent_of(-5, Decimal(10)) == -1                # -0.5 → -1 (half away from zero, as Decimal)
    assert percent_of(1000, Decimal("8.25")) == 83          # 82.5 → 83


@pytest.mark.parametrize(("covered", "period_days"), [(-1, 30), (31, 30), (1, 0)])
def test_prorate_refuses_days_that_do_not_fit(covered: int, period_days: int) -> None:
    with pytest.raises(ValueError):
        prorate_cents(QUANTITY_SCALE, 100, covered, period_days)


def test_percent_of_refuses_a_float() -> None:
    with pytest.raises(TypeError):
        percent_of(100, 8.25)


# --- properties -------------------------------------------------------------------------

quantities_e4 = st.integers(min_value=1, max_value=999_999 * QUANTITY_SCALE)
prices_cents = st.integers(min_value=0, max_value=99_999_999)
frequencies = st.sampled_from(list(BillingFrequency))
days_in_range = st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2099, 12, 31))


@settings(max_examples=100, deadline=None)
@given(quantities_e4, prices_cents, frequencies, days_in_range, st.data())
def test_a_period_split_anywhere_differs_from_the_whole_by_at_most_a_cent(q_e4, price, frequency, day, data) -> None:
    period = billing_period(frequency, day)
    split = data.draw(st.integers(min_value=1, max_value=period.days - 1), label="days in the first part")
    first = prorate_cents(q_e4, price, split, period.days)
    second = prorate_cents(q_e4, price, period.days - split, period.days)
    whole = prorate_cents(q_e4, price, period.days, period.days)
    assert whole == half_up(Decimal(q_e4) * price / QUANTITY_SCALE)
    assert abs(first + second - whole) <= 1
    # And each part is the rule computed independently with Decimal.
    assert first == half_up(Decimal(q_e4) * price * split / (QUANTITY_SCALE * period.days))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(min_value=-10**9, max_value=10**9), st.booleans()), max_size=30),
       st.decimals(min_value=0, max_value=Decimal("99.9999"), places=4))
def test_compute_totals_total_is_lines_plus_tax_on_taxable_lines(lines, rate) -> None:
    totals = compute_totals(lines, rate)
    assert totals.subtotal_cents == sum(a for a, _ in lines)
    assert totals.tax_cents == half_up(rate * sum(a for a, taxable in lines if taxable) / 100)
    assert totals.total_cents == totals.subtotal_cents + totals.tax_cents
