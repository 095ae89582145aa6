"""What the client and agreement imports share: reading a mapped cell, matching keys,
turning a form's Issue into a Problem at the right column."""

from __future__ import annotations

import unicodedata

from sqlalchemy.orm import Session

from mspbill.imports.cells import unformula
from mspbill.imports.mapping import ColumnMapping
from mspbill.imports.plan import Problem
from mspbill.imports.reading import CsvRecord, CsvTable


def name_key(text: str) -> str:
    """Names compare without case, accents' encoding (NFC) or runs of blanks: "ACME  inc" is "Acme Inc"."""
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


def email_keys(text: str) -> list[str]:
    parts = text.replace(";", ",").replace(" ", ",").split(",")
    return [p.strip().casefold() for p in parts if p.strip()]


class Cells:
    """The mapped cells of one record, as text (outer blanks off, our exports' formula guard undone)."""

    def __init__(self, table: CsvTable, mapping: ColumnMapping, record: CsvRecord):
        self._table, self._mapping, self.record = table, mapping, record

    def __getitem__(self, key: str) -> str:
        col = self._mapping.get(key)
        if col is None:
            return ""
        return unformula(self.record.cells[col].strip())

    def has(self, key: str) -> bool:
        return key in self._mapping

    def column(self, key: str) -> str:
        col = self._mapping.get(key)
        return self._table.headers[col] if col is not None else ""


def company_defaults(session: Session) -> tuple[str, str]:
    """(currency, payment terms in days) of the company: what a row without them gets, as the form does."""
    from mspbill.company import company_snapshot

    snap = company_snapshot(session)
    if snap is None:
        return "USD", "30"
    return snap.draft.currency or "USD", snap.draft.default_payment_terms_days or "30"


def overlong_problems(table: CsvTable) -> dict[int, Problem]:
    width = len(table.headers)
    return {line: Problem(line, "", f"This row has {count} cells but the header has {width} columns; a value that "
                                    f"contains the separator ({table.separator_name}) needs quotes around it.")
            for line, count in table.overlong}
