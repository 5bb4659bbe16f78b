"""Engine pipe cost per streamed token (goal ≤ 0.2 ms), and decode speed through the pipe vs in-process.

    .venv/bin/python benchmarks/engine_ipc.py [--model FOLDER] [--tokens N]

1. Codec: ``engine.wire`` encode + decode of a ``TokenText`` (what every token costs both ends).
2. Pipe: the same lines through a real OS pipe pair and back (``cat`` echoes them), timed from
   encode to decoded event: a round trip (two pipe hops) is an upper bound of one token's trip
   from the engine to the app, and is what the goal is checked against.
3. Decode tokens/s of one greedy answer on the reference runtime: ``EngineWorker`` in this process
   vs ``EngineProcessClient`` (the window's engine process). Optional (skipped with ``--tokens 0``).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import queue
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks._goals import at_most, report  # noqa: E402
from engine import wire  # noqa: E402
from engine.messages import (  # noqa: E402
    ChatMessage,
    EngineError,
    Generate,
    GenerationConfig,
    GenerationFinished,
    LoadModel,
    ModelLoaded,
    TokenText,
)

GOAL_MS_PER_TOKEN = 0.2
PROMPT = "Explain in a few sentences why the sky is blue."


def measure_codec(count: int) -> float:
    event = TokenText(request_id=12, text=" blue", token_id=4321)
    started = time.perf_counter()
    for _ in range(count):
        wire.decode(wire.encode(event))
    return (time.perf_counter() - started) / count * 1000


def measure_pipe(count: int) -> float:
    """Median milliseconds per message: encode, pipe out, echo back, read, decode."""
    echo = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    assert echo.stdin is not None and echo.stdout is not None
    round_trips = []
    for index in range(count):
        started = time.perf_counter()
        echo.stdin.write(wire.encode(TokenText(1, f" token{index}", index)))
        wire.decode(echo.stdout.readline())
        round_trips.append(time.perf_counter() - started)
    echo.stdin.close()
    echo.wait()
    return statistics.median(round_trips) * 1000


def _answer(worker, events: queue.Queue, model: Path, tokens: int) -> dict[str, float]:
    def until(kind: type, request_id: int):
        while True:
            event = events.get(timeout=900)
            if isinstance(event, EngineError) and event.request_id == request_id:
                raise SystemExit(f"error: {event.message}")
            if isinstance(event, kind) and event.request_id == request_id:
                return event

    worker.submit(LoadModel(1, str(model)))
    until(ModelLoaded, 1)
    config = GenerationConfig(max_new_tokens=tokens, temperature=0.0, seed=0)
    arrivals: list[float] = []
    worker.submit(Generate(2, "bench", (ChatMessage("user", PROMPT),), config))
    while True:
        event = events.get(timeout=900)
        if isinstance(event, TokenText):
            arrivals.append(time.perf_counter())
        if isinstance(event, GenerationFinished) and event.request_id == 2:
            break
    worker.close()
    received = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else 0.0
    return {
        "engine_decode_tokens_per_second": round(event.stats.decode_tokens_per_second, 2),
        "received_tokens_per_second": round(received, 2),
        "generated_tokens": event.stats.generated_tokens,
    }


def measure_decode(model: Path, tokens: int) -> dict[str, object]:
    from app.chat.engine_process import EngineProcessClient
    from engine.worker import EngineWorker

    in_process: queue.Queue = queue.Queue()
    through_pipe: queue.Queue = queue.Queue()
    return {
        "in_process": _answer(EngineWorker(in_process.put), in_process, model, tokens),
        "engine_process": _answer(
            EngineProcessClient(through_pipe.put), through_pipe, model, tokens
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a converted model folder (default: the demo)")
    parser.add_argument("--tokens", type=int, default=64, help="0 skips the decode comparison")
    parser.add_argument("--messages", type=int, default=20000)
    args = parser.parse_args(argv)
    codec_ms = measure_codec(args.messages)
    pipe_ms = measure_pipe(min(args.messages, 5000))
    details: dict[str, object] = {"codec_ms_per_token": round(codec_ms, 4)}
    if args.tokens > 0:
        if args.model is None:
            from benchmarks.ui_latency import find_model

            args.model = find_model()
        details["decode"] = measure_decode(args.model, args.tokens)
    figures = {"pipe_round_trip_ms_per_token_median": at_most(pipe_ms, GOAL_MS_PER_TOKEN, "ms")}
    report("engine_ipc", figures, details, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
