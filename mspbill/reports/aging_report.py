"""The A/R aging report: what each client owed as of a day, by how long past due, per currency.

Built on mspbill.aging (open_items and credit_as_of hold every definition of a
balance as of a day); this module only groups what they return, in one pass.
A client's row holds its open balances in five buckets (current, 1–30, 31–60,
61–90 and over 90 days past due) and the client credit it held that day.
A client with credit and nothing open is listed (the office holds money of
theirs); a client with neither is not.

Each currency is its own section, the company's currency first, then the others
alphabetically: amounts in different currencies are never added (house rule 4).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mspbill.aging import (
    BUCKETS,
    AgingTotals,
    OpenItem,
    bucket_index,
    credit_as_of,
    open_items,
)
from mspbill.csv_cells import formula_safe
from mspbill.db.models import Client, CompanyProfile
from mspbill.money import format_amount, from_minor
from mspbill.reports import check_as_of
from mspbill.validation import NotFoundError

Buckets = tuple[int, int, int, int, int]


@dataclass(frozen=True)
class ClientAging:
    """One client's row: open balances per bucket (cents, in the order of aging.BUCKETS)."""

    client_id: int
    client_name: str
    currency: str
    buckets: Buckets
    total_cents: int
    invoice_count: int
    oldest_days_past_due: int  # the most days any open invoice was past due; 0 when none was
    credit_cents: int          # client credit held as of the day (not taken off the buckets)

    @property
    def net_cents(self) -> int:
        """What the client owed less the credit it held."""
        return self.total_cents - self.credit_cents


@dataclass(frozen=True)
class CurrencyAging:
    """The clients billed in one currency, largest balance first, and their totals."""

    currency: str
    rows: tuple[ClientAging, ...]
    totals: AgingTotals   # per bucket over the rows; totals.count is the number of open invoices
    credit_cents: int
    client_count: int     # clients with at least one open invoice (credit-only rows are not counted)

    @property
    def total_cents(self) -> int:
        return self.totals.total_cents

    @property
    def oldest_days_past_due(self) -> int:
        return max((r.oldest_days_past_due for r in self.rows), default=0)


@dataclass(frozen=True)
class AgingReport:
    as_of: dt.date
    company_currency: str
    sections: tuple[CurrencyAging, ...]  # the company's currency first, then alphabetically

    def section(self, currency: str) -> CurrencyAging | None:
        return next((s for s in self.sections if s.currency == currency), None)

    @property
    def is_empty(self) -> bool:
        """Nobody owed anything and nobody held credit."""
        return not self.sections

    @property
    def nothing_owed(self) -> bool:
        """No open invoice in any currency (credit may still be held)."""
        return all(s.totals.count == 0 for s in self.sections)

    @property
    def other_currencies(self) -> tuple[str, ...]:
        """Currencies other than the company's that have a section (never added to its totals)."""
        return tuple(s.currency for s in self.sections if s.currency != self.company_currency)


# --- reading ---------------------------------------------------------------------------

def company_currency(session: Session) -> str:
    return session.scalar(select(CompanyProfile.currency).where(CompanyProfile.id == 1)) or "USD"


class _Row:
    """A client's sums while the items go by."""

    __slots__ = ("count", "credit", "name", "oldest", "sums")

    def __init__(self, name: str) -> None:
        self.name = name
        self.sums = [0, 0, 0, 0, 0]
        self.count = 0
        self.oldest = 0
        self.credit = 0


def _client_facts(session: Session, client_ids: Sequence[int]) -> dict[int, tuple[str, str]]:
    """client id → (name, currency), read in chunks that any database's IN list takes."""
    out: dict[int, tuple[str, str]] = {}
    for start in range(0, len(client_ids), 500):
        chunk = client_ids[start:start + 500]
        for cid, name, currency in session.execute(
                select(Client.id, Client.legal_name, Client.currency).where(Client.id.in_(chunk))):
            out[int(cid)] = (name, currency)
    return out


def aging_report(session: Session, as_of: dt.date, *, today: dt.date | None = None) -> AgingReport:
    """The A/R aging report as of the end of `as_of` (today at the latest; AsOfError otherwise)."""
    check_as_of(as_of, today)
    rows: dict[tuple[int, str], _Row] = {}
    for item in open_items(session, as_of):  # one pass: 50,000 invoices are one query and one loop
        row = rows.get((item.client_id, item.currency))
        if row is None:
            row = rows[(item.client_id, item.currency)] = _Row(item.client_name)
        row.sums[bucket_index(item.days_past_due)] += item.balance_cents
        row.count += 1
        row.oldest = max(row.oldest, item.days_past_due)
    credit = credit_as_of(session, as_of)
    if credit:
        # Credit is held in the client's own currency.
        facts = _client_facts(session, sorted(credit))
        for cid, cents in credit.items():
            if cid not in facts:
                continue
            name, currency = facts[cid]
            row = rows.get((cid, currency))
            if row is None:
                row = rows[(cid, currency)] = _Row(name)
            row.credit += cents
    home = company_currency(session)
    grouped: dict[str, list[ClientAging]] = {}
    for (cid, currency), row in rows.items():
        s = row.sums
        grouped.setdefault(currency, []).append(ClientAging(
            cid, row.name, currency, (s[0], s[1], s[2], s[3], s[4]), sum(s), row.count, row.oldest, row.credit))
    sections = []
    for currency in sorted(grouped, key=lambda c: (c != home, c)):
        clients = sorted(grouped[currency], key=lambda r: (-r.total_cents, r.client_name.casefold(), r.client_id))
        sections.append(_section(currency, clients))
    return AgingReport(as_of, home, tuple(sections))


def _section(currency: str, clients: list[ClientAging]) -> CurrencyAging:
    sums = [0, 0, 0, 0, 0]
    for r in clients:
        for i, cents in enumerate(r.buckets):
            sums[i] += cents
    totals = AgingTotals(currency, (sums[0], sums[1], sums[2], sums[3], sums[4]),
                         sum(r.invoice_count for r in clients))
    return CurrencyAging(currency, tuple(clients), totals, sum(r.credit_cents for r in clients),
                         sum(1 for r in clients if r.invoice_count))


def client_items(session: Session, as_of: dt.date, client_id: int, *,
                 today: dt.date | None = None) -> list[OpenItem]:
    """The drill-down: the client's invoices open as of `as_of`, oldest due date first."""
    check_as_of(as_of, today)
    if session.get(Client, client_id) is None:
        raise NotFoundError(f"There is no client with ID {client_id}.")
    return open_items(session, as_of, client_id)


# --- CSV -------------------------------------------------------------------------------

CSV_HEADERS = ("Client", "Currency", *(b.label for b in BUCKETS), "Total", "Credit", "Invoices",
               "Oldest days past due")
ITEMS_CSV_HEADERS = ("Invoice", "Issued", "Due", "Days past due", "Bucket", "Total", "Balance")


def _number(cents: int, currency: str) -> str:
    # A plain number in the currency's own units (JPY has no decimals), never through formula_safe:
    # it is ours, and a negative one must stay a number.
    return f"{from_minor(cents, currency):f}"


def _csv_bytes(rows: Iterable[Sequence[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows(rows)
    # With a byte-order mark: Excel then reads the clients' names as UTF-8.
    return out.getvalue().encode("utf-8-sig")


def aging_csv(report: AgingReport) -> bytes:
    """One row per client and a Total row per currency (currencies are never added together)."""
    lines: list[Sequence[str]] = [CSV_HEADERS]
    for section in report.sections:
        cur = section.currency
        for r in section.rows:
            lines.append([formula_safe(r.client_name), formula_safe(cur), *(_number(c, cur) for c in r.buckets),
                          _number(r.total_cents, cur), _number(r.credit_cents, cur), str(r.invoice_count),
                          str(r.oldest_days_past_due)])
        lines.append(["Total", formula_safe(cur), *(_number(c, cur) for c in section.totals.buckets),
                      _number(section.total_cents, cur), _number(section.credit_cents, cur),
                      str(section.totals.count), str(section.oldest_days_past_due)])
    return _csv_bytes(lines)


def items_csv(items: Iterable[OpenItem]) -> bytes:
    """A client's open invoices (the drill-down), as a spreadsheet reads them."""
    lines: list[Sequence[str]] = [ITEMS_CSV_HEADERS]
    for item in items:
        lines.append([formula_safe(item.number), item.issue_date.isoformat(), item.due_date.isoformat(),
                      str(item.days_overdue), item.bucket.label, _number(item.total_cents, item.currency),
                      _number(item.balance_cents, item.currency)])
    return _csv_bytes(lines)


# --- JSON ------------------------------------------------------------------------------

def _buckets_json(buckets: Buckets, currency: str) -> dict[str, Any]:
    return {"buckets_cents": {b.key: cents for b, cents in zip(BUCKETS, buckets, strict=True)},
            "buckets": {b.key: format_amount(cents, currency) for b, cents in zip(BUCKETS, buckets, strict=True)}}


def aging_json(report: AgingReport) -> dict[str, Any]:
    """The report as one JSON document: integer cents with formatted text beside them, per currency."""
    sections = []
    for section in report.sections:
        cur = section.currency
        sections.append({
            "currency": cur,
            "company_currency": cur == report.company_currency,
            "totals": {**_buckets_json(section.totals.buckets, cur),
                       "total_cents": section.total_cents, "total": format_amount(section.total_cents, cur),
                       "credit_cents": section.credit_cents, "credit": format_amount(section.credit_cents, cur),
                       "invoice_count": section.totals.count, "client_count": section.client_count,
                       "oldest_days_past_due": section.oldest_days_past_due},
            "clients": [{"client_id": r.client_id, "client_name": r.client_name, **_buckets_json(r.buckets, cur),
                         "total_cents": r.total_cents, "total": format_amount(r.total_cents, cur),
                         "credit_cents": r.credit_cents, "credit": format_amount(r.credit_cents, cur),
                         "invoice_count": r.invoice_count, "oldest_days_past_due": r.oldest_days_past_due}
                        for r in section.rows]})
    return {"as_of": report.as_of.isoformat(), "company_currency": report.company_currency,
            "buckets": [{"key": b.key, "label": b.label} for b in BUCKETS],
            "nothing_owed": report.nothing_owed, "other_currencies": list(report.other_currencies),
            "sections": sections}


def items_json(items: Iterable[OpenItem]) -> list[dict[str, Any]]:
    """A client's open invoices (the drill-down) as JSON rows."""
    return [{"invoice_id": i.invoice_id, "invoice": i.number, "title": i.title, "currency": i.currency,
             "issue_date": i.issue_date.isoformat(), "due_date": i.due_date.isoformat(),
             "days_past_due": i.days_overdue, "bucket": i.bucket.key, "bucket_label": i.bucket.label,
             "total_cents": i.total_cents, "total": format_amount(i.total_cents, i.currency),
             "balance_cents": i.balance_cents, "balance": format_amount(i.balance_cents, i.currency)}
            for i in items]
