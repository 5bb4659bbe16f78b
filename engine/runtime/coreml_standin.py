"""A Core ML stand-in for tests and benchmarks: the parts of coremltools the engine uses, on the
reference runtime, behaving the way coremltools 9.0 does on a Mac.

What a Mac does that this Linux machine would hide, and the stand-in reproduces:

- coremltools holds the GIL through every compile, load and ``predict`` (no
  ``gil_scoped_release`` in ``coremlpython/CoreMLPython.mm``). NumPy, which the reference runtime
  runs on, releases it, so the stand-in adds GIL-holding sleeps: ``ctypes.PyDLL`` calls keep the
  GIL, so ``PyDLL(None).usleep`` blocks every other Python thread of the process, as Core ML does.
- ``CompiledMLModel`` takes a ``coremltools.ComputeUnit`` member, never a string (``TypeError``
  otherwise, as ``_compiled_model.py``'s ``_init_check``).
- ``predict`` replaces float16 inputs by float32 copies inside the caller's dict
  (``MLModel._update_float16_multiarray_input_to_float32``), and returns float32 for float16
  outputs (``CoreMLPythonUtils.mm`` converts every Float16 multi-array it hands back).
- ``compile_model`` writes an ``.mlmodelc`` folder somewhere of Core ML's choosing and returns its
  path (``utils.compile_model`` without a destination); the engine moves it into its cache.

``engine.runtime.coreml`` runs unchanged on top of it (compile cache, input retention, messages),
so the engine process's Core ML path is exercised here. It reaches the engine process only through
``COREML_CHAT_COREML_STANDIN`` (set by tests and ``benchmarks/ui_latency.py``), for example
``load_seconds=4,predict_seconds=0.25``. Never used otherwise.
"""

from __future__ import annotations

import ctypes
import logging
import os
import tempfile
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.package.model import Model, find_package
from engine.runtime import load_model
from engine.runtime.coremltools_import import import_coremltools

logger = logging.getLogger(__name__)

STANDIN_ENV = "COREML_CHAT_COREML_STANDIN"
# The file inside a stand-in ``.mlmodelc`` that names the package it was "compiled" from.
SOURCE_FILE = "standin-source.txt"


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


class StandinCompiledModel:
    """``coremltools.models.CompiledMLModel`` over the reference runtime."""

    def __init__(self, model: Model, timings: StandinTimings) -> None:
        self._model = model
        self._timings = timings

    def make_state(self) -> Any:
        return self._model.make_state()

    def predict(self, data: dict[str, Any], state: Any = None) -> dict[str, np.ndarray]:
        if type(data) not in (list, dict):  # MLModel._check_predict_data
            raise TypeError("Unrecognized input for 'data' parameter: expected a dict")
        for name, value in data.items():  # coremltools does this to the caller's dict
            if isinstance(value, np.ndarray) and value.dtype == np.float16:
                data[name] = value.astype(np.float32)
        hold_gil(self._timings.predict_seconds)
        outputs = self._model.predict(data, state)
        return {
            name: value.astype(np.float32) if value.dtype == np.float16 else value
            for name, value in outputs.items()
        }


class StandinCoreMLTools:
    """What ``engine.runtime.coreml`` uses of the ``coremltools`` module: ``ComputeUnit`` (the real
    enum), ``utils.compile_model`` and ``models.CompiledMLModel``."""

    def __init__(self, timings: StandinTimings = StandinTimings()) -> None:
        self.timings = timings
        self.ComputeUnit = import_coremltools().ComputeUnit
        self.utils = types.SimpleNamespace(compile_model=self.compile_model)
        self.models = types.SimpleNamespace(CompiledMLModel=self.compiled_ml_model)

    def compile_model(self, model: str, destination_path: str | None = None) -> str:
        """Write ``NAME.mlmodelc`` into a fresh temporary folder, as Core ML's compiler does."""
        if not isinstance(model, str) or not model.rstrip("/").endswith(".mlpackage"):
            raise ValueError(f"Invalid model file path: '{model}'.")
        output = Path(tempfile.mkdtemp(prefix="standin-compile-")) / (
            Path(model).stem + ".mlmodelc"
        )
        output.mkdir()
        (output / SOURCE_FILE).write_text(str(Path(model).resolve()))
        if destination_path is None:
            return str(output)
        os.replace(output, destination_path)
        return destination_path

    def compiled_ml_model(self, path: str, compute_units: Any = None) -> StandinCompiledModel:
        unit = self.ComputeUnit.ALL if compute_units is None else compute_units
        if not isinstance(path, str):
            raise TypeError('The "path" parameter must be of type "str".')
        if not isinstance(unit, self.ComputeUnit):
            raise TypeError(
                'The "compute_units" parameter must be of type: "coremltools.ComputeUnit".'
            )
        hold_gil(self.timings.load_seconds)
        package = Path((Path(path) / SOURCE_FILE).read_text())
        return StandinCompiledModel(load_model(package, runtime="reference"), self.timings)


def standin_loader(timings: StandinTimings) -> Callable[..., Model]:
    """A ``load_model`` that goes through the engine's Core ML path on the stand-in."""

    def load(path: Any, *, compute_units: Any = "cpu_and_gpu") -> Model:
        logger.warning("Core ML stand-in (%s): tests and benchmarks only", timings)
        return load_model(
            find_package(Path(path)),
            compute_units=compute_units,
            runtime="coreml",
            coremltools=StandinCoreMLTools(timings),
        )

    return load


def loader_from_environment() -> Callable[..., Model]:
    """``engine.runtime.load_model``, unless the environment names the stand-in."""
    text = os.environ.get(STANDIN_ENV, "").strip()
    if not text:
        return load_model
    return standin_loader(parse_standin(text))
