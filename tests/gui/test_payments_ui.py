"""Manual payments through the real dialog and the Payments screen."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QDialogButtonBox
from sqlalchemy import func, select

from mspbill.clients import ClientDraft, create_client
from mspbill.company import CompanyDraft, save_company
from mspbill.db.models import Payment
from mspbill.invoicing import (
    ItemDraft,
    OneTimeDraft,
    client_credit_balance,
    create_one_time_invoice,
    invoice_detail,
    issue_invoices,
    void_invoice,
)
from mspbill.payments.manual import record_payment
from mspbill.periods import Month
from tests.gui.conftest import wait_idle
from ui.payment_dialog import RecordPaymentDialog
from ui.payments_screen import PaymentsScreen

TODAY = dt.date.today()
LAST_MONTH = Month.of(TODAY).shift(-1)


@dataclass(frozen=True)
class Office:
    harbor: int         # client
    zephyr: int         # client
    harbor_open: int    # INV-000001, $1,000.00 open
    zephyr_open: int    # INV-000002, $250.00 open
    harbor_paid: int    # INV-000003, $80.00 paid by check last month
    harbor_void: int    # INV-000004, void
    harbor_draft: int   # not issued


def _invoice(session, client_id: int, title: str, price: str) -> int:
    return create_one_time_invoice(session, OneTimeDraft(client_id, title, lines=[ItemDraft(title, "1", price)])).id


@pytest.fixture
def office(app_ctx) -> Office:
    with app_ctx.db.write_session() as s, s.begin():
        save_company(s, CompanyDraft(name="Acme IT"))
        harbor = create_client(s, ClientDraft(legal_name="Harbor Dental", billing_emails="ap@harbor.example")).id
        zephyr = create_client(s, ClientDraft(legal_name="Zephyr Labs", billing_emails="ap@zephyr.example")).id
        ids = [_invoice(s, harbor, "Firewall appliance", "1000.00"), _invoice(s, zephyr, "Server upgrade", "250.00"),
               _invoice(s, harbor, "Cabling", "80.00"), _invoice(s, harbor, "Wrong invoice", "10.00")]
        issue_invoices(s, ids, issue_date=LAST_MONTH.first_day)
        record_payment(s, ids[2], "80", "check", reference="5521", received_on=LAST_MONTH.first_day)
        void_invoice(s, ids[3], "Sent to the wrong client")
        draft = _invoice(s, harbor, "Not yet issued", "42.00")
    return Office(harbor, zephyr, ids[0], ids[1], ids[2], ids[3], draft)


def _payments(ctx) -> int:
    with ctx.db.session() as s:
        return s.scalar(select(func.count(Payment.id))) or 0


def _row(ctx, invoice_id: int):
    with ctx.db.session() as s:
        return invoice_detail(s, invoice_id).row


def _save(qtbot, dialog: RecordPaymentDialog) -> None:
    qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.StandardButton.Save), Qt.MouseButton.LeftButton)


def _open_dialog(qtbot, ops, invoice_id: int | None = None) -> RecordPaymentDialog:
    dialog = RecordPaymentDialog(ops, invoice_id=invoice_id)
    qtbot.addWidget(dialog)
    dialog.show()
    wait_idle(qtbot, ops)
    return dialog


def test_partial_then_full_payment(qtbot, ops, app_ctx, office):
    dialog = _open_dialog(qtbot, ops, office.harbor_open)
    assert dialog.invoice_label.text() == "INV-000001"
    assert dialog.client_label.text() == "Harbor Dental"
    assert dialog.amount.text() == "1000.00"
    assert "Balance $1,000.00" in dialog.facts.text()
    assert dialog.received.date().toPython() == TODAY
    assert dialog.received.maximumDate().toPython() == TODAY
    assert dialog.reference.placeholderText() == "Check number, wire reference…"
    assert [dialog.method.itemText(i) for i in range(dialog.method.count())][:2] == ["Check", "Cash"]
    dialog.amount.setText("$400")
    dialog.method.setCurrentIndex(dialog.method.findData("wire"))
    dialog.reference.setText("FW-8812")
    dialog.received.setDate(dialog.received.date().addDays(-2))
    with qtbot.waitSignal(dialog.saved, timeout=10_000) as saved:
        _save(qtbot, dialog)
    assert saved.args == [office.harbor_open]
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=10_000)
    row = _row(app_ctx, office.harbor_open)
    assert (row.status, row.balance_cents) == ("open", 60_000)
    with app_ctx.db.session() as s:
        payment = s.scalar(select(Payment).where(Payment.invoice_id == office.harbor_open))
        assert (payment.amount_cents, payment.method.value, payment.reference) == (40_000, "wire", "FW-8812")
        assert payment.received_on == TODAY - dt.timedelta(days=2)

    dialog = _open_dialog(qtbot, ops, office.harbor_open)
    assert dialog.amount.text() == "600.00"
    _save(qtbot, dialog)
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=10_000)
    row = _row(app_ctx, office.harbor_open)
    assert (row.status, row.balance_cents) == ("paid", 0)


def test_bad_amount_shows_at_field_and_saves_nothing(qtbot, ops, app_ctx, office):
    before = _payments(app_ctx)
    dialog = _open_dialog(qtbot, ops, office.zephyr_open)
    dialog.amount.setText("12.345")
    dialog.reference.setText("x" * 101)
    _save(qtbot, dialog)
    qtbot.waitUntil(lambda: not dialog.summary.isHidden(), timeout=10_000)
    wait_idle(qtbot, ops)
    assert "3 decimal places" in dialog.form.rows["amount"].error.text()
    assert "limited to 100 characters" in dialog.form.rows["reference"].error.text()
    assert "2 problems" in dialog.summary.text()
    assert dialog.isVisible() and dialog.amount.isEnabled()
    assert _payments(app_ctx) == before

    dialog.amount.setText("0")
    dialog.reference.setText("")
    _save(qtbot, dialog)
    qtbot.waitUntil(lambda: "more than zero" in dialog.form.rows["amount"].error.text(), timeout=10_000)
    assert dialog.form.rows["reference"].error.isHidden()
    assert _payments(app_ctx) == before


def test_overpayment_declined_then_kept_as_credit(qtbot, ops, app_ctx, office, monkeypatch):
    before = _payments(app_ctx)
    dialog = _open_dialog(qtbot, ops, office.zephyr_open)
    asked: list[str] = []
    answer = {"value": False}

    def confirm(message: str) -> bool:
        asked.append(message)
        return answer["value"]

    monkeypatch.setattr(dialog, "confirm_overpayment", confirm)
    dialog.amount.setText("300")
    _save(qtbot, dialog)
    qtbot.waitUntil(lambda: bool(asked), timeout=10_000)
    wait_idle(qtbot, ops)
    assert "$300.00 is more than INV-000002 owes" in asked[0]
    assert "keep $50.00 as client credit" in asked[0]
    assert dialog.isVisible() and dialog.amount.isEnabled()
    assert dialog.summary.isHidden()
    assert _payments(app_ctx) == before
    assert _row(app_ctx, office.zephyr_open).balance_cents == 25_000

    answer["value"] = True
    _save(qtbot, dialog)
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=10_000)
    wait_idle(qtbot, ops)
    assert len(asked) == 2
    assert _payments(app_ctx) == before + 1
    row = _row(app_ctx, office.zephyr_open)
    assert (row.status, row.balance_cents) == ("paid", 0)
    with app_ctx.db.session() as s:
        assert client_credit_balance(s, office.zephyr) == 5_000
        payment = s.scalar(select(Payment).where(Payment.invoice_id == office.zephyr_open))
        assert (payment.amount_cents, payment.applied_cents) == (30_000, 25_000)


def test_chooser_lists_only_unpaid_invoices(qtbot, ops, app_ctx, office):
    dialog = _open_dialog(qtbot, ops)
    combo = dialog.invoice
    items = [combo.itemText(i) for i in range(combo.count())]
    assert items == ["", "INV-000002 — Zephyr Labs — balance $250.00",  # newest first
                     "INV-000001 — Harbor Dental — balance $1,000.00"]
    assert {combo.itemData(i) for i in range(1, combo.count())} == {office.harbor_open, office.zephyr_open}
    assert dialog.amount.text() == ""

    completer = combo.completer()
    completer.setCompletionPrefix("zephyr")
    assert completer.completionCount() == 1
    assert completer.currentCompletion().startswith("INV-000002")

    _save(qtbot, dialog)  # nothing chosen
    qtbot.waitUntil(lambda: bool(dialog.form.rows["invoice"].error.text()), timeout=10_000)
    assert "Choose the invoice" in dialog.form.rows["invoice"].error.text()

    combo.setCurrentIndex(combo.findData(office.zephyr_open))
    assert dialog.amount.text() == "250.00"
    assert "Balance $250.00" in dialog.facts.text()
    combo.setCurrentIndex(combo.findData(office.harbor_open))
    assert dialog.amount.text() == "1000.00"  # untouched, so it follows the invoice
    dialog.amount.setText("125.50")
    combo.setCurrentIndex(combo.findData(office.zephyr_open))
    assert dialog.amount.text() == "125.50"  # typed: kept

    combo.lineEdit().setText("no such invoice")
    assert dialog.selected_invoice_id() is None
    combo.setCurrentIndex(combo.findData(office.zephyr_open))
    assert dialog.selected_invoice_id() == office.zephyr_open
    dialog.method.setCurrentIndex(dialog.method.findData("cash"))
    with qtbot.waitSignal(dialog.saved, timeout=10_000) as saved:
        _save(qtbot, dialog)
    assert saved.args == [office.zephyr_open]
    assert _row(app_ctx, office.zephyr_open).balance_cents == 12_450


def test_screen_lists_filters_and_totals(qtbot, ops, app_ctx, office):
    with app_ctx.db.write_session() as s, s.begin():
        record_payment(s, office.harbor_open, "400", "wire", reference="FW-8812", received_on=TODAY)
        record_payment(s, office.zephyr_open, "300", "ach", received_on=TODAY, credit_excess=True)
    screen = PaymentsScreen(ops)
    qtbot.addWidget(screen)
    screen.resize(1100, 500)
    screen.show()
    screen.ensure_loaded()
    wait_idle(qtbot, ops)
    model = screen.model
    assert model.rowCount() == 3
    headers = [model.headerData(c, Qt.Orientation.Horizontal) for c in range(model.columnCount())]
    assert headers == ["Received", "Client", "Invoice", "Method", "Reference", "Amount", "To credit", "Refunded"]
    first = [model.index(0, c).data() for c in range(model.columnCount())]
    assert first[0] == TODAY.isoformat()  # newest first
    by_invoice = {model.index(r, 2).data(): [model.index(r, c).data() for c in range(7)] for r in range(3)}
    assert by_invoice["INV-000002"][1:] == ["Zephyr Labs", "INV-000002", "ACH (outside Stripe)", "",
                                            "$300.00", "$50.00"]
    assert by_invoice["INV-000003"][5:] == ["$80.00", ""]
    assert screen.count_label.text() == "3 payments · received $780.00 (of which $50.00 to credit)"

    screen.search.setText("fw-88")
    qtbot.waitUntil(lambda: model.rowCount() == 1, timeout=2_000)
    assert model.index(0, 2).data() == "INV-000001"
    assert screen.count_label.text() == "1 of 3 payments · received $400.00"
    screen.search.setText("harbor")
    qtbot.waitUntil(lambda: model.rowCount() == 2, timeout=2_000)
    screen.search.setText("INV-000002")
    qtbot.waitUntil(lambda: model.rowCount() == 1, timeout=2_000)
    screen.search.clear()
    qtbot.waitUntil(lambda: model.rowCount() == 3, timeout=2_000)

    months = [screen.month.itemText(i) for i in range(screen.month.count())]
    assert months[0] == "All dates" and len(months) == 25
    assert months[1] == Month.of(TODAY).label and months[2] == LAST_MONTH.label
    screen.month.setCurrentIndex(2)
    assert model.rowCount() == 1 and model.index(0, 4).data() == "5521"
    assert screen.count_label.text() == "1 of 3 payments · received $80.00"
    screen.month.setCurrentIndex(3)
    assert model.rowCount() == 0
    assert screen.count_label.text() == "0 of 3 payments"
    screen.month.setCurrentIndex(0)
    assert model.rowCount() == 3

    screen.table.sortByColumn(5, Qt.SortOrder.AscendingOrder)
    assert [model.index(r, 5).data() for r in range(3)] == ["$80.00", "$300.00", "$400.00"]

    rect = screen.table.visualRect(model.index(0, 1))
    with qtbot.waitSignal(screen.open_invoice, timeout=2_000) as opened:
        QTest.mouseClick(screen.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        QTest.mouseDClick(screen.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert opened.args == [office.harbor_paid]


def test_record_from_screen_reloads_and_signals(qtbot, ops, app_ctx, office):
    screen = PaymentsScreen(ops)
    qtbot.addWidget(screen)
    screen.show()
    screen.ensure_loaded()
    wait_idle(qtbot, ops)
    assert screen.model.rowCount() == 1
    qtbot.mouseClick(screen.record_button, Qt.MouseButton.LeftButton)
    dialog = screen.findChild(RecordPaymentDialog)
    assert dialog is not None
    wait_idle(qtbot, ops)
    dialog.invoice.setCurrentIndex(dialog.invoice.findData(office.harbor_open))
    dialog.reference.setText("Check 1042")
    with qtbot.waitSignal(screen.changed, timeout=10_000):
        _save(qtbot, dialog)
    wait_idle(qtbot, ops)
    assert screen.model.rowCount() == 2
    assert "received $1,080.00" in screen.count_label.text()
    assert _row(app_ctx, office.harbor_open).status == "paid"
