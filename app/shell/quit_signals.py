"""SIGTERM quits like the Quit menu: the window closes, so an answer being written is saved.

Python runs a signal handler only between two bytecodes of the main thread; while Qt's event loop
waits in C nothing runs, so a small timer wakes the interpreter a few times a second. The handler
itself only schedules ``window.close()`` on the event loop (``closeEvent`` saves the answer so far,
marked interrupted, and ends the engine process).
"""

from __future__ import annotations

import logging
import signal
from types import FrameType

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QWidget

logger = logging.getLogger(__name__)

WAKE_INTERVAL_MS = 200
# A window property: close without asking (nobody may be there to answer; the system quits us).
CLOSE_WITHOUT_ASKING = "closeWithoutAsking"


def quit_on_sigterm(window: QWidget) -> QTimer:
    """Install the SIGTERM handler; returns the wake-up timer (parented to ``window``)."""
    wake = QTimer(window)
    wake.setInterval(WAKE_INTERVAL_MS)
    wake.timeout.connect(lambda: None)  # a Python slot: the interpreter gets to run handlers
    wake.start()

    def handle(signum: int, _frame: FrameType | None) -> None:
        logger.info("%s received: quitting like the Quit menu", signal.Signals(signum).name)
        window.setProperty(CLOSE_WITHOUT_ASKING, True)  # nobody is there to answer a question
        QTimer.singleShot(0, window.close)

    signal.signal(signal.SIGTERM, handle)
    return wake
