"""Core ML itself (macOS 15+): compile the package once, cache the ``.mlmodelc``, run it.

Compiling an ``.mlpackage`` takes long for a 7B model, so the compiled model is cached under the
app's cache folder, keyed by the package's content (its spec and the sizes and dates of its weight
files), and loaded with ``CompiledMLModel`` afterwards. This path cannot run on Linux: it is kept
thin, and its tests drive it with a stand-in for the macOS framework.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from engine.package.model import (
    COMPUTE_UNITS,
    InputCheck,
    ModelDescription,
    ModelLoadError,
    check_input,
    describe_spec,
    read_spec,
)
from engine.paths import compiled_copy_prefix, compiled_model_path
from engine.runtime.coremltools_import import import_coremltools

logger = logging.getLogger(__name__)


def compile_cached(package: Path, ct: Any) -> Path:
    """The cached ``.mlmodelc`` for ``package``, compiling it (once) if it is not there yet.

    A compiled copy is several GB for a 7B model, so older copies of the same package go once a
    new one is in place. Two processes may compile the same package at once: each moves its
    result to a folder of its own, and the second to finish finds the target there, uses it and
    drops its own copy. Nothing is left behind when the compile or the move fails.
    """
    target = compiled_model_path(package)
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    logger.info("compiling %s for Core ML (once)", package.name)
    compiled = Path(ct.utils.compile_model(str(package)))
    partial = target.with_name(target.name + f"{_PARTIAL}{os.getpid()}")
    try:
        shutil.rmtree(partial, ignore_errors=True)
        shutil.move(str(compiled), partial)
        try:
            os.rename(partial, target)  # a folder: fails when the target exists, never merges
        except OSError:
            if not target.is_dir():
                raise
            logger.info("another process compiled %s first: using its copy", package.name)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(compiled, ignore_errors=True)  # Core ML's output when the move failed
    _remove_older_copies(package, keep=target)
    return target


_PARTIAL = ".partial-"
# Copies named before the location was part of the name: NAME-<32 hex digits>.mlmodelc.
_UNLOCATED = re.compile(r"-[0-9a-f]{32}\.mlmodelc$")


def _remove_older_copies(package: Path, *, keep: Path) -> None:
    """Remove the package's other compiled copies, and partial ones whose process is gone."""
    prefix = compiled_copy_prefix(package)
    for entry in keep.parent.iterdir():
        name = entry.name
        if entry == keep or not entry.is_dir():
            continue
        ours = name.startswith(prefix) or (
            name.startswith(f"{package.stem}-") and _UNLOCATED.fullmatch(name[len(package.stem) :])
        )
        if not ours:
            continue
        _, partial, pid = name.partition(_PARTIAL)
        if partial and pid.isdigit() and _process_alive(int(pid)):
            continue  # another process is moving its compile into place
        logger.info("removing an older compiled copy: %s", name)
        shutil.rmtree(entry, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# Work-around for an open coremltools 9.0 crash (apple/coremltools PR #2827 and #2829): Core ML
# releases the NumPy arrays handed to ``predict`` on its own background queue, about a second after
# the call and without the GIL. If that drops the last reference, the array is freed without the
# GIL and the process crashes: exactly what a chat does (predict, then idle while the user reads).
# So float16 inputs are converted to float32 here (coremltools would otherwise make a converted
# copy that only Core ML holds), and every array handed to ``predict`` stays referenced for
# INPUT_RETENTION_SECONDS by one retention of the whole process, not by the model: a model
# unloaded (or swapped for another) within a second of its last ``predict`` must not take the
# references with it. Remove once a coremltools release has the fix. The engine runs in its own
# process (engine/process.py), so a crash that still happens reaches the app only as a restarted
# engine.
INPUT_RETENTION_SECONDS = 30.0


class InputRetention:
    """Keeps every array handed to Core ML's ``predict`` referenced for INPUT_RETENTION_SECONDS."""

    def __init__(self, *, clock: Callable[[], float] | None = None) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._held: deque[tuple[float, dict[str, np.ndarray]]] = deque()

    def keep(self, sent: dict[str, np.ndarray]) -> None:
        """Hold ``sent``; let go of inputs older than INPUT_RETENTION_SECONDS."""
        now = self._clock() if self._clock is not None else time.monotonic()
        with self._lock:
            while self._held and now - self._held[0][0] > INPUT_RETENTION_SECONDS:
                self._held.popleft()
            self._held.append((now, sent))

    def __len__(self) -> int:
        return len(self._held)


PROCESS_RETENTION = InputRetention()  # the one of this process: it outlives every model


class CoreMLModel:
    """coremltools' CompiledMLModel with our description and input checks."""

    def __init__(
        self,
        model: Any,
        description: ModelDescription,
        checks: tuple[InputCheck, ...],
        *,
        retention: InputRetention | None = None,
    ):
        self._model = model
        self._description = description
        self._checks = checks
        self._retention = retention if retention is not None else PROCESS_RETENTION  # see above

    @property
    def description(self) -> ModelDescription:
        return self._description

    def make_state(self) -> Any:
        return self._model.make_state()

    def predict(self, inputs: dict[str, np.ndarray], state: Any = None) -> dict[str, np.ndarray]:
        checked = {check.name: check_input(check, inputs, self._checks) for check in self._checks}
        sent = {
            name: np.ascontiguousarray(array, np.float32 if array.dtype == np.float16 else None)
            for name, array in checked.items()
        }
        self._retention.keep(sent)
        if state is None:
            return self._model.predict(sent)
        return self._model.predict(sent, state=state)


def load_coreml_model(
    package: Path,
    *,
    compute_units: str = "cpu_and_gpu",
    coremltools: Any = None,
    compile_into: Path | None = None,
) -> CoreMLModel:
    """Compile (once) and load ``package`` with Core ML. ``coremltools`` replaces the module (the
    named stand-in, ``engine/runtime/coreml_standin.py``, in tests and benchmarks).

    ``compile_into`` (a folder the caller removes afterwards) compiles there instead of the cache:
    for a package that is about to move (the converter's ``--verify`` runs it in its staging
    folder), whose cached copy would be named after a place it is leaving, never found again, and
    several GB for a 7B model."""
    if compute_units not in COMPUTE_UNITS:
        raise ValueError(f"compute_units must be one of {', '.join(COMPUTE_UNITS)}")
    ct = coremltools if coremltools is not None else import_coremltools()
    spec, _ = read_spec(package)
    description, checks = describe_spec(spec, runtime_name="coreml")
    try:
        if compile_into is None:
            compiled = compile_cached(package, ct)
        else:
            destination = Path(compile_into) / f"{package.stem}.mlmodelc"
            compiled = Path(ct.utils.compile_model(str(package), destination_path=str(destination)))
    except Exception as error:  # Core ML's compiler reports failures as generic errors
        raise ModelLoadError(f"Core ML could not compile {package.name}: {error}") from error
    unit = getattr(ct.ComputeUnit, COMPUTE_UNITS[compute_units])
    try:
        model = ct.models.CompiledMLModel(str(compiled), compute_units=unit)
    except Exception as error:
        # Blame the Neural Engine only when it was chosen alone: with "all", Core ML picks the
        # units itself, and its own error says more than a guess of ours.
        if compute_units == "cpu_and_ne":
            raise ModelLoadError(
                f"Core ML could not load {package.name} on the CPU and Neural Engine ({error}). "
                "Some stateful models do not run on the Neural Engine: choose 'CPU and GPU' in "
                "Settings → Model."
            ) from error
        raise ModelLoadError(f"Core ML could not load {package.name}: {error}") from error
    return CoreMLModel(model, description, checks)
