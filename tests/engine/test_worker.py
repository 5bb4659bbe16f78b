"""The worker thread: events for a real model, errors that leave it serving, cancel while busy."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import time

import pytest

from engine.messages import (
    ChatMessage,
    EngineError,
    Generate,
    GenerationConfig,
    GenerationFinished,
    LoadModel,
    ModelLoaded,
    PrefillProgress,
    TokenText,
)
from engine.worker import EngineWorker


class Recorder:
    def __init__(self) -> None:
        self.events: queue.Queue = queue.Queue()

    def __call__(self, event) -> None:
        self.events.put(event)

    def until(self, kind, request_id, timeout=120.0):
        seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            event = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            seen.append(event)
            if isinstance(event, (kind, EngineError)) and event.request_id == request_id:
                return event, seen
        raise TimeoutError(f"no {kind.__name__} for request {request_id}")


@pytest.fixture
def worker():
    recorder = Recorder()
    engine = EngineWorker(recorder)
    yield engine, recorder
    engine.close()


def test_worker_serves_after_errors_and_streams_tokens(worker, converted_package, tmp_path):
    engine, events = worker
    hello = (ChatMessage("user", "Hello"),)
    engine.submit(Generate(1, "c", hello))
    error, _ = events.until(GenerationFinished, 1)
    assert isinstance(error, EngineError) and "no model" in error.message
    engine.submit(LoadModel(2, str(tmp_path / "missing")))
    error, _ = events.until(ModelLoaded, 2)
    assert isinstance(error, EngineError) and "no such model" in error.message
    (tmp_path / "empty.mlpackage").mkdir()
    engine.submit(LoadModel(3, str(tmp_path / "empty.mlpackage")))
    error, _ = events.until(ModelLoaded, 3)
    assert isinstance(error, EngineError) and "not a Core ML package" in error.message

    engine.submit(LoadModel(4, str(converted_package("mistral", "int4"))))
    loaded, _ = events.until(ModelLoaded, 4)
    assert isinstance(loaded, ModelLoaded) and loaded.info.context_length == 256
    assert loaded.info.quantization == "int4-block32" and loaded.info.runtime_name == "reference"

    bad = (ChatMessage("user", "a"), ChatMessage("user", "b"))  # the template raises
    engine.submit(Generate(5, "c", bad))
    error, _ = events.until(GenerationFinished, 5)
    assert isinstance(error, EngineError) and "alternate" in error.message

    config = GenerationConfig(temperature=0.0, max_new_tokens=6)
    engine.submit(Generate(6, "c", hello, config))
    finished, seen = events.until(GenerationFinished, 6)
    assert isinstance(finished, GenerationFinished)
    tokens = [e for e in seen if isinstance(e, TokenText)]
    assert "".join(t.text for t in tokens) == finished.text
    assert any(isinstance(e, PrefillProgress) for e in seen)
    stats = finished.stats
    assert stats.tokens_fed == stats.prompt_tokens and stats.generated_tokens >= 1
    assert stats.time_to_first_token > 0 and stats.cache_length > stats.prompt_tokens - 1


def test_cancel_takes_effect_between_tokens(worker, converted_package):
    engine, events = worker
    engine.submit(LoadModel(1, str(converted_package("mistral", "int4"))))
    events.until(ModelLoaded, 1)
    long = GenerationConfig(temperature=1.0, max_new_tokens=200, seed=0)
    engine.submit(Generate(2, "c", (ChatMessage("user", "Go on forever"),), long))
    while not isinstance(events.events.get(timeout=60), TokenText):
        pass
    engine.cancel()
    finished, _ = events.until(GenerationFinished, 2)
    assert finished.stats.finish_reason == "cancelled"
    assert finished.stats.generated_tokens < 200


def test_generate_cli_json(converted_package):
    folder = converted_package("llama", "int4")
    command = [sys.executable, "-m", "engine.generate_cli", str(folder), "--prompt", "Hi there",
               "--max-new-tokens", "5", "--json"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=300)
    output = json.loads(result.stdout)
    assert output["runtime"] == "reference"
    assert 1 <= len(output["token_ids"]) <= 5 and output["finish_reason"] in ("eos", "max_tokens")
    assert output["time_to_first_token"] > 0 and "torch" not in result.stderr


def test_generate_cli_says_paris_on_smollm2(smollm2_int4_dir):
    command = [sys.executable, "-m", "engine.generate_cli", str(smollm2_int4_dir),
               "--prompt", "What is the capital of France?", "--max-new-tokens", "12", "--json"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=300)
    assert "Paris" in json.loads(result.stdout)["text"]


def test_generate_cli_missing_model_is_one_line(tmp_path):
    command = [sys.executable, "-m", "engine.generate_cli", str(tmp_path / "nope"), "--prompt", "x"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and result.stderr.startswith("error: no such model")
