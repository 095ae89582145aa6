"""Reports: what is owed and by whom (A/R aging), and the office's key figures (KPIs).

Every report is "as of" a day: what was known to have happened by the end of
that day (see mspbill.aging).  A day in the future is refused with a sentence:
nothing is known yet about it, and a projection dressed as a report would mislead.
"""

from __future__ import annotations

import datetime as dt

# The earliest day a report can be asked for (a typo such as 0026 gets a sentence, not an empty report).
EARLIEST_AS_OF = dt.date(2000, 1, 1)


class AsOfError(ValueError):
    """An "as of" day a report cannot be made for; the message says why and what to do."""


def check_as_of(as_of: dt.date, today: dt.date | None = None) -> dt.date:
    """`as_of` if a report can be made for it; AsOfError otherwise."""
    today = today or dt.date.today()
    if as_of > today:
        raise AsOfError(f"{as_of.isoformat()} is in the future; a report can be as of today "
                        f"({today.isoformat()}) or an earlier day.")
    if as_of < EARLIEST_AS_OF:
        raise AsOfError(f"{as_of.isoformat()} is before {EARLIEST_AS_OF.year}; check the year.")
    return as_of


def parse_as_of(text: str | None, today: dt.date | None = None) -> dt.date:
    """A day typed as YYYY-MM-DD, or "today"/blank; AsOfError with a sentence otherwise."""
    today = today or dt.date.today()
    cleaned = (text or "").strip()
    if cleaned.lower() in ("", "today"):
        return today
    try:
        day = dt.date.fromisoformat(cleaned)
    except ValueError:
        raise AsOfError(f"{cleaned[:40]!r} is not a date; write it as YYYY-MM-DD, for example "
                        f"{today.isoformat()}.") from None
    if len(cleaned) != 10:
        raise AsOfError(f"{cleaned[:40]!r} is not a date; write it as YYYY-MM-DD, for example "
                        f"{today.isoformat()}.")
    return check_as_of(day, today)
