"""Collections in the desktop app, on a real SQLite office (and aiosmtpd on 127.0.0.1 where
mail goes out): Settings → Collections (the schedule and its e-mails, the late-fee policy),
the Collections screen (what is due today, Run now, the reminder log, waiving a fee), the
background pass, the client's "Pause payment reminders" and the invoice window's
Reminders & late fees tab.

Every day is given explicitly: the office's invoice was issued on ISSUED and fell due on
DUE, ten days before TODAY, so its "7 days overdue" step is the one due today."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import keyring
import keyring.backends.fail
import pytest
from PySide6.QtWidgets import QMessageBox, QWidget
from smtp_server import SmtpTestServer
from sqlalchemy import select

from mspbill.agreements import LineDraft
from mspbill.collections.late_fees import list_fees
from mspbill.collections.run import run_collections
from mspbill.collections.settings import (
    LateFeeDraft,
    collection_policy,
    save_late_fees,
)
from mspbill.db.models import Client, InvoiceReminder, OutboxMessage, OutboxStatus
from mspbill.mail import MailSettingsDraft, save_mail_settings
from mspbill.mail.outbox import KIND_REMINDER
from tests.billing_helpers import (
    issue_ids,
    make_agreement,
    make_client,
    one_time,
    setup_office,
)
from tests.gui.conftest import wait_idle
from ui import collections_screen, invoice_dialog
from ui.client_dialog import ClientDialog
from ui.collections_screen import CollectionsScreen, WaiveDialog
from ui.collections_settings_form import CollectionsSettingsForm
from ui.collections_sync import CollectionsSync
from ui.email_actions import EmailRunner
from ui.invoice_dialog import InvoiceDialog

TODAY = dt.date(2026, 11, 21)
ISSUED = dt.date(2026, 10, 12)
DUE = dt.date(2026, 11, 11)       # ISSUED + 30 days: TODAY is 10 days overdue
FROM = "billing@acme-it.example"


@pytest.fixture(autouse=True)
def no_keyring(monkeypatch) -> None:
    """No secure keyring: the test mail server needs no login."""
    fail = keyring.backends.fail.Keyring()
    monkeypatch.setattr(keyring, "get_keyring", lambda: fail)


@pytest.fixture(autouse=True)
def runner_state_is_clean() -> Iterator[None]:
    yield
    assert not EmailRunner._waiting
    EmailRunner._busy = False


@pytest.fixture
def office(app_ctx) -> dict[str, int]:
    """Harbor Dental pays by invoice and owes INV-000001 (10 days overdue); it also has an
    agreement, so a late fee waits for its next invoice."""
    db = app_ctx.db
    setup_office(db, email=FROM)
    harbor = make_client(db, "Harbor Dental", billing_emails="ap@harbor.example", payment_terms_days="30")
    make_agreement(db, harbor, "2026-01-01", [LineDraft("Managed workstations", "10", "50.00")])
    invoice = one_time(db, harbor, ("Firewall appliance", "1", "1000.00", False))
    issue_ids(db, [invoice], ISSUED)
    return {"client": harbor, "invoice": invoice}


def configure_mail(ctx, port: int) -> None:
    with ctx.db.write_session() as s, s.begin():
        save_mail_settings(s, MailSettingsDraft(host="127.0.0.1", port=str(port), security="none",
                                                from_address=FROM, from_name="Acme IT"))


def turn_on_fees(ctx, after_days: int = 5) -> None:
    with ctx.db.write_session() as s, s.begin():
        save_late_fees(s, LateFeeDraft(enabled=True, kind="flat", flat_amount="25.00", after_days=after_days))


@pytest.fixture
def host(qtbot) -> QWidget:
    widget = QWidget()
    qtbot.addWidget(widget)
    widget.resize(1280, 800)
    widget.show()
    return widget


def reminder_messages(ctx) -> list[OutboxMessage]:
    with ctx.db.session() as s:
        return list(s.scalars(select(OutboxMessage).where(OutboxMessage.kind == KIND_REMINDER)))


def loaded_form(qtbot, ops, host) -> CollectionsSettingsForm:
    form = CollectionsSettingsForm(ops, host)
    form.resize(1100, 760)
    form.show()
    with qtbot.waitSignal(form.loaded, timeout=10_000):
        form.load()
    return form


def cell(table, row: int, col: int) -> str:
    item = table.item(row, col)
    return item.text() if item is not None else ""


def select_step(form: CollectionsSettingsForm, label: str) -> None:
    row = next(r for r in range(form.table.rowCount()) if cell(form.table, r, 0) == label)
    form.table.selectRow(row)
    assert form.current_step() is form.steps[row]


# --- Settings → Collections ------------------------------------------------------------------


def test_an_edited_step_is_saved_and_shows_again_after_reloading(qtbot, ops, app_ctx, office, host):
    form = loaded_form(qtbot, ops, host)
    assert form.reminders_enabled.isChecked()
    assert [form.table.item(r, 0).text() for r in range(form.table.rowCount())] == [
        "3 days before due", "On the due date", "7 days overdue", "14 days overdue", "30 days overdue"]
    select_step(form, "7 days overdue")
    form.offset.setValue(10)
    form.offset.editingFinished.emit()
    form.subject.setText("Still open: {number}, {days_overdue} days after {due_date}")
    form.body.setPlainText("Dear {client},\n\n{balance} of {number} is {due_when} overdue… pay please.\n\n{company}")
    # The preview fills the placeholders with example values, as on the step's day.
    assert form.preview_subject.text() == "Still open: INV-000123, 10 days after 1 Dec 2026"
    assert "10 days ago" in form.preview_body.toPlainText() and "Zürich Dental GmbH" in form.preview_body.toPlainText()
    assert form.table.item(2, 0).text() == "10 days overdue"
    with qtbot.waitSignal(form.saved, timeout=10_000):
        form.save_button.click()
    wait_idle(qtbot, ops)
    assert form.status.text() == "Saved." and form.summary.isHidden()

    with app_ctx.db.session() as s:
        steps = {st.offset_days: st for st in collection_policy(s).steps}
    assert sorted(steps) == [-3, 0, 10, 14, 30]
    assert steps[10].subject == "Still open: {number}, {days_overdue} days after {due_date}"
    assert steps[10].body.startswith("Dear {client},\n\n{balance} of {number}")

    again = loaded_form(qtbot, ops, host)
    select_step(again, "10 days overdue")
    assert again.subject.text() == "Still open: {number}, {days_overdue} days after {due_date}"
    assert again.offset.value() == 10


def test_an_unknown_placeholder_is_shown_and_nothing_is_saved(qtbot, ops, app_ctx, office, host):
    with app_ctx.db.session() as s:
        before = collection_policy(s)
    form = loaded_form(qtbot, ops, host)
    select_step(form, "14 days overdue")
    form.body.setPlainText("Dear {client}, please pay {amount_due}.")
    form.reminders_enabled.setChecked(False)
    # The preview says what is wrong before Save.
    assert form.preview_subject.text() == "The preview cannot be shown:"
    assert "{amount_due}" in form.preview_body.toPlainText()
    form.save_button.click()
    wait_idle(qtbot, ops)
    assert form.summary.isVisible() and form.summary.text().startswith("Nothing was saved: please correct 1 problem")
    assert form.schedule_issues.isVisible()
    assert "message of step 4 uses the unknown placeholder {amount_due}" in form.schedule_issues.text()
    assert "{days_overdue}" in form.schedule_issues.text()   # the allowed ones are listed
    assert "{amount_due}" in form.table.item(3, 1).toolTip()  # the step's row is marked
    with app_ctx.db.session() as s:
        assert collection_policy(s) == before


def test_late_fees_turned_on_without_an_amount_are_refused_with_the_reason(qtbot, ops, app_ctx, office, host):
    form = loaded_form(qtbot, ops, host)
    assert not form.fees_enabled.isChecked() and not form.flat_amount.isEnabled()
    assert form.fee_sentence.text().startswith("No late fees")
    form.fees_enabled.setChecked(True)
    form.save_button.click()
    wait_idle(qtbot, ops)
    error = form.fees_form.rows["flat_amount"].error
    assert error.isVisible() and error.text() == "Enter the flat fee (more than zero), or turn late fees off."
    assert form.summary.text().startswith("Nothing was saved")
    with app_ctx.db.session() as s:
        assert not collection_policy(s).fees.enabled

    form.kind_percent.setChecked(True)
    form.percent.setText("1.5")
    form.after_days.setValue(15)
    form.repeat_monthly.setChecked(True)
    assert form.fee_sentence.text() == ("A fee of 1.5 % of the overdue balance, 15 days after the due date, then again every "
                                        "month it stays unpaid, as a line on the client's next invoice.")
    with qtbot.waitSignal(form.saved, timeout=10_000):
        form.save_button.click()
    wait_idle(qtbot, ops)
    assert form.fees_form.rows["flat_amount"].error.isHidden()
    with app_ctx.db.session() as s:
        fees = collection_policy(s).fees
    assert fees.enabled and fees.kind.value == "percent" and str(fees.percent) in ("1.5", "1.500")
    assert fees.after_days == 15 and fees.repeat.value == "monthly"


# --- the Collections screen ----------------------------------------------------------------


def loaded_screen(qtbot, ops, host) -> CollectionsScreen:
    screen = CollectionsScreen(ops, host)
    screen.today = lambda: TODAY
    screen.resize(1100, 700)
    screen.show()
    screen.ensure_loaded()
    wait_idle(qtbot, ops)
    return screen


def test_due_today_lists_the_reminder_and_run_now_queues_and_sends_it(qtbot, ops, app_ctx, office, host):
    with SmtpTestServer() as server:
        configure_mail(app_ctx, server.port)
        screen = loaded_screen(qtbot, ops, host)
        assert screen.reminder_model.rowCount() == 1
        due = screen.reminder_model.row_at(0)
        assert (due.candidate.number, due.due.step.label, due.days_overdue) == ("INV-000001", "7 days overdue", 10)
        assert screen.status.text().startswith("Today (21 Nov 2026): 1 reminder to queue.")
        assert screen.mail_notice.isHidden()
        assert screen.log_model.rowCount() == 0

        runner = EmailRunner.for_ops(ops)
        with qtbot.waitSignal(runner.finished, timeout=20_000), \
                qtbot.waitSignal(screen.ran, timeout=10_000) as ran:
            screen.run_button.click()
        wait_idle(qtbot, ops)
        report = ran.args[0]
        assert [q.candidate.number for q in report.reminders.queued] == ["INV-000001"]
        assert screen.notice.isVisible() and screen.notice.text() == "1 reminder queued."
        [message] = reminder_messages(app_ctx)
        assert message.invoice_id == office["invoice"] and message.status is OutboxStatus.SENT
        assert [r.message["Subject"] for r in server.received] == ["Overdue: invoice INV-000001 ($1,000.00)"]
        assert not [w for w in host.findChildren(QMessageBox) if w.isVisible()]  # sent in the background

    # Taken: nothing is due any more, and the log says it went.
    assert screen.reminder_model.rowCount() == 0 and screen.reminders_off.text() == "No reminder is due today."
    screen.reload_log()
    wait_idle(qtbot, ops)
    [logged] = screen.log_model.visible_rows()
    assert (logged.invoice_number, logged.label, logged.status, logged.sent_to) == (
        "INV-000001", "7 days overdue", "sent", "ap@harbor.example")
    # A second Run now the same day sends nothing again.
    with qtbot.waitSignal(screen.ran, timeout=10_000) as ran:
        screen.run_button.click()
    wait_idle(qtbot, ops)
    assert ran.args[0].reminders.queued == [] and len(reminder_messages(app_ctx)) == 1
    # The log filters by client.
    with qtbot.waitSignal(screen.log_loaded, timeout=5_000):
        screen.log_search.setText("zephyr")
    wait_idle(qtbot, ops)
    assert screen.log_model.rowCount() == 0
    with qtbot.waitSignal(screen.log_loaded, timeout=5_000):
        screen.log_search.setText("HARBOR")
    wait_idle(qtbot, ops)
    assert screen.log_model.rowCount() == 1


def test_without_mail_due_today_warns_and_run_now_queues_nothing(qtbot, ops, app_ctx, office, host):
    sent: list[bool] = []
    screen = loaded_screen(qtbot, ops, host)
    screen.send_mail = lambda: sent.append(True) or True
    assert screen.reminder_model.rowCount() == 1
    assert screen.mail_notice.isVisible() and "E-mail is not set up" in screen.mail_notice.text()
    with qtbot.waitSignal(screen.ran, timeout=10_000):
        screen.run_button.click()
    wait_idle(qtbot, ops)
    assert reminder_messages(app_ctx) == [] and sent == []
    assert "E-mail is not set up, so no reminder was queued (1 waiting)." in screen.notice.text()


def test_a_fee_is_waived_from_the_late_fees_tab_with_a_reason(qtbot, ops, app_ctx, office, host, monkeypatch):
    turn_on_fees(app_ctx)
    run_collections(app_ctx.db, TODAY)     # the fee is assessed: it waits for Harbor's next invoice
    screen = loaded_screen(qtbot, ops, host)
    screen.tabs.setCurrentIndex(2)
    [fee] = screen.fee_model.visible_rows()
    assert (fee.invoice_number, fee.amount_cents, fee.status, fee.where) == ("INV-000001", 2500, "pending",
                                                                            "Next invoice")
    assert screen.pending_card.value.text() == "$25.00" and screen.waived_card.value.text() == "$0.00"
    assert not screen.waive_button.isEnabled()
    assert screen.select_fee(fee.id) and screen.waive_button.isEnabled()

    # Cancelled: nothing changes.
    monkeypatch.setattr(collections_screen, "ask_waive_reason", lambda _parent, _fee: None)
    assert not screen.waive_selected()
    asked: list[str] = []

    def reason(_parent, row) -> str:
        asked.append(collections_screen.waive_consequence(row))
        return "First time late; goodwill"

    monkeypatch.setattr(collections_screen, "ask_waive_reason", reason)
    with qtbot.waitSignal(screen.fees_loaded, timeout=10_000):
        assert screen.waive_selected()
    wait_idle(qtbot, ops)
    assert asked == ["It has not been billed yet: it will not be."]
    assert screen.notice.text() == "Waived the late fee of $25.00 on INV-000001."
    [waived] = screen.fee_model.visible_rows()
    assert (waived.status, waived.where) == ("waived", "Waived: First time late; goodwill")
    assert screen.waived_card.value.text() == "$25.00" and screen.pending_card.value.text() == "$0.00"
    screen.set_fee_filter("pending")
    assert screen.fee_model.rowCount() == 0
    with app_ctx.db.session() as s:
        [row] = list_fees(s)
    assert row.status == "waived" and row.waive_reason == "First time late; goodwill"


def test_the_waive_dialog_needs_a_reason(qtbot, ops, app_ctx, office, host):
    turn_on_fees(app_ctx)
    run_collections(app_ctx.db, TODAY)
    with app_ctx.db.session() as s:
        [fee] = list_fees(s)
    dialog = WaiveDialog(host, fee)
    qtbot.addWidget(dialog)
    assert not dialog.waive_button.isEnabled()
    dialog.reason.setText("   ")
    assert not dialog.waive_button.isEnabled()
    dialog.reason.setText("  Billing error on our side ")
    assert dialog.waive_button.isEnabled() and dialog.reason_text() == "Billing error on our side"


def test_the_background_pass_queues_the_reminder_with_a_quiet_note(qtbot, ops, app_ctx, office):
    configure_mail(app_ctx, 2)   # nothing listens there: the pass only queues
    sync = CollectionsSync(ops)
    sync.today = lambda: TODAY
    assert sync.timer.interval() == 60 * 60 * 1000
    with qtbot.waitSignal(sync.finished, timeout=10_000) as finished:
        assert sync.run()
    wait_idle(qtbot, ops)
    text, tooltip, problem, changed = finished.args
    assert (text, problem, changed) == ("Collections: 1 reminder queued", False, True)
    assert tooltip.startswith("Collections checked at ") and "1 reminder queued." in tooltip
    assert len(reminder_messages(app_ctx)) == 1
    with qtbot.waitSignal(sync.finished, timeout=10_000) as again:
        sync.run()
    wait_idle(qtbot, ops)
    assert again.args[0] == "" and again.args[3] is False   # nothing new: the last note stays


# --- the client and the invoice ----------------------------------------------------------------


def test_pause_payment_reminders_is_saved_with_its_note(qtbot, ops, app_ctx, office, host):
    dialog = ClientDialog(ops, host, client_id=office["client"])
    qtbot.addWidget(dialog)
    dialog.show()
    wait_idle(qtbot, ops)
    assert not dialog.reminders_paused.isChecked() and not dialog.pause_note.isEnabled()
    dialog.reminders_paused.setChecked(True)
    assert dialog.pause_note.isEnabled()
    dialog.pause_note.setText("Disputed the October invoice; call on 5 Dec")
    with qtbot.waitSignal(dialog.saved, timeout=10_000):
        dialog.save()
    wait_idle(qtbot, ops)
    with app_ctx.db.session() as s:
        client = s.get(Client, office["client"])
        assert client is not None
        assert client.reminders_paused and client.reminders_pause_note == "Disputed the October invoice; call on 5 Dec"

    again = ClientDialog(ops, host, client_id=office["client"])
    qtbot.addWidget(again)
    again.show()
    wait_idle(qtbot, ops)
    assert again.reminders_paused.isChecked()
    assert again.pause_note.text() == "Disputed the October invoice; call on 5 Dec"
    # Paused, the due reminder is held back with the reason.
    screen = loaded_screen(qtbot, ops, host)
    assert screen.reminder_model.rowCount() == 0
    [held] = screen.held_model.visible_rows()
    assert (held.candidate.number, held.reason) == ("INV-000001", "reminders are paused for this client")

    again.reminders_paused.setChecked(False)
    with qtbot.waitSignal(again.saved, timeout=10_000):
        again.save()
    wait_idle(qtbot, ops)
    with app_ctx.db.session() as s:
        client = s.get(Client, office["client"])
        assert client is not None and not client.reminders_paused and client.reminders_pause_note == ""


def test_the_invoice_window_shows_its_reminders_and_late_fees(qtbot, ops, app_ctx, office, host, monkeypatch):
    configure_mail(app_ctx, 2)
    turn_on_fees(app_ctx)
    run_collections(app_ctx.db, TODAY)   # queues "7 days overdue", assesses the fee
    monkeypatch.setattr(invoice_dialog, "collections_today", lambda: TODAY)
    dialog = InvoiceDialog(ops, office["invoice"], host)
    qtbot.addWidget(dialog)
    dialog.show()
    wait_idle(qtbot, ops)
    assert dialog.tabs.isTabVisible(4)
    assert dialog.tabs.tabText(4) == "Reminders && late fees (1 reminder, 1 fee)"
    dialog.tabs.setCurrentIndex(4)
    assert dialog.reminder_summary.text() == "Reminders follow the office's schedule."
    table = dialog.reminders_table
    rows = {table.item(r, 0).text(): (table.item(r, 2).text(), table.item(r, 3).text())
            for r in range(table.rowCount())}
    assert rows["7 days overdue"] == ("In the Outbox", "In the outbox since 21 Nov 2026")
    assert rows["14 days overdue"] == ("Upcoming", "Due 25 Nov 2026")
    assert rows["30 days overdue"] == ("Upcoming", "Due 11 Dec 2026")
    assert rows["On the due date"][0] == "Skipped"
    fees = dialog.fees_table
    assert fees.rowCount() == 1 and dialog.fees_page.isVisible()
    assert [fees.item(0, c).text() for c in range(5)] == ["2026-11-21", "INV-000001", "$25.00", "Pending",
                                                          "Next invoice"]

    # Waived from here too, with a reason.
    monkeypatch.setattr(collections_screen, "ask_waive_reason", lambda _p, _f: "Agreed on the phone")
    fees.selectRow(0)
    assert dialog.waive_button.isEnabled()
    with qtbot.waitSignal(dialog.loaded, timeout=10_000):
        assert dialog.waive_selected_fee()
    wait_idle(qtbot, ops)
    assert fees.item(0, 3).text() == "Waived" and not dialog.waive_button.isEnabled()
    assert dialog.pdf_notice.text() == "Waived the late fee of $25.00 on INV-000001."
    with app_ctx.db.session() as s:
        assert s.scalar(select(InvoiceReminder.offset_days)) == 7
