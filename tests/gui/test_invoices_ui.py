"""Invoicing through the real screen and dialogs: generate a period, filter, act, detail, one-time invoices."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

import pytest
from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtWidgets import QDialogButtonBox, QLabel, QMessageBox, QWidget
from sqlalchemy import func, select

from mspbill.agreements import LineDraft
from mspbill.clients import ClientDraft, create_client
from mspbill.company import CompanyDraft, save_company
from mspbill.db.models import Client, Invoice, InvoiceKind, InvoiceStatus
from mspbill.invoicing import (
    ItemDraft,
    OneTimeDraft,
    create_credit_note,
    create_one_time_invoice,
    issue_invoices,
    void_invoice,
)
from mspbill.payments.manual import record_payment
from mspbill.periods import Month
from tests.billing_helpers import (
    days,
    make_agreement,
    make_client,
    prorated,
    setup_office,
)
from tests.gui.conftest import wait_idle
from ui import invoice_actions as actions
from ui.generate_dialog import GenerateDialog
from ui.invoice_actions import InvoiceRef, IssueDialog, ReasonDialog
from ui.invoice_dialog import InvoiceDialog
from ui.invoices_screen import InvoicesScreen, status_text
from ui.lines_editor import (
    COL_AMOUNT,
    COL_DESC,
    COL_PRICE,
    COL_QTY,
    COL_TAX,
    INVALID_BRUSH,
)
from ui.one_time_dialog import OneTimeInvoiceDialog

TODAY = dt.date.today()
MONTH = Month.of(TODAY)
LAST_MONTH = MONTH.shift(-1)


# --- helpers -------------------------------------------------------------------

def _click(qtbot, button) -> None:
    assert button.isEnabled(), button.text()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def _opened(parent: QWidget, cls):
    """The one dialog of `cls` that `parent` has open right now."""
    found = [w for w in parent.findChildren(cls) if w.isVisible()]
    assert len(found) == 1, found
    return found[0]


def _button(box: QDialogButtonBox, text: str):
    matches = [b for b in box.buttons() if b.text() == text]
    assert matches, [b.text() for b in box.buttons()]
    return matches[0]


def _screen(qtbot, ops) -> InvoicesScreen:
    screen = InvoicesScreen(ops)
    qtbot.addWidget(screen)
    screen.resize(1200, 700)
    screen.show()
    screen.reload()
    wait_idle(qtbot, ops)
    return screen


def _numbers(screen: InvoicesScreen) -> list[str]:
    return sorted(r.display_number for r in screen.model.visible_rows())


def _select(screen: InvoicesScreen, invoice_id: int) -> None:
    row = screen.model.find_row(lambda r: r.id == invoice_id)
    assert row >= 0, invoice_id
    screen.table.clearSelection()
    screen.table.selectRow(row)
    assert [r.id for r in screen.selected_rows()] == [invoice_id]


def _select_all(screen: InvoicesScreen) -> None:
    sel = screen.table.selectionModel()
    flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
    for row in range(screen.model.rowCount()):
        sel.select(screen.model.index(row, 0), flags)


def _inv(ctx, invoice_id: int) -> Invoice | None:
    with ctx.db.session() as s:
        inv = s.get(Invoice, invoice_id)
        if inv is not None:
            s.expunge(inv)
        return inv


def _count(ctx, *where) -> int:
    with ctx.db.session() as s:
        return s.scalar(select(func.count(Invoice.id)).where(*where)) or 0


def _client_id(session, name: str) -> int:
    return session.scalar(select(Client.id).where(Client.legal_name == name))


def _cells(table, column: int) -> list[str]:
    return [table.item(r, column).text() for r in range(table.rowCount())]


# --- an office with an invoice in every state ------------------------------------

@dataclass(frozen=True)
class Office:
    harbor: int          # 10% tax, 15-day terms
    zephyr: int          # no tax, 30-day terms
    harbor_overdue: int  # INV-000001 $1,100.00 (1,000 + tax), issued the 1st of last month
    harbor_paid: int     # INV-000002 $80.00, paid by check
    harbor_void: int     # INV-000003 void
    zephyr_open: int     # INV-000004 $250.00 issued today, credit note CN-000001 of $50 → balance $200
    credit_note: int
    harbor_draft: int    # $42.00 + tax
    zephyr_draft: int    # $120.00


def _one_time(s, client_id: int, title: str, price: str, taxable: bool = True) -> int:
    return create_one_time_invoice(
        s, OneTimeDraft(client_id, title, lines=[ItemDraft(title, "1", price, taxable)])).id


@pytest.fixture
def office(app_ctx) -> Office:
    with app_ctx.db.write_session() as s, s.begin():
        save_company(s, CompanyDraft(name="Acme IT"))
        harbor = create_client(s, ClientDraft(legal_name="Harbor Dental", billing_emails="ap@harbor.example",
                                              tax_rate="10", payment_terms_days="15")).id
        zephyr = create_client(s, ClientDraft(legal_name="Zephyr Labs", billing_emails="ap@zephyr.example")).id
        old = [_one_time(s, harbor, "Firewall appliance", "1000.00"),
               _one_time(s, harbor, "Cabling", "80.00", taxable=False),
               _one_time(s, harbor, "Wrong invoice", "10.00", taxable=False)]
        issue_invoices(s, old, issue_date=LAST_MONTH.first_day)
        record_payment(s, old[1], "80", "check", reference="5521", received_on=LAST_MONTH.first_day)
        void_invoice(s, old[2], "Sent to the wrong client")
        zephyr_open = _one_time(s, zephyr, "Server upgrade", "250.00")
        issue_invoices(s, [zephyr_open], issue_date=TODAY)
        note = create_credit_note(s, zephyr_open, "Late delivery", "50").id
        harbor_draft = _one_time(s, harbor, "Printer toner", "42.00")
        zephyr_draft = _one_time(s, zephyr, "Laptop setup", "120.00")
    return Office(harbor, zephyr, old[0], old[1], old[2], zephyr_open, note, harbor_draft, zephyr_draft)


# --- generating a period ---------------------------------------------------------

@dataclass(frozen=True)
class Agreements:
    harbor: int
    zephyr: int
    mid_start: dt.date


@pytest.fixture
def agreements(app_ctx) -> Agreements:
    db = app_ctx.db
    setup_office(db)
    harbor = make_client(db, "Harbor Dental", tax_rate="10")
    zephyr = make_client(db, "Zephyr Labs")
    orchard = make_client(db, "Orchard Pediatrics")
    quarry = make_client(db, "Quarry Hill Engineering")
    mid = MONTH.first_day + dt.timedelta(days=14)
    a1 = make_agreement(db, harbor, LAST_MONTH.shift(-1).first_day.isoformat(),
                        [LineDraft("Managed workstations", "10", "50.00")])
    a2 = make_agreement(db, zephyr, mid.isoformat(), [LineDraft("Cloud backup (per TB)", "2", "95.00")],
                        name="Backup")
    make_agreement(db, orchard, MONTH.shift(14).first_day.isoformat(), [LineDraft("Managed servers", "1", "195")])
    make_agreement(db, quarry, LAST_MONTH.shift(-3).first_day.isoformat(), [LineDraft("Firewall", "1", "75")],
                   end=LAST_MONTH.last_day.isoformat(), name="Firewall monitoring")
    return Agreements(a1, a2, mid)


def _open_generate(qtbot, ops, screen: InvoicesScreen, month: Month) -> GenerateDialog:
    dialog = screen.open_generate()
    assert isinstance(dialog, GenerateDialog)
    wait_idle(qtbot, ops)
    idx = dialog.period.findData(str(month))
    assert idx >= 0
    dialog.period.setCurrentIndex(idx)
    wait_idle(qtbot, ops)
    assert dialog.plan is not None and dialog.plan.month == month
    return dialog


def test_generate_preview_create_then_nothing_left(qtbot, ops, app_ctx, agreements):
    screen = _screen(qtbot, ops)
    assert screen.model.rowCount() == 0
    dialog = _open_generate(qtbot, ops, screen, MONTH)

    zephyr_cents = prorated("2", "95.00", days(agreements.mid_start, MONTH.last_day), MONTH.last_day.day)
    total = 55_000 + zephyr_cents
    assert dialog.tabs.tabText(0) == "To create (2)"
    assert dialog.tabs.tabText(1) == "Left out (2)"
    t = dialog.create_table
    assert _cells(t, 0) == ["Harbor Dental", "Zephyr Labs"]
    assert _cells(t, 1) == [f"Managed IT — {MONTH.label}", f"Backup — {MONTH.label}"]
    assert _cells(t, 2) == ["", "prorated"]
    assert _cells(t, 3) == ["$500.00", f"${zephyr_cents / 100:,.2f}"]
    assert _cells(t, 4) == ["$50.00", "$0.00"]
    assert _cells(t, 5) == ["$550.00", f"${zephyr_cents / 100:,.2f}"]
    assert f"2 invoices for {MONTH.label}, ${total / 100:,.2f} in all." in dialog.summary.text()
    left = dict(zip(_cells(dialog.left_out_table, 0), _cells(dialog.left_out_table, 2), strict=True))
    assert left == {"Orchard Pediatrics": f"Starts {MONTH.shift(14).first_day.isoformat()}",
                    "Quarry Hill Engineering": f"Ended {LAST_MONTH.last_day.isoformat()}"}
    assert dialog.create_button.text() == "Create 2 drafts"
    assert _count(app_ctx) == 0  # a preview writes nothing

    with qtbot.waitSignal(dialog.generated, timeout=10_000) as generated:
        _click(qtbot, dialog.create_button)
    assert generated.args[0] == str(MONTH)
    wait_idle(qtbot, ops)
    assert not dialog.isVisible()
    assert _count(app_ctx, Invoice.status == InvoiceStatus.DRAFT) == 2
    assert screen.period.currentData() == str(MONTH)
    assert screen.status.currentData() is None
    assert not screen.notice.isHidden()
    assert screen.notice.text() == (f"Created 2 draft invoices for {MONTH.label}. They are drafts: review them "
                                    "on the Invoices screen, then Issue.")
    assert sorted(r.client_name for r in screen.model.visible_rows()) == ["Harbor Dental", "Zephyr Labs"]
    assert all(r.status == "draft" and r.number is None for r in screen.model.visible_rows())
    screen.status.setCurrentIndex(screen.status.findData("draft"))
    wait_idle(qtbot, ops)
    assert screen.notice.isHidden()  # the user moved on: the notice is no longer news
    assert screen.model.rowCount() == 2

    again = _open_generate(qtbot, ops, screen, MONTH)
    assert again is not dialog
    assert again.create_button.text() == "Nothing to create"
    assert not again.create_button.isEnabled()
    assert again.tabs.tabText(0) == "To create (0)"
    assert again.summary.text().startswith(f"Nothing to generate for {MONTH.label}.")
    reasons = _cells(again.left_out_table, 2)
    assert reasons.count(f"Draft for {MONTH.label} waiting to be issued") == 2
    again.reject()
    assert _count(app_ctx) == 2


def test_generate_and_issue_straight_away_with_gapless_numbers(qtbot, ops, app_ctx, agreements):
    # One invoice issued before, one draft deleted: the period's numbers follow on without a gap.
    with app_ctx.db.write_session() as s, s.begin():
        earlier = _one_time(s, _client_id(s, "Harbor Dental"), "Site survey", "300.00")
        issue_invoices(s, [earlier], issue_date=TODAY)
        throwaway = _one_time(s, _client_id(s, "Zephyr Labs"), "Oops", "5.00")
    screen = _screen(qtbot, ops)
    _select(screen, throwaway)
    actions.delete(ops, screen, actions.InvoiceRef.of(screen.selected_rows()[0]), screen.after_change,
                   confirm=lambda _text: True)
    wait_idle(qtbot, ops)
    assert _inv(app_ctx, throwaway) is None

    dialog = _open_generate(qtbot, ops, screen, MONTH)
    dialog.issue_now.setChecked(True)
    assert dialog.create_button.text() == "Create 2 drafts, then issue"
    _click(qtbot, dialog.create_button)
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=10_000)
    wait_idle(qtbot, ops)
    with app_ctx.db.session() as s:
        generated = list(s.scalars(select(Invoice).where(Invoice.agreement_id.is_not(None))
                                   .order_by(Invoice.number_seq)))
        assert [(i.status, i.number, i.issue_date) for i in generated] == [
            (InvoiceStatus.OPEN, "INV-000002", TODAY), (InvoiceStatus.OPEN, "INV-000003", TODAY)]
        seqs = sorted(s.scalars(select(Invoice.number_seq).where(Invoice.kind == InvoiceKind.INVOICE)))
        assert seqs == [1, 2, 3]
    assert "issued 2 drafts: INV-000002 to INV-000003." in screen.notice.text()
    # The period filter shows the month's generated invoices and the one-time invoice issued in it.
    assert screen.period.currentData() == str(MONTH)
    assert _numbers(screen) == ["INV-000001", "INV-000002", "INV-000003"]


# --- the screen's filters and totals ---------------------------------------------

ALL_NUMBERS = ["CN-000001", "Draft", "Draft", "INV-000001", "INV-000002", "INV-000003", "INV-000004"]


def test_status_client_period_and_search_filters(qtbot, ops, app_ctx, office):
    screen = _screen(qtbot, ops)
    assert _numbers(screen) == ALL_NUMBERS  # invoices and credit notes alike
    overdue_days = (TODAY - (LAST_MONTH.first_day + dt.timedelta(days=15))).days
    assert overdue_days > 0
    assert screen.count_label.text() == "7 invoices · unpaid $1,300.00 · overdue $1,100.00"
    by_id = {r.id: r for r in screen.model.visible_rows()}
    assert status_text(by_id[office.harbor_overdue]) == f"Overdue {overdue_days} day{'s' if overdue_days != 1 else ''}"
    assert status_text(by_id[office.zephyr_open]) == "Part paid"
    assert status_text(by_id[office.credit_note]) == "Credit note"
    row = screen.model.find_row(lambda r: r.id == office.harbor_overdue)
    status_col = [c.title for c in screen.model.columns].index("Status")
    assert screen.model.index(row, status_col).data().startswith("Overdue ")
    assert screen.model.index(row, status_col).data(Qt.ItemDataRole.ForegroundRole).name() == "#b3261e"

    def status(label: str) -> list[str]:
        screen.status.setCurrentIndex(screen.status.findText(label))
        wait_idle(qtbot, ops)
        return _numbers(screen)

    assert status("Drafts") == ["Draft", "Draft"]
    assert status("Unpaid") == ["INV-000001", "INV-000004"]
    assert screen.count_label.text() == "2 invoices · unpaid $1,300.00 · overdue $1,100.00"
    assert status("Overdue") == ["INV-000001"]
    assert screen.count_label.text() == "1 invoice · unpaid $1,100.00 · overdue $1,100.00"
    assert status("Paid") == ["INV-000002"]  # the credit note (stored as paid) is not a paid invoice
    assert screen.count_label.text() == "1 invoice"
    assert status("Void") == ["INV-000003"]
    assert status("Credit notes") == ["CN-000001"]
    assert status("All invoices") == ALL_NUMBERS

    screen.client.setCurrentIndex(screen.client.findData(office.zephyr))
    wait_idle(qtbot, ops)
    assert _numbers(screen) == ["CN-000001", "Draft", "INV-000004"]
    assert screen.count_label.text() == "3 invoices · unpaid $200.00"

    screen.client.setCurrentIndex(0)
    screen.period.setCurrentIndex(screen.period.findData(str(LAST_MONTH)))
    wait_idle(qtbot, ops)
    assert _numbers(screen) == ["INV-000001", "INV-000002", "INV-000003"]
    screen.period.setCurrentIndex(screen.period.findData(str(MONTH)))
    wait_idle(qtbot, ops)
    assert _numbers(screen) == ["CN-000001", "INV-000004"]
    screen.period.setCurrentIndex(0)
    wait_idle(qtbot, ops)

    screen.search.setText("cabling")
    qtbot.waitUntil(lambda: screen.model.rowCount() == 1, timeout=5_000)
    assert _numbers(screen) == ["INV-000002"]
    assert screen.count_label.text() == "1 of 7 invoices"
    screen.search.setText("zephyr")
    qtbot.waitUntil(lambda: screen.model.rowCount() == 3, timeout=5_000)
    screen.search.setText("INV-000004")  # the invoice, and the credit note titled after it
    qtbot.waitUntil(lambda: screen.model.rowCount() == 2, timeout=5_000)
    assert _numbers(screen) == ["CN-000001", "INV-000004"]
    screen.search.clear()
    qtbot.waitUntil(lambda: screen.model.rowCount() == 7, timeout=5_000)


# --- actions from the screen ------------------------------------------------------

def test_issue_selected_drafts(qtbot, ops, app_ctx, office):
    screen = _screen(qtbot, ops)
    screen.status.setCurrentIndex(screen.status.findData("draft"))
    wait_idle(qtbot, ops)
    _select_all(screen)
    assert len(screen.selected_rows()) == 2
    assert screen.issue_button.text() == "Issue 2…"
    assert not screen.void_button.isEnabled() and not screen.open_button.isEnabled()
    _click(qtbot, screen.issue_button)
    dialog = _opened(screen, IssueDialog)
    assert "Issue 2 draft invoices ($166.20)?" in dialog.findChild(QLabel).text()
    _click(qtbot, _button(dialog.findChild(QDialogButtonBox), "Issue"))
    wait_idle(qtbot, ops)
    harbor, zephyr = _inv(app_ctx, office.harbor_draft), _inv(app_ctx, office.zephyr_draft)
    assert {harbor.number, zephyr.number} == {"INV-000005", "INV-000006"}
    assert harbor.status is InvoiceStatus.OPEN and harbor.issue_date == TODAY
    assert harbor.due_date == TODAY + dt.timedelta(days=15)
    assert zephyr.due_date == TODAY + dt.timedelta(days=30)
    assert screen.model.rowCount() == 0  # the Drafts filter now shows none


def test_issue_is_only_offered_for_drafts(qtbot, ops, office):
    screen = _screen(qtbot, ops)
    _select(screen, office.harbor_overdue)
    assert not screen.issue_button.isEnabled()
    assert screen.pay_button.isEnabled() and screen.credit_button.isEnabled() and screen.void_button.isEnabled()
    assert not screen.delete_button.isEnabled()
    _select(screen, office.harbor_draft)
    assert screen.issue_button.isEnabled() and screen.delete_button.isEnabled()
    assert not screen.pay_button.isEnabled() and not screen.void_button.isEnabled()
    _select(screen, office.credit_note)
    assert not any(b.isEnabled() for b in (screen.issue_button, screen.pay_button, screen.credit_button,
                                           screen.void_button, screen.delete_button))


def test_delete_draft_asks_first(qtbot, ops, app_ctx, office):
    screen = _screen(qtbot, ops)
    _select(screen, office.harbor_draft)
    _click(qtbot, screen.delete_button)
    box = _opened(screen, QMessageBox)
    assert "Delete this draft for Harbor Dental ($46.20)?" in box.text()
    _click(qtbot, box.button(QMessageBox.StandardButton.No))
    wait_idle(qtbot, ops)
    assert _inv(app_ctx, office.harbor_draft) is not None

    _click(qtbot, screen.delete_button)
    box = _opened(screen, QMessageBox)
    _click(qtbot, box.button(QMessageBox.StandardButton.Yes))
    wait_idle(qtbot, ops)
    assert _inv(app_ctx, office.harbor_draft) is None
    assert screen.model.find_row(lambda r: r.id == office.harbor_draft) == -1
    assert screen.model.rowCount() == 6

    # The confirm callback: the question is asked with the draft's client and total; No keeps it.
    asked: list[str] = []
    _select(screen, office.zephyr_draft)
    ref = actions.InvoiceRef.of(screen.selected_rows()[0])
    assert actions.delete(ops, screen, ref, screen.after_change, confirm=lambda t: asked.append(t) or False) is None
    wait_idle(qtbot, ops)
    assert "Zephyr Labs ($120.00)" in asked[0] and _inv(app_ctx, office.zephyr_draft) is not None
    actions.delete(ops, screen, ref, screen.after_change, confirm=lambda t: True)
    wait_idle(qtbot, ops)
    assert _inv(app_ctx, office.zephyr_draft) is None


def test_void_needs_a_reason(qtbot, ops, app_ctx, office):
    screen = _screen(qtbot, ops)
    _select(screen, office.harbor_overdue)
    _click(qtbot, screen.void_button)
    dialog = _opened(screen, ReasonDialog)
    assert dialog.windowTitle() == "Void INV-000001"
    assert "Harbor Dental ($1,100.00)" in dialog.findChild(QLabel).text()
    assert dialog.amount is None
    _click(qtbot, dialog.ok)
    wait_idle(qtbot, ops)
    reason_row = dialog.form.rows["reason"]
    assert reason_row.error.isVisible()
    assert reason_row.error.text() == "Give a reason for voiding; it is kept with the invoice."
    assert dialog.isVisible() and dialog.ok.isEnabled()
    assert _inv(app_ctx, office.harbor_overdue).status is InvoiceStatus.OPEN

    dialog.reason.setText("Duplicate of INV-000002")
    _click(qtbot, dialog.ok)
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=10_000)
    wait_idle(qtbot, ops)
    inv = _inv(app_ctx, office.harbor_overdue)
    assert (inv.status, inv.status_reason, inv.number) == (InvoiceStatus.VOID, "Duplicate of INV-000002",
                                                             "INV-000001")
    assert [r.status for r in screen.selected_rows()] == ["void"]
    assert screen.count_label.text() == "7 invoices · unpaid $200.00"


def test_void_refused_by_the_core_shows_why(qtbot, ops, app_ctx, office):
    with app_ctx.db.write_session() as s, s.begin():
        record_payment(s, office.harbor_overdue, "100", "check")
    screen = _screen(qtbot, ops)
    _select(screen, office.harbor_overdue)
    # The screen knows money was paid against it and offers no Void...
    assert not screen.void_button.isEnabled()
    assert screen.credit_button.isEnabled()
    # ...and when a payment arrives after the list was loaded, the core's refusal is shown.
    stale = dataclasses.replace(InvoiceRef.of(screen.selected_rows()[0]), settled_cents=0)
    dialog = actions.void(ops, screen, stale, lambda: None)
    dialog.reason.setText("Mistake")
    _click(qtbot, dialog.ok)
    wait_idle(qtbot, ops)
    assert dialog.isVisible()
    assert "has $100.00 paid or credited against it" in dialog.message.text()
    assert dialog.message.isVisible()
    assert _inv(app_ctx, office.harbor_overdue).status is InvoiceStatus.OPEN


def test_partial_credit_note_and_bad_amount(qtbot, ops, app_ctx, office):
    screen = _screen(qtbot, ops)
    _select(screen, office.harbor_overdue)
    _click(qtbot, screen.credit_button)
    dialog = _opened(screen, ReasonDialog)
    assert dialog.amount is not None and dialog.amount.placeholderText() == "Empty: the whole invoice"
    dialog.amount.setText("12.345")
    dialog.reason.setText("Goodwill")
    _click(qtbot, dialog.ok)
    wait_idle(qtbot, ops)
    amount_row = dialog.form.rows["amount"]
    assert amount_row.error.isVisible()
    assert amount_row.error.text() == "“12.345” has 3 decimal places; USD amounts have at most 2."
    assert not dialog.form.rows["reason"].error.isVisible()
    assert _count(app_ctx, Invoice.kind == InvoiceKind.CREDIT_NOTE) == 1

    dialog.amount.setText("100")
    _click(qtbot, dialog.ok)
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=10_000)
    wait_idle(qtbot, ops)
    with app_ctx.db.session() as s:
        note = s.scalar(select(Invoice).where(Invoice.credit_for_invoice_id == office.harbor_overdue))
        assert (note.number, note.subtotal_cents, note.tax_cents, note.total_cents) == ("CN-000002", 10_000,
                                                                                       1_000, 11_000)
    inv = _inv(app_ctx, office.harbor_overdue)
    assert (inv.status, inv.balance_cents) == (InvoiceStatus.OPEN, 99_000)
    assert screen.model.find_row(lambda r: r.display_number == "CN-000002") >= 0
    assert "unpaid $1,190.00" in screen.count_label.text()


# --- the invoice window -----------------------------------------------------------

def _detail(qtbot, ops, invoice_id: int, parent: QWidget | None = None) -> InvoiceDialog:
    dialog = InvoiceDialog(ops, invoice_id, parent)
    if parent is None:
        qtbot.addWidget(dialog)
    dialog.show()
    wait_idle(qtbot, ops)
    assert dialog.detail is not None
    return dialog


def _totals(dialog: InvoiceDialog) -> list[tuple[str, str]]:
    grid = dialog.totals
    rows = []
    for r in range(grid.rowCount()):
        left, right = grid.itemAtPosition(r, 1), grid.itemAtPosition(r, 2)
        if left is not None and right is not None:
            rows.append((left.widget().text(), right.widget().text()))
    return rows


def _shown(dialog: InvoiceDialog) -> set[str]:
    buttons = {"issue": dialog.issue_button, "edit": dialog.edit_button, "pay": dialog.pay_button,
               "credit": dialog.credit_button, "write_off": dialog.write_off_button, "void": dialog.void_button,
               "delete": dialog.delete_button}
    return {name for name, b in buttons.items() if not b.isHidden()}


def test_detail_of_an_open_invoice(qtbot, ops, app_ctx, office):
    with app_ctx.db.write_session() as s, s.begin():
        record_payment(s, office.harbor_overdue, "100", "check", reference="7781", received_on=TODAY)
    dialog = _detail(qtbot, ops, office.harbor_overdue)
    assert dialog.title.text() == "INV-000001"
    assert dialog.windowTitle() == "Invoice INV-000001 — Harbor Dental"
    assert dialog.status.text().startswith("Overdue ")
    assert "Harbor Dental" in dialog.bill_to.text() and "ap@harbor.example" in dialog.bill_to.text()
    assert f"Issued {LAST_MONTH.first_day.isoformat()}" in dialog.dates.text()
    assert [[dialog.lines.item(0, c).text() for c in range(5)]] == [
        ["Firewall appliance", "1", "$1,000.00", "$1,000.00", "✓"]]
    assert _totals(dialog) == [("Subtotal", "$1,000.00"), ("Tax (10%)", "$100.00"), ("Total", "$1,100.00"),
                               ("Paid", "-$100.00"), ("Balance due", "$1,000.00")]
    assert dialog.tabs.tabText(0) == "Payments (1)"
    assert _cells(dialog.payments, 2) == ["7781"]
    assert dialog.tabs.tabText(1) == "Credit notes (0)"
    assert dialog.tabs.tabText(2) == "History (3)"  # created, issued, payment
    assert _cells(dialog.history, 2)[1].startswith("Issued INV-000001 to Harbor Dental")
    # Paid in part: it can no longer be voided (the core refuses), only credited or written off.
    assert _shown(dialog) == {"pay", "credit", "write_off"}

    unpaid = _detail(qtbot, ops, office.zephyr_draft)
    with qtbot.waitSignal(unpaid.changed, timeout=10_000):
        _click(qtbot, unpaid.issue_button)
        _click(qtbot, _button(_opened(unpaid, IssueDialog).findChild(QDialogButtonBox), "Issue"))
    wait_idle(qtbot, ops)
    assert _shown(unpaid) == {"pay", "credit", "write_off", "void"}


def test_detail_buttons_per_state(qtbot, ops, app_ctx, office):
    draft = _detail(qtbot, ops, office.harbor_draft)
    assert draft.title.text() == "Draft invoice"
    assert "Not issued yet" in draft.dates.text()
    assert _shown(draft) == {"issue", "edit", "delete"}
    assert ("Balance due", "$46.20") not in _totals(draft)

    paid = _detail(qtbot, ops, office.harbor_paid)
    assert paid.status.text() == "Paid"
    assert _shown(paid) == {"credit"}
    assert _totals(paid)[-1] == ("Balance due", "$0.00")

    void = _detail(qtbot, ops, office.harbor_void)
    assert _shown(void) == set()
    assert void.reason.text() == "Void: Sent to the wrong client"

    part = _detail(qtbot, ops, office.zephyr_open)
    assert part.status.text() == "Part paid"
    assert part.tabs.tabText(1) == "Credit notes (1)"
    assert _cells(part.credit_notes, 0) == ["CN-000001"]
    assert ("Credited", "-$50.00") in _totals(part)
    assert _shown(part) == {"pay", "credit", "write_off"}

    note = _detail(qtbot, ops, office.credit_note)
    assert note.status.text() == "Applied" and _shown(note) == set()
    assert "Credits invoice INV-000004" in note.subtitle.text()


def test_issue_from_the_detail(qtbot, ops, app_ctx, office):
    dialog = _detail(qtbot, ops, office.harbor_draft)
    with qtbot.waitSignal(dialog.changed, timeout=10_000):
        _click(qtbot, dialog.issue_button)
        issue = _opened(dialog, IssueDialog)
        _click(qtbot, _button(issue.findChild(QDialogButtonBox), "Issue"))
    wait_idle(qtbot, ops)
    assert dialog.title.text() == "INV-000005"
    assert _shown(dialog) == {"pay", "credit", "write_off", "void"}
    assert _inv(app_ctx, office.harbor_draft).status is InvoiceStatus.OPEN


def test_delete_from_the_detail_closes_it(qtbot, ops, app_ctx, office):
    screen = _screen(qtbot, ops)
    _select(screen, office.zephyr_draft)
    dialog = screen.open_selected()
    wait_idle(qtbot, ops)
    box = dialog._delete()
    assert isinstance(box, QMessageBox)
    _click(qtbot, box.button(QMessageBox.StandardButton.Yes))
    wait_idle(qtbot, ops)
    assert not dialog.isVisible()
    assert _inv(app_ctx, office.zephyr_draft) is None
    assert screen.model.find_row(lambda r: r.id == office.zephyr_draft) == -1


# --- one-time invoices ------------------------------------------------------------

def _one_time_dialog(qtbot, ops, screen: InvoicesScreen) -> OneTimeInvoiceDialog:
    _click(qtbot, screen.one_time_button)
    dialog = _opened(screen, OneTimeInvoiceDialog)
    wait_idle(qtbot, ops)
    assert dialog.save_button.isEnabled()
    return dialog


def _set_line(dialog: OneTimeInvoiceDialog, row: int, desc: str, qty: str, price: str, taxable: bool = True):
    t = dialog.editor.table
    t.item(row, COL_DESC).setText(desc)
    t.item(row, COL_QTY).setText(qty)
    t.item(row, COL_PRICE).setText(price)
    t.item(row, COL_TAX).setCheckState(Qt.CheckState.Checked if taxable else Qt.CheckState.Unchecked)


def test_one_time_invoice_created_with_lines(qtbot, ops, app_ctx, office):
    screen = _screen(qtbot, ops)
    dialog = _one_time_dialog(qtbot, ops, screen)
    assert dialog.editor.table.rowCount() == 1
    dialog.client.setCurrentIndex(dialog.client.findData(office.harbor))
    dialog.title.setText("Server upgrade")
    _set_line(dialog, 0, "Dell PowerEdge T360", "2", "450.00")
    _click(qtbot, dialog.editor.add_button)
    _set_line(dialog, 1, "Installation (hours)", "3.5", "120", taxable=False)
    assert dialog.editor.table.item(1, COL_AMOUNT).text() == "$420.00"
    assert dialog.editor.total.text() == "Total before tax: $1,320.00"
    dialog.memo.setPlainText("Parts ordered 3 March")
    with qtbot.waitSignal(dialog.saved, timeout=10_000) as saved:
        _click(qtbot, dialog.save_button)
    wait_idle(qtbot, ops)
    assert not dialog.isVisible()
    inv = _inv(app_ctx, saved.args[0])
    assert (inv.status, inv.title, inv.memo, inv.client_id) == (InvoiceStatus.DRAFT, "Server upgrade",
                                                                "Parts ordered 3 March", office.harbor)
    assert (inv.subtotal_cents, inv.tax_cents, inv.total_cents) == (132_000, 9_000, 141_000)
    assert [r.id for r in screen.selected_rows()] == [saved.args[0]]


def test_one_time_invoice_validation(qtbot, ops, app_ctx, office):
    before = _count(app_ctx)
    screen = _screen(qtbot, ops)
    dialog = _one_time_dialog(qtbot, ops, screen)
    _click(qtbot, dialog.save_button)
    wait_idle(qtbot, ops)
    assert dialog.isVisible() and dialog.summary.isVisible()
    assert dialog.summary.text().startswith("Please correct 3 problems before saving.")
    assert dialog.form.rows["client_id"].error.text() == "Choose the client to invoice."
    assert dialog.form.rows["title"].error.isVisible()
    assert dialog.editor.errors.text() == "Add at least one line (for example “Firewall appliance”)."
    assert "Add at least one line" not in dialog.summary.text()  # shown once, under the lines

    dialog.client.setCurrentIndex(dialog.client.findData(office.zephyr))
    dialog.title.setText("Network switch")
    _set_line(dialog, 0, "24-port switch", "1", "1e3")
    assert dialog.editor.table.item(0, COL_AMOUNT).text() == "—"
    _click(qtbot, dialog.save_button)
    wait_idle(qtbot, ops)
    assert dialog.isVisible()
    assert dialog.editor.errors.text() == "Line 1: “1e3” is not an amount; type it like 1250.00."
    assert dialog.editor.table.item(0, COL_PRICE).background() == INVALID_BRUSH
    assert dialog.editor.table.item(0, COL_QTY).background() != INVALID_BRUSH
    assert not dialog.form.rows["client_id"].error.isVisible()
    assert _count(app_ctx) == before

    dialog.editor.table.item(0, COL_PRICE).setText("1000")
    _click(qtbot, dialog.save_button)
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=10_000)
    assert _count(app_ctx) == before + 1


def test_edit_a_one_time_draft(qtbot, ops, app_ctx, office):
    detail = _detail(qtbot, ops, office.harbor_draft)
    _click(qtbot, detail.edit_button)
    editor = _opened(detail, OneTimeInvoiceDialog)
    wait_idle(qtbot, ops)
    assert editor.windowTitle() == "Edit draft invoice"
    assert editor.client.currentData() == office.harbor
    assert editor.title.text() == "Printer toner"
    t = editor.editor.table
    assert t.rowCount() == 1
    assert [t.item(0, c).text() for c in (COL_DESC, COL_QTY, COL_PRICE, COL_AMOUNT)] == [
        "Printer toner", "1", "42.00", "$42.00"]
    t.item(0, COL_QTY).setText("3")
    with qtbot.waitSignal(detail.changed, timeout=10_000):
        _click(qtbot, editor.save_button)
    wait_idle(qtbot, ops)
    assert not editor.isVisible()
    assert _inv(app_ctx, office.harbor_draft).total_cents == 13_860
    assert ("Total", "$138.60") in _totals(detail)
    assert detail.lines.item(0, 1).text() == "3"


def test_split_into_three_instalments(qtbot, ops, app_ctx, office):
    before = _count(app_ctx)
    screen = _screen(qtbot, ops)
    dialog = _one_time_dialog(qtbot, ops, screen)
    dialog.client.setCurrentIndex(dialog.client.findData(office.zephyr))
    dialog.title.setText("Firewall appliance")
    _set_line(dialog, 0, "FortiGate 60F", "1", "1000.00")
    assert not dialog.first_month.isEnabled()
    dialog.instalments.setValue(3)
    assert dialog.first_month.isEnabled()
    dialog.first_month.setCurrentIndex(dialog.first_month.findData(str(MONTH.shift(1))))
    with qtbot.waitSignal(dialog.saved, timeout=10_000) as saved:
        _click(qtbot, dialog.save_button)
    wait_idle(qtbot, ops)
    assert _count(app_ctx) == before + 3
    with app_ctx.db.session() as s:
        parts = list(s.scalars(select(Invoice).where(Invoice.instalment_plan_id.is_not(None))
                               .order_by(Invoice.instalment_number)))
        assert parts[0].id == saved.args[0]
        assert [p.total_cents for p in parts] == [33_334, 33_333, 33_333]
        assert sum(p.total_cents for p in parts) == 100_000
        assert [p.period_start for p in parts] == [MONTH.shift(k).first_day for k in (1, 2, 3)]
        assert all(p.status is InvoiceStatus.DRAFT for p in parts)
        assert [p.title for p in parts] == [f"Firewall appliance ({k}/3)" for k in (1, 2, 3)]

    part = _detail(qtbot, ops, saved.args[0])
    assert part.subtitle.text().startswith("Firewall appliance (1/3) · Instalment 1 of 3: Firewall appliance")
    assert _shown(part) == {"issue", "delete"}  # an instalment is not edited by hand


# --- the generate dialog issuing instalments that fall due --------------------------

def test_generate_offers_issuing_instalments_alone(qtbot, ops, app_ctx, office):
    from mspbill.invoicing import split_into_instalments

    with app_ctx.db.write_session() as s, s.begin():
        split_into_instalments(s, office.zephyr_draft, 2, MONTH)
    screen = _screen(qtbot, ops)
    dialog = _open_generate(qtbot, ops, screen, MONTH)
    assert dialog.plan.instalments_due == 1
    assert not dialog.create_button.isEnabled()
    assert dialog.create_button.text() == "Nothing to create"
    dialog.issue_now.setChecked(True)
    assert dialog.create_button.isEnabled()
    assert dialog.create_button.text() == "Issue 1 draft"
    dialog.issue_now.setChecked(False)
    assert not dialog.create_button.isEnabled()


# --- the e-mail column -----------------------------------------------------------

def test_email_column_shows_queued_with_reason_then_sent(qtbot, ops, app_ctx, office: Office) -> None:
    from smtp_server import SmtpTestServer, free_port

    from mspbill.mail import (
        MailSettingsDraft,
        queue_invoice_email,
        save_mail_settings,
        send_outbox,
    )
    from ui.invoices_screen import email_tooltip

    port = free_port()
    with app_ctx.db.write_session() as s, s.begin():
        save_mail_settings(s, MailSettingsDraft(host="127.0.0.1", port=str(port), security="none",
                                                from_address="billing@acme-it.example"))
        queue_invoice_email(s, office.zephyr_open)
    down = send_outbox(app_ctx.db, None)
    assert down.still_queued == 1

    screen = _screen(qtbot, ops)
    column = [c.title for c in screen.model.columns].index("E-mail")

    def cell(invoice_id: int) -> str:
        row = screen.model.find_row(lambda r: r.id == invoice_id)
        return screen.model.index(row, column).data()

    assert cell(office.zephyr_open) == "Queued (retrying)"
    assert cell(office.harbor_overdue) == ""  # never e-mailed
    status = screen.email_status[office.zephyr_open]
    assert "refused the connection" in email_tooltip(status) and "ap@zephyr.example" in email_tooltip(status)
    row = screen.model.find_row(lambda r: r.id == office.zephyr_open)
    assert screen.model.index(row, column).data(Qt.ItemDataRole.ForegroundRole) is not None

    with SmtpTestServer(port=port) as server:
        with app_ctx.db.write_session() as s, s.begin():
            from mspbill.mail import retry_messages

            retry_messages(s, [status.outbox_id])
        assert send_outbox(app_ctx.db, None).sent == 1
        assert len(server.received) == 1
    screen.reload()
    wait_idle(qtbot, ops)
    assert cell(office.zephyr_open) == f"Sent {dt.date.today().isoformat()}"


@pytest.mark.parametrize("width, lines", [(760, 2), (1400, 1)])
def test_action_buttons_are_never_cut(qtbot, ops, office, width, lines) -> None:
    """At the main window's minimum width (960, less the navigation) the buttons wrap onto a
    second line, the PDF's and what changes the invoice; wide, they share one."""
    from PySide6.QtWidgets import QApplication

    screen = _screen(qtbot, ops)
    screen.resize(width, 600)
    QApplication.processEvents()
    buttons = [screen.open_button, screen.preview_button, screen.print_button, screen.save_pdf_button,
               screen.email_button, screen.issue_button, screen.pay_button, screen.charge_button,
               screen.credit_button, screen.void_button, screen.delete_button]
    for button in buttons:
        assert button.isVisible() and button.width() >= button.sizeHint().width(), button.text()
        right = button.mapTo(screen, button.rect().topRight()).x()
        assert right < screen.width(), button.text()
    assert len({b.mapTo(screen, b.rect().topLeft()).y() for b in buttons}) == lines
    assert screen.table.geometry().bottom() < min(b.mapTo(screen, b.rect().topLeft()).y() for b in buttons)
