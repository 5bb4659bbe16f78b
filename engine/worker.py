"""The engine's background thread: it owns the model and the conversations' kv-cache states.

Requests go in through ``submit`` (any thread); events come out through ``on_event``, called on the
worker thread. ``cancel`` takes effect between two tokens even while a generation runs: it sets an
event the generation loop checks, instead of waiting in the queue behind it. Whatever fails, the
worker reports an ``EngineError`` and keeps serving.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from engine import package_metadata as meta
from engine.chat_template import ChatTemplateError
from engine.generate import stream_generate
from engine.messages import (
    Cancel,
    ContextTrimmed,
    EngineError,
    Event,
    ForgetConversation,
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
from engine.runtime import ModelLoadError, load_model
from engine.session import ChatSession, ConversationCache
from engine.tokenizer import ChatTokenizer
from engine.tokenizer_files import tokenizer_folder

logger = logging.getLogger(__name__)

# States kept for conversations that are not in use: as many as fit this budget (at least one).
STATE_MEMORY_BUDGET = 600 * 1024 * 1024
_STOP = object()


def _state_bytes(session: ChatSession) -> int:
    total = 0
    for spec in session.model.description.states:
        count = 1
        for dim in spec.shape:
            count *= int(dim or 1)
        total += count * 2  # float16
    return total


class EngineWorker:
    def __init__(self, on_event: Callable[[Event], None], *, hf_token: str | None = None) -> None:
        self._on_event = on_event
        self._hf_token = hf_token
        self._requests: queue.Queue[object] = queue.Queue()
        self._cancel = threading.Event()
        self._session: ChatSession | None = None
        self._info: ModelInfo | None = None
        self._caches: OrderedDict[str, ConversationCache] = OrderedDict()
        self._thread = threading.Thread(target=self._run, name="coreml-chat-engine", daemon=True)
        self._thread.start()

    # --- any thread ----------------------------------------------------------------------------

    def submit(self, request: Request) -> None:
        if isinstance(request, Cancel):
            self.cancel()
            return
        self._requests.put(request)

    def cancel(self) -> None:
        """Stop the running generation between two tokens (and anything queued before now)."""
        self._cancel.set()

    def close(self, timeout: float = 10.0) -> None:
        self._cancel.set()
        self._requests.put(_STOP)
        self._thread.join(timeout)

    @property
    def model_info(self) -> ModelInfo | None:
        return self._info

    # --- the worker thread ---------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        try:
            self._on_event(event)
        except Exception:  # the receiver's bug must not kill the engine
            logger.exception("on_event raised for %s", type(event).__name__)

    def _run(self) -> None:
        while True:
            request = self._requests.get()
            if request is _STOP:
                return
            request_id = getattr(request, "request_id", None)
            try:
                if isinstance(request, LoadModel):
                    self._load(request)
                elif isinstance(request, Generate):
                    self._cancel.clear()
                    self._generate(request)
                elif isinstance(request, ForgetConversation):
                    self._caches.pop(request.conversation_id, None)
            except (ModelLoadError, ChatTemplateError, ValueError) as error:
                self._emit(EngineError(request_id, str(error)))
            except MemoryError:
                self._emit(
                    EngineError(
                        request_id, "out of memory: close other apps or use a smaller model"
                    )
                )
            except Exception as error:  # a bug: report it, keep serving
                logger.exception("engine request failed")
                self._emit(
                    EngineError(request_id, f"internal error: {type(error).__name__}: {error}")
                )

    def _load(self, request: LoadModel) -> None:
        started = time.perf_counter()
        model = load_model(request.path, compute_units=request.compute_units)  # type: ignore[arg-type]
        from engine.model_folder import find_package

        package = find_package(Path(request.path))
        metadata = model.description.metadata
        tokenizer = ChatTokenizer.from_folder(
            tokenizer_folder(package, metadata, token=self._hf_token), metadata
        )
        session = ChatSession(model, tokenizer)
        self._session, self._caches = session, OrderedDict()
        self._info = ModelInfo(
            name=package.stem,
            path=str(request.path),
            context_length=session.context_length,
            quantization=metadata.get(meta.QUANTIZATION, "unknown"),
            architecture=metadata.get(meta.ARCHITECTURE, "unknown"),
            runtime_name=model.description.runtime_name,
            compute_units=request.compute_units,
            source_model_id=metadata.get(meta.SOURCE_MODEL_ID, ""),
        )
        self._emit(ModelLoaded(request.request_id, self._info, time.perf_counter() - started))

    def _cache_for(self, conversation_id: str) -> ConversationCache:
        assert self._session is not None
        cache = self._caches.pop(conversation_id, None) or self._session.new_cache()
        self._caches[conversation_id] = cache  # most recently used last
        keep = max(1, STATE_MEMORY_BUDGET // max(1, _state_bytes(self._session)))
        while len(self._caches) > keep + 1:
            self._caches.popitem(last=False)
        return cache

    def _generate(self, request: Generate) -> None:
        if self._session is None:
            self._emit(EngineError(request.request_id, "no model is loaded: open one in Settings"))
            return
        session = self._session
        cache = self._cache_for(request.conversation_id)

        def on_prefill(done: int, total: int) -> None:
            self._emit(PrefillProgress(request.request_id, done, total))

        pieces: list[str] = []
        trimmed_reported = False
        for response in stream_generate(
            session,
            cache,
            request.messages,
            request.config,
            cancel=self._cancel,
            on_prefill=on_prefill,
        ):
            if response.dropped_messages and not trimmed_reported:
                trimmed_reported = True
                self._emit(
                    ContextTrimmed(
                        request.request_id,
                        response.dropped_messages,
                        f"The context was full: the oldest {response.dropped_messages} messages "
                        "were left out of what the model sees.",
                    )
                )
            if response.text:
                pieces.append(response.text)
                self._emit(TokenText(request.request_id, response.text, response.token))
            if response.finish_reason is not None:
                if response.finish_reason == "context_full" and response.message:
                    self._emit(EngineError(request.request_id, response.message))
                stats = GenerationStats(
                    prompt_tokens=response.prompt_tokens,
                    tokens_fed=response.tokens_fed,
                    generated_tokens=response.generated_tokens,
                    time_to_first_token=response.time_to_first_token,
                    prefill_tokens_per_second=response.prefill_tokens_per_second,
                    decode_tokens_per_second=response.decode_tokens_per_second,
                    cache_length=response.cache_length,
                    context_length=session.context_length,
                    finish_reason=response.finish_reason,
                )
                self._emit(GenerationFinished(request.request_id, "".join(pieces), stats))
