"""A real ``ServerHost`` and API over a fake engine queue: the HTTP layer tested in seconds.

``ScriptedEngine`` honours what the server needs of ``EngineWorker`` (``submit``, ``cancel``,
``model_info``): each ``Generate`` it receives is recorded and answered, on a thread of its own as
the worker would, with the scripted pieces of text and a ``GenerationFinished``.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from engine.messages import (
    Generate,
    GenerationFinished,
    GenerationStats,
    ModelInfo,
    StartServer,
    TokenLogprob,
    TokenText,
)
from engine.server.api import create_app
from engine.server.host import ServerHost

API_KEY = "unit-test-key"
MODEL_INFO = ModelInfo(
    name="SmolLM2-135M-Instruct",
    path="/models/smollm2",
    context_length=2048,
    quantization="q4_1",
    architecture="llama",
    runtime_name="reference",
    compute_units="cpu_only",
    source_model_id="HuggingFaceTB/SmolLM2-135M-Instruct",
)


@dataclass
class ScriptedEngine:
    pieces: tuple[str, ...] = ("Hello", ", world")
    info: ModelInfo | None = MODEL_INFO
    thoughts: tuple[str, ...] = ()  # reasoning pieces sent before the answer (TokenText.reasoning)
    received: list[Generate] = field(default_factory=list)
    host: ServerHost | None = None

    @property
    def model_info(self) -> ModelInfo | None:
        return self.info

    def submit(self, request: object) -> None:
        assert isinstance(request, Generate), request
        self.received.append(request)
        threading.Thread(target=self._answer, args=(request,), daemon=True).start()

    def cancel(self, request_id: int | None = None) -> None:
        pass

    def _answer(self, request: Generate) -> None:
        assert self.host is not None
        top = request.config.top_logprobs
        for index, thought in enumerate(self.thoughts):
            self.host.on_event(TokenText(request.request_id, thought, index, reasoning=True))
        for index, piece in enumerate(self.pieces):
            logprobs = ()
            if top is not None:  # one token per piece, its alternatives made up
                alternatives = tuple((f"alt{n}", -1.0 - n) for n in range(top))
                logprobs = (TokenLogprob(piece, -0.25 * (index + 1), alternatives),)
            self.host.on_event(TokenText(request.request_id, piece, index, logprobs))
        stats = GenerationStats(10, 10, len(self.pieces), 0.01, 100.0, 10.0, 13, 2048, "eos")
        answer, thinking = "".join(self.pieces), "".join(self.thoughts)
        self.host.on_event(GenerationFinished(request.request_id, answer, stats, thinking))


@dataclass
class FakeServer:
    engine: ScriptedEngine
    host: ServerHost

    @property
    def base(self) -> str:
        """The server's root (``host.url`` without ``/v1``)."""
        return self.host.url.removesuffix("/v1")

    def request(
        self,
        path: str,
        *,
        body: object = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        key: str | None = API_KEY,
        method: str | None = None,
    ) -> tuple[int, dict[str, str], object]:
        """(status, headers, body as JSON or text) of a request with the stdlib client."""
        sent = {"Content-Type": "application/json"}
        if key is not None:
            sent["Authorization"] = f"Bearer {key}"
        sent.update(headers or {})
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, headers=sent, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, got, text = response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            status, got, text = error.code, dict(error.headers), error.read()
        try:
            return status, got, json.loads(text)
        except ValueError:
            return status, got, text.decode(errors="replace")


def start_fake_server(engine: ScriptedEngine, *, cors_origins: tuple[str, ...] = ()) -> FakeServer:
    host = ServerHost(
        engine,
        StartServer("127.0.0.1", 0, API_KEY, cors_origins),
        on_state=lambda event: None,
        create_app=create_app,
    )
    engine.host = host
    host.start()
    return FakeServer(engine, host)
