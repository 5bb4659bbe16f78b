"""The HTTP server beside the engine worker: uvicorn on a thread of its own, events routed back.

The worker owns the model; the server is one more client of its queue. An HTTP request becomes a
``Generate`` with an id from the server's own range (``SERVER_REQUEST_IDS``, far above the app's
counter) and no conversation id, so the worker picks the kept state with the longest common
prefix. The worker hands the events of those ids to ``on_event`` here (on the worker thread); they
are passed to the request's ``asyncio.Queue`` on the server's loop. A request whose client went
away is cancelled in the worker, which then serves the next one.

Starlette and uvicorn are imported in ``start`` only: importing the engine stays light.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.messages import (
    ChatMessage,
    Event,
    Generate,
    GenerationConfig,
    ModelInfo,
    RawPrompt,
    Request,
    ServerState,
    StartServer,
)

logger = logging.getLogger(__name__)

SERVER_REQUEST_IDS = 1 << 48  # the app counts from 1; the server's ids start here
START_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 5.0


def generate_api_key() -> str:
    """A new bearer key (192 random bits), for the app's first enable and the headless server."""
    return "cmc-" + secrets.token_urlsafe(24)


def exposure_notice(host: str) -> str | None:
    """One line saying who can reach a server bound to ``host`` (None on a loopback address: only
    this machine). The key guards every request, but a user who typed another address should be
    told that the model is now offered beyond this machine."""
    name = host.strip().strip("[]")
    if name.lower() == "localhost":
        return None
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return (
            f"exposed: listening on {host}: any device that can reach that name can use the model "
            "with the key (only this machine: --host 127.0.0.1)"
        )
    if address.is_loopback:
        return None
    if address.is_unspecified:
        who = "any device on any network this machine is on"
    elif address.is_private or address.is_link_local:
        who = "any device on that local network"
    else:
        who = "anyone on the internet who can reach that address"
    return (
        f"exposed: listening on {host}: {who} can use the model with the key "
        "(only this machine: --host 127.0.0.1)"
    )


def is_server_request(request_id: object) -> bool:
    return isinstance(request_id, int) and request_id >= SERVER_REQUEST_IDS


class EngineQueue(Protocol):
    """What the server needs of ``EngineWorker``."""

    def submit(self, request: Request) -> None: ...
    def cancel(self, request_id: int | None = None) -> None: ...
    @property
    def model_info(self) -> ModelInfo | None: ...


@dataclass
class RequestStream:
    """One HTTP request's events, on the server's loop."""

    request_id: int
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    finished: bool = False


class ServerHost:
    def __init__(
        self,
        engine: EngineQueue,
        settings: StartServer,
        *,
        on_state: Callable[[Event], None],
        create_app: Callable[..., Any],
    ) -> None:
        """``create_app(host, api_key=…, cors_origins=…)`` builds the ASGI app (``engine.server.api``'s,
        passed in so that the API module, which needs this host's types, is not imported back)."""
        self.engine = engine
        self._create_app = create_app
        self.settings = settings
        self._on_state = on_state
        self._ids = itertools.count(SERVER_REQUEST_IDS)
        self._streams: dict[int, RequestStream] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Any = None  # uvicorn.Server
        self._thread: threading.Thread | None = None
        self.requests_served = 0
        self.url = ""

    # --- lifecycle (the caller's thread) -------------------------------------------------------

    def start(self) -> None:
        """Bind, then serve on a thread; raises ``OSError`` (port in use, bad host) at once."""
        import uvicorn

        host, port = self.settings.host, self.settings.port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, port), family=family)
        bound_port = sock.getsockname()[1]
        shown_host = f"[{host}]" if family == socket.AF_INET6 else host
        self.url = f"http://{shown_host}:{bound_port}/v1"
        app = self._create_app(
            self, api_key=self.settings.api_key, cors_origins=self.settings.cors_origins
        )
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=2
        )
        self._server = uvicorn.Server(config)
        started = threading.Event()

        def run() -> None:
            async def serve() -> None:
                self._loop = asyncio.get_running_loop()
                started.set()
                await self._server.serve(sockets=[sock])

            try:
                asyncio.run(serve())
            except (Exception, SystemExit):  # uvicorn exits on fatal errors: keep the engine
                logger.exception("the HTTP server stopped on an error")
            finally:
                started.set()
                sock.close()

        self._thread = threading.Thread(target=run, name="coreml-chat-http", daemon=True)
        self._thread.start()
        started.wait(START_TIMEOUT_SECONDS)
        logger.info("serving the OpenAI API on %s", self.url)
        self._on_state(ServerState(True, self.url, 0))

    def stop(self) -> None:
        with self._lock:
            ids = list(self._streams)
        for request_id in ids:
            self.engine.cancel(request_id)
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_SECONDS)
        logger.info("the HTTP server on %s stopped", self.url)

    # --- the worker thread ---------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        request_id = getattr(event, "request_id", None)
        with self._lock:
            stream = self._streams.get(request_id)  # type: ignore[arg-type]
        loop = self._loop
        if stream is None or loop is None:
            return  # its client is gone
        try:
            loop.call_soon_threadsafe(stream.events.put_nowait, event)
        except RuntimeError:  # the loop closed: the server stopped
            logger.debug("event for request %s after the server stopped", request_id)

    # --- the server's loop ---------------------------------------------------------------------

    @property
    def model_info(self) -> ModelInfo | None:
        return self.engine.model_info

    def open_request(
        self,
        messages: tuple[ChatMessage, ...],
        config: GenerationConfig,
        *,
        raw_prompt: RawPrompt | None = None,
    ) -> RequestStream:
        stream = RequestStream(next(self._ids))
        with self._lock:
            self._streams[stream.request_id] = stream
        self.engine.submit(Generate(stream.request_id, "", messages, config, raw_prompt))
        return stream

    def close_request(self, stream: RequestStream) -> None:
        """The response is over: a request not finished (its client went away) is cancelled."""
        with self._lock:
            self._streams.pop(stream.request_id, None)
        if not stream.finished:
            logger.info("request %s cancelled: its client went away", stream.request_id)
            self.engine.cancel(stream.request_id)

    def served(self) -> None:
        self.requests_served += 1
        self._on_state(ServerState(True, self.url, self.requests_served))
