"""EngineProcessClient without a window: an engine that cannot start is reported once, not
restarted forever; loading another model starts a new engine process and ends the old one."""

from __future__ import annotations

import queue
import sys
import time
from pathlib import Path

from app.chat.engine_process import MAX_SILENT_DEATHS, EngineProcessClient
from engine.exit_status import describe_exit
from engine.messages import EngineError, Generate, LoadModel, ModelLoaded


def _next(events: queue.Queue, kind: type, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while True:
        event = events.get(timeout=max(0.01, deadline - time.monotonic()))
        if isinstance(event, kind):
            return event


def test_an_engine_that_cannot_start_is_reported_and_not_restarted_forever() -> None:
    events: queue.Queue = queue.Queue()
    command = [sys.executable, "-c", "import sys; sys.exit(3)"]
    client = EngineProcessClient(events.put, command=command)
    try:
        error = _next(events, EngineError, timeout=60)
        assert "cannot start (exit status 3" in error.message
        assert client.restarts == MAX_SILENT_DEATHS - 1
        client.submit(Generate(5, "c", ()))  # answered at once, not sent into the void
        refused = _next(events, EngineError, timeout=5)
        assert refused.request_id == 5 and "cannot start" in refused.message
    finally:
        client.close()


def test_loading_another_model_starts_a_new_engine_process(tiny_chat_model: Path) -> None:
    events: queue.Queue = queue.Queue()
    client = EngineProcessClient(events.put)
    try:
        client.submit(LoadModel(1, str(tiny_chat_model)))
        assert _next(events, ModelLoaded).request_id == 1
        first = client._process.popen
        client.submit(LoadModel(2, str(tiny_chat_model)))
        assert client.pid != first.pid  # all of the old model's memory goes back
        assert _next(events, ModelLoaded).request_id == 2
        assert first.wait(timeout=10) is not None
    finally:
        client.close()


def test_exits_are_described_in_plain_words() -> None:
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(-11) == "killed by SIGSEGV"
    assert describe_exit(1) == "exit status 1"
