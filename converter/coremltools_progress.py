"""Turn coremltools' own tqdm progress bars into fractions for our callback (and a cancel point).

coremltools draws a bar while it converts torch ops, one per MIL pass pipeline, and one per
quantized op. Inside ``report_coremltools_progress`` those bars are replaced by a quiet iterator
that reports how far along it is and checks the cancel token at every step, so a conversion of a
7B model can be cancelled in the middle of ``ct.convert`` instead of after it.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from converter.progress import CancelToken

# Modules that bind ``tqdm`` at import time, and the name they bind it under.
_TQDM_SITES = (
    ("coremltools.converters.mil.frontend.torch.ops", "_tqdm"),
    ("coremltools.converters.mil.mil.passes.pass_pipeline", "tqdm"),
    ("coremltools.optimize.coreml._quantization_passes", "tqdm"),
    ("coremltools.optimize.coreml._post_training_quantization", "tqdm"),
)


class _BarSequence:
    """Maps successive bars onto one stage fraction: bar ``i`` of about ``expected`` bars."""

    def __init__(
        self,
        report: Callable[[float, str], None],
        cancel: CancelToken | None,
        expected_bars: int,
    ) -> None:
        self.report = report
        self.cancel = cancel
        self.expected_bars = max(1, expected_bars)
        self.bars_started = 0
        self.reported = 0.0

    def fraction(self, bar_index: int, within: float) -> float:
        value = min(0.99, (bar_index + within) / max(self.expected_bars, bar_index + 1))
        self.reported = max(self.reported, value)
        return self.reported


class _QuietBar:
    """Enough of tqdm's interface for coremltools: iterate, ``update``, context manager."""

    def __init__(
        self, sequence: _BarSequence, iterable: Iterable[Any] | None = None, **kwargs: Any
    ) -> None:
        self.sequence = sequence
        self.iterable = iterable
        self.description = str(kwargs.get("desc") or "")
        total = kwargs.get("total")
        if total is None and iterable is not None:
            with contextlib.suppress(TypeError):
                total = len(iterable)  # type: ignore[arg-type]
        self.total = int(total or 0)
        self.count = 0
        self.index = sequence.bars_started
        sequence.bars_started += 1
        self._last = -1.0

    def _step(self, amount: int = 1) -> None:
        if self.sequence.cancel is not None:
            self.sequence.cancel.raise_if_cancelled()
        self.count += amount
        within = self.count / self.total if self.total else 0.0
        if within - self._last >= 0.01 or within >= 1.0:
            self._last = within
            self.sequence.report(self.sequence.fraction(self.index, within), self.description)

    def __iter__(self) -> Iterator[Any]:
        for item in self.iterable or ():
            yield item
            self._step()

    def update(self, amount: int = 1) -> None:
        self._step(amount)

    def set_description(self, description: str = "", **_: Any) -> None:
        self.description = description

    def set_postfix(self, *_: Any, **__: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _QuietBar:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


@contextlib.contextmanager
def report_coremltools_progress(
    report: Callable[[float, str], None],
    *,
    cancel: CancelToken | None = None,
    expected_bars: int = 1,
) -> Iterator[None]:
    """While active, coremltools' bars call ``report(stage_fraction, description)`` instead."""
    sequence = _BarSequence(report, cancel, expected_bars)

    def factory(iterable: Iterable[Any] | None = None, *args: Any, **kwargs: Any) -> _QuietBar:
        return _QuietBar(sequence, iterable, **kwargs)

    saved: list[tuple[Any, str, Any]] = []
    try:
        for module_name, attribute in _TQDM_SITES:
            module = importlib.import_module(module_name)
            saved.append((module, attribute, getattr(module, attribute)))
            setattr(module, attribute, factory)
        yield
    finally:
        for module, attribute, original in saved:
            setattr(module, attribute, original)
