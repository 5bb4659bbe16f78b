"""The engine seen from the GUI thread: requests out, events back as Qt signals.

The worker (``EngineProcessClient``: the engine process's reader thread) calls ``on_event`` on its
own thread. The bridge only emits ``_eventArrived``
there; Qt queues that signal to this QObject's thread (the GUI thread), where ``_dispatch``
re-emits each event as a typed signal. No widget is ever touched from the worker thread.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Any, Protocol

from PySide6.QtCore import QObject, Qt, Signal, Slot

from engine.messages import (
    ChatMessage,
    ContextTrimmed,
    EngineError,
    Event,
    ForgetConversation,
    Generate,
    GenerationConfig,
    GenerationFinished,
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

logger = logging.getLogger(__name__)


class Worker(Protocol):
    """What the bridge needs of ``engine.worker.EngineWorker``."""

    def submit(self, request: Request) -> None: ...
    def cancel(self) -> None: ...
    def close(self, timeout: float = 10.0) -> None: ...


WorkerFactory = Callable[[Callable[[Event], None]], Worker]


def default_worker_factory(*, hf_token: str = "") -> WorkerFactory:
    """The engine process (``app/engine_process.py``): no model code runs in the GUI process."""

    def make(on_event: Callable[[Event], None]) -> Worker:
        from app.chat.engine_process import EngineProcessClient

        return EngineProcessClient(on_event, hf_token=hf_token)

    return make


class EngineBridge(QObject):
    modelLoaded = Signal(object)  # ModelLoaded
    prefillProgress = Signal(object)  # PrefillProgress
    tokenArrived = Signal(object)  # TokenText
    contextTrimmed = Signal(object)  # ContextTrimmed
    generationFinished = Signal(object)  # GenerationFinished
    engineError = Signal(object)  # EngineError
    serverStateChanged = Signal(object)  # ServerState
    _eventArrived = Signal(object)

    def __init__(self, worker_factory: WorkerFactory | None = None, parent: Any = None) -> None:
        super().__init__(parent)
        self._factory = worker_factory or default_worker_factory()
        self._worker: Worker | None = None
        self._next_factory: WorkerFactory | None = None
        self._ids = itertools.count(1)
        self.model_info: ModelInfo | None = None
        self.loading_request: int | None = None
        self._serving = False  # a StartServer was sent and not stopped since
        self._eventArrived.connect(self._dispatch, Qt.ConnectionType.QueuedConnection)

    @property
    def worker(self) -> Worker:
        if self._worker is None:
            self._worker = self._factory(self._eventArrived.emit)
        return self._worker

    def replace_worker_factory(self, factory: WorkerFactory) -> None:
        """Use ``factory`` from the next model load on (e.g. a new Hub token): the running worker
        keeps its model until then."""
        if self._worker is None:
            self._factory = factory
        else:
            self._next_factory = factory

    def next_request_id(self) -> int:
        return next(self._ids)

    # --- requests (GUI thread) ---------------------------------------------------------------

    def load_model(
        self, path: str, *, compute_units: str = "cpu_and_gpu", hub_endpoint: str | None = None
    ) -> int:
        if self._next_factory is not None:  # a load replaces the model anyway: new worker now
            self.close()
            self._factory, self._next_factory = self._next_factory, None
            self.model_info = None
        request_id = self.next_request_id()
        self.loading_request = request_id
        self.worker.submit(LoadModel(request_id, path, compute_units, hub_endpoint))
        return request_id

    def generate(
        self,
        conversation_id: str,
        messages: tuple[ChatMessage, ...],
        config: GenerationConfig,
    ) -> int:
        request_id = self.next_request_id()
        self.worker.submit(Generate(request_id, conversation_id, messages, config))
        return request_id

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.cancel()

    def forget(self, conversation_id: str) -> None:
        if self._worker is not None:
            self._worker.submit(ForgetConversation(conversation_id))

    def set_server(
        self, *, enabled: bool, port: int, api_key: str, cors_origins: tuple[str, ...] = ()
    ) -> None:
        """Start (or restart) the engine's OpenAI-compatible server on 127.0.0.1, or stop it."""
        if enabled and api_key:
            self.worker.submit(StartServer("127.0.0.1", port, api_key, cors_origins))
            self._serving = True
        elif self._serving and self._worker is not None:
            self._worker.submit(StopServer())
            self._serving = False

    def close(self) -> None:
        """Unload: the engine (its process) ends and every byte of the model goes back."""
        if self._worker is not None:
            self._worker.close()
            self._worker = None
        self._serving = False
        self.model_info = None
        self.loading_request = None

    # --- events (delivered on the GUI thread) ------------------------------------------------

    @Slot(object)
    def _dispatch(self, event: Event) -> None:
        if isinstance(event, TokenText):
            self.tokenArrived.emit(event)
        elif isinstance(event, PrefillProgress):
            self.prefillProgress.emit(event)
        elif isinstance(event, GenerationFinished):
            self.generationFinished.emit(event)
        elif isinstance(event, ContextTrimmed):
            self.contextTrimmed.emit(event)
        elif isinstance(event, ModelLoaded):
            self.model_info = event.info
            if self.loading_request == event.request_id:
                self.loading_request = None
            self.modelLoaded.emit(event)
        elif isinstance(event, ServerState):
            self.serverStateChanged.emit(event)
        elif isinstance(event, EngineError):
            if event.request_id is not None and event.request_id == self.loading_request:
                self.loading_request = None
            self.engineError.emit(event)
        else:
            logger.warning("unknown engine event %r", event)
