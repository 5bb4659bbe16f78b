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
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
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

logger = logging.getLogger(__name__)

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


class StageReporter:
    """Turns (stage, fraction) into ``ProgressEvent``s with an overall fraction over the stages run
    (``options.stages_for(request)``: their shares of ``STAGES`` scaled to fill 0..1)."""

    def __init__(self, callback: ProgressCallback | None, stages: Iterable[str]) -> None:
        self.callback = callback
        weights = dict(STAGES)
        names = list(stages)
        unknown = [name for name in names if name not in weights]
        if unknown:
            raise ValueError(f"unknown stages {unknown}; expected some of {list(weights)}")
        total = sum(weights[name] for name in names)
        self.starts: dict[str, float] = {}
        self.shares: dict[str, float] = {}
        offset = 0.0
        for name in names:
            self.starts[name] = offset
            self.shares[name] = weights[name] / total
            offset += self.shares[name]
        self.current_stage = ""
        self.overall = 0.0

    def begin(self, stage: str, message: str = "") -> None:
        self.current_stage = stage
        self.report(0.0, message or stage)

    def report(self, fraction: float, message: str = "") -> None:
        fraction = min(1.0, max(0.0, fraction))
        overall = self.starts[self.current_stage] + self.shares[self.current_stage] * fraction
        self.overall = max(self.overall, min(1.0, overall))
        if self.callback is not None:
            self.callback(
                ProgressEvent(
                    event="progress",
                    stage=self.current_stage,
                    stage_fraction=round(fraction, 4),
                    overall=round(self.overall, 4),
                    message=message,
                )
            )

    def log(self, message: str, *, level: str = "info") -> None:
        logger.log(logging.WARNING if level == "warning" else logging.INFO, "%s", message)
        if self.callback is not None:
            self.callback(ProgressEvent(event="log", level=level, message=message))

    @contextmanager
    def in_stage(
        self, name: str, message: str, *, done: str, cancel: CancelToken
    ) -> Iterator[None]:
        """One stage: begun with ``message``, finished with ``done`` at 100%, then a cancel point."""
        self.begin(name, message)
        yield
        self.report(1.0, done)
        cancel.raise_if_cancelled()
