"""A scripted engine client for app tests that need no model: it speaks the bridge's ``Worker``
protocol and answers each request with the events a real engine sends, so the cases a real engine
makes hard to reach (an error with or without its ``GenerationFinished``, an event for an old
request, a stop before the first token) are reached on purpose."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from engine.messages import (
    EngineError,
    Event,
    Generate,
    GenerationFinished,
    GenerationStats,
    LoadModel,
    ModelInfo,
    ModelLoaded,
    PrefillProgress,
    Request,
    TokenText,
)
from engine.text.reasoning import ReasoningSplitter, split_reasoning

CONTEXT_LENGTH = 256
INFO = ModelInfo(
    "Scripted", "/models/scripted", CONTEXT_LENGTH, "int4", "mistral", "reference", "cpu_only"
)


def scripted_stats(request: Generate, generated: int, finish_reason: str) -> GenerationStats:
    prompt = 10 * len(request.messages)
    return GenerationStats(
        prompt_tokens=prompt,
        tokens_fed=prompt,
        generated_tokens=generated,
        time_to_first_token=0.05 if generated else 0.0,  # the engine's placeholder: 0.0
        prefill_tokens_per_second=200.0,
        decode_tokens_per_second=25.0,
        cache_length=prompt + generated,
        context_length=CONTEXT_LENGTH,
        finish_reason=finish_reason,  # type: ignore[arg-type]
    )


class ScriptedEngine:
    """A fake engine client (the bridge's ``Worker``): answers a ``Generate`` with prefill progress
    and one ``TokenText`` per piece of the next scripted answer, then ``GenerationFinished``
    unless ``hold`` is set; a held answer ends on ``cancel()`` (as ``cancelled``, with the text so
    far, as the engine does) or on ``fail()``. Events go through ``on_event`` like the engine
    process's reader thread sends them, so the bridge queues them to the GUI thread."""

    def __init__(self, on_event: Callable[[Event], None], *, info: ModelInfo = INFO) -> None:
        self.on_event = on_event
        self.info = info
        self.requests: list[Request] = []
        self.answers: list[list[str]] = []
        self.hold = False
        self.finish_reason = "eos"  # how an answer that is not held ends
        self.open: tuple[Generate, list[str]] | None = None
        self.closed = False
        self._splitter = ReasoningSplitter()

    def submit(self, request: Request) -> None:
        self.requests.append(request)
        if isinstance(request, LoadModel):
            self.on_event(
                ModelLoaded(request.request_id, replace(self.info, path=request.path), 0.1)
            )
        elif isinstance(request, Generate):
            pieces = self.answers.pop(0)
            total = 10 * len(request.messages)
            self.on_event(PrefillProgress(request.request_id, total, total))
            self._splitter = ReasoningSplitter()
            self._send(request, pieces, last=not self.hold)
            if self.hold:
                self.open = (request, pieces)
            else:
                self._finish(request, pieces, self.finish_reason)

    def _send(self, request: Generate, pieces: list[str], *, last: bool) -> None:
        """As the engine's worker sends them: reasoning flagged, its think markers left out."""
        for index, piece in enumerate(pieces):
            parts = self._splitter.feed(piece)
            if last and index == len(pieces) - 1:
                parts += self._splitter.finish()
            for text, reasoning in parts or [("", self._splitter.reasoning)]:
                self.on_event(TokenText(request.request_id, text, 100 + index, (), reasoning))

    def release(self, pieces: list[str]) -> None:
        """Send the held answer's next ``pieces``, then end it as ``finish_reason``."""
        assert self.open is not None
        request, sent = self.open
        self._send(request, pieces, last=True)
        self._finish(request, sent + pieces, self.finish_reason)

    def cancel(self) -> None:
        if self.open is not None:
            request, pieces = self.open
            self._finish(request, pieces, "cancelled")

    def fail(self, message: str, *, then_finish: str | None = None) -> None:
        assert self.open is not None
        request, pieces = self.open
        self.on_event(EngineError(request.request_id, message))
        if then_finish is not None:
            self._finish(request, pieces, then_finish)
        else:
            self.open = None

    def close(self, timeout: float = 10.0) -> None:
        self.closed = True

    def _finish(self, request: Generate, pieces: list[str], reason: str) -> None:
        self.open = None
        reasoning, text = split_reasoning("".join(pieces))  # as the engine's worker does
        stats = scripted_stats(request, len(pieces), reason)
        self.on_event(GenerationFinished(request.request_id, text, stats, reasoning))

    def generates(self) -> list[Generate]:
        return [r for r in self.requests if isinstance(r, Generate)]


def scripted_window(qtbot, model_folder: Path, *, info: ModelInfo = INFO, **settings: Any):
    """A shown ``MainWindow`` on a ``ScriptedEngine`` (no engine process), its model loaded from
    ``model_folder`` (``info`` with that path); ``settings`` go to ``AppSettings``. Returns
    ``(window, engine)``."""
    from app.chat.engine_bridge import EngineBridge
    from app.conversations.store import ConversationStore
    from app.settings.app_settings import AppSettings
    from app.settings.settings_store import SettingsStore
    from app.shell.main_window import MainWindow

    engines: list[ScriptedEngine] = []

    def factory(on_event: Callable[[Event], None]) -> ScriptedEngine:
        engines.append(ScriptedEngine(on_event, info=info))
        return engines[-1]

    model_folder.mkdir(parents=True, exist_ok=True)
    settings.setdefault("model_path", str(model_folder))
    window = MainWindow(
        store=ConversationStore(),
        bridge=EngineBridge(factory),
        settings=SettingsStore(AppSettings(**settings)),
    )
    qtbot.addWidget(window)
    window.show()
    window.start()
    if settings["model_path"]:
        qtbot.waitUntil(lambda: window.bridge.model_info is not None)
    return window, engines[0] if engines else None
