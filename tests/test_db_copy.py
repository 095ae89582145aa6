"""`mspbill db copy --to URL`: an office's SQLite file moved onto a real PostgreSQL server, checked, and
refused (with nothing written) when the target is not empty, cannot be reached, or the copy goes wrong."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, inspect, select, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError

import mspbill.db.copy as copy_mod
from mspbill.clients import ClientDraft, create_client
from mspbill.context import open_context
from mspbill.db.copy import CopyRefusedError, CopyReport, copy_database
from mspbill.db.engine import Database
from mspbill.db.models import (
    AuditEntry,
    Base,
    Client,
    CompanyProfile,
    Invoice,
    InvoiceKind,
)
from mspbill.db.moves import current_move, reclaim_database
from mspbill.db.schema import open_database
from mspbill.demo import create_demo_office
from mspbill.invoicing import (
    ItemDraft,
    OneTimeDraft,
    create_credit_note,
    create_one_time_invoice,
    issue_invoices,
)
from mspbill.payments.manual import record_payment
from mspbill.reports.aging_report import aging_report
from tests.billing_helpers import issue_ids, make_client, one_time
from tests.pg_server import SUPERUSER_PASSWORD, PgServer, _free_port

TODAY = dt.date(2026, 11, 21)
ODD_NAME = "Ærøskøbing Øl & Café — 東京支店 🍺"
LONG_NOTES = ("Zugang über Hintertür; ключи у охраны; 鍵は受付に。\n" * 180)[:9_000].strip()
PASSWORD_FORMS = (SUPERUSER_PASSWORD, "p%C3%A4ssword")


# --- the office being moved (made once for the module) --------------------------------------

@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Database]]:
    """A small demo office in a data folder (so the CLI can open it), with non-ASCII text, an exact
    decimal tax rate, a credit note, an overpayment turned into client credit, and a 9,000-character note."""
    folder = tmp_path_factory.mktemp("office")
    ctx = open_context(str(folder))
    db = ctx.db
    with db.write_session() as s, s.begin():
        create_demo_office(s, clients=6, today=TODAY)
    with db.write_session() as s, s.begin():
        client = create_client(s, ClientDraft(legal_name=ODD_NAME, billing_emails="ap@aero.example",
                                              tax_rate="8.875", autopay_discount="2.5", autopay_cap="1234.56",
                                              notes=LONG_NOTES))
        inv = create_one_time_invoice(s, OneTimeDraft(client.id, "Umzug — Zürich", "memo ✓",
                                                      [ItemDraft("Einrichtung", "1.5", "199.99")]))
        issue_invoices(s, [inv.id], dt.date(2026, 11, 2))
        create_credit_note(s, inv.id, "Kulanz: Ausfall", "25.00", issue_date=dt.date(2026, 11, 5))
        record_payment(s, inv.id, "500.00", "check", reference="№ 42", received_on=dt.date(2026, 11, 10),
                       credit_excess=True, today=TODAY)
    try:
        yield folder, db
    finally:
        ctx.close()


def _empty_db_url(pg_server: PgServer) -> str:
    return pg_server.url(pg_server.new_database(template=None))


@pytest.fixture(autouse=True)
def _office_stays_the_office(request: pytest.FixtureRequest) -> Iterator[None]:
    """A copy marks the office as moved (tests/test_db_moves.py): the next test copies it again, so the
    office is reclaimed after each test that used it."""
    yield
    if "office" in request.fixturenames:
        reclaim_database(request.getfixturevalue("office")[1])


@pytest.fixture(scope="module")
def copied(office: tuple[Path, Database], pg_server: PgServer) -> tuple[CopyReport, str, list[tuple[int, int, str]]]:
    """The office copied once onto an empty database: (report, target URL, progress calls)."""
    calls: list[tuple[int, int, str]] = []
    url = _empty_db_url(pg_server)
    report = copy_database(office[1], url, lambda d, t, x: calls.append((d, t, x)))
    assert report.source_marked and current_move(office[1]) is not None
    return report, url, calls


COPIED = [t for t in Base.metadata.tables if t != "database_moves"]


def _rows(url_or_db: str | Database, table_name: str) -> list[dict[str, Any]]:
    table = Base.metadata.tables[table_name]
    engine = url_or_db.engine if isinstance(url_or_db, Database) else create_engine(url_or_db)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(table).order_by(table.c.id))]
    finally:
        if not isinstance(url_or_db, Database):
            engine.dispose()


def _scalar(url: str, sql: str) -> Any:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar_one()
    finally:
        engine.dispose()


def _state(url: str) -> dict[str, Any]:
    """Every table of a database and its row count (what "left exactly as it was" compares)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            names = sorted(inspect(conn).get_table_names())
            return {n: conn.execute(text(f'SELECT count(*) FROM "{n}"')).scalar_one() for n in names}
    finally:
        engine.dispose()


# --- a good copy ------------------------------------------------------------------------------

def test_every_table_copied_with_equal_counts_and_money_totals(office, copied) -> None:
    report, url, calls = copied
    assert report.matches and [t.table for t in report.tables] == [t.name for t in copy_mod.copied_tables()]
    assert len(report.tables) == len(Base.metadata.tables) - 1 and "database_moves" not in COPIED
    source_db = office[1]
    for check in report.tables:
        table = Base.metadata.tables[check.table]
        with source_db.engine.connect() as conn:
            source_count = conn.execute(select(func.count()).select_from(table)).scalar_one()
        if check.table == "audit_log":
            source_count -= 1  # the source's "moved" entry, written after the copy
        assert check.source_rows == check.target_rows == source_count, check.table
        money = [c.name for c in table.columns if c.name.endswith("_cents")]
        assert set(money) <= set(check.totals), check.table  # every money column was compared
    by_name = {t.table: t for t in report.tables}
    assert by_name["invoices"].totals["total_cents"][0] > 0 and by_name["payments"].source_rows > 10
    assert by_name["clients"].decimal_totals["tax_rate_percent"][0] >= Decimal("8.875")
    # The summary and the per-table lines.
    assert report.rows == sum(t.target_rows for t in report.tables)
    assert report.lines()[-1].startswith(f"Copied {report.rows:,} rows in {len(report.tables)} tables to "
                                         "postgresql://mspbill_test@127.0.0.1:")
    assert report.lines()[-1].endswith("every table's count and totals match.")
    assert not any(p in "\n".join(report.lines()) for p in PASSWORD_FORMS)
    # Progress: per batch, never backwards, ends at the total.
    done = [c[0] for c in calls]
    assert done == sorted(done) and calls[-1][0] == calls[-1][1] == report.rows
    assert any(c[2] == "Copying invoices…" for c in calls)
    # One audit entry on the target says where it came from; the source got none.
    with Database(url).engine.connect() as conn:
        entries = conn.execute(select(AuditEntry.summary).where(AuditEntry.action == "database.copied")).all()
    assert len(entries) == 1 and entries[0][0].startswith(f"Copied from {office[1].describe()} on ")
    assert f"{report.rows:,} rows in {len(report.tables)} tables" in entries[0][0]
    with source_db.session() as s:
        assert s.scalar(select(func.count()).where(AuditEntry.action == "database.copied")) == 0


def test_rows_are_equal_field_by_field_with_their_types(office, copied) -> None:
    _report, url, _calls = copied
    for name in COPIED:
        source_rows = _rows(office[1], name)
        target_rows = _rows(url, name)
        if name == "audit_log":
            target_rows = target_rows[:-1]  # the copy's own entry
            source_rows = source_rows[:len(target_rows)]  # the source's own "moved" (and "reclaimed") entries
        assert source_rows == target_rows, name
    assert _rows(url, "database_moves") == []  # the target starts unmoved
    client = next(r for r in _rows(url, "clients") if r["legal_name"] == ODD_NAME)
    assert client["notes"] == LONG_NOTES and client["tax_rate_percent"] == Decimal("8.875")
    assert client["autopay_discount_percent"] == Decimal("2.5") and client["autopay_cap_cents"] == 123456
    assert client["created_at"].tzinfo is not None and client["created_at"].utcoffset() == dt.timedelta(0)
    assert client["autopay"] is False and client["reminders_paused"] is False
    invoices = _rows(url, "invoices")
    issued = next(r for r in invoices if r["title"] == "Umzug — Zürich")
    assert issued["issue_date"] == dt.date(2026, 11, 2) and isinstance(issued["bill_to"], dict)
    assert ODD_NAME in json.dumps(issued["bill_to"], ensure_ascii=False)
    assert any(r["kind"] is InvoiceKind.CREDIT_NOTE and r["credit_for_invoice_id"] == issued["id"] for r in invoices)
    # A NULL stays NULL in a JSON column (drafts have no bill-to yet), not the JSON value null.
    null_bill_to = "SELECT count(*) FROM invoices WHERE bill_to IS NULL"
    with office[1].engine.connect() as conn:
        drafts = conn.execute(text(null_bill_to)).scalar_one()
    assert drafts > 0 and _scalar(url, null_bill_to) == drafts
    company = _rows(url, "company_profile")[0]
    assert isinstance(company["logo_png"], bytes) and company["logo_png"].startswith(b"\x89PNG")


def test_the_reports_agree_on_both(office, copied) -> None:
    _report, url, _calls = copied
    target = Database(url)
    try:
        with office[1].session() as s:
            before = aging_report(s, TODAY, today=TODAY)
        with target.session() as s:
            after = aging_report(s, TODAY, today=TODAY)
    finally:
        target.dispose()
    assert before == after and not before.nothing_owed


def test_new_rows_after_the_copy_get_fresh_ids_and_the_next_number(office, copied, tmp_path: Path) -> None:
    _report, url, _calls = copied
    with office[1].session() as s:
        last_client = s.scalar(select(func.max(Client.id)))
        last_invoice = s.scalar(select(func.max(Invoice.id)))
        company = s.get(CompanyProfile, 1)
        assert company is not None
        next_number = company.invoice_number_pattern.format(n=company.next_invoice_number)
    target = open_database(url, tmp_path / "backups")
    try:
        client_id = make_client(target, "Neukunde GmbH")
        invoice_id = one_time(target, client_id, ("Onboarding", "1", "100.00"))
        assert (client_id, invoice_id) == (last_client + 1, last_invoice + 1)
        assert issue_ids(target, [invoice_id], TODAY) == [next_number]
    finally:
        target.dispose()


def test_the_cli_copies_reports_each_table_and_says_what_next(office, pg_server, cli) -> None:
    url = _empty_db_url(pg_server)
    done = cli("--data-dir", str(office[0]), "db", "copy", "--to", url)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.splitlines()[0].split() == ["Table", "Rows", "Totals", "checked"]
    assert any(line.split()[:2] == ["invoices", str(_state(url)["invoices"])] for line in out.splitlines())
    assert "invoices" in out and "subtotal, tax, total, credit_applied, paid, credited" in out
    # Only money and quantities are shown as totals (the ids' sums are checked, not presented).
    table_lines = out.split("\n\n")[0].splitlines()[1:]
    assert table_lines and not any("id" in line.split()[2:] or "id," in line.split() for line in table_lines)
    assert any(line.split()[0] == "client_contacts" and line.split()[2:] == ["-"] for line in table_lines)
    assert any(line.split()[0] == "agreement_lines" and "quantity," in line.split() for line in table_lines)
    assert "every table's count and totals match." in out
    assert "mspbill db use postgresql://mspbill_test@127.0.0.1:" in out
    assert not any(p in out + done.stderr for p in PASSWORD_FORMS)



def test_the_json_document_has_every_table_and_no_password(copied) -> None:
    from mspbill.cli_db import _document

    report, _url, _calls = copied
    text_out = json.dumps(_document(report), ensure_ascii=False)
    document = json.loads(text_out)
    assert document["matches"] is True and len(document["tables"]) == len(COPIED)
    assert document["source_marked_moved"] is True and document["warning"] is None
    assert document["rows"] == report.rows and document["summary"] == report.summary()
    invoices = next(t for t in document["tables"] if t["table"] == "invoices")
    assert invoices["totals"]["total_cents"]["source"] == invoices["totals"]["total_cents"]["target"] > 0
    assert "id" not in invoices["totals"] and invoices["id_sum"]["source"] == invoices["id_sum"]["target"] > 0
    assert any("mspbill db use postgresql://mspbill_test@" in step for step in document["next_steps"])
    assert not any(p in text_out for p in PASSWORD_FORMS)


def test_a_server_office_copies_back_into_a_new_sqlite_file(copied, tmp_path: Path) -> None:
    _report, url, _calls = copied
    server = Database(url)
    try:
        state = _state(url)
        back = copy_database(server, f"sqlite:///{tmp_path / 'back.sqlite3'}")
        assert back.matches and back.rows == sum(n for t, n in state.items() if t != "alembic_version")
        again = tmp_path / "back.sqlite3"
        before = again.read_bytes()
        reclaim_database(server)  # the copy marked the server as moved to the file
        with pytest.raises(CopyRefusedError, match=fr"The file {again} already holds a copy of an office \(copied "
                                                   r"from postgresql://mspbill_test@127\.0\.0\.1:\d+/t") as refused:
            copy_database(server, f"sqlite:///{again}")
        assert refused.value.kind == "already_copied" and again.read_bytes() == before
        assert f"to use it, `mspbill --db sqlite:///{again}`" in str(refused.value)
    finally:
        server.dispose()


# --- refused: nothing written -----------------------------------------------------------------

def test_a_target_holding_mspbill_data_is_refused_and_left_as_it_was(office, pg_url, tmp_path, cli) -> None:
    target = open_database(pg_url, tmp_path / "b")
    make_client(target, "Schon da AG")
    target.dispose()
    before = _state(pg_url)
    with pytest.raises(CopyRefusedError) as refused:
        copy_database(office[1], pg_url)
    message = str(refused.value)
    assert refused.value.kind == "not_empty"
    assert "already holds mspbill's tables with 1 client and 0 invoices" in message
    assert "CREATE DATABASE \"mspbill_office\" OWNER \"mspbill_test\"" in message
    assert not any(p in message for p in PASSWORD_FORMS)
    assert _state(pg_url) == before

    done = cli("--data-dir", str(office[0]), "db", "copy", "--to", pg_url, "--json")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("mspbill: The database mspbill_test@127.0.0.1:")
    assert _state(pg_url) == before


def test_a_target_with_a_strangers_tables_is_refused(office, pg_server) -> None:
    url = _empty_db_url(pg_server)
    engine = create_engine(url)
    with engine.begin() as conn:
        for name in ("kunden", "rechnungen", "zahlungen"):
            conn.execute(text(f"CREATE TABLE {name} (id integer PRIMARY KEY)"))
        conn.execute(text("INSERT INTO kunden VALUES (1)"))
    engine.dispose()
    before = _state(url)
    with pytest.raises(CopyRefusedError, match="holds 3 other tables: kunden, rechnungen, zahlungen"):
        copy_database(office[1], url)
    assert _state(url) == before


def test_an_unreachable_server_and_a_wrong_password_are_said_plainly(office, pg_server) -> None:
    nowhere = URL.create("postgresql+psycopg", username="office", password="x", host="127.0.0.1",
                         port=_free_port(), database="mspbill").render_as_string(hide_password=False)
    with pytest.raises(CopyRefusedError, match="cannot reach the database server at 127.0.0.1") as unreachable:
        copy_database(office[1], nowhere)
    assert unreachable.value.kind == "server"

    name = pg_server.new_database(template=None)
    with pytest.raises(CopyRefusedError, match="refused user 'mspbill_test'") as refused:
        copy_database(office[1], pg_server.url(name, password="not-the-password"))
    assert refused.value.kind == "password" and "not-the-password" not in str(refused.value)
    assert _state(pg_server.url(name)) == {}


# --- going wrong midway: rolled back, the target empty again ----------------------------------

def test_a_failure_midway_leaves_the_target_without_any_table(office, pg_server, monkeypatch) -> None:
    url = _empty_db_url(pg_server)
    real_copy = copy_mod.copy_table
    copied_tables: list[str] = []

    def failing(src, dst, table, on_batch):  # type: ignore[no-untyped-def]
        if table.name == "invoices":
            raise OperationalError("INSERT INTO invoices", {}, Exception("server ran out of disk space"))
        copied_tables.append(table.name)
        real_copy(src, dst, table, on_batch)

    monkeypatch.setattr(copy_mod, "copy_table", failing)
    with pytest.raises(CopyRefusedError, match="Copying the table invoices failed") as failed:
        copy_database(office[1], url)
    assert failed.value.kind == "failed" and "clients" in copied_tables
    assert _state(url) == {}  # not even the tables: the DDL was rolled back too


def test_a_mismatch_in_the_check_rolls_everything_back(office, pg_server, monkeypatch) -> None:
    url = _empty_db_url(pg_server)
    real_measure = copy_mod.measure

    def off_by_a_cent(conn, table):  # type: ignore[no-untyped-def]
        rows, ints, decimals = real_measure(conn, table)
        if conn.dialect.name == "postgresql" and table.name == "payments":
            ints = {**ints, "amount_cents": ints["amount_cents"] - 1}
        return rows, ints, decimals

    monkeypatch.setattr(copy_mod, "measure", off_by_a_cent)
    with pytest.raises(CopyRefusedError, match=r"did not match .*payments: amount_cents \d+ → \d+") as mismatch:
        copy_database(office[1], url)
    assert mismatch.value.kind == "mismatch" and "invoices:" not in str(mismatch.value)
    assert _state(url) == {}


def test_a_value_the_server_cannot_hold_is_named_and_nothing_is_kept(pg_server, tmp_path: Path) -> None:
    # SQLite does not enforce VARCHAR lengths; an old or hand-edited file may hold a longer name.
    source = open_database(f"sqlite:///{tmp_path / 'old.sqlite3'}", tmp_path / "b")
    try:
        make_client(source, "Short name")
        with source.write_session() as s, s.begin():
            s.execute(text("UPDATE clients SET legal_name = :n"), {"n": "Ü" * 250})
        url = _empty_db_url(pg_server)
        with pytest.raises(CopyRefusedError) as refused:
            copy_database(source, url)
    finally:
        source.dispose()
    message = str(refused.value)
    assert message.startswith("Copying the table clients failed (value too long for type character varying(200)")
    assert "column legal_name" in message and "rolled back" in message
    assert _state(url) == {}
