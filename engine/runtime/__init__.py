"""The loader: pick a backend and load a package with it.

Whatever runs it, the model is shaped like coremltools' ``MLModel``::

    model = load_model("Mistral7B.mlpackage")
    state = model.make_state()
    out = model.predict({"inputIds": ids, "causalMask": mask}, state)  # {"logits": ...}

(``engine.generation.open_chat`` adds the tokenizer and a session for chat.) This is the only module that imports a backend (``engine.runtime.coreml`` or
``engine.runtime.reference.runtime``), and it imports the one it uses only when it loads a model: both sit
on ``engine.package.model``, and neither imports the other.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

from engine.package.coreml_support import coreml_available
from engine.package.model import COMPUTE_UNITS, ComputeUnits, Model, find_package

logger = logging.getLogger(__name__)

Backend = Literal["auto", "coreml", "reference"]
__all__ = ["Backend", "coreml_available", "load_model"]


def load_model(
    path: str | Path,
    *,
    compute_units: ComputeUnits = "cpu_and_gpu",
    runtime: Backend = "auto",
    coremltools: Any = None,
    compile_into: Path | None = None,
) -> Model:
    """Load ``path`` (an ``.mlpackage``, or a model folder holding one).

    ``runtime="auto"`` picks Core ML where it can run (macOS 15+) and the reference runtime elsewhere.
    ``coremltools`` replaces that module on the Core ML path (the named stand-in of tests and
    benchmarks, ``engine/runtime/coreml_standin.py``). ``compile_into``: on Core ML, compile into
    that folder (the caller removes it) instead of the compiled cache, for a package about to move.
    """
    package = find_package(Path(path))
    if compute_units not in COMPUTE_UNITS:
        raise ValueError(
            f"compute_units must be one of {', '.join(COMPUTE_UNITS)}, not {compute_units!r}"
        )
    use_coreml = runtime == "coreml" or (runtime == "auto" and coreml_available())
    if use_coreml:
        from engine.runtime.coreml import load_coreml_model

        return load_coreml_model(
            package,
            compute_units=compute_units,
            coremltools=coremltools,
            compile_into=compile_into,
        )
    from engine.runtime.reference.runtime import load_reference_model

    return load_reference_model(package)
