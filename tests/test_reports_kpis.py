"""The office's key figures (mspbill.reports.kpis) on a real SQLite file.

The office is built through the real services (clients, agreements, one-time
invoices issued on their dates, payments recorded by hand, credit notes, voids,
cards saved and charged on the sandbox processor).  Every expected figure is
worked out by hand in the test from what it recorded; the arithmetic is in the
comments.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

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

from mspbill.agreements import LineDraft
from mspbill.clients import archive_client
from mspbill.db.models import SetupLink
from mspbill.invoicing import create_credit_note, void_invoice
from mspbill.payments import charges, methods
from mspbill.payments.manual import record_payment
from mspbill.payments.processor import PaymentSettingsDraft, save_settings
from mspbill.payments.sandbox import SandboxGateway
from mspbill.reports import AsOfError
from mspbill.reports.kpis import Kpis, behaviour, compute_kpis, kpis_json, kpis_text

TODAY = d("2026-11-21")
LATER = dt.date(2026, 12, 31)  # "today" for recording payments: no date below is refused


class Clock:
    """The sandbox's 'now', set by the tests (cards' expiry dates come from it)."""

    def __init__(self) -> None:
        self.now = dt.datetime(2026, 11, 1, 15, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sandbox(tmp_path: Path, clock: Clock) -> SandboxGateway:
    return SandboxGateway(tmp_path / "sandbox.sqlite3", clock=clock)


def _use_sandbox(db) -> None:
    with db.write_session() as s, s.begin():
        save_settings(s, PaymentSettingsDraft("sandbox"))


def _save_method(db, sandbox: SandboxGateway, clock: Clock, client_id: int, token: str, on: dt.date) -> None:
    """What the client does on `on`: open the setup link and save a method; then the app polls."""
    clock.now = dt.datetime.combine(on, dt.time(15), dt.UTC)
    link = methods.create_setup_link(db, sandbox, client_id, now=clock.now)
    with db.session() as s:
        session_id = s.scalar(select(SetupLink.session_id).where(SetupLink.id == link.link_id))
    sandbox.complete_setup_session(session_id, token)
    assert len(methods.poll_setup_links(db, sandbox, now=clock.now).completed) == 1


def _invoice(db, client_id: int, amount: str, issued: dt.date) -> int:
    inv = one_time(db, client_id, ("Project work", "1", amount))
    issue_ids(db, [inv], issued)
    return inv


def _pay(db, invoice_id: int, amount: str, received: dt.date, **kw: object) -> None:
    with db.write_session() as s, s.begin():
        record_payment(s, invoice_id, amount, "check", received_on=received, today=LATER, **kw)  # type: ignore[arg-type]


def _kpis(db, as_of: dt.date = TODAY) -> Kpis:
    with db.session() as s:
        return compute_kpis(s, as_of, today=TODAY)


def _monthly(amount: str, quantity: str = "1") -> list[LineDraft]:
    return [LineDraft("Managed services", quantity, amount)]


# --- the hand-worked office -------------------------------------------------------------


@pytest.fixture
def office(db, sandbox, clock) -> dict[str, int]:
    """Seven active clients and one archived; invoices issued Jul 1 – Nov 15, 2026 (dates go forward)."""
    setup_office(db)
    _use_sandbox(db)
    ids = {
        "A": make_client(db, "Alder Dental", payment_terms_days="30"),
        "B": make_client(db, "Birch Law", payment_terms_days="15"),
        "C": make_client(db, "Cedar Clinic", autopay=True),       # autopay, a good card
        "D": make_client(db, "Dogwood Farms", autopay=True),      # autopay, its card expired in October
        "E": make_client(db, "Elm Bakery", autopay=True),         # autopay, no method on file
        "F": make_client(db, "Fir Studio"),                       # no invoices at all
        "W": make_client(db, "Wien IT GmbH", currency="EUR", payment_terms_days="30"),
        "G": make_client(db, "Gone Ltd", autopay=True),           # archived below
    }
    # MRR (in force on Nov 21): A 10 × $100 = $1,000; C 2 × $300 = $600; D quarterly $900 ÷ 3 = $300;
    # E annual $1,200 ÷ 12 = $100  ->  $2,000.00.  W's €500 is in EUR; G is archived.
    make_agreement(db, ids["A"], "2026-01-01", _monthly("100.00", "10"))
    make_agreement(db, ids["C"], "2026-01-01", _monthly("300.00", "2"))
    make_agreement(db, ids["D"], "2026-01-01", _monthly("900.00"), frequency="quarterly")
    make_agreement(db, ids["E"], "2026-01-01", _monthly("1200.00"), frequency="annual")
    make_agreement(db, ids["W"], "2026-01-01", _monthly("500.00"))
    make_agreement(db, ids["G"], "2026-01-01", _monthly("5000.00"))
    # An agreement that ended before as_of counts for nothing.
    make_agreement(db, ids["A"], "2026-01-01", _monthly("777.00"), end="2026-10-31", name="Old backup")
    _save_method(db, sandbox, clock, ids["C"], "pm_card_visa", d("2026-11-01"))            # good to 11/2029
    _save_method(db, sandbox, clock, ids["D"], "pm_card_visa_expiring", d("2026-10-15"))   # good to 10/2026
    _save_method(db, sandbox, clock, ids["G"], "pm_card_visa", d("2026-11-01"))

    ids["inv1"] = _invoice(db, ids["A"], "1000.00", d("2026-07-01"))   # due Jul 31
    _pay(db, ids["inv1"], "400.00", d("2026-08-10"))
    ids["inv2"] = _invoice(db, ids["B"], "500.00", d("2026-08-01"))    # due Aug 16, never paid
    _pay(db, ids["inv1"], "600.00", d("2026-09-15"))                     # inv1 paid in full (late)
    ids["inv3"] = _invoice(db, ids["A"], "2000.00", d("2026-09-01"))   # due Oct 1
    _pay(db, ids["inv3"], "2000.00", d("2026-10-20"))                    # paid 19 days late
    ids["inv4"] = _invoice(db, ids["C"], "300.00", d("2026-10-01"))    # autopay: due on issue
    _pay(db, ids["inv4"], "350.00", d("2026-10-01"), credit_excess=True)  # $50 overpaid -> client credit
    ids["inv5"] = _invoice(db, ids["A"], "1500.00", d("2026-10-15"))   # due Nov 14
    with db.write_session() as s, s.begin():
        create_credit_note(s, ids["inv5"], "Discount agreed", "200.00", issue_date=d("2026-10-20"))
    _pay(db, ids["inv5"], "300.00", d("2026-11-18"))                     # $1,500 - $200 - $300 = $1,000 left
    ids["inv6"] = _invoice(db, ids["D"], "900.00", d("2026-11-01"))    # autopay: due Nov 1, unpaid
    ids["inv7"] = _invoice(db, ids["B"], "800.00", d("2026-11-10"))    # due Nov 25
    ids["inv8"] = _invoice(db, ids["A"], "700.00", d("2026-11-12"))
    with db.write_session() as s, s.begin():
        void_invoice(s, ids["inv8"], "Issued twice")
        archive_client(s, ids["G"])
    ids["inv9"] = _invoice(db, ids["W"], "2000.00", d("2026-11-15"))   # EUR
    return ids


def test_the_hand_worked_office_ar_dso_cei_and_adoption(db, office) -> None:
    k = _kpis(db)
    assert k.currency == "USD" and k.as_of == TODAY

    # A/R on Nov 21 (USD):
    #   inv2 B $500, due Aug 16 -> 97 days past due (over 90)
    #   inv5 A $1,000, due Nov 14 -> 7 days (1-30)
    #   inv6 D $900, due Nov 1 -> 20 days (1-30)
    #   inv7 B $800, due Nov 25 -> current
    # inv1, inv3, inv4 are paid; inv8 is void; inv9 is in EUR.
    assert k.aging.as_dict() == {"current": 80_000, "1_30": 190_000, "31_60": 0, "61_90": 0, "over_90": 50_000}
    assert (k.ar_total.value, k.ar_invoice_count) == (320_000, 4)          # 500 + 1,000 + 900 + 800
    assert (k.ar_overdue.value, k.overdue_invoice_count) == (240_000, 3)   # 500 + 1,000 + 900
    assert k.ar_total.text == "$3,200.00" and k.ar_overdue.text == "$2,400.00"
    assert k.credit_held.value == 5_000                                     # C's $50 overpayment
    assert k.other_currencies == {"EUR": 200_000}
    assert any("€2,000.00 owed in EUR" in n for n in k.notes)

    # The window: Aug 24 - Nov 21 (90 days, both included).
    w = k.window
    assert (w.start, w.end) == (d("2026-08-24"), TODAY)
    # Invoices issued in it, not void, USD: inv3 2,000 + inv4 300 + inv5 1,500 + inv6 900 + inv7 800 = 5,500
    # Credit notes issued in it: 200  ->  S = 5,300
    assert (w.invoiced_cents, w.invoice_count, w.credited_cents, w.sales_cents) == (550_000, 5, 20_000, 530_000)
    # B = A/R at the end of Aug 23: inv1 1,000 - 400 = 600, inv2 500 -> 1,100
    assert (w.ar_start_cents, w.ar_end_cents, w.ar_current_cents) == (110_000, 320_000, 80_000)

    # DSO = 3,200 / 5,300 × 90 = 54.339... -> 54.3 days
    assert k.dso.value == Decimal("54.3") and k.dso.text == "54.3 days"
    assert ("A/R $3,200.00 ÷ net credit sales $5,300.00 in the 90 days Aug 24 – Nov 21, 2026 × 90 = 54.3 days"
            in k.dso.explain)
    # CEI = (1,100 + 5,300 - 3,200) / (1,100 + 5,300 - 800) × 100 = 3,200 / 5,600 × 100 = 57.142... -> 57.1 %
    assert k.cei.value == Decimal("57.1") and k.cei.text == "57.1 %"
    assert "($1,100.00 + $5,300.00 − $3,200.00) ÷ ($1,100.00 + $5,300.00 − $800.00) × 100 = 57.1 %" in k.cei.explain

    # MRR $2,000.00 (see the fixture).  Active clients: A B C D E F W = 7; on autopay C D E = 3;
    # a valid method: C only (D's card expired in October, E has none).
    assert k.mrr.value == 200_000 and k.mrr.text == "$2,000.00"
    assert any("€500.00 a month" in n for n in k.notes)
    assert (k.active_clients, k.autopay_any, k.autopay_valid, k.autopay_without_valid) == (7, 3, 1, 2)
    assert k.autopay_clients.value == Decimal("14.3")       # 1 / 7 × 100 = 14.285... -> 14.3
    assert k.autopay_mrr.value == Decimal("30.0")           # C's $600 / $2,000 × 100 = 30.0
    assert "$600.00 ÷ MRR $2,000.00 × 100 = 30.0 %" in k.autopay_mrr.explain

    # Most overdue: A $1,000 (7 days), D $900 (20 days), B $500 (97 days; inv7 is not yet due).
    assert [(c.client_name, c.overdue_cents, c.oldest_days_past_due, c.invoice_count) for c in k.most_overdue] == [
        ("Alder Dental", 100_000, 7, 1), ("Dogwood Farms", 90_000, 20, 1), ("Birch Law", 50_000, 97, 1)]

    # Cash: Aug $400; Sep $600; Oct $2,000 + $350 = $2,350; Nov $300.
    cash = {m.label: m.cents for m in k.cash_by_month}
    assert len(k.cash_by_month) == 12 and k.cash_by_month[0].month == d("2025-12-01")
    assert (cash["Aug 2026"], cash["Sep 2026"], cash["Oct 2026"], cash["Nov 2026"]) == (40_000, 60_000, 235_000, 30_000)
    assert sum(cash.values()) == 365_000 and k.cash_this_month.value == 30_000

    assert k.failed_charges.value == 0 and k.awaiting_action == ()


def test_payment_behaviour_of_the_hand_worked_office(db, office) -> None:
    with db.session() as s:
        rows = {b.client_name: b for b in behaviour(s, TODAY, today=TODAY)}
    # Clients with no invoice (F) or no payment history and nothing wrong (D, E) are not listed.
    assert set(rows) == {"Alder Dental", "Birch Law", "Cedar Clinic"}
    alder = rows["Alder Dental"]
    # inv1: issued Jul 1, last payment Sep 15 -> 76 days to pay, 46 late (due Jul 31)
    # inv3: issued Sep 1, paid Oct 20 -> 49 days to pay, 19 late (due Oct 1)
    assert (alder.paid_count, alder.average_days_to_pay, alder.late_count, alder.average_days_late) == (
        2, Decimal("62.5"), 2, Decimal("32.5"))
    assert alder.trend == "—" and alder.at_risk and alder.reasons == ("Paid 2 of the last 2 invoices more than 7 days late.",)
    birch = rows["Birch Law"]   # nothing paid, but inv2 is 97 days past due
    assert birch.paid_count == 0 and birch.average_days_to_pay is None and birch.at_risk
    assert birch.reasons[0].startswith("Oldest open invoice, INV-000002, is 97 days past due")
    cedar = rows["Cedar Clinic"]  # paid on the issue date, the due date
    assert (cedar.average_days_to_pay, cedar.late_count, cedar.at_risk) == (Decimal("0.0"), 0, False)
    # In the KPIs, the at-risk ones by overdue amount: A $1,000 before B $500.
    assert [b.client_name for b in _kpis(db).at_risk] == ["Alder Dental", "Birch Law"]


def test_as_of_before_any_invoice_and_a_day_in_the_past(db, office) -> None:
    k = _kpis(db, d("2026-06-30"))
    assert (k.ar_total.value, k.window.sales_cents, k.cash_this_month.value) == (0, 0, 0)
    assert k.dso.value is None and k.dso.text == "—" and "No DSO" in k.dso.explain
    assert k.cei.value is None and k.cei.text == "—"
    # On Aug 23 only inv1 ($600 left) and inv2 ($500, 7 days past due) were owed.
    k = _kpis(db, d("2026-08-23"))
    assert (k.ar_total.value, k.ar_overdue.value) == (110_000, 110_000)


def test_the_json_and_the_terminal_lines(db, office) -> None:
    k = _kpis(db)
    data = json.loads(json.dumps(kpis_json(k)))
    assert data["as_of"] == "2026-11-21" and data["currency"] == "USD"
    assert data["figures"]["dso"]["value"] == "54.3" and data["figures"]["ar_total"]["value"] == 320_000
    assert "×" in data["figures"]["dso"]["explain"]
    assert data["other_currencies"] == {"EUR": 200_000}
    assert data["cash_by_month"][-1] == {"month": "2026-11-01", "label": "Nov 2026", "cents": 30_000,
                                         "received_cents": 30_000, "refunded_cents": 0}
    assert data["at_risk"][0]["average_days_to_pay"] == "62.5"
    lines = kpis_text(k)
    assert any(line.startswith("DSO (90 days)") and line.endswith("54.3 days") for line in lines)
    assert any("Alder Dental" in line and "$1,000.00" in line for line in lines)
    assert "    - Paid 2 of the last 2 invoices more than 7 days late." in lines


# --- bad input -------------------------------------------------------------------------------


def test_an_empty_office_has_sensible_figures(db) -> None:
    k = _kpis(db)  # not even a company profile
    assert k.currency == "USD"
    assert [f.value for f in k.figures] == [0, 0, 0, 0, None, None, None, None, 0, 0]
    assert [f.text for f in k.figures][:6] == ["$0.00", "$0.00", "$0.00", "$0.00", "—", "—"]
    assert "No active clients" in k.autopay_clients.explain
    assert "No payment processor is set up" in k.autopay_clients.explain
    assert k.most_overdue == () and k.at_risk == () and k.other_currencies == {}
    json.dumps(kpis_json(k))
    assert "  Nobody is past due." in kpis_text(k)


def test_a_day_in_the_future_is_refused(db) -> None:
    with db.session() as s, pytest.raises(AsOfError, match="in the future"):
        compute_kpis(s, d("2026-11-22"), today=TODAY)


def test_a_eur_invoice_in_a_usd_company_is_reported_apart(db) -> None:
    setup_office(db)
    usd = make_client(db, "Harbor Freight Law", payment_terms_days="0")
    eur = make_client(db, "Wien IT GmbH", currency="EUR", payment_terms_days="0")
    _invoice(db, usd, "100.00", d("2026-11-01"))
    _invoice(db, eur, "2000.00", d("2026-11-02"))
    k = _kpis(db)
    # Only the $100 counts; the €2,000 is reported apart and not ranked among the overdue.
    assert (k.ar_total.value, k.ar_overdue.value, k.window.sales_cents) == (10_000, 10_000, 10_000)
    assert k.dso.value == Decimal("90.0")   # 100 / 100 × 90
    assert k.other_currencies == {"EUR": 200_000}
    assert [c.client_name for c in k.most_overdue] == ["Harbor Freight Law"]
    assert any("€2,000.00 owed in EUR on 1 invoice" in n for n in k.notes)
    assert any("€2,000.00" in line for line in kpis_text(k))


def test_a_window_without_sales_has_no_dso_or_cei(db) -> None:
    setup_office(db)
    client = make_client(db, "Juniper Yoga", payment_terms_days="30")
    inv = _invoice(db, client, "500.00", d("2026-01-05"))
    _pay(db, inv, "500.00", d("2026-01-20"))
    # The only thing in Aug 24 - Nov 21: a $50 credit note (it goes to client credit): S = -50.
    with db.write_session() as s, s.begin():
        create_credit_note(s, inv, "Goodwill", "50.00", issue_date=d("2026-10-01"))
    k = _kpis(db)
    assert k.window.sales_cents == -5_000
    assert k.dso.value is None and "were -$50.00" in k.dso.explain
    # B + S - Ec = 0 - 50 - 0 = -50 <= 0: no CEI.
    assert k.cei.value is None and "B + S − Ec = -$50.00" in k.cei.explain
    assert k.credit_held.value == 5_000


def test_a_window_with_no_sales_but_old_debt_has_no_dso_and_a_cei_of_zero(db) -> None:
    setup_office(db)
    client = make_client(db, "Quarry Hill", payment_terms_days="30")
    _invoice(db, client, "400.00", d("2026-01-05"))  # never paid
    k = _kpis(db)
    assert k.dso.value is None and "$400.00 has nothing to be divided by" in k.dso.explain
    # B = 400, S = 0, E = 400, Ec = 0: (400 + 0 - 400) / (400 + 0 - 0) × 100 = 0.0 %: nothing was collected.
    assert k.cei.value == Decimal("0.0")


# --- payment behaviour ------------------------------------------------------------------------


def test_a_client_paying_late_three_times_is_at_risk_and_a_good_payer_is_not(db) -> None:
    setup_office(db)
    late = make_client(db, "Late & Co", payment_terms_days="30")
    good = make_client(db, "Prompt Ltd", payment_terms_days="30")
    late_paid = [("2026-06-01", "2026-07-11"),   # 40 days to pay, 10 late
                 ("2026-07-01", "2026-08-15"),   # 45 days, 15 late
                 ("2026-08-01", "2026-09-20")]   # 50 days, 20 late
    good_paid = [("2026-06-02", "2026-06-12"),   # 10 days
                 ("2026-07-02", "2026-07-22"),   # 20 days
                 ("2026-08-02", "2026-08-05")]   # 3 days
    # A client whose check arrives a few days after the due date, every time, is late but not at risk:
    # the flag counts payments more than a week late.
    postal = make_client(db, "Postal & Co", payment_terms_days="30")
    postal_paid = [("2026-06-03", "2026-07-06"),   # due Jul 3: 3 days late
                   ("2026-07-03", "2026-08-09"),   # due Aug 2: 7 days late (not more than 7)
                   ("2026-08-03", "2026-09-07")]   # due Sep 2: 5 days late
    for (late_issue, late_on), (good_issue, good_on), (postal_issue, postal_on) in zip(
            late_paid, good_paid, postal_paid, strict=True):
        _pay(db, _invoice(db, late, "100.00", d(late_issue)), "100.00", d(late_on))
        _pay(db, _invoice(db, good, "100.00", d(good_issue)), "100.00", d(good_on))
        _pay(db, _invoice(db, postal, "100.00", d(postal_issue)), "100.00", d(postal_on))
    with db.session() as s:
        rows = {b.client_id: b for b in behaviour(s, TODAY, today=TODAY)}
    bad = rows[late]
    assert (bad.paid_count, bad.average_days_to_pay, bad.late_count, bad.average_days_late) == (
        3, Decimal("45.0"), 3, Decimal("15.0"))            # (40 + 45 + 50) / 3; (10 + 15 + 20) / 3
    assert bad.at_risk and bad.reasons == ("Paid 3 of the last 3 invoices more than 7 days late.",)
    ok = rows[good]
    assert (ok.average_days_to_pay, ok.late_count, ok.average_days_late) == (Decimal("11.0"), 0, None)  # 33 / 3
    assert not ok.at_risk and ok.reasons == ()
    assert [b.client_id for b in _kpis(db).at_risk] == [late]
    mail = rows[postal]
    assert (mail.late_count, mail.average_days_late) == (3, Decimal("5.0"))   # (3 + 7 + 5) / 3
    assert not mail.at_risk and mail.reasons == ()
    # A year later these payments are out of the 365 days: no history at all.
    with db.session() as s:
        assert behaviour(s, d("2027-10-01"), today=d("2027-10-01")) == []


def test_a_trend_needs_history_and_a_worsening_one_is_a_risk(db) -> None:
    setup_office(db)
    slower = make_client(db, "Slower Inc", payment_terms_days="30")
    faster = make_client(db, "Faster Inc", payment_terms_days="30")
    slower_days = [2, 4, 6, 20, 22, 24]   # earlier 3: 4.0 days; last 3: 22.0 -> +18: worsening
    faster_days = [25, 27, 29, 3, 5, 7]   # earlier 3: 27.0; last 3: 5.0 -> -22: improving
    for month in range(6):
        for client, days, day_of_month in ((slower, slower_days, 10), (faster, faster_days, 11)):
            issued = dt.date(2026, 1 + month, day_of_month)
            _pay(db, _invoice(db, client, "100.00", issued), "100.00", issued + dt.timedelta(days=days[month]))
    with db.session() as s:
        rows = {b.client_id: b for b in behaviour(s, TODAY, today=TODAY)}
    assert rows[slower].trend == "worsening" and rows[slower].late_count == 0
    expected = ("Paying more slowly: 22.0 days to pay on the last 3 paid invoices against 4.0 on the 3 before "
                "them (worsening: a move of 7 days or more counts).")
    assert rows[slower].reasons == (expected,)
    assert rows[faster].trend == "improving" and not rows[faster].at_risk
    # With five paid invoices (as of the day before the sixth was paid) there is too little history.
    sixth_paid = dt.date(2026, 6, 10) + dt.timedelta(days=24)
    with db.session() as s:
        earlier = {b.client_id: b for b in behaviour(s, sixth_paid - dt.timedelta(days=1), today=TODAY)}
    assert earlier[slower].paid_count == 5 and earlier[slower].trend == "—"


# --- autopay charges ------------------------------------------------------------------------


def test_a_hard_decline_awaits_action_and_a_soft_one_is_retried(db, sandbox, clock) -> None:
    setup_office(db)
    _use_sandbox(db)
    lost = make_client(db, "Lost Card LLC", autopay=True)
    short = make_client(db, "Short Funds LLC", autopay=True)
    _save_method(db, sandbox, clock, lost, "pm_card_visa_chargeDeclinedLostCard", d("2026-11-01"))
    _save_method(db, sandbox, clock, short, "pm_card_visa_chargeDeclinedInsufficientFunds", d("2026-11-01"))
    lost_inv = _invoice(db, lost, "250.00", d("2026-11-16"))
    short_inv = _invoice(db, short, "120.00", d("2026-11-16"))
    clock.now = dt.datetime(2026, 11, 17, 15, 0, tzinfo=dt.UTC)
    for inv in (lost_inv, short_inv):
        outcome = charges.charge_invoice(db, sandbox, inv, now=clock.now)
        assert outcome.status.value == "declined"

    k = _kpis(db)
    # The lost card was declined for good: a person must act.  Insufficient funds is retried on the schedule.
    assert (k.failed_charges.value, k.failed_charges.text) == (1, "1 · $250.00")
    [row] = k.awaiting_action
    assert (row.invoice_id, row.client_name, row.amount_cents, row.declined_on) == (
        lost_inv, "Lost Card LLC", 25_000, d("2026-11-17"))
    assert "reported lost" in row.reason and "declined for good" in row.reason
    # The declined card no longer counts as a valid method: 1 of the 2 autopay clients has one.
    assert (k.autopay_any, k.autopay_valid) == (2, 1)
    [risk] = k.at_risk
    assert risk.client_id == lost and risk.awaiting_action == 1
    assert risk.reasons[0].startswith(f"An autopay charge awaits action: {row.number}.")
    # The day before the charge nothing awaited action.
    assert _kpis(db, d("2026-11-16")).awaiting_action == ()
