"""What a Core ML model package is to every backend: the bottom layer of the engine.

Both backends (Core ML in ``engine.runtime.coreml``, the NumPy interpreter in ``engine.runtime.reference``)
and everything above them (sessions, the loader ``engine.runtime``, the app's model library) import
from here, and this module imports neither backend: the description types and the ``Model``
protocol, the input checks both backends run before ``predict``, the spec reader, the one table of
compute units, and the model-folder helpers (which package to open, is it a chat model).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from engine.package import metadata as meta

ComputeUnits = Literal["cpu_and_gpu", "all", "cpu_only", "cpu_and_ne"]
# Our names for compute units (settings, --compute-units) → coremltools' ``ComputeUnit`` members.
COMPUTE_UNITS: dict[ComputeUnits, str] = {
    "cpu_and_gpu": "CPU_AND_GPU",
    "all": "ALL",
    "cpu_only": "CPU_ONLY",
    "cpu_and_ne": "CPU_AND_NE",
}

_FEATURE_DTYPES = {65552: "float16", 65568: "float32", 65600: "float64", 131104: "int32"}


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


# --- inputs and spec -----------------------------------------------------------------------------


@dataclass(frozen=True)
class InputCheck:
    """What an input must be: its dtype and, per dimension, the sizes accepted (low, high)."""

    name: str
    dtype: Any
    ranges: tuple[tuple[int, int], ...]


def check_input(
    check: InputCheck, inputs: dict[str, np.ndarray], checks: tuple[InputCheck, ...]
) -> np.ndarray:
    """The input named by ``check``, cast to its dtype; a clear error if it does not fit."""
    if check.name not in inputs:
        expected = ", ".join(c.name for c in checks)
        raise ValueError(f"missing input {check.name!r}: the model expects {expected}")
    value = np.asarray(inputs[check.name])
    if value.ndim != len(check.ranges):
        raise ValueError(
            f"input {check.name!r} has rank {value.ndim} (shape {value.shape}); "
            f"the model expects rank {len(check.ranges)}"
        )
    for axis, (size, (low, high)) in enumerate(zip(value.shape, check.ranges, strict=True)):
        if not low <= size <= high:
            accepted = f"{low}..{high}" if low != high else str(low)
            raise ValueError(
                f"input {check.name!r} dimension {axis} is {size}; the model accepts {accepted}"
            )
    if value.dtype != check.dtype:
        same_kind = np.issubdtype(value.dtype, np.floating) == np.issubdtype(
            check.dtype, np.floating
        )
        if not same_kind:
            raise ValueError(
                f"input {check.name!r} is {value.dtype}; the model expects "
                f"{np.dtype(check.dtype).name}"
            )
        value = value.astype(check.dtype)
    return value


def spec_file(package: Path) -> Path:
    """The package's ``model.mlmodel`` (its spec); ``ModelLoadError`` when it has none."""
    model_file = package / "Data" / "com.apple.CoreML" / "model.mlmodel"
    if not model_file.is_file():
        raise ModelLoadError(
            f"{package} is not a Core ML package: it lacks Data/com.apple.CoreML/model.mlmodel"
        )
    return model_file


def read_spec(package: Path) -> tuple[Any, str]:
    """The whole spec (coremltools' ``Model_pb2``) and the weights folder: what a backend runs.
    A description needs only ``engine.package.description.read_description`` (no coremltools)."""
    from engine.runtime.coremltools_import import import_coremltools

    weights_dir = package / "Data" / "com.apple.CoreML" / "weights"
    ct = import_coremltools()
    from coremltools.proto import Model_pb2

    del ct
    return parse_model_file(package, Model_pb2.Model()), str(weights_dir)


def parse_model_file(package: Path, spec: Any) -> Any:
    """``package``'s model.mlmodel parsed into the protobuf message ``spec`` (coremltools' full
    ``Model`` or the description-only one); ModelLoadError when it is missing or corrupt."""
    model_file = spec_file(package)
    try:
        spec.ParseFromString(model_file.read_bytes())
    except Exception as error:  # protobuf's DecodeError and friends
        raise ModelLoadError(
            f"{package.name} is corrupt: its model.mlmodel does not parse"
        ) from error
    return spec


def _dims(feature: Any) -> tuple[tuple[int | None, ...], tuple[tuple[int, int], ...]]:
    array = feature.type.multiArrayType
    ranges = tuple((r.lowerBound, r.upperBound) for r in array.shapeRange.sizeRanges)
    if not ranges:
        ranges = tuple((int(s), int(s)) for s in array.shape)
    shape = tuple(low if low == high else None for low, high in ranges)
    return shape, ranges


def describe_spec(
    spec: Any, *, runtime_name: str = "reference"
) -> tuple[ModelDescription, tuple[InputCheck, ...]]:
    """The model's description from its spec, and the checks its inputs must pass."""
    description = spec.description
    inputs, checks = [], []
    for feature in description.input:
        shape, ranges = _dims(feature)
        dtype = _FEATURE_DTYPES.get(feature.type.multiArrayType.dataType, "unknown")
        inputs.append(TensorSpec(feature.name, dtype, shape, feature.shortDescription))
        checks.append(
            InputCheck(feature.name, np.dtype(dtype) if dtype != "unknown" else None, ranges)
        )
    outputs = []
    for feature in description.output:
        dtype = _FEATURE_DTYPES.get(feature.type.multiArrayType.dataType, "unknown")
        outputs.append(TensorSpec(feature.name, dtype, (), feature.shortDescription))
    states = []
    for feature in description.state:
        array = feature.type.stateType.arrayType
        dtype = _FEATURE_DTYPES.get(array.dataType, "unknown")
        states.append(
            TensorSpec(
                feature.name, dtype, tuple(int(s) for s in array.shape), feature.shortDescription
            )
        )
    metadata = dict(description.metadata.userDefined)
    context = 0
    if metadata.get(meta.CONTEXT_LENGTH, "").isdigit():
        context = int(metadata[meta.CONTEXT_LENGTH])
    elif states and len(states[0].shape) >= 4:
        context = int(states[0].shape[3])  # (layers, 1, kv heads, context, head dim)
    for check in checks:
        if check.dtype is None:
            raise ModelLoadError(
                f"input {check.name!r} is not a multi-array; coreml-chat needs tensors"
            )
    result = ModelDescription(
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        states=tuple(states),
        metadata=metadata,
        context_length=context,
        runtime_name=runtime_name,
    )
    return result, tuple(checks)


# --- the model folder ------------------------------------------------------------------------------


def find_package(path: Path) -> Path:
    """``path`` itself if it is an ``.mlpackage``, else the one ``.mlpackage`` inside the folder."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelLoadError(f"no such model: {path}")
    if path.suffix == ".mlpackage":
        if not path.is_dir():
            raise ModelLoadError(f"{path} is not a Core ML package (an .mlpackage is a folder)")
        return path
    if not path.is_dir():
        raise ModelLoadError(
            f"{path} is not a model: open a folder holding an .mlpackage, or the .mlpackage itself"
        )
    packages = sorted(p for p in path.glob("*.mlpackage") if p.is_dir())
    if not packages:
        raise ModelLoadError(f"{path} holds no .mlpackage: is it a model folder?")
    if len(packages) > 1:
        names = ", ".join(p.name for p in packages)
        raise ModelLoadError(f"{path} holds several packages ({names}); open the one you want")
    return packages[0]


def check_chat_model(description: ModelDescription) -> None:
    """Refuse a package the chat engine cannot drive, naming what is missing."""
    inputs = {spec.name for spec in description.inputs}
    outputs = {spec.name for spec in description.outputs}
    states = {spec.name for spec in description.states}
    missing = [
        *(f"input {n}" for n in (meta.INPUT_IDS, meta.CAUSAL_MASK) if n not in inputs),
        *(f"output {n}" for n in (meta.LOGITS,) if n not in outputs),
    ]
    if missing:
        raise ModelLoadError(
            f"not a coreml-chat language model: it lacks {', '.join(missing)} "
            f"(it has inputs {', '.join(sorted(inputs)) or 'none'}; outputs "
            f"{', '.join(sorted(outputs)) or 'none'})"
        )
    if not states:
        raise ModelLoadError(
            "the model is not stateful (no keyCache/valueCache states): coreml-chat needs a "
            "stateful model converted for macOS 15; convert it again with coreml-chat-convert"
        )
    if description.context_length <= 0:
        raise ModelLoadError("cannot tell the model's context length from its metadata or states")
    _check_state_sizes(description)


def _physical_memory() -> int:
    """Bytes of RAM (macOS and Linux), 0 when the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def _check_state_sizes(description: ModelDescription) -> None:
    """A damaged or hostile package can declare states of any size: refuse before allocating
    (a calloc that succeeds lazily would take the machine down later, at the first write)."""
    for spec in description.states:
        if not spec.shape or any(not isinstance(d, int) or d <= 0 for d in spec.shape):
            raise ModelLoadError(
                f"state {spec.name} has shape {spec.shape}: expected positive sizes"
            )
    need = sum(math.prod(spec.shape) * 2 for spec in description.states)  # float16
    memory = _physical_memory()
    if memory and need > memory:
        shapes = ", ".join(f"{s.name} {s.shape}" for s in description.states)
        raise ModelLoadError(
            f"the model's kv-cache states need {need / 2**30:,.1f} GiB ({shapes}), more than "
            f"this machine's memory ({memory / 2**30:,.1f} GiB): is the package damaged?"
        )
