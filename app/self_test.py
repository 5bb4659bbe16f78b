"""`coreml-chat --self-test`: prove a build works, headless: load the demo model, answer, exit 0.

Used by `make package` on the frozen executable, and handy on a user's machine when something is
off. Prints one JSON object (runtime, timings, the answer) and exits non-zero on any failure.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import time
from pathlib import Path

from engine.messages import (
    ChatMessage,
    EngineError,
    Event,
    Generate,
    GenerationConfig,
    GenerationFinished,
    LoadModel,
    ModelLoaded,
)

QUESTION = "What is the capital of France?"
TIMEOUT_SECONDS = 300.0


def _default_model() -> Path:
    from app.conversion.demo_setup import demo_model_dir

    return demo_model_dir()


def run_self_test(model: Path, *, expect: str | None = "Paris") -> dict[str, object]:
    """Load ``model`` in an engine process (the window's own client) and answer one question
    greedily: the same executable, flag and pipe as the window."""
    from app.chat.engine_process import EngineProcessClient

    events: queue.Queue[Event] = queue.Queue()
    worker = EngineProcessClient(events.put)
    started = time.perf_counter()
    try:
        worker.submit(LoadModel(request_id=1, path=str(model), compute_units="cpu_and_gpu"))
        loaded = _wait_for(events, ModelLoaded, request_id=1)
        config = GenerationConfig(max_new_tokens=24, temperature=0.0, seed=0)
        messages = (ChatMessage("user", QUESTION),)
        worker.submit(
            Generate(request_id=2, conversation_id="self-test", messages=messages, config=config)
        )
        finished = _wait_for(events, GenerationFinished, request_id=2)
    finally:
        worker.close()
    report: dict[str, object] = {
        "model": str(model),
        "runtime": loaded.info.runtime_name,
        "engine_pid": worker.pid,  # not this process: the window's engine process
        "load_seconds": round(loaded.seconds, 3),
        "answer": finished.text,
        "time_to_first_token": round(finished.stats.time_to_first_token, 3),
        "decode_tokens_per_second": round(finished.stats.decode_tokens_per_second, 2),
        "finish_reason": finished.stats.finish_reason,
        "total_seconds": round(time.perf_counter() - started, 3),
    }
    if expect and expect.lower() not in finished.text.lower():
        raise RuntimeError(f"expected the answer to mention {expect!r}, got {finished.text!r}")
    return report


def _wait_for(events: queue.Queue[Event], kind: type, *, request_id: int):
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RuntimeError(f"no {kind.__name__} within {TIMEOUT_SECONDS:.0f} s")
        event = events.get(timeout=remaining)
        if isinstance(event, EngineError) and event.request_id in (request_id, None):
            raise RuntimeError(event.message)
        if isinstance(event, kind) and getattr(event, "request_id", None) == request_id:
            return event


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="coreml-chat --self-test", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--model", type=Path, default=None, help="model folder (default: the demo model)"
    )
    parser.add_argument(
        "--expect", default="Paris", help="text the answer must contain ('' for none)"
    )
    args = parser.parse_args(argv)
    model = args.model or _default_model()
    if not model.exists():
        print(json.dumps({"ok": False, "error": f"no model at {model}; run `make run` once"}))
        return 1
    try:
        report = run_self_test(model, expect=args.expect or None)
    except (RuntimeError, queue.Empty) as error:
        print(json.dumps({"ok": False, "model": str(model), "error": str(error)}))
        return 1
    print(json.dumps({"ok": True, **report}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
