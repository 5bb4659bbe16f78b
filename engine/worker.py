"""The engine's background thread: it owns the model and the conversations' kv-cache states.

Requests go in through ``submit`` (any thread); events come out through ``on_event``, called on the
worker thread. ``cancel`` takes effect between two tokens even while a generation runs: it sets an
event the generation loop checks, instead of waiting in the queue behind it. Whatever fails, the
worker reports an ``EngineError`` and keeps serving.
"""

from __future__ import annotations

import gc
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.generation.generate import stream_generate
from engine.generation.open_chat import open_chat
from engine.generation.session import ChatSession, ConversationCache
from engine.generation.state_cache import StateCache
from engine.messages import (
    Cancel,
    ContextTrimmed,
    EngineError,
    Event,
    ForgetConversation,
    Generate,
    GenerationFinished,
    GenerationStats,
    InvalidConfig,
    LoadModel,
    ModelInfo,
    ModelLoaded,
    PrefillProgress,
    Request,
    ServerState,
    StartServer,
    StopServer,
    TokenText,
)
from engine.package import metadata as meta
from engine.package.model import Model, ModelLoadError, find_package
from engine.runtime import load_model
from engine.server.host import ServerHost, is_server_request
from engine.text.chat_template import ChatTemplateError
from engine.text.reasoning import ReasoningSplitter

logger = logging.getLogger(__name__)

_STOP = object()


@dataclass(frozen=True)
class _Queued:
    sequence: int  # submission order, for cancel() of everything submitted before it
    request: Request


def _state_bytes(session: ChatSession) -> int:
    """Bytes of one conversation's kv-cache state (float16)."""
    total = 0
    for spec in session.model.description.states:
        count = 1
        for dim in spec.shape:
            count *= int(dim or 1)
        total += count * 2
    return total


class EngineWorker:
    """``EngineWorker(on_event)``: ``submit(request)``, ``cancel(request_id=None)``, ``close()``.

    A ``Generate`` ends with ``GenerationFinished``, or with ``EngineError`` alone when it fails (a
    template that raises, no model loaded); a conversation that does not fit the context sends an
    ``EngineError`` with the reason, then ``GenerationFinished`` with ``finish_reason
    "context_full"``. ``ContextTrimmed`` comes before the tokens when older turns were dropped.
    A ``LoadModel`` ends with ``ModelLoaded`` or ``EngineError``. ``Cancel`` (or ``cancel()``) is handled at once, not queued: the running
    generation stops between two tokens and finishes with ``finish_reason="cancelled"``; a
    cancelled request still in the queue finishes that way without running.
    ``StartServer``/``StopServer`` are handled at once too: the HTTP server's requests join the
    same queue (their ids come from the server's own range) and their events go to the server,
    not to ``on_event``, which gets a ``ServerState`` when the server starts, stops or serves.
    """

    def __init__(
        self,
        on_event: Callable[[Event], None],
        *,
        hf_token: str | None = None,
        load: Callable[..., Model] = load_model,
    ) -> None:
        """``load``: ``engine.runtime.load_model``, or a named Core ML stand-in in tests and
        benchmarks (see ``engine/runtime/coreml_standin.py``)."""
        self._on_event = on_event
        self._hf_token = hf_token
        self._load_model = load
        self._requests: queue.Queue[object] = queue.Queue()
        self._lock = threading.Lock()
        self._cancel = threading.Event()  # set: the running generation stops
        self._sequence = 0  # requests submitted so far
        self._cancel_up_to = 0  # requests submitted up to here are cancelled (cancel of all)
        self._queued_ids: set[int] = set()  # request ids waiting in the queue
        self._cancelled_ids: set[int] = set()  # of those, the ones cancelled
        self._running: _Queued | None = None
        self._session: ChatSession | None = None
        self._info: ModelInfo | None = None
        self._states: StateCache | None = None  # the loaded model's kept kv-cache states
        self._emit_lock = threading.Lock()  # events come from the worker and the server threads
        self._server: ServerHost | None = None
        self._thread = threading.Thread(target=self._run, name="coreml-chat-engine", daemon=True)
        self._thread.start()

    # --- any thread ----------------------------------------------------------------------------

    def submit(self, request: Request) -> None:
        if isinstance(request, Cancel):
            self.cancel(request.request_id)
            return
        if isinstance(request, StartServer | StopServer):
            self._control_server(request)
            return
        with self._lock:
            self._sequence += 1
            if isinstance(request, Generate):
                self._queued_ids.add(request.request_id)
            self._requests.put(_Queued(self._sequence, request))

    def cancel(self, request_id: int | None = None) -> None:
        """Stop generation ``request_id`` between two tokens, or, with None, the running one and
        every generation submitted before now. Thread-safe; takes effect while the worker is busy."""
        with self._lock:
            running = self._running
            if request_id is None:
                self._cancel_up_to = self._sequence
                if running is not None:
                    self._cancel.set()
                return
            if request_id in self._queued_ids:
                self._cancelled_ids.add(request_id)
            if running is not None and getattr(running.request, "request_id", None) == request_id:
                self._cancel.set()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the running generation and the thread (queued requests are dropped)."""
        self.cancel()
        if self._server is not None:
            self._control_server(StopServer())
        self._requests.put(_STOP)
        self._thread.join(timeout)

    @property
    def model_info(self) -> ModelInfo | None:
        return self._info

    def _control_server(self, request: StartServer | StopServer) -> None:
        """Start (or restart) or stop the HTTP server on the caller's thread: not queued behind a
        generation. Starlette and uvicorn are imported only here, when a server starts."""
        if self._server is not None:
            self._server.stop()
            self._server = None
        if isinstance(request, StopServer):
            self._emit(ServerState(False, "", 0))
            return
        from engine.server.api import create_app

        host = ServerHost(self, request, on_state=self._emit, create_app=create_app)
        try:
            host.start()
        except OSError as error:
            self._emit(ServerState(False, "", 0, f"the server could not start: {error}"))
            return
        self._server = host

    # --- the worker thread ---------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        request_id = getattr(event, "request_id", None)
        server = self._server
        try:
            if server is not None and is_server_request(request_id):
                server.on_event(event)
                return
            if is_server_request(request_id):
                return  # the server stopped: nobody waits for its request's events
            with self._emit_lock:
                self._on_event(event)
        except Exception:  # the receiver's bug must not kill the engine
            logger.exception("on_event raised for %s", type(event).__name__)

    def _run(self) -> None:
        while True:
            queued = self._requests.get()
            if queued is _STOP or not isinstance(queued, _Queued):
                return
            request = queued.request
            request_id = getattr(request, "request_id", None)
            with self._lock:
                self._running = queued
                self._cancel.clear()
                cancelled = queued.sequence <= self._cancel_up_to or (
                    request_id in self._cancelled_ids
                )
                if isinstance(request, Generate):
                    self._queued_ids.discard(request.request_id)
                    self._cancelled_ids.discard(request.request_id)
            try:
                self._serve(request, cancelled=cancelled)
            except ModelLoadError as error:
                self._emit(EngineError(request_id, str(error), kind="load_failed"))
            except ChatTemplateError as error:
                self._emit(EngineError(request_id, str(error), "invalid_request", "messages"))
            except InvalidConfig as error:
                self._emit(EngineError(request_id, str(error), "invalid_request", error.field))
            except ValueError as error:
                self._emit(EngineError(request_id, str(error), kind="invalid_request"))
            except MemoryError:
                message = "out of memory: close other apps or use a smaller model"
                self._emit(EngineError(request_id, message, kind="out_of_memory"))
            except Exception as error:  # a bug: report it, keep serving
                logger.exception("engine request failed")
                message = f"internal error: {type(error).__name__}: {error}"
                self._emit(EngineError(request_id, message, kind="internal"))
            finally:
                with self._lock:
                    self._running = None

    def _serve(self, request: Request, *, cancelled: bool) -> None:
        if isinstance(request, LoadModel):
            self._load(request)
        elif isinstance(request, Generate):
            if cancelled:
                self._finish_cancelled(request)
            else:
                self._generate(request)
        elif isinstance(request, ForgetConversation) and self._states is not None:
            self._states.forget(request.conversation_id)

    def _finish_cancelled(self, request: Generate) -> None:
        cache = self._states.get(request.conversation_id) if self._states is not None else None
        context = self._session.context_length if self._session is not None else 0
        stats = GenerationStats(
            prompt_tokens=0,
            tokens_fed=0,
            generated_tokens=0,
            time_to_first_token=0.0,
            prefill_tokens_per_second=0.0,
            decode_tokens_per_second=0.0,
            cache_length=cache.length if cache is not None else 0,
            context_length=context,
            finish_reason="cancelled",
        )
        self._emit(GenerationFinished(request.request_id, "", stats))

    def _load(self, request: LoadModel) -> None:
        started = time.perf_counter()
        # Let the old model and its states go before the new one is loaded (memory).
        self._session, self._info, self._states = None, None, None
        gc.collect()
        session = open_chat(
            request.path,
            compute_units=request.compute_units,  # type: ignore[arg-type]
            hf_token=self._hf_token,
            hub_endpoint=request.hub_endpoint,
            load=self._load_model,
        )
        package = find_package(Path(request.path))
        model, metadata = session.model, session.model.description.metadata
        self._session = session
        self._states = StateCache(session.new_cache, state_bytes=_state_bytes(session))
        self._info = ModelInfo(
            name=package.stem,
            path=str(request.path),
            context_length=session.context_length,
            quantization=metadata.get(meta.QUANTIZATION, "unknown"),
            architecture=metadata.get(meta.ARCHITECTURE, "unknown"),
            runtime_name=model.description.runtime_name,
            compute_units=request.compute_units,
            source_model_id=metadata.get(meta.SOURCE_MODEL_ID, ""),
            fill_in_middle=session.tokenizer.fill_in_middle is not None,
            tool_format=session.tokenizer.tool_format,
        )
        self._emit(ModelLoaded(request.request_id, self._info, time.perf_counter() - started))

    def _generate(self, request: Generate) -> None:
        if self._session is None:
            self._emit(
                EngineError(
                    request.request_id, "no model is loaded: open one in Settings", kind="no_model"
                )
            )
            return
        session, states = self._session, self._states
        assert states is not None  # made with the session
        # A conversation continues its own state; a request without one (the HTTP server's) the
        # state its rendered prompt shares most with (chosen once the prompt is rendered).
        if request.conversation_id:
            cache: ConversationCache | Callable[[list[int]], ConversationCache] = (
                states.for_conversation(request.conversation_id)
            )
        else:
            cache = states.for_prompt

        def on_prefill(done: int, total: int) -> None:
            self._emit(PrefillProgress(request.request_id, done, total))

        pieces: list[str] = []
        thoughts: list[str] = []
        # Reasoning is a chat's: a raw continuation (/v1/completions) is text as it comes.
        splitter = ReasoningSplitter() if request.raw_prompt is None else None
        trimmed_reported = False
        for response in stream_generate(
            session,
            cache,
            request.prompt,
            request.config,
            cancel=self._cancel,
            on_prefill=on_prefill,
        ):
            if response.newly_dropped and not trimmed_reported:
                trimmed_reported = True
                self._emit(
                    ContextTrimmed(
                        request.request_id,
                        response.dropped_messages,
                        f"The context was full: the oldest {response.dropped_messages} messages "
                        "were left out of what the model sees.",
                    )
                )
            if splitter is None:
                parts = [(response.text, False)] if response.text or response.logprobs else []
            else:
                parts = splitter.feed(response.text) if response.text else []
                if response.stats is not None:
                    parts += splitter.finish()
                if response.logprobs and not parts:
                    parts = [("", splitter.reasoning)]
            for index, (text, reasoning) in enumerate(parts):
                (thoughts if reasoning else pieces).append(text)
                logprobs = response.logprobs if index == 0 else ()
                self._emit(TokenText(request.request_id, text, response.token, logprobs, reasoning))
            if response.stats is not None:
                if response.finish_reason == "context_full" and response.message:
                    error = EngineError(request.request_id, response.message, kind="context_full")
                    self._emit(error)
                self._emit(
                    GenerationFinished(
                        request.request_id, "".join(pieces), response.stats, "".join(thoughts)
                    )
                )
