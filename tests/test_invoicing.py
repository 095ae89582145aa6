"""The invoice life cycle on a real SQLite file: drafts, gapless numbers (also under
concurrency), due dates, client credit, void, uncollectible, credit notes,
one-time invoices and instalment plans, and the audit trail of each step."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from billing_helpers import (
    ISSUE_DAY,
    credit_balance,
    credit_entries,
    full,
    generate,
    half_up,
    invoice,
    issue,
    issue_ids,
    make_agreement,
    make_client,
    one_time,
    setup_office,
    tax_of,
)
from mspbill import audit
from mspbill.agreements import AgreementDraft, LineDraft, agreement_detail, update_agreement
from mspbill.clients import ClientDraft, archive_client, create_client
from mspbill.db.engine import Database
from mspbill.db.models import (
    AuditEntry,
    CompanyProfile,
    InstalmentPlan,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
    LineKind,
)
from mspbill.invoicing import (
    ItemDraft,
    OneTimeDraft,
    client_credit_balance,
    create_credit_note,
    create_one_time_invoice,
    delete_draft,
    drafts_for_month,
    find_invoice,
    invoice_detail,
    issue_invoices,
    issue_month,
    list_invoices,
    mark_uncollectible,
    one_time_draft,
    split_into_instalments,
    update_one_time_invoice,
    void_invoice,
)
from mspbill.payments.manual import record_payment
from mspbill.periods import Month
from mspbill.validation import NotFoundError, ValidationError

# Run on SQLite and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.both_databases

TODAY = dt.date(2026, 11, 20)


@pytest.fixture
def client_id(db) -> int:
    setup_office(db)
    return make_client(db, "Cascade Dental", tax_rate="8.25", payment_terms_days="30")


def _actions(db: Database, invoice_id: int) -> list[str]:
    with db.session() as s:
        return [e.action for e in audit.history(s, "invoice", invoice_id)]


def _refused(db: Database, call) -> ValidationError:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError) as excinfo:
        with db.write_session() as s, s.begin():
            call(s)
    return excinfo.value


def _issued(db: Database, client_id: int, *items: tuple, issue_date: dt.date = ISSUE_DAY) -> Invoice:  # type: ignore[type-arg]
    inv_id = one_time(db, client_id, *items)
    issue_ids(db, [inv_id], issue_date)
    return invoice(db, inv_id)


def _pay(db: Database, invoice_id: int, amount: str, **kw: object) -> None:
    with db.write_session() as s, s.begin():
        record_payment(s, invoice_id, amount, "check", received_on=TODAY, today=TODAY, **kw)  # type: ignore[arg-type]


# --- drafts, numbers, due dates ------------------------------------------------------------


def test_drafts_have_no_number_and_issuing_assigns_gapless_numbers_from_the_pattern(db, count_rows) -> None:
    setup_office(db, invoice_number_pattern="ACME-{n:04d}")
    cid = make_client(db)
    drafts = [one_time(db, cid, ("Setup", "1", f"{100 + i}.00")) for i in range(4)]
    for draft_id in drafts:
        inv = invoice(db, draft_id)
        assert inv.status is InvoiceStatus.DRAFT and inv.number is None and inv.number_seq is None
        assert inv.issue_date is None and inv.due_date is None and inv.bill_to is None
    with db.session() as s:
        assert [r.display_number for r in list_invoices(s)] == ["Draft"] * 4

    assert issue_ids(db, [drafts[2], drafts[0]]) == ["ACME-0001", "ACME-0002"]  # in the order given
    with db.write_session() as s, s.begin():
        delete_draft(s, drafts[1])  # a draft takes no number, so deleting it leaves no gap
    assert issue_ids(db, [drafts[3]]) == ["ACME-0003"]
    assert [invoice(db, i).number_seq for i in (drafts[2], drafts[0], drafts[3])] == [1, 2, 3]
    with db.session() as s:
        assert s.get(CompanyProfile, 1).next_invoice_number == 4  # type: ignore[union-attr]
        assert find_invoice(s, " acme-0002 ").id == drafts[0]
        with pytest.raises(NotFoundError):
            find_invoice(s, "ACME-0099")
    assert count_rows(db, Invoice) == 3
    issued = invoice(db, drafts[0])
    assert issued.status is InvoiceStatus.OPEN and issued.issue_date == ISSUE_DAY and issued.issued_at is not None
    assert issued.bill_to["name"] == "Client A"  # type: ignore[index]
    assert _actions(db, drafts[0]) == ["invoice.created", "invoice.issued"]


def test_issuing_is_all_or_nothing_and_an_issued_invoice_is_not_issued_again(db, client_id: int) -> None:
    first = _issued(db, client_id, ("A", "1", "10.00"))
    draft = one_time(db, client_id, ("B", "1", "10.00"))
    err = _refused(db, lambda s: issue_invoices(s, [draft, first.id], ISSUE_DAY))
    assert err.issues[0].field == "status" and f"{first.number} is already issued" in err.issues[0].message
    assert invoice(db, draft).status is InvoiceStatus.DRAFT
    with db.session() as s:
        assert s.get(CompanyProfile, 1).next_invoice_number == 2  # type: ignore[union-attr]
    assert issue_ids(db, [draft]) == ["INV-000002"]
    with pytest.raises(NotFoundError):
        issue_ids(db, [9999])


def test_issuing_needs_a_company_profile_for_the_pattern(db) -> None:
    cid = make_client(db)
    draft = one_time(db, cid, ("A", "1", "10.00"))
    err = _refused(db, lambda s: issue_invoices(s, [draft], ISSUE_DAY))
    assert err.issues[0].field == "company" and "Set up your company first" in err.issues[0].message
    assert invoice(db, draft).status is InvoiceStatus.DRAFT


def test_a_draft_of_an_archived_client_is_not_issued(db, client_id: int) -> None:
    draft = one_time(db, client_id, ("A", "1", "10.00"))
    with db.write_session() as s, s.begin():
        archive_client(s, client_id)
    err = _refused(db, lambda s: issue_invoices(s, [draft], ISSUE_DAY))
    assert "archived" in err.issues[0].message


@pytest.mark.parametrize(("terms", "autopay", "due_after"), [("45", False, 45), ("0", False, 0), ("30", True, 0)])
def test_due_date_from_client_terms_and_autopay_clients_are_due_on_issue(db, terms, autopay, due_after) -> None:
    setup_office(db)
    cid = make_client(db, payment_terms_days=terms, autopay=autopay)
    inv = _issued(db, cid, ("A", "1", "10.00"), issue_date=dt.date(2026, 11, 5))
    assert inv.due_date == dt.date(2026, 11, 5) + dt.timedelta(days=due_after)


def test_overdue_days_and_balance_in_lists_and_detail(db, client_id: int) -> None:
    inv = _issued(db, client_id, ("A", "2", "50.00"), issue_date=dt.date(2026, 10, 1))
    _pay(db, inv.id, "25.00")
    with db.session() as s:
        row = list_invoices(s, today=dt.date(2026, 11, 10))[0]
        assert row.balance_cents == inv.total_cents - 2500
        assert row.overdue_days == (dt.date(2026, 11, 10) - inv.due_date).days == 10  # type: ignore[operator]
        assert [r.id for r in list_invoices(s, overdue_only=True, today=dt.date(2026, 11, 10))] == [inv.id]
        assert list_invoices(s, overdue_only=True, today=dt.date(2026, 10, 31)) == []
        detail = invoice_detail(s, inv.id, today=dt.date(2026, 11, 10))
        assert detail.paid_cents == 2500 and detail.row.status == "open" and not detail.editable
        assert [h.summary.split(" ")[0] for h in detail.history] == ["Created", "Issued", "Recorded"]


def test_delete_draft_and_refuse_deleting_an_issued_invoice(db, client_id: int, count_rows) -> None:
    draft = one_time(db, client_id, ("A", "1", "10.00"))
    issued = _issued(db, client_id, ("B", "1", "10.00"))
    with db.write_session() as s, s.begin():
        delete_draft(s, draft)
    assert count_rows(db, Invoice) == 1 and count_rows(db, InvoiceLine) == 1
    assert _actions(db, draft) == ["invoice.created", "invoice.deleted"]
    err = _refused(db, lambda s: delete_draft(s, issued.id))
    assert "void it instead" in err.issues[0].message
    assert invoice(db, issued.id).status is InvoiceStatus.OPEN


def test_issue_month_issues_that_months_generated_drafts_only(db, client_id: int) -> None:
    make_agreement(db, client_id, "2026-10-01", [LineDraft("Seats", "10", "50.00")])
    oct_id = generate(db, Month(2026, 10)).invoice_ids[0]
    nov_id = generate(db, Month(2026, 11)).invoice_ids[0]
    one_off = one_time(db, client_id, ("A", "1", "10.00"))
    with db.session() as s:
        assert drafts_for_month(s, Month(2026, 11)) == [nov_id]
    assert issue(db, Month(2026, 11)) == ["INV-000001"]
    assert invoice(db, oct_id).status is InvoiceStatus.DRAFT and invoice(db, one_off).status is InvoiceStatus.DRAFT


# --- client credit applied at issue ----------------------------------------------------------


def test_client_credit_is_applied_when_the_next_invoices_are_issued(db, client_id: int) -> None:
    paid = _issued(db, client_id, ("Old", "1", "100.00"))
    with db.write_session() as s, s.begin():
        record_payment(s, paid.id, f"{Decimal(paid.total_cents) / 100 + 150}", "wire", credit_excess=True,
                       received_on=TODAY, today=TODAY)
    assert credit_balance(db, client_id) == 15000

    small = one_time(db, client_id, ("Small", "1", "40.00"))   # 40.00 + tax, fully covered
    large = one_time(db, client_id, ("Large", "1", "500.00"))  # takes what is left
    issue_ids(db, [small, large])
    small_inv, large_inv = invoice(db, small), invoice(db, large)
    assert small_inv.credit_applied_cents == small_inv.total_cents == 4000 + tax_of(4000, "8.25")
    assert small_inv.status is InvoiceStatus.PAID and small_inv.balance_cents == 0
    left = 15000 - small_inv.total_cents
    assert large_inv.credit_applied_cents == left
    assert large_inv.status is InvoiceStatus.OPEN and large_inv.balance_cents == large_inv.total_cents - left
    assert credit_entries(db, client_id) == [("overpayment", 15000), ("applied", -small_inv.total_cents),
                                             ("applied", -left)]
    assert credit_balance(db, client_id) == 0
    with db.session() as s:
        assert client_credit_balance(s, client_id) == 0
        assert "client credit applied" in audit.history(s, "invoice", large)[-1].summary
    # A client's credit is theirs alone.
    other = make_client(db, "Other Co")
    assert invoice(db, _issued(db, other, ("X", "1", "10.00")).id).credit_applied_cents == 0


# --- void ---------------------------------------------------------------------------------------


def test_void_needs_a_reason_and_records_it(db, client_id: int) -> None:
    inv = _issued(db, client_id, ("A", "1", "10.00"))
    for reason in ("", "   "):
        err = _refused(db, lambda s, r=reason: void_invoice(s, inv.id, r))
        assert err.issues[0].field == "reason" and "Give a reason" in err.issues[0].message
    assert "limited to 500" in _refused(db, lambda s: void_invoice(s, inv.id, "x" * 501)).issues[0].message
    with db.write_session() as s, s.begin():
        void_invoice(s, inv.id, "Wrong client")
    voided = invoice(db, inv.id)
    assert voided.status is InvoiceStatus.VOID and voided.status_reason == "Wrong client"
    assert voided.number == inv.number and voided.closed_at is not None  # the number stays used
    assert _actions(db, inv.id)[-1] == "invoice.voided"
    assert "already void" in _refused(db, lambda s: void_invoice(s, inv.id, "again")).issues[0].message


def test_void_is_refused_for_a_draft_a_paid_invoice_and_a_credit_note(db, client_id: int) -> None:
    draft = one_time(db, client_id, ("A", "1", "10.00"))
    assert "delete it instead" in _refused(db, lambda s: void_invoice(s, draft, "x")).issues[0].message
    paid = _issued(db, client_id, ("B", "1", "10.00"))
    _pay(db, paid.id, f"{Decimal(paid.total_cents) / 100}")
    assert invoice(db, paid.id).status is InvoiceStatus.PAID
    msg = _refused(db, lambda s: void_invoice(s, paid.id, "x")).issues[0].message
    assert "paid or credited" in msg and "credit note" in msg
    partly = _issued(db, client_id, ("C", "1", "10.00"))
    _pay(db, partly.id, "1.00")
    assert "Issue a credit note" in _refused(db, lambda s: void_invoice(s, partly.id, "x")).issues[0].message
    target = _issued(db, client_id, ("D", "1", "10.00"))
    with db.write_session() as s, s.begin():
        note_id = create_credit_note(s, target.id, "Goodwill", "1.00", TODAY).id
    msg = _refused(db, lambda s: void_invoice(s, note_id, "x")).issues[0].message
    assert "is a credit note" in msg and "cannot be voided" in msg
    assert invoice(db, paid.id).status is InvoiceStatus.PAID and invoice(db, note_id).status is InvoiceStatus.PAID


def test_voiding_returns_the_client_credit_the_invoice_used(db, client_id: int) -> None:
    first = _issued(db, client_id, ("A", "1", "10.00"))
    with db.write_session() as s, s.begin():
        record_payment(s, first.id, f"{Decimal(first.total_cents + 3000) / 100}", "check", credit_excess=True,
                       received_on=TODAY, today=TODAY)
    second = _issued(db, client_id, ("B", "1", "100.00"))
    assert second.credit_applied_cents == 3000 and credit_balance(db, client_id) == 0
    with db.write_session() as s, s.begin():
        void_invoice(s, second.id, "Duplicate")
    assert credit_entries(db, client_id)[-1] == ("returned", 3000)
    assert credit_balance(db, client_id) == 3000
    with db.session() as s:
        assert "of credit returned to the client" in audit.history(s, "invoice", second.id)[-1].summary


def test_an_invoice_paid_by_client_credit_and_then_credited_cannot_also_be_voided(db, client_id: int) -> None:
    """Otherwise the client would get the same credit back twice (credit note + void)."""
    first = _issued(db, client_id, ("A", "1", "10.00"))
    with db.write_session() as s, s.begin():
        record_payment(s, first.id, f"{Decimal(first.total_cents + 20000) / 100}", "check", credit_excess=True,
                       received_on=TODAY, today=TODAY)
    covered = _issued(db, client_id, ("B", "1", "100.00"))
    assert covered.status is InvoiceStatus.PAID and covered.credit_applied_cents == covered.total_cents
    with db.write_session() as s, s.begin():
        create_credit_note(s, covered.id, "Cancelled order", None, TODAY)
    after_note = credit_balance(db, client_id)
    assert after_note == 20000  # the note gave the whole invoice back as credit
    msg = _refused(db, lambda s: void_invoice(s, covered.id, "Cancelled order")).issues[0].message
    assert "credit note against it" in msg
    assert credit_balance(db, client_id) == after_note


def test_a_negative_adjustments_invoice_that_put_credit_on_account_cannot_be_voided(db, client_id: int) -> None:
    aid = make_agreement(db, client_id, "2026-10-01", [LineDraft("Seats", "10", "50.00")])
    for m in (Month(2026, 10), Month(2026, 11)):
        generate(db, m)
        issue(db, m)
    with db.write_session() as s, s.begin():
        draft: AgreementDraft = agreement_detail(s, aid).draft
        draft.end_date = "2026-11-15"
        update_agreement(s, aid, draft)
    credit_id = generate(db, Month(2026, 12)).invoice_ids[0]
    issue(db, Month(2026, 12))
    assert invoice(db, credit_id).status is InvoiceStatus.PAID and credit_balance(db, client_id) > 0
    assert "put credit on the client's account" in _refused(
        db, lambda s: void_invoice(s, credit_id, "x")).issues[0].message


# --- uncollectible ---------------------------------------------------------------------------------


def test_mark_uncollectible_only_for_an_open_invoice_with_a_reason(db, client_id: int) -> None:
    inv = _issued(db, client_id, ("A", "1", "100.00"))
    _pay(db, inv.id, "20.00")
    assert _refused(db, lambda s: mark_uncollectible(s, inv.id, "")).issues[0].field == "reason"
    with db.write_session() as s, s.begin():
        mark_uncollectible(s, inv.id, "Client went out of business")
    written_off = invoice(db, inv.id)
    assert written_off.status is InvoiceStatus.UNCOLLECTIBLE
    assert written_off.status_reason == "Client went out of business"
    assert _actions(db, inv.id)[-1] == "invoice.uncollectible"
    assert "Only an open invoice" in _refused(db, lambda s: mark_uncollectible(s, inv.id, "x")).issues[0].message
    draft = one_time(db, client_id, ("B", "1", "10.00"))
    assert "this one is draft" in _refused(db, lambda s: mark_uncollectible(s, draft, "x")).issues[0].message
    # Money that comes in after all still settles it.
    _pay(db, inv.id, f"{Decimal(written_off.balance_cents) / 100}")
    assert invoice(db, inv.id).status is InvoiceStatus.PAID


# --- credit notes -----------------------------------------------------------------------------------


def test_full_credit_note_copies_the_lines_and_settles_the_invoice(db, client_id: int) -> None:
    inv = _issued(db, client_id, ("Firewall", "1", "1000.00"), ("Licences", "3", "20.00", False))
    with db.write_session() as s, s.begin():
        note = create_credit_note(s, inv.id, "Returned hardware", None, TODAY)
        note_id, number = note.id, note.number
    assert number == "CN-000001"  # numbered apart from invoices
    note = invoice(db, note_id)
    assert note.kind is InvoiceKind.CREDIT_NOTE and note.status is InvoiceStatus.PAID
    assert note.credit_for_invoice_id == inv.id and note.issue_date == TODAY and note.status_reason
    assert [(ln.description, ln.amount_cents, ln.taxable) for ln in note.lines] == [
        ("Credit: Firewall", 100000, True), ("Credit: Licences", 6000, False)]
    assert (note.subtotal_cents, note.tax_cents, note.total_cents) == (
        inv.subtotal_cents, inv.tax_cents, inv.total_cents)
    credited = invoice(db, inv.id)
    assert credited.credited_cents == inv.total_cents and credited.balance_cents == 0
    assert credited.status is InvoiceStatus.PAID
    assert credit_balance(db, client_id) == 0
    assert _actions(db, inv.id)[-1] == "invoice.credited" and _actions(db, note_id) == ["credit_note.issued"]
    # Invoice numbering is not disturbed by credit notes.
    assert _issued(db, client_id, ("Next", "1", "1.00")).number == "INV-000002"
    with db.session() as s:
        detail = invoice_detail(s, inv.id)
        assert [n.number for n in detail.credit_notes] == ["CN-000001"]
        assert invoice_detail(s, note_id).credit_for == inv.number


def test_partial_credit_note_carries_its_share_of_tax(db, client_id: int) -> None:
    inv = _issued(db, client_id, ("Project", "1", "100.00"), ("Licences", "1", "50.00", False))
    with db.write_session() as s, s.begin():
        note_id = create_credit_note(s, inv.id, "Discount agreed", "30", TODAY).id
    note = invoice(db, note_id)
    taxable_part = 3000 * 10000 // 15000  # the invoice's taxable share of the 30.00
    assert [(ln.amount_cents, ln.taxable) for ln in note.lines] == [(taxable_part, True), (3000 - taxable_part, False)]
    assert note.tax_cents == tax_of(taxable_part, "8.25")
    assert note.total_cents == 3000 + note.tax_cents
    after = invoice(db, inv.id)
    assert after.credited_cents == note.total_cents and after.balance_cents == inv.total_cents - note.total_cents
    assert after.status is InvoiceStatus.OPEN


def test_the_two_parts_of_a_partial_credit_say_which_is_which(db, client_id: int) -> None:
    inv = _issued(db, client_id, ("Project", "1", "100.00"), ("Licences", "1", "50.00", False))
    with db.write_session() as s, s.begin():
        note_id = create_credit_note(s, inv.id, "Goodwill credit", "30", TODAY).id
    note = invoice(db, note_id)
    assert [(ln.description, ln.amount_cents, ln.taxable) for ln in note.lines] == [
        (f"Credit on {inv.number}: Goodwill credit (taxable part)", 2000, True),
        (f"Credit on {inv.number}: Goodwill credit (not taxed)", 1000, False)]
    assert note.tax_cents == tax_of(2000, "8.25") and note.total_cents == 3000 + note.tax_cents
    # A reason at the length limit keeps its label: the reason is cut, not the label.
    with db.write_session() as s, s.begin():
        long_note = create_credit_note(s, inv.id, "x" * 500, "10", TODAY).id
    assert [ln.description[-15:] for ln in invoice(db, long_note).lines] == [" (taxable part)", "x" * 3 + " (not taxed)"]
    assert all(len(ln.description) == 500 for ln in invoice(db, long_note).lines)


@pytest.mark.parametrize(("tax_rate", "items", "amount", "taxable"), [
    # The trial's case: a 0% client, taxable and untaxed lines; $50.00 was two lines of $41.48 and $8.52.
    ("0", [("Managed seats", "1", "243.50"), ("Licences", "1", "50.00", False)], "50.00", False),
    ("0", [("Managed seats", "1", "243.50")], "50.00", True),                 # nothing untaxed to split off
    ("8.25", [("Licences", "1", "50.00", False)], "20.00", False),            # nothing taxable
    ("8.25", [("Project", "1", "100.00"), ("Licences", "1", "50.00", False)], "0.05", False),  # tax rounds to 0
], ids=["zero-rate-mixed", "zero-rate-taxable", "no-taxable-lines", "tax-rounds-to-nothing"])
def test_a_credit_that_gives_back_no_tax_is_one_line(db, tax_rate: str, items, amount: str, taxable: bool) -> None:
    setup_office(db)
    cid = make_client(db, "Tax Exempt Clinic", tax_rate=tax_rate)
    inv = _issued(db, cid, *items)
    with db.write_session() as s, s.begin():
        note_id = create_credit_note(s, inv.id, "Goodwill credit", amount, TODAY).id
    note = invoice(db, note_id)
    cents = int(Decimal(amount) * 100)
    assert [(ln.description, ln.amount_cents, ln.taxable) for ln in note.lines] == [
        (f"Credit on {inv.number}: Goodwill credit", cents, taxable)]
    assert (note.subtotal_cents, note.tax_cents, note.total_cents) == (cents, 0, cents)
    assert invoice(db, inv.id).balance_cents == inv.total_cents - cents


def test_credit_beyond_what_remains_is_refused(db, client_id: int, count_rows) -> None:
    inv = _issued(db, client_id, ("Project", "1", "100.00"))  # 108.25 with tax
    with db.write_session() as s, s.begin():
        create_credit_note(s, inv.id, "Part", "60", TODAY)
    notes_before = count_rows(db, Invoice)
    room = inv.total_cents - (6000 + tax_of(6000, "8.25"))
    msg = _refused(db, lambda s: create_credit_note(s, inv.id, "More", "50", TODAY)).issues[0].message
    assert "more than the" in msg and f"${Decimal(room) / 100}" in msg
    msg = _refused(db, lambda s: create_credit_note(s, inv.id, "All of it", None, TODAY)).issues[0].message
    assert "already has credit notes" in msg
    for bad in ("0", "-5", "12.345", "1e3"):
        assert _refused(db, lambda s, b=bad: create_credit_note(s, inv.id, "x", b, TODAY)).issues[0].field == "amount"
    assert _refused(db, lambda s: create_credit_note(s, inv.id, "", "1", TODAY)).issues[0].field == "reason"
    assert count_rows(db, Invoice) == notes_before
    # Exactly what is left (40.00 + its tax) is accepted; then nothing more.
    with db.write_session() as s, s.begin():
        create_credit_note(s, inv.id, "Rest", "40", TODAY)
    assert invoice(db, inv.id).balance_cents == 0
    full_err = _refused(db, lambda s: create_credit_note(s, inv.id, "x", "1", TODAY))
    assert "credited in full" in full_err.issues[0].message
    with db.session() as s:
        numbers = sorted(s.scalars(select(Invoice.number).where(Invoice.kind == InvoiceKind.CREDIT_NOTE)))
    assert numbers == ["CN-000001", "CN-000002"]


def test_credit_note_reduces_the_balance_first_and_the_excess_becomes_client_credit(db, client_id: int) -> None:
    inv = _issued(db, client_id, ("Project", "1", "100.00"))
    _pay(db, inv.id, "80.00")
    with db.write_session() as s, s.begin():
        note_id = create_credit_note(s, inv.id, "Cancelled", None, TODAY).id
    note = invoice(db, note_id)
    balance_before = inv.total_cents - 8000
    after = invoice(db, inv.id)
    assert after.credited_cents == balance_before and after.balance_cents == 0
    assert after.status is InvoiceStatus.PAID
    assert credit_entries(db, client_id) == [("credit_note", note.total_cents - balance_before)]
    assert note.total_cents - balance_before == 8000
    # On an invoice already paid, the whole note is client credit.
    other = make_client(db, "Paid Up Co", tax_rate="8.25")
    paid = _issued(db, other, ("Other", "1", "10.00"))
    _pay(db, paid.id, f"{Decimal(paid.total_cents) / 100}")
    with db.write_session() as s, s.begin():
        create_credit_note(s, paid.id, "Goodwill", "5", TODAY)
    assert credit_entries(db, other) == [("credit_note", 500 + tax_of(500, "8.25"))]
    assert invoice(db, paid.id).credited_cents == 0


def test_credit_note_is_refused_for_drafts_void_invoices_and_credit_notes(db, client_id: int) -> None:
    draft = one_time(db, client_id, ("A", "1", "10.00"))
    void = _issued(db, client_id, ("B", "1", "10.00"))
    with db.write_session() as s, s.begin():
        void_invoice(s, void.id, "Mistake")
    target = _issued(db, client_id, ("C", "1", "10.00"))
    with db.write_session() as s, s.begin():
        note_id = create_credit_note(s, target.id, "x", "1", TODAY).id
    for invoice_id in (draft, void.id, note_id):
        msg = _refused(db, lambda s, i=invoice_id: create_credit_note(s, i, "x", "1", TODAY)).issues[0].message
        assert msg == "Only an issued invoice that is not void can be credited."


def test_credit_note_on_an_uncollectible_invoice_reduces_what_was_written_off(db, client_id: int) -> None:
    inv = _issued(db, client_id, ("A", "1", "100.00"))
    with db.write_session() as s, s.begin():
        mark_uncollectible(s, inv.id, "Gone")
        create_credit_note(s, inv.id, "Settle the books", None, TODAY)
    after = invoice(db, inv.id)
    assert after.balance_cents == 0 and after.status is InvoiceStatus.UNCOLLECTIBLE
    assert credit_balance(db, client_id) == 0


def test_void_invoices_and_credit_notes_have_no_balance_in_lists_and_detail(db, client_id: int) -> None:
    void = _issued(db, client_id, ("A", "1", "100.00"))
    with db.write_session() as s, s.begin():
        void_invoice(s, void.id, "Wrong client")
    paid = _issued(db, client_id, ("B", "1", "50.00"))
    _pay(db, paid.id, f"{Decimal(paid.total_cents) / 100}")
    with db.write_session() as s, s.begin():
        note_id = create_credit_note(s, paid.id, "Goodwill", "10", TODAY).id  # all of it to client credit
    with db.session() as s:
        rows = {r.id: r for r in list_invoices(s, today=TODAY)}
        assert rows[void.id].balance_cents == 0 and rows[void.id].total_cents == void.total_cents
        assert rows[note_id].kind == "credit_note" and rows[note_id].balance_cents == 0
        assert rows[note_id].overdue_days == 0
        for iid in (void.id, note_id):
            assert invoice_detail(s, iid, today=TODAY).row.balance_cents == 0
        assert [n.balance_cents for n in invoice_detail(s, paid.id, today=TODAY).credit_notes] == [0]


def test_a_status_filter_lists_invoices_not_credit_notes(db, client_id: int) -> None:
    """Credit notes are stored as paid; "paid" means paid invoices, as on the Invoices screen."""
    paid = _issued(db, client_id, ("A", "1", "10.00"))
    _pay(db, paid.id, f"{Decimal(paid.total_cents) / 100}")
    open_ = _issued(db, client_id, ("B", "1", "100.00"))
    with db.write_session() as s, s.begin():
        note_id = create_credit_note(s, open_.id, "Discount", "5", TODAY).id
    with db.session() as s:
        assert [r.id for r in list_invoices(s, status="paid")] == [paid.id]
        assert [r.id for r in list_invoices(s, status="unpaid")] == [open_.id]
        assert [r.id for r in list_invoices(s, kind="credit_note")] == [note_id]
        assert [r.id for r in list_invoices(s, status="paid", kind="credit_note")] == [note_id]
        assert {r.id for r in list_invoices(s)} == {paid.id, open_.id, note_id}


# --- one-time invoices ---------------------------------------------------------------------------


def test_one_time_invoice_create_and_edit_draft(db, client_id: int) -> None:
    inv_id = one_time(db, client_id, ("Firewall appliance", "1", "$1,000.00"), ("Install (hours)", "2.5", "165"),
                      ("Shipping", "1", "25.50", False))
    inv = invoice(db, inv_id)
    taxable = 100000 + full("2.5", "165")
    assert [ln.amount_cents for ln in inv.lines] == [100000, full("2.5", "165"), 2550]
    assert all(ln.kind is LineKind.ITEM for ln in inv.lines)
    assert (inv.subtotal_cents, inv.tax_cents) == (taxable + 2550, tax_of(taxable, "8.25"))
    assert inv.total_cents == taxable + 2550 + tax_of(taxable, "8.25")
    assert inv.agreement_id is None and inv.period_start is None
    with db.session() as s:
        draft = one_time_draft(s, inv_id)
        assert invoice_detail(s, inv_id).editable
    assert [(it.quantity, it.unit_price) for it in draft.lines] == [("1", "1000.00"), ("2.5", "165.00"), ("1", "25.50")]
    draft.lines = draft.lines[:1] + [ItemDraft("Discount", "1", "-100.00")]
    draft.title = "Firewall"
    with db.write_session() as s, s.begin():
        update_one_time_invoice(s, inv_id, draft)
    edited = invoice(db, inv_id)
    assert edited.title == "Firewall" and [ln.amount_cents for ln in edited.lines] == [100000, -10000]
    assert edited.tax_cents == tax_of(90000, "8.25") and edited.total_cents == 90000 + tax_of(90000, "8.25")
    assert _actions(db, inv_id) == ["invoice.created", "invoice.updated"]
    issue_ids(db, [inv_id])
    err = _refused(db, lambda s: update_one_time_invoice(s, inv_id, draft))
    assert "cannot be changed" in err.issues[0].message


def test_a_generated_draft_is_not_edited_as_a_one_time_invoice(db, client_id: int) -> None:
    make_agreement(db, client_id, "2026-11-01", [LineDraft("Seats", "1", "10.00")])
    gen_id = generate(db, Month(2026, 11)).invoice_ids[0]
    err = _refused(db, lambda s: update_one_time_invoice(s, gen_id, OneTimeDraft(
        client_id, "X", "", [ItemDraft("A", "1", "1.00")])))
    assert "generated" in err.issues[0].message


@pytest.mark.parametrize(("items", "fields", "needle"), [
    ([], {"lines"}, "Add at least one line"),
    ([ItemDraft("", "1", "0.00")], {"lines"}, "Add at least one line"),
    ([ItemDraft("Refund", "1", "-5")], {"lines"}, "must be more than zero"),
    ([ItemDraft("A", "1", "10.00"), ItemDraft("B", "1", "-10.00")], {"lines"}, "must be more than zero"),
    ([ItemDraft("A", "1", "12.345")], {"lines[0].unit_price"}, "decimal places"),
    ([ItemDraft("A", "1", "1e3")], {"lines[0].unit_price"}, "is not an amount"),
    ([ItemDraft("A", "1e3", "10.00")], {"lines[0].quantity"}, "is not a number"),
    ([ItemDraft("A", "0", "10.00")], {"lines[0].quantity"}, "more than zero"),
    ([ItemDraft("", "1", "10.00")], {"lines[0].description"}, "Enter the line description"),
])
def test_one_time_invoice_validation(db, client_id: int, count_rows, items, fields, needle) -> None:
    before = (count_rows(db, Invoice), count_rows(db, AuditEntry))
    err = _refused(db, lambda s: create_one_time_invoice(s, OneTimeDraft(client_id, "Job", "", items)))
    assert set(err.by_field()) == fields
    assert needle in " ".join(i.message for i in err.issues)
    assert (count_rows(db, Invoice), count_rows(db, AuditEntry)) == before


def test_one_time_invoice_reports_every_problem_at_once(db, count_rows) -> None:
    setup_office(db)
    err = _refused(db, lambda s: create_one_time_invoice(s, OneTimeDraft(
        None, "", "", [ItemDraft("A", "1", "12.345"), ItemDraft("B", "abc", "1")])))
    assert set(err.by_field()) == {"client_id", "title", "lines[0].unit_price", "lines[1].quantity"}
    assert count_rows(db, Invoice) == 0


def test_one_time_invoice_accepts_a_formatted_amount(db, client_id: int) -> None:
    inv = invoice(db, one_time(db, client_id, ("Server", "1", "$1,000.00", False)))
    assert inv.lines[0].unit_price_cents == 100000 and inv.total_cents == 100000


# --- instalment plans -----------------------------------------------------------------------


def test_split_into_monthly_instalments(db, client_id: int, count_rows) -> None:
    original = invoice(db, one_time(db, client_id, ("Server", "1", "1000.01"), ("Licences", "1", "250.00", False)))
    with db.write_session() as s, s.begin():
        ids = split_into_instalments(s, original.id, "3", Month(2026, 12))
    parts = [invoice(db, i) for i in ids]
    assert count_rows(db, Invoice) == 3  # the original draft is replaced
    assert [p.period_start for p in parts] == [dt.date(2026, 12, 1), dt.date(2027, 1, 1), dt.date(2027, 2, 1)]
    assert [p.period_end for p in parts] == [dt.date(2026, 12, 31), dt.date(2027, 1, 31), dt.date(2027, 2, 28)]
    assert [p.instalment_number for p in parts] == [1, 2, 3]
    assert [p.title for p in parts] == ["Server upgrade (1/3)", "Server upgrade (2/3)", "Server upgrade (3/3)"]
    taxable = [sum(ln.amount_cents for ln in p.lines if ln.taxable) for p in parts]
    other = [sum(ln.amount_cents for ln in p.lines if not ln.taxable) for p in parts]
    assert taxable == [100001 // 3 + 100001 % 3, 100001 // 3, 100001 // 3]  # odd cents on the first
    assert other == [25000 // 3 + 25000 % 3, 25000 // 3, 25000 // 3]
    assert sum(p.subtotal_cents for p in parts) == original.subtotal_cents
    assert all(ln.kind is LineKind.INSTALMENT for p in parts for ln in p.lines)
    assert all(p.tax_cents == tax_of(t, "8.25") and p.total_cents == p.subtotal_cents + p.tax_cents
               for p, t in zip(parts, taxable))
    assert sum(p.total_cents for p in parts) == original.total_cents
    with db.session() as s:
        plan = s.scalars(select(InstalmentPlan)).one()
        assert (plan.instalments, plan.total_cents, plan.first_month) == (3, original.total_cents, dt.date(2026, 12, 1))
        assert drafts_for_month(s, Month(2026, 12)) == [ids[0]]
        assert invoice_detail(s, ids[1]).instalment == "Instalment 2 of 3: Server upgrade"
        assert audit.history(s, "invoice", original.id)[-1].action == "invoice.split"
    # Each is issued with its own month's invoices.
    with db.write_session() as s, s.begin():
        assert issue_month(s, Month(2027, 1), dt.date(2027, 1, 1)) == ["INV-000001"]
    assert invoice(db, ids[1]).status is InvoiceStatus.OPEN
    assert invoice(db, ids[0]).status is InvoiceStatus.DRAFT and invoice(db, ids[2]).status is InvoiceStatus.DRAFT
    err = _refused(db, lambda s: split_into_instalments(s, ids[0], 2, Month(2027, 3)))
    assert "generated" in err.issues[0].message  # an instalment is not split again


@pytest.mark.parametrize("count", ["1", "37", "abc", 0])
def test_split_refuses_a_bad_number_of_instalments(db, client_id: int, count, count_rows) -> None:
    inv_id = one_time(db, client_id, ("Server", "1", "100.00"))
    err = _refused(db, lambda s: split_into_instalments(s, inv_id, count, Month(2026, 12)))
    assert err.issues[0].field == "instalments"
    assert count_rows(db, Invoice) == 1 and count_rows(db, InstalmentPlan) == 0


def test_an_issued_invoice_is_not_split(db, client_id: int) -> None:
    inv = _issued(db, client_id, ("Server", "1", "100.00"))
    assert "cannot be changed" in _refused(db, lambda s: split_into_instalments(s, inv.id, 2)).issues[0].message


def test_instalment_totals_sum_to_the_original_even_when_tax_rounds(db) -> None:
    setup_office(db)
    cid = make_client(db, tax_rate="0.5")
    original = invoice(db, one_time(db, cid, ("Cable", "1", "3.00")))  # tax 1.5 cents → 2
    with db.write_session() as s, s.begin():
        ids = split_into_instalments(s, original.id, 3, Month(2026, 12))
    assert sum(invoice(db, i).total_cents for i in ids) == original.total_cents


# --- the audit trail ------------------------------------------------------------------------------


def test_every_step_of_an_invoices_life_leaves_an_audit_entry(db, client_id: int) -> None:
    inv_id = one_time(db, client_id, ("Project", "1", "500.00"))
    with db.write_session() as s, s.begin():
        draft = one_time_draft(s, inv_id)
        draft.memo = "Phase 1"
        update_one_time_invoice(s, inv_id, draft)
    issue_ids(db, [inv_id])
    _pay(db, inv_id, "100.00")
    with db.write_session() as s, s.begin():
        note_number = create_credit_note(s, inv_id, "Scope reduced", "50", TODAY).number
        mark_uncollectible(s, inv_id, "Client closed")
    _pay(db, inv_id, "10.00")
    with db.session() as s:
        entries = audit.history(s, "invoice", inv_id)
    assert [e.action for e in entries] == ["invoice.created", "invoice.updated", "invoice.issued",
                                           "payment.recorded", "invoice.credited", "invoice.uncollectible",
                                           "payment.recorded"]
    number = invoice(db, inv_id).number
    assert number in entries[2].summary and note_number in entries[4].summary  # type: ignore[operator]
    assert "Scope reduced" in entries[4].summary and "Client closed" in entries[5].summary
    assert all(e.actor for e in entries)


# --- two desks issuing at once --------------------------------------------------------------------


def test_two_sessions_issuing_at_once_never_share_or_skip_a_number(db, client_id: int) -> None:
    per_thread, threads_n = 15, 2
    drafts = [one_time(db, client_id, (f"Job {i}", "1", "10.00")) for i in range(per_thread * threads_n)]
    batches = [drafts[i::threads_n] for i in range(threads_n)]
    databases = [db] + [Database(db.url) for _ in range(threads_n - 1)]  # separate engines on the same file
    barrier = threading.Barrier(threads_n)
    results: list[list[str]] = [[] for _ in range(threads_n)]
    errors: list[BaseException] = []

    def issue_one_by_one(slot: int) -> None:
        try:
            barrier.wait()
            for draft_id in batches[slot]:
                with databases[slot].write_session() as s, s.begin():
                    results[slot].extend(issue_invoices(s, [draft_id], ISSUE_DAY))
        except BaseException as exc:  # pragma: no cover - asserted below
            errors.append(exc)

    threads = [threading.Thread(target=issue_one_by_one, args=(i,)) for i in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for extra in databases[1:]:
        extra.dispose()
    assert errors == []
    numbers = [n for r in results for n in r]
    total = per_thread * threads_n
    assert len(numbers) == len(set(numbers)) == total
    assert sorted(numbers) == [f"INV-{n:06d}" for n in range(1, total + 1)]
    with db.session() as s:
        seqs = sorted(s.scalars(select(Invoice.number_seq).where(Invoice.status == InvoiceStatus.OPEN)))
        assert seqs == list(range(1, total + 1))
        assert s.get(CompanyProfile, 1).next_invoice_number == total + 1  # type: ignore[union-attr]


def test_two_sessions_issuing_batches_and_credit_notes_at_once(db, client_id: int) -> None:
    """Batches of several drafts and credit notes interleave without gaps in either series."""
    targets = [_issued(db, client_id, (f"T{i}", "1", "10.00")).id for i in range(6)]
    drafts = [one_time(db, client_id, (f"Job {i}", "1", "10.00")) for i in range(12)]
    other = Database(db.url)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def batches() -> None:
        try:
            barrier.wait()
            for i in range(0, len(drafts), 3):
                with other.write_session() as s, s.begin():
                    issue_invoices(s, drafts[i:i + 3], ISSUE_DAY)
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    def notes() -> None:
        try:
            barrier.wait()
            for target in targets:
                with db.write_session() as s, s.begin():
                    create_credit_note(s, target, "Goodwill", "1", TODAY)
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=batches), threading.Thread(target=notes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    other.dispose()
    assert errors == []
    with db.session() as s:
        inv_seqs = sorted(s.scalars(select(Invoice.number_seq).where(Invoice.kind == InvoiceKind.INVOICE)))
        cn_seqs = sorted(s.scalars(select(Invoice.number_seq).where(Invoice.kind == InvoiceKind.CREDIT_NOTE)))
    assert inv_seqs == list(range(1, 6 + 12 + 1))
    assert cn_seqs == list(range(1, 6 + 1))


# --- properties ------------------------------------------------------------------------------------

# At least 0.01 × $1.00, so every line is a cent or more and the total is positive.
_items = st.lists(st.tuples(st.decimals(min_value=Decimal("0.01"), max_value=Decimal(100), places=4),
                            st.integers(min_value=100, max_value=1_000_000), st.booleans()),
                  min_size=1, max_size=6)


class _Rollback(Exception):
    pass


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=_items, rate=st.decimals(min_value=0, max_value=Decimal(20), places=3),
       parts=st.integers(min_value=2, max_value=12))
def test_one_time_and_instalment_totals_are_lines_plus_tax(db, items, rate, parts) -> None:
    try:
        with db.write_session() as s, s.begin():
            cid = create_client(s, ClientDraft(legal_name="Prop Co", tax_rate=str(rate))).id
            draft = OneTimeDraft(cid, "Job", "", [ItemDraft(f"Item {i}", f"{q:f}", f"{Decimal(p) / 100:.2f}", t)
                                                  for i, (q, p, t) in enumerate(items)])
            inv = create_one_time_invoice(s, draft)
            taxable = sum(ln.amount_cents for ln in inv.lines if ln.taxable)
            assert [ln.amount_cents for ln in inv.lines] == [half_up(q * p) for q, p, _ in items]
            assert inv.tax_cents == half_up(rate * taxable / 100)
            assert inv.total_cents == sum(ln.amount_cents for ln in inv.lines) + inv.tax_cents
            subtotal = inv.subtotal_cents
            ids = split_into_instalments(s, inv.id, parts, Month(2026, 12))
            shares = [s.get(Invoice, i) for i in ids]
            assert sum(p.subtotal_cents for p in shares) == subtotal  # type: ignore[union-attr]
            # The original's tax is split, not re-rounded: the instalments add up to the cent.
            assert sum(p.tax_cents for p in shares) == inv.tax_cents  # type: ignore[union-attr]
            assert sum(p.total_cents for p in shares) == inv.total_cents  # type: ignore[union-attr]
            for p in shares:
                assert p is not None
                part_taxable = sum(ln.amount_cents for ln in p.lines if ln.taxable)
                assert abs(p.tax_cents - half_up(rate * part_taxable / 100)) <= 1 + len(shares)
                assert p.total_cents == sum(ln.amount_cents for ln in p.lines) + p.tax_cents
            raise _Rollback
    except _Rollback:
        pass


# --- issue dates ----------------------------------------------------------------------------------


def test_issue_dates_go_forward_with_the_numbers_and_stay_near_today(db, client_id: int, count_rows) -> None:
    first, second, third = (one_time(db, client_id, ("Job", "1", "10.00")) for _ in range(3))
    issue_ids(db, [first], dt.date.today())
    with pytest.raises(ValidationError) as excinfo:
        issue_ids(db, [second], dt.date.today() - dt.timedelta(days=1))
    message = excinfo.value.by_field()["issue_date"][0]
    assert f"before {dt.date.today().isoformat()}, the date of the last invoice issued" in message
    with pytest.raises(ValidationError) as excinfo:
        issue_ids(db, [second], dt.date.today() + dt.timedelta(days=400))
    assert "days ahead" in excinfo.value.by_field()["issue_date"][0]
    assert invoice(db, second).status is InvoiceStatus.DRAFT and invoice(db, second).number is None
    assert issue_ids(db, [second, third], dt.date.today() + dt.timedelta(days=5)) == ["INV-000002", "INV-000003"]
