"""Money: parse what people type, integer minor units, no floats, half-up at the line."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mspbill.money import (
    COMMON_CURRENCIES,
    MAX_AMOUNT_CENTS,
    Money,
    MoneyError,
    format_amount,
    format_decimal,
    from_minor,
    line_amount_cents,
    minor_units,
    parse_amount,
    parse_decimal,
    round_half_up,
    to_minor,
)

# --- parse_amount: what a person types --------------------------------------


@pytest.mark.parametrize(("text", "cents"), [
    ("$1,000.00", 100_000),
    ("1000", 100_000),
    ("12.3", 1_230),
    ("12.30", 1_230),
    ("0.05", 5),
    (".5", 50),
    ("  42 ", 4_200),
    ("\u00a0$\u00a012.30", 1_230),  # a non-breaking space pasted from a spreadsheet
    ("USD 7", 700),
    ("7$", 700),
    ("+3", 300),
    ("1,000,000.99", 100_000_099),
    ("0", 0),
])
def test_parse_amount_accepts_what_people_type(text: str, cents: int) -> None:
    assert parse_amount(text) == cents


@pytest.mark.parametrize(("text", "cents"), [
    ("(5.00)", -500),
    ("($1,250.00)", -125_000),
    ("-5", -500),
    ("-$5.00", -500),
    ("$-5.00", -500),
])
def test_parse_amount_negative_only_when_allowed(text: str, cents: int) -> None:
    assert parse_amount(text, allow_negative=True) == cents
    with pytest.raises(MoneyError, match="negative"):
        parse_amount(text)


@pytest.mark.parametrize("text", [
    "12.345",      # more decimals than USD has
    "1e3",         # exponent
    "1E3",
    "",            # nothing
    "   ",
    "abc",
    "1,00",        # misplaced thousands separator (a European decimal comma?)
    "1000,000",
    "12,34",
    "1.000,00",    # European formatting is refused, not misread
    "5.",
    ".",
    "$",           # a symbol alone (once crashed with IndexError)
    "()",
    "(",
    "-",
    "--5",
    "1 2 3.4.5",
    "€5",          # another currency's symbol
    "CA$5",
    "12.3.4",
    "NaN",
    "Infinity",
    "0x10",
])
def test_parse_amount_refuses_ambiguous_or_malformed_text(text: str) -> None:
    with pytest.raises(MoneyError) as excinfo:
        parse_amount(text, allow_negative=True)
    # The message is a sentence for the user, not a traceback fragment.
    message = str(excinfo.value)
    assert " " in message and message.endswith("."), message


def test_parse_amount_message_explains_decimal_places() -> None:
    with pytest.raises(MoneyError, match="3 decimal places; USD amounts have at most 2"):
        parse_amount("12.345")


def test_parse_amount_zero_and_size_limits() -> None:
    with pytest.raises(MoneyError, match="more than zero"):
        parse_amount("0.00", allow_zero=False)
    assert parse_amount("99,999,999,999.99") == MAX_AMOUNT_CENTS - 1
    with pytest.raises(MoneyError, match="too large"):
        parse_amount("100,000,000,000.00")


def test_parse_amount_uses_the_currency_minor_unit() -> None:
    assert minor_units("JPY") == 0
    assert minor_units("jpy") == 0
    assert minor_units("USD") == 2
    assert minor_units("KWD") == 3
    assert parse_amount("1000", "JPY") == 1000
    assert parse_amount("¥1,000", "JPY") == 1000
    with pytest.raises(MoneyError, match="no decimal places"):
        parse_amount("12.5", "JPY")
    assert parse_amount("1.234", "KWD") == 1234
    assert parse_amount("€12.50", "EUR") == 1250


@pytest.mark.parametrize("bad", [1.5, 0.1, float("nan")])
def test_floats_are_refused_everywhere(bad: float) -> None:
    with pytest.raises(TypeError):
        to_minor(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        from_minor(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        line_amount_cents(bad, 100)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        line_amount_cents(Decimal(1), bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        parse_amount(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        parse_decimal(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        round_half_up(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Money(bad, "USD")  # type: ignore[arg-type]


def test_other_non_money_types_are_refused() -> None:
    with pytest.raises(TypeError):
        to_minor(5)  # type: ignore[arg-type]  # an int here would be ambiguous: dollars or cents?
    with pytest.raises(TypeError):
        from_minor(Decimal(5))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        from_minor(True)
    with pytest.raises(TypeError):
        Money(True, "USD")
    with pytest.raises(TypeError):
        parse_amount(500)  # type: ignore[arg-type]


# --- conversion and rounding --------------------------------------------------


def test_to_minor_and_from_minor() -> None:
    assert to_minor(Decimal("12.34")) == 1234
    assert to_minor(Decimal("1.005")) == 101  # half up, not banker's
    assert to_minor(Decimal("-1.005")) == -101  # half away from zero
    assert to_minor(Decimal("1234"), "JPY") == 1234
    assert to_minor(Decimal("1234.5"), "JPY") == 1235
    assert from_minor(1234) == Decimal("12.34")
    assert from_minor(1234, "JPY") == Decimal(1234)
    assert from_minor(1234, "KWD") == Decimal("1.234")


@pytest.mark.parametrize(("quantity", "unit_cents", "expected"), [
    ("0.5", 1, 1),       # exactly half a cent rounds up
    ("1.5", 1, 2),
    ("2.5", 1, 3),       # banker's rounding would give 2
    ("0.49", 1, 0),
    ("0.3333", 3, 1),
    ("1", 4500, 4500),
    ("3.25", 9500, 30875),
    ("7.5", 16500, 123750),
    ("0.0001", 4999, 0),
    ("0.0001", 5000, 1),
    ("12", 0, 0),
])
def test_line_amount_rounds_half_up_once(quantity: str, unit_cents: int, expected: int) -> None:
    assert line_amount_cents(Decimal(quantity), unit_cents) == expected


def test_round_half_up() -> None:
    assert round_half_up(Decimal("2.5")) == Decimal(3)
    assert round_half_up(Decimal("2.345"), 2) == Decimal("2.35")
    assert round_half_up(Decimal("-2.5")) == Decimal(-3)


# --- Money -----------------------------------------------------------------


def test_money_adds_only_the_same_currency() -> None:
    assert Money(150, "USD") + Money(250, "USD") == Money(400, "USD")
    assert Money(150, "USD") - Money(250, "USD") == Money(-100, "USD")
    assert -Money(5, "EUR") == Money(-5, "EUR")
    with pytest.raises(ValueError, match="EUR"):
        Money(100, "USD") + Money(100, "EUR")
    with pytest.raises(ValueError):
        Money(100, "USD") - Money(100, "JPY")
    with pytest.raises(TypeError):
        Money(100, "USD") + 5  # type: ignore[operator]
    with pytest.raises(ValueError):
        Money(1, "usd")
    with pytest.raises(ValueError):
        Money(1, "DOLLARS")


def test_money_amount_and_str() -> None:
    assert Money(123456, "USD").amount == Decimal("1234.56")
    assert str(Money(123456, "USD")) == "$1,234.56"
    assert str(Money(-500, "JPY")) == "-¥500"


def test_money_is_immutable() -> None:
    money = Money(1, "USD")
    with pytest.raises(AttributeError):
        money.cents = 2  # type: ignore[misc]


# --- formatting --------------------------------------------------------------


@pytest.mark.parametrize(("cents", "currency", "text"), [
    (1_234_567, "USD", "$12,345.67"),
    (-500, "USD", "-$5.00"),
    (-1, "USD", "-$0.01"),
    (0, "USD", "$0.00"),
    (1_234_567, "EUR", "€12,345.67"),
    (1_234_567, "JPY", "¥1,234,567"),
    (123_456_789, "KWD", "123,456.789 KWD"),
    (100, "CHF", "1.00 CHF"),
    (5, "GBP", "£0.05"),
])
def test_format_amount(cents: int, currency: str, text: str) -> None:
    assert format_amount(cents, currency) == text


def test_format_amount_without_symbol() -> None:
    assert format_amount(-123456, "USD", symbol=False) == "-1,234.56"


def test_format_decimal() -> None:
    assert format_decimal(Decimal("10.00")) == "10"
    assert format_decimal(Decimal("2.50")) == "2.5"
    assert format_decimal(Decimal("100")) == "100"
    assert format_decimal(Decimal("0.0001")) == "0.0001"


# --- parse_decimal (quantities, rates) ----------------------------------------


@pytest.mark.parametrize(("text", "value"), [
    ("2.5", Decimal("2.5")),
    ("10", Decimal(10)),
    (" 0.25 ", Decimal("0.25")),
    ("1,000", Decimal(1000)),
    ("1,000.5", Decimal("1000.5")),
    (".75", Decimal("0.75")),
])
def test_parse_decimal_accepts(text: str, value: Decimal) -> None:
    assert parse_decimal(text) == value


@pytest.mark.parametrize("text", [
    "", "abc", "1e3", "2.12345",  # five places, the limit is four
    "1,5",    # a European decimal comma must not silently become fifteen
    "12,34",
    "1,0000",
    "NaN", "inf", "1_000",
])
def test_parse_decimal_refuses(text: str) -> None:
    with pytest.raises(MoneyError):
        parse_decimal(text)


# --- properties -----------------------------------------------------------

_CURRENCIES = st.sampled_from(sorted(set(COMMON_CURRENCIES) | {"KWD", "BHD", "CLP", "XYZ"}))
_CENTS = st.integers(min_value=-(MAX_AMOUNT_CENTS - 1), max_value=MAX_AMOUNT_CENTS - 1)


@settings(max_examples=300, deadline=None)
@given(cents=_CENTS, currency=_CURRENCIES, symbol=st.booleans())
def test_format_then_parse_round_trips(cents: int, currency: str, symbol: bool) -> None:
    text = format_amount(cents, currency, symbol=symbol)
    assert parse_amount(text, currency, allow_negative=True) == cents


@settings(max_examples=300, deadline=None)
@given(cents=_CENTS, currency=_CURRENCIES)
def test_minor_units_round_trip(cents: int, currency: str) -> None:
    assert to_minor(from_minor(cents, currency), currency) == cents


@settings(max_examples=300, deadline=None)
@given(quantity=st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(100_000), places=4,
                            allow_nan=False, allow_infinity=False),
       unit_cents=st.integers(min_value=0, max_value=10**9))
def test_line_amount_is_exact_half_up_rounding(quantity: Decimal, unit_cents: int) -> None:
    exact = Fraction(quantity) * unit_cents
    floor = exact.numerator // exact.denominator
    expected = floor + (1 if exact - floor >= Fraction(1, 2) else 0)
    assert line_amount_cents(quantity, unit_cents) == expected


@settings(max_examples=200, deadline=None)
@given(a=_CENTS, b=_CENTS, currency=_CURRENCIES)
def test_money_addition_matches_integer_addition(a: int, b: int, currency: str) -> None:
    assert (Money(a, currency) + Money(b, currency)).cents == a + b


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet="0123456789.,$()-+ eE", max_size=14))
def test_parse_amount_either_refuses_or_agrees_with_exact_decimal(text: str) -> None:
    """Whatever parses must mean exactly what a plain reading of the digits says."""
    try:
        cents = parse_amount(text, allow_negative=True)
    except MoneyError:
        return
    body = text.replace(" ", "").replace("$", "").replace("(", "").replace(")", "")
    body = body.replace(",", "").lstrip("+-")
    negative = "-" in text or "(" in text
    assert "e" not in text.lower()
    assert abs(cents) == int(Decimal(body) * 100)
    assert (cents < 0) == (negative and cents != 0)


@pytest.mark.parametrize("digits", [27, 28, 40, 400])
def test_an_absurdly_long_amount_is_too_large_not_a_crash(digits: int) -> None:
    with pytest.raises(MoneyError, match="too large"):
        parse_amount("9" * digits)
    with pytest.raises(MoneyError, match="too large"):
        parse_amount("-" + "1" * digits + ".25", allow_negative=True)
