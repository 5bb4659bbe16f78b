"""Load a Core ML model package and run it: Core ML on macOS 15+, the NumPy reference runtime elsewhere.

Whatever runs it, the model is shaped like coremltools' ``MLModel``::

    model = load_model("Mistral7B.mlpackage")
    state = model.make_state()
    out = model.predict({"inputIds": ids, "causalMask": mask}, state)  # {"logits": ...}
"""

from __future__ import annotations

import logging
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

logger = logging.getLogger(__name__)

ComputeUnits = Literal["cpu_and_gpu", "all", "cpu_only", "cpu_and_ne"]
COMPUTE_UNITS: tuple[ComputeUnits, ...] = ("cpu_and_gpu", "all", "cpu_only", "cpu_and_ne")


class ModelLoadError(Exception):
    """The package could not be loaded: the message says what was expected and what was found."""


@dataclass(frozen=True)
class TensorSpec:
    """One input, output or state of the model. ``None`` in ``shape`` is a flexible dimension."""

    name: str
    dtype: str  # numpy dtype name: "int32", "float16", "float32"
    shape: tuple[int | None, ...]
    description: str = ""


@dataclass(frozen=True)
class ModelDescription:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    states: tuple[TensorSpec, ...]
    metadata: dict[str, str] = field(default_factory=dict)
    context_length: int = 0
    runtime_name: str = ""  # "coreml" or "reference"

    def input(self, name: str) -> TensorSpec:
        return _find(self.inputs, name, "input")

    def output(self, name: str) -> TensorSpec:
        return _find(self.outputs, name, "output")

    def state(self, name: str) -> TensorSpec:
        return _find(self.states, name, "state")


def _find(specs: tuple[TensorSpec, ...], name: str, kind: str) -> TensorSpec:
    for spec in specs:
        if spec.name == name:
            return spec
    names = ", ".join(s.name for s in specs) or "none"
    raise KeyError(f"the model has no {kind} {name!r} (its {kind}s: {names})")


class Model(Protocol):
    """What both runtimes provide: the part of coremltools' MLModel the engine uses."""

    @property
    def description(self) -> ModelDescription: ...

    def make_state(self) -> Any: ...

    def predict(
        self, inputs: dict[str, np.ndarray], state: Any = None
    ) -> dict[str, np.ndarray]: ...


def coreml_available() -> bool:
    """True where Core ML itself can run stateful models: macOS 15 or newer."""
    if sys.platform != "darwin":
        return False
    release = platform.mac_ver()[0]
    try:
        major = int(release.split(".")[0])
    except ValueError:
        return False
    return major >= 15


def load_model(
    path: str | Path,
    *,
    compute_units: ComputeUnits = "cpu_and_gpu",
    runtime: Literal["auto", "coreml", "reference"] = "auto",
) -> Model:
    """Load ``path`` (an ``.mlpackage``, or a model folder holding one).

    ``runtime="auto"`` picks Core ML where it can run (macOS 15+) and the reference runtime elsewhere.
    """
    from engine.model_folder import find_package

    package = find_package(Path(path))
    if compute_units not in COMPUTE_UNITS:
        raise ValueError(
            f"compute_units must be one of {', '.join(COMPUTE_UNITS)}, not {compute_units!r}"
        )
    use_coreml = runtime == "coreml" or (runtime == "auto" and coreml_available())
    if use_coreml:
        from engine.coreml_runtime import load_coreml_model

        return load_coreml_model(package, compute_units=compute_units)
    from engine.reference.runtime import load_reference_model

    return load_reference_model(package)
