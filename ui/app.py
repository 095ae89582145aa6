"""The desktop application: QApplication, start-up checks, the main window."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QThreadPool, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QFileDialog,
    QMessageBox,
    QProgressDialog,
    QWidget,
)

from mspbill import __version__
from mspbill.company import get_company
from mspbill.context import AppContext, open_context, prepare_paths
from mspbill.db.schema import DatabaseOpenError, DatabaseServerError
from mspbill.paths import AppPaths
from ui import errors
from ui.database_server_form import RESTART_EXIT_CODE
from ui.first_run import FirstRunDialog
from ui.main_window import MainWindow
from ui.ops import Ops

log = logging.getLogger("mspbill.ui")


def app_icon() -> QIcon:
    from importlib.resources import files

    return QIcon(str(files("mspbill_resources") / "mspbill.svg"))


def make_application(argv: Sequence[str]) -> QApplication:
    app = QApplication.instance()
    if not isinstance(app, QApplication):
        app = QApplication(list(argv))
    app.setApplicationName("mspbill")
    app.setOrganizationName("mspbill")
    app.setApplicationVersion(__version__)
    app.setWindowIcon(app_icon())
    add_bundled_fonts()
    return app


def add_bundled_fonts() -> None:
    """Give Qt the bundled CJK font as a fallback, so that a client named
    株式会社テスト shows on a machine without CJK fonts (the PDFs embed it too)."""
    from PySide6.QtGui import QFontDatabase

    from mspbill.pdf.fonts import font_dir

    QFontDatabase.addApplicationFont(str(font_dir() / "DroidSansFallbackFull.ttf"))


class FirstPaintProbe(QObject):
    """Prints seconds since MSPBILL_T0 (the launcher's clock) at the first paint."""

    def __init__(self, window: QWidget, app: QApplication):
        super().__init__(window)
        self._app = app
        self._done = False

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint and not self._done:
            self._done = True
            t0 = os.environ.get("MSPBILL_T0")
            if t0:
                print(f"first-paint-seconds {time.time() - float(t0):.3f}", file=sys.stderr, flush=True)
            QTimer.singleShot(0, self._app.quit)
        return False


def needs_first_run(ctx: AppContext) -> bool:
    with ctx.db.session() as session:
        return get_company(session) is None


def start(ctx: AppContext) -> QWidget | None:
    """First-run wizard if needed, then the main window (None if the user quit).

    With MSPBILL_EXIT_AFTER_START (smoke tests) the wizard is only shown, not
    waited on, so that a fresh data folder also starts and quits by itself.
    """
    ops = Ops(ctx.db)
    if needs_first_run(ctx):
        wizard = FirstRunDialog(ops, data_dir=ctx.paths.data_dir)
        if os.environ.get("MSPBILL_EXIT_AFTER_START"):
            wizard.show()
            return wizard
        if wizard.exec() != QDialog.DialogCode.Accepted:
            return None
    window = MainWindow(ctx, ops)
    window.show()
    return window


def offer_restore(paths: AppPaths, db_url: str | None, exc: DatabaseOpenError) -> bool:
    """The database cannot be opened: say why and, for a damaged or foreign SQLite file, offer to
    restore a backup from here (Settings → Data is out of reach). True: restored, try again."""
    from mspbill.backups import BackupError, plan_restore, restore
    from mspbill.db.schema import DatabaseCorruptError, NotAnMspbillDatabaseError
    from mspbill.paths import resolve_database_url

    url = resolve_database_url(paths, db_url)
    restorable = isinstance(exc, (DatabaseCorruptError, NotAnMspbillDatabaseError)) and url.startswith("sqlite")
    box = QMessageBox(QMessageBox.Icon.Critical, "mspbill cannot open its database", str(exc))
    restore_button = None
    if restorable:
        box.setInformativeText("You can restore a backup now: mspbill keeps the damaged file beside it. "
                               f"Backups are in {paths.backup_dir}.")
        restore_button = box.addButton("Restore a backup…", QMessageBox.ButtonRole.AcceptRole)
    box.addButton("Quit", QMessageBox.ButtonRole.RejectRole)
    box.exec()
    if restore_button is None or box.clickedButton() is not restore_button:
        return False
    chosen, _ = QFileDialog.getOpenFileName(None, "Restore a backup", str(paths.backup_dir),
                                            "mspbill backups (*.sqlite3 *.sqlite *.db);;All files (*)")
    if not chosen:
        return False
    try:
        plan = plan_restore(url, Path(chosen))
        text = "\n\n".join(plan.confirmation(terminal=False)) + "\n\nRestore it now?"
        if QMessageBox.question(None, "Restore a backup", text) != QMessageBox.StandardButton.Yes:
            return False
        report = restore(paths, url, Path(chosen), plan=plan)
    except BackupError as refused:
        QMessageBox.critical(None, "Not restored", str(refused))
        return False
    QMessageBox.information(None, "Restored", "\n".join(report.lines()))
    return True


def names_server(url: str) -> bool:
    """`url` is not this computer's SQLite file: a database server, or an address that cannot work at all
    (a saved one mistyped, another database's) — either way the server settings are where it is put right."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).get_backend_name() != "sqlite"
    except (ArgumentError, ValueError):
        return True


def _is_server_address(url: str | None) -> bool:
    from mspbill.db.server import DatabaseUrlError, is_server

    try:
        return bool(url) and is_server(str(url))
    except DatabaseUrlError:
        return False


OVERRIDE_NOTE = {
    "--db": "This start's database was given with --db. What you save here becomes this computer's setting "
            "for later starts, and mspbill opens it now; but --db still comes first whenever it is given, so "
            "change it too (or start mspbill without it).",
    "environment": "This start's database was given by the MSPBILL_DATABASE_URL environment variable. What you "
                   "save here becomes this computer's setting, and mspbill opens it now; but the variable still "
                   "comes first while it is set, so change it too (or remove it).",
}


def offer_server_fix(paths: AppPaths, db_url: str | None, exc: DatabaseOpenError) -> tuple[bool, str | None]:
    """The office's database server cannot be used (unreachable, refused, a newer version's or someone else's
    tables, an address that cannot work): say why, then Try again, Server settings…, Use this computer's own
    file, or Quit.  Returns (go on, the --db URL to open next; None: the settings decide).

    "Use this computer's own file" switches this computer back for good (the setting is forgotten, so the next
    start does not try the server again), and opens the file now: the dialog says the server's data is left
    as it is and that what is entered in the file is not seen by the other workstations.  "Server settings…"
    saves to the settings file; when --db or MSPBILL_DATABASE_URL named the database, the dialog says that
    they still come first at later starts, and the server saved is opened now.
    """
    from mspbill.cli_dbserver import where_from
    from mspbill.db.engine import Database
    from mspbill.db.server import forget
    from mspbill.settings import Settings
    from ui.database_server_dialog import DatabaseServerDialog

    url, source = where_from(paths, db_url)
    while True:
        box = QMessageBox(QMessageBox.Icon.Warning, "mspbill cannot open the office database", str(exc))
        first = ("Try again once the server is back; or fix its address or password in Server settings"
                 if isinstance(exc, DatabaseServerError) else
                 "Choose another server or database in Server settings, or Try again once it is put right")
        box.setInformativeText(
            f"{first}; or use this computer's own file ({paths.database_file}) from now on — the office's data "
            "on the server is left as it is, and what you enter in the file is not seen by the other "
            "workstations (Settings → Data switches back).")
        retry = box.addButton("Try again", QMessageBox.ButtonRole.AcceptRole)
        fix = box.addButton("Server settings…", QMessageBox.ButtonRole.ActionRole)
        local = box.addButton("Use this computer's own file", QMessageBox.ButtonRole.ActionRole)
        box.addButton("Quit", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(retry)
        box.exec()
        clicked = box.clickedButton()
        if clicked is retry:
            return True, db_url
        if clicked is local:
            settings = Settings(paths.settings_file)
            if source == "settings":
                forget(settings)
            return True, paths.default_database_url
        if clicked is not fix:
            return False, None
        scratch = Database("sqlite://")      # Ops needs one; the dialog's jobs open their own connections
        try:
            intro = "Fix the server's address or the password; mspbill tries again when you save."
            if source in OVERRIDE_NOTE:
                intro += " " + OVERRIDE_NOTE[source]
            dialog = DatabaseServerDialog(
                Ops(scratch), Settings(paths.settings_file),
                current_url=url if _is_server_address(url) else None, intro=intro)
            if dialog.exec() == QDialog.DialogCode.Accepted and dialog.saved_url:
                # --db or the environment named the server: they still come first, so use the fixed one now.
                return True, (dialog.saved_url if source in ("--db", "environment") else db_url)
        finally:
            scratch.dispose()


def _when(value: object) -> str:
    import datetime as dt

    if isinstance(value, dt.datetime):   # UTC in the database: this computer's time, to the minute
        return (value.astimezone() if value.tzinfo else value).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value) if value else ""


def offer_moved(paths: AppPaths, db_url: str | None, exc: DatabaseOpenError) -> tuple[bool, str | None]:
    """This computer's file says its office was copied elsewhere (`db copy`, "Copy this office to the
    server…"): say so, then Use the server (where it went, when that is a server), Use this file anyway… (asks
    first: the file lacks everything done since), or Quit.  Returns (go on, the --db URL to open next)."""
    from mspbill.cli_dbserver import where_from
    from mspbill.db.server import DatabaseUrlError, remember, shown
    from mspbill.paths import resolve_database_url
    from mspbill.settings import Settings

    url = resolve_database_url(paths, db_url)
    _url, source = where_from(paths, db_url)
    moved_to = str(getattr(exc, "moved_to", "") or "")
    moved_at = _when(getattr(exc, "moved_at", None))
    to_server = _is_server_address(moved_to)
    while True:
        box = QMessageBox(QMessageBox.Icon.Warning, "This office has moved", str(exc))
        if to_server:
            box.setInformativeText(f"Use the server: this computer uses {shown(moved_to)} from now on, where the "
                                   "office has been kept since it was copied.")
        use_server = box.addButton("Use the server", QMessageBox.ButtonRole.AcceptRole) if to_server else None
        anyway = box.addButton("Use this file anyway…", QMessageBox.ButtonRole.ActionRole)
        box.addButton("Quit", QMessageBox.ButtonRole.RejectRole)
        if use_server is not None:
            box.setDefaultButton(use_server)
        box.exec()
        clicked = box.clickedButton()
        if use_server is not None and clicked is use_server:
            try:
                remember(Settings(paths.settings_file), moved_to)
            except (OSError, DatabaseUrlError) as refused:
                QMessageBox.critical(None, "Not switched", f"The setting could not be saved: {refused}")
                continue
            # Named by --db or the environment (or "Use this computer's own file" just now): they come first,
            # so this start opens the server by name.
            return True, (moved_to if source in ("--db", "environment") else None)
        if clicked is not anyway:
            return False, None
        where = f" to {shown(moved_to) if to_server else moved_to}" if moved_to else ""
        since = f" on {moved_at}" if moved_at else ""
        answer = QMessageBox.question(
            None, "Use this file anyway",
            f"This file's office was copied{where}{since}. Everything done there since — invoices, payments, "
            "e-mails sent — is not in this file, and what you enter in the file is not seen there: two offices "
            "that drift apart.\n\nUse this file anyway?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        if answer != QMessageBox.StandardButton.Yes:
            continue
        from mspbill.db import moves

        try:
            moves.reclaim(url)
        except (DatabaseOpenError, OSError) as refused:
            QMessageBox.critical(None, "Not changed", str(refused))
            continue
        return True, db_url


def finish_old_session(app: QApplication, window: QWidget, ctx: AppContext, *, limit_ms: int = 30_000) -> bool:
    """Before a restart opens the database chosen now: the old window's background jobs (an e-mail being sent,
    a payment sync) finish on the old database — with a small window saying so while they take their time —
    then the old engine is closed for good: a job still running after `limit_ms` (or one started by a late
    callback) gets a sentence, never a new connection to the database this computer has just left.
    True when it had to wait."""
    from sqlalchemy import event

    from mspbill.db.schema import DatabaseOpenError

    pool = QThreadPool.globalInstance()
    waited = not pool.waitForDone(200)
    if waited:
        progress = QProgressDialog("Waiting for mspbill's background work (sending e-mail, syncing payments) to "
                                   "finish before it switches databases…", "", 0, 0)
        progress.setWindowTitle("mspbill")
        progress.setCancelButton(None)
        progress.setMinimumDuration(0)
        progress.show()
        spent = 200
        while not pool.waitForDone(100) and spent < limit_ms:
            app.processEvents()       # the progress window paints; jobs' results reach the (hidden) old window
            spent += 100
        if pool.activeThreadCount():
            log.warning("restarting with %d background job(s) still running on the old database",
                        pool.activeThreadCount())
        progress.close()
        progress.deleteLater()
    window.deleteLater()
    app.processEvents()               # the last results, to a window that is going
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)

    def refuse(*_args: object) -> None:
        raise DatabaseOpenError("mspbill switched to another database; this work was stopped and not saved "
                                "in the old one.")

    event.listen(ctx.db.engine, "do_connect", refuse)
    ctx.close()
    return waited


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    parser = argparse.ArgumentParser(prog="mspbill")
    parser.add_argument("--data-dir")
    parser.add_argument("--db")
    args, qt_args = parser.parse_known_args(argv[1:])
    app = make_application([argv[0], *qt_args])
    paths = prepare_paths(args.data_dir)
    errors.install(str(paths.log_file))
    log.info("mspbill %s starting (Qt platform %s)", __version__, app.platformName())
    while True:
        ctx = open_or_offer(paths, args.data_dir, args.db)
        if ctx is None:
            return 2
        window = start(ctx)
        if window is None:
            ctx.close()
            return 0
        # Benchmarks and smoke tests: report the first painted frame, then quit.
        if os.environ.get("MSPBILL_EXIT_AFTER_START"):
            probe = FirstPaintProbe(window, app)
            window.installEventFilter(probe)
            QTimer.singleShot(10_000, app.quit)
        code = app.exec()
        if code != RESTART_EXIT_CODE:
            ctx.close()
            return code
        # Settings → Data switched the database: a new window on it, in this process.
        finish_old_session(app, window, ctx)
        app.setQuitOnLastWindowClosed(True)
        log.info("restarting on the database now chosen in Settings → Data")


def open_or_offer(paths: AppPaths, data_dir: str | None, db_url: str | None) -> AppContext | None:
    """Open the database; when it cannot be, say why and offer what can be done (None: Quit).

    A file whose office moved elsewhere: offer_moved.  A server (or an address that is not this computer's
    file) that cannot be used for any reason: offer_server_fix.  A damaged file: offer_restore."""
    from mspbill.db import schema
    from mspbill.paths import resolve_database_url

    while True:
        try:
            return open_context(data_dir, db_url)
        except DatabaseOpenError as exc:
            moved = getattr(schema, "DatabaseMovedError", None)
            if moved is not None and isinstance(exc, moved):
                go_on, db_url = offer_moved(paths, db_url, exc)
            elif isinstance(exc, DatabaseServerError) or names_server(resolve_database_url(paths, db_url)):
                go_on, db_url = offer_server_fix(paths, db_url, exc)
            else:
                go_on = offer_restore(paths, db_url, exc)
            if not go_on:
                return None


if __name__ == "__main__":
    raise SystemExit(main())
