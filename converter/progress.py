"""Conversion progress and cancellation: the contract between the converter and whoever watches it.

The library calls a ``ProgressCallback`` with ``ProgressEvent``s; the CLI's ``--json-progress``
prints each event as one JSON line on stdout (``event.to_json()``), which the app's Converter pane
reads. Line kinds (the ``"event"`` key):

- ``progress``: ``stage``, ``stage_fraction`` (0..1 within the stage), ``overall`` (0..1), ``message``
- ``log``: ``level`` ("info", "warning"), ``message``
- ``done``: ``output`` (the model folder), ``verification`` (dict or null)
- ``error``: ``message`` (one line that says what to do)
- ``cancelled``: ``message``

Exit codes of ``coreml-chat-convert``: 0 done, 1 error, 2 usage, 130 cancelled.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

# Stages in order, with their share of the overall fraction (a 7B conversion's time, roughly).
STAGES: tuple[tuple[str, float], ...] = (
    ("resolve", 0.05),
    ("load", 0.10),
    ("trace", 0.10),
    ("convert", 0.35),
    ("quantize", 0.20),
    ("save", 0.10),
    ("verify", 0.10),
)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 130


@dataclass(frozen=True)
class ProgressEvent:
    event: str  # "progress" | "log" | "done" | "error" | "cancelled"
    stage: str = ""
    stage_fraction: float = 0.0
    overall: float = 0.0
    message: str = ""
    level: str = "info"
    output: str = ""
    verification: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        data = {k: v for k, v in asdict(self).items() if v not in ("", None, {})}
        data["event"] = self.event
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> ProgressEvent:
        data = json.loads(line)
        if not isinstance(data, dict) or "event" not in data:
            raise ValueError(f"not a progress line: {line[:200]!r}")
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


ProgressCallback = Callable[[ProgressEvent], None]


class ConversionCancelled(Exception):
    """Raised inside the conversion when its ``CancelToken`` is set."""


class CancelToken:
    """Set from any thread (or a signal handler); the conversion checks it between and inside stages."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._interruptible = 0

    def cancel(self) -> None:
        self._event.set()

    def cancel_from_signal(self) -> None:
        """For a signal handler: cancel, and inside ``interruptible()`` raise right where the main
        thread is, so a long call without cancel points of its own stops now, not after it."""
        self.cancel()
        if self._interruptible and threading.current_thread() is threading.main_thread():
            raise ConversionCancelled("conversion cancelled")

    @contextmanager
    def interruptible(self) -> Iterator[None]:
        """A stretch (loading weights) that a signal may interrupt anywhere: it holds nothing that
        an exception in the middle would leave half-done outside the staging folder."""
        self.raise_if_cancelled()
        self._interruptible += 1
        try:
            yield
        finally:
            self._interruptible -= 1

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise ConversionCancelled("conversion cancelled")
