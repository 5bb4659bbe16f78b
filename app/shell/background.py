"""Background work, one way for the whole app: a call on its own thread whose outcome comes back as
a Qt signal on the GUI thread.

The thread only emits an internal signal; Qt queues it to this object's thread (the GUI thread),
where it is re-emitted as ``succeeded`` or ``failed``, so no widget is touched from the thread. The
engine bridge hands its events over the same way.

Why a daemon thread and not Qt's thread pool or qasync's ``asyncio.to_thread``: both wait for
running work when the app quits (the pool in its destructor, asyncio's executor at interpreter
exit), and the demo set-up converts a model for minutes; the window must still close at once.
Why not asyncio at all: the window's tests drive real widgets with pytest-qt, with no asyncio loop
running. qasync stays what it is in ``event_loop``: the loop the app runs on, and the excepthook.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, Slot

logger = logging.getLogger(__name__)


class BackgroundCall(QObject):
    """Runs ``work()`` once per ``start()`` on a daemon thread; keep a reference while it runs."""

    succeeded = Signal(object)  # what work() returned
    failed = Signal(object)  # the exception work() raised
    progress = Signal(object)  # whatever work passes to report_progress()
    _finished = Signal(bool, object)
    _progressed = Signal(object)

    def __init__(
        self, work: Callable[[], Any], *, name: str, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._work = work
        self._name = name
        self._thread: threading.Thread | None = None
        self._finished.connect(self._deliver, Qt.ConnectionType.QueuedConnection)
        self._progressed.connect(self.progress, Qt.ConnectionType.QueuedConnection)

    def is_running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"{self._name} is already running; wait for it to finish")
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def wait(self, timeout: float) -> bool:
        """Block until ``work()`` has returned, at most ``timeout`` seconds (the app is quitting
        and the work was told to stop); False when it is still running."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def report_progress(self, value: object) -> None:
        """Callable from ``work`` (any thread): ``progress`` is emitted on the GUI thread."""
        self._progressed.emit(value)

    def _run(self) -> None:
        try:
            result = self._work()
        except Exception as error:  # any failure belongs to the GUI thread, not a dying thread
            logger.debug("%s failed: %s", self._name, error)
            self._finished.emit(False, error)
        else:
            self._finished.emit(True, result)

    @Slot(bool, object)
    def _deliver(self, ok: bool, outcome: object) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)
        (self.succeeded if ok else self.failed).emit(outcome)
