"""Generating a month's recurring invoices: proration, adjustments, tax, autopay discount,
idempotence and concurrent runs — on a real SQLite file.

Every expected amount is computed here from quantity × price × days ÷ period
days, rounded half-up with Decimal (billing_helpers.prorated), not copied
from the code's output.
"""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from billing_helpers import (
    change_agreement,
    credit_balance,
    credit_entries,
    d,
    days,
    full,
    generate,
    half_up,
    invoice,
    invoices_of,
    issue,
    issue_ids,
    line,
    lines_of,
    make_agreement,
    make_client,
    one_time,
    prorated,
    run_month,
    setup_office,
    tax_of,
)
from mspbill import audit
from mspbill.agreements import (
    AgreementDraft,
    LineDraft,
    agreement_detail,
    archive_agreement,
    create_agreement,
    get_agreement,
    update_agreement,
)
from mspbill.clients import ClientDraft, archive_client, create_client
from mspbill.company import CompanyDraft, save_company
from mspbill.db.engine import Database
from mspbill.db.models import (
    AuditEntry,
    BillingFrequency,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
    LineKind,
)
from mspbill.generation import ConcurrentGenerationError, generate_period, plan_period
from mspbill.invoicing import delete_draft, issue_month, void_invoice
from mspbill.periods import Month, billing_period

# Run on SQLite and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.both_databases

OCT, NOV, DEC = Month(2026, 10), Month(2026, 11), Month(2026, 12)
JAN, FEB, MAR, APR = Month(2027, 1), Month(2027, 2), Month(2027, 3), Month(2027, 4)

SEATS, BACKUP = "Managed workstations", "Backup"


def _lines() -> list[LineDraft]:
    return [LineDraft(SEATS, "10", "50.00"), LineDraft(BACKUP, "2", "95.00", taxable=False)]


@pytest.fixture
def client_id(db) -> int:
    setup_office(db)
    return make_client(db)


def _only(db: Database, result) -> Invoice:  # type: ignore[no-untyped-def]
    assert result.created == 1, result.plan.left_out
    return invoice(db, result.invoice_ids[0])


def _service(inv: Invoice) -> list[tuple[str, int]]:
    return [(ln.description, ln.amount_cents) for ln in lines_of(inv, LineKind.SERVICE)]


def _adjustments(inv: Invoice) -> list[tuple[str, int]]:
    return [(ln.description, ln.amount_cents) for ln in lines_of(inv, LineKind.ADJUSTMENT)]


def _adjust_from(db: Database, agreement_id: int) -> dt.date | None:
    with db.session() as s:
        return get_agreement(s, agreement_id).adjust_from


# --- proration of service periods ------------------------------------------------------


def test_agreement_starting_mid_month_is_prorated_then_billed_in_full(db, client_id: int) -> None:
    aid = make_agreement(db, client_id, "2026-10-10", _lines())
    sep = generate(db, Month(2026, 9))
    assert sep.created == 0
    assert [(lo.agreement_id, lo.reason) for lo in sep.plan.left_out] == [(aid, "Starts 2026-10-10")]

    oct_inv = _only(db, generate(db, OCT))
    covered = days(d("2026-10-10"), d("2026-10-31"))
    assert covered == 22
    assert _service(oct_inv) == [
        (f"{SEATS} (10 Oct–31 Oct, 22/31 days)", prorated("10", "50.00", covered, 31)),
        (f"{BACKUP} (10 Oct–31 Oct, 22/31 days)", prorated("2", "95.00", covered, 31)),
    ]
    assert [(ln.service_start, ln.service_end) for ln in oct_inv.lines] == [(d("2026-10-10"), d("2026-10-31"))] * 2
    assert (oct_inv.period_start, oct_inv.period_end) == (d("2026-10-01"), d("2026-10-31"))
    assert oct_inv.title == "Managed IT — October 2026"
    assert oct_inv.status is InvoiceStatus.DRAFT and oct_inv.number is None

    nov_inv = _only(db, generate(db, NOV))
    assert _service(nov_inv) == [(SEATS, full("10", "50.00")), (BACKUP, full("2", "95.00"))]


def test_agreement_ending_mid_month_is_prorated_and_not_billed_after(db, client_id: int) -> None:
    aid = make_agreement(db, client_id, "2026-09-01", _lines(), end="2026-11-20")
    assert _service(_only(db, generate(db, OCT))) == [(SEATS, 50000), (BACKUP, 19000)]
    nov = _only(db, generate(db, NOV))
    covered = days(d("2026-11-01"), d("2026-11-20"))
    assert _service(nov) == [
        (f"{SEATS} (1 Nov–20 Nov, 20/30 days)", prorated("10", "50.00", covered, 30)),
        (f"{BACKUP} (1 Nov–20 Nov, 20/30 days)", prorated("2", "95.00", covered, 30)),
    ]
    dec = generate(db, DEC)
    assert dec.created == 0
    assert [(lo.agreement_id, lo.reason) for lo in dec.plan.left_out] == [(aid, "Ended 2026-11-20")]


def test_agreement_starting_and_ending_in_the_same_month(db, client_id: int) -> None:
    make_agreement(db, client_id, "2026-11-10", [LineDraft("Project support", "3", "33.33")], end="2026-11-20")
    nov = _only(db, generate(db, NOV))
    covered = days(d("2026-11-10"), d("2026-11-20"))
    assert covered == 11
    assert _service(nov) == [("Project support (10 Nov–20 Nov, 11/30 days)", prorated("3", "33.33", covered, 30))]
    assert generate(db, DEC).created == 0


def test_quarterly_agreement_starting_mid_quarter_is_billed_once_in_its_first_month(db, client_id: int) -> None:
    aid = make_agreement(db, client_id, "2026-11-15", [LineDraft("vCIO review", "1", "750.01")],
                         frequency="quarterly")
    assert generate(db, OCT).created == 0
    nov = _only(db, generate(db, NOV))
    covered = days(d("2026-11-15"), d("2026-12-31"))
    q4_days = days(d("2026-10-01"), d("2026-12-31"))
    assert (covered, q4_days) == (47, 92)
    assert (nov.period_start, nov.period_end) == (d("2026-10-01"), d("2026-12-31"))
    assert nov.title == "Managed IT — Q4 2026"
    assert _service(nov) == [("vCIO review (15 Nov–31 Dec, 47/92 days)", prorated("1", "750.01", covered, q4_days))]
    dec = generate(db, DEC)
    assert dec.created == 0
    assert [lo.reason for lo in dec.plan.left_out] == ["Draft for Q4 2026 waiting to be issued"]
    jan = _only(db, generate(db, JAN))
    assert (jan.period_start, jan.period_end) == (d("2027-01-01"), d("2027-03-31"))
    assert _service(jan) == [("vCIO review", full("1", "750.01"))]
    assert generate(db, FEB).created == 0 and generate(db, MAR).created == 0
    assert _service(_only(db, generate(db, APR))) == [("vCIO review", 75001)]
    assert [inv.period_start for inv in invoices_of(db, aid)] == [d("2026-10-01"), d("2027-01-01"), d("2027-04-01")]


def test_annual_agreement_starting_mid_year_is_billed_once_then_each_january(db, client_id: int) -> None:
    aid = make_agreement(db, client_id, "2026-11-15", [LineDraft("Domain and SSL", "1", "189.00")],
                         frequency="annual")
    assert generate(db, OCT).created == 0
    nov = _only(db, generate(db, NOV))
    covered = days(d("2026-11-15"), d("2026-12-31"))
    assert _service(nov) == [("Domain and SSL (15 Nov–31 Dec, 47/365 days)", prorated("1", "189.00", covered, 365))]
    assert (nov.period_start, nov.period_end, nov.title) == (d("2026-01-01"), d("2026-12-31"), "Managed IT — 2026")
    assert generate(db, DEC).created == 0
    assert _service(_only(db, generate(db, JAN))) == [("Domain and SSL", 18900)]
    assert generate(db, FEB).created == 0
    assert len(invoices_of(db, aid)) == 2


def test_quarterly_agreement_starting_in_the_last_month_of_a_quarter(db, client_id: int) -> None:
    make_agreement(db, client_id, "2026-12-31", [LineDraft("Review", "2", "100.00")], frequency="quarterly")
    assert generate(db, NOV).created == 0
    dec = _only(db, generate(db, DEC))
    assert _service(dec) == [("Review (31 Dec–31 Dec, 1/92 days)", prorated("2", "100.00", 1, 92))]


# --- changes to an invoiced period: adjustments on the next invoice ----------------------------


@pytest.fixture
def invoiced_through_november(db, client_id: int) -> int:
    """A monthly agreement from 1 Oct with October and November generated and issued."""
    aid = make_agreement(db, client_id, "2026-10-01", _lines())
    run_month(db, OCT)
    run_month(db, NOV)
    return aid


def _set_quantity(description: str, quantity: str):  # type: ignore[no-untyped-def]
    def edit(draft) -> None:  # type: ignore[no-untyped-def]
        line(draft, description).quantity = quantity
    return edit


def test_quantity_increase_mid_period_adds_an_adjustment_to_the_next_invoice(db, invoiced_through_november) -> None:
    aid = invoiced_through_november
    change_agreement(db, aid, _set_quantity(SEATS, "15"), effective=d("2026-11-15"))
    assert _adjust_from(db, aid) == d("2026-11-15")
    again = generate(db, NOV)
    assert again.created == 0  # November is not re-sent
    assert [lo.reason for lo in again.plan.left_out] == ["Already invoiced for November 2026"]

    dec = _only(db, generate(db, DEC))
    covered = days(d("2026-11-15"), d("2026-11-30"))
    assert covered == 16
    assert _service(dec) == [(SEATS, full("15", "50.00")), (BACKUP, full("2", "95.00"))]
    assert _adjustments(dec) == [("+5 Managed workstations from 15 Nov, 16/30 days", prorated("5", "50.00", 16, 30))]
    adj = lines_of(dec, LineKind.ADJUSTMENT)[0]
    assert (adj.period_start, adj.service_start, adj.service_end) == (d("2026-11-01"), d("2026-11-15"), d("2026-11-30"))
    assert adj.taxable is True and adj.agreement_id == aid
    assert _adjust_from(db, aid) is None
    issue(db, DEC)
    jan = _only(db, generate(db, JAN))
    assert _adjustments(jan) == [] and _service(jan) == [(SEATS, 75000), (BACKUP, 19000)]


def test_quantity_decrease_mid_period_gives_a_negative_adjustment(db, invoiced_through_november) -> None:
    aid = invoiced_through_november
    change_agreement(db, aid, _set_quantity(SEATS, "7"), effective=d("2026-11-15"))
    dec = _only(db, generate(db, DEC))
    expected = prorated("-3", "50.00", 16, 30)  # (7 − 10) × $50 × 16/30, rounded once
    assert expected == -prorated("3", "50.00", 16, 30) < 0
    assert _adjustments(dec) == [("−3 Managed workstations from 15 Nov, 16/30 days", expected)]
    assert _service(dec)[0] == (SEATS, full("7", "50.00"))


def test_price_change_mid_period(db, invoiced_through_november) -> None:
    aid = invoiced_through_november

    def edit(draft) -> None:  # type: ignore[no-untyped-def]
        line(draft, SEATS).unit_price = "55.00"
    change_agreement(db, aid, edit, effective=d("2026-11-11"))
    dec = _only(db, generate(db, DEC))
    covered = days(d("2026-11-11"), d("2026-11-30"))
    # 10 × ($55 − $50) × 20/30, rounded once (33.33…), not 366.67 − 333.33.
    expected = prorated("10", "5.00", covered, 30)
    assert expected == 3333
    assert _adjustments(dec) == [
        ("Managed workstations: price $50.00 → $55.00 from 11 Nov, 20/30 days", expected)]
    assert _service(dec)[0] == (SEATS, full("10", "55.00"))


def test_quantity_and_price_change_together(db, invoiced_through_november) -> None:
    aid = invoiced_through_november

    def edit(draft) -> None:  # type: ignore[no-untyped-def]
        line(draft, SEATS).quantity, line(draft, SEATS).unit_price = "12", "45.00"
    change_agreement(db, aid, edit, effective=d("2026-11-21"))
    dec = _only(db, generate(db, DEC))
    # (12 × $45 − 10 × $50) × 10/30, the exact difference rounded once.
    expected = prorated("1", str(Decimal("12") * Decimal("45.00") - Decimal("10") * Decimal("50.00")), 10, 30)
    assert _adjustments(dec) == [
        ("Managed workstations: 10 × $50.00 → 12 × $45.00 from 21 Nov, 10/30 days", expected)]


def test_line_added_mid_period(db, invoiced_through_november) -> None:
    aid = invoiced_through_november

    def edit(draft) -> None:  # type: ignore[no-untyped-def]
        draft.lines.append(LineDraft("Firewall", "1", "40.00"))
    change_agreement(db, aid, edit, effective=d("2026-11-20"))
    dec = _only(db, generate(db, DEC))
    assert _adjustments(dec) == [("Added Firewall (1 × $40.00) from 20 Nov, 11/30 days",
                                  prorated("1", "40.00", 11, 30))]
    assert _service(dec) == [(SEATS, 50000), (BACKUP, 19000), ("Firewall", 4000)]


def test_line_removed_mid_period(db, invoiced_through_november) -> None:
    aid = invoiced_through_november

    def edit(draft) -> None:  # type: ignore[no-untyped-def]
        draft.lines = [ln for ln in draft.lines if ln.description != BACKUP]
    change_agreement(db, aid, edit, effective=d("2026-11-15"))
    dec = _only(db, generate(db, DEC))
    assert _adjustments(dec) == [("Removed: Backup (2 × $95.00) from 15 Nov, 16/30 days",
                                  -prorated("2", "95.00", 16, 30))]
    assert lines_of(dec, LineKind.ADJUSTMENT)[0].taxable is False  # follows the line it adjusts
    assert _service(dec) == [(SEATS, 50000)]


def test_end_date_inside_an_invoiced_period_credits_on_an_adjustments_only_invoice(db, count_rows) -> None:
    setup_office(db)
    cid = make_client(db, tax_rate="8.25")
    aid = make_agreement(db, cid, "2026-10-01", _lines())
    run_month(db, OCT)
    run_month(db, NOV)

    def edit(draft) -> None:  # type: ignore[no-untyped-def]
        draft.end_date = "2026-11-20"
    change_agreement(db, aid, edit)
    assert _adjust_from(db, aid) == d("2026-11-21")

    result = generate(db, DEC)
    dec = _only(db, result)
    covered = days(d("2026-11-21"), d("2026-11-30"))
    seats, backup = -prorated("10", "50.00", covered, 30), -prorated("2", "95.00", covered, 30)
    assert _adjustments(dec) == [
        ("Agreement ended: Managed workstations (10 × $50.00) from 21 Nov, 10/30 days", seats),
        ("Agreement ended: Backup (2 × $95.00) from 21 Nov, 10/30 days", backup),
    ]
    assert _service(dec) == []
    assert result.plan.invoices[0].notes == "adjustments only"
    assert dec.title == "Managed IT — adjustments"
    # Filed under the month's last day: a key no regular period uses.
    assert (dec.period_start, dec.period_end) == (d("2026-12-31"), d("2026-12-31"))
    tax = tax_of(seats, "8.25")  # only the seats are taxable
    assert (dec.subtotal_cents, dec.tax_cents, dec.total_cents) == (seats + backup, tax, seats + backup + tax)
    assert dec.total_cents < 0

    numbers = issue(db, DEC)
    assert len(numbers) == 1
    dec = invoice(db, dec.id)
    assert dec.status is InvoiceStatus.PAID and dec.number == numbers[0]
    assert credit_entries(db, cid) == [("negative_invoice", -dec.total_cents)]
    assert credit_balance(db, cid) == -dec.total_cents

    # The credit pays toward the client's next invoice.
    next_id = one_time(db, cid, ("Consulting", "1", "500.00"))
    issue_ids(db, [next_id])
    assert invoice(db, next_id).credit_applied_cents == -dec.total_cents
    assert credit_balance(db, cid) == 0

    # Nothing more to do: December again, January and later create nothing.
    before = count_rows(db, Invoice)
    assert generate(db, DEC).created == 0
    assert generate(db, JAN).created == 0
    assert count_rows(db, Invoice) == before
    assert _adjust_from(db, aid) is None


def test_end_date_moved_earlier_than_several_invoiced_periods(db, client_id: int) -> None:
    aid = make_agreement(db, client_id, "2026-10-01", [LineDraft(SEATS, "10", "50.00")])
    for m in (OCT, NOV, DEC):
        run_month(db, m)

    def edit(draft) -> None:  # type: ignore[no-untyped-def]
        draft.end_date = "2026-11-10"
    change_agreement(db, aid, edit)
    jan = _only(db, generate(db, JAN))
    assert _adjustments(jan) == [
        ("Agreement ended: Managed workstations (10 × $50.00) from 11 Nov, 20/30 days", -prorated("10", "50", 20, 30)),
        ("Agreement ended: Managed workstations (10 × $50.00) from 1 Dec, 31/31 days", -50000),
    ]
    assert jan.period_start == d("2027-01-31") and jan.total_cents == -prorated("10", "50", 20, 30) - 50000


def test_future_dated_change_prorates_the_period_between_old_and_new_terms(db, invoiced_through_november) -> None:
    aid = invoiced_through_november
    change_agreement(db, aid, _set_quantity(SEATS, "12"), effective=d("2026-12-15"))
    dec = _only(db, generate(db, DEC))
    assert _service(dec) == [
        (f"{SEATS} (1 Dec–14 Dec, 14/31 days)", prorated("10", "50.00", 14, 31)),
        (f"{SEATS} (15 Dec–31 Dec, 17/31 days)", prorated("12", "50.00", 17, 31)),
        (BACKUP, 19000),
    ]
    assert _adjustments(dec) == []
    assert _adjust_from(db, aid) is None
    issue(db, DEC)
    jan = _only(db, generate(db, JAN))
    assert _service(jan) == [(SEATS, full("12", "50.00")), (BACKUP, 19000)]
    assert _adjustments(jan) == []


def test_change_while_the_current_period_is_already_invoiced_waits_for_the_following_run(
        db, invoiced_through_november, count_rows) -> None:
    aid = invoiced_through_november
    dec_id = generate(db, DEC).invoice_ids[0]  # December's draft already exists
    change_agreement(db, aid, _set_quantity(SEATS, "15"), effective=d("2026-11-15"))

    rerun = generate(db, DEC)
    assert rerun.created == 0
    assert _adjust_from(db, aid) == d("2026-11-15")  # kept for the next run
    assert _adjustments(invoice(db, dec_id)) == []  # the existing draft is not touched

    issue(db, DEC)
    jan = _only(db, generate(db, JAN))
    assert _service(jan) == [(SEATS, 75000), (BACKUP, 19000)]
    assert _adjustments(jan) == [
        ("+5 Managed workstations from 15 Nov, 16/30 days", prorated("5", "50.00", 16, 30)),
        ("+5 Managed workstations from 1 Dec, 31/31 days", prorated("5", "50.00", 31, 31)),
    ]
    assert _adjust_from(db, aid) is None
    issue(db, JAN)

    # Once billed, nothing more is adjusted.
    before = (count_rows(db, Invoice), count_rows(db, InvoiceLine))
    assert generate(db, JAN).created == 0
    assert (count_rows(db, Invoice), count_rows(db, InvoiceLine)) == before
    feb = _only(db, generate(db, FEB))
    assert _adjustments(feb) == []


def test_change_to_a_period_invoiced_ahead_waits_until_that_period_is_past(db, invoiced_through_november) -> None:
    aid = invoiced_through_november
    run_month(db, DEC)
    change_agreement(db, aid, _set_quantity(SEATS, "11"), effective=d("2026-12-15"))
    assert generate(db, DEC).created == 0
    assert _adjust_from(db, aid) == d("2026-12-15")
    jan = _only(db, generate(db, JAN))
    assert _adjustments(jan) == [("+1 Managed workstations from 15 Dec, 17/31 days", prorated("1", "50.00", 17, 31))]
    assert _adjust_from(db, aid) is None


def test_quarterly_change_inside_the_invoiced_quarter_is_adjusted_on_the_next_quarters_invoice(
        db, client_id: int) -> None:
    aid = make_agreement(db, client_id, "2026-10-01", [LineDraft("vCIO review", "2", "300.00")],
                         frequency="quarterly")
    run_month(db, OCT)
    change_agreement(db, aid, _set_quantity("vCIO review", "3"), effective=d("2026-11-15"))
    assert generate(db, NOV).created == 0 and generate(db, DEC).created == 0  # Q4 is already invoiced
    assert _adjust_from(db, aid) == d("2026-11-15")
    jan = _only(db, generate(db, JAN))
    covered = days(d("2026-11-15"), d("2026-12-31"))
    assert _service(jan) == [("vCIO review", full("3", "300.00"))]
    assert _adjustments(jan) == [("+1 vCIO review from 15 Nov, 47/92 days", prorated("1", "300.00", covered, 92))]
    assert _adjust_from(db, aid) is None


def test_quarterly_agreement_ended_inside_an_invoiced_quarter_is_credited_at_the_next_run(
        db, client_id: int) -> None:
    aid = make_agreement(db, client_id, "2026-10-01", [LineDraft("vCIO review", "1", "900.00")],
                         frequency="quarterly")
    run_month(db, OCT)

    def edit(draft) -> None:  # type: ignore[no-untyped-def]
        draft.end_date = "2026-11-30"
    change_agreement(db, aid, edit)
    # No further invoice will come for Q4, so the unused days are credited now,
    # on an invoice of their own filed under the month's last day.
    dec = _only(db, generate(db, DEC))
    assert dec.title == "Managed IT — adjustments" and (dec.period_start, dec.period_end) == (
        d("2026-12-31"), d("2026-12-31"))
    assert _adjustments(dec) == [("Agreement ended: vCIO review (1 × $900.00) from 1 Dec, 31/92 days",
                                  -prorated("1", "900.00", 31, 92))]
    assert generate(db, DEC).created == 0
    assert generate(db, JAN).created == 0 and generate(db, APR).created == 0


def test_a_change_that_is_undone_before_the_next_run_adjusts_nothing(db, invoiced_through_november) -> None:
    aid = invoiced_through_november
    change_agreement(db, aid, _set_quantity(SEATS, "15"), effective=d("2026-11-15"))
    change_agreement(db, aid, _set_quantity(SEATS, "10"), effective=d("2026-11-15"))
    dec = _only(db, generate(db, DEC))
    assert _adjustments(dec) == []
    assert _service(dec)[0] == (SEATS, 50000)


def test_two_changes_in_one_invoiced_period(db, invoiced_through_november) -> None:
    aid = invoiced_through_november
    change_agreement(db, aid, _set_quantity(SEATS, "12"), effective=d("2026-11-11"))
    change_agreement(db, aid, _set_quantity(SEATS, "14"), effective=d("2026-11-21"))
    dec = _only(db, generate(db, DEC))
    assert _adjustments(dec) == [
        ("+2 Managed workstations 11 Nov–20 Nov, 10/30 days", prorated("2", "50.00", 10, 30)),
        ("+4 Managed workstations from 21 Nov, 10/30 days", prorated("4", "50.00", 10, 30)),
    ]


def test_a_voided_period_is_not_billed_again_by_an_adjustment(db, invoiced_through_november) -> None:
    aid = invoiced_through_november
    nov_id = invoices_of(db, aid)[1].id
    with db.write_session() as s, s.begin():
        void_invoice(s, nov_id, "Billed by mistake")
    change_agreement(db, aid, _set_quantity(SEATS, "15"), effective=d("2026-11-15"))
    dec = _only(db, generate(db, DEC))
    assert _adjustments(dec) == []


def test_deleting_a_draft_that_carried_adjustments_and_generating_again_keeps_them(
        db, invoiced_through_november) -> None:
    aid = invoiced_through_november
    change_agreement(db, aid, _set_quantity(SEATS, "15"), effective=d("2026-11-15"))
    dec = _only(db, generate(db, DEC))
    assert len(_adjustments(dec)) == 1
    with db.write_session() as s, s.begin():
        delete_draft(s, dec.id)
    again = _only(db, generate(db, DEC))
    assert _adjustments(again) == _adjustments(dec)


# --- tax and the autopay incentive -----------------------------------------------------------------


def test_tax_is_the_client_rate_on_taxable_lines_only(db) -> None:
    setup_office(db)
    cid = make_client(db, tax_rate="8.875")
    make_agreement(db, cid, "2026-11-01", [LineDraft(SEATS, "3", "33.33"), LineDraft("Licences", "7", "12.99", False),
                                           LineDraft("Backup TB", "1.5", "95.00")])
    inv = _only(db, generate(db, NOV))
    taxable = full("3", "33.33") + full("1.5", "95.00")
    subtotal = taxable + full("7", "12.99")
    assert inv.tax_rate_percent == Decimal("8.875")
    assert (inv.subtotal_cents, inv.tax_cents, inv.total_cents) == (
        subtotal, tax_of(taxable, "8.875"), subtotal + tax_of(taxable, "8.875"))
    assert inv.tax_cents == half_up(Decimal("8.875") * taxable / 100)


def test_tax_exempt_client_pays_no_tax(db) -> None:
    setup_office(db)
    cid = make_client(db, tax_rate="0")
    make_agreement(db, cid, "2026-11-01", _lines())
    inv = _only(db, generate(db, NOV))
    assert (inv.tax_cents, inv.total_cents) == (0, 69000)


def test_autopay_discount_is_its_own_negative_lines_per_tax_treatment(db) -> None:
    setup_office(db, autopay_discount_percent="2")
    autopay = make_client(db, "Autopay Co", tax_rate="8.25", autopay=True)
    manual = make_client(db, "Manual Co", tax_rate="8.25")
    make_agreement(db, autopay, "2026-11-01", _lines())
    make_agreement(db, manual, "2026-11-01", _lines())
    result = generate(db, NOV)
    assert result.created == 2
    by_client = {inv.client_id: inv for inv in (invoice(db, i) for i in result.invoice_ids)}

    inv = by_client[autopay]
    taxable_cut, other_cut = tax_of(50000, "2"), tax_of(19000, "2")  # 2 % of each
    assert [(ln.description, ln.amount_cents, ln.taxable) for ln in lines_of(inv, LineKind.DISCOUNT)] == [
        ("Autopay discount (2%) on taxable services", -taxable_cut, True),
        ("Autopay discount (2%) on non-taxable services", -other_cut, False),
    ]
    taxable = 50000 - taxable_cut
    assert inv.subtotal_cents == 69000 - taxable_cut - other_cut
    assert inv.tax_cents == tax_of(taxable, "8.25")
    assert inv.total_cents == inv.subtotal_cents + inv.tax_cents

    plain = by_client[manual]
    assert lines_of(plain, LineKind.DISCOUNT) == []
    assert plain.tax_cents == tax_of(50000, "8.25") and plain.total_cents == 69000 + tax_of(50000, "8.25")


def test_autopay_discount_single_line_when_all_lines_are_taxable_and_none_without_a_percentage(db) -> None:
    setup_office(db, autopay_discount_percent="1.5")
    cid = make_client(db, autopay=True, tax_rate="5")
    make_agreement(db, cid, "2026-11-01", [LineDraft(SEATS, "3", "33.33")])
    inv = _only(db, generate(db, NOV))
    cut = half_up(Decimal(full("3", "33.33")) * Decimal("1.5") / 100)
    assert [(ln.description, ln.amount_cents) for ln in lines_of(inv, LineKind.DISCOUNT)] == [
        ("Autopay discount (1.5%)", -cut)]

    other = make_client(db, "No Incentive", autopay=True)
    with db.write_session() as s, s.begin():
        save_company(s, CompanyDraft(name="Acme IT", autopay_discount_percent="0"))
    make_agreement(db, other, "2026-12-01", [LineDraft(SEATS, "1", "10.00")])
    dec = [invoice(db, i) for i in generate(db, DEC).invoice_ids]
    assert all(lines_of(inv, LineKind.DISCOUNT) == [] for inv in dec)


# --- idempotence, the unique constraint and audit --------------------------------------------------


def test_generating_a_month_twice_creates_nothing_new(db, client_id: int, count_rows) -> None:
    make_agreement(db, client_id, "2026-10-15", _lines())
    make_agreement(db, client_id, "2026-11-15", [LineDraft("Review", "1", "500")], frequency="quarterly",
                   name="vCIO")
    first = generate(db, NOV)
    assert first.created == 2
    counts = (count_rows(db, Invoice), count_rows(db, InvoiceLine), count_rows(db, AuditEntry))
    second = generate(db, NOV)
    assert second.created == 0 and second.plan.invoices == []
    assert (count_rows(db, Invoice), count_rows(db, InvoiceLine), count_rows(db, AuditEntry)) == counts
    assert sorted(lo.reason for lo in second.plan.left_out) == [
        "Draft for November 2026 waiting to be issued", "Draft for Q4 2026 waiting to be issued"]
    with db.session() as s:
        assert plan_period(s, NOV).invoices == []


def test_database_refuses_a_second_invoice_for_the_same_agreement_and_period(db, client_id: int) -> None:
    aid = make_agreement(db, client_id, "2026-11-01", _lines())
    generate(db, NOV)
    with pytest.raises(IntegrityError) as excinfo:
        with db.write_session() as s, s.begin():
            s.execute(insert(Invoice).values(kind=InvoiceKind.INVOICE, status=InvoiceStatus.DRAFT,
                                             client_id=client_id, agreement_id=aid, currency="USD",
                                             period_start=d("2026-11-01"), period_end=d("2026-11-30")))
    assert "agreement_id" in str(excinfo.value.orig) or "uq_invoices_agreement_period" in str(excinfo.value.orig)
    # Another agreement may have the same period, and one-time invoices have no agreement.
    other = make_agreement(db, client_id, "2026-11-01", _lines(), name="Other")
    assert generate(db, NOV).invoice_ids and len(invoices_of(db, other)) == 1


def test_generated_drafts_are_audited(db, client_id: int) -> None:
    make_agreement(db, client_id, "2026-10-10", _lines())
    inv_id = generate(db, OCT).invoice_ids[0]
    with db.session() as s:
        entries = audit.history(s, "invoice", inv_id)
    assert [e.action for e in entries] == ["invoice.generated"]
    assert "Managed IT — October 2026" in entries[0].summary
    assert entries[0].details["period"] == "2026-10" and entries[0].details["notes"] == "prorated"  # type: ignore[index]


def test_archived_agreements_and_clients_are_not_generated(db, client_id: int) -> None:
    a1 = make_agreement(db, client_id, "2026-11-01", _lines())
    other = make_client(db, "Gone Co")
    make_agreement(db, other, "2026-11-01", _lines())
    with db.write_session() as s, s.begin():
        archive_agreement(s, a1)
        archive_client(s, other)
    assert generate(db, NOV).created == 0


def test_a_stale_plan_raises_concurrent_generation_error_and_writes_nothing(db, client_id: int, count_rows,
                                                                            monkeypatch) -> None:
    """The loser of a race planned before the winner committed: its insert hits the constraint."""
    make_agreement(db, client_id, "2026-11-01", _lines())
    with db.session() as s:
        stale = plan_period(s, NOV)
    assert generate(db, NOV).created == 1
    counts = (count_rows(db, Invoice), count_rows(db, InvoiceLine), count_rows(db, AuditEntry))
    monkeypatch.setattr("mspbill.generation.plan_period", lambda session, month: stale)
    with pytest.raises(ConcurrentGenerationError) as excinfo:
        with db.write_session() as s, s.begin():
            generate_period(s, NOV)
    assert "created nothing" in str(excinfo.value)
    assert (count_rows(db, Invoice), count_rows(db, InvoiceLine), count_rows(db, AuditEntry)) == counts


def test_generation_from_two_threads_at_once_makes_one_invoice_per_agreement(db, tmp_path, count_rows) -> None:
    setup_office(db)
    clients = [make_client(db, f"Client {i:02d}") for i in range(12)]
    agreements = [make_agreement(db, cid, "2026-10-20", _lines()) for cid in clients]
    other = Database(db.url)  # a second "desktop" on the same file
    barrier = threading.Barrier(2)
    outcomes: list[object] = [None, None]

    def run(slot: int, database: Database) -> None:
        barrier.wait()
        try:
            with database.write_session() as s, s.begin():
                outcomes[slot] = generate_period(s, NOV).created
        except ConcurrentGenerationError as exc:
            outcomes[slot] = exc
        except Exception as exc:  # pragma: no cover - reported below
            outcomes[slot] = exc

    threads = [threading.Thread(target=run, args=(i, database)) for i, database in enumerate((db, other))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    other.dispose()
    created = [o for o in outcomes if isinstance(o, int)]
    errors = [o for o in outcomes if not isinstance(o, int)]
    assert all(isinstance(e, ConcurrentGenerationError) for e in errors), errors
    assert sum(created) == len(agreements) and (0 in created or errors)
    with db.session() as s:
        per = dict(s.execute(select(Invoice.agreement_id, func.count(Invoice.id)).group_by(Invoice.agreement_id)).all())
        line_count = s.scalar(select(func.count(InvoiceLine.id)))
    assert per == {aid: 1 for aid in agreements}
    assert line_count == 2 * len(agreements)  # nothing half-written
    assert count_rows(db, AuditEntry) - len(clients) - len(agreements) - 1 == len(agreements)


# --- properties -----------------------------------------------------------------------------------

_line_st = st.tuples(
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal(500), places=2),
    st.integers(min_value=0, max_value=500_000),
    st.booleans())
_agreement_st = st.fixed_dictionaries({
    "start": st.dates(min_value=dt.date(2026, 1, 1), max_value=dt.date(2026, 12, 31)),
    "length": st.one_of(st.none(), st.integers(min_value=0, max_value=400)),
    "frequency": st.sampled_from(["monthly", "quarterly", "annual"]),
    "lines": st.lists(_line_st, min_size=1, max_size=4),
})


def _create_in(session, client_id: int, spec: dict) -> int:  # type: ignore[type-arg]
    end = None if spec["length"] is None else spec["start"] + dt.timedelta(days=spec["length"])
    return create_agreement(session, AgreementDraft(
        client_id=client_id, name="Prop", start_date=spec["start"], end_date=end, frequency=spec["frequency"],
        lines=[LineDraft(f"Line {i}", f"{q:f}", f"{Decimal(p) / 100:.2f}", t)
               for i, (q, p, t) in enumerate(spec["lines"])])).id


class _Rollback(Exception):
    pass


def _in_rolled_back_transaction(db: Database, body) -> None:  # type: ignore[no-untyped-def]
    """Run body(session) in a write transaction that is always rolled back (one example, no trace)."""
    try:
        with db.write_session() as s, s.begin():
            body(s)
            raise _Rollback
    except _Rollback:
        pass


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=_agreement_st, rate=st.decimals(min_value=0, max_value=Decimal("15"), places=3),
       autopay=st.booleans(), discount=st.sampled_from(["0", "2", "3.5"]))
def test_generated_invoices_total_is_lines_plus_tax(db, spec, rate, autopay, discount) -> None:
    def body(s) -> None:  # type: ignore[no-untyped-def]
        save_company(s, CompanyDraft(name="Acme IT", autopay_discount_percent=discount))
        cid = create_client(s, ClientDraft(legal_name="Prop Co", tax_rate=str(rate), autopay=autopay)).id
        _create_in(s, cid, spec)
        first = Month.of(spec["start"])
        for month in (first, first.shift(1), first.shift(3)):
            for invoice_id in generate_period(s, month).invoice_ids:
                inv = s.get(Invoice, invoice_id)
                assert inv is not None
                line_sum = sum(ln.amount_cents for ln in inv.lines)
                taxable = sum(ln.amount_cents for ln in inv.lines if ln.taxable)
                assert inv.subtotal_cents == line_sum
                assert inv.tax_cents == half_up(rate * taxable / 100)
                assert inv.total_cents == line_sum + inv.tax_cents
                service = [ln for ln in inv.lines if ln.kind is LineKind.SERVICE]
                assert service and all(ln.amount_cents >= 0 for ln in service)
                assert bool(lines_of(inv, LineKind.DISCOUNT)) <= (autopay and discount != "0")
    _in_rolled_back_transaction(db, body)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=st.lists(_agreement_st, min_size=1, max_size=4), first=st.integers(min_value=0, max_value=11),
       run_length=st.integers(min_value=1, max_value=8))
def test_generation_is_idempotent_and_bills_each_period_once(db, specs, first, run_length) -> None:
    def body(s) -> None:  # type: ignore[no-untyped-def]
        cid = create_client(s, ClientDraft(legal_name="Prop Co")).id
        ids = {_create_in(s, cid, spec): spec for spec in specs}
        months = [Month(2026, 1).shift(first + k) for k in range(run_length)]
        for month in months:
            generate_period(s, month)
            again = generate_period(s, month)
            assert again.created == 0 and again.plan.invoices == []
        for aid, spec in ids.items():
            freq = BillingFrequency(spec["frequency"])
            end = None if spec["length"] is None else spec["start"] + dt.timedelta(days=spec["length"])
            expected = set()
            for m in months:
                period = billing_period(freq, m.first_day)
                if spec["start"] <= m.last_day and (end is None or end >= period.start):
                    expected.add(period.start)
            got = list(s.scalars(select(Invoice.period_start).where(Invoice.agreement_id == aid)))
            assert sorted(got) == sorted(expected)
    _in_rolled_back_transaction(db, body)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(old=st.tuples(st.integers(min_value=1, max_value=50), st.integers(min_value=1, max_value=20_000)),
       new=st.tuples(st.integers(min_value=1, max_value=50), st.integers(min_value=1, max_value=20_000)),
       day=st.integers(min_value=2, max_value=30))
def test_after_an_adjustment_the_period_is_billed_as_the_new_terms_say(db, old, new, day) -> None:
    """Service plus adjustment for November comes within a cent of billing the days at
    their terms exactly, and the next runs adjust nothing more."""
    def body(s) -> None:  # type: ignore[no-untyped-def]
        save_company(s, CompanyDraft(name="Acme IT"))
        cid = create_client(s, ClientDraft(legal_name="Prop Co")).id
        aid = create_agreement(s, AgreementDraft(client_id=cid, name="Prop", start_date="2026-11-01", lines=[
            LineDraft("Seats", str(old[0]), f"{Decimal(old[1]) / 100:.2f}")])).id
        generate_period(s, NOV)
        issue_month(s, NOV, dt.date(2026, 11, 1))
        draft = agreement_detail(s, aid).draft
        draft.lines[0].quantity, draft.lines[0].unit_price = str(new[0]), f"{Decimal(new[1]) / 100:.2f}"
        effective = dt.date(2026, 11, day)
        update_agreement(s, aid, draft, effective_date=effective)
        generate_period(s, DEC)
        nov_lines = list(s.scalars(select(InvoiceLine).where(InvoiceLine.agreement_id == aid,
                                                             InvoiceLine.period_start == d("2026-11-01"))))
        billed = sum(ln.amount_cents for ln in nov_lines)
        before, after = day - 1, 30 - (day - 1)
        exact = (Decimal(old[0] * old[1] * before) + Decimal(new[0] * new[1] * after)) / 30
        assert abs(billed - exact) <= 1
        adjustments = [ln for ln in nov_lines if ln.kind is LineKind.ADJUSTMENT]
        if old == new:
            assert adjustments == []
        else:
            assert [ln.amount_cents for ln in adjustments] == [
                half_up(Decimal(new[0] * new[1] - old[0] * old[1]) * after / 30)]
        assert generate_period(s, DEC).created == 0
        jan = s.get(Invoice, generate_period(s, JAN).invoice_ids[0])
        assert jan is not None and [ln.kind for ln in jan.lines] == [LineKind.SERVICE]
        assert jan.lines[0].amount_cents == new[0] * new[1]
    _in_rolled_back_transaction(db, body)


def test_an_end_date_removed_after_its_credit_bills_the_following_month_again(db, invoiced_through_november) -> None:
    aid = invoiced_through_november

    def end(draft) -> None:  # type: ignore[no-untyped-def]
        draft.end_date = "2026-11-20"

    def renew(draft) -> None:  # type: ignore[no-untyped-def]
        draft.end_date = ""
    change_agreement(db, aid, end)
    run_month(db, DEC)  # the credit for 21–30 Nov, on an adjustments-only invoice
    change_agreement(db, aid, renew)  # the client stays after all
    generate(db, DEC)
    generate(db, JAN)
    billed_dec = [ln for inv in invoices_of(db, aid) for ln in inv.lines
                  if ln.kind is LineKind.SERVICE and ln.period_start == d("2026-12-01")]
    assert billed_dec, "December was never billed"
