"""The loader, on top of the engine: pick a backend, load a package, open a model folder for chat.

Whatever runs it, the model is shaped like coremltools' ``MLModel``::

    model = load_model("Mistral7B.mlpackage")
    state = model.make_state()
    out = model.predict({"inputIds": ids, "causalMask": mask}, state)  # {"logits": ...}

and ``open_chat`` is what a chat needs, as ``mlx_lm.load`` is (model, tokenizer, session)::

    session = open_chat("SmolLM2-135M-Instruct")

This is the only module that imports a backend (``engine.coreml_runtime`` or
``engine.reference.runtime``), and it imports the one it uses only when it loads a model: both sit
on ``engine.model_package``, and neither imports the other.
"""

from __future__ import annotations

import logging
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from engine.model_package import COMPUTE_UNITS, ComputeUnits, Model, find_package, read_spec
from engine.session import ChatSession
from engine.tokenizer import ChatTokenizer
from engine.tokenizer_files import SETTINGS_TOKEN_HINT, tokenizer_folder

logger = logging.getLogger(__name__)

Backend = Literal["auto", "coreml", "reference"]


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
    runtime: Backend = "auto",
    coremltools: Any = None,
) -> Model:
    """Load ``path`` (an ``.mlpackage``, or a model folder holding one).

    ``runtime="auto"`` picks Core ML where it can run (macOS 15+) and the reference runtime elsewhere.
    ``coremltools`` replaces that module on the Core ML path (the named stand-in of tests and
    benchmarks, ``engine/coreml_standin.py``).
    """
    package = find_package(Path(path))
    if compute_units not in COMPUTE_UNITS:
        raise ValueError(
            f"compute_units must be one of {', '.join(COMPUTE_UNITS)}, not {compute_units!r}"
        )
    use_coreml = runtime == "coreml" or (runtime == "auto" and coreml_available())
    if use_coreml:
        from engine.coreml_runtime import load_coreml_model

        return load_coreml_model(package, compute_units=compute_units, coremltools=coremltools)
    from engine.reference.runtime import load_reference_model

    return load_reference_model(package)


def open_chat(
    path: str | Path,
    *,
    compute_units: ComputeUnits = "cpu_and_gpu",
    hf_token: str | None = None,
    token_hint: str = SETTINGS_TOKEN_HINT,
    hub_endpoint: str | None = None,
    runtime: Backend = "auto",
    load: Callable[..., Model] | None = None,
) -> ChatSession:
    """Open a model folder (or an ``.mlpackage``) for chat: the model, its tokenizer, a session.

    The tokenizer comes first, from the package's spec alone: when its files are missing and
    cannot be fetched, the user learns it in a second, not after loading a 7B model. They are read
    from beside the package, or fetched once (with ``hf_token`` for gated repositories; the error
    says ``token_hint`` when a token is missing) for the model id in its metadata. Raises
    ``ModelLoadError`` saying what was expected and what was found. ``load`` replaces
    ``load_model`` (a named Core ML stand-in in tests and benchmarks: ``engine/coreml_standin.py``).
    """
    package = find_package(Path(path))
    spec, _ = read_spec(package)  # model.mlmodel only: the weights are not read here
    metadata = dict(spec.description.metadata.userDefined)
    folder = tokenizer_folder(
        package, metadata, token=hf_token, token_hint=token_hint, endpoint=hub_endpoint
    )
    tokenizer = ChatTokenizer.from_folder(folder, metadata)
    if load is None:
        model = load_model(package, compute_units=compute_units, runtime=runtime)
    else:
        model = load(package, compute_units=compute_units)
    return ChatSession(model, tokenizer)
