"""Clients through the real dialog and table, on a real database."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox, QMessageBox
from sqlalchemy import func, select

from mspbill.clients import ClientDraft, create_client
from mspbill.db.models import AuditEntry, Client, ClientCredit, CreditReason
from tests.gui.conftest import wait_idle
from ui.clients_screen import ClientsScreen


def _client_count(ctx) -> int:
    with ctx.db.session() as s:
        return s.scalar(select(func.count(Client.id))) or 0


def _screen(qtbot, ops) -> ClientsScreen:
    screen = ClientsScreen(ops)
    qtbot.addWidget(screen)
    screen.show()
    screen.reload()
    wait_idle(qtbot, ops)
    return screen


def test_create_client_through_dialog_and_find_it_in_table(qtbot, ops, app_ctx):
    screen = _screen(qtbot, ops)
    assert screen.model.rowCount() == 0
    dialog = screen.new_item()
    # QTest cannot type non-ASCII keys on the offscreen platform; set the text instead.
    dialog.name.setText("Zürich Dental GmbH")
    qtbot.keyClicks(dialog.emails, "ap@zuerich-dental.example, chef@zuerich-dental.example")
    dialog.tax_rate.setText("7.7")
    dialog.autopay.setChecked(True)
    qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.StandardButton.Save), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=10_000)
    wait_idle(qtbot, ops)
    names = [r.legal_name for r in screen.model.visible_rows()]
    assert names == ["Zürich Dental GmbH"]
    # The new client is selected, and searching finds it case-insensitively.
    assert screen.selected() is not None and screen.selected().legal_name == "Zürich Dental GmbH"
    screen.search.setText("ZÜRICH")
    screen.apply_filter()
    assert screen.model.rowCount() == 1
    screen.search.setText("nobody-matches-this")
    screen.apply_filter()
    assert screen.model.rowCount() == 0
    assert "0 of 1 client" in screen.count_label.text()
    with app_ctx.db.session() as s:
        client = s.scalars(select(Client)).one()
        assert client.autopay is True and str(client.tax_rate_percent) == "7.7"
        assert client.email_list == ["ap@zuerich-dental.example", "chef@zuerich-dental.example"]


def test_bad_email_shows_message_at_the_field_and_saves_nothing(qtbot, ops, app_ctx):
    screen = _screen(qtbot, ops)
    dialog = screen.new_item()
    qtbot.keyClicks(dialog.name, "O'Brien & Sons")
    qtbot.keyClicks(dialog.emails, "accounts@@obrien")
    dialog.terms.setText("-5")
    qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.StandardButton.Save), Qt.MouseButton.LeftButton)
    email_error = dialog.form.rows["billing_emails"].error
    assert not email_error.isHidden()
    assert "not a valid e-mail address" in email_error.text()
    terms_error = dialog.billing_form.rows["payment_terms_days"].error
    assert "cannot be negative" in terms_error.text()
    assert "2 problems" in dialog.summary.text()
    assert dialog.isVisible()
    wait_idle(qtbot, ops)
    assert _client_count(app_ctx) == 0
    # Correcting the address clears its message and saves.
    dialog.emails.setText("accounts@obrien.example")
    dialog.terms.setText("30")
    qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.StandardButton.Save), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=10_000)
    assert email_error.isHidden()
    assert _client_count(app_ctx) == 1


def test_empty_and_overlong_names_are_refused_at_the_field(qtbot, ops, app_ctx):
    screen = _screen(qtbot, ops)
    dialog = screen.new_item()
    qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.StandardButton.Save), Qt.MouseButton.LeftButton)
    assert "Enter the client's legal name" in dialog.form.rows["legal_name"].error.text()
    dialog.name.setText("x" * 500)
    qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.StandardButton.Save), Qt.MouseButton.LeftButton)
    assert "500 characters long; the limit is 200" in dialog.form.rows["legal_name"].error.text()
    wait_idle(qtbot, ops)
    assert _client_count(app_ctx) == 0


def test_edit_archive_and_restore_from_the_table(qtbot, ops, demo_ctx, monkeypatch):
    screen = _screen(qtbot, ops)
    total = screen.model.rowCount()
    assert total == 12
    screen.table.selectRow(0)
    first = screen.selected()
    dialog = screen.edit_item(first)
    wait_idle(qtbot, ops)
    assert dialog.name.text() == first.legal_name
    dialog.name.setText(first.legal_name + " Renamed")
    qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.StandardButton.Save), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=10_000)
    wait_idle(qtbot, ops)
    assert screen.selected().legal_name == first.legal_name + " Renamed"

    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    screen.archive_or_restore_selected()
    wait_idle(qtbot, ops)
    wait_idle(qtbot, ops)
    assert screen.model.rowCount() == total - 1  # archived clients leave the list
    screen.show_archived.setChecked(True)
    wait_idle(qtbot, ops)
    screen.select_id(first.id)
    assert screen.selected().status == "archived"
    assert screen.archive_button.text() == "Restore"
    screen.archive_or_restore_selected()
    wait_idle(qtbot, ops)
    screen.select_id(first.id)
    assert screen.selected().status == "active"
    with demo_ctx.db.session() as s:
        actions = s.scalars(select(AuditEntry.action).where(AuditEntry.entity_id == first.id,
                                                            AuditEntry.entity_type == "client")).all()
    assert actions == ["client.created", "client.updated", "client.archived", "client.restored"]


def test_table_sorts_by_money_not_by_text(qtbot, ops, demo_ctx):
    screen = _screen(qtbot, ops)
    screen.table.sortByColumn(5, Qt.SortOrder.DescendingOrder)
    values = [r.monthly_value_cents for r in screen.model.visible_rows()]
    assert values == sorted(values, reverse=True)
    assert values[0] > values[-1]


def test_client_credit_shows_in_the_table_and_the_editor(qtbot, ops, app_ctx):
    with app_ctx.db.session() as s, s.begin():
        owed = create_client(s, ClientDraft(legal_name="Alder Creek Winery", billing_emails="ap@alder.example"))
        plain = create_client(s, ClientDraft(legal_name="Birch Dental", billing_emails="ap@birch.example"))
        s.flush()
        s.add_all([ClientCredit(client_id=owed.id, amount_cents=12_500, reason=CreditReason.OVERPAYMENT),
                   ClientCredit(client_id=owed.id, amount_cents=-2_500, reason=CreditReason.APPLIED)])
        owed_id, plain_id = owed.id, plain.id
    screen = _screen(qtbot, ops)
    titles = [screen.model.headerData(c, Qt.Orientation.Horizontal) for c in range(screen.model.columnCount())]
    credit_col = titles.index("Credit")
    shown = {screen.model.visible_rows()[r].id: screen.model.index(r, credit_col).data()
             for r in range(screen.model.rowCount())}
    assert shown == {owed_id: "$100.00", plain_id: ""}  # blank, not $0.00, when there is none

    screen.select_id(owed_id)
    dialog = screen.edit_item(screen.selected())
    wait_idle(qtbot, ops)
    assert not dialog.credit.isHidden()
    assert dialog.credit.text() == "Client credit: $100.00, applied to the next invoice issued"
    dialog.reject()
    screen.select_id(plain_id)
    dialog = screen.edit_item(screen.selected())
    wait_idle(qtbot, ops)
    assert dialog.credit.isHidden()
    dialog.reject()
