"""The import dialog end to end: a real file, the real screens, the real Ops pool and database."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from mspbill.clients import ClientDraft, create_client
from mspbill.db.models import Agreement, AuditEntry, Client
from tests.gui.conftest import wait_idle
from ui import import_dialog
from ui.agreements_screen import AgreementsScreen
from ui.clients_screen import ClientsScreen


def _count(ctx, model) -> int:
    with ctx.db.session() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def test_import_clients_wizard_blocks_errors_then_imports(qtbot, ops, app_ctx, tmp_path: Path, monkeypatch):
    path = tmp_path / "psa-export.csv"
    path.write_bytes("Company Name;Billing Email;City;Tax\n"
                     "Müller GmbH;ap@mueller.example;Berlin;19\n"
                     "Zeta Dental;zeta@dental.example;Salem;abc\n".encode("cp1252"))
    monkeypatch.setattr(import_dialog, "ask_open_path", lambda *_a: path)
    screen = ClientsScreen(ops)
    qtbot.addWidget(screen)
    screen.reload()
    wait_idle(qtbot, ops)

    screen.import_button.click()
    dialog = screen.findChild(import_dialog.ImportDialog)
    assert dialog is not None and dialog.next_button.isEnabled() is False
    dialog.choose_button.click()
    wait_idle(qtbot, ops)
    assert "2 rows, 4 columns, Windows-1252, separated by semicolons" in dialog.file_notice.text()
    dialog.next_button.click()
    # Step 2: the guessed columns, with the values they hold.
    assert dialog.combos["legal_name"].currentText() == "Company Name"
    assert dialog.combos["tax_rate"].currentText() == "Tax"
    assert dialog.mapping_table.item(0, 2).text() == "Müller GmbH · Zeta Dental"
    dialog.set_column("legal_name", None)
    assert not dialog.next_button.isEnabled() and "Client name" in dialog.mapping_notice.text()
    dialog.set_column("legal_name", "Company Name")
    dialog.next_button.click()
    wait_idle(qtbot, ops)
    # Step 3: one row in error; Import stays disabled and nothing is written.
    assert dialog.preview_model.rowCount() == 2
    assert "1 with errors" in dialog.summary.text()
    assert not dialog.import_button.isEnabled()
    error_row = next(r for r in dialog.preview_model.visible_rows() if r.action == "error")
    assert error_row.line == 3 and "“abc” is not a number" in import_dialog.row_details(error_row)
    assert _count(app_ctx, Client) == 0
    # Leave the bad column out and import.
    dialog.back_button.click()
    dialog.set_column("tax_rate", None)
    dialog.next_button.click()
    wait_idle(qtbot, ops)
    assert dialog.import_button.isEnabled(), dialog.summary.text()
    dialog.import_button.click()
    # While the all-or-nothing import is written, Cancel / Escape / closing the window do nothing:
    # otherwise the clients would appear with nobody told.
    assert not dialog.close_button.isEnabled()
    dialog.reject()
    assert dialog.isVisible()
    wait_idle(qtbot, ops)
    assert "2 clients created" in dialog.done_notice.text()
    assert dialog.close_button.isEnabled()
    assert dialog.close_button.text() == "Close"
    assert sorted(r.legal_name for r in screen.model.visible_rows()) == ["Müller GmbH", "Zeta Dental"]
    with app_ctx.db.session() as s:
        assert s.scalar(select(func.count()).where(AuditEntry.action == "import.clients")) == 1
    dialog.close()
    # "Export…" writes the clients in the columns Import… reads.
    out = tmp_path / "out" / "clients"
    out.parent.mkdir()
    monkeypatch.setattr(import_dialog, "ask_save_path", lambda *_a: out.with_suffix(".csv"))
    screen.export_button.click()
    wait_idle(qtbot, ops)
    data = out.with_suffix(".csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbfClient name,") and "Müller GmbH".encode() in data


def test_import_agreements_asks_the_date_order(qtbot, ops, app_ctx, tmp_path: Path, monkeypatch):
    with app_ctx.db.session() as s, s.begin():
        create_client(s, ClientDraft(legal_name="Acme Inc", billing_emails="ap@acme.example"))
    path = tmp_path / "agreements.csv"
    path.write_text("Company,Agreement,Start Date,Item,Qty,Unit Price\n"
                    "Acme Inc,Managed IT,03/04/2026,Seats,10,45\n"
                    "Acme Inc,Managed IT,,Backup,1,$99.00\n", encoding="utf-8")
    screen = AgreementsScreen(ops)
    qtbot.addWidget(screen)
    dialog = screen.import_csv()
    dialog.load_file(path)
    wait_idle(qtbot, ops)
    dialog.next_button.click()
    dialog.next_button.click()
    wait_idle(qtbot, ops)
    assert "could be 4 March 2026 or 3 April 2026" in import_dialog.row_details(dialog.preview_model.row_at(0))
    assert not dialog.import_button.isEnabled()
    dialog.date_order.setCurrentIndex(dialog.date_order.findData("dmy"))
    wait_idle(qtbot, ops)
    assert dialog.import_button.isEnabled(), dialog.summary.text()
    assert "2 lines, $549.00 per month" in import_dialog.row_details(dialog.preview_model.row_at(0))
    dialog.import_button.click()
    wait_idle(qtbot, ops)
    assert "1 agreement created" in dialog.done_notice.text()
    with app_ctx.db.session() as s:
        agreement = s.scalars(select(Agreement)).one()
        assert agreement.start_date.isoformat() == "2026-04-03" and len(agreement.lines) == 2
    dialog.close()
