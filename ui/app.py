"""The desktop application: QApplication, start-up checks, the main window."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QDialog, QFileDialog, QMessageBox, QWidget

from mspbill import __version__
from mspbill.company import get_company
from mspbill.context import AppContext, open_context, prepare_paths
from mspbill.db.schema import DatabaseOpenError
from mspbill.paths import AppPaths
from ui import errors
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
        try:
            ctx = open_context(args.data_dir, args.db)
            break
        except DatabaseOpenError as exc:
            if not offer_restore(paths, args.db, exc):
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
    ctx.close()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
