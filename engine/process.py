"""`coreml-chat --engine`: the engine process. Requests in on stdin, events out on stdout.

Why a process: coremltools holds the GIL through every load, compile and ``predict``, and Core ML
releases ``predict``'s input arrays on its own queue without the GIL (apple/coremltools PR #2827,
#2829: a crash). In the GUI's process the first freezes the window, the second takes the app down.
Here both stay inside this process; the app notices when it dies and starts another.

Both pipes carry ``engine.wire`` lines only. Anything else that writes to file descriptor 1 (a
stray ``print``, a C library) would corrupt the event stream, so the events get a private
duplicate of stdout and fd 1 is pointed at stderr. Logging goes to stderr. End of input (the app
closed the pipe or died) ends the process; SIGTERM ends it at once, even in the middle of a load.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import BinaryIO

from engine import wire

logger = logging.getLogger(__name__)

CLOSE_TIMEOUT_SECONDS = 2.0
HF_TOKEN_ENV = "COREML_CHAT_ENGINE_HF_TOKEN"  # the app's Hub token, not on the command line


class EventWriter:
    """Writes events to the pipe from the worker thread; a closed pipe (the app is gone) ends
    the process instead of raising into the worker."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def __call__(self, event: object) -> None:
        data = wire.encode(event)
        with self._lock:
            try:
                self._stream.write(data)
                self._stream.flush()
            except (BrokenPipeError, ValueError, OSError):
                logger.info("the app closed the event pipe: stopping")
                os._exit(0)


def _private_stdout() -> BinaryIO:
    """The event pipe as a private file; fd 1 then points at stderr (keeps the pipe clean)."""
    sys.stdout.flush()
    events_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(events_fd, "wb", buffering=0)


def serve(requests: BinaryIO, events: BinaryIO, *, hf_token: str | None = None) -> None:
    """Run an ``EngineWorker`` between two pipes until ``requests`` ends."""
    from engine.runtime.coreml_standin import loader_from_environment
    from engine.worker import EngineWorker

    worker = EngineWorker(EventWriter(events), hf_token=hf_token, load=loader_from_environment())
    try:
        while True:
            try:
                line = wire.read_line(requests)
                if not line:
                    break
                if not line.strip():
                    continue
                request = wire.decode(line)
            except wire.WireError as error:
                logger.error("ignored a request line: %s", error)
                continue
            worker.submit(request)
    finally:
        worker.close(timeout=CLOSE_TIMEOUT_SECONDS)


def configure_logging() -> None:
    logging.basicConfig(
        level=os.environ.get("COREML_CHAT_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s engine[%(process)d] %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("coremltools").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    """Entry of ``coreml-chat --engine`` (no options; the Hub token comes in the environment)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args:
        print(f"coreml-chat --engine: expected no arguments, found {args}", file=sys.stderr)
        return 2
    events = _private_stdout()
    configure_logging()
    token = os.environ.pop(HF_TOKEN_ENV, "") or None
    serve(sys.stdin.buffer, events, hf_token=token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
