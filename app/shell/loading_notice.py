"""While a model loads: "Loading NAME…", or, when Core ML compiles it first (no compiled copy yet),
"Preparing this model for your Mac, first time only…" with the time elapsed, once a second: a
7B model's first compile takes minutes and must not look like a hang. The GUI checks the compiled
cache by folder name (``engine.package.coreml_support``), never through the Core ML backend."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QTimer

from engine.package.coreml_support import loading_text, needs_first_compile


class LoadingNotice(QObject):
    """Calls ``show(text)`` at ``start`` and every second until ``stop``."""

    def __init__(
        self,
        show: Callable[[str], None],
        *,
        clock: Callable[[], float] = time.monotonic,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._show = show
        self._clock = clock
        self._timer = QTimer(self)
        self._timer.setInterval(1000)
        self._timer.timeout.connect(self._tick)
        self._name = ""
        self._first_compile = False
        self._started = 0.0

    @property
    def first_compile(self) -> bool:
        return self._first_compile

    def start(self, path: str) -> str:
        self._name = Path(path).name
        self._first_compile = needs_first_compile(Path(path))
        self._started = self._clock()
        self._timer.start()
        return self._tick()

    def stop(self) -> None:
        self._timer.stop()

    def _tick(self) -> str:
        text = loading_text(
            self._name,
            first_compile=self._first_compile,
            elapsed_seconds=self._clock() - self._started,
        )
        self._show(text)
        return text
