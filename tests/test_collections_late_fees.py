"""Late fees (mspbill.collections.late_fees) on a real SQLite file: off by default; flat after
N days (the exact day); a percentage of the balance rounded half up, worked by hand; monthly
fees a month apart and only the latest after a gap; the minimum balance; another currency;
no fee on a fee invoice; billed on the next generated invoice (untaxed, no autopay discount,
in the month-end preview's total) or on an invoice of its own; a deleted draft gives the fee
back; waiving pending, on a draft and on an issued invoice (a credit note of exactly the fee).

Invoices are issued on ISSUED (2 Mar 2026) with 30-day terms: due DUE (1 Apr 2026)."""

from __future__ import annotations

import datetime as dt

import pytest
from billing_helpers import (
    d,
    issue_ids,
    make_agreement,
    make_client,
    one_time,
    setup_office,
)
from sqlalchemy import select
from test_collections_reminders import (
    DUE,
    ISSUED,
    configure_mail,
    open_invoice,
    pay_by_invoice,
    run,
)

from mspbill import audit
from mspbill.agreements import LineDraft
from mspbill.batch.plan import preview_batch
from mspbill.clients import client_detail, update_client
from mspbill.collections.late_fees import (
    add_months,
    assess_late_fees,
    fee_totals,
    list_fees,
    plan_late_fees,
    waive_fee,
)
from mspbill.collections.settings import (
    LateFeeDraft,
    save_late_fees,
    validate_late_fees,
)
from mspbill.db.engine import Database
from mspbill.db.models import (
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
    LateFee,
    LineKind,
    OutboxMessage,
)
from mspbill.generation import generate_period
from mspbill.invoicing import delete_draft, issue_invoices
from mspbill.mail.outbox import KIND_INVOICE
from mspbill.periods import Month
from mspbill.validation import ValidationError

# Run on SQLite and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.both_databases

MAY = Month(2026, 5)
TEN_DAYS = DUE + dt.timedelta(days=10)


def set_fees(db: Database, **fields: object) -> None:
    values: dict[str, object] = {"enabled": True, "kind": "flat", "flat_amount": "25.00", "after_days": 10}
    values.update(fields)
    with db.write_session() as s, s.begin():
        save_late_fees(s, LateFeeDraft(**values))  # type: ignore[arg-type]


def fees(db: Database, **filters: object) -> list[LateFee]:
    with db.session() as s:
        stmt = select(LateFee).order_by(LateFee.invoice_id, LateFee.sequence)
        for name, value in filters.items():
            stmt = stmt.where(getattr(LateFee, name) == value)
        rows = list(s.scalars(stmt))
        s.expunge_all()
        return rows


def the_fee(db: Database) -> LateFee:
    [fee] = fees(db)
    return fee


def load(db: Database, invoice_id: int | None) -> Invoice:
    assert invoice_id is not None
    with db.session() as s:
        inv = s.get(Invoice, invoice_id)
        assert inv is not None
        _ = list(inv.lines)
        s.expunge_all()
        return inv


def waive(db: Database, fee_id: int, reason: str, today: dt.date = TEN_DAYS) -> None:
    with db.write_session() as s, s.begin():
        waive_fee(s, fee_id, reason, today=today)


@pytest.fixture
def office(db: Database) -> Database:
    setup_office(db, name="Acme IT", autopay_discount_percent="5")
    return db


# --- when, and how much --------------------------------------------------------------------


def test_late_fees_are_off_by_default(office: Database) -> None:
    pay_by_invoice(office)
    report = run(office, DUE + dt.timedelta(days=200))
    assert not report.fees.enabled and report.fees.assessed == [] and report.fees.lines() == []
    with office.session() as s:
        assert not plan_late_fees(s, DUE + dt.timedelta(days=200)).enabled
    assert fees(office) == []


def test_a_flat_fee_falls_due_exactly_n_days_after_the_due_date_and_only_once(office: Database) -> None:
    _, invoice_id = pay_by_invoice(office)
    set_fees(office, flat_amount="25.00", after_days=10, repeat="once")
    assert run(office, DUE + dt.timedelta(days=9)).fees.assessed == []
    assert fees(office) == []
    report = run(office, DUE + dt.timedelta(days=10))
    assert [(f.sequence, f.amount_cents, f.days_overdue) for f in report.fees.assessed] == [(1, 2500, 10)]
    for day in (DUE + dt.timedelta(days=10), DUE + dt.timedelta(days=41), DUE + dt.timedelta(days=100)):
        run(office, day)
    fee = the_fee(office)
    assert (fee.invoice_id, fee.sequence, fee.amount_cents, fee.currency, fee.assessed_on, fee.days_overdue,
            fee.basis_cents) == (invoice_id, 1, 2500, "USD", DUE + dt.timedelta(days=10), 10, 123457)
    assert fee.description == "Late fee: INV-000001 10 days overdue"
    with office.session() as s:
        assert "invoice.late_fee" in [e.action for e in audit.history(s, "invoice", invoice_id)]


@pytest.mark.parametrize(("balance", "expected_cents", "shown"), [
    ("1234.57", 1852, "$1,234.57"),   # 1.5 % of $1,234.57 = $18.51855 → $18.52
    ("1235.00", 1853, "$1,235.00"),   # 1.5 % of $1,235.00 = $18.525 exactly: half up → $18.53 (to even: $18.52)
    ("0.33", 0, "$0.33"),             # 1.5 % of $0.33 = $0.00495 → $0.00: no fee of nothing
])
def test_a_percentage_fee_is_the_balance_times_the_rate_rounded_half_up(office: Database, balance: str,
                                                                        expected_cents: int, shown: str) -> None:
    pay_by_invoice(office, amount=balance)
    set_fees(office, kind="percent", flat_amount="0", percent="1.5", after_days=30)
    run(office, DUE + dt.timedelta(days=30))
    if not expected_cents:
        assert fees(office) == []
        return
    fee = the_fee(office)
    assert (fee.amount_cents, fee.basis_cents) == (expected_cents, int(balance.replace(".", "")))
    assert fee.description == f"Late fee: INV-000001 30 days overdue (1.5 % of {shown})"


def test_a_percentage_fee_works_on_what_is_still_owed(office: Database) -> None:
    from mspbill.payments.manual import record_payment

    _, invoice_id = pay_by_invoice(office, amount="1000.00")
    with office.write_session() as s, s.begin():
        record_payment(s, invoice_id, "200.00", "check", received_on=ISSUED, today=ISSUED)
    set_fees(office, kind="percent", percent="2", after_days=5)
    run(office, DUE + dt.timedelta(days=5))
    assert (the_fee(office).basis_cents, the_fee(office).amount_cents) == (80000, 1600)


def test_monthly_fees_come_a_month_apart_and_after_a_gap_only_the_latest(office: Database) -> None:
    pay_by_invoice(office)
    set_fees(office, flat_amount="10.00", after_days=30, repeat="monthly")
    assert run(office, d("2026-04-30")).fees.assessed == []
    run(office, d("2026-05-01"))
    run(office, d("2026-05-01"))
    run(office, d("2026-05-31"))
    assert [f.sequence for f in fees(office)] == [1]
    run(office, d("2026-06-01"))
    run(office, d("2026-06-01"))
    assert [(f.sequence, f.assessed_on) for f in fees(office)] == [(1, d("2026-05-01")), (2, d("2026-06-01"))]
    # The computer was off from 2 June to 15 September: 1 July, 1 August and 1 September fell meanwhile.
    report = run(office, d("2026-09-15"))
    assert [(f.sequence, f.days_overdue) for f in report.fees.assessed] == [(5, 153)]   # 1 Apr → 1 Sep
    assert [f.sequence for f in fees(office)] == [1, 2, 5]
    assert fees(office)[-1].description == "Late fee: INV-000001 153 days overdue, month 5"
    run(office, d("2026-09-30"))
    assert [f.sequence for f in fees(office)] == [1, 2, 5]


def test_add_months_keeps_the_day_or_takes_the_months_last() -> None:
    assert add_months(d("2026-01-31"), 1) == d("2026-02-28")
    assert add_months(d("2028-01-31"), 1) == d("2028-02-29")
    assert add_months(d("2026-11-30"), 2) == d("2027-01-30")
    assert add_months(d("2026-12-15"), 0) == d("2026-12-15")


def test_no_fee_on_a_balance_under_the_minimum(office: Database) -> None:
    _, small = pay_by_invoice(office, "Small Balance Co", amount="99.99")
    _, enough = pay_by_invoice(office, "Enough Balance Co", amount="100.00")
    set_fees(office, min_balance="100.00")
    report = run(office, TEN_DAYS)
    assert [(s.candidate.invoice_id, s.reason) for s in report.fees.skipped] == [
        (small, "the balance $99.99 is under the $100.00 minimum")]
    assert [f.invoice_id for f in fees(office)] == [enough]


def test_a_flat_fee_is_not_charged_on_an_invoice_in_another_currency(office: Database) -> None:
    _, euro = pay_by_invoice(office, "Zürich Dental GmbH", amount="500.00", currency="EUR")
    set_fees(office)
    report = run(office, TEN_DAYS)
    assert [(s.candidate.invoice_id, s.reason) for s in report.fees.skipped] == [
        (euro, "the invoice is in EUR and the flat fee in USD")]
    assert any(line.startswith("No late fee on INV-000001 (Zürich Dental GmbH): the invoice is in EUR")
               for line in report.lines())
    assert fees(office) == []
    # A percentage works in any currency, and the fee is in the invoice's.
    set_fees(office, kind="percent", percent="2")
    run(office, TEN_DAYS)
    fee = the_fee(office)
    assert (fee.invoice_id, fee.amount_cents, fee.currency) == (euro, 1000, "EUR")
    carrier = load(office, fee.billed_invoice_id)   # no agreement: an invoice of its own, in euros
    assert (carrier.currency, carrier.total_cents) == ("EUR", 1000)


def test_autopay_invoices_whose_charge_has_not_failed_get_no_fee(office: Database) -> None:
    client_id = make_client(office, "Autopay Annie", autopay=True)
    open_invoice(office, client_id)
    set_fees(office)
    report = run(office, ISSUED + dt.timedelta(days=40))
    assert report.fees.assessed == [] and report.fees.skipped == [] and fees(office) == []


# --- where the fee goes --------------------------------------------------------------------


def _client_with_agreement(db: Database, *, autopay_later: bool = False) -> tuple[int, int]:
    """A taxed (10 %) client who pays by invoice, with a monthly agreement of $1,000.00 (taxable) from
    March, and an overdue one-time invoice of $400.00; (client id, overdue invoice id)."""
    client_id = make_client(db, "Harbor Logistics", payment_terms_days="30", tax_rate="10",
                            billing_emails="ap@harbor.example")
    make_agreement(db, client_id, "2026-03-01", [LineDraft("Managed seats", "10", "100.00", taxable=True)])
    invoice_id = one_time(db, client_id, ("Cabling", "1", "400.00", False))
    issue_ids(db, [invoice_id], ISSUED)
    return client_id, invoice_id


def _switch_to_autopay(db: Database, client_id: int) -> None:
    with db.write_session() as s, s.begin():
        draft = client_detail(s, client_id).draft
        draft.autopay = True
        update_client(s, client_id, draft)


def _generate(db: Database, month: Month = MAY) -> list[int]:
    with db.write_session() as s, s.begin():
        return generate_period(s, month).invoice_ids


def test_next_invoice_placement_bills_the_fee_as_an_untaxed_line_without_the_autopay_discount(
        office: Database) -> None:
    client_id, overdue = _client_with_agreement(office)
    set_fees(office, placement="next_invoice")
    report = run(office, TEN_DAYS)
    assert report.fees.pending == 1 and report.fees.own_invoices == []
    assert "1 late fee will go on the client's next invoice." in report.lines()
    fee = the_fee(office)
    assert (fee.status, fee.billed_invoice_id) == ("pending", None)
    with office.session() as s:
        [row] = list_fees(s, status="pending")
    assert (row.id, row.where, row.invoice_number) == (fee.id, "Next invoice", "INV-000001")

    # The client moves to autopay (5 % incentive) before May is generated: the fee is not discounted.
    _switch_to_autopay(office, client_id)
    [draft_id] = _generate(office)
    draft = load(office, draft_id)
    assert [(ln.kind, ln.amount_cents, ln.taxable) for ln in draft.lines] == [
        (LineKind.SERVICE, 100000, True),
        (LineKind.DISCOUNT, -5000, True),          # 5 % of the $1,000.00 service, not of the fee
        (LineKind.ITEM, 2500, False)]
    assert draft.lines[-1].description == "Late fee: INV-000001 10 days overdue"
    # Subtotal 1,000.00 − 50.00 + 25.00 = 975.00; tax 10 % of 950.00 = 95.00 (the fee untaxed).
    assert (draft.subtotal_cents, draft.tax_cents, draft.total_cents) == (97500, 9500, 107000)
    fee = the_fee(office)
    assert (fee.status, fee.billed_invoice_id, fee.billed_line_id) == ("billed", draft_id, draft.lines[-1].id)
    with office.session() as s:
        [row] = list_fees(s)
    assert (row.status, row.where) == ("billed", "Draft invoice")

    with office.write_session() as s, s.begin():
        [number] = issue_invoices(s, [draft_id], d("2026-05-01"))
    with office.session() as s:
        [row] = list_fees(s, status="billed")
        assert list_fees(s, billed_on=draft_id)[0].id == fee.id
    assert row.where == number == "INV-000002"
    # Billed once: the next month has no fee line.
    [june] = _generate(office, Month(2026, 6))
    assert [ln.kind for ln in load(office, june).lines] == [LineKind.SERVICE, LineKind.DISCOUNT]
    assert overdue != draft_id


def test_the_month_end_preview_shows_the_fee_in_the_invoice_total(office: Database) -> None:
    _client_with_agreement(office)
    set_fees(office)
    run(office, TEN_DAYS)
    with office.session() as s:
        preview = preview_batch(s, MAY, today=d("2026-04-25"))
    [inv] = preview.invoices
    # $1,000.00 + 10 % tax + the $25.00 fee (untaxed).
    assert (inv.total_cents, inv.notes.split(";")[0].split(",")[0]) == (112500, "late fee")
    assert preview.invoice_totals() == {"USD": 112500}


def test_a_client_without_an_active_agreement_gets_the_fee_on_an_invoice_of_its_own_at_once(
        office: Database) -> None:
    client_id, _ = pay_by_invoice(office, "One Off Co", tax_rate="10")
    set_fees(office, placement="next_invoice")
    report = run(office, TEN_DAYS)
    assert report.fees.own_invoices == ["INV-000002"] and report.fees.pending == 0
    fee = the_fee(office)
    assert fee.status == "billed" and fee.placement.value == "own_invoice"
    carrier = load(office, fee.billed_invoice_id)
    assert (carrier.number, carrier.status, carrier.issue_date, carrier.client_id) == (
        "INV-000002", InvoiceStatus.OPEN, TEN_DAYS, client_id)
    assert [(ln.amount_cents, ln.taxable) for ln in carrier.lines] == [(2500, False)]
    assert (carrier.tax_cents, carrier.total_cents) == (0, 2500)
    assert fee.billed_line_id == carrier.lines[0].id
    with office.session() as s:   # mail is not set up: nothing queued
        assert list(s.scalars(select(OutboxMessage))) == []


def test_own_invoice_placement_issues_the_invoice_and_queues_its_email(office: Database) -> None:
    configure_mail(office)
    _client_with_agreement(office)
    set_fees(office, placement="own_invoice")
    report = run(office, TEN_DAYS)
    [number] = report.fees.own_invoices
    fee = the_fee(office)
    with office.session() as s:
        carrier = s.get(Invoice, fee.billed_invoice_id)
        assert carrier is not None and carrier.number == number and carrier.status is InvoiceStatus.OPEN
        [msg] = s.scalars(select(OutboxMessage).where(OutboxMessage.invoice_id == carrier.id))
        assert (msg.kind, msg.to_addrs) == (KIND_INVOICE, "ap@harbor.example")
    # The next generated invoice does not carry it again.
    [draft_id] = _generate(office)
    assert [ln.kind for ln in load(office, draft_id).lines] == [LineKind.SERVICE]


def test_no_fee_is_charged_on_an_invoice_issued_for_a_fee(office: Database) -> None:
    _, overdue = pay_by_invoice(office, "One Off Co")
    set_fees(office, repeat="monthly")
    run(office, TEN_DAYS)
    [carrier_id] = {f.billed_invoice_id for f in fees(office)}
    assert load(office, carrier_id).due_date == TEN_DAYS + dt.timedelta(days=30)
    # Months later both are unpaid: the original gets its monthly fees; the fee invoice none.
    for day in (d("2026-06-30"), d("2026-07-15")):
        run(office, day)
    assert {f.invoice_id for f in fees(office)} == {overdue}
    assert [f.sequence for f in fees(office)] == [1, 3, 4]


def test_deleting_the_draft_that_carries_a_fee_makes_it_pending_again(office: Database) -> None:
    _client_with_agreement(office)
    set_fees(office)
    run(office, TEN_DAYS)
    [draft_id] = _generate(office)
    assert the_fee(office).billed_invoice_id == draft_id
    with office.write_session() as s, s.begin():
        delete_draft(s, draft_id)
    fee = the_fee(office)
    assert (fee.status, fee.billed_invoice_id, fee.billed_line_id) == ("pending", None, None)
    [again] = _generate(office)
    assert the_fee(office).billed_invoice_id == again   # (SQLite may give the new draft the old id)
    assert [ln.kind for ln in load(office, again).lines] == [LineKind.SERVICE, LineKind.ITEM]
    assert load(office, again).lines[-1].amount_cents == 2500


def test_voiding_the_invoice_that_carries_a_fee_puts_it_back_and_voiding_its_own_invoice_waives_it(
        office: Database) -> None:
    from mspbill.invoicing import void_invoice

    _, harbor_overdue = _client_with_agreement(office)
    _, one_off_overdue = pay_by_invoice(office, "One Off Co")   # no agreement: its fee gets its own invoice
    set_fees(office)
    run(office, TEN_DAYS)
    harbor_fee, one_off_fee = (next(f for f in fees(office) if f.invoice_id == i)
                               for i in (harbor_overdue, one_off_overdue))
    assert (harbor_fee.status, one_off_fee.status, one_off_fee.placement.value) == (
        "pending", "billed", "own_invoice")

    [may] = _generate(office)
    with office.write_session() as s, s.begin():
        issue_invoices(s, [may], d("2026-05-01"))
        void_invoice(s, may, "Wrong seat count")
    fee = next(f for f in fees(office) if f.invoice_id == harbor_overdue)
    assert (fee.status, fee.billed_invoice_id, fee.waived_at) == ("pending", None, None)
    [june] = _generate(office, Month(2026, 6))       # the fee rides on the next invoice instead
    assert next(f for f in fees(office) if f.invoice_id == harbor_overdue).billed_invoice_id == june
    assert load(office, june).lines[-1].amount_cents == 2500

    with office.write_session() as s, s.begin():
        void_invoice(s, one_off_fee.billed_invoice_id, "Agreed with the client on the phone")
    fee = next(f for f in fees(office) if f.invoice_id == one_off_overdue)
    assert fee.status == "waived" and fee.waive_reason.endswith("voided: Agreed with the client on the phone")
    run(office, TEN_DAYS + dt.timedelta(days=1))     # a waived fee is not assessed again
    assert len([f for f in fees(office) if f.invoice_id == one_off_overdue]) == 1


def test_voiding_the_overdue_invoice_waives_its_fee_not_yet_billed(office: Database) -> None:
    from mspbill.invoicing import void_invoice

    _, overdue = _client_with_agreement(office)
    set_fees(office)
    run(office, TEN_DAYS)
    assert the_fee(office).status == "pending"
    with office.write_session() as s, s.begin():
        void_invoice(s, overdue, "Billed to the wrong client")
    fee = the_fee(office)
    assert fee.status == "waived" and fee.waive_reason == "INV-000001 voided: Billed to the wrong client"
    [may] = _generate(office)                        # the next invoice carries no fee for it
    assert [ln.kind for ln in load(office, may).lines] == [LineKind.SERVICE]


# --- waiving -------------------------------------------------------------------------------


def test_a_pending_fee_is_waived_and_never_billed(office: Database) -> None:
    _client_with_agreement(office)
    set_fees(office)
    run(office, TEN_DAYS)
    fee = the_fee(office)
    waive(office, fee.id, "  First time late;   goodwill ")
    fee = the_fee(office)
    assert (fee.status, fee.waive_reason, fee.waive_credit_note_id) == ("waived", "First time late; goodwill", None)
    [draft_id] = _generate(office)
    assert [ln.kind for ln in load(office, draft_id).lines] == [LineKind.SERVICE]
    with office.session() as s:
        [row] = list_fees(s, status="waived")
        assert list_fees(s, status="pending") == []
        history = [e.summary for e in audit.history(s, "invoice", fee.invoice_id)]
    assert row.where == "Waived: First time late; goodwill"
    assert any(h.startswith("Late fee $25.00 waived (before it was billed): First time late") for h in history)


def test_a_fee_on_a_draft_is_waived_by_taking_the_line_off(office: Database) -> None:
    _client_with_agreement(office)
    set_fees(office)
    run(office, TEN_DAYS)
    [draft_id] = _generate(office)
    assert load(office, draft_id).total_cents == 112500
    waive(office, the_fee(office).id, "Agreed on the phone")
    draft = load(office, draft_id)
    assert [ln.kind for ln in draft.lines] == [LineKind.SERVICE]
    # $1,000.00 + 10 % tax, as if the fee had never been there.
    assert (draft.subtotal_cents, draft.tax_cents, draft.total_cents) == (100000, 10000, 110000)
    fee = the_fee(office)
    assert (fee.status, fee.billed_invoice_id, fee.billed_line_id) == ("waived", None, None)
    with office.session() as s:
        assert s.scalar(select(InvoiceLine).where(InvoiceLine.invoice_id == draft_id,
                                                  InvoiceLine.amount_cents == 2500)) is None


def test_a_fee_on_an_issued_invoice_is_waived_with_a_credit_note_of_exactly_the_fee(office: Database) -> None:
    _client_with_agreement(office)   # the client is taxed at 10 %
    set_fees(office)
    run(office, TEN_DAYS)
    [draft_id] = _generate(office)
    with office.write_session() as s, s.begin():
        issue_invoices(s, [draft_id], d("2026-05-01"))
    assert load(office, draft_id).balance_cents == 112500
    waive(office, the_fee(office).id, "Bank error on their side", today=d("2026-05-03"))
    fee = the_fee(office)
    assert fee.status == "waived" and fee.waive_credit_note_id is not None
    note = load(office, fee.waive_credit_note_id)
    assert (note.kind, note.credit_for_invoice_id, note.issue_date) == (InvoiceKind.CREDIT_NOTE, draft_id,
                                                                         d("2026-05-03"))
    # Exactly the fee, untaxed even though the client is taxed.
    assert (note.subtotal_cents, note.tax_cents, note.total_cents) == (2500, 0, 2500)
    assert [(ln.amount_cents, ln.taxable) for ln in note.lines] == [(2500, False)]
    assert load(office, draft_id).balance_cents == 110000
    with office.session() as s:
        [row] = list_fees(s)
        history = [e.summary for e in audit.history(s, "invoice", fee.invoice_id)]
    assert row.status == "waived"
    assert any(f"credit note {note.number} on INV-000002" in h for h in history)


def test_a_fee_on_its_own_invoice_is_waived_with_a_credit_note_that_pays_it_off(office: Database) -> None:
    pay_by_invoice(office, "One Off Co", tax_rate="10")
    set_fees(office)
    run(office, TEN_DAYS)
    fee = the_fee(office)
    waive(office, fee.id, "Waived by the owner")
    note = load(office, the_fee(office).waive_credit_note_id)
    assert (note.total_cents, note.tax_cents) == (2500, 0)
    carrier = load(office, fee.billed_invoice_id)
    assert (carrier.status, carrier.balance_cents) == (InvoiceStatus.PAID, 0)


def test_waiving_needs_a_reason_and_happens_once(office: Database) -> None:
    pay_by_invoice(office)
    set_fees(office)
    run(office, TEN_DAYS)
    fee = the_fee(office)
    for reason in ("", "   "):
        with pytest.raises(ValidationError, match="Give a reason for waiving the fee"):
            waive(office, fee.id, reason)
    assert the_fee(office).status == "billed"    # no agreement: it is on an invoice of its own
    waive(office, fee.id, "Goodwill")
    with pytest.raises(ValidationError, match=r"already waived \(Goodwill\)"):
        waive(office, fee.id, "Again")
    with pytest.raises(ValidationError, match="There is no late fee 999"):
        waive(office, 999, "Goodwill")
    with office.session() as s:   # one credit note, not two
        assert len(list(s.scalars(select(Invoice).where(Invoice.kind == InvoiceKind.CREDIT_NOTE)))) == 1


# --- lists and settings --------------------------------------------------------------------


def test_fee_totals_are_per_status_and_currency(office: Database) -> None:
    _client_with_agreement(office)
    pay_by_invoice(office, "Zürich Dental GmbH", amount="500.00", currency="EUR")
    set_fees(office, kind="percent", percent="2")
    run(office, TEN_DAYS)
    with office.session() as s:
        rows = list_fees(s)
        assert [r.client_name for r in list_fees(s, client_id=rows[0].client_id)] == [rows[0].client_name]
    assert fee_totals(rows) == {"pending": {"USD": 800}, "billed": {"EUR": 1000}}


def test_policy_problems_are_listed_together() -> None:
    _, issues = validate_late_fees(LateFeeDraft(enabled=True, kind="weekly", flat_amount="abc", percent="30",
                                                after_days="0", repeat="daily", placement="somewhere",
                                                min_balance="-5"), "USD")
    assert sorted(i.field for i in issues) == ["after_days", "flat_amount", "kind", "min_balance", "percent",
                                               "placement", "repeat"]
    _, issues = validate_late_fees(LateFeeDraft(enabled=True, kind="flat", flat_amount="0"), "USD")
    assert [i.message for i in issues] == ["Enter the flat fee (more than zero), or turn late fees off."]


def test_assessing_in_one_session_twice_takes_each_fee_once(office: Database) -> None:
    pay_by_invoice(office)
    set_fees(office, placement="own_invoice")
    with office.write_session() as s, s.begin():
        first = assess_late_fees(s, TEN_DAYS)
        second = assess_late_fees(s, TEN_DAYS)
    assert (len(first.assessed), len(second.assessed)) == (1, 0)
    assert len(fees(office)) == 1


def test_an_archived_client_without_an_agreement_does_not_stop_the_pass(office: Database) -> None:
    from mspbill.clients import archive_client

    configure_mail(office)
    gone, gone_invoice = pay_by_invoice(office, "Gone Away Ltd")
    _, other = pay_by_invoice(office, "Still Here Inc")
    with office.write_session() as s, s.begin():
        archive_client(s, gone)
    set_fees(office)
    report = run(office, TEN_DAYS)
    # The archived client's fee cannot go on an invoice (archived clients are not invoiced): said, not a crash.
    assert [(sk.candidate.invoice_id, sk.reason) for sk in report.fees.skipped] == [
        (gone_invoice, "Gone Away Ltd is archived; restore the client first.")]
    assert [f.invoice_id for f in fees(office)] == [other]
    # The reminders of the same pass went out all the same (they still owe the invoice).
    assert sorted(q.candidate.invoice_id for q in report.reminders.queued) == sorted([gone_invoice, other])
