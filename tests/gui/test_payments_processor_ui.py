"""Taking money through the processor in the desktop app, against a real SQLite office and
the sandbox processor's own ledger file: Settings → Payments (the key in the keyring
only), a client's payment methods (setup links, the simulated client), Charge now,
refunds, the mode badge, the live-mode confirmation, and the background sync."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import keyring
import keyring.backends.fail
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QDialogButtonBox, QWidget
from sqlalchemy import select

from mspbill.db.models import Invoice, InvoiceStatus, Payment
from mspbill.payments.charges import charge_invoice
from mspbill.payments.gateway import ProcessorMode
from mspbill.payments.methods import create_setup_link, poll_setup_links
from mspbill.payments.processor import (
    PaymentSettingsDraft,
    sandbox_ledger_path,
    save_settings,
    settings_draft,
)
from mspbill.payments.refunds import refunded_by_payment
from mspbill.payments.sandbox import SETUP_URL_PREFIX, SandboxGateway
from tests.billing_helpers import issue_ids, make_client, one_time, setup_office
from tests.fake_keys import stripe_key
from tests.gui.conftest import wait_idle
from ui import payment_widgets
from ui.charge_dialog import ChargeDialog, LiveConfirmDialog, RefundDialog
from ui.client_dialog import ClientDialog
from ui.client_payment_dialogs import SimulateDialog
from ui.payment_settings_form import NO_KEYRING_NOTE, PaymentSettingsForm
from ui.payment_widgets import ModeBadge, PaymentSession, badge_text

SHOTS = Path("/tmp/ui-shots")
TODAY = dt.date.today()


@pytest.fixture(autouse=True)
def no_keyring_by_default(monkeypatch) -> None:
    """No secure keyring (keyring's fail backend), as on a computer without one."""
    fail = keyring.backends.fail.Keyring()
    monkeypatch.setattr(keyring, "get_keyring", lambda: fail)


@dataclass(frozen=True)
class Office:
    harbor: int          # autopay, ap@harbor.example
    zephyr: int          # autopay, no method on file
    invoice: int         # INV-000001, Harbor, $1,000.00 open
    second: int          # INV-000002, Harbor, $250.00 open


def use_processor(ctx, processor: str) -> None:
    with ctx.db.write_session() as s, s.begin():
        save_settings(s, PaymentSettingsDraft(processor=processor))


@pytest.fixture
def office(app_ctx) -> Office:
    db = app_ctx.db
    setup_office(db, email="billing@acme-it.example")
    harbor = make_client(db, "Harbor Dental", billing_emails="ap@harbor.example", autopay=True)
    zephyr = make_client(db, "Zephyr Labs", billing_emails="ap@zephyr.example", autopay=True)
    first = one_time(db, harbor, ("Firewall appliance", "1", "1000.00"))
    second = one_time(db, harbor, ("Cabling", "1", "250.00"))
    issue_ids(db, [first, second], TODAY)
    use_processor(app_ctx, "sandbox")
    return Office(harbor, zephyr, first, second)


@pytest.fixture
def session(ops, app_ctx) -> PaymentSession:
    return PaymentSession.install(ops, app_ctx.paths.data_dir)


@pytest.fixture
def sandbox(app_ctx) -> Iterator[SandboxGateway]:
    gateway = SandboxGateway(sandbox_ledger_path(app_ctx.paths.data_dir))
    yield gateway
    gateway.close()


def save_method(ctx, gateway, client_id: int, token: str = "pm_card_visa") -> None:
    """What a client does with a setup link, straight through the core and the sandbox."""
    link = create_setup_link(ctx.db, gateway, client_id)
    inner = getattr(gateway, "inner", gateway)
    inner.complete_setup_session(link.url.removeprefix(SETUP_URL_PREFIX), token)
    assert poll_setup_links(ctx.db, gateway, client_id=client_id).completed


def invoice_row(ctx, invoice_id: int) -> Invoice:
    with ctx.db.session() as s:
        inv = s.get(Invoice, invoice_id)
        s.expunge(inv)
        return inv


def shot(widget: QWidget, name: str) -> None:
    QApplication.processEvents()  # let layouts settle after widgets were shown or hidden
    SHOTS.mkdir(exist_ok=True)
    widget.grab().save(str(SHOTS / f"{name}.png"))


def click(qtbot, button) -> None:
    assert button.isEnabled() and button.isVisible()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def shown(dialog: QWidget, qtbot) -> QWidget:
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


# --- the badge ----------------------------------------------------------------------------

@pytest.mark.parametrize("mode, text", [
    (ProcessorMode.SANDBOX, "SANDBOX — no money moves"),
    (ProcessorMode.TEST, "TEST MODE"),
    (ProcessorMode.LIVE, "LIVE — real money"),
    (None, "Payments off"),
])
def test_the_mode_badge_names_where_money_would_move(qtbot, mode, text) -> None:
    badge = ModeBadge(mode)
    qtbot.addWidget(badge)
    assert badge.text() == badge_text(mode) == text
    assert text in badge.accessibleName()
    # In the status bar it says nothing when there is no processor.
    quiet = ModeBadge(mode, hide_when_off=True)
    qtbot.addWidget(quiet)
    assert quiet.isHidden() == (mode is None)


def test_live_and_test_badges_look_different(qtbot) -> None:
    live, test, sandbox = ModeBadge(ProcessorMode.LIVE), ModeBadge(ProcessorMode.TEST), ModeBadge(ProcessorMode.SANDBOX)
    for badge in (live, test, sandbox):
        qtbot.addWidget(badge)
    assert "#b3261e" in live.styleSheet() and "#e8710a" in test.styleSheet() and "#d2e3fc" in sandbox.styleSheet()


# --- Settings → Payments -------------------------------------------------------------------

def _form(qtbot, ops) -> PaymentSettingsForm:
    form = PaymentSettingsForm(ops)
    qtbot.addWidget(form)
    form.resize(900, 700)
    form.show()
    form.load()
    wait_idle(qtbot, ops)
    return form


def test_settings_save_the_processor_choice_and_the_badge_follows(qtbot, ops, app_ctx, session) -> None:
    form = _form(qtbot, ops)
    assert form.processor() == "none"
    assert not form.key.isVisible()  # the key is Stripe's alone
    form.processor_buttons["sandbox"].setChecked(True)
    form.link_hours.setValue(6)
    form.success_url.setText("https://www.acme-it.example/thanks")
    seen: list[object] = []
    session.mode_changed.connect(seen.append)
    click(qtbot, form.save_button)
    wait_idle(qtbot, ops)
    assert form.status.text() == "Saved."
    with app_ctx.db.session() as s:
        draft = settings_draft(s)
    assert (draft.processor, draft.setup_link_hours, draft.setup_success_url) == (
        "sandbox", "6", "https://www.acme-it.example/thanks")
    assert seen == [ProcessorMode.SANDBOX] and session.mode is ProcessorMode.SANDBOX
    # Opened again, it shows what was saved.
    again = _form(qtbot, ops)
    assert again.processor() == "sandbox" and again.link_hours.value() == 6


def test_a_bad_page_address_is_shown_at_its_field_and_nothing_is_saved(qtbot, ops, app_ctx, session) -> None:
    form = _form(qtbot, ops)
    form.processor_buttons["sandbox"].setChecked(True)
    form.success_url.setText("http://acme-it.example/thanks")
    click(qtbot, form.save_button)
    wait_idle(qtbot, ops)
    error = form.form.rows["setup_success_url"].error
    assert not error.isHidden() and "https://" in error.text()
    assert "1 problem" in form.summary.text()
    with app_ctx.db.session() as s:
        assert settings_draft(s).processor == "none"


def test_without_a_secure_keyring_the_key_is_refused_and_nothing_is_saved(qtbot, ops, app_ctx, session) -> None:
    form = _form(qtbot, ops)
    form.processor_buttons["stripe"].setChecked(True)
    assert form.key.isVisible()
    # Said before anything is tried: there is no keyring to keep a key in.
    assert form.key_note.text() == NO_KEYRING_NOTE
    assert form.key.placeholderText() == "cannot be saved on this computer"
    form.key.setText(stripe_key("sk", "test", "a1B2c3D4e5F6g7H8i9J0k1L2"))
    click(qtbot, form.save_button)
    wait_idle(qtbot, ops)
    error = form.form.rows["stripe_key"].error
    assert not error.isHidden() and "No secure keyring is available" in error.text()
    assert "nothing was saved" in error.text()
    assert form.summary.text() == "Nothing was saved: the Stripe key cannot be kept safely on this computer."
    assert form.save_button.isEnabled()
    # The processor choice was rolled back with it; the keyring holds nothing.
    with app_ctx.db.session() as s:
        assert settings_draft(s).processor == "none"
    assert not form.key_status.saved
    shot(form, "payment_settings_no_keyring")


LIVE_KEY = stripe_key("sk", "live", "51HqLiveKeyForTests0123456789abcdWXYZ")


@pytest.mark.keyring
def test_the_key_goes_to_the_keyring_and_nowhere_else(qtbot, ops, app_ctx, session, secret_service, monkeypatch,
                                                      tmp_path) -> None:
    from keyring.backends import SecretService

    from mspbill.secrets import STRIPE_SECRET_KEY, SecretStore

    monkeypatch.setattr(keyring, "get_keyring", lambda: SecretService.Keyring())
    SecretStore().delete(STRIPE_SECRET_KEY)
    form = _form(qtbot, ops)
    form.processor_buttons["stripe"].setChecked(True)
    assert form.saved_key.text() == "No key saved on this computer" and not form.remove_key_button.isEnabled()
    # Pasted from the Dashboard with a stray space and quotes.
    form.key.setText(f' "{LIVE_KEY}" ')
    with qtbot.waitSignal(form.saved, timeout=20_000):
        click(qtbot, form.save_button)
    wait_idle(qtbot, ops)
    assert SecretStore().get(STRIPE_SECRET_KEY) == LIVE_KEY
    assert form.key.text() == ""  # never kept on show
    assert form.saved_key.text() == "sk_live_…WXYZ"
    assert form.key_badge.text() == "LIVE — real money" and form.key_badge.isVisible()
    assert form.status.text() == "Saved; the key is in SecretService Keyring."
    assert session.mode is ProcessorMode.LIVE  # the status bar's badge follows
    shot(form, "payment_settings_live_key")
    secret = LIVE_KEY.encode()
    for root in {tmp_path, app_ctx.paths.data_dir, app_ctx.paths.settings_file.parent, app_ctx.paths.log_dir}:
        assert [p for p in Path(root).rglob("*") if p.is_file() and secret in p.read_bytes()] == []
    monkeypatch.setattr(payment_widgets, "ask_yes_no", lambda *_a: True)
    click(qtbot, form.remove_key_button)
    wait_idle(qtbot, ops)
    assert SecretStore().get(STRIPE_SECRET_KEY) is None
    assert form.saved_key.text() == "No key saved on this computer"
    assert form.status.text() == "The Stripe key was removed from SecretService Keyring."
    assert session.mode is None


def test_a_pasted_publishable_key_is_refused_at_once(qtbot, ops, app_ctx, session) -> None:
    form = _form(qtbot, ops)
    form.processor_buttons["stripe"].setChecked(True)
    form.key.setText("  " + stripe_key("pk", "live", "51Habcdefghijklmnopqrstuvwxyz") + "  ")
    error = form.form.rows["stripe_key"].error
    assert not error.isHidden() and error.text().startswith("That is a publishable key (pk_…)")
    click(qtbot, form.save_button)
    wait_idle(qtbot, ops)
    with app_ctx.db.session() as s:
        assert settings_draft(s).processor == "none"
    # A secret key, pasted with quotes and a line break, is cleaned and its mode told by its prefix.
    form.key.setText('"' + stripe_key("sk", "live", "51Habcdefghij\nklmnopqrstuvwxyz") + '"')
    assert error.isHidden()
    assert form.key_note.text() == "A live key: charges and refunds will move real money."
    form.key.setText(stripe_key("sk", "test", "51Habcdefghijklmnopqrstuvwxyz"))
    assert form.key_note.text() == "A test key: Stripe test mode, no real money moves."


def test_test_connection_reaches_the_sandbox(qtbot, ops, app_ctx, session) -> None:
    form = _form(qtbot, ops)
    assert not form.test_button.isEnabled()  # no processor chosen
    form.processor_buttons["sandbox"].setChecked(True)
    with qtbot.waitSignal(form.connection_checked, timeout=10_000) as checked:
        click(qtbot, form.test_button)
    assert checked.args[0] is True
    assert form.test_result.text() == "The sandbox answers: charges and refunds are simulated; no money moves."


def test_test_connection_without_network_says_so(qtbot, ops, app_ctx, session, monkeypatch) -> None:
    from smtp_server import free_port

    # Nothing listens there: like a computer that cannot reach Stripe.
    monkeypatch.setenv("MSPBILL_STRIPE_API_BASE", f"http://127.0.0.1:{free_port()}")
    form = _form(qtbot, ops)
    form.processor_buttons["stripe"].setChecked(True)
    form.key.setText(stripe_key("sk", "test", "a1B2c3D4e5F6g7H8i9J0k1L2"))
    with qtbot.waitSignal(form.connection_checked, timeout=30_000) as checked:
        click(qtbot, form.test_button)
    assert checked.args[0] is False
    assert form.test_result.text().startswith("Could not connect. Could not reach Stripe")
    assert "sk_test_a1B2" not in form.test_result.text()  # the key never appears


# --- a client's payment methods ------------------------------------------------------------

def _client_panel(qtbot, ops, client_id: int) -> ClientDialog:
    dialog = ClientDialog(ops, None, client_id=client_id)
    qtbot.addWidget(dialog)
    dialog.resize(760, 560)
    dialog.show()
    wait_idle(qtbot, ops)
    assert dialog.payments is not None
    dialog.show_payment_methods()
    wait_idle(qtbot, ops)
    return dialog


def _methods(panel) -> list[list[str]]:
    return [[panel.table.item(r, c).text() for c in range(panel.table.columnCount())]
            for r in range(panel.table.rowCount())]


def test_send_a_setup_link_then_simulate_the_client(qtbot, ops, app_ctx, office, session) -> None:
    dialog = _client_panel(qtbot, ops, office.harbor)
    panel = dialog.payments
    assert panel.badge.text() == "SANDBOX — no money moves"
    assert panel.table.isHidden() and not panel.empty.isHidden()
    assert "Autopay is on but no card or bank account is on file" in panel.warnings.text()
    assert not panel.default_button.isEnabled() and not panel.remove_button.isEnabled()
    click(qtbot, panel.send_link_button)
    wait_idle(qtbot, ops)
    link = panel.link_dialog
    assert link is not None and link.isVisible()
    assert link.url.text().startswith(SETUP_URL_PREFIX)
    assert link.email_button.text() == "E-mail it to ap@harbor.example"
    shot(link, "setup_link_dialog")
    click(qtbot, link.copy_button)
    assert QGuiApplication.clipboard().text() == link.url.text()
    link.reject()
    # The open link is shown, with the sandbox's stand-in for the client.
    assert not panel.link_box.isHidden()
    assert "A payment setup link is open until" in panel.link_text.text()
    assert panel.poll_timer.isActive()  # on screen with an open link: it is being watched
    click(qtbot, panel.simulate_button)
    simulate = panel.simulate_dialog
    assert isinstance(simulate, SimulateDialog)
    simulate.choose("pm_card_mastercard")
    shot(simulate, "simulate_dialog")
    simulate.accept()
    wait_idle(qtbot, ops)
    assert _methods(panel) == [["Mastercard ending 4444", _methods(panel)[0][1], "✓ Default",
                                "Saved by the client through a setup link"]]
    assert panel.notice.text() == "The client saved Mastercard ending 4444; it is now the default for autopay."
    assert panel.link_box.isHidden() and not panel.poll_timer.isActive()
    assert panel.warnings.isHidden()
    shot(dialog, "client_payment_methods")


def test_the_setup_link_is_emailed_through_the_outbox(qtbot, ops, app_ctx, office, session) -> None:
    from smtp_server import SmtpTestServer

    from mspbill.mail import MailSettingsDraft, save_mail_settings
    from ui.email_actions import EmailRunner

    dialog = _client_panel(qtbot, ops, office.harbor)
    panel = dialog.payments
    click(qtbot, panel.send_link_button)
    wait_idle(qtbot, ops)
    link = panel.link_dialog
    # Mail not set up yet: the dialog says so, and the link can still be copied.
    click(qtbot, link.email_button)
    wait_idle(qtbot, ops)
    assert link.notice.text().startswith("E-mail is not set up")
    assert link.email_button.isEnabled()
    try:
        with SmtpTestServer() as smtp:
            with app_ctx.db.write_session() as s, s.begin():
                save_mail_settings(s, MailSettingsDraft(host="127.0.0.1", port=str(smtp.port), security="none",
                                                        from_address="billing@acme-it.example",
                                                        from_name="Acme IT"))
            runner = EmailRunner.for_ops(ops)
            with qtbot.waitSignal(runner.finished, timeout=20_000):
                click(qtbot, link.email_button)
            wait_idle(qtbot, ops)
            assert link.notice.text() == "The setup link was e-mailed to the client."
            assert len(smtp.received) == 1
            message = smtp.received[0].message
            assert message["To"] == "ap@harbor.example"
            assert link.url.text() in message.get_body().get_content()
            if runner.report_box is not None:
                runner.report_box.close()
    finally:
        EmailRunner._busy = False
    link.reject()
    wait_idle(qtbot, ops)
    assert "E-mailed to ap@harbor.example" in panel.link_text.text()


def test_the_panel_notices_when_the_client_completes_the_link(qtbot, ops, app_ctx, office, session,
                                                              sandbox) -> None:
    link = create_setup_link(app_ctx.db, sandbox, office.harbor)
    dialog = _client_panel(qtbot, ops, office.harbor)
    panel = dialog.payments
    assert panel.poll_timer.isActive()
    panel.poll_timer.setInterval(100)
    # The client, elsewhere, saves a US bank account on the hosted page.
    sandbox.complete_setup_session(link.url.removeprefix(SETUP_URL_PREFIX), "pm_usBankAccount_success")
    qtbot.waitUntil(lambda: panel.table.rowCount() == 1, timeout=10_000)
    wait_idle(qtbot, ops)
    assert _methods(panel)[0][0] == "STRIPE TEST BANK ending 6789" and _methods(panel)[0][2] == "✓ Default"
    assert not panel.poll_timer.isActive()
    # Hidden, it stops asking.
    create_setup_link(app_ctx.db, sandbox, office.harbor)
    panel.load()
    wait_idle(qtbot, ops)
    assert panel.poll_timer.isActive()
    dialog.hide()
    assert not panel.poll_timer.isActive()


def test_make_default_and_remove_after_asking(qtbot, ops, app_ctx, office, session, sandbox, monkeypatch) -> None:
    save_method(app_ctx, sandbox, office.harbor, "pm_card_visa")
    save_method(app_ctx, sandbox, office.harbor, "pm_card_mastercard")
    dialog = _client_panel(qtbot, ops, office.harbor)
    panel = dialog.payments
    assert [row[0] for row in _methods(panel)] == ["Mastercard ending 4444", "Visa ending 4242"]
    panel.table.selectRow(1)
    click(qtbot, panel.default_button)
    wait_idle(qtbot, ops)
    assert panel.notice.text() == "Visa ending 4242 is now the default for autopay."
    assert [(row[0], row[2]) for row in _methods(panel)] == [("Visa ending 4242", "✓ Default"),
                                                              ("Mastercard ending 4444", "")]
    questions: list[str] = []
    monkeypatch.setattr(payment_widgets, "ask_yes_no", lambda _p, _t, text: questions.append(text) or False)
    panel.table.selectRow(0)
    click(qtbot, panel.remove_button)
    wait_idle(qtbot, ops)
    assert questions and questions[0].startswith("Remove Visa ending 4242?")
    assert panel.table.rowCount() == 2  # answered no: nothing removed
    monkeypatch.setattr(payment_widgets, "ask_yes_no", lambda *_a: True)
    click(qtbot, panel.remove_button)
    wait_idle(qtbot, ops)
    assert panel.notice.text() == "Removed Visa ending 4242; Mastercard ending 4444 is now the default."
    assert [(row[0], row[2]) for row in _methods(panel)] == [("Mastercard ending 4444", "✓ Default")]


def test_link_an_existing_customer_found_by_email(qtbot, ops, app_ctx, office, session, sandbox) -> None:
    # A customer made in the processor before mspbill, with a card on file.
    customer = sandbox.create_customer(name="Zephyr Labs LLC", email="AP@zephyr.example", metadata={},
                                       idempotency_key="pre-existing-zephyr")
    sandbox.attach_test_method(customer.customer_id, "pm_card_amex")
    dialog = _client_panel(qtbot, ops, office.zephyr)
    panel = dialog.payments
    click(qtbot, panel.link_customer_button)
    wait_idle(qtbot, ops)
    chooser = panel.customer_dialog
    assert chooser is not None and chooser.table.rowCount() == 1
    assert chooser.table.item(0, 0).text() == customer.customer_id
    assert chooser.table.item(0, 3).text() == "American Express ending 8431"
    assert chooser.chosen_id() == customer.customer_id  # the only one is chosen
    assert chooser.replace_warning.isHidden()
    shot(chooser, "link_customer_dialog")
    click(qtbot, chooser.link_button)
    wait_idle(qtbot, ops)
    assert not chooser.isVisible()
    assert panel.notice.text() == (f"Linked customer {customer.customer_id}; autopay will charge "
                                   "American Express ending 8431.")
    assert _methods(panel)[0][:3] == ["American Express ending 8431", _methods(panel)[0][1], "✓ Default"]
    # Another customer id now would replace this one: the dialog says so first.
    click(qtbot, panel.link_customer_button)
    wait_idle(qtbot, ops)
    again = panel.customer_dialog
    again.typed.setText("cus_sbx_someoneElse")
    assert not again.replace_warning.isHidden()
    assert "replaces it: the 1 card or bank account saved through it will no longer be charged" in \
        again.replace_warning.text()
    assert again.link_button.text() == "Link and replace"
    again.reject()


def test_the_clients_list_names_the_method_autopay_charges(qtbot, ops, app_ctx, office, sandbox) -> None:
    from ui.clients_screen import ClientsScreen

    save_method(app_ctx, sandbox, office.harbor)
    screen = ClientsScreen(ops)
    qtbot.addWidget(screen)
    screen.reload()
    wait_idle(qtbot, ops)
    column = [c.title for c in screen.model.columns].index("Pays by")
    pays = {screen.model.index(r, 0).data(): screen.model.index(r, column).data()
            for r in range(screen.model.rowCount())}
    assert pays == {"Harbor Dental": "Autopay · Visa ending 4242", "Zephyr Labs": "Autopay · no method"}


def test_autopay_incentive_and_cap_on_the_billing_tab(qtbot, ops, app_ctx, office) -> None:
    dialog = ClientDialog(ops, None, client_id=office.harbor)
    qtbot.addWidget(dialog)
    dialog.show()
    wait_idle(qtbot, ops)
    assert dialog.autopay_discount.placeholderText() == "0 (company)"
    dialog.autopay_cap.setText("0")
    dialog.autopay_discount.setText("80")
    dialog.save()
    assert "above zero" in dialog.billing_form.rows["autopay_cap"].error.text()
    assert "from 0 to" in dialog.billing_form.rows["autopay_discount"].error.text()
    dialog.autopay_cap.setText("1,500")
    dialog.autopay_discount.setText("2.5")
    dialog.save()
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=10_000)
    from mspbill.db.models import Client

    with app_ctx.db.session() as s:
        client = s.get(Client, office.harbor)
        assert client.autopay_cap_cents == 150_000 and str(client.autopay_discount_percent) == "2.5"


# --- charge now ----------------------------------------------------------------------------------

def _charge_dialog(qtbot, ops, invoice_id: int) -> ChargeDialog:
    dialog = ChargeDialog(ops, None, invoice_id)
    shown(dialog, qtbot)
    wait_idle(qtbot, ops)
    return dialog


def test_charge_an_invoice_and_it_is_paid(qtbot, ops, app_ctx, office, session, sandbox) -> None:
    save_method(app_ctx, sandbox, office.harbor)
    dialog = _charge_dialog(qtbot, ops, office.invoice)
    assert dialog.badge.text() == "SANDBOX — no money moves"
    assert (dialog.client.text(), dialog.invoice.text(), dialog.amount.text(), dialog.method.text()) == (
        "Harbor Dental", "INV-000001", "$1,000.00", "Visa ending 4242")
    assert dialog.problems.isHidden() and dialog.cap_note.isHidden()
    assert dialog.go.text() == "Charge $1,000.00"
    shot(dialog, "charge_dialog")
    with qtbot.waitSignal(dialog.charged, timeout=10_000):
        click(qtbot, dialog.go)
    wait_idle(qtbot, ops)
    assert dialog.result_label.text() == "Charged $1,000.00 to Visa ending 4242 for INV-000001."
    assert dialog.go.isHidden()
    assert dialog.buttons.button(QDialogButtonBox.StandardButton.Cancel).text() == "Close"
    shot(dialog, "charge_dialog_done")
    inv = invoice_row(app_ctx, office.invoice)
    assert inv.status is InvoiceStatus.PAID and inv.balance_cents == 0
    with app_ctx.db.session() as s:
        payment = s.scalars(select(Payment).where(Payment.invoice_id == office.invoice)).one()
        assert (payment.amount_cents, payment.method.value) == (100_000, "card")
    assert [c.amount_cents for c in sandbox.ledger_charges()] == [100_000]


def test_a_declined_card_says_it_will_not_be_retried(qtbot, ops, app_ctx, office, session, sandbox) -> None:
    save_method(app_ctx, sandbox, office.harbor, "pm_card_visa_chargeDeclinedLostCard")
    dialog = _charge_dialog(qtbot, ops, office.invoice)
    click(qtbot, dialog.go)
    wait_idle(qtbot, ops)
    assert dialog.outcome is not None and dialog.outcome.hard_decline
    assert dialog.result_label.text() == ("Visa ending 9987 was declined for INV-000001: the card was reported lost "
                                          "(“Your card was declined”). The client must give a new card or bank "
                                          "account; it will not be retried.")
    assert "#8c1d18" in dialog.result_label.styleSheet()  # shown as a failure
    shot(dialog, "charge_declined")
    assert invoice_row(app_ctx, office.invoice).status is InvoiceStatus.OPEN
    # Next time the dialog says why it cannot charge, and the button stays off.
    again = _charge_dialog(qtbot, ops, office.second)
    assert "was declined for good" in again.problems.text() and not again.go.isEnabled()
    shot(again, "charge_refused")
    # The client's payment methods show it in red.
    panel = _client_panel(qtbot, ops, office.harbor).payments
    assert _methods(panel)[0][3].startswith("Declined for good (the card was reported lost, lost_card")
    assert "was declined for good" in panel.warnings.text()


def test_no_card_on_file_disables_the_charge(qtbot, ops, app_ctx, office, session) -> None:
    dialog = _charge_dialog(qtbot, ops, office.invoice)
    assert "has no card or bank account on file" in dialog.problems.text()
    assert not dialog.go.isEnabled()


def test_above_the_cap_the_confirmation_counts_as_approval(qtbot, ops, app_ctx, office, session, sandbox) -> None:
    from mspbill.db.models import Client

    with app_ctx.db.write_session() as s, s.begin():
        s.get(Client, office.harbor).autopay_cap_cents = 50_000
    save_method(app_ctx, sandbox, office.harbor)
    dialog = _charge_dialog(qtbot, ops, office.invoice)
    assert not dialog.cap_note.isHidden()
    assert dialog.cap_note.text().startswith("$1,000.00 is above Harbor Dental's autopay cap of $500.00.")
    shot(dialog, "charge_over_cap")
    click(qtbot, dialog.go)
    wait_idle(qtbot, ops)
    assert invoice_row(app_ctx, office.invoice).status is InvoiceStatus.PAID


def test_the_invoice_window_shows_attempts_and_checks_a_bank_debit(qtbot, ops, app_ctx, office, session,
                                                                    sandbox) -> None:
    from ui.invoice_dialog import InvoiceDialog

    save_method(app_ctx, sandbox, office.harbor, "pm_usBankAccount_success")
    window = InvoiceDialog(ops, office.invoice)
    shown(window, qtbot)
    wait_idle(qtbot, ops)
    assert not window.charge_button.isHidden()
    assert not window.tabs.isTabVisible(3)  # no attempts yet
    click(qtbot, window.charge_button)
    wait_idle(qtbot, ops)
    charge = window.findChild(ChargeDialog)
    assert charge is not None
    click(qtbot, charge.go)
    wait_idle(qtbot, ops)
    assert charge.result_label.text().startswith("The bank debit of $1,000.00 for INV-000001 has started")
    charge.reject()
    wait_idle(qtbot, ops)
    assert window.tabs.isTabVisible(3) and window.tabs.tabText(3) == "Charges (1)"
    assert window.charges.item(0, 1).text() == "Processing (bank debit)"
    assert window.charges.item(0, 3).text() == "STRIPE TEST BANK ending 6789"
    assert window.charge_button.isHidden()  # one charge in flight at a time
    assert not window.check_status_button.isHidden()
    window.tabs.setCurrentIndex(3)
    click(qtbot, window.check_status_button)
    wait_idle(qtbot, ops)
    assert window.pdf_notice.text() == ("The bank debit of $1,000.00 is still processing; it settles within about 4 "
                                        "business days, and mspbill checks it by itself.")
    shot(window, "invoice_charges_tab")


def test_check_status_colours_the_outcome_as_the_charge_dialog_does(qtbot, ops, app_ctx, office, session,
                                                                      sandbox, monkeypatch) -> None:
    from mspbill.db.models import ChargeAttemptStatus
    from mspbill.payments.charges import ChargeOutcome
    from ui.invoice_dialog import InvoiceDialog
    from ui.widgets import NOTICE_STYLES

    save_method(app_ctx, sandbox, office.harbor, "pm_usBankAccount_success")
    started = charge_invoice(app_ctx.db, sandbox, office.invoice)
    assert started.status is ChargeAttemptStatus.PROCESSING
    window = InvoiceDialog(ops, office.invoice)
    shown(window, qtbot)
    wait_idle(qtbot, ops)
    window.tabs.setCurrentIndex(3)
    click(qtbot, window.check_status_button)
    wait_idle(qtbot, ops)
    # Still processing is news, not success: blue, as in the charge dialog -- never green.
    assert window.pdf_notice.text().startswith("The bank debit of $1,000.00 is still processing")
    assert window.pdf_notice.styleSheet() == NOTICE_STYLES["info"]
    # An outcome the processor cannot tell yet is a warning.
    unknown = ChargeOutcome(attempt_id=started.attempt_id, status=ChargeAttemptStatus.UNKNOWN,
                            invoice_number="INV-000001", amount_cents=100_000, currency="USD",
                            method_label="STRIPE TEST BANK ending 6789", mode=ProcessorMode.SANDBOX,
                            message="The outcome of the charge of $1,000.00 is not known yet.")
    monkeypatch.setattr("ui.invoice_dialog.resolve_attempt", lambda _db, _gateway, _attempt_id: unknown)
    click(qtbot, window.check_status_button)
    wait_idle(qtbot, ops)
    assert window.pdf_notice.text() == unknown.message
    assert window.pdf_notice.styleSheet() == NOTICE_STYLES["warn"]


# --- refunds -----------------------------------------------------------------------------------------

def _paid_by_card(app_ctx, sandbox, office: Office) -> int:
    save_method(app_ctx, sandbox, office.harbor)
    charge_invoice(app_ctx.db, sandbox, office.invoice)
    with app_ctx.db.session() as s:
        return s.scalars(select(Payment.id).where(Payment.invoice_id == office.invoice)).one()


def test_a_refund_with_a_credit_note_keeps_the_invoice_settled(qtbot, ops, app_ctx, office, session,
                                                                sandbox) -> None:
    payment_id = _paid_by_card(app_ctx, sandbox, office)
    dialog = RefundDialog(ops, None, payment_id)
    shown(dialog, qtbot)
    wait_idle(qtbot, ops)
    assert dialog.badge.text() == "SANDBOX — no money moves"
    assert dialog.refundable.text() == "$1,000.00"
    assert dialog.credit_note.isChecked()
    assert dialog.go.text() == "Refund $1,000.00" and not dialog.go.isEnabled()  # a reason is required
    dialog.amount_field.setText("200")
    dialog.reason.setText("Firewall returned unopened")
    assert dialog.go.text() == "Refund $200.00" and dialog.go.isEnabled()
    dialog.credit_note.setChecked(False)
    assert "shows the refunded amount as due again" in dialog.credit_explained.text()
    dialog.credit_note.setChecked(True)
    shot(dialog, "refund_dialog")
    with qtbot.waitSignal(dialog.refunded, timeout=10_000):
        click(qtbot, dialog.go)
    wait_idle(qtbot, ops)
    assert dialog.result_label.text().startswith("Refunded $200.00. Credit note CN-")
    assert dialog.result_label.text().endswith("was issued, so the invoice stays settled.")
    inv = invoice_row(app_ctx, office.invoice)
    assert inv.status is InvoiceStatus.PAID and inv.balance_cents == 0
    with app_ctx.db.session() as s:
        assert refunded_by_payment(s) == {payment_id: 20_000}


def test_a_refund_needs_a_reason_and_at_most_what_is_refundable(qtbot, ops, app_ctx, office, session,
                                                                 sandbox) -> None:
    payment_id = _paid_by_card(app_ctx, sandbox, office)
    dialog = RefundDialog(ops, None, payment_id)
    shown(dialog, qtbot)
    wait_idle(qtbot, ops)
    dialog.reason.setText("Too much")
    error = dialog.form.rows["amount"].error
    assert error.isHidden() and dialog.go.isEnabled()
    height = dialog.height()
    # Above the refundable: said at the field at once, and nothing is offered, as for a negative amount.
    dialog.amount_field.setText("99999")
    assert not error.isHidden() and error.text() == "At most $1,000.00 of this payment can be refunded."
    assert dialog.go.text() == "Refund" and not dialog.go.isEnabled()
    assert dialog.height() > height  # the dialog grew to show the message
    dialog.amount_field.setText("-5")
    assert dialog.go.text() == "Refund" and not dialog.go.isEnabled()
    dialog.amount_field.setText("1000.01")
    assert not error.isHidden() and not dialog.go.isEnabled()
    dialog.amount_field.setText("1000")
    assert error.isHidden() and dialog.go.text() == "Refund $1,000.00" and dialog.go.isEnabled()
    # The longer credit-note explanation is not cut: the dialog is as tall as its content needs.
    dialog.credit_note.setChecked(False)
    QApplication.processEvents()
    layout = dialog.main_layout
    assert dialog.height() >= layout.totalHeightForWidth(dialog.width())
    label = dialog.credit_explained
    assert label.height() >= label.heightForWidth(label.width())
    # What the core refuses is shown at its field, and the dialog grows for it.
    dialog.reason.setText("x" * 501)
    click(qtbot, dialog.go)
    wait_idle(qtbot, ops)
    reason_error = dialog.form.rows["reason"].error
    assert not reason_error.isHidden() and "500 characters" in reason_error.text()
    assert dialog.height() >= layout.totalHeightForWidth(dialog.width())
    assert sandbox.ledger_refunds() == []


def test_refund_from_the_payments_screen_and_the_refunded_column(qtbot, ops, app_ctx, office, session,
                                                                 sandbox) -> None:
    from ui.payments_screen import PaymentsScreen

    payment_id = _paid_by_card(app_ctx, sandbox, office)
    screen = PaymentsScreen(ops)
    qtbot.addWidget(screen)
    screen.show()
    screen.reload()
    wait_idle(qtbot, ops)
    assert not screen.refund_button.isEnabled()
    assert screen.count_label.text() == "1 payment · received $1,000.00" and not screen.count_label.toolTip()
    screen.table.selectRow(0)
    refund = screen.refund_selected()
    assert isinstance(refund, RefundDialog)
    wait_idle(qtbot, ops)
    refund.reason.setText("Duplicate order")
    click(qtbot, refund.go)
    wait_idle(qtbot, ops)
    assert refund.result_label.text().startswith("Refunded $1,000.00.")
    column = [c.title for c in screen.model.columns].index("Refunded")
    assert screen.model.index(0, column).data() == "$1,000.00"
    # The footer's sum says what was given back, so it is not read as money kept.
    assert screen.count_label.text() == "1 payment · received $1,000.00, refunded $1,000.00"
    assert screen.count_label.toolTip() == "Kept after refunds: $0.00"
    with app_ctx.db.session() as s:
        assert refunded_by_payment(s) == {payment_id: 100_000}


def test_refund_from_the_invoice_window_without_a_credit_note(qtbot, ops, app_ctx, office, session,
                                                                sandbox) -> None:
    from ui.invoice_dialog import InvoiceDialog

    payment_id = _paid_by_card(app_ctx, sandbox, office)
    window = InvoiceDialog(ops, office.invoice)
    shown(window, qtbot)
    wait_idle(qtbot, ops)
    assert window.charge_button.isHidden()  # paid: nothing to charge
    assert window.tabs.tabText(3) == "Charges (1)"
    assert window.charges.item(0, 1).text() == "Succeeded"
    assert not window.refund_button.isEnabled()  # nothing selected yet
    window.payments.selectRow(0)
    assert window.refund_button.isEnabled()
    click(qtbot, window.refund_button)
    wait_idle(qtbot, ops)
    refund = window.findChild(RefundDialog)
    assert refund is not None and refund.payment_id == payment_id
    refund.amount_field.setText("100.00")
    refund.reason.setText("Charged twice for the cabling")
    refund.credit_note.setChecked(False)  # the client still owes it and will pay another way
    click(qtbot, refund.go)
    wait_idle(qtbot, ops)
    assert refund.result_label.text() == ("Refunded $100.00. INV-000001 now shows $100.00 due again; issue a "
                                          "credit note if the client no longer owes it.")
    refund.reject()
    wait_idle(qtbot, ops)
    inv = invoice_row(app_ctx, office.invoice)
    assert inv.status is InvoiceStatus.OPEN and inv.balance_cents == 10_000
    assert window.payments.item(0, 5).text() == "$100.00"  # the Refunded column
    assert not window.charge_button.isHidden()  # owed again: it can be charged


def test_the_invoices_list_offers_charge_now_for_an_open_invoice(qtbot, ops, app_ctx, office, session,
                                                                 sandbox) -> None:
    from ui.invoices_screen import InvoicesScreen

    save_method(app_ctx, sandbox, office.harbor)
    screen = InvoicesScreen(ops)
    qtbot.addWidget(screen)
    screen.show()
    screen.reload()
    wait_idle(qtbot, ops)
    screen.select_id(office.second)
    assert screen.charge_button.isEnabled()
    assert "Charge now…" in [a.text() for a in screen.context_menu().actions()]
    click(qtbot, screen.charge_button)
    wait_idle(qtbot, ops)
    dialog = screen.findChild(ChargeDialog)
    assert dialog is not None and dialog.amount.text() == "$250.00"
    click(qtbot, dialog.go)
    wait_idle(qtbot, ops)
    assert invoice_row(app_ctx, office.second).status is InvoiceStatus.PAID
    # The list was reloaded: the paid invoice can no longer be charged.
    screen.select_id(office.second)
    assert not screen.charge_button.isEnabled()


# --- live mode -----------------------------------------------------------------------------------------

class LiveSandbox:
    """The sandbox dressed as Stripe LIVE: there is no live Stripe here, and the app must not care."""

    def __init__(self, inner: SandboxGateway):
        self.inner = inner

    @property
    def mode(self) -> ProcessorMode:
        return ProcessorMode.LIVE

    def __getattr__(self, name: str):
        if name == "complete_setup_session":
            raise AttributeError(name)  # live Stripe has no simulated client
        return getattr(self.inner, name)


def use_live_stripe(app_ctx, session: PaymentSession, sandbox: SandboxGateway, monkeypatch) -> LiveSandbox:
    """Stripe with a live key, as the settings and the keyring would say; the sandbox answers the calls."""
    live = LiveSandbox(sandbox)
    use_processor(app_ctx, "stripe")
    monkeypatch.setattr("mspbill.payments.processor.cached_key_mode", lambda: ProcessorMode.LIVE)
    session.gateway_factory = lambda _db: live
    return live


def test_live_mode_asks_once_per_session_before_real_money_moves(qtbot, ops, app_ctx, office, session,
                                                                 sandbox, monkeypatch) -> None:
    live = use_live_stripe(app_ctx, session, sandbox, monkeypatch)
    save_method(app_ctx, live, office.harbor)
    first = _charge_dialog(qtbot, ops, office.invoice)
    assert first.badge.text() == "LIVE — real money"
    click(qtbot, first.go)
    confirm = first.confirm_dialog
    assert isinstance(confirm, LiveConfirmDialog) and confirm.isVisible()
    assert "$1,000.00" in confirm.text.text() and "Harbor Dental" in confirm.text.text()
    assert "real money" in confirm.text.text()
    assert confirm.understood.text() == "I understand this charges real money"
    assert not confirm.go.isEnabled()
    shot(confirm, "live_confirmation")
    wait_idle(qtbot, ops)
    assert sandbox.ledger_charges() == []  # nothing charged while it asks
    confirm.understood.setChecked(True)
    assert confirm.go.text() == "Charge $1,000.00"
    click(qtbot, confirm.go)
    wait_idle(qtbot, ops)
    assert first.result_label.text() == "Charged $1,000.00 to Visa ending 4242 for INV-000001."
    assert session.live_confirmed
    # The second charge of the session goes straight ahead.
    second = _charge_dialog(qtbot, ops, office.second)
    click(qtbot, second.go)
    assert second.confirm_dialog is None
    wait_idle(qtbot, ops)
    assert second.result_label.text() == "Charged $250.00 to Visa ending 4242 for INV-000002."
    assert len(sandbox.ledger_charges()) == 2


def test_cancelling_the_live_confirmation_charges_nothing(qtbot, ops, app_ctx, office, session, sandbox,
                                                          monkeypatch) -> None:
    live = use_live_stripe(app_ctx, session, sandbox, monkeypatch)
    save_method(app_ctx, live, office.harbor)
    dialog = _charge_dialog(qtbot, ops, office.invoice)
    click(qtbot, dialog.go)
    dialog.confirm_dialog.reject()
    wait_idle(qtbot, ops)
    assert not session.live_confirmed and sandbox.ledger_charges() == []
    assert dialog.go.isEnabled()  # it can still be charged, after the question
    # A new app session (a new main window's payment session) would ask again: nothing is saved.
    from ui.ops import Ops

    fresh = PaymentSession.for_ops(Ops(app_ctx.db))
    assert not fresh.live_confirmed


# --- the main window and the background sync ---------------------------------------------------------

def test_the_main_window_shows_the_mode_and_notes_what_the_sync_found(qtbot, ops, app_ctx, office, sandbox,
                                                                      monkeypatch) -> None:
    from ui.main_window import MainWindow
    from ui.payment_sync import SYNC_INTERVAL_MS

    monkeypatch.setattr("ui.main_window.MainWindow.start_background_mail", lambda self: None)
    link = create_setup_link(app_ctx.db, sandbox, office.harbor)
    sandbox.complete_setup_session(link.url.removeprefix(SETUP_URL_PREFIX), "pm_card_visa")
    window = MainWindow(app_ctx, ops)
    qtbot.addWidget(window)
    window.show()
    wait_idle(qtbot, ops)
    assert window.mode_badge.text() == "SANDBOX — no money moves" and not window.mode_badge.isHidden()
    assert window.payment_sync.timer.interval() == SYNC_INTERVAL_MS
    with qtbot.waitSignal(window.payment_sync.finished, timeout=10_000):
        assert window.payment_sync.sync()
    wait_idle(qtbot, ops)
    assert window.payments_status.text() == "Payments: 1 card saved from setup links"
    shot(window, "main_window_sync_note")
    assert "Saved from a setup link — Harbor Dental: Visa ending 4242" in window.payments_status.toolTip()
    # Turning payments off hides the badge.
    use_processor(app_ctx, "none")
    window.payment_session.refresh_mode(window)
    wait_idle(qtbot, ops)
    assert window.mode_badge.isHidden()
    window.close()


def test_a_failing_background_sync_is_a_note_never_a_dialog(qtbot, ops, app_ctx, office, session, sandbox) -> None:
    from mspbill.payments.gateway import ProcessorUnavailable
    from ui.payment_sync import PaymentSync

    def broken(_db):
        raise ProcessorUnavailable("Could not reach Stripe: the network is down.")

    session.gateway_factory = broken
    sync = PaymentSync(ops, session)
    with qtbot.waitSignal(sync.finished, timeout=10_000) as finished:
        sync.sync()
    wait_idle(qtbot, ops)
    assert finished.args == ["Payments: could not reach the processor",
                             "Could not reach Stripe: the network is down.", True, False]
    assert not sync.running
