"""Settings → Data → Database and the office-server dialog, against the real test PostgreSQL server and a real
GNOME Keyring; and the start-up message when the server cannot be used.  Modal boxes are answered by
monkeypatching their exec (a test never waits on one)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from PySide6.QtWidgets import QDialog, QMessageBox, QWidget

from mspbill.db.schema import DatabaseServerError
from mspbill.db.server import remember, saved_url, secret_name, without_password
from mspbill.settings import Settings
from tests.gui.conftest import wait_idle
from tests.pg_server import SUPERUSER, SUPERUSER_PASSWORD, PgServer
from ui.database_server_dialog import DatabaseServerDialog
from ui.database_server_form import RESTART_EXIT_CODE, DatabaseGroup, restart_app

SHOTS = Path(os.environ.get("MSPBILL_SHOTS", "/tmp/shots9"))


def _shot(widget: QWidget, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    widget.grab().save(str(SHOTS / name))


def _fill(dialog: DatabaseServerDialog, pg_server: PgServer, database: str, password: str) -> None:
    dialog.host.setText(f"  {pg_server.host} ")          # spaces around are trimmed
    dialog.port.setText(str(pg_server.port))
    dialog.database.setText(database)
    dialog.user.setText(SUPERUSER)
    dialog.password.setText(password)


def _test(qtbot, ops, dialog: DatabaseServerDialog) -> str:
    dialog.test_button.click()
    wait_idle(qtbot, ops)
    return dialog.notice.text()


def _box_answers(monkeypatch: pytest.MonkeyPatch, button_text: str) -> list[str]:
    """Every QMessageBox.exec returns at once, as if `button_text` had been clicked; returns the texts shown."""
    shown: list[str] = []

    def exec_(box: QMessageBox) -> int:
        shown.append(box.text())
        for b in box.buttons():
            if b.text().replace("&", "") == button_text:
                box._clicked = b  # type: ignore[attr-defined]
                return int(box.standardButton(b).value) or 0
        box._clicked = None  # type: ignore[attr-defined]
        return 0

    monkeypatch.setattr(QMessageBox, "exec", exec_)
    monkeypatch.setattr(QMessageBox, "clickedButton", lambda box: getattr(box, "_clicked", None))
    return shown


def _static_answers(monkeypatch: pytest.MonkeyPatch, answer: QMessageBox.StandardButton) -> list[str]:
    """QMessageBox.question/information/critical return at once (`answer`); returns the texts shown."""
    shown: list[str] = []

    def static(_parent, _title, text, *_a, **_k):
        shown.append(text)
        return answer

    for name in ("question", "information", "critical", "warning"):
        monkeypatch.setattr(QMessageBox, name, staticmethod(static))
    return shown


@pytest.fixture
def office_db(pg_server: PgServer):
    name = pg_server.new_database()
    yield name
    pg_server.drop_database(name)


@pytest.mark.keyring
def test_test_connection_and_use_this_server_save_the_address_only(
        qtbot, app_ctx, ops, pg_server: PgServer, office_db: str, secret_service, monkeypatch) -> None:
    restarted: list[QWidget] = []
    group = DatabaseGroup(ops, app_ctx, restart=lambda w: restarted.append(w) or True)
    qtbot.addWidget(group)
    assert group.where.text() == f"This computer's file: {app_ctx.paths.database_file}"
    assert group.server_button.text() == "Use an office server…" and group.local_button.isHidden()
    dialog = group.server_dialog()
    qtbot.addWidget(dialog)
    assert dialog.port.text() == "5432"
    assert dialog.password.echoMode() == dialog.password.EchoMode.Password

    _fill(dialog, pg_server, office_db, "wrong-password")
    refused = _test(qtbot, ops, dialog)
    assert "refused user 'mspbill_test'" in refused
    # Said for the dialog the person is in: its fields, not Settings → Data → Database → Change….
    assert "Check the user and the password above" in refused and "Settings" not in refused
    _fill(dialog, pg_server, office_db, SUPERUSER_PASSWORD)          # non-ASCII
    assert _test(qtbot, ops, dialog) == "Connected: mspbill database, 0 clients."
    assert dialog.copy_button.isHidden()                             # not empty: nothing to copy into
    dialog.resize(620, dialog.sizeHint().height())
    _shot(dialog, "database_server_dialog.png")

    shown = _box_answers(monkeypatch, "Restart now")
    dialog.use_button.click()
    wait_idle(qtbot, ops)
    assert dialog.result() == QDialog.DialogCode.Accepted
    text = app_ctx.paths.settings_file.read_text(encoding="utf-8")
    url = json.loads(text)["database_url"]
    assert url == pg_server.url(office_db, password=None)
    assert SUPERUSER_PASSWORD not in text and "p%C3%A4ssword" not in text
    from mspbill.secrets import SecretStore

    assert SecretStore().get(secret_name(url)) == SUPERUSER_PASSWORD
    assert "mspbill must restart to switch" in shown[-1] and restarted == [group.window()]
    assert group.server_button.text() == "Change…" and not group.local_button.isHidden()
    # The same Settings object as the main window's: its later writes keep the server.
    assert saved_url(app_ctx.settings) == url


def test_the_fields_show_every_problem_and_nothing_runs(qtbot, app_ctx, ops) -> None:
    dialog = DatabaseServerDialog(ops, app_ctx.settings)
    qtbot.addWidget(dialog)
    dialog.port.setText("70000")
    dialog.test_button.click()
    assert ops.active == 0
    for row in ("host", "port", "database", "user"):
        assert dialog.form.rows[row].error.text(), row
    assert "1 to 65535" in dialog.form.rows["port"].error.text()
    assert not dialog.form.rows["password"].error.text()


@pytest.mark.keyring
def test_copy_this_office_to_an_empty_server_then_switch_at_once(
        qtbot, demo_ctx, ops, pg_server: PgServer, secret_service, monkeypatch) -> None:
    """The button appears for an empty database when the office is in this computer's file, runs the real
    mspbill.db.copy.copy_database with a progress dialog; then no "Later": the window on the file would go on
    sending its outbox from there, so the server is saved and mspbill restarts on it at once."""
    empty = pg_server.new_database(template=None)
    try:
        restarted: list[QWidget] = []
        group = DatabaseGroup(ops, demo_ctx, restart=lambda w: restarted.append(w) or True)
        qtbot.addWidget(group)
        dialog = group.server_dialog()
        qtbot.addWidget(dialog)
        _fill(dialog, pg_server, empty, SUPERUSER_PASSWORD)
        assert _test(qtbot, ops, dialog) == "Connected: an empty database — copy this office into it first."
        assert not dialog.copy_button.isHidden()
        _shot(dialog, "database_server_dialog_empty.png")
        boxes = _box_answers(monkeypatch, "Later")              # a restart question would be answered "Later"
        said = _static_answers(monkeypatch, QMessageBox.StandardButton.Ok)
        dialog.copy_button.click()
        assert dialog.progress is not None
        wait_idle(qtbot, ops)
        assert dialog.progress is None and dialog.copied
        assert dialog.result() == QDialog.DialogCode.Accepted
        assert any("every table's count and totals match" in line for line in dialog.copy_lines)
        assert saved_url(demo_ctx.settings) == pg_server.url(empty, password=None)
        assert boxes == [] and restarted == [group.window()]    # no "Restart now / Later" question
        assert "mspbill restarts now" in said[-1]
    finally:
        pg_server.drop_database(empty)


@pytest.fixture
def server_ctx(app_ctx, pg_server: PgServer, office_db: str):
    """This computer already works on the office server (with a connection option saved by `db use`)."""
    from mspbill.context import AppContext
    from mspbill.db.engine import Database

    url = pg_server.url(office_db) + "?sslmode=disable"
    remember(app_ctx.settings, without_password(url))
    ctx = AppContext(paths=app_ctx.paths, settings=app_ctx.settings, db=Database(url))
    yield ctx
    ctx.close()


@pytest.mark.keyring
def test_the_same_server_again_is_no_switch_and_keeps_the_saved_options(
        qtbot, server_ctx, ops, secret_service, monkeypatch) -> None:
    restarted: list[QWidget] = []
    group = DatabaseGroup(ops, server_ctx, restart=lambda w: restarted.append(w) or True)
    qtbot.addWidget(group)
    dialog = group.server_dialog()
    qtbot.addWidget(dialog)
    assert not dialog.options.isHidden() and "sslmode=disable" in dialog.options.text()
    dialog.password.setText(SUPERUSER_PASSWORD)
    boxes = _box_answers(monkeypatch, "Restart now")
    dialog.use_button.click()
    wait_idle(qtbot, ops)
    assert dialog.result() == QDialog.DialogCode.Accepted
    assert saved_url(server_ctx.settings).endswith("?sslmode=disable")   # not dropped by the fields
    assert boxes == [] and restarted == []
    assert group.notice.text().startswith("Nothing to switch: this computer already uses postgresql://")
    # Another server: its options are not the saved server's.
    dialog2 = group.server_dialog()
    qtbot.addWidget(dialog2)
    dialog2.host.setText("db.elsewhere.lan")
    assert dialog2.options.isHidden()


def test_an_empty_database_instead_of_the_office_server_asks_first(
        qtbot, server_ctx, ops, pg_server: PgServer, monkeypatch) -> None:
    """One mistyped database name must not land a workstation in a blank office: asked, default No."""
    empty = pg_server.new_database(template=None)
    try:
        group = DatabaseGroup(ops, server_ctx, restart=lambda w: True)
        qtbot.addWidget(group)
        dialog = group.server_dialog()
        qtbot.addWidget(dialog)
        before = saved_url(server_ctx.settings)
        dialog.database.setText(empty)
        dialog.password.setText(SUPERUSER_PASSWORD)
        asked: list[tuple[str, object]] = []

        def question(_parent, _title, text, _buttons, default):
            asked.append((text, default))
            return QMessageBox.StandardButton.No

        monkeypatch.setattr(QMessageBox, "question", staticmethod(question))
        dialog.use_button.click()
        wait_idle(qtbot, ops)
        text, default = asked[0]
        assert f"The database '{empty}' on 127.0.0.1:{pg_server.port} is empty" in text
        assert "your office's data stays on postgresql://mspbill_test@" in text
        assert default == QMessageBox.StandardButton.No
        assert dialog.result() != QDialog.DialogCode.Accepted and saved_url(server_ctx.settings) == before
        assert "Not switched" in dialog.notice.text()
    finally:
        pg_server.drop_database(empty)


def test_the_dialog_grows_with_its_messages_and_a_new_check_clears_the_old_one(qtbot, app_ctx, ops) -> None:
    dialog = DatabaseServerDialog(ops, app_ctx.settings)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    dialog._failed(DatabaseServerError("The database server at db.office.lan:5432 refused user 'anna': the "
                                       "password is wrong or the user does not exist there. Check the user and "
                                       "the password above, then test again. Nothing was changed."))
    assert dialog.notice.isVisible()
    dialog.port.setText("70000")
    dialog.test_button.click()                  # every field is wrong now
    qtbot.wait(10)                              # the resize and the new layout are applied
    assert not dialog.notice.isVisible()        # the old server's answer is not left under the new problems
    _shot(dialog, "database_server_dialog_field_errors.png")
    rows = [dialog.form.rows[name] for name in ("host", "port", "database", "user", "password")]
    for row in rows:
        assert row.editor.height() >= row.editor.sizeHint().height(), row.editor.accessibleName()
    for upper, lower in zip(rows, rows[1:]):
        bottom = upper.mapTo(dialog, upper.rect().bottomLeft()).y()
        assert bottom < lower.mapTo(dialog, lower.rect().topLeft()).y()
        if upper.error.isVisible():
            assert upper.error.height() >= upper.error.heightForWidth(upper.error.width())


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_start_up_when_the_server_cannot_be_reached(qtbot, tmp_path: Path, qapp, monkeypatch) -> None:
    """Try again / Server settings… / Use this computer's own file / Quit, through open_or_offer."""
    import keyring.backends.fail

    from mspbill.context import prepare_paths
    from ui.app import offer_server_fix, open_or_offer

    # No keyring here (and not an earlier test's, which keyring caches in-process): the server needs none.
    monkeypatch.setattr("mspbill.secrets.keyring.get_keyring", lambda: keyring.backends.fail.Keyring())
    data = str(tmp_path / "data")
    paths = prepare_paths(data)
    server = f"postgresql+psycopg://anna@127.0.0.1:{_closed_port()}/office"
    remember(Settings(paths.settings_file), server)
    refused = DatabaseServerError("mspbill cannot reach the database server at 127.0.0.1.")

    shown = _box_answers(monkeypatch, "Try again")
    assert offer_server_fix(paths, None, refused) == (True, None)
    assert shown == [str(refused)]
    _box_answers(monkeypatch, "Quit")
    assert offer_server_fix(paths, None, refused) == (False, None)

    # Server settings…: the same dialog, filled with the saved server; saving tries again.
    opened: list[DatabaseServerDialog] = []

    def dialog_exec(dialog: DatabaseServerDialog) -> int:
        opened.append(dialog)
        dialog.saved_url = server
        return int(QDialog.DialogCode.Accepted.value)

    monkeypatch.setattr(DatabaseServerDialog, "exec", dialog_exec)
    _box_answers(monkeypatch, "Server settings…")
    assert offer_server_fix(paths, None, refused) == (True, None)
    assert opened[0].user.text() == "anna" and opened[0].database.text() == "office"

    # Use this computer's own file: the real start-up loop opens the file, and the server is forgotten.
    shown = _box_answers(monkeypatch, "Use this computer's own file")
    ctx = open_or_offer(paths, data, None)
    try:
        assert ctx is not None and ctx.db.sqlite_path == paths.database_file
        assert "cannot reach the database server at 127.0.0.1" in shown[0]
        assert saved_url(Settings(paths.settings_file)) is None
    finally:
        if ctx is not None:
            ctx.close()


def test_restart_closes_the_window_and_ends_the_loop_with_the_restart_code(qtbot, qapp, monkeypatch) -> None:
    window = QWidget()
    qtbot.addWidget(window)
    window.show()
    codes: list[int] = []
    monkeypatch.setattr(type(qapp), "exit", staticmethod(lambda code=0: codes.append(code)))
    assert restart_app(window) is True
    assert not window.isVisible() and codes == [RESTART_EXIT_CODE]
    qapp.setQuitOnLastWindowClosed(True)


def test_data_tab_shows_where_the_data_is(qtbot, demo_ctx, ops) -> None:
    from ui.data_settings_form import DataSettingsForm

    form = DataSettingsForm(ops, demo_ctx)
    qtbot.addWidget(form)
    form.resize(900, 640)
    form.show()
    form.load()
    wait_idle(qtbot, ops)
    assert form.database_group.where.text().startswith("This computer's file: ")
    _shot(form, "data_tab.png")


def test_main_opens_the_database_again_after_a_restart(qtbot, qapp, tmp_path: Path, monkeypatch) -> None:
    """RESTART_EXIT_CODE from the event loop: the old context is closed and the database chosen now is opened."""
    import sys
    import threading

    import keyring.backends.fail

    import ui.app as app_module

    monkeypatch.setattr("mspbill.secrets.keyring.get_keyring", lambda: keyring.backends.fail.Keyring())
    server = f"postgresql://anna@127.0.0.1:{_closed_port()}/office"

    opened: list[str] = []
    real_open = app_module.open_context

    def open_context(data_dir, db_url=None, **kw):
        ctx = real_open(data_dir, db_url, **kw)
        opened.append(ctx.db.url)
        if len(opened) == 1:        # what Settings → Data saves before "Restart now"
            remember(ctx.settings, server)
            monkeypatch.setattr(app_module, "open_context", real_open)
        return ctx

    codes = iter([RESTART_EXIT_CODE, 0])
    windows: list[QWidget] = []
    monkeypatch.setattr(app_module, "open_context", open_context)
    monkeypatch.setattr(app_module, "start", lambda ctx: windows.append(QWidget()) or windows[-1])
    monkeypatch.setattr(type(qapp), "exec", lambda *_a: next(codes))
    # main() installs the app's exception hooks; the test's own come back afterwards.
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    refused: list[str] = []
    monkeypatch.setattr(app_module, "offer_server_fix",
                        lambda paths, db_url, exc: refused.append(str(exc)) or (False, None))
    data = tmp_path / "data"
    # The second start finds the new setting: the server (which is not there), and says so at start-up.
    assert app_module.main(["mspbill", "--data-dir", str(data)]) == 2
    assert opened == [f"sqlite:///{data / 'mspbill.sqlite3'}"] and len(windows) == 1
    assert refused and "cannot reach the database server at 127.0.0.1" in refused[0]
