"""One model on one runtime and compute unit, measured in a process of its own.

The doctor starts one probe per (model, runtime, compute unit): Core ML holds the GIL through
loads and predicts, may crash on a bad package, and a process's physical footprint says what one
loaded model costs only when nothing else was loaded in it before. The probe loads the model
(twice on Core ML: the first load compiles when the cache has no copy, the second is the load a
user waits for every day), reads the footprint, runs the fixed prose teacher-forced (the logits go
to an ``.npy`` file for the doctor to compare), then measures prompt and decode speed the way a chat
feeds the model (``ChatSession``: chunks, then one token at a time). It writes one JSON object to
``--out``, ``{"status": "error", "error": ...}`` when anything fails.

    python -m engine.diagnostics.probe --model FOLDER --runtime coreml --compute-units all \\
        --out probe.json [--logits logits.npy] [--prompt-tokens 512] [--decode-depth 1500]
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.diagnostics.fidelity import PROSE, teacher_forced_logits, tokens_of_length
from engine.diagnostics.footprint import phys_footprint
from engine.package.model import COMPUTE_UNITS, Model, find_package, read_spec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProbeOptions:
    runtime: str  # "coreml" or "reference"
    compute_units: str = "cpu_and_gpu"
    fidelity_tokens: int = 256
    prompt_tokens: int = 512
    decode_depth: int = 1500
    decode_tokens: int = 32
    speed: bool = True
    warm_load: bool = True


def _loader(runtime: str) -> Callable[..., Model]:
    from engine.runtime import load_model

    if runtime == "reference":
        return lambda package, *, compute_units: load_model(package, runtime="reference")
    from engine.runtime.coreml_standin import loader_from_environment

    standin = loader_from_environment()  # the named stand-in, when a test put it here
    if standin is not load_model:
        return standin
    return lambda package, *, compute_units: load_model(
        package, compute_units=compute_units, runtime="coreml"
    )


def probe(folder: Path, options: ProbeOptions, *, logits_file: Path | None) -> dict[str, Any]:
    """Measure ``folder``'s model as ``options`` say; the JSON-ready result."""
    from engine.generation.session import ChatSession
    from engine.paths import compiled_model_path
    from engine.text.tokenizer import ChatTokenizer
    from engine.text.tokenizer_files import tokenizer_folder

    package = find_package(folder)
    spec, _ = read_spec(package)
    metadata = dict(spec.description.metadata.userDefined)
    tokenizer = ChatTokenizer.from_folder(tokenizer_folder(package, metadata), metadata)
    load = _loader(options.runtime)
    result: dict[str, Any] = {
        "status": "ok",
        "runtime": options.runtime,
        "compute_units": options.compute_units if options.runtime == "coreml" else None,
        "footprint_before_load_bytes": phys_footprint(),
    }
    if options.runtime == "coreml":
        result["compiled_before"] = compiled_model_path(package).is_dir()
    started = time.perf_counter()
    model = load(package, compute_units=options.compute_units)
    result["first_load_seconds"] = round(time.perf_counter() - started, 3)
    result["runtime_name"] = model.description.runtime_name
    if options.runtime == "coreml" and options.warm_load:
        del model
        gc.collect()
        started = time.perf_counter()
        model = load(package, compute_units=options.compute_units)
        result["warm_load_seconds"] = round(time.perf_counter() - started, 3)
    result["footprint_after_load_bytes"] = phys_footprint()

    prose = tokenizer.encode(PROSE)
    context = model.description.context_length
    fidelity = tokens_of_length(prose, min(options.fidelity_tokens, context))
    started = time.perf_counter()
    logits = teacher_forced_logits(model, fidelity)
    result["fidelity_seconds"] = round(time.perf_counter() - started, 3)
    result["fidelity_tokens"] = len(fidelity)
    if logits_file is not None:
        np.save(logits_file, logits)
    del logits
    if options.speed:
        result.update(_speed(ChatSession(model, tokenizer), prose, options))
    result["footprint_after_run_bytes"] = phys_footprint()
    return result


def _speed(session: Any, prose: list[int], options: ProbeOptions) -> dict[str, Any]:
    """Prompt tokens/s over ``prompt_tokens`` (fed in the session's chunks), and decode tokens/s
    with the state at 0 and at ``decode_depth`` tokens (greedy: each token the argmax before it)."""
    context = session.context_length
    prompt = tokens_of_length(prose, min(options.prompt_tokens, context - 1))
    cache = session.new_cache()
    started = time.perf_counter()
    session.prefill(cache, prompt)
    prompt_seconds = time.perf_counter() - started
    decode = []
    for depth in sorted({0, min(options.decode_depth, context - options.decode_tokens - 1)}):
        cache = session.new_cache()
        if depth:
            session.prefill(cache, tokens_of_length(prose, depth))
        token = prose[0]
        started = time.perf_counter()
        for _ in range(options.decode_tokens):
            token = int(np.argmax(session.feed(cache, [token])))
        seconds = time.perf_counter() - started
        decode.append(
            {
                "depth": depth,
                "tokens": options.decode_tokens,
                "tokens_per_second": round(options.decode_tokens / seconds, 2),
            }
        )
    return {
        "prompt": {
            "tokens": len(prompt),
            "tokens_per_second": round(len(prompt) / prompt_seconds, 2),
        },
        "decode": decode,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="coreml-chat --doctor-probe", description=__doc__)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--runtime", choices=("coreml", "reference"), required=True)
    parser.add_argument("--compute-units", choices=tuple(COMPUTE_UNITS), default="cpu_and_gpu")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--logits", type=Path, default=None)
    parser.add_argument("--fidelity-tokens", type=int, default=256)
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--decode-depth", type=int, default=1500)
    parser.add_argument("--decode-tokens", type=int, default=32)
    parser.add_argument("--no-speed", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    options = ProbeOptions(
        runtime=args.runtime,
        compute_units=args.compute_units,
        fidelity_tokens=args.fidelity_tokens,
        prompt_tokens=args.prompt_tokens,
        decode_depth=args.decode_depth,
        decode_tokens=args.decode_tokens,
        speed=not args.no_speed,
    )
    try:
        result = probe(args.model, options, logits_file=args.logits)
    except Exception as error:  # every failure is a row of the report, with what it said
        logger.debug("probe failed", exc_info=True)
        result = {
            "status": "error",
            "runtime": args.runtime,
            "compute_units": args.compute_units if args.runtime == "coreml" else None,
            "error": f"{type(error).__name__}: {error}",
            "traceback": traceback.format_exc(limit=8),
        }
    partial = args.out.with_name(args.out.name + ".partial")
    partial.write_text(json.dumps(result, indent=2))
    partial.replace(args.out)
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
