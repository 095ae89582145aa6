"""Clients through the services, on a real SQLite file."""

from __future__ import annotations

import datetime as dt
import unicodedata
from decimal import Decimal

import pytest
from sqlalchemy import select

from mspbill import audit
from mspbill.agreements import AgreementDraft, LineDraft, create_agreement
from mspbill.clients import (
    ClientDraft,
    ContactDraft,
    archive_client,
    client_choices,
    client_detail,
    create_client,
    get_client,
    list_clients,
    monthly_value_by_client,
    restore_client,
    update_client,
    validate_client,
)
from mspbill.db.models import NAME_MAX, AuditEntry, Client, ClientContact, ClientCredit, ClientStatus, CreditReason
from mspbill.validation import Issue, NotFoundError, ValidationError


def _draft(**overrides: object) -> ClientDraft:
    values: dict[str, object] = dict(
        legal_name="Cascade Family Dental", billing_emails="ap@cascade.example", phone="(503) 555-0100",
        address_line1="100 Main St", city="Portland", region="OR", postal_code="97201",
        country="United States", currency="USD", tax_rate="0", payment_terms_days="30")
    values.update(overrides)
    return ClientDraft(**values)  # type: ignore[arg-type]


def _create(db, **overrides: object) -> int:
    with db.session() as session, session.begin():
        return create_client(session, _draft(**overrides)).id


def _actions(db, entity_id: int) -> list[str]:
    with db.session() as session:
        return [e.action for e in audit.history(session, "client", entity_id)]


# --- create and read back ---------------------------------------------------


def test_create_client_round_trips_every_field(db) -> None:
    draft = _draft(
        billing_emails="ap@cascade.example; Owner@Cascade.example", tax_rate="8.875%",
        payment_terms_days="45", autopay=True, notes="Front desk closes at 4.",
        contacts=[ContactDraft("Maria Nguyen", "Office manager", "maria@cascade.example", "555-0101"),
                  ContactDraft("", "", "", "")])  # an empty row in the contacts table is ignored
    cid = _create(db, **vars(draft))
    db.dispose()  # read back through new connections: what is on disk, not in the identity map
    with db.session() as session:
        detail = client_detail(session, cid)
        client = get_client(session, cid)
        assert detail.status == "active"
        assert detail.draft.legal_name == "Cascade Family Dental"
        assert detail.draft.billing_emails == "ap@cascade.example, Owner@cascade.example"
        assert client.email_list == ["ap@cascade.example", "Owner@cascade.example"]
        assert client.tax_rate_percent == Decimal("8.875")  # exact, never a binary float
        assert detail.draft.tax_rate == "8.875"
        assert client.payment_terms_days == 45
        assert client.autopay is True
        assert client.notes == "Front desk closes at 4."
        assert [(c.name, c.role, c.email) for c in client.contacts] == [
            ("Maria Nguyen", "Office manager", "maria@cascade.example")]
        assert client.created_at.tzinfo is not None
    assert _actions(db, cid) == ["client.created"]


@pytest.mark.parametrize("name", [
    "Zürich Dental GmbH",
    "株式会社テスト",
    "O'Brien & Sons",
    "Müller & Söhne Präzisionstechnik",
    "Café Olé Roasters",
    "Ωμέγα Λογιστική",
    "😀 Emoji Bakery",
    'Robert "Bobby" Tables; DROP TABLE clients;--',
    "x" * NAME_MAX,
])
def test_unusual_but_valid_names_are_accepted_and_round_trip(db, name: str) -> None:
    cid = _create(db, legal_name=name)
    db.dispose()
    with db.session() as session:
        assert get_client(session, cid).legal_name == name
        assert [r.legal_name for r in list_clients(session)] == [name]


def test_names_are_trimmed_and_stored_in_nfc(db) -> None:
    decomposed = unicodedata.normalize("NFD", "  Zürich Dental GmbH  ")
    assert decomposed.strip() != "Zürich Dental GmbH"
    cid = _create(db, legal_name=decomposed)
    with db.session() as session:
        assert get_client(session, cid).legal_name == "Zürich Dental GmbH"


# --- bad input: every problem at once, nothing saved ----------------------------


def test_validation_reports_every_problem_at_once_and_saves_nothing(db, count_rows) -> None:
    bad = _draft(legal_name="", billing_emails="not-an-email", payment_terms_days="-5", tax_rate="150",
                 currency="dollars")
    with pytest.raises(ValidationError) as excinfo:
        with db.session() as session, session.begin():
            create_client(session, bad)
    fields = excinfo.value.by_field()
    assert set(fields) == {"legal_name", "billing_emails", "payment_terms_days", "tax_rate", "currency"}
    assert all(isinstance(i, Issue) and i.message for i in excinfo.value.issues)
    assert "not-an-email" in fields["billing_emails"][0]
    assert "negative" in fields["payment_terms_days"][0]
    assert count_rows(db, Client) == 0
    assert count_rows(db, AuditEntry) == 0


def test_more_bad_input_all_reported(db, count_rows) -> None:
    bad = _draft(legal_name="x" * 500, billing_emails="ok@example.com, a@b", tax_rate="-1",
                 payment_terms_days="thirty",
                 contacts=[ContactDraft("", "CFO", "cfo@@example.com", "")])
    with pytest.raises(ValidationError) as excinfo:
        with db.session() as session, session.begin():
            create_client(session, bad)
    fields = excinfo.value.by_field()
    assert "500 characters" in fields["legal_name"][0]
    assert "a@b" in fields["billing_emails"][0]
    assert "negative" in fields["tax_rate"][0]
    assert "whole number" in fields["payment_terms_days"][0]
    assert "contacts[0].name" in fields
    assert "contacts[0].email" in fields
    assert count_rows(db, Client) == 0
    assert count_rows(db, ClientContact) == 0


@pytest.mark.parametrize(("overrides", "field"), [
    ({"legal_name": "   "}, "legal_name"),
    ({"legal_name": "x" * (NAME_MAX + 1)}, "legal_name"),
    ({"legal_name": "Acme\nInc"}, "legal_name"),
    ({"legal_name": "Acme\x00Inc"}, "legal_name"),
    ({"billing_emails": "someone@"}, "billing_emails"),
    ({"billing_emails": "two@@example.com"}, "billing_emails"),
    ({"tax_rate": "abc"}, "tax_rate"),
    ({"tax_rate": "100"}, "tax_rate"),
    ({"tax_rate": "8.123456"}, "tax_rate"),
    ({"payment_terms_days": "366"}, "payment_terms_days"),
    ({"payment_terms_days": "30.5"}, "payment_terms_days"),
    ({"currency": "US"}, "currency"),
    ({"notes": "n" * 10_001}, "notes"),
    ({"postal_code": "9" * 21}, "postal_code"),
])
def test_each_bad_field_is_named(overrides: dict[str, str], field: str) -> None:
    _, issues = validate_client(_draft(**overrides))
    assert [i.field for i in issues] == [field], issues


def test_edge_values_that_are_fine() -> None:
    for overrides in ({"tax_rate": "0"}, {"tax_rate": "99.9999"}, {"tax_rate": ""},
                      {"payment_terms_days": "0"}, {"payment_terms_days": "365"},
                      {"billing_emails": ""}, {"currency": "eur"}):
        values, issues = validate_client(_draft(**overrides))
        assert issues == [], (overrides, issues)
    values, _ = validate_client(_draft(currency=" eur "))
    assert values["currency"] == "EUR"


def test_failure_rolls_back_the_whole_transaction(db, count_rows) -> None:
    """The caller owns the transaction: a valid client created before a failing one is not kept."""
    with pytest.raises(ValidationError):
        with db.session() as session, session.begin():
            create_client(session, _draft(legal_name="Fine Client"))
            create_client(session, _draft(legal_name=""))
    assert count_rows(db, Client) == 0
    assert count_rows(db, AuditEntry) == 0


def test_services_do_not_commit(db, count_rows) -> None:
    with db.session() as session:
        session.begin()
        create_client(session, _draft())
        session.rollback()
    assert count_rows(db, Client) == 0


# --- update ---------------------------------------------------------------


def test_update_changes_fields_and_audits_the_difference(db) -> None:
    cid = _create(db)
    with db.session() as session, session.begin():
        update_client(session, cid, _draft(legal_name="Cascade Dental Group", payment_terms_days="15",
                                           tax_rate="9.5"))
    with db.session() as session:
        client = get_client(session, cid)
        assert (client.legal_name, client.payment_terms_days, client.tax_rate_percent) == (
            "Cascade Dental Group", 15, Decimal("9.5"))
        entries = audit.history(session, "client", cid)
        assert [e.action for e in entries] == ["client.created", "client.updated"]
        changes = entries[-1].details["changes"]  # type: ignore[index]
        assert changes["legal_name"] == ["Cascade Family Dental", "Cascade Dental Group"]
        assert changes["payment_terms_days"] == [30, 15]
        assert set(changes) == {"legal_name", "payment_terms_days", "tax_rate_percent"}
        assert entries[-1].actor


def test_update_with_nothing_changed_writes_no_audit_entry(db) -> None:
    cid = _create(db, tax_rate="8.25", contacts=[ContactDraft("Ann", "Owner", "ann@x.example", "")])
    with db.session() as session, session.begin():
        same = client_detail(session, cid).draft
        update_client(session, cid, same)
    assert _actions(db, cid) == ["client.created"]


def test_failed_update_leaves_the_client_unchanged(db) -> None:
    cid = _create(db)
    with pytest.raises(ValidationError) as excinfo:
        with db.session() as session, session.begin():
            update_client(session, cid, _draft(legal_name="", payment_terms_days="-1"))
    assert {i.field for i in excinfo.value.issues} == {"legal_name", "payment_terms_days"}
    with db.session() as session:
        client = get_client(session, cid)
        assert (client.legal_name, client.payment_terms_days) == ("Cascade Family Dental", 30)
    assert _actions(db, cid) == ["client.created"]


def test_update_replaces_contacts(db, count_rows) -> None:
    cid = _create(db, contacts=[ContactDraft("Ann", "Owner", "", ""), ContactDraft("Bob", "", "", "")])
    with db.session() as session, session.begin():
        update_client(session, cid, _draft(contacts=[ContactDraft("Cleo", "Controller", "c@x.example", "")]))
    with db.session() as session:
        assert [c.name for c in get_client(session, cid).contacts] == ["Cleo"]
    assert count_rows(db, ClientContact) == 1  # the old ones are gone, not orphaned


def test_missing_client_is_not_found(db) -> None:
    with db.session() as session, session.begin():
        with pytest.raises(NotFoundError):
            update_client(session, 999, _draft())
        with pytest.raises(NotFoundError):
            archive_client(session, 999)
        with pytest.raises(NotFoundError):
            client_detail(session, 999)


# --- archive and restore ----------------------------------------------------------


def test_archive_and_restore(db) -> None:
    keep = _create(db, legal_name="Keep Me")
    cid = _create(db, legal_name="Archive Me")
    with db.session() as session, session.begin():
        archive_client(session, cid)
        archive_client(session, cid)  # twice is once
    with db.session() as session:
        assert [r.id for r in list_clients(session)] == [keep]
        assert {r.id: r.status for r in list_clients(session, include_archived=True)} == {
            keep: "active", cid: "archived"}
        assert [c[0] for c in client_choices(session)] == [keep]
        detail = client_detail(session, cid)
        assert detail.status == "archived" and detail.archived_at is not None
    with db.session() as session, session.begin():
        restore_client(session, cid)
        restore_client(session, cid)
    with db.session() as session:
        client = get_client(session, cid)
        assert client.status is ClientStatus.ACTIVE and client.archived_at is None
        assert sorted(r.id for r in list_clients(session)) == sorted([keep, cid])
    assert _actions(db, cid) == ["client.created", "client.archived", "client.restored"]


# --- list and search ----------------------------------------------------------


@pytest.fixture
def office(db):
    ids = {}
    for name, emails in [("Zürich Dental GmbH", "buchhaltung@zuerich-dental.example"),
                         ("株式会社テスト", "keiri@test.example.jp"),
                         ("O'Brien & Sons", "AP@OBrien.example"),
                         ("alder creek winery", "office@alder.example")]:
        ids[name] = _create(db, legal_name=name, billing_emails=emails)
    return ids


@pytest.mark.parametrize(("needle", "expected"), [
    ("zürich", ["Zürich Dental GmbH"]),
    ("ZÜRICH", ["Zürich Dental GmbH"]),
    (unicodedata.normalize("NFD", "zürich"), ["Zürich Dental GmbH"]),
    ("株式会社", ["株式会社テスト"]),
    ("o'brien", ["O'Brien & Sons"]),
    ("ap@obrien", ["O'Brien & Sons"]),        # e-mail, case-insensitive
    ("OFFICE@ALDER", ["alder creek winery"]),
    ("example", ["alder creek winery", "O'Brien & Sons", "Zürich Dental GmbH", "株式会社テスト"]),
    ("  ", ["alder creek winery", "O'Brien & Sons", "Zürich Dental GmbH", "株式会社テスト"]),
    ("nobody", []),
    ("%", []),   # no SQL wildcard leaks through
    ("_", []),
])
def test_search_by_name_or_email(db, office, needle: str, expected: list[str]) -> None:
    with db.session() as session:
        assert [r.legal_name for r in list_clients(session, search=needle)] == expected


def test_list_is_sorted_case_insensitively_and_has_primary_email(db, office) -> None:
    with db.session() as session:
        rows = list_clients(session)
    assert [r.legal_name for r in rows][:3] == ["alder creek winery", "O'Brien & Sons", "Zürich Dental GmbH"]
    assert rows[1].primary_email == "AP@obrien.example"


def test_archived_clients_are_searched_only_with_include_archived(db, office) -> None:
    with db.session() as session, session.begin():
        archive_client(session, office["Zürich Dental GmbH"])
    with db.session() as session:
        assert list_clients(session, search="zürich") == []
        assert [r.status for r in list_clients(session, search="zürich", include_archived=True)] == ["archived"]


def test_rows_carry_agreement_count_and_monthly_value(db) -> None:
    cid = _create(db)
    other = _create(db, legal_name="Other")
    today = dt.date.today()
    start = today.replace(day=1) - dt.timedelta(days=40)
    with db.session() as session, session.begin():
        create_agreement(session, AgreementDraft(client_id=cid, name="Managed IT", start_date=start,
                                                 lines=[LineDraft("Seats", "2", "45.00"),
                                                        LineDraft("Backup", "0.5", "0.01")]))
        create_agreement(session, AgreementDraft(client_id=cid, name="vCIO", start_date=start,
                                                 frequency="quarterly",
                                                 lines=[LineDraft("Review", "1", "750.00")]))
        create_agreement(session, AgreementDraft(client_id=cid, name="Domains", start_date=start,
                                                 frequency="annual",
                                                 lines=[LineDraft("SSL", "1", "189.00")]))
        # Ended yesterday: not part of today's recurring value.
        create_agreement(session, AgreementDraft(client_id=cid, name="Old", start_date=start,
                                                 end_date=today - dt.timedelta(days=1),
                                                 lines=[LineDraft("Old line", "1", "1000.00")]))
    with db.session() as session:
        rows = {r.id: r for r in list_clients(session)}
        values = monthly_value_by_client(session, today)
    # 2 × 45.00 + round(0.5 × 0.01) = 90.01 a month; 750.00 / 3; 189.00 / 12 = 15.75
    assert values[cid] == 9001 + 25000 + 1575
    assert rows[cid].monthly_value_cents == 9001 + 25000 + 1575
    assert rows[cid].agreement_count == 4
    assert rows[other].monthly_value_cents == 0 and rows[other].agreement_count == 0


def test_monthly_value_leaves_out_agreements_not_yet_started(db) -> None:
    cid = _create(db)
    today = dt.date(2026, 6, 15)
    with db.session() as session, session.begin():
        create_agreement(session, AgreementDraft(client_id=cid, name="Running", start_date="2026-01-01",
                                                 lines=[LineDraft("Seats", "1", "100.00")]))
        create_agreement(session, AgreementDraft(client_id=cid, name="Signed for next year",
                                                 start_date="2027-01-01",
                                                 lines=[LineDraft("Seats", "1", "5000.00")]))
    with db.session() as session:
        assert monthly_value_by_client(session, today) == {cid: 10000}


def test_rows_and_detail_carry_the_clients_credit_balance(db) -> None:
    cid = _create(db)
    other = _create(db, legal_name="Other")
    archived = _create(db, legal_name="Gone")
    with db.session() as session, session.begin():
        session.add_all([
            ClientCredit(client_id=cid, amount_cents=5000, reason=CreditReason.OVERPAYMENT),
            ClientCredit(client_id=cid, amount_cents=1275, reason=CreditReason.CREDIT_NOTE),
            ClientCredit(client_id=cid, amount_cents=-2000, reason=CreditReason.APPLIED),
            ClientCredit(client_id=archived, amount_cents=300, reason=CreditReason.OVERPAYMENT)])
        archive_client(session, archived)
    with db.session() as session:
        rows = {r.id: r for r in list_clients(session, include_archived=True)}
        assert (rows[cid].credit_cents, rows[other].credit_cents, rows[archived].credit_cents) == (4275, 0, 300)
        assert client_detail(session, cid).credit_cents == 4275
        assert client_detail(session, other).credit_cents == 0


def test_client_rows_are_frozen_snapshots(db) -> None:
    _create(db)
    with db.session() as session:
        row = list_clients(session)[0]
    with pytest.raises(AttributeError):
        row.legal_name = "changed"  # type: ignore[misc]


def test_the_database_refuses_what_validation_would(db) -> None:
    """The CHECK constraints are a second line of defence for other writers."""
    from sqlalchemy.exc import IntegrityError

    with db.session() as session:
        with pytest.raises(IntegrityError):
            with session.begin():
                session.add(Client(legal_name="", currency="USD"))
        with pytest.raises(IntegrityError):
            with session.begin():
                session.add(Client(legal_name="Negative Terms", payment_terms_days=-1))
    with db.session() as session:
        assert session.scalars(select(Client)).all() == []
