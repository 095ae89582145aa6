"""The demo office: deterministic for a seed, and every record passes the services' validation."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mspbill.agreements import agreement_detail, list_agreements, validate_agreement
from mspbill.clients import client_detail, list_clients, validate_client
from mspbill.company import company_snapshot
from mspbill.db.models import Agreement, AgreementStatus, AuditEntry, Client
from mspbill.db.schema import open_database
from mspbill.demo import (
    CLIENT_NAMES,
    DEFAULT_CLIENTS,
    DemoRefusedError,
    _client_name,
    create_demo_office,
)
from mspbill.invoicing import list_invoices
from mspbill.payments.manual import list_payments

TODAY = dt.date(2026, 11, 21)


def _office(tmp_path: Path, name: str, **kwargs: object) -> list[object]:
    """Build a demo office in its own database file; return everything but ids and timestamps."""
    db = open_database(f"sqlite:///{tmp_path / name}", tmp_path / f"{name}-backups")
    try:
        with db.session() as session, session.begin():
            summary = create_demo_office(session, today=TODAY, **kwargs)  # type: ignore[arg-type]
        with db.session() as session:
            clients = [dataclasses.astuple(client_detail(session, cid).draft)
                       for cid in session.scalars(select(Client.id).order_by(Client.id))]
            agreements = []
            for aid in session.scalars(select(Agreement.id).order_by(Agreement.id)):
                detail = agreement_detail(session, aid)
                agreements.append((detail.client_name, dataclasses.replace(detail.draft, client_id=None)))
            company = company_snapshot(session)
            # The billing history too: numbers, amounts, states, who paid what, how and when.
            invoices = [(r.number, r.client_name, r.title, r.status, r.issue_date, r.due_date, r.total_cents,
                         r.balance_cents) for r in list_invoices(session, today=TODAY)]
            payments = [dataclasses.replace(p, id=0) for p in list_payments(session)]
        return [summary, clients, agreements, company, invoices, payments]
    finally:
        db.dispose()


def test_same_seed_same_office(tmp_path: Path) -> None:
    first = _office(tmp_path, "a.sqlite3", clients=25, seed=11)
    second = _office(tmp_path, "b.sqlite3", clients=25, seed=11)
    assert first == second
    other_seed = _office(tmp_path, "c.sqlite3", clients=25, seed=12)
    assert other_seed[1] != first[1]  # a different seed really gives a different office


def test_default_office_size_and_contents(db, count_rows) -> None:
    with db.session() as session, session.begin():
        summary = create_demo_office(session, today=TODAY)
    assert summary.clients == DEFAULT_CLIENTS == 60
    assert count_rows(db, Client) == 60
    assert count_rows(db, Agreement) == summary.agreements
    assert 100 <= summary.agreements <= 140  # about two agreements per client
    with db.session() as session:
        rows = list_clients(session)
        assert [r.legal_name for r in rows] == sorted(CLIENT_NAMES[:60], key=str.casefold)
        assert all(r.agreement_count >= 1 for r in rows)
        assert sum(r.autopay for r in rows) not in (0, 60)  # a mix, as in a real office
        company = company_snapshot(session)
        assert company is not None and company.is_demo
        assert company.draft.invoice_number_pattern == "INV-{n:06d}"
        agreements = list_agreements(session)
        assert len(agreements) == summary.agreements
        assert {a.frequency for a in agreements} == {"monthly", "quarterly", "annual"}
        assert all(a.start_date <= TODAY for a in agreements)
        assert all(a.period_amount_cents > 0 for a in agreements)
    # Everything went through the services, which audit every creation.
    with db.session() as session:
        created = session.scalar(select(func.count(AuditEntry.id)).where(
            AuditEntry.entity_type.in_(["company", "client", "agreement"])))
    assert created == 1 + 60 + summary.agreements


def test_every_demo_record_passes_validation(db) -> None:
    with db.session() as session, session.begin():
        create_demo_office(session, clients=DEFAULT_CLIENTS, seed=99, today=TODAY)
    with db.session() as session:
        for cid in session.scalars(select(Client.id)):
            _, issues = validate_client(client_detail(session, cid).draft)
            assert issues == [], (cid, issues)
        for agreement in session.scalars(select(Agreement)):
            assert agreement.status is AgreementStatus.ACTIVE
            draft = agreement_detail(session, agreement.id).draft
            _, issues = validate_agreement(session, draft, existing=agreement)
            assert issues == [], (agreement.id, issues)
            assert agreement.end_date is None or agreement.end_date >= agreement.start_date


def test_demo_names_include_the_awkward_ones(db) -> None:
    with db.session() as session, session.begin():
        create_demo_office(session, today=TODAY)
    with db.session() as session:
        names = {r.legal_name for r in list_clients(session)}
    assert {"Zürich Dental GmbH", "株式会社さくらデザイン", "O'Brien & Sons Construction"} <= names


def test_demo_refuses_a_database_with_clients(db, count_rows) -> None:
    with db.session() as session, session.begin():
        create_demo_office(session, clients=3, today=TODAY)
    before = (count_rows(db, Client), count_rows(db, Agreement), count_rows(db, AuditEntry))
    with pytest.raises(DemoRefusedError, match="already has 3 clients"):
        with db.session() as session, session.begin():
            create_demo_office(session, clients=3, today=TODAY)
    assert (count_rows(db, Client), count_rows(db, Agreement), count_rows(db, AuditEntry)) == before


@pytest.mark.parametrize("clients", [0, -1, 100_001])
def test_demo_refuses_silly_sizes(db, count_rows, clients: int) -> None:
    with pytest.raises(DemoRefusedError):
        with db.session() as session, session.begin():
            create_demo_office(session, clients=clients)
    assert count_rows(db, Client) == 0


def test_generated_names_stay_unique_for_big_offices() -> None:
    names = [_client_name(i) for i in range(20_000)]
    assert len(set(names)) == len(names)
    assert names[:len(CLIENT_NAMES)] == CLIENT_NAMES
