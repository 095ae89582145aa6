"""The safety net: an unhandled exception is logged and shown, never silent."""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from types import TracebackType

from PySide6.QtCore import QThread, QtMsgType, qInstallMessageHandler
from PySide6.QtWidgets import QApplication, QMessageBox

log = logging.getLogger("mspbill.ui")

_log_file: str = ""


def log_file_hint() -> str:
    return f"Details are in the log file {_log_file}." if _log_file else "Details are in the log file."


def _on_ui_thread() -> bool:
    app = QApplication.instance()
    return app is not None and QThread.currentThread() is app.thread()


def handle_exception(exc_type: type[BaseException], exc: BaseException,
                     tb: TracebackType | None) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    log.error("unhandled exception:\n%s", "".join(traceback.format_exception(exc_type, exc, tb)))
    if _on_ui_thread():
        box = QMessageBox(QMessageBox.Icon.Critical, "mspbill — unexpected problem",
                          f"mspbill hit a problem it did not expect:\n\n{exc_type.__name__}: {exc}\n\n"
                          f"What you saved before is safe. {log_file_hint()}")
        box.setDetailedText("".join(traceback.format_exception(exc_type, exc, tb)))
        box.exec()


def _thread_hook(args: threading.ExceptHookArgs) -> None:
    log.error("unhandled exception in thread %s:\n%s", args.thread.name if args.thread else "?",
              "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback)))


def _qt_messages(mode: QtMsgType, _context: object, message: str) -> None:
    level = {QtMsgType.QtDebugMsg: logging.DEBUG, QtMsgType.QtInfoMsg: logging.INFO,
             QtMsgType.QtWarningMsg: logging.WARNING}.get(mode, logging.ERROR)
    logging.getLogger("qt").log(level, "%s", message)


def install(log_file: str) -> None:
    global _log_file
    _log_file = log_file
    sys.excepthook = handle_exception
    threading.excepthook = _thread_hook
    qInstallMessageHandler(_qt_messages)
