"""Turning the text of one cell into what the forms accept: dates in the common written
forms, yes/no, "Net 30", numbers with a decimal comma, and text a spreadsheet had
marked as "not a formula".

Dates.  ISO (2026-03-04) is always read as such; 04.03.2026 (dots) is day first, the
European way; with slashes or dashes, 13/04/2026 can only be day first and 04/13/2026
only month first.  A date like 03/04/2026 could be either: the file decides when its
other dates show the order (a file is written one way), the person decides with the
date order option, and otherwise the row is refused with a sentence saying so.  Nothing
is ever guessed silently.

Numbers.  A comma followed by one or two digits at the end ("12,5", "1.250,00") is a
decimal comma (Excel in European locales); a comma followed by three digits ("1,250")
separates thousands, as the money parser expects.  Amounts stay text here and become
integer cents in mspbill.money, never a float.
"""

from __future__ import annotations

import datetime as dt
import re

from mspbill.csv_cells import FORMULA_STARTS

DATE_ORDERS = {"auto": "Automatic", "mdy": "Month first (03/04 = March 4)", "dmy": "Day first (03/04 = 3 April)"}


class CellError(ValueError):
    """The cell cannot be read; the message is a sentence for the person."""


class AmbiguousDate(CellError):
    pass


def unformula(text: str) -> str:
    """Undo formula_safe: "'=SUM(A1)" as written by our exports (or typed in Excel) is "=SUM(A1)".

    The value is stored as given; every CSV mspbill writes goes through formula_safe again,
    so it never reaches a spreadsheet as a live formula.  A plain leading apostrophe before
    anything else is kept: it is part of the name.
    """
    if len(text) > 1 and text[0] == "'" and text[1] in FORMULA_STARTS:
        return text[1:]
    return text


def looks_like_formula(text: str) -> bool:
    return text[:1] in ("=", "@") or (text[:1] in ("+", "-") and not re.fullmatch(r"[+-][\d\s().-]*", text))


_ISO = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?")
_ISO_SLASH = re.compile(r"(\d{4})/(\d{1,2})/(\d{1,2})")
_DOTS = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{2}|\d{4})")
_NUMERIC = re.compile(r"(\d{1,2})[/-](\d{1,2})[/-](\d{2}|\d{4})(?: \d{1,2}:\d{2}(?::\d{2})?(?: ?[AP]M)?)?",
                      re.IGNORECASE)
_MONTHS = {m: i + 1 for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])}
_NAMED = re.compile(r"(\d{1,2})[ -]([A-Za-z]{3,9})\.?[ -,]*(\d{4})|([A-Za-z]{3,9})\.? (\d{1,2}),? (\d{4})")


# Years a date in an import may have: older or later is a typing slip ("1/1/0026", "2/3/2206").
FIRST_YEAR, LAST_YEAR = 1990, 2100


def _year(text: str) -> int:
    """A two-digit year is 2000-2089 for 00-89 and 1990-1999 for 90-99 (spreadsheets' own pivot)."""
    y = int(text)
    if len(text) == 2:
        return 2000 + y if y < 90 else 1900 + y
    return y


def _check_year(y: int, text: str) -> None:
    if not FIRST_YEAR <= y <= LAST_YEAR:
        hint = " Write the year with four digits, for example 2026." if y < 1000 else " Check the year."
        raise CellError(f"“{text}” has the year {y:04d}; dates in an import are from {FIRST_YEAR} to "
                        f"{LAST_YEAR}.{hint}")


def _make(y: int, m: int, d: int, text: str) -> dt.date:
    _check_year(y, text)
    try:
        return dt.date(y, m, d)
    except ValueError:
        raise CellError(f"“{text}” is not a date that exists.") from None


def date_order_hint(text: str) -> str | None:
    """"dmy" or "mdy" when this date's written form settles the order; None when it does not."""
    m = _NUMERIC.fullmatch(text.strip())
    if not m:
        return None
    a, b = int(m.group(1)), int(m.group(2))
    if a > 12 and b <= 12:
        return "dmy"
    if b > 12 and a <= 12:
        return "mdy"
    return None


def parse_date_cell(text: str, order: str = "auto") -> dt.date | None:
    """The date in a cell (None when blank).  `order` is "auto", "mdy" or "dmy"."""
    s = text.strip()
    if not s:
        return None
    for pattern, parts in ((_ISO, (1, 2, 3)), (_ISO_SLASH, (1, 2, 3))):
        m = pattern.fullmatch(s)
        if m:
            return _make(int(m.group(parts[0])), int(m.group(parts[1])), int(m.group(parts[2])), s)
    m = _DOTS.fullmatch(s)
    if m:
        return _make(_year(m.group(3)), int(m.group(2)), int(m.group(1)), s)
    m = _NUMERIC.fullmatch(s)
    if m:
        a, b, y = int(m.group(1)), int(m.group(2)), _year(m.group(3))
        _check_year(y, s)  # "03/04/0026" is a slip of the year before it is a question of order
        hint = date_order_hint(s)
        use = order if order in ("mdy", "dmy") else hint
        if use is None:
            if a == b:
                return _make(y, a, b, s)
            raise AmbiguousDate(
                f"“{s}” could be {_make_name(y, a, b)} or {_make_name(y, b, a)}; choose the date order "
                "(month first or day first), or write dates as YYYY-MM-DD.")
        if use == "dmy":
            return _make(y, b, a, s)
        return _make(y, a, b, s)
    m = _NAMED.fullmatch(s)
    if m:
        if m.group(1):
            day, month_text, year = int(m.group(1)), m.group(2), int(m.group(3))
        else:
            month_text, day, year = m.group(4), int(m.group(5)), int(m.group(6))
        month = _MONTHS.get(month_text[:3].lower())
        if month is not None:
            return _make(year, month, day, s)
    raise CellError(f"“{s}” is not a date; write it as YYYY-MM-DD (2026-03-04), 03/04/2026 or 04.03.2026.")


def _make_name(y: int, m: int, d: int) -> str:
    try:
        day = dt.date(y, m, d)
        return f"{day.day} {day.strftime('%B')} {day.year}"
    except ValueError:
        return f"{y}-{m:02d}-{d:02d}"


_TRUE = {"yes", "y", "true", "t", "1", "x", "on", "taxable", "tax", "enabled", "active", "autopay", "✓", "✔"}
_FALSE = {"no", "n", "false", "f", "0", "off", "non", "none", "nontaxable", "non-taxable", "exempt",
          "tax exempt", "tax-exempt", "disabled", "-"}


def parse_yes_no(text: str, what: str, default: bool) -> bool:
    s = text.strip().casefold()
    if not s:
        return default
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise CellError(f"“{text.strip()}” is not yes or no (for {what}).")


_NET = re.compile(r"(?:net|n)\s*[- ]?\s*(\d+)(?:\s*days?)?|(\d+)\s*(?:days?|d)(?:\s*net)?", re.IGNORECASE)
_ON_RECEIPT = {"due on receipt", "due upon receipt", "upon receipt", "on receipt", "receipt", "cod", "c.o.d.",
               "immediate", "immediately", "net 0", "due now", "cash"}


def terms_text(text: str) -> str:
    """"Net 30", "30 days", "N30" -> "30"; "Due on receipt" -> "0"; anything else as typed (the form says why)."""
    s = text.strip()
    if s.casefold() in _ON_RECEIPT:
        return "0"
    m = _NET.fullmatch(s)
    if m:
        return m.group(1) or m.group(2)
    return s


_DECIMAL_COMMA = re.compile(r"([-+(]?[^\d,.]*)(\d{1,3}(?:[. \u00a0']\d{3})+|\d+),(\d{1,2})([^\d,.]*\)?)")


def number_text(text: str) -> str:
    """A number as the money and decimal parsers expect it: "1.250,00 €" -> "1250.00 €", "12,5" -> "12.5".

    Only a comma followed by one or two digits at the end is taken for a decimal comma;
    "1,250" stays as written (a thousands separator)."""
    s = text.strip()
    m = _DECIMAL_COMMA.fullmatch(s)
    if m:
        whole = re.sub(r"[. \u00a0']", "", m.group(2))
        return f"{m.group(1)}{whole}.{m.group(3)}{m.group(4)}".strip()
    return s


_FREQUENCIES = {
    "monthly": "monthly", "month": "monthly", "months": "monthly", "m": "monthly", "mo": "monthly",
    "every month": "monthly", "1 month": "monthly", "per month": "monthly", "mensuel": "monthly",
    "monatlich": "monthly",
    "quarterly": "quarterly", "quarter": "quarterly", "q": "quarterly", "qtr": "quarterly",
    "every 3 months": "quarterly", "3 months": "quarterly", "per quarter": "quarterly",
    "annual": "annual", "annually": "annual", "yearly": "annual", "year": "annual", "y": "annual",
    "a": "annual", "yr": "annual", "per year": "annual", "every year": "annual", "12 months": "annual",
    "jährlich": "annual", "vierteljährlich": "quarterly",
}


def frequency_text(text: str) -> str:
    """"Monthly", "Quarter", "Yearly" -> monthly/quarterly/annual; blank -> monthly; else as typed."""
    s = " ".join(text.strip().casefold().split())
    if not s:
        return "monthly"
    return _FREQUENCIES.get(s, s)
