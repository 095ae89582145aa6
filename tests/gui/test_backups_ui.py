"""Settings → Data: the backups listed, Back up now (into the folder and to a chosen file), the
keep-N setting, Restore with its confirmation (declined: nothing changes; accepted: every
screen shows the restored office), and the daily backup at start-up in the status bar."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QMessageBox, QStatusBar

from mspbill.backups import KEEP_SETTING
from mspbill.clients import ClientDraft, create_client
from mspbill.settings import Settings
from tests.gui.conftest import wait_idle
from ui.data_settings_form import DailyBackup, DataSettingsForm
from ui.main_window import MainWindow

SHOTS = Path("/tmp/shots8")


def test_the_data_tab_lists_backups_and_backs_up_now(qtbot, ops, demo_ctx, tmp_path, monkeypatch):
    form = DataSettingsForm(ops, demo_ctx)
    qtbot.addWidget(form)
    form.resize(980, 560)
    form.show()
    form.load()
    wait_idle(qtbot, ops)
    assert form.model.rowCount() == 0 and form.empty.isVisible()
    form.backup_button.click()
    wait_idle(qtbot, ops)
    wait_idle(qtbot, ops)   # the list is read again after the backup
    assert form.model.rowCount() == 1
    row = form.model.row_at(0)
    assert row.reason == "manual" and row.clients == 12 and "Backed up to" in form.notice.text()
    assert [form.model.data(form.model.index(0, c)) for c in (1, 4)] == ["made by hand", "12"]

    chosen = tmp_path / "elsewhere" / "office-copy"
    chosen.parent.mkdir()
    offered: list[str] = []

    def save_dialog(_parent, _title, start, _filter):
        offered.append(Path(start).name)
        return str(chosen), ""

    monkeypatch.setattr(QFileDialog, "getSaveFileName", save_dialog)
    form.back_up_to_file()
    wait_idle(qtbot, ops)
    assert offered[0].startswith("mspbill-backup-") and offered[0].endswith(".sqlite3")
    assert (chosen.parent / "office-copy.sqlite3").exists()
    assert form.model.rowCount() == 1   # a file elsewhere is not listed with the folder's backups

    form.keep.setValue(12)
    assert form.save_keep.isEnabled()
    form.save_keep.click()
    assert Settings(demo_ctx.paths.settings_file).get(KEEP_SETTING) == 12
    wait_idle(qtbot, ops)
    SHOTS.mkdir(exist_ok=True)
    form.table.selectRow(0)
    form.grab().save(str(SHOTS / "settings-data.png"))


def test_restore_asks_first_and_every_screen_shows_the_restored_office(qtbot, ops, demo_ctx, monkeypatch):
    window = MainWindow(demo_ctx, ops)
    qtbot.addWidget(window)
    window.show()
    window.settings.show_tab("Data")
    window.go("Settings")
    wait_idle(qtbot, ops)
    data = window.settings.data
    data.back_up()
    wait_idle(qtbot, ops)
    wait_idle(qtbot, ops)
    with demo_ctx.db.write_session() as s, s.begin():
        create_client(s, ClientDraft(legal_name="Signed Up After The Backup"))
    window.go("Clients")
    wait_idle(qtbot, ops)
    assert window.clients.model.rowCount() == 13
    window.go("Settings")
    wait_idle(qtbot, ops)
    manual = [i for i in range(data.model.rowCount()) if data.model.row_at(i).reason == "manual"]
    data.table.selectRow(manual[0])
    asked: list[str] = []
    answers = [QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Yes]

    def question(_parent, _title, text, *_a):
        asked.append(text)
        return answers.pop(0)

    monkeypatch.setattr(QMessageBox, "question", question)
    before = demo_ctx.paths.database_file.stat().st_mtime_ns
    data.restore_button.click()
    wait_idle(qtbot, ops)
    assert "Not restored" in data.notice.text()
    assert demo_ctx.paths.database_file.stat().st_mtime_ns == before
    text = asked[0]
    assert "12 client(s)" in text and "13 client(s)" in text   # the backup's and the current database's
    assert "will no longer be in mspbill" in text and "backed up first" in text

    restored: list[bool] = []
    data.restored.connect(lambda: restored.append(True))
    data.restore_button.click()
    qtbot.waitUntil(lambda: bool(restored), timeout=20_000)
    wait_idle(qtbot, ops)
    assert "Restored" in data.notice.text()
    window.go("Clients")
    wait_idle(qtbot, ops)
    assert window.clients.model.rowCount() == 12
    reasons = {data.model.row_at(i).reason for i in range(data.model.rowCount())}
    assert "before-restore" in reasons


def test_the_daily_backup_runs_in_the_background_and_a_failure_stays_in_the_status_bar(qtbot, ops, demo_ctx):
    bar = QStatusBar()
    qtbot.addWidget(bar)
    daily = DailyBackup(ops, demo_ctx, bar)
    with qtbot.waitSignal(daily.finished, timeout=20_000) as done:
        daily.start()
    assert done.args[1] is False and "Daily backup saved" in done.args[0]
    assert [p.name.endswith("-daily.sqlite3") for p in demo_ctx.paths.backup_dir.iterdir()] == [True]
    # The backups folder cannot be written any more (a file in its place): said, not raised.
    shutil.rmtree(demo_ctx.paths.backup_dir)
    demo_ctx.paths.backup_dir.write_text("in the way")
    again = DailyBackup(ops, demo_ctx, bar)
    with qtbot.waitSignal(again.finished, timeout=20_000) as failed:
        again.start()
    assert failed.args[1] is True and again.label is not None and again.label.text() == "Daily backup failed"
    assert "could not be written" in again.label.toolTip() or "cannot be created" in again.label.toolTip()
    os.remove(demo_ctx.paths.backup_dir)
