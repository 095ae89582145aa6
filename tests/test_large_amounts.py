"""Money and quantities beyond 32 bits, on SQLite and on PostgreSQL.

PostgreSQL's INTEGER holds 2,147,483,647 at most: $21,474,836.47, or 2.1 billion in a currency without
decimals (VND, JPY, KRW), or a quantity of 214,748.3648 when stored ×10,000.  Validation allows far more
(a line of 999,999 × 99,999,999; amounts up to 10**13), so those columns are 64-bit (BIGINT there,
migration 0007).  These tests run invoices past 2**31 through generation, issuing, payment, client
credit, credit notes, aging and the KPIs, and check that what the database adds up comes back as int.
Every expected amount is worked out by hand in the comments.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from billing_helpers import (
    credit_balance,
    d,
    generate,
    invoice,
    issue,
    issue_ids,
    make_agreement,
    make_client,
    one_time,
    setup_office,
)
from sqlalchemy import func, inspect, select
from sqlalchemy.exc import DataError

from mspbill.agreements import LineDraft, agreement_detail, list_agreements
from mspbill.clients import monthly_value_by_client
from mspbill.db.copy import copy_database
from mspbill.db.engine import Database
from mspbill.db.models import (
    LINE_AMOUNT_SQL,
    Base,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    Payment,
)
from mspbill.db.schema import (
    alembic_config,
    current_revision,
    head_revision,
    open_database,
)
from mspbill.invoicing import create_credit_note
from mspbill.payments.manual import record_payment
from mspbill.periods import Month
from mspbill.reports.aging_report import aging_report
from mspbill.reports.kpis import compute_kpis, kpis_json

# Run on SQLite and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.both_databases

INT32_MAX = 2**31 - 1
NOVEMBER = Month(2026, 11)
BEFORE_0007 = "abe1149c0b8d"
AT_0007 = "ce30ff42b65b"


def _all_ints(*values: object) -> bool:
    # PostgreSQL sums BIGINT as NUMERIC: a Decimal here would mean the sum leaked past the column type.
    return all(type(v) is int for v in values)


def test_an_agreement_over_32_bits_is_invoiced_paid_aged_and_credited(db) -> None:
    setup_office(db)  # USD
    cid = make_client(db, "Mekong Holdings", tax_rate="10", payment_terms_days="30")
    aid = make_agreement(db, cid, "2026-11-01", [
        LineDraft("Data centre racks", "25", "999999.99"),          # 2,499,999,975 cents
        LineDraft("Backup storage (GB)", "300000", "0.50"),          # quantity_e4 3,000,000,000; 15,000,000 cents
    ])
    # Subtotal 2,499,999,975 + 15,000,000 = 2,514,999,975; tax 10 % = 251,499,997.5 → 251,499,998;
    # total 2,766,499,973 (all past INT32_MAX = 2,147,483,647).
    with db.session() as s:
        row = next(r for r in list_agreements(s) if r.id == aid)
        assert row.period_amount_cents == 2_514_999_975
        assert monthly_value_by_client(s, d("2026-11-15")) == {cid: 2_514_999_975}
        # The edit form gets back what was typed.
        assert [(ln.quantity, ln.unit_price) for ln in agreement_detail(s, aid).draft.lines] == [
            ("25", "999999.99"), ("300000", "0.50")]
    [inv_id] = generate(db, NOVEMBER).invoice_ids
    assert issue(db, NOVEMBER) == ["INV-000001"]
    inv = invoice(db, inv_id)
    assert [(ln.quantity_e4, ln.amount_cents) for ln in inv.lines] == [
        (250_000, 2_499_999_975), (3_000_000_000, 15_000_000)]
    assert (inv.subtotal_cents, inv.tax_cents, inv.total_cents) == (2_514_999_975, 251_499_998, 2_766_499_973)
    assert inv.status is InvoiceStatus.OPEN and inv.due_date == d("2026-12-01")

    # A payment of $25,000,000.00 = 2,500,000,000 cents (itself past INT32_MAX) on 2026-11-20.
    with db.write_session() as s, s.begin():
        record_payment(s, inv_id, "25000000.00", "wire", received_on=d("2026-11-20"), today=d("2026-11-20"))
    assert invoice(db, inv_id).balance_cents == 2_766_499_973 - 2_500_000_000  # 266,499,973
    with db.session() as s:
        # PostgreSQL sums BIGINT as NUMERIC (psycopg: Decimal); the column type turns sums, and sums of
        # arithmetic on money, back into int, as SQLite gives them.
        sums = s.execute(select(*(select(total).scalar_subquery() for total in (
            func.sum(Invoice.total_cents), func.sum(Invoice.total_cents - Invoice.paid_cents),
            func.coalesce(func.sum(Payment.amount_cents), 0), func.sum(LINE_AMOUNT_SQL))))).one()
    assert tuple(sums) == (2_766_499_973, 266_499_973, 2_500_000_000, 2_514_999_975)
    assert _all_ints(*sums)

    # On 2026-12-15 the rest is 14 days past due (due 2026-12-01): bucket 1–30.
    as_of = d("2026-12-15")
    with db.session() as s:
        usd = aging_report(s, as_of, today=as_of).section("USD")
        kpis = compute_kpis(s, as_of, today=as_of)
    assert usd is not None and usd.totals.buckets == (0, 266_499_973, 0, 0, 0) and usd.total_cents == 266_499_973
    assert kpis.ar_total.value == kpis.ar_overdue.value == 266_499_973
    assert kpis.mrr.value == 2_514_999_975
    assert kpis.window.invoiced_cents == 2_766_499_973
    assert _all_ints(kpis.ar_total.value, kpis.mrr.value, kpis.window.invoiced_cents, usd.total_cents)
    json.dumps(kpis_json(kpis))  # nothing in it that JSON cannot hold (a Decimal would fail here)

    # A credit note of $2,000,000.00 before tax + 10 % = 220,000,000 cents off the invoice → 46,499,973 left.
    with db.write_session() as s, s.begin():
        note = create_credit_note(s, inv_id, "Racks delivered late", "2000000.00", issue_date=d("2026-12-16"))
        note_id = note.id
    assert invoice(db, note_id).total_cents == 220_000_000
    assert invoice(db, inv_id).balance_cents == 46_499_973
    with db.session() as s:
        assert compute_kpis(s, d("2026-12-16"), today=d("2026-12-16")).ar_total.value == 46_499_973


def test_a_currency_without_decimals_bills_a_quantity_of_300000_and_keeps_billions_of_credit(db) -> None:
    setup_office(db, currency="VND")
    cid = make_client(db, "Saigon Freight", currency="VND", tax_rate="10", payment_terms_days="0")
    aid = make_agreement(db, cid, "2026-11-01", [
        LineDraft("Backup storage (GB)", "300000", "25000"),   # 7,500,000,000 ₫
        LineDraft("Managed seats", "120", "1250000"),            #   150,000,000 ₫
    ])
    # Subtotal 7,650,000,000 ₫; VAT 10 % 765,000,000; total 8,415,000,000 ₫.
    with db.session() as s:
        assert next(r for r in list_agreements(s) if r.id == aid).period_amount_cents == 7_650_000_000
        assert monthly_value_by_client(s, d("2026-11-15")) == {cid: 7_650_000_000}
    [inv_id] = generate(db, NOVEMBER).invoice_ids
    issue(db, NOVEMBER)
    inv = invoice(db, inv_id)
    assert (inv.subtotal_cents, inv.tax_cents, inv.total_cents) == (7_650_000_000, 765_000_000, 8_415_000_000)
    with db.session() as s:
        stored = s.scalars(select(InvoiceLine.quantity_e4).where(InvoiceLine.invoice_id == inv_id)
                           .order_by(InvoiceLine.position)).all()
    assert list(stored) == [3_000_000_000, 1_200_000]

    # Paid 11,000,000,000 ₫: the invoice is paid and 2,585,000,000 ₫ become client credit.
    with db.write_session() as s, s.begin():
        record_payment(s, inv_id, "11000000000", "wire", received_on=d("2026-11-05"), today=d("2026-11-05"),
                       credit_excess=True)
    inv = invoice(db, inv_id)
    assert inv.status is InvoiceStatus.PAID and inv.balance_cents == 0
    assert credit_balance(db, cid) == 2_585_000_000

    as_of = d("2026-11-20")
    with db.session() as s:
        vnd = aging_report(s, as_of, today=as_of).section("VND")
        kpis = compute_kpis(s, as_of, today=as_of)
    assert vnd is not None and vnd.total_cents == 0 and vnd.credit_cents == 2_585_000_000
    assert kpis.credit_held.value == 2_585_000_000 and kpis.ar_total.value == 0
    assert kpis.mrr.value == 7_650_000_000
    assert kpis.cash_this_month.value == 11_000_000_000
    assert _all_ints(vnd.credit_cents, kpis.credit_held.value, kpis.cash_this_month.value, kpis.mrr.value)
    json.dumps(kpis_json(kpis))


# --- migration 0007 on a PostgreSQL office that already has data -------------------------------------

def _constraints_and_indexes(database: Database, tables: Iterable[str]) -> dict[str, object]:
    found = inspect(database.engine)
    return {table: (sorted((c["name"], c["sqltext"]) for c in found.get_check_constraints(table)),
                    sorted(str(i["name"]) for i in found.get_indexes(table)))
            for table in sorted(tables)}


def _upgrade_to(database: Database, revision: str, *, down: bool = False) -> None:
    cfg = alembic_config(database)
    with database.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)


def test_migration_0007_widens_an_existing_postgresql_office_keeping_its_data(pg_server) -> None:
    name = pg_server.new_database(template=None)
    database = Database(pg_server.url(name))
    try:
        _upgrade_to(database, BEFORE_0007)
        setup_office(database)
        cid = make_client(database, "Old Office Client", payment_terms_days="0")
        # The largest a 32-bit column holds, as quantity ×10,000 and as cents: 214,748.3647 h × $100.00.
        biggest = one_time(database, cid, ("Support hours", "214748.3647", "100.00"))
        issue_ids(database, [biggest])
        with pytest.raises(DataError, match="out of range"):  # one more is what offices met
            one_time(database, cid, ("Support hours", "214748.3648", "100.00"))
        before = _constraints_and_indexes(database, inspect(database.engine).get_table_names())

        _upgrade_to(database, "head")
        assert current_revision(database) == (head_revision(), True)
        kept = invoice(database, biggest)
        assert (kept.total_cents, kept.lines[0].quantity_e4, kept.number) == (INT32_MAX, INT32_MAX, "INV-000001")
        assert _constraints_and_indexes(database, before) == before  # CHECKs and indexes kept
        with database.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        assert diff == [], diff
        # Now one more fits, and so does 25 × $999,999.99 = 2,499,999,975 cents, issued and paid.
        one_more = one_time(database, cid, ("Support hours", "214748.3648", "100.00"))
        assert invoice(database, one_more).total_cents == INT32_MAX + 1
        large = one_time(database, cid, ("Racks", "25", "999999.99"))
        issue_ids(database, [large])
        with database.write_session() as s, s.begin():
            record_payment(s, large, "24999999.75", "wire", received_on=d("2026-11-20"), today=d("2026-11-20"))
        assert invoice(database, large).status is InvoiceStatus.PAID

        # Going back to 32 bits cannot hold that: the downgrade fails and changes nothing.
        with pytest.raises(DataError, match="out of range"):
            _upgrade_to(database, BEFORE_0007, down=True)
        assert current_revision(database) == (head_revision(), True)
        assert invoice(database, large).total_cents == 2_499_999_975
    finally:
        database.dispose()
        pg_server.drop_database(name)


def test_migration_0007_changes_nothing_on_sqlite(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "office.sqlite3"
    database = Database(f"sqlite:///{path}")
    try:
        _upgrade_to(database, BEFORE_0007)
        schema_before = _sqlite_schema(database)
        _upgrade_to(database, AT_0007)
        assert _sqlite_schema(database) == schema_before  # no table rebuilt, no column retyped
        _upgrade_to(database, BEFORE_0007, down=True)
        assert _sqlite_schema(database) == schema_before
    finally:
        database.dispose()


def _sqlite_schema(database: Database) -> list[tuple[str, str]]:
    with database.engine.connect() as conn:
        return [(r[0], r[1]) for r in conn.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE name <> 'alembic_version' ORDER BY name")]


def test_a_sqlite_office_with_amounts_past_32_bits_copies_onto_postgresql(pg_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    source = open_database(f"sqlite:///{tmp_path / 'office.sqlite3'}", tmp_path / "backups")
    target = pg_server.new_database(template=None)
    try:
        setup_office(source, currency="VND")
        cid = make_client(source, "Saigon Freight", currency="VND", payment_terms_days="0")
        make_agreement(source, cid, "2026-11-01", [LineDraft("Backup storage (GB)", "300000", "25000")])
        [inv_id] = generate(source, NOVEMBER).invoice_ids
        issue(source, NOVEMBER)
        report = copy_database(source, pg_server.url(target))
        assert report.matches
        invoices = next(t for t in report.tables if t.table == "invoices")
        assert invoices.totals["total_cents"] == (7_500_000_000, 7_500_000_000)  # 300,000 × 25,000 ₫
        lines = next(t for t in report.tables if t.table == "invoice_lines")
        assert lines.totals["quantity_e4"] == (3_000_000_000, 3_000_000_000)
        copied = Database(pg_server.url(target))
        try:
            assert invoice(copied, inv_id).total_cents == 7_500_000_000
        finally:
            copied.dispose()
    finally:
        source.dispose()
        pg_server.drop_database(target)
