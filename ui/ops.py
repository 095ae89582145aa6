"""The one way the UI runs core work: off the UI thread, results back by signal.

Every database, network, PDF or e-mail job goes through `Ops.run` (house
rule 2).  The job runs on a QThreadPool with its own Session; what comes back
to the UI thread are plain values or frozen snapshots, never ORM objects.
Failures show an error dialog unless the caller handles them.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import shiboken6
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot
from PySide6.QtWidgets import QMessageBox, QWidget
from sqlalchemy.orm import Session

from mspbill.db.engine import Database
from mspbill.db.schema import DatabaseOpenError
from mspbill.demo import DemoRefusedError
from mspbill.secrets import KeyringUnavailableError
from mspbill.validation import NotFoundError, ValidationError

log = logging.getLogger(__name__)
T = TypeVar("T")

# Errors whose message is written for the person at the screen.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValidationError, NotFoundError, DatabaseOpenError, DemoRefusedError, KeyringUnavailableError)


@dataclass
class OpContext:
    """Handed to the job on its worker thread."""

    db: Database
    _progress: Callable[[int, int, str], None]
    cancel_event: threading.Event = field(default_factory=threading.Event)

    def progress(self, done: int, total: int, text: str = "") -> None:
        self._progress(done, total, text)

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()


class _Relay(QObject):
    """Lives on the UI thread; signals emitted by the worker arrive here queued.

    The slots are methods of this QObject (not bare callables), so Qt's
    AutoConnection queues them to the thread the relay lives in: the UI thread.
    """

    succeeded = Signal(object)
    failed = Signal(object, str)
    progressed = Signal(int, int, str)

    def __init__(self) -> None:
        super().__init__()
        self.handle_success: Callable[[Any], None] = lambda _r: None
        self.handle_failure: Callable[[BaseException, str], None] = lambda _e, _t: None
        self.handle_progress: Callable[[int, int, str], None] | None = None
        self.succeeded.connect(self._succeeded)
        self.failed.connect(self._failed)
        self.progressed.connect(self._progressed)

    @Slot(object)
    def _succeeded(self, result: Any) -> None:
        self.handle_success(result)

    @Slot(object, str)
    def _failed(self, exc: BaseException, tb: str) -> None:
        self.handle_failure(exc, tb)

    @Slot(int, int, str)
    def _progressed(self, done: int, total: int, text: str) -> None:
        if self.handle_progress is not None:
            self.handle_progress(done, total, text)


class _Job(QRunnable, Generic[T]):
    def __init__(self, work: Callable[[OpContext], T], ctx: OpContext, relay: _Relay):
        super().__init__()
        self.setAutoDelete(True)
        self._work, self._ctx, self._relay = work, ctx, relay

    def run(self) -> None:
        try:
            result = self._work(self._ctx)
        except BaseException as exc:  # reported to the UI thread, never lost
            self._relay.failed.emit(exc, traceback.format_exc())
        else:
            self._relay.succeeded.emit(result)


class OpHandle:
    def __init__(self, ctx: OpContext):
        self._ctx = ctx

    def cancel(self) -> None:
        self._ctx.cancel_event.set()


# The database the window works on (set by Ops): a server error in a job is said in words for it.
_database_url: str | None = None


def _server_sentence(exc: BaseException) -> str | None:
    """A database server that went away mid-job (or stayed busy): mspbill.db.server.explain's sentence."""
    if _database_url is None:
        return None
    from mspbill.db.server import explain

    try:
        return explain(exc, _database_url, midway=True)
    except ValueError:  # not a URL it can read: no sentence, the usual dialog
        return None


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        return "\n".join(f"• {i.message}" for i in exc.issues) or str(exc)
    return _server_sentence(exc) or str(exc)


def show_error(parent: QWidget | None, exc: BaseException, title: str = "mspbill") -> None:
    if isinstance(exc, USER_ERRORS) or _server_sentence(exc) is not None:
        QMessageBox.warning(parent, title, describe_error(exc))
        return
    from ui.errors import log_file_hint

    QMessageBox.critical(
        parent, title,
        f"Something went wrong: {exc}\n\nNothing was half-saved. {log_file_hint()}")


class Ops(QObject):
    """Runs jobs for one database; counts them so tests and the UI can wait."""

    busy_changed = Signal(bool)
    job_started = Signal(str)

    def __init__(self, db: Database, pool: QThreadPool | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.db = db
        global _database_url
        _database_url = db.url
        self.pool = pool or QThreadPool.globalInstance()
        self._live: set[_Relay] = set()

    @property
    def active(self) -> int:
        return len(self._live)

    def run(self, parent: QWidget | None, work: Callable[[OpContext], T], *,
            on_success: Callable[[T], None] | None = None,
            on_failure: Callable[[BaseException], bool | None] | None = None,
            on_progress: Callable[[int, int, str], None] | None = None,
            label: str = "") -> OpHandle:
        """Run `work(ctx)` in the pool.  `on_failure` returning True means handled."""
        relay = _Relay()
        ctx = OpContext(self.db, relay.progressed.emit)
        self._live.add(relay)
        if len(self._live) == 1:
            self.busy_changed.emit(True)
        self.job_started.emit(label)

        def finish() -> None:
            self._live.discard(relay)
            relay.deleteLater()
            if not self._live:
                self.busy_changed.emit(False)

        def parent_gone() -> bool:
            # The window that asked was closed while the job ran: nobody to tell.
            return parent is not None and not shiboken6.isValid(parent)

        def succeeded(result: Any) -> None:
            finish()
            if on_success is not None and not parent_gone():
                on_success(result)

        def failed(exc: BaseException, tb: str) -> None:
            finish()
            if not isinstance(exc, USER_ERRORS):
                log.error("background job %s failed:\n%s", label or work, tb)
            if parent_gone():
                return
            handled = on_failure(exc) if on_failure is not None else False
            if not handled:
                show_error(parent, exc)

        relay.handle_success = succeeded
        relay.handle_failure = failed
        relay.handle_progress = on_progress
        self.pool.start(_Job(work, ctx, relay))
        return OpHandle(ctx)

    def read(self, parent: QWidget | None, fn: Callable[[Session], T],
             on_success: Callable[[T], None] | None = None, **kw: Any) -> OpHandle:
        """A read-only job: fn(session) in its own session."""
        def work(ctx: OpContext) -> T:
            with ctx.db.session() as session:
                return fn(session)
        return self.run(parent, work, on_success=on_success, **kw)

    def write(self, parent: QWidget | None, fn: Callable[[Session], T],
              on_success: Callable[[T], None] | None = None, **kw: Any) -> OpHandle:
        """One transaction: committed if fn returns, rolled back if it raises."""
        def work(ctx: OpContext) -> T:
            with ctx.db.write_session() as session, session.begin():
                return fn(session)
        return self.run(parent, work, on_success=on_success, **kw)

    def save_form(self, parent: QWidget | None, fn: Callable[[Session], T], on_saved: Callable[[T], None], *,
                  show_issues: Callable[[dict[str, list[str]]], None], re_enable: Callable[[], None],
                  label: str = "") -> OpHandle:
        """A form's Save: one transaction; the core's ValidationError goes back to the fields.

        Any other failure re-enables the form and shows the error dialog.
        """
        def failed(exc: BaseException) -> bool:
            re_enable()
            if isinstance(exc, ValidationError):
                show_issues(exc.by_field())
                return True
            return False

        return self.write(parent, fn, on_saved, on_failure=failed, label=label)
