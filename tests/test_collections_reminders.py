"""Payment reminders (mspbill.collections.reminders) on a real SQLite file: each step of the
schedule queued once per invoice however often the pass runs (twice a day, in two threads at
once), only the latest step after a gap, none on the issue day, autopay clients only after a
failed charge (sandbox processor), paused clients, clients without e-mail, mail not set up,
a reminder withdrawn when the invoice is paid before it goes, and one sent through aiosmtpd
with its text filled in and the invoice PDF attached.

Every pass is given its day explicitly; invoices are issued on ISSUED (2026-03-02)."""

from __future__ import annotations

import datetime as dt
import io
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from billing_helpers import d, issue_ids, make_client, one_time, setup_office
from pypdf import PdfReader
from smtp_server import SmtpTestServer
from sqlalchemy import select

from mspbill import audit
from mspbill.collections.reminders import (
    invoice_reminders,
    plan_reminders,
    queue_reminders,
    set_reminders_paused,
)
from mspbill.collections.run import CollectionsReport, run_collections
from mspbill.collections.settings import (
    DEFAULT_STEPS,
    StepDraft,
    collection_policy,
    save_reminders,
    validate_steps,
)
from mspbill.db.engine import Database
from mspbill.db.models import InvoiceReminder, OutboxMessage
from mspbill.mail import MailSettingsDraft, save_mail_settings, send_outbox
from mspbill.mail.outbox import KIND_REMINDER
from mspbill.payments import charges
from mspbill.payments.gateway import ProcessorMode
from mspbill.payments.manual import record_payment
from mspbill.payments.methods import ensure_customer, store_method
from mspbill.payments.processor import PaymentSettingsDraft, save_settings
from mspbill.payments.sandbox import SandboxGateway
from mspbill.validation import ValidationError

ISSUED = d("2026-03-02")
DUE = d("2026-04-01")          # ISSUED + 30 days (the clients' default terms)
ALL_STEPS = [-3, 0, 7, 14, 30]


# --- building the office -------------------------------------------------------------------


def configure_mail(db: Database, port: int = 2525) -> None:
    with db.write_session() as s, s.begin():
        save_mail_settings(s, MailSettingsDraft(host="127.0.0.1", port=str(port), security="none",
                                                from_address="billing@acme.example"))


def pay_by_invoice(db: Database, name: str = "Cascade Dental", amount: str = "1234.57", *, terms: str = "30",
                   issued: dt.date = ISSUED, **fields: object) -> tuple[int, int]:
    """A client who pays by invoice and one open invoice of `amount` (untaxed); (client id, invoice id)."""
    fields.setdefault("billing_emails", f"ap@{name.split()[0].lower()}.example")
    client_id = make_client(db, name, payment_terms_days=terms, **fields)
    invoice_id = open_invoice(db, client_id, amount, issued)
    return client_id, invoice_id


def open_invoice(db: Database, client_id: int, amount: str = "1234.57", issued: dt.date = ISSUED) -> int:
    invoice_id = one_time(db, client_id, ("Server upgrade", "1", amount, False))
    issue_ids(db, [invoice_id], issued)
    return invoice_id


@pytest.fixture
def office(db: Database) -> Database:
    """A company with mail set up (a server that is never reached: these tests look at the outbox)."""
    setup_office(db, name="Acme IT", payment_instructions="Wire to First Bank, account 12345")
    configure_mail(db)
    return db


def run(db: Database, day: dt.date) -> CollectionsReport:
    return run_collections(db, day)


def days(start: dt.date, end: dt.date) -> Iterator[dt.date]:
    day = start
    while day <= end:
        yield day
        day += dt.timedelta(days=1)


# --- reading what happened -----------------------------------------------------------------


def steps_taken(db: Database, invoice_id: int) -> list[int]:
    with db.session() as s:
        return sorted(s.scalars(select(InvoiceReminder.offset_days).where(InvoiceReminder.invoice_id == invoice_id)))


def reminder_records(db: Database, invoice_id: int) -> list[InvoiceReminder]:
    with db.session() as s:
        rows = list(s.scalars(select(InvoiceReminder).where(InvoiceReminder.invoice_id == invoice_id)
                              .order_by(InvoiceReminder.offset_days)))
        s.expunge_all()
        return rows


def messages_per_step(db: Database) -> Counter[tuple[int, int]]:
    """(invoice id, step) → reminder e-mails in the outbox for it."""
    with db.session() as s:
        return Counter((int(i or 0), int(o)) for i, o in s.execute(
            select(OutboxMessage.invoice_id, InvoiceReminder.offset_days)
            .join(InvoiceReminder, InvoiceReminder.outbox_id == OutboxMessage.id)
            .where(OutboxMessage.kind == KIND_REMINDER)))


def reminder_messages(db: Database, invoice_id: int | None = None) -> list[OutboxMessage]:
    with db.session() as s:
        stmt = select(OutboxMessage).where(OutboxMessage.kind == KIND_REMINDER).order_by(OutboxMessage.id)
        if invoice_id is not None:
            stmt = stmt.where(OutboxMessage.invoice_id == invoice_id)
        rows = list(s.scalars(stmt))
        s.expunge_all()
        return rows


def history_actions(db: Database, invoice_id: int) -> list[str]:
    with db.session() as s:
        return [e.action for e in audit.history(s, "invoice", invoice_id)]


# --- once per step -------------------------------------------------------------------------


def test_each_step_is_queued_once_on_its_day_even_when_the_pass_runs_twice_a_day(office: Database) -> None:
    _, invoice_id = pay_by_invoice(office)
    for day in days(ISSUED, DUE + dt.timedelta(days=45)):
        run(office, day)
        run(office, day)
    records = reminder_records(office, invoice_id)
    assert [r.offset_days for r in records] == ALL_STEPS
    # Each on the day it falls on: 3 days before the due date, on it, 7, 14 and 30 days after.
    assert [(r.step_on, r.queued_on) for r in records] == [(day, day) for day in (
        d("2026-03-29"), d("2026-04-01"), d("2026-04-08"), d("2026-04-15"), d("2026-05-01"))]
    assert messages_per_step(office) == Counter({(invoice_id, o): 1 for o in ALL_STEPS})
    assert len(reminder_messages(office)) == 5
    assert all(r.status == "queued" and r.outbox_id is not None for r in records)


def test_forty_days_twice_a_day_with_invoices_due_on_different_days(office: Database) -> None:
    # Terms → the steps whose day falls after the issue day (2 Mar) and by 11 Apr (ISSUED + 40).
    expected = {
        "0": [7, 14, 30],            # due 2 Mar, the issue day: "3 days before" and "on the day" say nothing new
        "2": [0, 7, 14, 30],         # due 4 Mar: 3 days before is 1 Mar, before it was issued
        "5": [-3, 0, 7, 14, 30],     # due 7 Mar: 4 Mar, 7 Mar, 14 Mar, 21 Mar, 6 Apr
        "30": [-3, 0, 7],            # due 1 Apr: 14 days overdue is 15 Apr, after the 40 days
        "45": [],                    # due 16 Apr: 3 days before is 13 Apr
    }
    invoices = {terms: pay_by_invoice(office, f"Terms {terms} Ltd", terms=terms)[1] for terms in expected}
    for day in days(ISSUED, ISSUED + dt.timedelta(days=40)):
        run(office, day)
        run(office, day)
    for terms, steps in expected.items():
        assert steps_taken(office, invoices[terms]) == steps, terms
    assert messages_per_step(office) == Counter(
        {(invoices[t], o): 1 for t, steps in expected.items() for o in steps})
    assert len(reminder_messages(office)) == sum(len(s) for s in expected.values()) == 15


def test_two_passes_at_the_same_moment_never_queue_a_step_twice(office: Database) -> None:
    invoice_ids = [pay_by_invoice(office, f"Client {n:02d}", f"{100 + n}.00")[1] for n in range(30)]
    start = threading.Barrier(2)
    reports: list[CollectionsReport] = []
    errors: list[BaseException] = []

    def pass_for(day: dt.date) -> None:
        try:
            start.wait()
            reports.append(run_collections(office, day))
        except BaseException as exc:  # noqa: BLE001 -- reported on the test's thread
            errors.append(exc)

    for day in (DUE, DUE + dt.timedelta(days=7)):
        threads = [threading.Thread(target=pass_for, args=(day,)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        start.reset()
    assert errors == []
    # Per day, one pass queued all 30 and the other none.
    assert sorted(len(r.reminders.queued) for r in reports) == [0, 0, 30, 30]
    assert messages_per_step(office) == Counter({(i, o): 1 for i in invoice_ids for o in (0, 7)})
    assert len(reminder_messages(office)) == 60


# --- which step ----------------------------------------------------------------------------


def test_after_twenty_days_closed_only_the_latest_step_due_is_sent(office: Database) -> None:
    _, invoice_id = pay_by_invoice(office)
    run(office, DUE - dt.timedelta(days=3))
    assert steps_taken(office, invoice_id) == [-3]
    # Closed for 20 days: "on the due date" and "7 days overdue" fell meanwhile; only the 14-day one goes.
    report = run(office, DUE + dt.timedelta(days=17))
    assert [(q.step.offset_days, q.step_on) for q in report.reminders.queued] == [(14, DUE + dt.timedelta(days=14))]
    assert steps_taken(office, invoice_id) == [-3, 14]
    # The missed steps are not sent late on the following days either.
    for day in days(DUE + dt.timedelta(days=18), DUE + dt.timedelta(days=29)):
        assert run(office, day).reminders.queued == []
    assert steps_taken(office, invoice_id) == [-3, 14]
    run(office, DUE + dt.timedelta(days=30))
    assert steps_taken(office, invoice_id) == [-3, 14, 30]
    assert len(reminder_messages(office, invoice_id)) == 3
    with office.session() as s:
        rows = {r.offset_days: r for r in invoice_reminders(s, invoice_id, DUE + dt.timedelta(days=31)).rows}
    assert {o: rows[o].status for o in ALL_STEPS} == {-3: "queued", 0: "skipped", 7: "skipped", 14: "queued",
                                                      30: "queued"}


def test_no_reminder_on_or_before_the_issue_day(office: Database) -> None:
    _, due_on_issue = pay_by_invoice(office, "Due On Receipt Inc", terms="0")
    _, three_days = pay_by_invoice(office, "Three Day Terms Co", terms="3")
    for day in days(ISSUED - dt.timedelta(days=5), ISSUED):
        run(office, day)
    assert steps_taken(office, due_on_issue) == [] and steps_taken(office, three_days) == []
    # "3 days before due" of the 3-day invoice falls on the issue day: never sent; the due day is.
    for day in days(ISSUED + dt.timedelta(days=1), ISSUED + dt.timedelta(days=6)):
        run(office, day)
    assert steps_taken(office, three_days) == [0]
    assert steps_taken(office, due_on_issue) == []
    run(office, ISSUED + dt.timedelta(days=7))
    assert steps_taken(office, due_on_issue) == [7]


@pytest.mark.parametrize("first_run", [DUE, DUE + dt.timedelta(days=1), DUE + dt.timedelta(days=6)])
def test_the_step_before_due_is_not_sent_once_the_due_date_has_come(office: Database, first_run: dt.date) -> None:
    _, invoice_id = pay_by_invoice(office)
    report = run(office, first_run)
    assert [q.step.offset_days for q in report.reminders.queued] == [0]
    for day in days(first_run, DUE + dt.timedelta(days=6)):
        run(office, day)
    assert steps_taken(office, invoice_id) == [0]


# --- autopay clients -----------------------------------------------------------------------


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SandboxGateway]:
    gateway = SandboxGateway(tmp_path / "sandbox-processor.sqlite3")
    yield gateway
    gateway.close()


def autopay_client(db: Database, sandbox: SandboxGateway, name: str, token: str | None) -> int:
    client_id = make_client(db, name, billing_emails=f"ap@{name.split()[0].lower()}.example", autopay=True)
    if token is not None:
        customer_id = ensure_customer(db, sandbox, client_id)
        facts = sandbox.attach_test_method(customer_id, token)
        with db.write_session() as s, s.begin():
            store_method(s, client_id, ProcessorMode.SANDBOX, facts, customer_id, "test", make_default=True)
    return client_id


def charge(db: Database, sandbox: SandboxGateway, invoice_id: int, day: dt.date) -> charges.ChargeOutcome:
    """A charge made on `day` (the attempt and its answer dated that day)."""
    when = dt.datetime.combine(day, dt.time(10, 0)).astimezone(dt.UTC)
    attempt_id, request = charges.start_attempt(db, sandbox, invoice_id, today=day, now=when)
    return charges.record_result(db, attempt_id, sandbox.charge(request), now=when)


def test_autopay_clients_get_reminders_only_when_their_charge_failed(office: Database,
                                                                     sandbox: SandboxGateway) -> None:
    with office.write_session() as s, s.begin():
        save_settings(s, PaymentSettingsDraft("sandbox"))
    invoices: dict[str, int] = {}
    for key, token in (("ready", "pm_card_visa"), ("soft", "pm_card_visa_chargeDeclinedInsufficientFunds"),
                       ("exhausted", "pm_card_visa_chargeDeclinedInsufficientFunds"),
                       ("hard", "pm_card_visa_chargeDeclinedLostCard"), ("ach", "pm_usBankAccount_success")):
        client_id = autopay_client(office, sandbox, f"{key.title()} Autopay Co", token)
        invoices[key] = open_invoice(office, client_id, "250.00")
    _, invoices["by_invoice"] = pay_by_invoice(office, "Pays By Check", "250.00", terms="7")

    assert charge(office, sandbox, invoices["soft"], ISSUED).status.value == "declined"
    for n in range(4):   # the first charge and every retry of the schedule, all declined
        assert charge(office, sandbox, invoices["exhausted"], ISSUED + dt.timedelta(days=n)).status.value == "declined"
    hard = charge(office, sandbox, invoices["hard"], ISSUED)
    assert hard.status.value == "declined" and hard.hard_decline
    assert charge(office, sandbox, invoices["ach"], ISSUED).status.value == "processing"

    # Autopay invoices are due on issue: the first step after the issue day is "7 days overdue".
    day = ISSUED + dt.timedelta(days=7)
    with office.session() as s:
        plan = plan_reminders(s, day)
    assert {r.candidate.invoice_id for r in plan.due} == {invoices["hard"], invoices["exhausted"],
                                                         invoices["by_invoice"]}
    assert plan.skipped == []   # those left alone are not "reminders not sent"
    report = run(office, day)
    assert sorted(q.candidate.invoice_id for q in report.reminders.queued) == sorted(
        [invoices["hard"], invoices["exhausted"], invoices["by_invoice"]])
    for key in ("ready", "soft", "ach"):
        assert steps_taken(office, invoices[key]) == [], key
    assert steps_taken(office, invoices["hard"]) == [7]
    assert steps_taken(office, invoices["by_invoice"]) == [0]    # due on day 7: "on the due date"

    with office.session() as s:
        summaries = {k: invoice_reminders(s, i, day).summary for k, i in invoices.items()}
    assert summaries["ready"] == "No reminders: on autopay; the charge has not failed."
    assert summaries["soft"] == "No reminders: on autopay; the month-end batch tries the charge again."
    assert summaries["ach"] == "No reminders: a charge is in progress or its outcome is not known yet."
    assert summaries["hard"] == summaries["by_invoice"] == "Reminders follow the office's schedule."


# --- paused, no e-mail, mail not set up ----------------------------------------------------


def test_a_paused_client_is_skipped_and_after_resuming_gets_only_the_latest_step(office: Database) -> None:
    client_id, invoice_id = pay_by_invoice(office)
    with office.write_session() as s, s.begin():
        set_reminders_paused(s, client_id, True, "Talking to their accountant")
    for day in days(DUE - dt.timedelta(days=4), DUE + dt.timedelta(days=9)):
        report = run(office, day)
        if day >= DUE - dt.timedelta(days=3):
            assert [(sk.candidate.invoice_id, sk.reason) for sk in report.reminders.skipped] == [
                (invoice_id, "reminders are paused for this client")]
            assert any("Not sent:" in line and "paused" in line for line in report.lines())
    assert steps_taken(office, invoice_id) == [] and reminder_messages(office) == []
    with office.session() as s:
        assert invoice_reminders(s, invoice_id, DUE).summary == (
            "Reminders are paused for Cascade Dental (Talking to their accountant).")
    with office.write_session() as s, s.begin():
        set_reminders_paused(s, client_id, False)
    report = run(office, DUE + dt.timedelta(days=10))
    assert [q.step.offset_days for q in report.reminders.queued] == [7]
    assert steps_taken(office, invoice_id) == [7]
    assert "client.reminders_resumed" in [e.action for e in _client_history(office, client_id)]


def _client_history(db: Database, client_id: int) -> list:
    with db.session() as s:
        return audit.history(s, "client", client_id)


def test_pausing_withdraws_the_reminders_waiting_in_the_outbox(office: Database) -> None:
    client_id, invoice_id = pay_by_invoice(office)
    run(office, DUE)
    assert len(reminder_messages(office, invoice_id)) == 1
    with office.write_session() as s, s.begin():
        set_reminders_paused(s, client_id, True)
    assert reminder_messages(office, invoice_id) == []
    [record] = reminder_records(office, invoice_id)
    assert (record.status, record.outbox_id) == ("withdrawn", None)


def test_a_client_without_an_email_address_is_skipped_with_the_reason(office: Database) -> None:
    _, invoice_id = pay_by_invoice(office, "Paper Only Partners", billing_emails="")
    report = run(office, DUE)
    assert [(sk.candidate.invoice_id, sk.reason) for sk in report.reminders.skipped] == [
        (invoice_id, "the client has no billing e-mail address")]
    assert report.reminders.queued == [] and steps_taken(office, invoice_id) == []


def test_without_mail_nothing_is_queued_or_recorded_so_it_goes_once_mail_is_set_up(db: Database) -> None:
    setup_office(db)
    _, invoice_id = pay_by_invoice(db)
    report = run(db, DUE)
    assert report.reminders.not_configured and report.reminders.queued == []
    assert [sk.candidate.invoice_id for sk in report.reminders.skipped] == [invoice_id]
    assert report.lines()[0] == "E-mail is not set up, so no reminder was queued (1 waiting)."
    assert steps_taken(db, invoice_id) == [] and reminder_messages(db) == []
    configure_mail(db)
    report = run(db, DUE)
    assert [q.candidate.invoice_id for q in report.reminders.queued] == [invoice_id]
    assert steps_taken(db, invoice_id) == [0]
    run(db, DUE)
    assert len(reminder_messages(db, invoice_id)) == 1


def test_reminders_off_queue_nothing(office: Database) -> None:
    _, invoice_id = pay_by_invoice(office)
    with office.write_session() as s, s.begin():
        steps = collection_policy(s).steps
        save_reminders(s, False, [StepDraft(st.offset_days, st.subject, st.body) for st in steps])
    report = run(office, DUE)
    assert report.lines() == ["Reminders are off (Settings → Collections)."]
    assert steps_taken(office, invoice_id) == []


# --- through the outbox --------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as srv:
        yield srv


def test_a_reminder_for_an_invoice_paid_before_it_goes_is_withdrawn(db: Database, server: SmtpTestServer) -> None:
    setup_office(db)
    configure_mail(db, server.port)
    _, invoice_id = pay_by_invoice(db)
    report = run(db, DUE + dt.timedelta(days=7))
    assert [q.step.offset_days for q in report.reminders.queued] == [7]
    assert len(reminder_messages(db, invoice_id)) == 1
    with db.write_session() as s, s.begin():
        record_payment(s, invoice_id, "1234.57", "check", received_on=DUE + dt.timedelta(days=7),
                       today=DUE + dt.timedelta(days=7))
    sent = send_outbox(db, None)
    assert server.received == []
    assert sent.sent == 0
    [record] = reminder_records(db, invoice_id)
    assert (record.status, record.outbox_id) == ("withdrawn", None)
    assert reminder_messages(db) == []
    assert "invoice.reminder_withdrawn" in history_actions(db, invoice_id)
    with db.session() as s:
        [row] = invoice_reminders(s, invoice_id, DUE + dt.timedelta(days=8)).rows
    assert (row.status, row.offset_days) == ("withdrawn", 7)


def test_a_reminder_arrives_with_its_text_filled_in_and_the_invoice_attached(db: Database,
                                                                            server: SmtpTestServer) -> None:
    setup_office(db, name="Acme IT", payment_instructions="Wire to First Bank, account 12345")
    configure_mail(db, server.port)
    _, invoice_id = pay_by_invoice(db, "Cascade Dental", "1234.57",
                                   billing_emails="ap@cascade.example, owner@cascade.example")
    run(db, DUE + dt.timedelta(days=7))
    report = send_outbox(db, None)
    assert report.sent == 1
    [got] = server.received
    assert sorted(got.rcpt_tos) == ["ap@cascade.example", "owner@cascade.example"]
    msg = got.message
    assert msg["Subject"] == "Overdue: invoice INV-000001 ($1,234.57)"
    assert msg["To"] == "ap@cascade.example" and msg["Cc"] == "owner@cascade.example"
    plain = msg.get_body(preferencelist=("plain",))
    assert plain is not None
    body = plain.get_content().replace("\r\n", "\n")
    assert body.startswith("Dear Cascade Dental,\n\nInvoice INV-000001 was due on 1 Apr 2026 and is now "
                           "7 days overdue. The balance is $1,234.57.")
    assert "Wire to First Bank, account 12345" in body
    assert body.rstrip().endswith("If you have already paid, thank you, and please ignore this reminder.\n\nAcme IT")
    assert "{" not in body and "}" not in msg["Subject"]
    [pdf] = [part for part in msg.iter_attachments() if part.get_content_type() == "application/pdf"]
    assert pdf.get_filename() == "INV-000001 Cascade Dental.pdf"   # as the invoice e-mail names it
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.get_content())).pages)
    assert "INV-000001" in text and "1,234.57" in text
    [record] = reminder_records(db, invoice_id)
    assert record.status == "queued" and record.sent_to == "ap@cascade.example, owner@cascade.example"
    with db.session() as s:
        rows = {r.offset_days: r for r in invoice_reminders(s, invoice_id, DUE + dt.timedelta(days=8)).rows}
    assert {o: r.status for o, r in rows.items()} == {-3: "skipped", 0: "skipped", 7: "sent", 14: "upcoming",
                                                      30: "upcoming"}
    row = rows[7]
    assert row.label == "7 days overdue" and rows[14].detail == "Due 15 Apr 2026"
    assert row.detail.startswith("Sent ") and row.detail.endswith("to ap@cascade.example, owner@cascade.example")
    # The invoice's own e-mail status is not a reminder's.
    assert "invoice.reminder_queued" in history_actions(db, invoice_id)


# --- the schedule's settings ---------------------------------------------------------------


def test_template_problems_are_listed_together() -> None:
    drafts = [StepDraft(-3, "Due soon: {number}", "Dear {client}, {amount_due} is due {due_when"),
              StepDraft(7, "Overdue {invoice}", "Dear {client}, {days_overdue} days.")]
    _, issues = validate_steps(drafts)
    messages = [i.message for i in issues]
    assert len(issues) == 2 and {i.field for i in issues} == {"steps[1].body", "steps[2].subject"}
    assert "message of step 1 has an unbalanced brace" in messages[0]
    assert "subject of step 2 uses the unknown placeholder {invoice}" in messages[1]
    assert "{days_overdue}" in messages[1] and "{due_when}" in messages[1]   # the allowed list names them


def test_an_unknown_placeholder_and_an_unbalanced_brace_in_one_text_are_both_refused(db: Database) -> None:
    setup_office(db)
    with db.write_session() as s, s.begin(), pytest.raises(ValidationError) as caught:
        save_reminders(s, True, [StepDraft(7, "Overdue {nummer}", "Dear {client}, {amount} due } now"),
                                 StepDraft(14, "Second {number", "Dear {client}")])
    fields = sorted(i.field for i in caught.value.issues)
    assert fields == ["steps[1].body", "steps[1].subject", "steps[2].subject"]
    with db.session() as s:   # nothing was saved
        assert [st.offset_days for st in collection_policy(s).steps] == [o for o, _, _ in DEFAULT_STEPS]


def test_two_steps_on_the_same_day_are_refused() -> None:
    _, issues = validate_steps([StepDraft(7, "A {number}", "Body"), StepDraft("7", "B {number}", "Body"),
                                StepDraft("x", "C", "Body")])
    messages = [i.message for i in issues]
    assert "Step 2 falls on the same day as step 1 (7 days overdue); each day can have one reminder." in messages
    assert any(m.startswith("Step 3: the day must be a whole number") for m in messages)


def test_a_changed_schedule_keeps_the_steps_already_taken(office: Database) -> None:
    _, invoice_id = pay_by_invoice(office)
    run(office, DUE + dt.timedelta(days=7))
    with office.write_session() as s, s.begin():
        save_reminders(s, True, [StepDraft(o, "Reminder {number}", "Dear {client}") for o in (7, 10, 21)])
    # 7 was taken already; 10 is later and goes on its day; nothing twice.
    for day in days(DUE + dt.timedelta(days=7), DUE + dt.timedelta(days=12)):
        run(office, day)
    assert steps_taken(office, invoice_id) == [7, 10]
    assert messages_per_step(office) == Counter({(invoice_id, 7): 1, (invoice_id, 10): 1})


def test_queue_reminders_alone_takes_each_step_once(office: Database) -> None:
    _, invoice_id = pay_by_invoice(office)
    for _ in range(3):
        with office.write_session() as s, s.begin():
            queue_reminders(s, DUE)
    assert steps_taken(office, invoice_id) == [0] and len(reminder_messages(office)) == 1
