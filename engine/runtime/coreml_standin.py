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
  path (``utils.compile_model`` without a destination); the engine moves it into its cache. It
  takes seconds and holds the GIL all along (``compile_seconds``).
- ``predict`` takes int32, float32 and float64 arrays only (after its float16 conversion): any other
  dtype is refused with a ``RuntimeError``, as ``CoreMLPythonUtils.mm`` refuses what it cannot turn
  into an ``MLMultiArray``; Core ML's own failures reach Python as ``RuntimeError`` too, never as
  the reference runtime's ``ValueError``.
- the first ``predict`` of a new query length is slower (Core ML specialises the program for the
  input shape: ``new_shape_seconds``; the mask's growing width is not counted, or every decode
  step would pay it).
- Core ML lets go of ``predict``'s input arrays late (``release_seconds``, about a second) on a
  queue of its own, without the GIL (apple/coremltools #2827, #2829). When that drops an array's
  last reference a Mac crashes; the stand-in's release thread checks for exactly that and records
  it (``freed_without_gil``), or, in the engine process, aborts as a Mac would.

``engine.runtime.coreml`` runs unchanged on top of it (compile cache, input retention, messages),
so the engine process's Core ML path is exercised here. It reaches the engine process only through
``COREML_CHAT_COREML_STANDIN`` (set by tests and ``benchmarks/ui_latency.py``), for example
``load_seconds=4,predict_seconds=0.25`` (every timing of ``StandinTimings`` may be named).
Never used otherwise.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import tempfile
import threading
import time
import types
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.package import metadata as meta
from engine.package.coreml_support import STANDIN_ENV
from engine.package.model import Model, find_package
from engine.runtime import load_model
from engine.runtime.coremltools_import import import_coremltools

logger = logging.getLogger(__name__)

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
    """Seconds each call holds the GIL (and, for ``release_seconds``, how late inputs go)."""

    load_seconds: float = 0.0
    predict_seconds: float = 0.0
    compile_seconds: float = (
        0.5  # a 135M model compiles in about a second on a Mac, a 7B in minutes
    )
    new_shape_seconds: float = 0.05  # the first predict of each input shape
    release_seconds: float = 1.0  # when Core ML lets go of predict's inputs


_TIMING_NAMES = tuple(StandinTimings.__dataclass_fields__)
_DTYPES_CORE_ML_TAKES = (np.dtype(np.int32), np.dtype(np.float32), np.dtype(np.float64))


def parse_standin(text: str) -> StandinTimings:
    """``load_seconds=4,predict_seconds=0.25`` → timings; a clear error for anything else."""
    values: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, raw = part.partition("=")
        if not sep or key not in _TIMING_NAMES:
            raise ValueError(
                f"{STANDIN_ENV}: expected NAME=SECONDS with NAME one of {', '.join(_TIMING_NAMES)}, "
                f"found {part!r}"
            )
        try:
            values[key] = float(raw)
        except ValueError:
            raise ValueError(f"{STANDIN_ENV}: {key} must be a number, found {raw!r}") from None
        if not 0 <= values[key] <= 3600:
            raise ValueError(f"{STANDIN_ENV}: {key} must be 0..3600 seconds, found {raw}")
    return StandinTimings(**values)


class LateRelease:
    """Core ML's queue that lets go of ``predict``'s inputs ``seconds`` after the call, on a thread
    of its own. On a Mac the last reference dropped there frees the array without the GIL: a crash.
    Here the thread looks whether it holds the last reference; if so it records the array's name in
    ``freed_without_gil`` (and, with ``crash=True``, aborts the process, as the Mac would)."""

    def __init__(self, seconds: float, *, crash: bool = False) -> None:
        self.seconds = seconds
        self.crash = crash
        self.freed_without_gil: list[str] = []
        self._pending: deque[tuple[float, list[tuple[str, np.ndarray]]]] = deque()
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None
        self._outstanding = 0  # batches handed over and not let go of yet

    def hand_over(self, arrays: list[tuple[str, np.ndarray]]) -> None:
        with self._ready:
            self._pending.append((time.monotonic() + self.seconds, arrays))
            self._outstanding += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="standin-coreml-release", daemon=True
                )
                self._thread.start()
            self._ready.notify()

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until every input handed over so far has been let go (tests)."""
        deadline = time.monotonic() + timeout
        while self._outstanding and time.monotonic() < deadline:
            time.sleep(0.02)

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._pending:
                    self._ready.wait()
                due, _ = self._pending[0]
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
                continue
            with self._ready:
                _, arrays = self._pending.popleft()
            while arrays:
                name, array = arrays.pop()
                # Two references when ours is the last: ``array`` and getrefcount's argument.
                if sys.getrefcount(array) <= 2:
                    self._freed_without_gil(name)
                del array
            with self._ready:
                self._outstanding -= 1

    def _freed_without_gil(self, name: str) -> None:
        logger.error(
            "Core ML stand-in: predict's input %r was freed by Core ML's release queue without "
            "the GIL (a crash on a Mac: apple/coremltools #2827, #2829)",
            name,
        )
        self.freed_without_gil.append(name)
        if self.crash:
            os.abort()


class StandinCompiledModel:
    """``coremltools.models.CompiledMLModel`` over the reference runtime."""

    def __init__(self, model: Model, timings: StandinTimings, release: LateRelease) -> None:
        self._model = model
        self._timings = timings
        self._release = release
        self._shapes_seen: set[tuple[int, ...]] = set()

    def make_state(self) -> Any:
        return self._model.make_state()

    def predict(self, data: dict[str, Any], state: Any = None) -> dict[str, np.ndarray]:
        if type(data) not in (list, dict):  # MLModel._check_predict_data
            raise TypeError("Unrecognized input for 'data' parameter: expected a dict")
        for name, value in data.items():  # coremltools does this to the caller's dict
            if isinstance(value, np.ndarray) and value.dtype == np.float16:
                data[name] = value.astype(np.float32)
        for name, value in data.items():
            if isinstance(value, np.ndarray) and value.dtype not in _DTYPES_CORE_ML_TAKES:
                raise RuntimeError(
                    f"Unable to convert the input {name!r} to an MLMultiArray: Core ML takes "
                    f"int32, float32 or float64 arrays, found {value.dtype}"
                )
        self._release.hand_over(
            [(name, value) for name, value in data.items() if isinstance(value, np.ndarray)]
        )
        shapes = np.shape(data.get(meta.INPUT_IDS))
        seconds = self._timings.predict_seconds
        if shapes not in self._shapes_seen:
            self._shapes_seen.add(shapes)
            seconds += self._timings.new_shape_seconds
        hold_gil(seconds)
        try:
            outputs = self._model.predict(data, state)
        except Exception as error:  # Core ML's failures reach Python as RuntimeError
            raise RuntimeError(f"Error computing NN outputs. {error}") from None
        return {
            name: value.astype(np.float32) if value.dtype == np.float16 else value
            for name, value in outputs.items()
        }


class StandinCoreMLTools:
    """What ``engine.runtime.coreml`` uses of the ``coremltools`` module: ``ComputeUnit`` (the real
    enum), ``utils.compile_model`` and ``models.CompiledMLModel``. ``crash``: abort the process when
    Core ML's late release would free an input without the GIL (the engine process)."""

    def __init__(self, timings: StandinTimings = StandinTimings(), *, crash: bool = False) -> None:
        self.timings = timings
        self.release = LateRelease(timings.release_seconds, crash=crash)
        self.ComputeUnit = import_coremltools().ComputeUnit
        self.utils = types.SimpleNamespace(compile_model=self.compile_model)
        self.models = types.SimpleNamespace(CompiledMLModel=self.compiled_ml_model)

    @property
    def freed_without_gil(self) -> list[str]:
        return self.release.freed_without_gil

    def compile_model(self, model: str, destination_path: str | None = None) -> str:
        """Write ``NAME.mlmodelc`` into a fresh temporary folder, as Core ML's compiler does."""
        if not isinstance(model, str) or not model.rstrip("/").endswith(".mlpackage"):
            raise ValueError(f"Invalid model file path: '{model}'.")
        if not (Path(model) / "Manifest.json").is_file():
            raise RuntimeError(f'Error compiling model: "Failed to read model package at {model}."')
        hold_gil(self.timings.compile_seconds)
        output = Path(tempfile.mkdtemp(prefix="standin-compile-")) / (
            Path(model).stem + ".mlmodelc"
        )
        output.mkdir()
        (output / SOURCE_FILE).write_text(str(Path(model).resolve()))
        if destination_path is None:
            return str(output)
        Path(destination_path).parent.mkdir(parents=True, exist_ok=True)
        os.replace(output, destination_path)
        os.rmdir(output.parent)
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
        model = load_model(package, runtime="reference")
        return StandinCompiledModel(model, self.timings, self.release)


def standin_loader(timings: StandinTimings, *, crash: bool = False) -> Callable[..., Model]:
    """A ``load_model`` that goes through the engine's Core ML path on the stand-in (one
    framework for every load, as a process has one Core ML)."""
    framework: list[StandinCoreMLTools] = []

    def load(path: Any, *, compute_units: Any = "cpu_and_gpu", **options: Any) -> Model:
        logger.warning("Core ML stand-in (%s): tests and benchmarks only", timings)
        if not framework:
            framework.append(StandinCoreMLTools(timings, crash=crash))
        return load_model(
            find_package(Path(path)),
            compute_units=compute_units,
            runtime="coreml",
            coremltools=framework[0],
            **options,
        )

    return load


def loader_from_environment() -> Callable[..., Model]:
    """``engine.runtime.load_model``, unless the environment names the stand-in."""
    text = os.environ.get(STANDIN_ENV, "").strip()
    if not text:
        return load_model
    return standin_loader(parse_standin(text), crash=True)  # a process: it dies as a Mac's would
