"""Payments recorded by hand (check, cash, wire, ACH outside Stripe) on a real SQLite file."""

from __future__ import annotations

import datetime as dt

import pytest

from billing_helpers import credit_balance, credit_entries, invoice, issue_ids, make_client, one_time, setup_office
from mspbill import audit
from mspbill.db.models import AuditEntry, ClientCredit, InvoiceStatus, Payment, PaymentMethod
from mspbill.invoicing import create_credit_note, mark_uncollectible, void_invoice
from mspbill.payments.manual import OverpaymentError, list_payments, parse_method, record_payment
from mspbill.periods import Month
from mspbill.validation import ValidationError

# Run on SQLite and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.both_databases

TODAY = dt.date(2026, 11, 20)


@pytest.fixture
def client_id(db) -> int:
    setup_office(db)
    return make_client(db, "Cascade Dental")  # tax-exempt: totals are the round numbers below


@pytest.fixture
def invoice_id(db, client_id: int) -> int:
    """An open invoice for $100.00."""
    inv_id = one_time(db, client_id, ("Project", "1", "100.00"))
    issue_ids(db, [inv_id], dt.date(2026, 11, 1))
    return inv_id


def _pay(db, invoice_id: int, amount: str, method: str | PaymentMethod = "check", **kw: object) -> int:
    kw.setdefault("today", TODAY)
    with db.write_session() as s, s.begin():
        return record_payment(s, invoice_id, amount, method, **kw).id  # type: ignore[arg-type]


def _counts(db, count_rows) -> tuple[int, ...]:  # type: ignore[no-untyped-def]
    return tuple(count_rows(db, m) for m in (Payment, ClientCredit, AuditEntry))


def _refused(db, count_rows, invoice_id: int, amount: str, method: str | PaymentMethod = "check",
             **kw: object) -> ValidationError:
    """Record a payment that must be refused; check that nothing at all was written."""
    before = _counts(db, count_rows)
    paid_before = invoice(db, invoice_id).paid_cents
    with pytest.raises(ValidationError) as excinfo:
        _pay(db, invoice_id, amount, method, **kw)
    assert _counts(db, count_rows) == before
    assert invoice(db, invoice_id).paid_cents == paid_before
    return excinfo.value


def test_partial_payment_leaves_a_balance_and_the_invoice_open(db, invoice_id: int) -> None:
    pid = _pay(db, invoice_id, "40.00", reference="1234", received_on="2026-11-15")
    inv = invoice(db, invoice_id)
    assert inv.status is InvoiceStatus.OPEN and inv.paid_cents == 4000 and inv.balance_cents == 6000
    with db.session() as s:
        p = s.get(Payment, pid)
        assert p is not None
        assert (p.amount_cents, p.applied_cents, p.method, p.reference, p.received_on) == (
            4000, 4000, PaymentMethod.CHECK, "1234", dt.date(2026, 11, 15))
        entry = audit.history(s, "invoice", invoice_id)[-1]
    assert entry.action == "payment.recorded" and entry.details == {"payment_id": pid}
    assert "(ref 1234)" in entry.summary and "$60.00 still due" in entry.summary


@pytest.mark.parametrize(("method", "said"), [
    ("ach", "by ACH (outside Stripe)"), ("check", "by check"), ("wire", "by wire transfer"), ("cash", "by cash"),
    ("other", "by another method"),
])
def test_the_audit_entry_names_the_method_as_written(db, invoice_id: int, method: str, said: str) -> None:
    _pay(db, invoice_id, "10.00", method, received_on="2026-11-15")
    with db.session() as s:
        summary = audit.history(s, "invoice", invoice_id)[-1].summary
    assert summary.startswith(f"Recorded payment of $10.00 {said} on INV-000001, received 2026-11-15")


def test_a_zero_payment_is_not_called_a_refund(db, invoice_id: int, count_rows) -> None:
    assert _refused(db, count_rows, invoice_id, "0.00").issues[0].message == "A payment is more than zero."
    assert "refund" in _refused(db, count_rows, invoice_id, "-5").issues[0].message


def test_exact_payment_pays_the_invoice(db, invoice_id: int) -> None:
    _pay(db, invoice_id, "60")
    _pay(db, invoice_id, "40", "cash")
    inv = invoice(db, invoice_id)
    assert inv.status is InvoiceStatus.PAID and inv.balance_cents == 0 and inv.closed_at is not None
    with db.session() as s:
        assert "now paid in full" in audit.history(s, "invoice", invoice_id)[-1].summary


def test_overpayment_is_refused_unless_the_excess_becomes_client_credit(db, client_id, invoice_id, count_rows) -> None:
    with pytest.raises(OverpaymentError) as excinfo:
        _pay(db, invoice_id, "150.00")
    err = excinfo.value
    assert (err.amount_cents, err.balance_cents, err.excess_cents) == (15000, 10000, 5000)
    assert "keep $50.00 as client credit" in err.issues[0].message
    assert count_rows(db, Payment) == 0 and credit_balance(db, client_id) == 0

    pid = _pay(db, invoice_id, "150.00", credit_excess=True)
    inv = invoice(db, invoice_id)
    assert inv.status is InvoiceStatus.PAID and inv.paid_cents == 10000
    with db.session() as s:
        p = s.get(Payment, pid)
        assert p is not None and (p.amount_cents, p.applied_cents) == (15000, 10000)
    assert credit_entries(db, client_id) == [("overpayment", 5000)]

    # The credit goes to the next invoice issued to the client.
    next_id = one_time(db, client_id, ("Next month", "1", "80.00"))
    issue_ids(db, [next_id], dt.date(2026, 12, 1))
    nxt = invoice(db, next_id)
    assert nxt.credit_applied_cents == 5000 and nxt.balance_cents == 3000 and nxt.status is InvoiceStatus.OPEN
    assert credit_balance(db, client_id) == 0


def test_a_paid_invoice_takes_more_money_only_as_client_credit(db, client_id, invoice_id) -> None:
    _pay(db, invoice_id, "100")
    with pytest.raises(OverpaymentError) as excinfo:
        _pay(db, invoice_id, "5")
    assert "already paid in full" in excinfo.value.issues[0].message
    _pay(db, invoice_id, "5", credit_excess=True)
    assert credit_balance(db, client_id) == 500


def test_payment_refused_on_a_draft_a_void_invoice_and_a_credit_note(db, client_id, invoice_id, count_rows) -> None:
    draft = one_time(db, client_id, ("Draft", "1", "10.00"))
    assert "still a draft" in _refused(db, count_rows, draft, "5").issues[0].message
    void = one_time(db, client_id, ("Void", "1", "10.00"))
    issue_ids(db, [void])
    with db.write_session() as s, s.begin():
        void_invoice(s, void, "Wrong client")
        note_id = create_credit_note(s, invoice_id, "Goodwill", "10", TODAY).id
    assert "is void" in _refused(db, count_rows, void, "5").issues[0].message
    msg = _refused(db, count_rows, note_id, "5").issues[0].message
    assert "is a credit note" in msg
    assert all(e.field == "invoice" for e in _refused(db, count_rows, note_id, "5").issues)


@pytest.mark.parametrize(("amount", "needle"), [
    ("12.345", "decimal places"),
    ("-5", "more than zero"),
    ("1e3", "is not an amount"),
    ("0", "more than zero"),
    ("", "Enter an amount"),
    ("abc", "is not an amount"),
    ("€5.00", "is not an amount"),
])
def test_bad_amounts_are_refused_and_nothing_is_written(db, invoice_id, count_rows, amount, needle) -> None:
    err = _refused(db, count_rows, invoice_id, amount)
    assert [i.field for i in err.issues] == ["amount"]
    assert needle in err.issues[0].message


def test_a_formatted_amount_is_accepted(db, client_id) -> None:
    big = one_time(db, client_id, ("Server", "1", "2500.00"))
    issue_ids(db, [big])
    _pay(db, big, "$1,000.00", "wire")
    assert invoice(db, big).paid_cents == 100000


def test_dates_received(db, invoice_id, count_rows) -> None:
    err = _refused(db, count_rows, invoice_id, "10", received_on=TODAY + dt.timedelta(days=1))
    assert err.issues[0].field == "received_on" and "in the future" in err.issues[0].message
    assert "is not a date" in _refused(db, count_rows, invoice_id, "10", received_on="yesterday").issues[0].message
    early = _refused(db, count_rows, invoice_id, "10", received_on="1999-12-31")
    assert "too far in the past" in early.issues[0].message
    pid = _pay(db, invoice_id, "10")  # no date: received today
    with db.session() as s:
        assert s.get(Payment, pid).received_on == TODAY  # type: ignore[union-attr]


@pytest.mark.parametrize(("text", "method"), [
    ("check", PaymentMethod.CHECK), ("Cheque", PaymentMethod.CHECK), (" CHQ ", PaymentMethod.CHECK),
    ("cash", PaymentMethod.CASH), ("Bank transfer", PaymentMethod.WIRE), ("wire", PaymentMethod.WIRE),
    ("Wire transfer", PaymentMethod.WIRE), ("EFT", PaymentMethod.ACH), ("ach", PaymentMethod.ACH),
    ("other", PaymentMethod.OTHER),
])
def test_method_names_and_aliases(text: str, method: PaymentMethod) -> None:
    assert parse_method(text) is method


def test_card_and_unknown_methods_are_refused(db, invoice_id, count_rows) -> None:
    err = _refused(db, count_rows, invoice_id, "10", "card")
    assert err.issues[0].field == "method" and "through Stripe" in err.issues[0].message
    assert "through Stripe" in _refused(db, count_rows, invoice_id, "10", PaymentMethod.CARD).issues[0].message
    assert "is not a payment method" in _refused(db, count_rows, invoice_id, "10", "bitcoin").issues[0].message
    _pay(db, invoice_id, "10", "cheque")
    with db.session() as s:
        assert [p.method for p in s.query(Payment)] == [PaymentMethod.CHECK]


def test_every_problem_is_reported_at_once(db, invoice_id, count_rows) -> None:
    err = _refused(db, count_rows, invoice_id, "12.345", "card", received_on=TODAY + dt.timedelta(days=3),
                   reference="r" * 101)
    assert set(err.by_field()) == {"amount", "method", "received_on", "reference"}


def test_payment_on_an_uncollectible_invoice_settles_it(db, invoice_id) -> None:
    with db.write_session() as s, s.begin():
        mark_uncollectible(s, invoice_id, "No answer")
    _pay(db, invoice_id, "100")
    assert invoice(db, invoice_id).status is InvoiceStatus.PAID


def test_a_payment_dated_before_the_invoice_was_issued_is_refused(db, invoice_id, count_rows) -> None:
    with pytest.raises(ValidationError) as excinfo:
        _pay(db, invoice_id, "30", received_on="2026-10-30")
    message = excinfo.value.by_field()["received_on"][0]
    assert "before INV-000001 was issued (2026-11-01)" in message and "paid in advance" in message
    assert count_rows(db, Payment) == 0


def test_list_payments(db, client_id, invoice_id) -> None:
    other = make_client(db, "Alder Creek Winery")
    other_inv = one_time(db, other, ("Job", "1", "50.00"))
    issue_ids(db, [other_inv])
    _pay(db, invoice_id, "30", reference="CHK-77", received_on="2026-11-01")
    _pay(db, invoice_id, "80", credit_excess=True, received_on="2026-11-02")
    _pay(db, other_inv, "50", "wire", received_on="2026-11-03")
    with db.session() as s:
        rows = list_payments(s)
        assert [(r.client_name, r.amount_cents, r.applied_cents, r.credit_cents) for r in rows] == [
            ("Alder Creek Winery", 5000, 5000, 0), ("Cascade Dental", 8000, 7000, 1000),
            ("Cascade Dental", 3000, 3000, 0)]
        assert rows[0].invoice_number == invoice(db, other_inv).number and rows[0].method_label == "Wire transfer"
        assert [r.amount_cents for r in list_payments(s, client_id=client_id)] == [8000, 3000]
        assert [r.amount_cents for r in list_payments(s, month=Month(2026, 11))] == [5000, 8000, 3000]
        assert list_payments(s, month=Month(2026, 10)) == []
        assert [r.amount_cents for r in list_payments(s, search="chk-77")] == [3000]
        assert [r.amount_cents for r in list_payments(s, search="alder")] == [5000]


def test_payments_in_a_currency_without_cents(db) -> None:
    setup_office(db)
    yen = make_client(db, "株式会社テスト", currency="JPY")
    inv_id = one_time(db, yen, ("Support", "1", "¥15,000"))
    issue_ids(db, [inv_id])
    assert invoice(db, inv_id).total_cents == 15000
    with pytest.raises(ValidationError) as excinfo:
        _pay(db, inv_id, "100.50")
    assert "no decimal places" in excinfo.value.issues[0].message
    _pay(db, inv_id, "15000")
    assert invoice(db, inv_id).status is InvoiceStatus.PAID


def test_payment_amount_never_a_float(db, invoice_id) -> None:
    with pytest.raises(TypeError):
        _pay(db, invoice_id, 10.5)  # type: ignore[arg-type]
    assert invoice(db, invoice_id).paid_cents == 0
