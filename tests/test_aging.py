"""Receivables as of a date and aging buckets (mspbill.aging) on a real SQLite file.

Every expected figure is worked out by hand in the test from the invoices and
payments it records.
"""

from __future__ import annotations

import datetime as dt

import pytest
from billing_helpers import (
    d,
    draft_with_lines,
    issue_ids,
    make_client,
    one_time,
    setup_office,
)
from sqlalchemy import update

from mspbill.aging import (
    BUCKETS,
    MixedCurrencyError,
    OpenItem,
    bucket_for,
    bucket_totals,
    credit_as_of,
    open_items,
    receivable_balance,
    totals_by_client,
)
from mspbill.db.models import AuditEntry
from mspbill.invoicing import (
    create_credit_note,
    list_invoices,
    mark_uncollectible,
    void_invoice,
)
from mspbill.payments.manual import record_payment

# Run on SQLite and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.both_databases

LATER = dt.date(2026, 12, 31)  # "today" for recording payments: none of the dates below is refused


def _invoice(db, client_id: int, cents: int, issued: dt.date, description: str = "Project") -> int:
    inv = one_time(db, client_id, (description, "1", f"{cents // 100}.{cents % 100:02d}"))
    issue_ids(db, [inv], issued)
    return inv


def _pay(db, invoice_id: int, amount: str, received: dt.date, **kw: object) -> None:
    with db.write_session() as s, s.begin():
        record_payment(s, invoice_id, amount, "check", received_on=received, today=LATER, **kw)  # type: ignore[arg-type]


def _items(db, as_of: dt.date, client_id: int | None = None) -> list[OpenItem]:
    with db.session() as s:
        return open_items(s, as_of, client_id)


def _write_off(db, invoice_id: int, on: dt.date) -> None:
    """Write the invoice off and date the write-off (its audit entry) at noon UTC on `on`."""
    with db.write_session() as s, s.begin():
        mark_uncollectible(s, invoice_id, "Client went out of business")
        s.execute(update(AuditEntry).where(AuditEntry.entity_id == invoice_id,
                                           AuditEntry.action == "invoice.uncollectible")
                  .values(at=dt.datetime.combine(on, dt.time(12), dt.UTC)))


@pytest.fixture
def client_id(db) -> int:
    setup_office(db)
    # Due on the issue date, so days past due = days since issue.
    return make_client(db, "Zürich Dental GmbH", payment_terms_days="0")


@pytest.mark.parametrize(("days", "bucket"), [
    (-5, "current"), (0, "current"), (1, "1_30"), (30, "1_30"), (31, "31_60"), (60, "31_60"),
    (61, "61_90"), (90, "61_90"), (91, "over_90"), (400, "over_90")])
def test_an_invoice_moves_through_the_buckets_at_the_boundary_days(db, client_id: int, days: int,
                                                                   bucket: str) -> None:
    due = d("2026-06-01")
    inv = _invoice(db, client_id, 12_345, due)
    as_of = due + dt.timedelta(days=days)
    items = _items(db, as_of)
    if days < 0:  # not yet issued on that day: not a receivable at all
        assert items == []
        return
    [item] = items
    assert (item.invoice_id, item.balance_cents, item.days_past_due) == (inv, 12_345, days)
    assert item.bucket.key == bucket and bucket_for(days).key == bucket
    totals = bucket_totals(items)
    assert totals.get(bucket) == 12_345 and totals.total_cents == 12_345 and totals.count == 1
    assert sum(1 for b in BUCKETS if b.holds(days)) == 1


def test_buckets_add_up_each_invoice_in_its_own_bucket(db, client_id: int) -> None:
    # Issued oldest first (numbers and dates go forward together); aged as of 1 Oct 2026.
    as_of = d("2026-10-01")
    ages = {120: 10_000, 91: 1_000, 90: 2_000, 61: 300, 60: 40, 31: 5, 30: 600_000, 1: 70_000, 0: 8}
    for age, cents in sorted(ages.items(), reverse=True):
        _invoice(db, client_id, cents, as_of - dt.timedelta(days=age))
    totals = bucket_totals(_items(db, as_of))
    assert totals.as_dict() == {"current": 8, "1_30": 670_000, "31_60": 45, "61_90": 2_300, "over_90": 11_000}
    assert totals.total_cents == sum(ages.values()) and totals.count == len(ages)


def test_the_balance_as_of_a_day_counts_only_payments_received_by_then(db, client_id: int) -> None:
    inv = _invoice(db, client_id, 10_000, d("2026-09-01"))
    _pay(db, inv, "40.00", d("2026-09-15"))
    _pay(db, inv, "60.00", d("2026-10-02"))
    balances = {day: [(i.balance_cents, i.days_past_due) for i in _items(db, d(day))]
                for day in ("2026-08-31", "2026-09-01", "2026-09-14", "2026-09-15", "2026-10-01", "2026-10-02")}
    assert balances == {
        "2026-08-31": [],                  # not issued yet
        "2026-09-01": [(10_000, 0)],
        "2026-09-14": [(10_000, 13)],
        "2026-09-15": [(6_000, 14)],       # the $40 arrived that day
        "2026-10-01": [(6_000, 30)],
        "2026-10-02": [],                  # paid in full that day
    }


def test_credit_notes_drafts_voids_and_write_offs(db, client_id: int) -> None:
    credited = _invoice(db, client_id, 50_000, d("2026-07-01"))
    voided = _invoice(db, client_id, 7_000, d("2026-07-02"))
    written_off = _invoice(db, client_id, 9_900, d("2026-07-03"))
    one_time(db, client_id, ("Still a draft", "1", "999.00"))
    with db.write_session() as s, s.begin():
        create_credit_note(s, credited, "Discount agreed", "150.00", issue_date=d("2026-08-01"))
        void_invoice(s, voided, "Issued twice")
    _pay(db, written_off, "9.00", d("2026-07-20"))
    _write_off(db, written_off, d("2026-09-01"))

    def balances(day: str) -> dict[int, int]:
        return {i.invoice_id: i.balance_cents for i in _items(db, d(day))}

    # The void is gone from every day, the draft never counts.
    assert balances("2026-07-31") == {credited: 50_000, written_off: 9_000}
    assert balances("2026-08-01") == {credited: 35_000, written_off: 9_000}
    assert balances("2026-08-31") == {credited: 35_000, written_off: 9_000}
    assert balances("2026-09-01") == {credited: 35_000}  # written off that day: no longer owed


def test_open_items_today_agree_with_the_invoice_list(db, client_id: int) -> None:
    other = make_client(db, "Łódź IT Sp. z o.o.", payment_terms_days="30")
    a = _invoice(db, client_id, 20_000, d("2026-09-01"))
    b = _invoice(db, other, 31_500, d("2026-09-02"))
    _invoice(db, other, 1_000, d("2026-09-03"))
    _pay(db, a, "50.00", d("2026-09-10"))
    _pay(db, b, "315.00", d("2026-09-11"))
    today = d("2026-11-21")
    with db.session() as s:
        listed = {r.id: (r.balance_cents, r.overdue_days) for r in list_invoices(s, status="open", today=today)}
        aged = {i.invoice_id: (i.balance_cents, i.days_overdue) for i in open_items(s, today)}
        assert [i.client_name for i in open_items(s, today, other)] == ["Łódź IT Sp. z o.o."]
    assert aged == listed and len(aged) == 2
    per_client = {cid: t.total_cents for cid, t in totals_by_client(_items(db, today)).items()}
    assert per_client == {client_id: 15_000, other: 1_000}


def test_client_credit_as_of_a_day_is_dated_by_what_caused_it(db, client_id: int) -> None:
    first = _invoice(db, client_id, 10_000, d("2026-09-01"))
    _pay(db, first, "125.00", d("2026-09-10"), credit_excess=True)   # $25 overpaid → credit
    second = _invoice(db, client_id, 1_000, d("2026-10-01"))          # takes $10 of it at issue
    with db.session() as s:
        credit = {day: credit_as_of(s, d(day), client_id).get(client_id, 0)
                  for day in ("2026-09-09", "2026-09-10", "2026-09-30", "2026-10-01")}
        assert credit == {"2026-09-09": 0, "2026-09-10": 2_500, "2026-09-30": 2_500, "2026-10-01": 1_500}
        # Net position: owed less credit.
        assert receivable_balance(s, d("2026-09-09"), client_id) == 10_000
        assert receivable_balance(s, d("2026-09-10"), client_id) == -2_500
        assert receivable_balance(s, d("2026-10-01"), client_id) == -1_500  # the second is settled by credit
    assert [i.invoice_id for i in _items(db, d("2026-10-01"))] == []
    assert second


def test_a_negative_adjustment_invoice_is_credit_not_a_receivable(db, client_id: int) -> None:
    neg = draft_with_lines(db, client_id, [("adjustment", "1", -4_000, "Seats 10 → 8 from 15 Sep")])
    issue_ids(db, [neg], d("2026-09-20"))
    with db.session() as s:
        assert open_items(s, d("2026-09-20")) == []
        assert credit_as_of(s, d("2026-09-19")) == {}
        assert credit_as_of(s, d("2026-09-20")) == {client_id: 4_000}


def test_totals_refuse_to_add_up_two_currencies(db, client_id: int) -> None:
    euro = make_client(db, "Wien IT GmbH", currency="EUR", payment_terms_days="0")
    _invoice(db, client_id, 1_000, d("2026-09-01"))
    _invoice(db, euro, 2_000, d("2026-09-02"))
    items = _items(db, d("2026-09-30"))
    with pytest.raises(MixedCurrencyError):
        bucket_totals(items)
    assert {cid: (t.currency, t.total_cents) for cid, t in totals_by_client(items).items()} == {
        client_id: ("USD", 1_000), euro: ("EUR", 2_000)}
