"""The main window, first run, settings, geometry and the exception hook."""

from __future__ import annotations

import logging

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from mspbill.company import company_snapshot
from mspbill.settings import Settings
from tests.gui.conftest import wait_idle
from ui import errors
from ui.first_run import FirstRunDialog
from ui.main_window import NAV, MainWindow


def test_every_area_has_a_screen_and_geometry_is_remembered(qtbot, ops, demo_ctx):
    window = MainWindow(demo_ctx, ops)
    qtbot.addWidget(window)
    window.show()
    for name in NAV:
        window.go(name)
        wait_idle(qtbot, ops)
        assert window.current_screen_name() == name
    assert window.demo_banner.isVisible()
    window.go("Clients")
    wait_idle(qtbot, ops)
    assert window.clients.model.rowCount() == 12
    window.resize(960, 650)
    window.close()
    settings = Settings(demo_ctx.paths.settings_file)
    assert settings.get("window.geometry")
    assert settings.get("window.screen") == "Clients"
    again = MainWindow(demo_ctx, ops)
    qtbot.addWidget(again)
    assert (again.width(), again.height()) == (960, 650)  # the offscreen screen is 800x800
    assert again.current_screen_name() == "Clients"
    wait_idle(qtbot, ops)


def test_dashboard_shows_office_figures(qtbot, ops, demo_ctx):
    window = MainWindow(demo_ctx, ops)
    qtbot.addWidget(window)
    window.show()
    window.go("Dashboard")
    wait_idle(qtbot, ops)
    assert window.dashboard.clients.value.text() == "12"
    assert window.dashboard.mrr.value.text().startswith("$")


def test_first_run_demo_office(qtbot, ops, app_ctx):
    dialog = FirstRunDialog(ops)
    qtbot.addWidget(dialog)
    dialog.show()
    with qtbot.waitSignal(dialog.accepted, timeout=60_000):
        dialog.demo_button.click()
    with app_ctx.db.session() as s:
        snap = company_snapshot(s)
    assert snap is not None and snap.is_demo


def test_first_run_company_form_validates_then_saves(qtbot, ops, app_ctx):
    dialog = FirstRunDialog(ops)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.setup_button.click()
    form = dialog.company
    form.name.setText("")
    form.pattern.setText("INV-")
    form.currency.setCurrentText("dollars")
    form.save_button.click()
    assert "Enter the company name" in form.form.rows["name"].error.text()
    assert "{n}" in form.form.rows["invoice_number_pattern"].error.text()
    assert "three-letter" in form.form.rows["currency"].error.text()
    form.name.setText("Acme Managed Services")
    form.pattern.setText("A{n:05d}")
    form.currency.setCurrentText("EUR")
    with qtbot.waitSignal(dialog.accepted, timeout=10_000):
        form.save_button.click()
    with app_ctx.db.session() as s:
        snap = company_snapshot(s)
    assert snap.draft.name == "Acme Managed Services"
    assert snap.draft.currency == "EUR" and not snap.is_demo


def test_logo_is_normalised_and_bad_logo_refused(qtbot, ops, app_ctx, tmp_path):
    from PIL import Image

    jpg = tmp_path / "logo.jpg"
    Image.new("RGB", (1200, 400), "navy").save(jpg)
    bad = tmp_path / "logo.png"
    bad.write_bytes(b"not an image at all")
    dialog = FirstRunDialog(ops)
    qtbot.addWidget(dialog)
    form = dialog.company
    form.set_logo_file(bad)
    assert "not an image" in form.form.rows["logo"].error.text()
    form.set_logo_file(jpg)
    assert form.form.rows["logo"].error.isHidden()
    form.name.setText("Logo Test LLC")
    with qtbot.waitSignal(form.saved, timeout=10_000):
        form.save_button.click()
    with app_ctx.db.session() as s:
        logo = company_snapshot(s).logo_png
    assert logo.startswith(b"\x89PNG")


def test_unhandled_exception_is_logged_and_shown(qtbot, app_ctx, caplog):
    shown: list[str] = []

    def close_box() -> None:
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            shown.append(box.text())
            box.close()

    QTimer.singleShot(200, close_box)
    caplog.set_level(logging.ERROR, logger="mspbill.ui")
    try:
        raise RuntimeError("the printer caught fire")
    except RuntimeError as exc:
        errors.handle_exception(type(exc), exc, exc.__traceback__)
    assert shown and "the printer caught fire" in shown[0]
    assert "the printer caught fire" in caplog.text


def test_background_failure_shows_error_dialog(qtbot, ops, monkeypatch):
    seen: list[str] = []
    monkeypatch.setattr(QMessageBox, "critical", lambda _p, _t, text: seen.append(text))

    def boom(_session):
        raise ValueError("disk on fire")

    ops.read(None, boom)
    qtbot.waitUntil(lambda: bool(seen), timeout=10_000)
    assert "disk on fire" in seen[0]


def test_mspbill_command_opens_the_window(tmp_path):
    """`python -m mspbill` with no command starts the desktop app and paints it."""
    import os
    import subprocess
    import sys
    import time

    data = tmp_path / "office"
    subprocess.run([sys.executable, "-m", "mspbill", "--data-dir", str(data), "demo", "--clients", "3"],
                   check=True, capture_output=True)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", MSPBILL_EXIT_AFTER_START="1", MSPBILL_T0=repr(time.time()))
    proc = subprocess.run([sys.executable, "-m", "mspbill", "--data-dir", str(data)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "first-paint-seconds" in proc.stderr


def test_corrupt_database_gets_a_message_and_is_left_alone(tmp_path, qapp, monkeypatch):
    from ui import app as app_module

    data = tmp_path / "office"
    data.mkdir()
    db_file = data / "mspbill.sqlite3"
    garbage = b"this is a spreadsheet, not a database" * 100
    db_file.write_bytes(garbage)
    shown: list[str] = []
    # The start-up message (a QMessageBox with "Restore a backup…" and "Quit"): answered "Quit".
    monkeypatch.setattr(QMessageBox, "exec", lambda self: shown.append(self.text()) or 0)
    # main() installs the app's exception hooks; put the test runner's back afterwards.
    import sys
    import threading

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    code = app_module.main(["mspbill", "--data-dir", str(data)])
    assert code == 2
    assert shown and "not an mspbill database" in shown[0] and "backups" in shown[0]
    assert db_file.read_bytes() == garbage


def test_saved_pdf_folder_is_remembered_in_the_settings_file(qtbot, ops, demo_ctx, tmp_path, monkeypatch):
    """The Invoices screen finds the app's settings through the main window: Save PDF… there
    remembers the folder in the settings file, and the next save starts in it."""
    from ui import pdf_viewer

    folder = tmp_path / "invoices out"
    folder.mkdir()
    asked: list = []

    def ask(_parent, suggested):
        asked.append(suggested)
        return folder / suggested.name

    monkeypatch.setattr(pdf_viewer, "ask_save_path", ask)
    window = MainWindow(demo_ctx, ops)
    qtbot.addWidget(window)
    window.show()
    window.go("Invoices")
    wait_idle(qtbot, ops)
    window.invoices.table.selectRow(0)
    window.invoices.save_pdf_selected()
    qtbot.waitUntil(lambda: len(asked) == 1 and ops.active == 0, timeout=15_000)
    assert [p.suffix for p in folder.iterdir()] == [".pdf"]
    assert Settings(demo_ctx.paths.settings_file).get(pdf_viewer.SAVE_FOLDER_KEY) == str(folder)
    viewer = window.invoices.preview_selected()
    qtbot.waitUntil(lambda: viewer.pdf is not None, timeout=15_000)
    assert viewer.settings is demo_ctx.settings
    viewer.save_as()
    wait_idle(qtbot, ops)
    assert asked[1].parent == folder
