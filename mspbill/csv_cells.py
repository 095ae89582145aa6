"""Text cells of the CSV files mspbill writes for spreadsheets (the month-end preview, A/R aging)."""

from __future__ import annotations

# What a spreadsheet reads as the start of a formula (and tab/CR, which some strip before looking).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def formula_safe(value: str) -> str:
    """A text cell a spreadsheet shows as text: a client named "=HYPERLINK(...)" must not run as a formula.

    Only for text that people typed; amounts we write ourselves stay plain numbers (a negative
    one through here would become the text "'-12.50")."""
    return "'" + value if value[:1] in FORMULA_STARTS else value
