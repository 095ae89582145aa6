"""Recurring agreements and their lines, on a real SQLite file."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from mspbill import audit
from mspbill.agreements import (
    AgreementDraft,
    LineDraft,
    agreement_detail,
    archive_agreement,
    count_active,
    create_agreement,
    get_agreement,
    list_agreements,
    restore_agreement,
    update_agreement,
    validate_agreement,
)
from mspbill.clients import ClientDraft, archive_client, create_client, restore_client
from mspbill.db.models import Agreement, AgreementLine, AgreementStatus, AuditEntry, BillingFrequency
from mspbill.money import line_amount_cents
from mspbill.validation import NotFoundError, ValidationError


@pytest.fixture
def client_id(db) -> int:
    with db.session() as session, session.begin():
        return create_client(session, ClientDraft(legal_name="Harbor & Pine Law Group",
                                                  billing_emails="ap@harbor.example")).id


def _lines() -> list[LineDraft]:
    return [LineDraft("Managed workstations (per seat)", "12", "55.00"),
            LineDraft("Cloud backup (per TB)", "3.25", "95.00"),
            LineDraft("Microsoft 365 licences", "14", "22.00", taxable=False)]


def _draft(client_id: int | None, **overrides: object) -> AgreementDraft:
    values: dict[str, object] = dict(client_id=client_id, name="Managed IT services",
                                     start_date="2026-01-01", frequency="monthly", lines=_lines())
    values.update(overrides)
    return AgreementDraft(**values)  # type: ignore[arg-type]


def _create(db, draft: AgreementDraft) -> int:
    with db.session() as session, session.begin():
        return create_agreement(session, draft).id


def _audit(db, agreement_id: int) -> list[AuditEntry]:
    with db.session() as session:
        return audit.history(session, "agreement", agreement_id)


# --- create -------------------------------------------------------------------


def test_create_with_lines_round_trips(db, client_id: int) -> None:
    aid = _create(db, _draft(client_id, end_date="2027-06-30", notes="Renews yearly."))
    db.dispose()
    with db.session() as session:
        a = get_agreement(session, aid)
        assert a.client_id == client_id
        assert (a.name, a.start_date, a.end_date) == (
            "Managed IT services", dt.date(2026, 1, 1), dt.date(2027, 6, 30))
        assert a.frequency is BillingFrequency.MONTHLY and a.status is AgreementStatus.ACTIVE
        assert [(ln.position, ln.description, ln.quantity, ln.unit_price_cents, ln.taxable) for ln in a.lines] == [
            (0, "Managed workstations (per seat)", Decimal(12), 5500, True),
            (1, "Cloud backup (per TB)", Decimal("3.25"), 9500, True),
            (2, "Microsoft 365 licences", Decimal(14), 2200, False),
        ]
        assert all(isinstance(ln.quantity, Decimal) and isinstance(ln.unit_price_cents, int) for ln in a.lines)
        detail = agreement_detail(session, aid)
        assert detail.client_name == "Harbor & Pine Law Group" and detail.currency == "USD"
        assert [(ln.quantity, ln.unit_price) for ln in detail.draft.lines] == [
            ("12", "55.00"), ("3.25", "95.00"), ("14", "22.00")]
    entries = _audit(db, aid)
    assert [e.action for e in entries] == ["agreement.created"]
    assert entries[0].details["lines"][1] == {  # type: ignore[index]
        "description": "Cloud backup (per TB)", "quantity": "3.25", "unit_price_cents": 9500, "taxable": True}


def test_dates_may_be_date_objects_and_blank_lines_are_ignored(db, client_id: int) -> None:
    aid = _create(db, _draft(client_id, start_date=dt.date(2026, 3, 1), frequency=" Quarterly ",
                             lines=[LineDraft("", "1", "0.00"), LineDraft("vCIO review", "1", "750"),
                                    LineDraft("Free monitoring", "1", "0")]))
    with db.session() as session:
        a = get_agreement(session, aid)
        assert a.start_date == dt.date(2026, 3, 1) and a.frequency is BillingFrequency.QUARTERLY
        assert [(ln.description, ln.unit_price_cents) for ln in a.lines] == [
            ("vCIO review", 75000), ("Free monitoring", 0)]


def test_prices_follow_the_client_currency(db) -> None:
    with db.session() as session, session.begin():
        yen_client = create_client(session, ClientDraft(legal_name="株式会社テスト", currency="JPY")).id
    aid = _create(db, _draft(yen_client, lines=[LineDraft("Seats", "3", "¥1,500")]))
    with db.session() as session:
        assert get_agreement(session, aid).lines[0].unit_price_cents == 1500
    with db.session() as session:
        _, issues = validate_agreement(session, _draft(yen_client, lines=[LineDraft("Seats", "3", "12.50")]))
    assert [i.field for i in issues] == ["lines[0].unit_price"]


# --- bad input ----------------------------------------------------------------


def test_bad_lines_and_dates_are_all_reported_and_nothing_saved(db, client_id: int, count_rows) -> None:
    bad = _draft(client_id, name="", start_date="2026-05-01", end_date="2026-04-30", frequency="weekly",
                 lines=[LineDraft("Seats", "10", "-5.00"),
                        LineDraft("Backup", "0", "95.00"),
                        LineDraft("Hours", "-2", "165.00"),
                        LineDraft("Typo", "1e3", "12.345"),
                        LineDraft("", "1", "5.00")])
    with pytest.raises(ValidationError) as excinfo:
        with db.session() as session, session.begin():
            create_agreement(session, bad)
    fields = excinfo.value.by_field()
    assert set(fields) == {"name", "end_date", "frequency", "lines[0].unit_price", "lines[1].quantity",
                           "lines[2].quantity", "lines[3].quantity", "lines[3].unit_price",
                           "lines[4].description"}
    assert "before the start date" in fields["end_date"][0]
    assert "negative" in fields["lines[0].unit_price"][0]
    assert "more than zero" in fields["lines[1].quantity"][0]
    assert fields["lines[2].quantity"][0].startswith("Line 3:")
    assert count_rows(db, Agreement) == 0
    assert count_rows(db, AgreementLine) == 0
    assert count_rows(db, AuditEntry) == 1  # the client's creation only


def test_no_lines(db, client_id: int, count_rows) -> None:
    for lines in ([], [LineDraft(), LineDraft("", "3", "")]):
        with pytest.raises(ValidationError) as excinfo:
            _create(db, _draft(client_id, lines=lines))
        assert [i.field for i in excinfo.value.issues] == ["lines"]
    assert count_rows(db, Agreement) == 0


@pytest.mark.parametrize(("overrides", "field"), [
    ({"start_date": ""}, "start_date"),
    ({"start_date": "2026-13-01"}, "start_date"),
    ({"start_date": "01/02/2026"}, "start_date"),
    ({"end_date": "soon"}, "end_date"),
    ({"name": "n" * 201}, "name"),
    ({"notes": "n" * 10_001}, "notes"),
    ({"lines": [LineDraft("Seats", "1,5", "10.00")]}, "lines[0].quantity"),
    ({"lines": [LineDraft("Seats", "1.00001", "10.00")]}, "lines[0].quantity"),
    ({"lines": [LineDraft("Seats", "", "10.00")]}, "lines[0].quantity"),
    ({"lines": [LineDraft("Seats", "2", "ten")]}, "lines[0].unit_price"),
    ({"lines": [LineDraft("Seats", "2", "(10.00)")]}, "lines[0].unit_price"),
    ({"lines": [LineDraft(f"Line {i}", "1", "1.00") for i in range(201)]}, "lines"),
])
def test_each_bad_field_is_named(db, client_id: int, overrides: dict[str, object], field: str) -> None:
    with db.session() as session:
        _, issues = validate_agreement(session, _draft(client_id, **overrides))
    assert [i.field for i in issues] == [field], issues


def test_end_date_equal_to_start_is_fine(db, client_id: int) -> None:
    with db.session() as session:
        _, issues = validate_agreement(session, _draft(client_id, start_date="2026-05-01", end_date="2026-05-01"))
    assert issues == []


def test_client_must_exist_and_be_active(db, client_id: int, count_rows) -> None:
    with db.session() as session:
        _, issues = validate_agreement(session, _draft(None))
        assert [i.field for i in issues] == ["client_id"]
        _, issues = validate_agreement(session, _draft(12345))
        assert [i.field for i in issues] == ["client_id"]
    with db.session() as session, session.begin():
        archive_client(session, client_id)
    with pytest.raises(ValidationError) as excinfo:
        _create(db, _draft(client_id, lines=[]))
    fields = excinfo.value.by_field()
    assert set(fields) == {"client_id", "lines"}  # both at once
    assert "archived" in fields["client_id"][0] and "restore the client" in fields["client_id"][0]
    assert count_rows(db, Agreement) == 0


# --- update -------------------------------------------------------------------


def test_update_before_any_invoice_replaces_lines_from_the_start_and_keeps_history(db, client_id: int, count_rows) -> None:
    aid = _create(db, _draft(client_id))
    assert count_rows(db, AgreementLine) == 3
    new_lines = [LineDraft("Managed workstations (per seat)", "15", "55.00"),
                 LineDraft("After-hours support (hours)", "7.5", "165.00")]
    with db.session() as session, session.begin():
        update_agreement(session, aid, _draft(client_id, name="Managed IT (2027)", lines=new_lines))
    with db.session() as session:
        a = get_agreement(session, aid)
        assert a.name == "Managed IT (2027)"
        assert [(ln.position, ln.description, ln.quantity, ln.unit_price_cents) for ln in a.lines] == [
            (0, "Managed workstations (per seat)", Decimal(15), 5500),
            (1, "After-hours support (hours)", Decimal("7.5"), 16500)]
    # The replaced versions are kept, emptied (they never took effect).
    assert count_rows(db, AgreementLine) == 5
    with db.session() as session:
        old = [v for v in get_agreement(session, aid).line_versions if v.effective_to is not None]
        assert len(old) == 3 and all(v.effective_to < v.effective_from for v in old)  # type: ignore[operator]
    entries = _audit(db, aid)
    assert [e.action for e in entries] == ["agreement.created", "agreement.updated"]
    changes = entries[-1].details["changes"]  # type: ignore[index]
    assert set(changes) == {"name", "lines"}
    before_lines, after_lines = changes["lines"]
    assert [ln["quantity"] for ln in before_lines] == ["12", "3.25", "14"]
    assert [ln["quantity"] for ln in after_lines] == ["15", "7.5"]
    assert "lines" in entries[-1].summary and "name" in entries[-1].summary


def test_saving_an_unchanged_agreement_writes_no_audit_entry(db, client_id: int) -> None:
    aid = _create(db, _draft(client_id, lines=[LineDraft("Backup (TB)", "2.50", "95.00"),
                                               LineDraft("Seats", "10", "45")]))
    with db.session() as session, session.begin():
        # What the edit dialog shows, saved again untouched.
        update_agreement(session, aid, agreement_detail(session, aid).draft)
    assert [e.action for e in _audit(db, aid)] == ["agreement.created"]


def test_failed_update_changes_nothing(db, client_id: int) -> None:
    aid = _create(db, _draft(client_id))
    with pytest.raises(ValidationError):
        with db.session() as session, session.begin():
            update_agreement(session, aid, _draft(client_id, lines=[LineDraft("Seats", "0", "1.00")]))
    with db.session() as session:
        assert len(get_agreement(session, aid).lines) == 3
    assert len(_audit(db, aid)) == 1


def test_agreement_of_archived_client_can_still_be_edited_but_not_moved_to_one(db, client_id: int) -> None:
    aid = _create(db, _draft(client_id))
    with db.session() as session, session.begin():
        other = create_client(session, ClientDraft(legal_name="Other Client")).id
        archive_client(session, client_id)
    with db.session() as session, session.begin():
        update_agreement(session, aid, _draft(client_id, notes="Closing out."))
    with db.session() as session, session.begin():
        archive_client(session, other)
    with pytest.raises(ValidationError) as excinfo:
        with db.session() as session, session.begin():
            update_agreement(session, aid, _draft(other))
    assert [i.field for i in excinfo.value.issues] == ["client_id"]


# --- archive and restore ----------------------------------------------------------


def test_archive_and_restore(db, client_id: int) -> None:
    aid = _create(db, _draft(client_id))
    with db.session() as session, session.begin():
        archive_agreement(session, aid)
        archive_agreement(session, aid)
    with db.session() as session:
        assert list_agreements(session) == []
        assert count_active(session) == 0
        rows = list_agreements(session, include_archived=True)
        assert [(r.id, r.status) for r in rows] == [(aid, "archived")]
        assert get_agreement(session, aid).archived_at is not None
    with db.session() as session, session.begin():
        restore_agreement(session, aid)
    with db.session() as session:
        a = get_agreement(session, aid)
        assert a.status is AgreementStatus.ACTIVE and a.archived_at is None
        assert count_active(session) == 1
    assert [e.action for e in _audit(db, aid)] == [
        "agreement.created", "agreement.archived", "agreement.restored"]


def test_restore_refused_while_the_client_is_archived(db, client_id: int) -> None:
    aid = _create(db, _draft(client_id))
    with db.session() as session, session.begin():
        archive_agreement(session, aid)
        archive_client(session, client_id)
    with pytest.raises(ValidationError) as excinfo:
        with db.session() as session, session.begin():
            restore_agreement(session, aid)
    assert excinfo.value.issues[0].field == "client_id"
    assert "restore the client first" in excinfo.value.issues[0].message
    with db.session() as session:
        assert get_agreement(session, aid).status is AgreementStatus.ARCHIVED
    with db.session() as session, session.begin():
        restore_client(session, client_id)
        restore_agreement(session, aid)
    with db.session() as session:
        assert get_agreement(session, aid).status is AgreementStatus.ACTIVE


def test_missing_agreement_is_not_found(db) -> None:
    with db.session() as session:
        for call in (get_agreement, archive_agreement, restore_agreement, agreement_detail):
            with pytest.raises(NotFoundError):
                call(session, 404)


# --- list ---------------------------------------------------------------------


def test_list_agreements_period_amounts_use_line_rounding(db, client_id: int) -> None:
    lines = [LineDraft("Seats", "12", "55.00"), LineDraft("Backup", "3.25", "95.00"),
             LineDraft("Half a cent", "0.5", "0.01"), LineDraft("Third", "0.3333", "0.03")]
    monthly = _create(db, _draft(client_id, lines=lines))
    quarterly = _create(db, _draft(client_id, name="vCIO review", frequency="quarterly",
                                   lines=[LineDraft("Review", "1", "750.01")]))
    with db.session() as session, session.begin():
        other = create_client(session, ClientDraft(legal_name="Alder Creek Winery")).id
    annual = _create(db, _draft(other, name="Domains", frequency="annual",
                                lines=[LineDraft("SSL", "1", "189.00")]))
    with db.session() as session:
        rows = {r.id: r for r in list_agreements(session)}
        expected = sum(line_amount_cents(Decimal(q), c) for q, c in
                       [("12", 5500), ("3.25", 9500), ("0.5", 1), ("0.3333", 3)])
        assert expected == 66000 + 30875 + 1 + 1
        assert rows[monthly].period_amount_cents == expected
        assert rows[monthly].monthly_value_cents == expected
        assert rows[monthly].line_count == 4 and rows[monthly].currency == "USD"
        assert rows[quarterly].period_amount_cents == 75001
        assert rows[quarterly].monthly_value_cents == 25000  # 250.003… rounds to 250.00
        assert rows[annual].monthly_value_cents == 1575
        # Sorted by client, then agreement name.
        assert [r.id for r in list_agreements(session)] == [annual, monthly, quarterly]
        assert [r.id for r in list_agreements(session, client_id=client_id)] == [monthly, quarterly]
        assert [r.id for r in list_agreements(session, search="VCIO")] == [quarterly]
        assert [r.id for r in list_agreements(session, search="alder")] == [annual]


def test_archived_clients_agreements_are_not_listed_as_active(db):
    from mspbill.agreements import count_active, list_agreements
    from mspbill.clients import archive_client
    from mspbill.demo import create_demo_office

    with db.session() as s, s.begin():
        create_demo_office(s, clients=4, seed=3)
    with db.session() as s:
        before = list_agreements(s)
        victim = before[0].client_id
        theirs = [r.id for r in before if r.client_id == victim]
        assert theirs and count_active(s) == len(before)
    with db.session() as s, s.begin():
        archive_client(s, victim)
    with db.session() as s:
        after = list_agreements(s)
        assert {r.id for r in after} == {r.id for r in before} - set(theirs)
        assert count_active(s) == len(after)
        everything = list_agreements(s, include_archived=True)
        assert set(theirs) <= {r.id for r in everything}
