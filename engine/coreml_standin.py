"""A Core ML stand-in for tests and benchmarks: the reference runtime, holding the GIL like coremltools.

On a Mac, coremltools holds the GIL through every load, compile and ``predict`` (no
``gil_scoped_release`` in ``coremlpython/CoreMLPython.mm``, coremltools 9.0). NumPy, which the
reference runtime runs on, releases it, so this Linux machine would hide what a Mac shows: a frozen
window when the engine shares the GUI's process. This stand-in wraps the real reference model (its
answers stay real) and adds GIL-holding sleeps: ``ctypes.PyDLL`` calls keep the GIL, so
``PyDLL(None).usleep`` blocks every other Python thread of the process, as Core ML does.

It reaches the engine process only through ``COREML_CHAT_COREML_STANDIN`` (set by tests and
``benchmarks/ui_latency.py``), for example ``load_seconds=4,predict_seconds=0.25``. Never used
otherwise.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.model_package import Model, ModelDescription
from engine.runtime import load_model

logger = logging.getLogger(__name__)

STANDIN_ENV = "COREML_CHAT_COREML_STANDIN"


def hold_gil(seconds: float) -> None:
    """Sleep while holding the GIL, as a coremltools call does (PyDLL does not release it).

    One call for the whole time: between two calls the interpreter could hand the GIL to another
    thread, which coremltools never does during a load or a predict (glibc and macOS accept
    usleep arguments above one second)."""
    if seconds > 0:
        ctypes.PyDLL(None).usleep(ctypes.c_uint(int(seconds * 1_000_000)))


@dataclass(frozen=True)
class StandinTimings:
    load_seconds: float = 0.0
    predict_seconds: float = 0.0


def parse_standin(text: str) -> StandinTimings:
    """``load_seconds=4,predict_seconds=0.25`` → timings; a clear error for anything else."""
    values: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, raw = part.partition("=")
        if not sep or key not in ("load_seconds", "predict_seconds"):
            raise ValueError(
                f"{STANDIN_ENV}: expected load_seconds=S,predict_seconds=S, found {part!r}"
            )
        try:
            values[key] = float(raw)
        except ValueError:
            raise ValueError(f"{STANDIN_ENV}: {key} must be a number, found {raw!r}") from None
        if not 0 <= values[key] <= 3600:
            raise ValueError(f"{STANDIN_ENV}: {key} must be 0..3600 seconds, found {raw}")
    return StandinTimings(**values)


class GilHoldingModel:
    """A loaded model whose ``predict`` first holds the GIL for ``predict_seconds``."""

    def __init__(self, model: Model, timings: StandinTimings) -> None:
        self._model = model
        self._timings = timings

    @property
    def description(self) -> ModelDescription:
        return self._model.description

    def make_state(self) -> Any:
        return self._model.make_state()

    def predict(self, inputs: dict[str, np.ndarray], state: Any = None) -> dict[str, np.ndarray]:
        hold_gil(self._timings.predict_seconds)
        return self._model.predict(inputs, state)


def standin_loader(timings: StandinTimings) -> Callable[..., Model]:
    """A ``load_model`` that holds the GIL for ``load_seconds`` first, then wraps the model."""

    def load(path: Any, *, compute_units: Any = "cpu_and_gpu") -> Model:
        logger.warning("Core ML stand-in (%s): tests and benchmarks only", timings)
        hold_gil(timings.load_seconds)
        return GilHoldingModel(load_model(path, compute_units=compute_units), timings)

    return load


def loader_from_environment() -> Callable[..., Model]:
    """``engine.runtime.load_model``, unless the environment names the stand-in."""
    text = os.environ.get(STANDIN_ENV, "").strip()
    if not text:
        return load_model
    return standin_loader(parse_standin(text))
