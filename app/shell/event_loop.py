"""All of the app's qasync glue: the Qt event loop as asyncio's loop, and the excepthook.

``run(main)`` runs ``main()`` (a coroutine function) with ``asyncio.run(..., loop_factory=QEventLoop)``
(Python 3.12+) or qasync's policy-based equivalent (3.11). ``install_excepthook`` makes unexpected
errors (also those raised in ``@asyncSlot`` slots, which qasync sends to ``sys.excepthook``) get
logged and shown in a dialog instead of silently killing a slot or the app.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import traceback
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox
from qasync import QEventLoop

logger = logging.getLogger(__name__)

ErrorReporter = Callable[[str, str], None]


def show_error_dialog(summary: str, details: str) -> None:
    """A modal dialog with the error's one-line summary and its traceback under "Show Details"."""
    box = QMessageBox(QApplication.activeWindow())
    box.setIcon(QMessageBox.Icon.Critical)
    box.setWindowTitle("Unexpected error")
    box.setText("Something went wrong.")
    box.setInformativeText(summary)
    box.setDetailedText(details)
    box.exec()


def install_excepthook(*, report: ErrorReporter = show_error_dialog) -> Callable[..., None]:
    """Log unexpected exceptions and report them (on the GUI thread); returns the old hook."""
    previous = sys.excepthook
    showing = False

    def hook(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
        nonlocal showing
        if issubclass(kind, KeyboardInterrupt):
            previous(kind, error, tb)
            return
        details = "".join(traceback.format_exception(kind, error, tb))
        logger.error("unexpected error:\n%s", details)
        summary = f"{kind.__name__}: {error}"
        if showing:  # one dialog at a time; further errors are in the log
            return

        def show() -> None:
            nonlocal showing
            showing = True
            try:
                report(summary, details)
            finally:
                showing = False

        QTimer.singleShot(0, show)  # never from inside the failing slot or another thread

    sys.excepthook = hook
    return previous


async def wait_closed(app: QApplication) -> None:
    """Return when the last window closes (``aboutToQuit``)."""
    closed = asyncio.Event()
    app.aboutToQuit.connect(closed.set)
    await closed.wait()


def run(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run ``main()`` on Qt's event loop; the QApplication must exist already."""
    app = QApplication.instance()
    if app is None:
        raise RuntimeError("create the QApplication before event_loop.run")
    if sys.version_info >= (3, 12):
        return asyncio.run(main(), loop_factory=lambda: QEventLoop(app))
    import qasync  # Python 3.11: asyncio.run has no loop_factory; qasync sets a loop policy

    return qasync.run(main())
