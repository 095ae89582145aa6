"""A background job the main window runs soon after start-up and then every so often
(payment sync, collections): the two timers and start/stop, in one place."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer


class PeriodicJob(QObject):
    """Calls `slot` once `startup_delay_ms` after start() and then every `interval_ms`.
    `running` is for the subclass: True while its pass is under way on the thread pool."""

    def __init__(self, startup_delay_ms: int, interval_ms: int, slot: Callable[[], object],
                 parent: QObject | None = None):
        super().__init__(parent)
        self.running = False
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(slot)
        # The first pass, soon after start-up; a member so that stop() also cancels it.
        self.first = QTimer(self)
        self.first.setSingleShot(True)
        self.first.setInterval(startup_delay_ms)
        self.first.timeout.connect(slot)

    def start(self) -> None:
        self.first.start()
        self.timer.start()

    def stop(self) -> None:
        self.first.stop()
        self.timer.stop()
