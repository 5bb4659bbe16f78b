"""Open a model folder for chat, as ``mlx_lm.load`` does: the model, its tokenizer, a session::

session = open_chat("SmolLM2-135M-Instruct")
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from engine.generation.session import ChatSession
from engine.package.model import ComputeUnits, Model, find_package, read_spec
from engine.runtime import Backend, load_model
from engine.text.render_process import render_isolated
from engine.text.tokenizer import ChatTokenizer
from engine.text.tokenizer_files import SETTINGS_TOKEN_HINT, tokenizer_folder


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
    ``ModelLoadError`` saying what was expected and what was found. The chat template renders in
    a killable child process (``engine.text.render_process``). ``load`` replaces
    ``load_model`` (a named Core ML stand-in in tests and benchmarks: ``engine/runtime/coreml_standin.py``).
    """
    package = find_package(Path(path))
    spec, _ = read_spec(package)  # model.mlmodel only: the weights are not read here
    metadata = dict(spec.description.metadata.userDefined)
    folder = tokenizer_folder(
        package, metadata, token=hf_token, token_hint=token_hint, endpoint=hub_endpoint
    )
    tokenizer = ChatTokenizer.from_folder(folder, metadata, render_template=render_isolated)
    if load is None:
        model = load_model(package, compute_units=compute_units, runtime=runtime)
    else:
        model = load(package, compute_units=compute_units)
    return ChatSession(model, tokenizer)
