"""Find the Core ML package in a model folder, and check that it is a chat model we can drive."""

from __future__ import annotations

import math
import os
from pathlib import Path

from engine import package_metadata as meta
from engine.runtime import ModelDescription, ModelLoadError


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
