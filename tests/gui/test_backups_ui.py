"""Settings → Data: the backups listed, Back up now (into the folder and to a chosen file), the
keep-N setting, Restore with its confirmation (declined: nothing changes; accepted: every
screen shows the restored office), and the daily backup at start-up in the status bar."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
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


def test_a_restore_waits_while_another_job_is_under_way(qtbot, ops, demo_ctx, monkeypatch):
    """A background job (e-mail, payments sync) would write into the restored data: refused, nothing changed."""
    import threading

    data = DataSettingsForm(ops, demo_ctx)
    qtbot.addWidget(data)
    data.load()
    wait_idle(qtbot, ops)
    data.back_up()
    wait_idle(qtbot, ops)
    wait_idle(qtbot, ops)
    assert data.model.rowCount() >= 1
    data.table.selectRow(0)
    monkeypatch.setattr(QMessageBox, "question", lambda *_a: QMessageBox.StandardButton.Yes)
    release = threading.Event()
    ops.run(None, lambda _c: release.wait(20), label="Sending e-mail")   # the mail job, still sending
    try:
        before = demo_ctx.paths.database_file.stat().st_mtime_ns
        data.restore_button.click()
        qtbot.waitUntil(lambda: "busy" in data.notice.text(), timeout=20_000)
        assert "nothing was changed" in data.notice.text()
        assert demo_ctx.paths.database_file.stat().st_mtime_ns == before
    finally:
        release.set()
        wait_idle(qtbot, ops)


def test_a_damaged_database_at_start_offers_to_restore_a_backup(qtbot, demo_ctx, monkeypatch):
    """Settings → Data is out of reach when the database cannot be opened: the start-up message offers
    the restore itself, and the app then opens the restored office."""
    from mspbill.backups import take_backup
    from mspbill.context import open_context
    from mspbill.db.schema import DatabaseCorruptError
    from ui.app import offer_restore

    paths = demo_ctx.paths
    backup = take_backup(paths.database_file, paths.backup_dir, "manual")
    demo_ctx.close()
    with paths.database_file.open("r+b") as fh:
        fh.seek(0)
        fh.write(b"\0garbage" * 512)
    with pytest.raises(DatabaseCorruptError) as refused:
        open_context(str(paths.data_dir))
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "exec", lambda self: shown.append(self.informativeText()) or 0)
    monkeypatch.setattr(QMessageBox, "clickedButton",
                        lambda self: next(b for b in self.buttons() if b.text().startswith("Restore")))
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *_a, **_k: (str(backup), ""))
    monkeypatch.setattr(QMessageBox, "question", lambda *_a, **_k: QMessageBox.StandardButton.Yes)
    monkeypatch.setattr(QMessageBox, "information", lambda *_a, **_k: None)
    assert offer_restore(paths, None, refused.value) is True
    assert "restore a backup" in shown[0]
    ctx = open_context(str(paths.data_dir))
    try:
        with ctx.db.session() as s:
            from mspbill.clients import list_clients

            assert len(list_clients(s)) == 12
    finally:
        ctx.close()
    assert list(paths.data_dir.glob("mspbill.sqlite3.damaged-*")), "the damaged file is kept"
