"""The audit trail: the viewer's query (filters by local day, user, area, words; newest first; paging),
the readable details, the CSV export, and that every change the issue lists leaves an entry —
by the operating-system user, with a summary and the values that changed."""

from __future__ import annotations

import csv
import datetime as dt
import getpass
import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from billing_helpers import (
    generate,
    issue,
    issue_ids,
    make_agreement,
    make_client,
    one_time,
    setup_office,
)
from sqlalchemy import select

from mspbill import audit
from mspbill.agreements import LineDraft, archive_agreement, restore_agreement
from mspbill.audit import (
    AREAS,
    AuditFilter,
    AuditRow,
    area_of,
    audit_csv,
    describe_details,
    export_audit_csv,
    iter_audit,
    search_audit,
)
from mspbill.db.engine import Database
from mspbill.db.models import AuditEntry, CompanyProfile
from mspbill.db.schema import open_database
from mspbill.periods import Month
from mspbill.validation import ValidationError

UTC = dt.UTC
OS_USER = "ana.lópez"  # what getpass.getuser() says in the coverage tests


# --- a trail to search (made once for the module) -----------------------------------------

def _entry(at: dt.datetime, actor: str, action: str, summary: str, entity_type: str = "invoice",
           entity_id: int | None = None, details: dict | None = None) -> AuditEntry:
    return AuditEntry(at=at, actor=actor, action=action, entity_type=entity_type, entity_id=entity_id,
                      summary=summary, details=details)


@pytest.fixture(scope="module")
def trail(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    folder = tmp_path_factory.mktemp("trail")
    db = open_database(f"sqlite:///{folder / 't.sqlite3'}", folder / "backups")
    day = dt.datetime(2026, 11, 2, 5, 0, tzinfo=UTC)  # 2026-11-01 21:00 in Los Angeles
    with db.write_session() as s, s.begin():
        s.add_all([
            _entry(day, "jane", "payment.recorded", "Recorded payment of $10.00 by check on INV-000001"),
            _entry(day + dt.timedelta(minutes=1), "jane", "invoice.charge_started", "Charging $20.00 to Visa 4242"),
            _entry(day + dt.timedelta(minutes=2), "bob", "invoice.voided", "Voided INV-000002: 100% wrong"),
            _entry(day + dt.timedelta(minutes=3), "bob", "agreement.updated", "Updated agreement Managed IT",
                   "agreement", 1),
            _entry(day + dt.timedelta(minutes=4), "jane", "client.created", "Created client Café Zürich", "client", 1),
            _entry(day + dt.timedelta(minutes=5), "bob", "settings.late_fees", "Late fees: No late fees.",
                   "settings", 1),
            _entry(day + dt.timedelta(minutes=6), "bob", "company.updated", "Updated company profile", "company", 1),
            _entry(day + dt.timedelta(minutes=7), "jane", "batch.started", "Month-end run 2026-11 started",
                   "batch_run", 7),
            _entry(day + dt.timedelta(minutes=8), "jane", "credit_note.issued", "Issued credit note CN-000001"),
            _entry(day + dt.timedelta(minutes=9), "jane", "payment.refunded", "Refunded $5.00 (re_1): dispute"),
        ])
        # 25 more a week later, for paging (at the same instant: the id keeps them in order)
        later = dt.datetime(2026, 11, 9, 12, 0, tzinfo=UTC)
        s.add_all([_entry(later, "carol", "invoice.emailed", f"E-mailed INV-{n:06d}") for n in range(1, 26)])
    yield db
    db.dispose()


@pytest.fixture
def los_angeles(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The office's computer is in Los Angeles (UTC−8 in November): local days are not UTC days."""
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _search(db: Database, limit: int = 500, offset: int = 0, **kw: object) -> tuple[list[str], int]:
    with db.session() as s:
        page = search_audit(s, AuditFilter(**kw), limit=limit, offset=offset)  # type: ignore[arg-type]
    return [r.summary for r in page.rows], page.total


def test_the_date_range_is_inclusive_local_days(trail: Database, los_angeles: None) -> None:
    # 05:00–05:09 UTC on 2 November is the evening of 1 November in Los Angeles.
    rows, total = _search(trail, from_day=dt.date(2026, 11, 1), to_day=dt.date(2026, 11, 1))
    assert total == 10 and len(rows) == 10
    assert _search(trail, from_day=dt.date(2026, 11, 2), to_day=dt.date(2026, 11, 8))[1] == 0
    assert _search(trail, to_day=dt.date(2026, 10, 31))[1] == 0
    # 12:00 UTC on 9 November is 04:00 there: the first hours of the day count.
    assert _search(trail, from_day=dt.date(2026, 11, 9), to_day=dt.date(2026, 11, 9))[1] == 25


def test_user_area_and_search_filters_combine(trail: Database) -> None:
    assert _search(trail, actor="bob")[1] == 4
    # Payments are logged against the invoice: the area comes from the action, charges included.
    assert sorted(_search(trail, area="payments")[0]) == [
        "Charging $20.00 to Visa 4242", "Recorded payment of $10.00 by check on INV-000001",
        "Refunded $5.00 (re_1): dispute"]
    invoices = _search(trail, area="invoices")[0]
    assert "Voided INV-000002: 100% wrong" in invoices and "Issued credit note CN-000001" in invoices
    assert not any("Charging" in s or "Recorded payment" in s for s in invoices)
    assert _search(trail, area="settings")[0] == ["Updated company profile", "Late fees: No late fees."]
    assert _search(trail, area="other")[0] == ["Month-end run 2026-11 started"]
    assert sum(_search(trail, area=a.key)[1] for a in AREAS) == _search(trail)[1]  # each entry in one area
    # Words in the summary, any case; % and _ are plain characters.
    assert _search(trail, text="café zürich")[0] == ["Created client Café Zürich"]
    assert _search(trail, text="100%")[0] == ["Voided INV-000002: 100% wrong"]
    assert _search(trail, text="INV_0")[1] == 0
    # Everything together.
    assert _search(trail, actor="jane", area="payments", text="visa", from_day=dt.date(2026, 11, 1),
                   to_day=dt.date(2026, 11, 2))[0] == ["Charging $20.00 to Visa 4242"]
    assert _search(trail, actor="bob", area="payments")[1] == 0


def test_newest_first_in_pages_with_the_total(trail: Database) -> None:
    with trail.session() as s:
        first = search_audit(s, AuditFilter(), limit=10)
        third = search_audit(s, AuditFilter(), limit=10, offset=30)
        everything = list(iter_audit(s, AuditFilter(), chunk=4))
    assert first.total == 35 and len(first.rows) == 10
    assert first.rows[0].summary == "E-mailed INV-000025" and first.range_text == "Showing 1–10 of 35"
    assert [r.summary for r in third.rows][-1] == "Recorded payment of $10.00 by check on INV-000001"
    assert third.range_text == "Showing 31–35 of 35"
    keys = [(r.at, r.id) for r in everything]
    assert len(everything) == 35 and keys == sorted(keys, reverse=True)


def test_items_name_what_each_entry_is_about(trail: Database) -> None:
    with trail.session() as s:
        rows = {r.action: r for r in search_audit(s, AuditFilter()).rows}
    assert rows["company.updated"].item == "Company profile"
    assert rows["batch.started"].item == "Batch run #7"           # the run is not in this database
    assert rows["invoice.voided"].item_exists is False            # no such invoice here


def test_a_bad_filter_says_what_is_wrong(trail: Database) -> None:
    with trail.session() as s, pytest.raises(ValidationError) as caught:
        search_audit(s, AuditFilter(from_day=dt.date(2026, 11, 5), to_day=dt.date(2026, 11, 1), area="stuff"))
    assert [i.field for i in caught.value.issues] == ["to_day", "area"]


# --- reading the details -----------------------------------------------------------------

def test_details_read_as_field_old_new() -> None:
    lines = describe_details({
        "changes": {"legal_name": ["Cascade Dental", "Cascade Dental Group"], "autopay": [False, True],
                    "autopay_cap_cents": [None, 50000], "notes": ["", "Calls\nfirst"],
                    "lines": [[{"description": "Seats", "quantity": "10", "unit_price_cents": 4500, "taxable": True}],
                              [{"description": "Seats", "quantity": "12", "unit_price_cents": 4500, "taxable": True},
                               {"description": "Backup", "quantity": "1", "unit_price_cents": 900,
                                "taxable": False}]]},
        "effective_from": "2026-11-15", "payment_id": 7})
    assert lines == [
        "Name: Cascade Dental → Cascade Dental Group",
        "Autopay: no → yes",
        "Autopay cap: (none) → 500.00",
        "Notes: (none) → Calls first",
        "Lines:",
        "  − Seats × 10 @ 45.00",
        "  + Seats × 12 @ 45.00",
        "  + Backup × 1 @ 9.00 (not taxable)",
        "Effective from: 2026-11-15",
        "Payment id: 7",
    ]
    assert describe_details(None) == [] and describe_details({"lines": []}) == ["Lines: (none)"]


def test_every_known_action_has_a_label_and_one_area() -> None:
    assert area_of("payment.recorded").key == "payments" and area_of("invoice.charge_not_made").key == "payments"
    assert area_of("invoice.issued").key == "invoices" and area_of("company.updated").key == "settings"
    assert area_of("outbox.discarded").key == "other" and area_of("whatever").key == "other"
    assert audit.action_label("invoice.uncollectible") == "Written off"
    assert audit.action_label("client.something_new") == "Something new"


# --- CSV ----------------------------------------------------------------------------------

def _row(summary: str, actor: str = "jane", details: dict | None = None) -> AuditRow:
    return AuditRow(1, dt.datetime(2026, 11, 21, 15, 4, 5, tzinfo=UTC), actor, "client.updated", "client", 3,
                    "=cmd|' /C calc'!A0", True, summary, details)


def test_csv_is_formula_safe_utf8_with_bom() -> None:
    data = audit_csv([_row('=HYPERLINK("http://evil.example","Click")', actor="@admin",
                           details={"changes": {"legal_name": ["Bäckerei Müller", "-Ölwerk"]}})])
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == ["When", "Who", "Area", "Action", "Item", "Summary", "Details"]
    when, who, area, action, item, summary, details = rows[1]
    assert dt.datetime.fromisoformat(when) == dt.datetime(2026, 11, 21, 15, 4, 5, tzinfo=UTC)
    assert dt.datetime.fromisoformat(when).utcoffset() is not None  # local time with its offset
    assert (who, area, action) == ("'@admin", "Clients", "Client changed")
    assert item == "'=cmd|' /C calc'!A0"
    assert summary == '\'=HYPERLINK("http://evil.example","Click")'
    assert details == "Name: Bäckerei Müller → -Ölwerk"


def test_export_writes_every_matching_entry_not_only_a_page(trail: Database, tmp_path: Path) -> None:
    target = tmp_path / "trail.csv"
    with trail.session() as s:
        count = export_audit_csv(s, AuditFilter(actor="carol"), target)
    rows = list(csv.reader(io.StringIO(target.read_text(encoding="utf-8-sig"))))
    assert count == 25 and len(rows) == 26 and rows[1][5] == "E-mailed INV-000025"
    assert [p.name for p in tmp_path.iterdir()] == ["trail.csv"]  # no temporary file left behind


# --- coverage: the real service calls leave entries by the OS user ----------------------------

@pytest.fixture
def office(db: Database, monkeypatch: pytest.MonkeyPatch) -> Database:
    monkeypatch.setattr(getpass, "getuser", lambda: OS_USER)
    setup_office(db)
    return db


def _last(db: Database, action: str | None = None) -> AuditEntry:
    with db.session() as s:
        stmt = select(AuditEntry).order_by(AuditEntry.id.desc())
        if action:
            stmt = stmt.where(AuditEntry.action == action)
        entry = s.scalars(stmt.limit(1)).first()
        assert entry is not None, f"no {action} entry"
        s.expunge(entry)
        return entry


def _issued_invoice(db: Database, amount: str = "200.00") -> tuple[int, int]:
    cid = make_client(db, "Cascade Dental")
    inv_id = one_time(db, cid, ("Firewall", "1", amount))
    issue_ids(db, [inv_id], dt.date(2026, 11, 2))
    return cid, inv_id


def test_company_settings_change_records_the_diff_once(office: Database) -> None:
    from mspbill.company import company_snapshot, save_company

    with office.write_session() as s, s.begin():
        snapshot = company_snapshot(s)
        assert snapshot is not None
        draft = snapshot.draft
        draft.invoice_number_pattern, draft.phone = "ACME-{n:05d}", "+1 503 555 0100"
        save_company(s, draft)
    entry = _last(office)
    assert (entry.actor, entry.action, entry.entity_type) == (OS_USER, "company.updated", "company")
    assert entry.details == {"changes": {"invoice_number_pattern": ["INV-{n:06d}", "ACME-{n:05d}"],
                                         "phone": ["", "+1 503 555 0100"]}}
    assert "invoice_number_pattern" in entry.summary
    with office.write_session() as s, s.begin():  # saved again unchanged: nothing to record
        snapshot = company_snapshot(s)
        assert snapshot is not None
        save_company(s, snapshot.draft)
    assert _last(office).id == entry.id


def test_collections_settings_record_what_changed(office: Database) -> None:
    from mspbill.collections.settings import (
        LateFeeDraft,
        StepDraft,
        collection_policy,
        save_late_fees,
        save_reminders,
    )

    with office.write_session() as s, s.begin():
        save_late_fees(s, LateFeeDraft(enabled=True, kind="percent", percent="1.5", after_days="20"))
    fees = _last(office)
    assert (fees.actor, fees.action) == (OS_USER, "settings.late_fees")
    assert fees.details is not None and fees.details["changes"]["enabled"] == [False, True]
    assert fees.details["changes"]["kind"] == ["flat", "percent"]
    assert fees.details["changes"]["after_days"] == [30, 20]
    assert "1.5 %" in fees.summary

    with office.session() as s:
        steps = collection_policy(s).steps
    drafts = [StepDraft(str(st.offset_days), st.subject, st.body) for st in steps]
    drafts[0] = StepDraft("-5", drafts[0].subject, drafts[0].body)   # a step moves
    drafts[1] = StepDraft(drafts[1].offset_days, drafts[1].subject, "Please pay {number}.")  # reworded
    with office.write_session() as s, s.begin():
        save_reminders(s, False, drafts)
    entry = _last(office)
    assert (entry.actor, entry.action) == (OS_USER, "settings.reminders")
    changes = entry.details["changes"]  # type: ignore[index]
    assert changes["reminders"] == [True, False]
    old_steps, new_steps = changes["steps"]
    assert old_steps[0].startswith("3 days before") and new_steps[0].startswith("5 days before")
    assert changes["messages"][1].startswith("changed: ")
    assert "Reminders off" in entry.summary


def test_batch_settings_record_the_diff(office: Database) -> None:
    from mspbill.batch.settings import save_batch_settings

    with office.write_session() as s, s.begin():
        save_batch_settings(s, "2, 4", 25, 100, 20)
    entry = _last(office)
    assert (entry.actor, entry.action) == (OS_USER, "settings.batch")
    assert entry.details == {"changes": {"retry_days": ["3, 5, 7", "2, 4"], "rate_margin_percent": [10, 20]}}


def test_void_records_the_status_change_and_reason(office: Database) -> None:
    from mspbill.invoicing import void_invoice

    _, inv_id = _issued_invoice(office)
    with office.write_session() as s, s.begin():
        void_invoice(s, inv_id, "Billed the wrong client")
    entry = _last(office)
    assert (entry.actor, entry.action, entry.entity_id) == (OS_USER, "invoice.voided", inv_id)
    assert entry.details == {"changes": {"status": ["open", "void"]}, "reason": "Billed the wrong client"}
    assert entry.summary.startswith("Voided INV-000001 (was open)")
    with office.session() as s:
        [row] = search_audit(s, AuditFilter(area="invoices", text="voided")).rows
    assert row.item == "INV-000001" and row.item_exists and row.details_lines[0] == "Status: open → void"


def test_credit_note_and_write_off(office: Database) -> None:
    from mspbill.invoicing import create_credit_note, mark_uncollectible

    _, inv_id = _issued_invoice(office)
    with office.write_session() as s, s.begin():
        note_id = create_credit_note(s, inv_id, "Goodwill", amount="50").id
    note, credited = _last(office, "credit_note.issued"), _last(office, "invoice.credited")
    assert (note.actor, note.entity_id, credited.entity_id) == (OS_USER, note_id, inv_id)
    assert note.details is not None and note.details["credit_note"] == "CN-000001"
    assert note.details["off_the_balance"] == "$50.00" and "Goodwill" in note.summary
    with office.write_session() as s, s.begin():
        mark_uncollectible(s, inv_id, "Client went out of business")
    entry = _last(office)
    assert (entry.actor, entry.action) == (OS_USER, "invoice.uncollectible")
    assert entry.details is not None and entry.details["changes"] == {"status": ["open", "uncollectible"]}
    assert entry.details["balance"] == "$150.00"


def test_edited_draft_records_the_changed_lines(office: Database) -> None:
    from mspbill.invoicing import ItemDraft, OneTimeDraft, update_one_time_invoice

    cid = make_client(office, "Cascade Dental")
    inv_id = one_time(office, cid, ("Firewall", "1", "200.00"))
    with office.write_session() as s, s.begin():
        update_one_time_invoice(s, inv_id, OneTimeDraft(cid, "Server upgrade", "", [ItemDraft("Firewall", "2", "200")]))
    entry = _last(office)
    assert (entry.actor, entry.action) == (OS_USER, "invoice.updated")
    assert entry.details == {"changes": {"lines": [["Firewall × 1 @ $200.00"], ["Firewall × 2 @ $200.00"]],
                                         "total": ["$200.00", "$400.00"]}}


def test_hand_payment_with_overpayment_credit(office: Database) -> None:
    from mspbill.payments.manual import record_payment

    _, inv_id = _issued_invoice(office)
    with office.write_session() as s, s.begin():
        pid = record_payment(s, inv_id, "250", "check", reference="1042", received_on="2026-11-10",
                             credit_excess=True, today=dt.date(2026, 11, 21)).id
    entry = _last(office)
    assert (entry.actor, entry.action, entry.entity_type) == (OS_USER, "payment.recorded", "invoice")
    assert entry.details == {"payment_id": pid}
    assert "$50.00 kept as client credit" in entry.summary and "now paid in full" in entry.summary
    with office.session() as s:
        assert search_audit(s, AuditFilter(area="payments")).total == 1


def test_generated_and_issued_in_bulk_carry_the_os_user(office: Database) -> None:
    cid = make_client(office, "Cascade Dental")
    aid = make_agreement(office, cid, "2026-11-01", [LineDraft("Seats", "3", "45.00")])
    generate(office, Month(2026, 11))
    issue(office, Month(2026, 11))
    with office.write_session() as s, s.begin():
        archive_agreement(s, aid)
        restore_agreement(s, aid)
    with office.session() as s:
        entries = list(s.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    assert {e.actor for e in entries} == {OS_USER}
    assert [e.action for e in entries][-4:] == ["invoice.generated", "invoice.issued", "agreement.archived",
                                                "agreement.restored"]
    assert "for Cascade Dental" in next(e.summary for e in entries if e.action == "agreement.created")


def test_settings_entries_hold_no_secret(office: Database) -> None:
    from mspbill.mail.settings import MailSettingsDraft, save_mail_settings
    from mspbill.payments.processor import PaymentSettingsDraft, save_settings

    with office.write_session() as s, s.begin():
        save_mail_settings(s, MailSettingsDraft(host="smtp.example.com", username="office@example.com",
                                                from_address="office@example.com"))
        save_settings(s, PaymentSettingsDraft("sandbox"))
    with office.session() as s:
        entries = list(s.scalars(select(AuditEntry).where(AuditEntry.action.in_(["settings.mail",
                                                                                  "settings.payments"]))))
        assert s.get(CompanyProfile, 1) is not None
    assert len(entries) == 2
    for e in entries:
        assert e.actor == OS_USER
        text = repr(e.details).lower() + e.summary.lower()
        assert not any(word in text for word in ("password", "secret", "api_key", "sk_test", "sk_live"))


# --- card and bank charges, refunds (the sandbox processor) ---------------------------------

@pytest.fixture
def sandbox_office(office: Database, tmp_path: Path):  # type: ignore[no-untyped-def]
    from mspbill.payments.processor import PaymentSettingsDraft, save_settings
    from mspbill.payments.sandbox import SandboxGateway

    class Clock:
        now = dt.datetime.now(UTC).replace(microsecond=0)

        def __call__(self) -> dt.datetime:
            return self.now

    clock = Clock()
    with office.write_session() as s, s.begin():
        save_settings(s, PaymentSettingsDraft("sandbox"))
    return office, SandboxGateway(tmp_path / "sandbox.sqlite3", clock=clock), clock


def _autopay_invoice(db: Database, sandbox, token: str) -> int:  # type: ignore[no-untyped-def]
    from mspbill.db.models import SetupLink
    from mspbill.payments import methods

    cid = make_client(db, "Cascade Dental", autopay=True)
    link = methods.create_setup_link(db, sandbox, cid)
    with db.session() as s:
        session_id = s.get(SetupLink, link.link_id).session_id  # type: ignore[union-attr]
    sandbox.complete_setup_session(session_id, token)
    methods.poll_setup_links(db, sandbox)
    inv_id = one_time(db, cid, ("Project", "1", "100.00"))
    issue_ids(db, [inv_id], dt.date.today())
    return inv_id


def test_card_charge_and_refund_are_payments(sandbox_office) -> None:  # type: ignore[no-untyped-def]
    from mspbill.payments import charges, refunds

    db, sandbox, _clock = sandbox_office
    inv_id = _autopay_invoice(db, sandbox, "pm_card_visa")
    outcome = charges.charge_invoice(db, sandbox, inv_id)
    charged = _last(db, "payment.charged")
    assert outcome.payment_id is not None
    assert (charged.actor, charged.entity_id) == (OS_USER, inv_id)
    assert charged.details is not None and charged.details["payment_id"] == outcome.payment_id
    refunds.refund_payment(db, sandbox, outcome.payment_id, amount="30", reason="Dispute", credit_note=False)
    refunded = _last(db, "payment.refunded")
    assert refunded.actor == OS_USER and "Refunded $30.00" in refunded.summary
    with db.session() as s:
        actions = [r.action for r in search_audit(s, AuditFilter(area="payments")).rows]
    assert actions == ["payment.refunded", "payment.refund_started", "payment.charged", "invoice.charge_started"]


def test_a_bank_debit_that_clears_is_recorded_as_settled(sandbox_office) -> None:  # type: ignore[no-untyped-def]
    from mspbill.payments import charges

    db, sandbox, clock = sandbox_office
    inv_id = _autopay_invoice(db, sandbox, "pm_usBankAccount_success")
    charges.charge_invoice(db, sandbox, inv_id)
    assert _last(db).action == "payment.processing"
    clock.now += dt.timedelta(days=4, minutes=1)
    charges.sync_charges(db, sandbox, now=clock.now)
    entry = _last(db)
    assert (entry.actor, entry.action) == (OS_USER, "payment.settled")
    assert entry.summary.startswith("Bank debit settled: charged $100.00") and "now paid in full" in entry.summary
    assert audit.action_label(entry.action) == "Bank debit settled" and area_of(entry.action).key == "payments"
