"""The office's key figures (KPIs) as of a day, each saying how it was computed.

Read-only.  Every amount is in the company's currency (the company profile;
USD when there is none); what is owed in another currency is counted apart
(`Kpis.other_currencies`, and a sentence in `Kpis.notes`), never added.  Ratios
are Decimal, rounded once, half up, to one decimal place; a ratio without a
denominator is None (shown "—") and its explanation says why.

"As of" a day means what was known by the end of that day (mspbill.aging).
The 90-day window ends on `as_of` and includes it: Aug 24 – Nov 21 for Nov 21.

Definitions:

MRR
    Monthly recurring revenue of the agreements in force on `as_of` for active
    clients: each line version in force that day (quantity × unit price), a
    quarterly agreement ÷ 3, an annual one ÷ 12, rounded once per client and
    frequency (clients.monthly_value_by_client).
A/R total, A/R overdue
    The balances of mspbill.aging.open_items(as_of), and of those past their due
    date (days past due > 0), with invoice counts.  Client credit held that day
    (aging.credit_as_of) is shown apart, not taken off.
DSO (90 days)
    A/R at `as_of` ÷ net credit sales in the window × 90.  Net credit sales:
    totals of the invoices issued in the window that are not voided (drafts are
    not issued) less the credit notes issued in it.  None when sales ≤ 0.
Autopay adoption
    Among active clients, the share on autopay with a valid method: the default
    method in the office's processor mode (payments.methods.default_method), not
    declined for good and not expired as of `as_of`; and the share of MRR those
    clients bring.  Without a processor no method is valid.
CEI (90 days)
    Collection effectiveness index = (B + S − E) ÷ (B + S − Ec) × 100: B = A/R at
    the end of the day before the window, S = net credit sales in the window,
    E = A/R at `as_of`, Ec = the part of E not yet past due.  None when the
    denominator ≤ 0.
Failed charges awaiting action
    Open invoices (as of `as_of`) of autopay clients whose latest charge attempt
    by then was declined and that nothing will charge again by itself
    (payments.charges.autopay_state is needs_method: declined for good, retries
    used up, the method expired or is missing).  A person must act.  The state
    of the method is today's (the database keeps no history of it).
Cash collected per month
    For the 12 calendar months ending with `as_of`'s month: payments received
    (their whole amount, by received date, up to `as_of`) less refunds the
    processor accepted (by refund date).
Most overdue clients
    The 10 clients owing most past due, ties broken by the oldest days past due.
Payment behaviour (per client)
    From the invoices paid in the 365 days up to `as_of`; an invoice's paid day
    is the latest received date of a payment applied to it (an invoice settled
    only by credit or a credit note is left out, and so is one whose last
    payment came after `as_of`).  Average days to pay (paid day − issue date),
    late payments (paid after the due date) and their average days late, and a
    trend: the average days to pay of the last 3 paid invoices against the up
    to 6 before them (at least 3 needed): worsening or improving when it moved by
    7 days or more, else steady; "—" with less history.  A client is at risk,
    with each reason in words, when its oldest open invoice is more than 60
    days past due, when at least half of its last (up to) 6 paid invoices were
    paid more than 7 days late (and at least 2), when its trend is worsening, or when one of its
    autopay charges awaits action.  Clients with no paid invoice in the year are
    listed only when one of the first or the last reason holds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mspbill.aging import (
    BUCKETS,
    AgingTotals,
    OpenItem,
    bucket_totals,
    credit_as_of,
    local_date,
    open_items,
)
from mspbill.clients import monthly_value_by_client
from mspbill.company import get_company
from mspbill.db.models import (
    REFUND_APPLIED_STATUSES,
    ChargeAttempt,
    ChargeAttemptStatus,
    Client,
    ClientStatus,
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    Payment,
    Refund,
    SavedMethodStatus,
    SavedPaymentMethod,
)
from mspbill.money import format_amount
from mspbill.payments.charges import autopay_state
from mspbill.payments.gateway import ProcessorMode, decline_reason_text
from mspbill.payments.methods import method_facts, method_label
from mspbill.payments.processor import office_mode, to_db_mode
from mspbill.reports import check_as_of

WINDOW_DAYS = 90
BEHAVIOUR_DAYS = 365
CASH_MONTHS = 12
TOP_OVERDUE = 10
AT_RISK_DAYS_PAST_DUE = 60
LATE_WINDOW = 6          # "at least half of the last 6 paid late"
LATE_MINIMUM = 2         # ... and at least 2 of them
# For the at-risk flag a payment counts as late when it came more than a week after the due
# date: a check in the post for a few days is how most clients pay, not a warning sign.
LATE_GRACE_DAYS = 7
TREND_RECENT = 3
TREND_EARLIER = 6
TREND_MIN_EARLIER = 3
TREND_DAYS = Decimal(7)
NO_VALUE = "—"

# Issued invoices and credit notes (not drafts, not voided).
_ISSUED = (InvoiceStatus.OPEN, InvoiceStatus.PAID, InvoiceStatus.UNCOLLECTIBLE)
_ONE_PLACE = Decimal("0.1")


# --- results ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """One key figure: `text` is what the dashboard shows, `explain` its tooltip (with the numbers)."""

    key: str
    label: str
    value: int | Decimal | None   # cents or a count (int), a ratio (Decimal), None when it has no value
    text: str
    explain: str


@dataclass(frozen=True)
class Window:
    """The 90 days the DSO and the CEI look at, and their parts (company currency)."""

    start: dt.date                 # first day, included
    end: dt.date                   # as_of, included
    invoiced_cents: int            # invoices issued in the window, not voided
    invoice_count: int
    credited_cents: int            # credit notes issued in the window
    credit_note_count: int
    ar_start_cents: int            # B: A/R at the end of the day before `start`
    ar_end_cents: int              # E: A/R at the end of `end`
    ar_current_cents: int          # Ec: the part of E not yet past due

    @property
    def sales_cents(self) -> int:  # S: net credit sales
        return self.invoiced_cents - self.credited_cents


@dataclass(frozen=True)
class AwaitingAction:
    """An autopay invoice whose charge failed and that nothing will charge again by itself."""

    invoice_id: int
    number: str
    client_id: int
    client_name: str
    currency: str
    amount_cents: int              # its balance as of as_of
    declined_on: dt.date
    reason: str


@dataclass(frozen=True)
class MonthCash:
    month: dt.date                 # the first day of the month
    label: str                     # "Nov 2026"
    cents: int                     # received less refunded
    received_cents: int
    refunded_cents: int


@dataclass(frozen=True)
class OverdueClient:
    client_id: int
    client_name: str
    currency: str
    overdue_cents: int
    oldest_days_past_due: int
    invoice_count: int             # invoices past due


@dataclass(frozen=True)
class ClientBehaviour:
    client_id: int
    client_name: str
    currency: str
    paid_count: int                        # invoices paid in the 365 days up to as_of
    average_days_to_pay: Decimal | None
    late_count: int
    average_days_late: Decimal | None      # over the late ones
    recent_count: int                      # the last (up to) 6 paid
    recent_late_count: int
    trend: str                             # worsening, improving, steady or "—"
    trend_explain: str
    overdue_cents: int                     # past due as of as_of, in the client's currency
    oldest_days_past_due: int              # 0: nothing past due
    awaiting_action: int                   # autopay charges awaiting action
    at_risk: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Kpis:
    as_of: dt.date
    currency: str
    mrr: Figure
    ar_total: Figure
    ar_overdue: Figure
    credit_held: Figure
    dso: Figure
    cei: Figure
    autopay_clients: Figure
    autopay_mrr: Figure
    failed_charges: Figure
    cash_this_month: Figure
    aging: AgingTotals                     # company currency, by bucket
    ar_invoice_count: int
    overdue_invoice_count: int
    window: Window
    active_clients: int
    autopay_any: int                       # active clients on autopay
    autopay_valid: int                     # ... with a valid method
    autopay_without_valid: int             # ... without one
    awaiting_action: tuple[AwaitingAction, ...]
    cash_by_month: tuple[MonthCash, ...]
    most_overdue: tuple[OverdueClient, ...]
    at_risk: tuple[ClientBehaviour, ...]
    other_currencies: Mapping[str, int]    # currency -> A/R cents as of as_of, not in the figures
    notes: tuple[str, ...]

    @property
    def figures(self) -> tuple[Figure, ...]:
        """In the order the dashboard and the terminal show them."""
        return (self.mrr, self.ar_total, self.ar_overdue, self.credit_held, self.dso, self.cei,
                self.autopay_clients, self.autopay_mrr, self.failed_charges, self.cash_this_month)

    def figure(self, key: str) -> Figure:
        return next(f for f in self.figures if f.key == key)


# --- small helpers ------------------------------------------------------------------------


def _q1(value: Decimal) -> Decimal:
    return value.quantize(_ONE_PLACE, rounding=ROUND_HALF_UP)


def _ratio(numerator: int, denominator: int, times: int) -> Decimal:
    """numerator ÷ denominator × times, rounded once to one place (denominator > 0)."""
    return _q1(Decimal(numerator) * times / Decimal(denominator))


def _mean(values: Sequence[int]) -> Decimal:
    return Decimal(sum(values)) / len(values)


def _day(day: dt.date) -> str:
    return f"{day:%b} {day.day}, {day.year}"


def _span(start: dt.date, end: dt.date) -> str:
    if start.year == end.year:
        return f"{start:%b} {start.day} – {_day(end)}"
    return f"{_day(start)} – {_day(end)}"


def _plural(n: int, word: str, words: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (words or word + 's')}"


def _days_text(value: Decimal | None) -> str:
    return NO_VALUE if value is None else f"{value} days"


def _percent_text(value: Decimal | None) -> str:
    return NO_VALUE if value is None else f"{value} %"


def _month_start(day: dt.date, back: int = 0) -> dt.date:
    index = day.year * 12 + day.month - 1 - back
    return dt.date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True)
class _ClientInfo:
    name: str
    currency: str
    active: bool
    autopay: bool


_NOBODY = _ClientInfo("", "", False, False)


def _clients(session: Session) -> dict[int, _ClientInfo]:
    stmt = select(Client.id, Client.legal_name, Client.currency, Client.status, Client.autopay)
    return {cid: _ClientInfo(name, cur, status is ClientStatus.ACTIVE, bool(autopay))
            for cid, name, cur, status, autopay in session.execute(stmt)}


def _company_currency(session: Session) -> str:
    company = get_company(session)
    return company.currency if company is not None else "USD"


def _money_by_currency(amounts: Mapping[str, int]) -> str:
    return ", ".join(format_amount(cents, cur) for cur, cents in sorted(amounts.items()))


# --- the figures ----------------------------------------------------------------------------


def compute_kpis(session: Session, as_of: dt.date, *, today: dt.date | None = None) -> Kpis:
    """The office's key figures as of the end of `as_of`; AsOfError for a day in the future."""
    check_as_of(as_of, today)
    currency = _company_currency(session)
    clients = _clients(session)
    notes: list[str] = []

    items = open_items(session, as_of)
    mine = [i for i in items if i.currency == currency]
    other_ar: dict[str, int] = {}
    other_count: dict[str, int] = {}
    for item in items:
        if item.currency != currency:
            other_ar[item.currency] = other_ar.get(item.currency, 0) + item.balance_cents
            other_count[item.currency] = other_count.get(item.currency, 0) + 1
    for cur in sorted(other_ar):
        notes.append(f"Not in these figures: {format_amount(other_ar[cur], cur)} owed in {cur} on "
                     f"{_plural(other_count[cur], 'invoice')} (amounts in another currency than {currency} "
                     "are not added).")
    aging = bucket_totals(mine, currency)

    mrr_by_client = monthly_value_by_client(session, as_of)
    mode = office_mode(session)
    defaults = _default_methods(session, mode)
    awaiting = _awaiting_action(session, as_of, {i.invoice_id: i for i in items}, clients, mode, defaults)

    mrr = _mrr_figure(as_of, currency, clients, mrr_by_client, notes)
    ar_total, ar_overdue, overdue_count = _ar_figures(as_of, currency, aging, mine)
    credit_held = _credit_figure(session, as_of, currency, clients, notes)
    window = _window(session, as_of, currency, mine)
    dso, cei = _dso_figure(window, currency), _cei_figure(window, currency)
    adoption = _adoption(as_of, currency, clients, mrr_by_client, mode, defaults)
    failed = _failed_figure(awaiting, currency, notes)
    cash = _cash_by_month(session, as_of, currency, notes)
    cash_figure = _cash_figure(as_of, currency, cash)
    most_overdue = _most_overdue(mine)
    behaviours = _behaviour(session, as_of, items, awaiting, clients)
    at_risk = sorted((b for b in behaviours if b.at_risk),
                     key=lambda b: (b.currency != currency, -b.overdue_cents, -b.oldest_days_past_due,
                                    b.client_name.casefold(), b.client_id))
    return Kpis(
        as_of=as_of, currency=currency, mrr=mrr, ar_total=ar_total, ar_overdue=ar_overdue,
        credit_held=credit_held, dso=dso, cei=cei, autopay_clients=adoption.clients_figure,
        autopay_mrr=adoption.mrr_figure, failed_charges=failed, cash_this_month=cash_figure, aging=aging,
        ar_invoice_count=aging.count, overdue_invoice_count=overdue_count, window=window,
        active_clients=adoption.active, autopay_any=adoption.on_autopay, autopay_valid=adoption.valid,
        autopay_without_valid=adoption.on_autopay - adoption.valid, awaiting_action=tuple(awaiting),
        cash_by_month=tuple(cash), most_overdue=tuple(most_overdue), at_risk=tuple(at_risk),
        other_currencies=dict(sorted(other_ar.items())), notes=tuple(notes))


def _mrr_figure(as_of: dt.date, currency: str, clients: Mapping[int, _ClientInfo],
                mrr_by_client: Mapping[int, int], notes: list[str]) -> Figure:
    total = 0
    paying = 0
    other: dict[str, int] = {}
    for cid, cents in mrr_by_client.items():
        info = clients.get(cid)
        if info is None or not info.active or not cents:
            continue
        if info.currency == currency:
            total += cents
            paying += 1
        else:
            other[info.currency] = other.get(info.currency, 0) + cents
    if other:
        notes.append(f"Not in MRR: recurring revenue of clients billed in another currency, "
                     f"{_money_by_currency(other)} a month.")
    explain = (f"Recurring agreements in force on {_day(as_of)} for {_plural(paying, 'active client')}: each "
               "line's quantity × unit price in force that day, quarterly agreements ÷ 3 and annual ones ÷ 12 "
               f"(rounded once per client and frequency) = {format_amount(total, currency)} a month.")
    if other:
        explain += f" Clients billed in another currency are left out ({_money_by_currency(other)})."
    return Figure("mrr", "MRR", total, format_amount(total, currency), explain)


def _ar_figures(as_of: dt.date, currency: str, aging: AgingTotals,
                mine: Sequence[OpenItem]) -> tuple[Figure, Figure, int]:
    buckets = ", ".join(f"{b.label.lower()} {format_amount(aging.get(b.key), currency)}" for b in BUCKETS)
    total = aging.total_cents
    total_explain = (f"Balances still owed at the end of {_day(as_of)} on {_plural(aging.count, 'invoice')} "
                     "(payments received, credit notes issued and write-offs made by then taken off; client "
                     f"credit not taken off, it is shown apart) = {format_amount(total, currency)}: {buckets}.")
    overdue = [i for i in mine if i.days_past_due > 0]
    overdue_cents = sum(i.balance_cents for i in overdue)
    share = f" ({_ratio(overdue_cents, total, 100)} % of the A/R)" if total > 0 else ""
    overdue_explain = (f"Balances past their due date at the end of {_day(as_of)}: "
                       f"{_plural(len(overdue), 'invoice')}, {format_amount(overdue_cents, currency)}{share}. "
                       f"Not yet due: {format_amount(total - overdue_cents, currency)}.")
    return (Figure("ar_total", "A/R total", total, format_amount(total, currency), total_explain),
            Figure("ar_overdue", "A/R overdue", overdue_cents, format_amount(overdue_cents, currency),
                   overdue_explain),
            len(overdue))


def _credit_figure(session: Session, as_of: dt.date, currency: str, clients: Mapping[int, _ClientInfo],
                   notes: list[str]) -> Figure:
    held = 0
    holders = 0
    other: dict[str, int] = {}
    for cid, cents in credit_as_of(session, as_of).items():
        cur = clients[cid].currency if cid in clients else currency
        if cur == currency:
            held += cents
            holders += 1
        else:
            other[cur] = other.get(cur, 0) + cents
    if other:
        notes.append(f"Not in client credit: credit held in another currency, {_money_by_currency(other)}.")
    explain = (f"Client credit held at the end of {_day(as_of)} by {_plural(holders, 'client')} (overpayments, "
               "credit notes beyond what an invoice owed, negative invoices, less what invoices used): "
               f"{format_amount(held, currency)}. It pays their next invoices; the A/R does not take it off.")
    return Figure("credit_held", "Client credit held", held, format_amount(held, currency), explain)


def _ar_on(session: Session, day: dt.date, currency: str) -> int:
    """A/R in `currency` at the end of `day` (aging's definitions)."""
    return sum(i.balance_cents for i in open_items(session, day) if i.currency == currency)


def _window(session: Session, as_of: dt.date, currency: str, mine: Sequence[OpenItem]) -> Window:
    start = as_of - dt.timedelta(days=WINDOW_DAYS - 1)
    stmt = (select(Invoice.kind, func.coalesce(func.sum(Invoice.total_cents), 0), func.count(Invoice.id))
            .where(Invoice.status.in_(_ISSUED), Invoice.currency == currency,
                   Invoice.issue_date >= start, Invoice.issue_date <= as_of)
            .group_by(Invoice.kind))
    sums = {kind: (int(cents), int(count)) for kind, cents, count in session.execute(stmt)}
    invoiced, invoice_count = sums.get(InvoiceKind.INVOICE, (0, 0))
    credited, note_count = sums.get(InvoiceKind.CREDIT_NOTE, (0, 0))
    ar_end = sum(i.balance_cents for i in mine)
    ar_current = sum(i.balance_cents for i in mine if i.days_past_due <= 0)
    ar_start = _ar_on(session, start - dt.timedelta(days=1), currency)
    return Window(start, as_of, invoiced, invoice_count, credited, note_count, ar_start, ar_end, ar_current)


def _sales_text(w: Window, currency: str) -> str:
    return (f"invoices issued {format_amount(w.invoiced_cents, currency)} ({w.invoice_count:,}, voided ones left "
            f"out) less credit notes {format_amount(w.credited_cents, currency)} ({w.credit_note_count:,})")


def _dso_figure(w: Window, currency: str) -> Figure:
    money = format_amount
    days = _span(w.start, w.end)
    if w.sales_cents <= 0:
        explain = (f"No DSO: net credit sales in the {WINDOW_DAYS} days {days} were "
                   f"{money(w.sales_cents, currency)} ({_sales_text(w, currency)}), so the A/R of "
                   f"{money(w.ar_end_cents, currency)} has nothing to be divided by.")
        return Figure("dso", "DSO (90 days)", None, NO_VALUE, explain)
    value = _ratio(w.ar_end_cents, w.sales_cents, WINDOW_DAYS)
    explain = (f"A/R {money(w.ar_end_cents, currency)} ÷ net credit sales {money(w.sales_cents, currency)} in the "
               f"{WINDOW_DAYS} days {days} × {WINDOW_DAYS} = {value} days. Net credit sales: "
               f"{_sales_text(w, currency)}.")
    return Figure("dso", "DSO (90 days)", value, _days_text(value), explain)


def _cei_figure(w: Window, currency: str) -> Figure:
    def m(cents: int) -> str:
        return format_amount(cents, currency)

    b, s, e, ec = w.ar_start_cents, w.sales_cents, w.ar_end_cents, w.ar_current_cents
    parts = (f"B = A/R at the end of {_day(w.start - dt.timedelta(days=1))} {m(b)}, S = net credit sales "
             f"{m(s)} ({_sales_text(w, currency)}), E = A/R on {_day(w.end)} {m(e)}, Ec = the part of E not "
             f"yet past due {m(ec)}")
    numerator, denominator = b + s - e, b + s - ec
    if denominator <= 0:
        explain = (f"No CEI for the {WINDOW_DAYS} days {_span(w.start, w.end)}: B + S − Ec = {m(denominator)}, "
                   f"so there was nothing to collect ({parts}).")
        return Figure("cei", "CEI (90 days)", None, NO_VALUE, explain)
    value = _ratio(numerator, denominator, 100)
    explain = (f"(B + S − E) ÷ (B + S − Ec) × 100 over the {WINDOW_DAYS} days {_span(w.start, w.end)}: {parts}. "
               f"({m(b)} + {m(s)} − {m(e)}) ÷ ({m(b)} + {m(s)} − {m(ec)}) × 100 = {value} %. "
               "100 % means everything that could be collected was.")
    return Figure("cei", "CEI (90 days)", value, _percent_text(value), explain)


# --- autopay ------------------------------------------------------------------------------


def _default_methods(session: Session, mode: ProcessorMode | None) -> dict[int, SavedPaymentMethod]:
    """client id -> its default method in `mode` (payments.methods.default_method, for every client at once)."""
    if mode is None:
        return {}
    stmt = (select(SavedPaymentMethod)
            .where(SavedPaymentMethod.mode == to_db_mode(mode), SavedPaymentMethod.status == SavedMethodStatus.ACTIVE,
                   SavedPaymentMethod.is_default.is_(True))
            .order_by(SavedPaymentMethod.id))
    out: dict[int, SavedPaymentMethod] = {}
    for row in session.scalars(stmt):
        out.setdefault(row.client_id, row)
    return out


def _method_valid(method: SavedPaymentMethod | None, day: dt.date) -> bool:
    return (method is not None and method.hard_declined_at is None
            and not method_facts(method).expires_before(day))


@dataclass(frozen=True)
class _Adoption:
    clients_figure: Figure
    mrr_figure: Figure
    active: int
    on_autopay: int
    valid: int


def _adoption(as_of: dt.date, currency: str, clients: Mapping[int, _ClientInfo], mrr_by_client: Mapping[int, int],
              mode: ProcessorMode | None, defaults: Mapping[int, SavedPaymentMethod]) -> _Adoption:
    active = [cid for cid, c in clients.items() if c.active]
    on_autopay = [cid for cid in active if clients[cid].autopay]
    valid = [cid for cid in on_autopay if _method_valid(defaults.get(cid), as_of)]
    without = len(on_autopay) - len(valid)
    if mode is None:
        why = ("No payment processor is set up (Settings → Payments), so no client has a method autopay can "
               "charge: valid = 0.")
    else:
        why = (f"Valid: the client's default method in {mode.label} is active, not declined for good and not "
               f"expired on {_day(as_of)}.")
    counts = (f"{_plural(len(on_autopay), 'active client')} on autopay, {len(valid):,} with a valid method, "
              f"{without:,} without")
    if active:
        share = _ratio(len(valid), len(active), 100)
        explain = f"{len(valid):,} of {_plural(len(active), 'active client')} = {share} % ({counts}). {why}"
        clients_figure = Figure("autopay_clients", "Autopay adoption (clients)", share, _percent_text(share),
                                explain)
    else:
        clients_figure = Figure("autopay_clients", "Autopay adoption (clients)", None, NO_VALUE,
                                f"No active clients, so there is no share to show. {why}")
    mrr_total = sum(v for cid, v in mrr_by_client.items()
                    if cid in clients and clients[cid].active and clients[cid].currency == currency)
    mrr_valid = sum(mrr_by_client.get(cid, 0) for cid in valid if clients[cid].currency == currency)
    if mrr_total > 0:
        share = _ratio(mrr_valid, mrr_total, 100)
        explain = (f"MRR of the active clients on autopay with a valid method {format_amount(mrr_valid, currency)} ÷ "
                   f"MRR {format_amount(mrr_total, currency)} × 100 = {share} % ({counts}). {why}")
        mrr_figure = Figure("autopay_mrr", "Autopay adoption (MRR)", share, _percent_text(share), explain)
    else:
        mrr_figure = Figure("autopay_mrr", "Autopay adoption (MRR)", None, NO_VALUE,
                            f"No MRR in {currency} on {_day(as_of)} (no agreement in force for an active client), "
                            f"so there is no share to show. {why}")
    return _Adoption(clients_figure, mrr_figure, len(active), len(on_autopay), len(valid))


def _awaiting_action(session: Session, as_of: dt.date, open_by_id: Mapping[int, OpenItem],
                     clients: Mapping[int, _ClientInfo], mode: ProcessorMode | None,
                     defaults: Mapping[int, SavedPaymentMethod]) -> list[AwaitingAction]:
    if mode is None:
        return []  # without a processor mspbill charges nothing, so no charge of its can await action
    # Only invoices with a declined attempt can qualify: look at those alone.
    declined = (select(ChargeAttempt.invoice_id).where(ChargeAttempt.status == ChargeAttemptStatus.DECLINED)
                .distinct())
    candidates = [iid for (iid,) in session.execute(declined)
                  if iid in open_by_id and clients.get(open_by_id[iid].client_id, _NOBODY).autopay]
    latest: dict[int, Any] = {}
    for start in range(0, len(candidates), 500):
        chunk = candidates[start:start + 500]
        stmt = (select(ChargeAttempt.id, ChargeAttempt.invoice_id, ChargeAttempt.status, ChargeAttempt.created_at,
                       ChargeAttempt.decline_code, ChargeAttempt.decline_hard, ChargeAttempt.message)
                .where(ChargeAttempt.invoice_id.in_(chunk)).order_by(ChargeAttempt.id))
        for row in session.execute(stmt):
            if row.created_at is None or local_date(row.created_at) <= as_of:
                latest[row.invoice_id] = row  # ordered by id: the last one kept is the latest by then
    out: list[AwaitingAction] = []
    for invoice_id, attempt in latest.items():
        if attempt.status is not ChargeAttemptStatus.DECLINED:
            continue
        item = open_by_id[invoice_id]
        method = defaults.get(item.client_id)
        if method is not None and method.hard_declined_at is None and not method_facts(method).expires_before(
                max(as_of, item.due_date)):
            # A usable method after a soft decline: whether retries are left is autopay_state's call.  (With no
            # method, one declined for good or expired it says needs_method at once; it is not asked, as it
            # costs a few queries an invoice.)
            inv = session.get(Invoice, invoice_id)
            if inv is None or autopay_state(session, inv, as_of).kind != "needs_method":
                continue
        declined_on = local_date(attempt.created_at) if attempt.created_at is not None else as_of
        out.append(AwaitingAction(invoice_id, item.number, item.client_id, item.client_name, item.currency,
                                  item.balance_cents, declined_on, _awaiting_reason(attempt, method, item, as_of)))
    out.sort(key=lambda a: (a.declined_on, a.number, a.invoice_id))
    return out



def _awaiting_reason(attempt: Any, method: SavedPaymentMethod | None, item: OpenItem, as_of: dt.date) -> str:
    said = decline_reason_text(attempt.decline_code) if attempt.decline_code else (attempt.message or "declined")
    if method is None:
        need = "no card or bank account on file: ask the client for one"
    elif method.hard_declined_at is not None or attempt.decline_hard:
        need = f"{method_label(method)} was declined for good: ask the client for a new method"
    elif method_facts(method).expires_before(max(as_of, item.due_date)):
        need = f"{method_label(method)} has expired: ask the client for a new card"
    else:
        need = "every retry failed: ask the client to pay another way or give a new method"
    return f"Declined ({said}); {need}."


def _failed_figure(awaiting: Sequence[AwaitingAction], currency: str, notes: list[str]) -> Figure:
    mine = [a for a in awaiting if a.currency == currency]
    total = sum(a.amount_cents for a in mine)
    other: dict[str, int] = {}
    for a in awaiting:
        if a.currency != currency:
            other[a.currency] = other.get(a.currency, 0) + a.amount_cents
    text = f"{len(awaiting):,}" if not awaiting else f"{len(awaiting):,} · {format_amount(total, currency)}"
    explain = ("Open invoices of autopay clients whose last charge was declined and that nothing will charge again "
               "by itself (declined for good, every retry failed, the method expired or none is on file): "
               f"{_plural(len(awaiting), 'invoice')}, {format_amount(total, currency)}.")
    if awaiting:
        explain += " A person must act: ask the client for a new method or another payment."
    if other:
        explain += f" Also in another currency: {_money_by_currency(other)}."
        notes.append(f"Failed charges awaiting action in another currency: {_money_by_currency(other)}.")
    return Figure("failed_charges", "Failed charges awaiting action", len(awaiting), text, explain)


# --- cash -----------------------------------------------------------------------------------


def _cash_by_month(session: Session, as_of: dt.date, currency: str, notes: list[str]) -> list[MonthCash]:
    first = _month_start(as_of, CASH_MONTHS - 1)
    received: dict[dt.date, int] = {}
    refunded: dict[dt.date, int] = {}
    other: dict[str, int] = {}
    # Summed per day by the database (portable: no month functions), then per month here.
    paid = (select(Payment.received_on, Payment.currency, func.sum(Payment.amount_cents))
            .where(Payment.received_on >= first, Payment.received_on <= as_of)
            .group_by(Payment.received_on, Payment.currency))
    for day, cur, cents in session.execute(paid):
        if cur == currency:
            received[_month_start(day)] = received.get(_month_start(day), 0) + int(cents)
        else:
            other[cur] = other.get(cur, 0) + int(cents)
    back = (select(Refund.refunded_on, Refund.currency, func.sum(Refund.amount_cents))
            .where(Refund.status.in_(REFUND_APPLIED_STATUSES), Refund.refunded_on >= first,
                   Refund.refunded_on <= as_of)
            .group_by(Refund.refunded_on, Refund.currency))
    for refund_day, cur, cents in session.execute(back):
        if refund_day is None:
            continue
        if cur == currency:
            refunded[_month_start(refund_day)] = refunded.get(_month_start(refund_day), 0) + int(cents)
        else:
            other[cur] = other.get(cur, 0) - int(cents)
    if any(other.values()):
        notes.append(f"Not in cash collected: money received in another currency in the {CASH_MONTHS} months, "
                     f"{_money_by_currency({c: v for c, v in other.items() if v})} (net of refunds).")
    months = []
    for back_months in range(CASH_MONTHS - 1, -1, -1):
        month = _month_start(as_of, back_months)
        got, gone = received.get(month, 0), refunded.get(month, 0)
        months.append(MonthCash(month, f"{month:%b} {month.year}", got - gone, got, gone))
    return months


def _cash_figure(as_of: dt.date, currency: str, cash: Sequence[MonthCash]) -> Figure:
    this, last = cash[-1], cash[-2]
    explain = (f"Payments received {_span(this.month, as_of)} {format_amount(this.received_cents, currency)} less "
               f"refunds {format_amount(this.refunded_cents, currency)} = {format_amount(this.cents, currency)}. "
               f"{last.label}: {format_amount(last.cents, currency)}; the last {CASH_MONTHS} months: "
               f"{format_amount(sum(m.cents for m in cash), currency)}.")
    return Figure("cash_this_month", "Cash collected this month", this.cents, format_amount(this.cents, currency),
                  explain)


# --- who owes ---------------------------------------------------------------------------------


def _most_overdue(mine: Iterable[OpenItem]) -> list[OverdueClient]:
    grouped: dict[int, list[OpenItem]] = {}
    for item in mine:
        if item.days_past_due > 0:
            grouped.setdefault(item.client_id, []).append(item)
    rows = [OverdueClient(cid, rows[0].client_name, rows[0].currency, sum(i.balance_cents for i in rows),
                          max(i.days_past_due for i in rows), len(rows))
            for cid, rows in grouped.items()]
    rows.sort(key=lambda r: (-r.overdue_cents, -r.oldest_days_past_due, r.client_name.casefold(), r.client_id))
    return rows[:TOP_OVERDUE]


def behaviour(session: Session, as_of: dt.date, *, today: dt.date | None = None) -> list[ClientBehaviour]:
    """Payment behaviour of each client with invoices paid in the 365 days up to `as_of` (and of the
    clients at risk without any), by name."""
    check_as_of(as_of, today)
    clients = _clients(session)
    items = open_items(session, as_of)
    mode = office_mode(session)
    awaiting = _awaiting_action(session, as_of, {i.invoice_id: i for i in items}, clients, mode,
                                _default_methods(session, mode))
    return _behaviour(session, as_of, items, awaiting, clients)


# One paid invoice: (days to pay, days past due when paid (≤ 0: on time)), in the order they were paid.
_Paid = tuple[int, int]


def _paid_invoices(session: Session, as_of: dt.date) -> dict[int, list[_Paid]]:
    start = as_of - dt.timedelta(days=BEHAVIOUR_DAYS - 1)
    # The latest payment applied to each invoice; one received after as_of means it was not yet paid then.
    last = (select(Payment.invoice_id.label("invoice_id"), func.max(Payment.received_on).label("paid_on"))
            .where(Payment.invoice_id.is_not(None), Payment.applied_cents > 0, Payment.received_on >= start)
            .group_by(Payment.invoice_id).subquery("last_paid"))
    stmt = (select(Invoice.client_id, Invoice.issue_date, Invoice.due_date, last.c.paid_on)
            .join(last, last.c.invoice_id == Invoice.id)
            .where(Invoice.kind == InvoiceKind.INVOICE, Invoice.status == InvoiceStatus.PAID,
                   Invoice.issue_date.is_not(None), last.c.paid_on <= as_of)
            .order_by(Invoice.client_id, last.c.paid_on, Invoice.issue_date, Invoice.id))
    out: dict[int, list[_Paid]] = {}
    # Plain rows (no ORM layer): ~25,000 of them for 2,000 clients.
    for client_id, issued, due, paid_on in session.connection().execute(stmt):
        rows = out.get(client_id)
        if rows is None:
            rows = out[client_id] = []
        rows.append(((paid_on - issued).days, (paid_on - (due or issued)).days))
    return out


def _trend(paid: Sequence[_Paid]) -> tuple[str, str]:
    recent = paid[-TREND_RECENT:]
    earlier = paid[-(TREND_RECENT + TREND_EARLIER):-TREND_RECENT]
    if len(recent) < TREND_RECENT or len(earlier) < TREND_MIN_EARLIER:
        return NO_VALUE, (f"Too little history for a trend: {_plural(len(paid), 'invoice')} paid in the year "
                          f"(at least {TREND_RECENT + TREND_MIN_EARLIER} needed).")
    now = _mean([days for days, _ in recent])
    before = _mean([days for days, _ in earlier])
    moved = now - before
    kind = "worsening" if moved >= TREND_DAYS else "improving" if moved <= -TREND_DAYS else "steady"
    return kind, (f"{_q1(now)} days to pay on the last {TREND_RECENT} paid invoices against {_q1(before)} on the "
                  f"{len(earlier)} before them ({kind}: a move of {TREND_DAYS} days or more counts).")


def _behaviour(session: Session, as_of: dt.date, items: Sequence[OpenItem], awaiting: Sequence[AwaitingAction],
               clients: Mapping[int, _ClientInfo]) -> list[ClientBehaviour]:
    paid_by_client = _paid_invoices(session, as_of)
    open_by_client: dict[int, list[OpenItem]] = {}
    for item in items:
        open_by_client.setdefault(item.client_id, []).append(item)
    awaiting_by_client: dict[int, list[AwaitingAction]] = {}
    for a in awaiting:
        awaiting_by_client.setdefault(a.client_id, []).append(a)
    out: list[ClientBehaviour] = []
    for cid in set(paid_by_client) | set(open_by_client) | set(awaiting_by_client):
        info = clients.get(cid)
        if info is None:
            continue
        paid = paid_by_client.get(cid, [])
        owed = open_by_client.get(cid, [])
        overdue = [i for i in owed if i.days_past_due > 0]
        oldest = max(overdue, key=lambda i: (i.days_past_due, -i.invoice_id)) if overdue else None
        waiting = awaiting_by_client.get(cid, [])
        reasons: list[str] = []
        if oldest is not None and oldest.days_past_due > AT_RISK_DAYS_PAST_DUE:
            reasons.append(f"Oldest open invoice, {oldest.number}, is {oldest.days_past_due} days past due "
                           f"(more than {AT_RISK_DAYS_PAST_DUE}).")
        if not paid and not reasons and not waiting:
            continue  # no payment history and nothing wrong: nothing to say about this client
        late = [past_due for _, past_due in paid if past_due > 0]
        recent = paid[-LATE_WINDOW:]
        recent_late = sum(1 for _, past_due in recent if past_due > 0)
        recent_very_late = sum(1 for _, past_due in recent if past_due > LATE_GRACE_DAYS)
        if recent_very_late >= LATE_MINIMUM and 2 * recent_very_late >= len(recent):
            reasons.append(f"Paid {recent_very_late} of the last {_plural(len(recent), 'invoice')} more than "
                           f"{LATE_GRACE_DAYS} days late.")
        trend, trend_explain = _trend(paid)
        if trend == "worsening":
            reasons.append(f"Paying more slowly: {trend_explain}")
        for a in waiting:
            reasons.append(f"An autopay charge awaits action: {a.number}. {a.reason}")
        out.append(ClientBehaviour(
            client_id=cid, client_name=info.name, currency=info.currency, paid_count=len(paid),
            average_days_to_pay=_q1(_mean([days for days, _ in paid])) if paid else None,
            late_count=len(late),
            average_days_late=_q1(_mean(late)) if late else None,
            recent_count=len(recent), recent_late_count=recent_late, trend=trend, trend_explain=trend_explain,
            overdue_cents=sum(i.balance_cents for i in overdue),
            oldest_days_past_due=oldest.days_past_due if oldest else 0, awaiting_action=len(waiting),
            at_risk=bool(reasons), reasons=tuple(reasons)))
    out.sort(key=lambda b: (b.client_name.casefold(), b.client_id))
    return out


# --- output -----------------------------------------------------------------------------------


def _json_value(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_json_value(v) for v in value]
    return value


def _row(obj: object) -> dict[str, object]:
    return {name: _json_value(getattr(obj, name)) for name in obj.__dataclass_fields__}  # type: ignore[attr-defined]


def kpis_json(k: Kpis) -> dict[str, Any]:
    """One JSON-able document: cents as ints, ratios as strings, dates ISO."""
    window = _row(k.window)
    window["sales_cents"] = k.window.sales_cents
    return {
        "as_of": k.as_of.isoformat(),
        "currency": k.currency,
        "figures": {f.key: {"label": f.label, "value": _json_value(f.value), "text": f.text, "explain": f.explain}
                    for f in k.figures},
        "aging": {"currency": k.aging.currency, "buckets": k.aging.as_dict(), "total_cents": k.aging.total_cents,
                  "invoice_count": k.aging.count},
        "ar_invoice_count": k.ar_invoice_count,
        "overdue_invoice_count": k.overdue_invoice_count,
        "window": window,
        "autopay": {"active_clients": k.active_clients, "on_autopay": k.autopay_any,
                    "with_valid_method": k.autopay_valid, "without_valid_method": k.autopay_without_valid},
        "awaiting_action": [_row(a) for a in k.awaiting_action],
        "cash_by_month": [_row(m) for m in k.cash_by_month],
        "most_overdue": [_row(c) for c in k.most_overdue],
        "at_risk": [_row(b) for b in k.at_risk],
        "other_currencies": dict(k.other_currencies),
        "notes": list(k.notes),
    }


def kpis_text(k: Kpis) -> list[str]:
    """Lines for the terminal: one per figure, then the most overdue and the at-risk clients."""
    width = max(len(f.label) for f in k.figures) + 3
    lines = [f"Key figures as of {k.as_of.isoformat()} ({k.currency})", ""]
    lines += [f"{f.label:<{width}}{f.text}" for f in k.figures]
    lines += ["", "Most overdue clients"]
    if k.most_overdue:
        name_width = min(40, max(len(c.client_name) for c in k.most_overdue)) + 2
        for c in k.most_overdue:
            lines.append(f"  {c.client_name[:40]:<{name_width}}{format_amount(c.overdue_cents, c.currency):>14}  "
                         f"oldest {c.oldest_days_past_due} days past due, {_plural(c.invoice_count, 'invoice')}")
    else:
        lines.append("  Nobody is past due.")
    lines += ["", "Clients at risk"]
    if k.at_risk:
        for b in k.at_risk:
            lines.append(f"  {b.client_name}")
            lines += [f"    - {reason}" for reason in b.reasons]
    else:
        lines.append("  None.")
    if k.awaiting_action:
        lines += ["", "Failed charges awaiting action"]
        lines += [f"  {a.number}  {a.client_name}  {format_amount(a.amount_cents, a.currency)}  declined "
                  f"{a.declined_on.isoformat()}: {a.reason}" for a in k.awaiting_action]
    if k.notes:
        lines += ["", *k.notes]
    return lines
