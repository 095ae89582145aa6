"""Money: integer minor units in storage, Decimal in code, never float.

Rounding happens once, explicitly, ROUND_HALF_UP, at the line
(DESIGN.md house rule 4).  User input is parsed here so that every screen,
import and command accepts and refuses the same things.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

# ISO 4217 currencies whose minor unit is not 2 decimal places.
_MINOR_UNIT_EXCEPTIONS: dict[str, int] = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0,
    "KRW": 0, "PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0,
    "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}

# Currencies offered in pickers; any valid 3-letter code is accepted.
COMMON_CURRENCIES: tuple[str, ...] = (
    "USD", "CAD", "EUR", "GBP", "AUD", "NZD", "CHF", "SEK", "NOK", "DKK",
    "JPY", "SGD", "HKD", "ZAR", "MXN", "INR",
)

_SYMBOLS: dict[str, str] = {
    "USD": "$", "CAD": "CA$", "AUD": "A$", "NZD": "NZ$", "EUR": "€",
    "GBP": "£", "JPY": "¥", "INR": "₹", "HKD": "HK$", "SGD": "S$", "MXN": "MX$",
}

MAX_AMOUNT_CENTS = 10**13  # 100 billion in major units: beyond any MSP invoice


class MoneyError(ValueError):
    """A value a person typed that is not an amount; the message says why."""


def minor_units(currency: str) -> int:
    """Number of decimal places of the currency's minor unit (USD: 2, JPY: 0)."""
    return _MINOR_UNIT_EXCEPTIONS.get(currency.upper(), 2)


def is_valid_currency(code: str) -> bool:
    return bool(re.fullmatch(r"[A-Z]{3}", code or ""))


def _refuse_float(value: object) -> None:
    if isinstance(value, float):
        raise TypeError("money is never a float: pass a Decimal, an int of cents or a string")


def round_half_up(value: Decimal, places: int = 0) -> Decimal:
    _refuse_float(value)
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def to_minor(amount: Decimal, currency: str = "USD") -> int:
    """Major-unit Decimal to integer minor units, rounding half-up once."""
    _refuse_float(amount)
    if not isinstance(amount, Decimal):
        raise TypeError(f"expected Decimal, got {type(amount).__name__}")
    scaled = amount.scaleb(minor_units(currency))
    return int(scaled.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def from_minor(cents: int, currency: str = "USD") -> Decimal:
    _refuse_float(cents)
    if not isinstance(cents, int) or isinstance(cents, bool):
        raise TypeError(f"expected int minor units, got {type(cents).__name__}")
    return Decimal(cents).scaleb(-minor_units(currency))


_ONE = Decimal(1)


def line_amount_cents(quantity: Decimal, unit_price_cents: int) -> int:
    """Line amount = round_half_up(quantity × unit price), in minor units."""
    if isinstance(quantity, float) or isinstance(unit_price_cents, float):
        raise TypeError("money is never a float: pass a Decimal, an int of cents or a string")
    return int((quantity * unit_price_cents).quantize(_ONE, rounding=ROUND_HALF_UP))


_AMOUNT_RE = re.compile(
    r"""^(?P<sign>[-+])?
        (?P<int>\d{1,3}(?:,\d{3})+|\d+)?
        (?:\.(?P<frac>\d+))?$""",
    re.VERBOSE,
)


def _normalise_number_text(text: str, symbols: tuple[str, ...]) -> tuple[str, bool]:
    """Strip blanks, a currency symbol or code, and accounting parentheses."""
    s = text.strip().replace("\u00a0", "").replace(" ", "")
    negative_parens = s.startswith("(") and s.endswith(")")
    if negative_parens:
        s = s[1:-1]
    sign = ""
    if s[:1] in ("+", "-"):  # a tuple: "" in "+-" would be True
        sign, s = s[0], s[1:]
    for sym in symbols:
        if sym and s.upper().startswith(sym.upper()):
            s = s[len(sym):]
            break
        if sym and s.upper().endswith(sym.upper()):
            s = s[: -len(sym)]
            break
    if s[:1] in ("+", "-") and not sign:
        sign, s = s[0], s[1:]
    return sign + s, negative_parens


def parse_amount(text: str, currency: str = "USD", *, allow_negative: bool = False,
                 allow_zero: bool = True) -> int:
    """Parse what a person typed ("$1,000.00", "12.3", "1000") into minor units.

    Refuses anything ambiguous: more decimals than the currency has
    ("12.345"), exponents ("1e3"), misplaced thousands separators, other
    currencies' symbols.  Raises MoneyError with a sentence to show the user.
    """
    _refuse_float(text)
    if not isinstance(text, str):
        raise TypeError("parse_amount takes the text a person typed")
    if not text.strip():
        raise MoneyError("Enter an amount.")
    cur = currency.upper()
    symbols = tuple(s for s in (_SYMBOLS.get(cur, ""), cur, "$") if s)
    s, parens = _normalise_number_text(text, symbols)
    m = _AMOUNT_RE.match(s)
    if not m or (m.group("int") is None and m.group("frac") is None):
        raise MoneyError(f"“{text.strip()}” is not an amount; type it like 1250.00.")
    places = minor_units(cur)
    frac = m.group("frac") or ""
    if len(frac) > places:
        if places == 0:
            raise MoneyError(f"{cur} amounts have no decimal places; “{text.strip()}” has {len(frac)}.")
        raise MoneyError(
            f"“{text.strip()}” has {len(frac)} decimal places; {cur} amounts have at most {places}.")
    digits = (m.group("int") or "0").replace(",", "")
    if len(digits.lstrip("0")) > 18:
        # Far past any limit, and past what Decimal's default precision can scale and round.
        raise MoneyError("That amount is too large.")
    value = Decimal(f"{digits}.{frac or '0'}")
    negative = parens or m.group("sign") == "-"
    cents = to_minor(value, cur)
    if negative:
        cents = -cents
    if cents < 0 and not allow_negative:
        raise MoneyError("The amount cannot be negative.")
    if cents == 0 and not allow_zero:
        raise MoneyError("The amount must be more than zero.")
    if abs(cents) >= MAX_AMOUNT_CENTS:
        raise MoneyError("That amount is too large.")
    return cents


def parse_decimal(text: str, *, what: str = "value", max_places: int = 4) -> Decimal:
    """Parse a plain decimal number (a quantity, a rate).  Exponents are refused."""
    _refuse_float(text)
    if not isinstance(text, str):
        text = str(text)
    s = text.strip()
    if not s:
        raise MoneyError(f"Enter a {what}.")
    # Commas only as thousands separators: "1,5" is a decimal comma, not fifteen.
    if not re.fullmatch(r"[-+]?((\d{1,3}(,\d{3})+|\d+)(\.\d*)?|\.\d+)", s):
        raise MoneyError(f"“{text.strip()}” is not a number; type it like 12.5.")
    s = s.replace(",", "")
    try:
        value = Decimal(s)
    except InvalidOperation:  # pragma: no cover - the regex admits only valid text
        raise MoneyError(f"“{text.strip()}” is not a number.") from None
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > max_places:
        raise MoneyError(f"A {what} has at most {max_places} decimal places.")
    if abs(value) >= Decimal(10) ** 9:
        raise MoneyError(f"That {what} is too large.")
    return value


def format_amount(cents: int, currency: str = "USD", *, symbol: bool = True) -> str:
    """1234567 USD → "$12,345.67"; -500 → "-$5.00"; EUR → "€12,345.67"."""
    cur = currency.upper()
    value = from_minor(cents, cur)
    places = minor_units(cur)
    body = f"{abs(value):,.{places}f}"
    sign = "-" if cents < 0 else ""
    if not symbol:
        return f"{sign}{body}"
    sym = _SYMBOLS.get(cur)
    if sym:
        return f"{sign}{sym}{body}"
    return f"{sign}{body} {cur}"


def format_decimal(value: Decimal) -> str:
    """A quantity for display: 10 → "10", 2.50 → "2.5"."""
    normalised = value.normalize()
    if normalised == normalised.to_integral():
        return f"{normalised.quantize(Decimal(1))}"
    return f"{normalised:f}"


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in one currency; adding two currencies is an error, not a sum."""

    cents: int
    currency: str

    def __post_init__(self) -> None:
        _refuse_float(self.cents)
        if not isinstance(self.cents, int) or isinstance(self.cents, bool):
            raise TypeError("Money.cents must be an int of minor units")
        if not is_valid_currency(self.currency):
            raise ValueError(f"not an ISO 4217 currency code: {self.currency!r}")

    def _check(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError("Money adds only to Money")
        if other.currency != self.currency:
            raise ValueError(f"cannot add {other.currency} to {self.currency}")

    def __add__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.cents + other.cents, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.cents - other.cents, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.cents, self.currency)

    @property
    def amount(self) -> Decimal:
        return from_minor(self.cents, self.currency)

    def __str__(self) -> str:
        return format_amount(self.cents, self.currency)
