"""Month-end in the desktop app, on a demo office (12 clients) whose autopay clients saved
sandbox cards and bank accounts: the preview against the core's own, the CSV, approving
a charge above a client's cap, a run from the confirmation to its account, Cancel in the
middle of one, the office's run lock, and the batch settings in Settings → Payments."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QWidget
from sqlalchemy import select, update

from mspbill.batch.plan import ChargeKind, LeftOutReason, preview_batch, preview_csv
from mspbill.batch.run import acquire_run, run_report
from mspbill.batch.settings import batch_settings, save_batch_settings
from mspbill.db.models import (
    BatchRun,
    BatchRunStatus,
    ChargeApproval,
    ChargeAttempt,
    Client,
    OutboxMessage,
)
from mspbill.demo import demo_payment_methods
from mspbill.mail import MailSettingsDraft, save_mail_settings
from mspbill.money import format_amount
from mspbill.payments.gateway import ProcessorMode
from mspbill.payments.processor import sandbox_ledger_path
from mspbill.payments.sandbox import SandboxGateway
from mspbill.periods import Month
from tests.gui.conftest import wait_idle
from ui import month_end_screen
from ui.month_end_dialogs import LIVE_TICK, RESULT_TABS, RunConfirmDialog
from ui.month_end_screen import MonthEndScreen, default_period, period_choices
from ui.payment_settings_form import PaymentSettingsForm
from ui.payment_widgets import PaymentSession

SHOTS = Path("/tmp/ui-shots")
TODAY = dt.date.today()
THIS_MONTH = Month.of(TODAY)   # the demo's drafts wait in the current month
CAPPED = "Zürich Dental GmbH"  # an autopay client with a card; its invoice is put above a cap


def shot(widget: QWidget, name: str) -> None:
    QApplication.processEvents()
    SHOTS.mkdir(exist_ok=True)
    widget.grab().save(str(SHOTS / f"{name}.png"))


def click(qtbot, button) -> None:
    assert button.isEnabled() and button.isVisible(), button.text()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


@pytest.fixture
def office(demo_ctx):
    """The demo office with its sandbox cards and bank accounts (as the first-run wizard leaves it), and
    one autopay client more whose card will be declined for lack of funds."""
    from mspbill.payments.methods import ensure_customer, store_method

    gateway = SandboxGateway(sandbox_ledger_path(demo_ctx.paths.data_dir))
    try:
        assert demo_payment_methods(demo_ctx.db, gateway) > 0
        without = next(lo for lo in core_preview(demo_ctx).left_out if lo.reason is LeftOutReason.NO_METHOD)
        customer = ensure_customer(demo_ctx.db, gateway, without.target.client_id)
        facts = gateway.attach_test_method(customer, "pm_card_visa_chargeDeclinedInsufficientFunds")
        with demo_ctx.db.write_session() as s, s.begin():
            store_method(s, without.target.client_id, gateway.mode, facts, customer, "test", make_default=True)
    finally:
        gateway.close()
    return demo_ctx


def ledger(ctx) -> list:
    gateway = SandboxGateway(sandbox_ledger_path(ctx.paths.data_dir))
    try:
        return gateway.ledger_charges()
    finally:
        gateway.close()


def core_preview(ctx, month: Month = THIS_MONTH):
    with ctx.db.session() as s:
        return preview_batch(s, month, today=TODAY)


def make_screen(qtbot, ops, ctx) -> MonthEndScreen:
    PaymentSession.install(ops, ctx.paths.data_dir)
    screen = MonthEndScreen(ops, ctx.paths.backup_dir)
    qtbot.addWidget(screen)
    screen.resize(980, 640)
    with qtbot.waitSignal(screen.previewed, timeout=15_000):
        screen.show()
        screen.ensure_loaded()
    wait_idle(qtbot, ops)
    return screen


@pytest.fixture
def screen(qtbot, ops, office) -> MonthEndScreen:
    return make_screen(qtbot, ops, office)


@pytest.fixture
def window(qtbot, ops, office, monkeypatch):
    """The main window at the smallest size the office manager is promised (1024×700), on Month-end."""
    from ui.main_window import MainWindow

    monkeypatch.setattr("ui.main_window.MainWindow.start_background_mail", lambda self: None)
    window = MainWindow(office, ops)
    qtbot.addWidget(window)
    window.resize(1024, 700)
    window.show()
    with qtbot.waitSignal(window.month_end.previewed, timeout=15_000):
        window.go("Month-end")
    wait_idle(qtbot, ops)
    yield window
    wait_idle(qtbot, ops)  # nothing may answer a window that is gone
    window.close()


def confirm_run(qtbot, ops, screen: MonthEndScreen) -> RunConfirmDialog:
    click(qtbot, screen.run_button)
    qtbot.waitUntil(lambda: screen.confirm_dialog is not None and screen.confirm_dialog.isVisible(), timeout=10_000)
    dialog = screen.confirm_dialog
    assert dialog is not None
    return dialog


# --- the period ------------------------------------------------------------------------------

def test_the_period_defaults_to_the_month_whose_drafts_wait(app_ctx, screen) -> None:
    assert screen.month() == THIS_MONTH
    # The choices are check_period's window: a little late to the coming month.
    choices = [screen.period.itemData(i) for i in range(screen.period.count())]
    assert choices == [str(m) for m in period_choices(TODAY)]
    assert choices[-1] == str(THIS_MONTH.shift(1))
    # Without drafts: the coming month from the 20th on, else this month.
    with app_ctx.db.session() as s:
        assert default_period(s, dt.date(2031, 3, 20)) == Month(2031, 4)
        assert default_period(s, dt.date(2031, 3, 19)) == Month(2031, 3)


# --- the preview -----------------------------------------------------------------------------

def test_the_preview_shows_what_the_core_plans(qtbot, office, screen) -> None:
    core = core_preview(office)
    assert core.charges and core.left_out and core.invoices  # the demo office has all three
    view = screen.view
    assert view is not None and view.preview.month == THIS_MONTH
    assert screen.charge_model.rowCount() == len(core.charges)
    assert screen.left_model.rowCount() == len(core.left_out)
    assert screen.invoice_model.rowCount() == len(core.invoices)
    assert screen.tabs.tabText(0) == f"Charges ({len(core.charges)})"
    assert screen.tabs.tabText(1) == f"Left out ({len(core.left_out)})"
    assert screen.tabs.tabText(2) == f"Invoices to issue ({len(core.invoices)})"
    assert screen.status.text() == core.summary()
    # The same charges, amounts and what happens to each.
    shown = sorted((c.target.client_name, c.target.amount_cents, c.kind) for c in screen.charge_model.visible_rows())
    assert shown == sorted((c.target.client_name, c.target.amount_cents, c.kind) for c in core.charges)
    assert screen.charges_card.value.text() == str(len(core.charges))
    assert "$" in screen.charges_card.note.text() and "Sandbox" in screen.charges_card.note.text()
    assert screen.badge.text() == "SANDBOX — no money moves"
    # Amounts line up on the right; the left-out rows someone can act on come before those who pay by invoice.
    amount = screen.charge_model.index(0, 2)
    assert screen.charge_model.data(amount, Qt.ItemDataRole.TextAlignmentRole) & Qt.AlignmentFlag.AlignRight
    reasons = [r.reason for r in screen.left_model.visible_rows()]
    assert reasons[-1] is LeftOutReason.AUTOPAY_OFF and reasons[0] is not LeftOutReason.AUTOPAY_OFF
    assert screen.run_button.isEnabled() and screen.export_button.isEnabled()
    # Nothing was written: no invoice issued, no run.
    assert core_preview(office).invoices == core.invoices
    shot(screen, "month_end_preview_screen")


def test_export_csv_writes_the_preview_for_excel(qtbot, ops, office, screen, tmp_path, monkeypatch) -> None:
    target = tmp_path / "preview.csv"
    asked: list[str] = []
    monkeypatch.setattr(month_end_screen, "ask_save_path",
                        lambda _parent, _title, suggested: asked.append(suggested) or str(target))
    click(qtbot, screen.export_button)
    wait_idle(qtbot, ops)
    assert asked and asked[0].endswith(f"month-end-{THIS_MONTH}-preview.csv")
    data = target.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")  # the byte-order mark Excel needs to read UTF-8
    text = data[3:].decode("utf-8")
    assert text == preview_csv(screen.view.preview)
    rows = text.splitlines()
    assert len(rows) == 1 + len(screen.view.preview.invoices) + len(screen.view.preview.charges) + len(
        screen.view.preview.left_out)
    assert "株式会社" in text or "Zürich" in text  # names outside ASCII survive
    assert str(target) in screen.note.text()


def test_approving_above_the_cap_moves_the_invoice_to_charges(qtbot, ops, office, monkeypatch) -> None:
    core = core_preview(office)
    charge = next(c for c in core.charges if c.target.client_name == CAPPED and c.kind is ChargeKind.NEW)
    cap = charge.target.amount_cents // 2
    with office.db.write_session() as s, s.begin():
        s.scalar(select(Client).where(Client.legal_name == CAPPED)).autopay_cap_cents = cap
    screen = make_screen(qtbot, ops, office)
    before_charges, before_left = screen.charge_model.rowCount(), screen.left_model.rowCount()
    row = screen.left_model.find_row(lambda r: r.target.client_name == CAPPED and r.reason is LeftOutReason.OVER_CAP)
    assert row >= 0
    assert not screen.approve_button.isEnabled()  # nothing chosen yet
    screen.tabs.setCurrentIndex(1)
    screen.left_table.selectRow(row)
    assert screen.approve_button.isEnabled()
    assert "above the client's autopay cap" in screen.left_detail.text()
    questions: list[tuple[str, str]] = []
    monkeypatch.setattr(month_end_screen, "ask_yes_no", lambda _p, title, text: questions.append((title, text)) or True)
    with qtbot.waitSignal(screen.previewed, timeout=10_000):
        click(qtbot, screen.approve_button)
    wait_idle(qtbot, ops)
    title, text = questions[0]
    assert title == "Approve a charge above the cap"
    amount = format_amount(charge.target.amount_cents, "USD")
    cap_text = format_amount(cap, "USD")
    assert amount in text and cap_text in text and CAPPED in text
    assert screen.charge_model.rowCount() == before_charges + 1
    assert screen.left_model.rowCount() == before_left - 1
    moved = screen.charge_model.find_row(lambda c: c.target.client_name == CAPPED and c.over_cap_approved)
    assert moved >= 0
    assert screen.charge_model.data(screen.charge_model.index(moved, 4)) == "Charge (above cap, approved)"
    with office.db.session() as s:
        approval = s.scalar(select(ChargeApproval))
        assert approval is not None and approval.amount_cents == charge.target.amount_cents
    assert "moves to Charges" in screen.note.text()


def test_a_period_with_nothing_to_do_says_so_and_offers_no_run(qtbot, ops, app_ctx) -> None:
    screen = make_screen(qtbot, ops, app_ctx)  # an office with no agreement and no invoice
    assert screen.view is not None and screen.view.preview.nothing_to_do
    assert screen.nothing.isVisible()
    assert screen.nothing.text().startswith(f"Nothing to do for {screen.month().label}")
    assert not screen.totals.isVisible()
    assert not screen.run_button.isEnabled()


def test_a_processor_this_computer_cannot_use_keeps_run_off(qtbot, ops, office, monkeypatch) -> None:
    import keyring
    import keyring.backends.fail

    from mspbill.payments.processor import PaymentSettingsDraft, save_settings

    fail = keyring.backends.fail.Keyring()  # no keyring, so no Stripe key on this computer
    monkeypatch.setattr(keyring, "get_keyring", lambda: fail)
    with office.db.write_session() as s, s.begin():
        save_settings(s, PaymentSettingsDraft(processor="stripe"))
    screen = make_screen(qtbot, ops, office)
    assert screen.view is not None and screen.view.preview.mode is None
    # Running now would e-mail the autopay clients' invoices instead of charging them: Run stays off.
    assert screen.mode_notice.isVisible() and "does not start" in screen.mode_notice.text()
    assert not screen.run_button.isEnabled()
    assert all(lo.reason is not LeftOutReason.NO_METHOD for lo in screen.view.preview.left_out)


# --- the confirmation --------------------------------------------------------------------------

@pytest.mark.parametrize("mode", [ProcessorMode.SANDBOX, ProcessorMode.LIVE, None])
def test_the_confirmation_states_count_total_and_mode(qtbot, office, mode) -> None:
    preview = dataclasses.replace(core_preview(office), mode=mode)
    dialog = RunConfirmDialog(None, preview)
    qtbot.addWidget(dialog)
    dialog.show()
    text = dialog.text.text()
    invoices = f"{len(preview.invoices)} invoices"
    assert invoices in text
    if mode is None:
        assert "no payment processor is set up" in text
        assert dialog.go.text() == f"Run: issue {invoices}" and dialog.go.isEnabled()
        return
    total = format_amount(sum(c.target.amount_cents for c in preview.charges), "USD")
    assert f"{len(preview.charges)} invoices" in text and total in text and mode.label in text
    assert dialog.go.text() == f"Run: charge {total}"
    assert dialog.badge.text().startswith("LIVE" if mode is ProcessorMode.LIVE else "SANDBOX")
    if mode is ProcessorMode.LIVE:
        # Real money: the button waits for the tick.
        assert dialog.understood.text() == LIVE_TICK and dialog.understood.isVisible()
        assert not dialog.go.isEnabled()
        dialog.understood.setChecked(True)
        assert dialog.go.isEnabled()
        shot(dialog, "month_end_confirm_live")
    else:
        assert not dialog.understood.isVisible() and dialog.go.isEnabled()


# --- running ------------------------------------------------------------------------------------

def test_a_run_goes_from_the_confirmation_to_its_account(qtbot, ops, office, window) -> None:
    with office.db.write_session() as s, s.begin():
        save_mail_settings(s, MailSettingsDraft(host="127.0.0.1", port="2525", security="none",
                                                from_address="billing@example.com"))
    screen = window.month_end
    planned = core_preview(office)
    shot(window, "month_end_preview")
    dialog = confirm_run(qtbot, ops, screen)
    assert f"{len(planned.charges)} invoices" in dialog.text.text()
    shot(dialog, "month_end_confirm")
    with qtbot.waitSignal(screen.run_finished, timeout=60_000) as finished:
        click(qtbot, dialog.go)
        assert screen.showing() == "progress"
        assert not screen.run_button.isEnabled() and not screen.period.isEnabled()
    report = finished.args[0]
    wait_idle(qtbot, ops)
    shot(window, "month_end_result")
    assert report.status is BatchRunStatus.FINISHED
    assert screen.showing() == "result"
    assert screen.result.headline.text() == report.headline()
    counts = report.counts()
    assert counts["succeeded"] > 0 and counts["failed"] > 0  # the demo has cards that decline
    with office.db.session() as s:
        stored = run_report(s, report.run_id)
    assert stored.counts() | {"left_out": counts["left_out"]} == counts
    for key, title, _tip in RESULT_TABS:
        assert screen.result.tab_title(key) == f"{title} ({counts[key]})"
        assert screen.result.line_models[key].rowCount() == counts[key]
    # Every charge the processor made is one of the run's recorded attempts, and nothing more.
    with office.db.session() as s:
        intents = sorted(i for i in s.scalars(select(ChargeAttempt.intent_id)) if i)
        receipts = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "receipt")).all()
    assert sorted(c.intent_id for c in ledger(office)) == intents
    assert len(receipts) == report.mail.receipts > 0
    facts = screen.result.facts.text()
    assert f"{report.mail.receipts} receipts" in facts and f"{report.mail.invoices} invoice e-mails" in facts
    assert report.backup_path and Path(report.backup_path).exists() and report.backup_path in facts
    # Declines say why and when the next try is.
    failed = screen.result.line_models["failed"]
    assert all(failed.data(failed.index(r, 4)) for r in range(failed.rowCount()))
    # Past runs list it; its account opens again from there.
    qtbot.waitUntil(lambda: screen.runs_model.rowCount() == 1, timeout=10_000)
    assert screen.runs_model.row_at(0).status == "finished"
    screen.open_outbox.emit()
    assert window.current_screen_name() == "Outbox"
    window.go("Month-end")
    click(qtbot, screen.result.back_button)
    wait_idle(qtbot, ops)
    assert screen.showing() == "preview"
    assert screen.view is not None and not screen.view.preview.invoices  # all issued now
    with qtbot.waitSignal(screen.report_shown, timeout=10_000) as shown:
        screen.runs_table.doubleClicked.emit(screen.runs_model.index(0, 0))
    assert shown.args[0].run_id == report.run_id and screen.showing() == "result"


def test_cancel_stops_new_charges_and_the_run_ends_cancelled(qtbot, ops, office, window, monkeypatch) -> None:
    # Slow enough to press Cancel in the middle: 1 charge a second, 200 ms a call.
    with office.db.write_session() as s, s.begin():
        save_batch_settings(s, "3, 5, 7", 2, 100, 50)
    monkeypatch.setenv("MSPBILL_SANDBOX_LATENCY_MS", "200")
    screen = window.month_end
    total = len(core_preview(office).charges)
    dialog = confirm_run(qtbot, ops, screen)
    click(qtbot, dialog.go)
    qtbot.waitUntil(lambda: screen.job is not None and (p := screen.job.box.latest()) is not None
                    and p.stage == "charging" and p.done >= 1, timeout=30_000)
    qtbot.waitUntil(lambda: screen.progress.bar.maximum() == total, timeout=5_000)
    shot(window, "month_end_progress")
    assert screen.progress.counts["succeeded"].text() != "" and screen.progress.collected.text()
    with qtbot.waitSignal(screen.run_finished, timeout=60_000) as finished:
        click(qtbot, screen.progress.cancel_button)
        assert screen.progress.cancel_button.text() == "Stopping after the charges in flight…"
        assert not screen.progress.cancel_button.isEnabled()
    report = finished.args[0]
    wait_idle(qtbot, ops)
    assert report.status is BatchRunStatus.CANCELLED
    assert report.not_started >= 1
    charged = sum(report.counts()[k] for k in ("succeeded", "processing", "failed", "unknown", "not_charged"))
    assert charged + report.not_started == total
    assert "Cancelled" in screen.result.status.text()
    assert "E-mail is not set up: nothing was queued" in screen.result.facts.text()  # and says where to set it up
    assert f"{report.not_started} charge" in screen.result.facts.text()  # "Not started: 3 charges: run again…"
    # The charges in flight finished and were recorded: the processor made exactly those.
    with office.db.session() as s:
        intents = sorted(i for i in s.scalars(select(ChargeAttempt.intent_id)) if i)
    assert sorted(c.intent_id for c in ledger(office)) == intents
    assert len(intents) == charged


def test_a_run_under_way_elsewhere_turns_run_off(qtbot, ops, office, screen) -> None:
    assert screen.run_button.isEnabled() and not screen.running_banner.isVisible()
    # Another window or process of this computer holds the office's run lock.
    run_id, _ = acquire_run(office.db, THIS_MONTH, ProcessorMode.SANDBOX)
    with qtbot.waitSignal(screen.runs_loaded, timeout=10_000):
        screen.refresh_runs()  # what the poll does every few seconds
    assert screen.running_banner.isVisible()
    assert "is under way on this computer" in screen.running_banner.text()
    assert not screen.run_button.isEnabled()
    # A confirmation that slipped in before the poll saw it: the core refuses, the banner says why.
    with qtbot.waitSignal(screen.run_failed, timeout=10_000) as failed:
        screen.start_run(screen.view.preview)
    wait_idle(qtbot, ops)
    assert "already under way" in failed.args[0]
    assert screen.banner.isVisible() and screen.banner.text() == failed.args[0]
    assert screen.showing() == "preview" and screen.job is None
    assert ledger(office) == []
    # It finishes: Run comes back.
    with office.db.write_session() as s, s.begin():
        s.execute(update(BatchRun).where(BatchRun.id == run_id).values(status=BatchRunStatus.FINISHED))
    with qtbot.waitSignal(screen.runs_loaded, timeout=10_000):
        screen.refresh_runs()
    wait_idle(qtbot, ops)
    assert not screen.running_banner.isVisible()
    assert screen.run_button.isEnabled()


# --- settings ------------------------------------------------------------------------------------

def test_the_batch_settings_save_and_refuse_bad_retry_days(qtbot, ops, office, monkeypatch) -> None:
    import keyring
    import keyring.backends.fail

    fail = keyring.backends.fail.Keyring()  # no keyring here: the sandbox needs no key
    monkeypatch.setattr(keyring, "get_keyring", lambda: fail)
    form = PaymentSettingsForm(ops)
    qtbot.addWidget(form)
    form.resize(760, 900)
    form.show()
    form.load()
    wait_idle(qtbot, ops)
    assert form.retry_days.text() == "3, 5, 7"
    assert (form.rate_test.value(), form.rate_live.value(), form.rate_margin.value()) == (25, 100, 10)
    form.retry_days.setText("5, 3")
    click(qtbot, form.save_button)
    wait_idle(qtbot, ops)
    row = form.form.rows["retry_days"]
    assert row.error.isVisible() and "increasing order" in row.error.text()
    assert form.summary.isVisible()
    with office.db.session() as s:
        assert batch_settings(s).retry_days == (3, 5, 7)  # nothing saved
    shot(form, "settings_month_end_batch")
    form.retry_days.setText("2, 4")
    form.rate_test.setValue(20)
    form.rate_live.setValue(80)
    form.rate_margin.setValue(15)
    with qtbot.waitSignal(form.saved, timeout=10_000):
        click(qtbot, form.save_button)
    wait_idle(qtbot, ops)
    assert not row.error.isVisible()
    with office.db.session() as s:
        saved = batch_settings(s)
    assert (saved.retry_days, saved.rate_limit_test, saved.rate_limit_live, saved.rate_margin_percent) == \
        ((2, 4), 20, 80, 15)


def test_quitting_during_a_run_asks_and_then_stops_new_charges(qtbot, ops, office, window, monkeypatch) -> None:
    from PySide6.QtWidgets import QMessageBox

    with office.db.write_session() as s, s.begin():
        save_batch_settings(s, "3, 5, 7", 2, 100, 50)
    monkeypatch.setenv("MSPBILL_SANDBOX_LATENCY_MS", "200")
    screen = window.month_end
    click(qtbot, confirm_run(qtbot, ops, screen).go)
    qtbot.waitUntil(lambda: screen.job is not None and (p := screen.job.box.latest()) is not None
                    and p.stage == "charging", timeout=30_000)
    answers = [QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Yes]
    asked: list[str] = []
    monkeypatch.setattr(QMessageBox, "question", lambda _p, title, *_a: asked.append(title) or answers.pop(0))
    assert not window.close()  # Cancel: the window stays, the run goes on
    assert window.isVisible() and screen.running and screen.progress.cancel_button.isEnabled()
    with qtbot.waitSignal(screen.run_finished, timeout=60_000) as finished:
        assert window.close()
    wait_idle(qtbot, ops)
    assert asked == ["A month-end run is under way"] * 2
    assert finished.args[0].status is BatchRunStatus.CANCELLED


def test_the_background_sync_queues_receipts_of_debits_that_settled(qtbot, ops, office, monkeypatch) -> None:
    from mspbill.batch.run import run_batch
    from mspbill.payments.processor import sandbox_gateway
    from ui.payment_sync import PaymentSync

    with office.db.write_session() as s, s.begin():
        save_mail_settings(s, MailSettingsDraft(host="127.0.0.1", port="2525", security="none",
                                                from_address="billing@example.com"))
    monkeypatch.setenv("MSPBILL_SANDBOX_ACH_SETTLE_SECONDS", "0")  # bank debits settle at the next look
    gateway = sandbox_gateway(office.paths.data_dir)
    try:
        report = run_batch(office.db, gateway, THIS_MONTH, backup_dir=None)
    finally:
        gateway.close()  # type: ignore[attr-defined]
    debits = report.counts()["processing"]
    assert debits > 0 and report.mail.receipts == report.counts()["succeeded"]
    sync = PaymentSync(ops, PaymentSession.install(ops, office.paths.data_dir))
    with qtbot.waitSignal(sync.finished, timeout=15_000) as finished:
        assert sync.sync()
    wait_idle(qtbot, ops)
    text, tooltip, _problem, changed = finished.args
    assert f"{debits} charge" in text and f"{debits} receipt" in text and changed
    assert f"{debits} receipt(s) queued for charges that went through" in tooltip
    with office.db.session() as s:
        receipts = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "receipt")).all()
    assert len(receipts) == report.mail.receipts + debits
