"""``coreml-chat-serve MODEL``: the engine's OpenAI-compatible server without the GUI.

Runs the engine worker in this process (Core ML on a Mac, the reference runtime elsewhere), loads
the model, starts the server and serves until Ctrl-C. The API key comes from ``--api-key``, else
``COREML_CHAT_API_KEY``, else a new one is generated and printed (a server is never open).
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import signal
import sys
import threading
from pathlib import Path

from engine.messages import EngineError, Event, LoadModel, ModelLoaded, ServerState, StartServer
from engine.package.model import COMPUTE_UNITS
from engine.server.host import exposure_notice, generate_api_key

API_KEY_VARIABLE = "COREML_CHAT_API_KEY"
LOAD_TIMEOUT_SECONDS = 1800.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coreml-chat-serve", description=__doc__)
    parser.add_argument("model", type=Path, help="model folder or .mlpackage")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (8080; 0: any free port)")
    parser.add_argument(
        "--api-key", default=None, help=f"the bearer key (default: ${API_KEY_VARIABLE}, or new)"
    )
    parser.add_argument("--cors-origin", action="append", default=[], help="allowed web origin")
    parser.add_argument("--compute-units", choices=COMPUTE_UNITS, default="cpu_and_gpu")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be between 0 and 65535, not {args.port}")
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(levelname)s: %(message)s"
    )
    logging.getLogger("engine").setLevel(logging.INFO)
    api_key = args.api_key or os.environ.get(API_KEY_VARIABLE, "") or ""
    generated = not api_key
    api_key = api_key or generate_api_key()

    from engine.worker import EngineWorker  # numpy and the runtime

    events: queue.Queue[Event] = queue.Queue()
    serving = threading.Event()

    def on_event(event: Event) -> None:
        if not serving.is_set():  # once serving, ServerState per request: nobody reads them
            events.put(event)

    worker = EngineWorker(on_event)
    try:
        worker.submit(LoadModel(1, str(args.model), args.compute_units))
        loaded = events.get(timeout=LOAD_TIMEOUT_SECONDS)
        if isinstance(loaded, EngineError):
            print(f"error: {loaded.message}", file=sys.stderr)
            return 1
        if not isinstance(loaded, ModelLoaded):
            print(f"error: expected the model to load, got {loaded!r}", file=sys.stderr)
            return 1
        worker.submit(StartServer(args.host, args.port, api_key, tuple(args.cors_origin)))
        state = events.get(timeout=60)
        if not isinstance(state, ServerState) or not state.running:
            print(f"error: {getattr(state, 'message', state)}", file=sys.stderr)
            return 1
        serving.set()
        print(f"model: {loaded.info.name} ({loaded.info.runtime_name} runtime)", flush=True)
        print(f"serving: {state.url}", flush=True)
        exposure = exposure_notice(args.host)
        if exposure:
            print(exposure, flush=True)
        if generated:
            print(f"api key: {api_key}", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            while not stop.is_set():
                stop.wait(0.5)
        except KeyboardInterrupt:
            pass
        return 0
    finally:
        worker.close()


if __name__ == "__main__":
    sys.exit(main())
