"""Importing clients and agreements into a real SQLite file: validation, duplicates, the
all-or-nothing commit, the audit entry, agreements with several lines, and the round trip
export -> import of clients."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mspbill.agreements import LineDraft, agreement_detail, list_agreements
from mspbill.clients import (
    ClientDraft,
    ContactDraft,
    client_detail,
    create_client,
    list_clients,
)
from mspbill.db.engine import Database
from mspbill.db.models import Agreement, AuditEntry, Client
from mspbill.db.schema import open_database
from mspbill.imports import plan_import, run_import
from mspbill.imports.export import export_clients_csv
from mspbill.imports.mapping import guess_mapping
from mspbill.imports.plan import ImportOptions, ImportRefusedError
from mspbill.imports.reading import read_csv_bytes
from tests.billing_helpers import make_agreement, make_client


def _table(text: str, name: str = "import.csv"):
    return read_csv_bytes(text.encode("utf-8"), name)


def _plan(db: Database, kind: str, text: str, **options: str):
    table = _table(text)
    with db.session() as s:
        return plan_import(s, kind, table, guess_mapping(kind, table.headers, table), ImportOptions(**options))


def _run(db: Database, kind: str, text: str, **options: str):
    table = _table(text)
    with db.write_session() as s, s.begin():
        return run_import(s, kind, table, guess_mapping(kind, table.headers, table), ImportOptions(**options))


def _count(db: Database, model: type) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def test_one_bad_row_means_nothing_is_committed_and_every_problem_is_listed(db: Database) -> None:
    text = ('Company Name,Billing Email,Terms,Tax Rate,Notes\n'
            'Good One,a@good.example,Net 30,8.25%,fine\n'
            'Bad Mail,not-an-address,Net 400,150,"two\nlines"\n'
            ',b@x.example,,,\n'
            'Good Two,c@good.example,,,\n')
    with pytest.raises(ImportRefusedError) as info:
        _run(db, "clients", text)
    sentences = [i.message for i in info.value.issues]
    assert any(s.startswith("Line 3, column “Billing Email”: “not-an-address” is not a valid e-mail") for s in sentences)
    assert any(s.startswith("Line 3, column “Terms”: Payment terms are at most 365") for s in sentences)
    assert any(s.startswith("Line 3, column “Tax Rate”: The tax rate is a percentage below 100") for s in sentences)
    # The quoted line break puts the next record on line 5.
    assert any(s.startswith("Line 5, column “Company Name”: Enter the client's legal name") for s in sentences)
    assert _count(db, Client) == 0 and _count(db, AuditEntry) == 0
    plan = info.value.plan
    assert [r.action for r in plan.rows] == ["create", "error", "error", "create"]
    assert "Nothing is imported until every error is fixed" in plan.summary()
    # A file without a column for the client's name cannot be imported at all, and says so.
    no_name = _plan(db, "clients", "Mail,Town\na@x.example,Berlin\n")
    assert not no_name.ok and no_name.rows == ()
    assert "No column gives the client name (a required field). The file's columns are “Mail”, “Town”" in \
        no_name.file_problems[0]


def test_clients_are_created_with_the_forms_rules_and_one_audit_entry(db: Database) -> None:
    text = ('\ufeffCompany Name;Billing Email;Primary Contact;Contact Email;Address 1;City;State;Zip;Terms;'
            'Tax Rate;Autopay;Currency\n'
            'Müller GmbH;"buchhaltung@mueller.example; chef@mueller.example";Anna Müller;anna@mueller.example;'
            'Hauptstr. 1;Berlin;;10115;Due on receipt;"19,5 %";yes;eur\n'
            '東京システム株式会社;ap@tokyo.example;;;;東京;;;Net 45;0;no;JPY\n'
            '=HYPERLINK("http://evil.example","Click");x@evil.example;;;;;;;;;;\n')
    result = _run(db, "clients", text)
    assert (result.created, result.updated, result.skipped) == (3, 0, 0)
    with db.session() as s:
        clients = {c.legal_name: c for c in s.scalars(select(Client))}
        m = clients["Müller GmbH"]
        assert m.email_list == ["buchhaltung@mueller.example", "chef@mueller.example"]
        assert m.tax_rate_percent == Decimal("19.5") and m.payment_terms_days == 0 and m.autopay
        assert m.currency == "EUR" and m.city == "Berlin" and m.postal_code == "10115"
        assert [(c.name, c.email) for c in m.contacts] == [("Anna Müller", "anna@mueller.example")]
        assert clients["東京システム株式会社"].payment_terms_days == 45
        # Kept as written; our CSV files guard it.
        assert '=HYPERLINK("http://evil.example","Click")' in clients
        entries = s.scalars(select(AuditEntry).where(AuditEntry.action == "import.clients")).all()
        assert len(entries) == 1
        details = entries[0].details
        assert details is not None and details["file"] == "import.csv" and details["created"] == 3
        assert details["mapping"]["legal_name"] == "Company Name"
        assert s.scalar(select(func.count()).where(AuditEntry.action == "client.created")) == 3
    exported = export_clients_csv_text(db)
    assert "'=HYPERLINK(" in exported and '\n=HYPERLINK' not in exported


def export_clients_csv_text(db: Database) -> str:
    with db.session() as s:
        return export_clients_csv(s).decode("utf-8-sig")


def test_duplicates_skip_update_or_create(db: Database) -> None:
    make_client(db, "Acme Inc", billing_emails="ap@acme.example", city="Springfield", notes="keep me")
    text = ('Company,Email,City,Primary Contact\n'
            'ACME  inc,,Shelbyville,Bart\n'          # by name (case and blanks aside)
            'Acme Incorporated,AP@acme.example,,\n'  # by e-mail: the same client again
            'New Co,new@co.example,Ogdenville,\n'
            'new co,,,\n')                           # repeats line 4 of this file
    plan = _plan(db, "clients", text)
    assert [r.action for r in plan.rows] == ["skip", "skip", "create", "skip"]
    assert "Already in mspbill by name: Acme Inc" in plan.rows[0].reason
    assert "Line 2 already matches Acme Inc" in plan.rows[1].reason
    assert "The same client (by name) as line 4" in plan.rows[3].reason

    result = _run(db, "clients", text, duplicates="update")
    assert (result.created, result.updated, result.skipped) == (1, 1, 2)
    with db.session() as s:
        acme = s.scalars(select(Client).where(Client.legal_name == "Acme Inc")).one()
        assert acme.city == "Shelbyville" and acme.notes == "keep me"  # a blank cell keeps the value
        assert acme.billing_emails == "ap@acme.example"
        assert [c.name for c in acme.contacts] == ["Bart"]

    result = _run(db, "clients", text, duplicates="create")
    assert result.created == 4
    assert _count(db, Client) == 2 + 4


def test_agreements_group_lines_and_refuse_what_they_cannot_read(db: Database) -> None:
    acme = make_client(db, "Acme Inc", billing_emails="ap@acme.example")
    make_client(db, "Beta LLC", billing_emails="billing@beta.example")
    text = ('Company,Agreement,Frequency,Start Date,Item,Qty,Unit Price,Taxable\n'
            'Acme Inc,Managed Services,Monthly,2026-01-01,Managed workstations,25,"$1,250.00",yes\n'
            'billing@beta.example,Backup,Quarterly,13/01/2026,Offsite backup,1,300,no\n'
            'acme inc,Managed services,,,Firewall,"2,5",45.50,\n'
            'Nobody Ltd,X,Monthly,2026-01-01,Y,1,1,\n'
            'Acme Inc,Managed Services,Annual,,Extra,1,abc,maybe\n'
            'Beta LLC,Backup,,03/04/2026,Cloud copy,1,10,\n')
    plan = _plan(db, "agreements", text)
    by_name = {r.name: r for r in plan.rows}
    managed = by_name["Acme Inc — Managed Services"]
    assert managed.action == "error" and managed.lines == (2, 4, 6)
    messages = [p.sentence() for p in managed.problems]
    assert "Line 6, column “Frequency”: The billing frequency “Annual” differs from line 2" in messages[0]
    assert any(m.startswith("Line 6, column “Taxable”: “maybe” is not yes or no") for m in messages)
    assert any(m.startswith("Line 6, column “Unit Price”: “abc” is not an amount") for m in messages)
    assert "There is no client with the name “Nobody Ltd”" in by_name["Nobody Ltd — X"].problems[0].message
    backup = by_name["Beta LLC — Backup"]
    # 13/01/2026 shows the file writes day first, so 03/04/2026 is read as 3 April: not line 3's start date.
    assert backup.action == "error" and "differs from line 3" in backup.problems[0].message
    assert _count(db, Agreement) == 0

    good = ('Company,Agreement,Frequency,Start Date,End date,Item,Qty,Unit Price,Taxable\n'
            'Acme Inc,Managed Services,Monthly,03/04/2026,,Managed workstations,25,"$1,250.00",yes\n'
            'acme inc,Managed services,,,,Firewall,"2,5",45.50,\n'
            'ap@acme.example,Backup,quarter,2026-01-01,2026-12-31,Offsite,1,300,no\n')
    ambiguous = _plan(db, "agreements", good)
    assert not ambiguous.ok
    assert "“03/04/2026” could be 4 March 2026 or 3 April 2026" in ambiguous.error_sentences()[0]
    result = _run(db, "agreements", good, date_order="mdy")
    assert (result.created, result.updated) == (2, 0)
    with db.session() as s:
        rows = {r.name: r for r in list_agreements(s, client_id=acme)}
    assert rows["Managed Services"].line_count == 2 and rows["Managed Services"].period_amount_cents == 3_136_375
    with db.session() as s:
        detail = agreement_detail(s, rows["Managed Services"].id)
        assert detail.draft.start_date == "2026-03-04" and detail.draft.frequency == "monthly"
        assert [(ln.description, ln.quantity, ln.taxable) for ln in detail.draft.lines] == [
            ("Managed workstations", "25", True), ("Firewall", "2.5", True)]
        backup_detail = agreement_detail(s, rows["Backup"].id)
        assert backup_detail.draft.end_date == "2026-12-31" and backup_detail.draft.frequency == "quarterly"
        assert s.scalar(select(func.count()).where(AuditEntry.action == "import.agreements")) == 1

    # Again: the same client and name is a duplicate; updating replaces the lines.
    again = good.replace("Firewall,\"2,5\"", "Firewall,3")
    assert [r.action for r in _plan(db, "agreements", again, date_order="mdy").rows] == ["skip", "skip"]
    result = _run(db, "agreements", again, date_order="mdy", duplicates="update")
    assert result.updated == 2
    with db.session() as s:
        lines = agreement_detail(s, rows["Managed Services"].id).draft.lines
        assert [(ln.description, ln.quantity) for ln in lines] == [("Managed workstations", "25"), ("Firewall", "3")]


def test_an_invoiced_agreement_is_not_updated_by_an_import(db: Database) -> None:
    from mspbill.periods import Month
    from tests.billing_helpers import run_month, setup_office

    setup_office(db)
    client = make_client(db, "Acme Inc")
    make_agreement(db, client, "2026-10-01", [LineDraft("Seats", "2", "100.00")], name="Managed Services")
    run_month(db, Month(2026, 11))
    plan = _plan(db, "agreements", "Client,Agreement,Start,Item,Qty,Price\n"
                                   "Acme Inc,Managed Services,2026-10-01,Seats,3,100\n", duplicates="update")
    assert plan.rows[0].action == "error"
    assert "has been invoiced, so an import does not change it" in plan.rows[0].problems[0].message


def test_export_then_import_gives_the_same_clients(db: Database, tmp_path: Path) -> None:
    drafts = [
        ClientDraft(legal_name="Müller & Söhne GmbH", billing_emails="a@mueller.example, b@mueller.example",
                    phone="+49 30 1234567", address_line1="Hauptstraße 5, Hinterhaus", address_line2="3. OG",
                    city="Berlin", region="", postal_code="10115", country="Deutschland", currency="EUR",
                    tax_rate="19", payment_terms_days="14", autopay=True, autopay_discount="2.5",
                    autopay_cap="1250.00", notes='Line one, with "quotes"\nline two; semicolon\n=SUM(A1)',
                    contacts=[ContactDraft("Anna Müller", "CFO", "anna@mueller.example", "+49 30 9"),
                              ContactDraft("O'Brien, Pat", "IT", "", "-0")]),
        ClientDraft(legal_name="東京システム株式会社", billing_emails="ap@tokyo.example", currency="JPY",
                    tax_rate="10", payment_terms_days="0", city="東京", autopay_cap="50000"),
        ClientDraft(legal_name="ООО Ромашка", billing_emails="buh@romashka.example", tax_rate="8.875",
                    payment_terms_days="30", notes="Кириллица"),
        ClientDraft(legal_name='=HYPERLINK("http://evil.example","Click")', billing_emails="x@evil.example",
                    phone="@home", tax_rate="0"),
        ClientDraft(legal_name="Plain, Inc.", payment_terms_days="45"),
    ]
    with db.write_session() as s, s.begin():
        for d in drafts:
            create_client(s, d)
    with db.session() as s:
        data = export_clients_csv(s)
    assert data.startswith(b"\xef\xbb\xbf")
    header = next(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    table = read_csv_bytes(data, "clients.csv")
    mapping = guess_mapping("clients", table.headers, table)
    assert len(mapping) == len(header)  # the import maps every column it wrote by itself

    fresh = open_database(f"sqlite:///{tmp_path / 'fresh.sqlite3'}", tmp_path / "fresh-backups")
    try:
        with fresh.write_session() as s, s.begin():
            result = run_import(s, "clients", table, mapping)
        assert result.created == len(drafts)

        def snapshot(database: Database) -> dict[str, dict]:
            with database.session() as s:
                return {r.legal_name: asdict(client_detail(s, r.id).draft) for r in list_clients(s)}

        before, after = snapshot(db), snapshot(fresh)
        assert before.keys() == after.keys()
        for name in before:
            assert after[name] == before[name], name
    finally:
        fresh.dispose()


def test_updating_an_agreement_keeps_blank_cells_and_unnamed_lines_and_shows_the_changes(db: Database) -> None:
    zeta = make_client(db, "Zeta Corp", billing_emails="ap@zeta.example")
    make_agreement(db, zeta, "2026-12-01", [LineDraft("Managed workstations", "25", "45.00", False),
                                            LineDraft("Backup", "3", "10.00")], name="Managed IT")
    text = ("Client,Agreement,Start date,Description,Unit price\n"
            "Zeta Corp,Managed IT,2026-12-01,Managed workstations,50.00\n"
            "Zeta Corp,Managed IT,2026-12-01,backup ,10.00\n")
    row = _plan(db, "agreements", text, duplicates="update").rows[0]
    assert row.action == "update"
    assert row.detail == "Managed workstations: 45.00 → 50.00; monthly total $1,155.00 → $1,280.00"
    assert _run(db, "agreements", text, duplicates="update").updated == 1

    def lines() -> list[tuple[str, str, str, bool]]:
        with db.session() as s:
            (agreement,) = list_agreements(s, client_id=zeta)
            return [(ln.description, ln.quantity, ln.unit_price, ln.taxable)
                    for ln in agreement_detail(s, agreement.id).draft.lines]

    # Quantity and taxable were not in the file: kept, not reset to 1 and taxable.
    assert lines() == [("Managed workstations", "25", "50.00", False), ("Backup", "3", "10.00", True)]

    # A file naming some lines: the others are kept (and the preview says so); a new line gets the form's defaults.
    text = ("Client,Agreement,Start date,Description,Qty,Unit price,Taxable\n"
            "Zeta Corp,Managed IT,,Managed workstations,30,,\n"
            "Zeta Corp,Managed IT,,Firewall,,20.00,\n")
    row = _plan(db, "agreements", text, duplicates="update").rows[0]
    assert row.detail == ("Managed workstations: quantity 25 → 30; adds Firewall (1 × 20.00, taxable); keeps Backup "
                          "(not in the file; remove lines in the agreement dialog); "
                          "monthly total $1,280.00 → $1,550.00")
    _run(db, "agreements", text, duplicates="update")
    assert lines() == [("Managed workstations", "30", "50.00", False), ("Backup", "3", "10.00", True),
                       ("Firewall", "1", "20.00", True)]


def test_a_row_sharing_only_a_billing_email_never_renames_the_client(db: Database) -> None:
    zeta = make_client(db, "Zeta Corp", billing_emails="ap@zeta.example", city="Springfield")
    text = "Company,Email,City\nZeta Holdings LLC,ap@zeta.example,Shelbyville\n"
    skipped = _plan(db, "clients", text).rows[0]
    assert skipped.action == "skip" and skipped.target_id == zeta
    assert skipped.reason.startswith(f"Zeta Holdings LLC shares the billing e-mail ap@zeta.example with Zeta Corp "
                                     f"(ID {zeta}); not imported.")
    updated = _plan(db, "clients", text, duplicates="update").rows[0]
    assert updated.action == "update"
    assert updated.reason.startswith(f"Zeta Holdings LLC shares the billing e-mail ap@zeta.example with Zeta Corp "
                                     f"(ID {zeta}): updates Zeta Corp from this row but keeps its name.")
    _run(db, "clients", text, duplicates="update")
    with db.session() as s:
        client = s.get(Client, zeta)
        assert client is not None and (client.legal_name, client.city) == ("Zeta Corp", "Shelbyville")
    assert _run(db, "clients", text, duplicates="create").created == 1
    with db.session() as s:
        assert sorted(r.legal_name for r in list_clients(s)) == ["Zeta Corp", "Zeta Holdings LLC"]


def test_a_us_office_reads_dates_month_first_when_the_file_cannot_tell(db: Database) -> None:
    """Every start date on the 1st (12/01/2026) settles nothing; an office in the United States reads
    them month first, and says so, instead of refusing every agreement."""
    from mspbill.company import CompanyDraft, save_company

    with db.write_session() as s, s.begin():
        save_company(s, CompanyDraft(name="Harbor IT", country="United States", currency="USD",
                                     invoice_number_pattern="INV-{n:06d}"))
    make_client(db, "Acme Inc", billing_emails="ap@acme.example")
    text = ('Company,Agreement,Frequency,Start Date,Item,Qty,Unit Price\n'
            'Acme Inc,Managed Services,Monthly,12/01/2026,Managed workstations,25,45\n'
            'Acme Inc,Backup,Monthly,03/01/2027,Offsite,1,300\n')
    plan = _plan(db, "agreements", text)
    assert plan.ok, plan.error_sentences()
    assert any("month first" in n and "United States" in n for n in plan.notices)
    _run(db, "agreements", text)
    with db.session() as s:
        starts = sorted(agreement_detail(s, r.id).draft.start_date for r in list_agreements(s))
    assert starts == ["2026-12-01", "2027-03-01"]


def test_a_street_address_with_line_breaks_in_one_cell_is_split_not_refused(db: Database) -> None:
    text = ('Company Name,Address 1,City,Zip\n'
            '"Harbor Light Logistics","400 Dock St\nSuite 12\nBuilding C",Portland,97209\n'
            '"Alder Creek Winery","12 Vine Rd",Hillsboro,97123\n')
    result = _run(db, "clients", text)
    assert result.created == 2
    with db.session() as s:
        rows = {r.legal_name: r.id for r in list_clients(s)}
        harbor = client_detail(s, rows["Harbor Light Logistics"]).draft
    assert (harbor.address_line1, harbor.address_line2) == ("400 Dock St", "Suite 12, Building C")
