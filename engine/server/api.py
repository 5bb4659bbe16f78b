"""The OpenAI-compatible HTTP API as a Starlette app (run by ``engine.server.host``).

``GET /v1/models`` (+ ``/{id}``), ``POST /v1/chat/completions`` and ``POST /v1/completions``,
the same without ``/v1`` (clients differ on the base URL), streamed as server-sent events (ending
with ``data: [DONE]``) or answered whole, and a public ``GET /health``. Every other request needs
``Authorization: Bearer <key>`` (compared in constant time); every failure is OpenAI's error
object with its status code, and the server keeps serving. The HTTP parsing is uvicorn's; this
module maps requests to the engine's ``Generate`` and its events back to OpenAI's shapes (tool
calls through ``tool_output``). Ollama's dialect (``ollama.py``) is mounted on the same app and
shares ``open_generation`` and the checks.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from engine.messages import (
    GENERATION_RANGES,
    EngineError,
    FinishReason,
    GenerationFinished,
    GenerationStats,
    ModelInfo,
    RawPrompt,
    TokenLogprob,
    TokenText,
)
from engine.server.host import RequestStream, ServerHost
from engine.server.ollama import OllamaApi
from engine.server.requests import (
    ApiError,
    ParsedRequest,
    check_json_value,
    param_for,
    parse_chat_request,
    parse_completion_request,
)
from engine.server.tool_output import (
    ToolCallSplitter,
    call_deltas,
    message_calls,
    split_calls,
)
from engine.text.tool_calls import ParsedCall, ToolFormat

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 4 * 1024 * 1024
DRAIN_LIMIT_BYTES = 4 * MAX_BODY_BYTES  # an oversized body is read this far, then dropped
DISCONNECT_POLL_SECONDS = 0.25
# The content types a browser may send cross-origin without asking first (CORS "simple" requests):
# a body sent as one of them is never read as JSON, whatever it holds.
_SIMPLE_CONTENT_TYPES = ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data")
# OpenAI's SDKs send x-stainless-* headers (language, version, retry count...): a web page using
# them from an allowed origin must pass the preflight.
_SDK_HEADER_PREFIX = "x-stainless-"
_FINISH_REASONS: dict[FinishReason, str] = {
    "eos": "stop",
    "stop_string": "stop",
    "max_tokens": "length",
    "context_full": "length",
}


def _error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status)


def _model_object(info: ModelInfo) -> dict[str, Any]:
    return {"id": info.name, "object": "model", "created": 0, "owned_by": "local"}


def _usage(stats: GenerationStats) -> dict[str, Any]:
    return {
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.generated_tokens,
        "total_tokens": stats.prompt_tokens + stats.generated_tokens,
        "prompt_tokens_details": {"cached_tokens": stats.prompt_tokens - stats.tokens_fed},
    }


# EngineError kinds as HTTP statuses (and OpenAI's error types and codes).
_STATUSES: dict[str, tuple[int, str, str | None]] = {
    "invalid_request": (400, "invalid_request_error", None),
    "context_full": (400, "invalid_request_error", "context_length_exceeded"),
    "no_model": (503, "server_error", "model_not_loaded"),
    "load_failed": (503, "server_error", "model_not_loaded"),
    "out_of_memory": (503, "server_error", None),
    "engine_stopped": (503, "server_error", None),
    "internal": (500, "server_error", None),
}


def _engine_error(error: EngineError) -> ApiError:
    """An engine failure before the first token, as the status a client can act on."""
    status, type_, code = _STATUSES.get(error.kind, _STATUSES["internal"])
    if status != 400:
        return ApiError(status, error.message, type_=type_, code=code)
    param = param_for(error.field) if error.field else "messages"
    return ApiError(status, error.message, param=param, code=code)


class _Api:
    def __init__(self, host: ServerHost, api_key: str, *, max_body_bytes: int) -> None:
        self.host = host
        self.api_key = api_key.encode()
        self.max_body_bytes = max_body_bytes
        self.ignored_fields: set[str] = set()  # logged once each

    def log_ignored(self, names: tuple[str, ...]) -> None:
        for name in names:
            if name not in self.ignored_fields and len(self.ignored_fields) < 1000:
                self.ignored_fields.add(name)
                logger.info("ignoring the request field %r (not used by this server)", name[:80])

    # --- checks --------------------------------------------------------------------------------

    def check_key(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            key.strip().encode(), self.api_key
        ):
            found = "none" if not header else "a different key"
            raise ApiError(
                401,
                f"expected the header 'Authorization: Bearer <API key>' with this server's key, "
                f"found {found} (the key is in coreml-chat's Settings → Server)",
                code="invalid_api_key",
            )

    def loaded_model(self) -> ModelInfo:
        info = self.host.model_info
        if info is None:
            raise ApiError(
                503, "no model is loaded: load one in coreml-chat first", type_="server_error"
            )
        return info

    async def read_json(self, request: Request) -> Any:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type in _SIMPLE_CONTENT_TYPES:
            raise ApiError(
                415,
                f"expected a JSON body with 'Content-Type: application/json', found "
                f"{content_type!r}",
                code="unsupported_media_type",
            )
        too_large = ApiError(
            413,
            f"the request body should be at most {self.max_body_bytes} bytes",
            code="request_too_large",
        )
        declared = request.headers.get("content-length", "")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > DRAIN_LIMIT_BYTES:
                break
        if len(body) > self.max_body_bytes or (
            declared.isdigit() and int(declared) > self.max_body_bytes
        ):
            raise too_large
        try:
            value = json.loads(body)
        except (ValueError, UnicodeDecodeError) as error:
            raise ApiError(400, f"the request body is not valid JSON: {error}") from error
        except RecursionError as error:  # nesting deeper than the interpreter's stack allows
            raise ApiError(400, "the request body nests too deeply to be read") from error
        check_json_value(value)
        return value

    # --- endpoints -----------------------------------------------------------------------------

    async def models(self, request: Request) -> Response:
        try:
            self.check_key(request)
            info = self.host.model_info
        except ApiError as error:
            return _error_response(error)
        data = [] if info is None else [_model_object(info)]
        return JSONResponse({"object": "list", "data": data})

    async def model(self, request: Request) -> Response:
        """Any id names the loaded model (as completions do): its object, under its own name."""
        try:
            self.check_key(request)
            return JSONResponse(_model_object(self.loaded_model()))
        except ApiError as error:
            return _error_response(error)

    async def health(self, request: Request) -> Response:
        """Public (no key), and says nothing but whether a model is loaded."""
        if self.host.model_info is None:
            return JSONResponse({"status": "no model loaded"}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def chat_completions(self, request: Request) -> Response:
        return await self._complete(request, chat=True)

    async def completions(self, request: Request) -> Response:
        return await self._complete(request, chat=False)

    async def _complete(self, request: Request, *, chat: bool) -> Response:
        try:
            self.check_key(request)
            body = await self.read_json(request)
            parsed = parse_chat_request(body) if chat else parse_completion_request(body)
            self.log_ignored(parsed.ignored)
            info = self.loaded_model()
            raw = parsed.raw_prompt
            if raw is not None and raw.suffix == "" and not info.fill_in_middle:
                raw = RawPrompt(raw.text)  # an empty suffix asks for nothing a model lacks
            if raw is not None and raw.suffix is not None and not info.fill_in_middle:
                raise ApiError(
                    400,
                    f"suffix needs a model whose tokenizer has fill-in-the-middle tokens; "
                    f"{info.name} has none",
                    param="suffix",
                )
            opened = await self.open_generation(request, parsed, raw)
        except ApiError as error:
            return _error_response(error)
        if opened is None:  # the client went away while the prompt was read
            return Response(status_code=499)
        calls_possible = chat and parsed.config.tools and parsed.config.tool_choice != "none"
        tool_format = info.tool_format if calls_possible else None
        shape = _Shape(
            chat=chat,
            model=info.name,
            tool_format=tool_format,  # type: ignore[arg-type]
            fingerprint=_fingerprint(info),
        )
        answers = _Answers(self, request, parsed, raw, opened)
        echoed = raw.text if parsed.echo and raw is not None else ""
        if parsed.stream:
            return StreamingResponse(
                self._sse(answers, parsed, shape, echoed),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        return await self._whole(answers, shape, echoed)

    async def open_generation(
        self, request: Request, parsed: ParsedRequest, raw: RawPrompt | None
    ) -> tuple[RequestStream, Any] | None:
        """Submit the request and wait for its first token (or its end): (stream, event); None
        when the client went away meanwhile; an engine error before the first token is raised as
        the ``ApiError`` a client can act on. The caller closes the stream."""
        stream = self.host.open_request(parsed.messages, parsed.config, raw_prompt=raw)
        try:
            first = await self.next_event(stream, request)
        except BaseException:
            self.host.close_request(stream)
            raise
        if first is None:
            self.host.close_request(stream)
            return None
        if isinstance(first, EngineError):
            stream.finished = True  # the worker is done with it (any finish event is dropped)
            self.host.close_request(stream)
            raise _engine_error(first)
        return stream, first

    # --- engine events -------------------------------------------------------------------------

    async def next_event(self, stream: RequestStream, request: Request) -> Any:
        """The next TokenText, EngineError or GenerationFinished (progress events skipped); None
        when the client disconnected meanwhile."""
        while True:
            try:
                event = await asyncio.wait_for(stream.events.get(), DISCONNECT_POLL_SECONDS)
            except TimeoutError:
                if await request.is_disconnected():
                    return None
                continue
            if isinstance(event, GenerationFinished):
                stream.finished = True
                return event
            if isinstance(event, TokenText | EngineError):
                return event

    async def _whole(self, answers: _Answers, shape: _Shape, echoed: str) -> Response:
        choices, usage = [], None
        async with aclosing(answers.each()) as each:
            async for index, stream, event in each:
                pieces: list[str] = []
                logprobs: list[TokenLogprob] = []
                while not isinstance(event, GenerationFinished):
                    if event is None:
                        return Response(status_code=499)
                    if isinstance(event, TokenText):
                        if not event.reasoning:  # the reasoning comes whole with the end
                            pieces.append(event.text)
                        logprobs.extend(event.logprobs)
                    event = await self.next_event(stream, answers.request)
                if event.stats.finish_reason == "cancelled":
                    error = ApiError(503, "the request was cancelled", type_="server_error")
                    return _error_response(error)
                text = echoed + (event.text or "".join(pieces))
                calls: list[tuple[str, ParsedCall]] = []
                if shape.tool_format is not None:
                    text, calls = split_calls(text, shape.tool_format)
                wanted = answers.parsed.config.top_logprobs is not None
                record = shape.logprobs(logprobs) if wanted else None
                choices.append(
                    shape.choice(index, text, event.stats, calls, record, reasoning=event.reasoning)
                )
                usage = _added(usage, event.stats)
        if answers.error is not None:
            return _error_response(answers.error)
        if answers.gone:
            return Response(status_code=499)
        self.host.served()
        return JSONResponse({**shape.header("whole"), "choices": choices, "usage": usage})

    async def _sse(
        self, answers: _Answers, parsed: ParsedRequest, shape: _Shape, echoed: str
    ) -> AsyncIterator[str]:
        usage = None
        async with aclosing(answers.each()) as each:
            async for index, stream, event in each:
                if shape.chat:
                    yield shape.sse(shape.chunk({"role": "assistant", "content": ""}, None, index))
                if echoed:
                    yield shape.sse(shape.chunk(echoed, None, index))
                splitter = (
                    None if shape.tool_format is None else ToolCallSplitter(shape.tool_format)
                )
                while not isinstance(event, GenerationFinished):
                    if event is None:
                        return
                    if isinstance(event, TokenText) and event.reasoning and shape.chat:
                        # llama-server's and LM Studio's field: the thinking apart from content
                        if event.text:
                            delta = {"reasoning_content": event.text}
                            yield shape.sse(shape.chunk(delta, None, index))
                    elif isinstance(event, TokenText) and (event.text or event.logprobs):
                        shown = event.text if splitter is None else splitter.add(event.text)
                        record = shape.logprobs(event.logprobs) if event.logprobs else None
                        if shown or record:
                            yield shape.sse(shape.chunk(shown, None, index, record))
                    event = await self.next_event(stream, answers.request)
                reason = _FINISH_REASONS.get(event.stats.finish_reason)
                if reason is None:  # cancelled (the server stopped)
                    error = ApiError(503, "the request was cancelled", type_="server_error")
                    yield shape.sse(error.body())
                    return
                if splitter is not None:
                    rest, calls = splitter.finish()
                    if rest:
                        yield shape.sse(shape.chunk(rest, None, index))
                    for delta in call_deltas(calls):
                        yield shape.sse(shape.chunk(delta, None, index))
                    reason = "tool_calls" if calls else reason
                yield shape.sse(shape.chunk("" if not shape.chat else {}, reason, index))
                usage = _added(usage, event.stats)
        if answers.error is not None:
            yield shape.sse(answers.error.body())
            return
        if answers.gone:
            return
        if parsed.include_usage:
            yield shape.sse({**shape.header("chunk"), "choices": [], "usage": usage})
        yield "data: [DONE]\n\n"
        self.host.served()


def _fingerprint(info: ModelInfo) -> str:
    """OpenAI's system_fingerprint: what answered (model, weights, runtime), as a short hash."""
    seen = "|".join((info.name, info.path, info.quantization, info.runtime_name))
    return "fp_" + hashlib.sha256(seen.encode()).hexdigest()[:10]


def _added(usage: dict[str, Any] | None, stats: GenerationStats) -> dict[str, Any]:
    """Usage over the choices: the prompt counted once, the completions added up."""
    if usage is None:
        return _usage(stats)
    completion = usage["completion_tokens"] + stats.generated_tokens
    return {
        **usage,
        "completion_tokens": completion,
        "total_tokens": usage["prompt_tokens"] + completion,
    }


class _Answers:
    """The ``n`` answers of one request, one after the other (each a ``Generate`` of its own, its
    seed the request's plus its index): ``each()`` yields (index, stream, first event). Each stream is
    closed when the loop moves on or stops (``aclosing``: at once, even on a return from the loop);
    ``error`` or ``gone`` says why it stopped early."""

    def __init__(
        self,
        api: _Api,
        request: Request,
        parsed: ParsedRequest,
        raw: RawPrompt | None,
        first: tuple[RequestStream, Any],
    ) -> None:
        self.api, self.request, self.parsed, self.raw, self.first = api, request, parsed, raw, first
        self.error: ApiError | None = None
        self.gone = False

    async def each(self) -> AsyncIterator[tuple[int, RequestStream, Any]]:
        for index in range(self.parsed.n):
            if index == 0:
                opened: tuple[RequestStream, Any] | None = self.first
            else:
                config = self.parsed.config
                if config.seed is not None:
                    seed = (config.seed + index) % (GENERATION_RANGES["seed"].maximum + 1)
                    config = dataclasses.replace(config, seed=int(seed))
                parsed = dataclasses.replace(self.parsed, config=config)
                try:
                    opened = await self.api.open_generation(self.request, parsed, self.raw)
                except ApiError as error:
                    self.error = error
                    return
            if opened is None:
                self.gone = True
                return
            stream, event = opened
            try:
                yield index, stream, event
            finally:
                self.api.host.close_request(stream)


class _Shape:
    """OpenAI's response objects for chat or legacy completions."""

    def __init__(
        self,
        *,
        chat: bool,
        model: str,
        tool_format: ToolFormat | None = None,
        fingerprint: str = "",
    ) -> None:
        self.chat = chat
        self.model = model
        self.tool_format = tool_format  # the answer may be tool calls, written this way
        self.fingerprint = fingerprint
        self.id = ("chatcmpl-" if chat else "cmpl-") + secrets.token_hex(12)
        self.created = int(time.time())

    def header(self, kind: str) -> dict[str, Any]:
        if self.chat:
            name = "chat.completion.chunk" if kind == "chunk" else "chat.completion"
        else:
            name = "text_completion"
        return {
            "id": self.id,
            "object": name,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": self.fingerprint,
        }

    def chunk(
        self,
        delta: Any,
        finish_reason: str | None,
        index: int = 0,
        logprobs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        if self.chat:
            content = delta if isinstance(delta, dict) else {"content": delta}
            choice = {"index": index, "delta": content, "logprobs": logprobs}
        else:
            choice = {"index": index, "text": delta, "logprobs": logprobs}
        return {**self.header("chunk"), "choices": [{**choice, "finish_reason": finish_reason}]}

    def choice(
        self,
        index: int,
        text: str,
        stats: GenerationStats,
        calls: list[tuple[str, ParsedCall]] | None = None,
        logprobs: dict[str, Any] | None = None,
        *,
        reasoning: str = "",
    ) -> dict[str, Any]:
        """One whole choice; a chat message carries the model's thinking apart from its answer
        (``reasoning_content``, as llama-server and LM Studio return it) when there was some."""
        reason = "tool_calls" if calls else _FINISH_REASONS.get(stats.finish_reason, "stop")
        if self.chat:
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if reasoning:
                message["reasoning_content"] = reasoning
            if calls:
                message = {**message, "content": text or None, "tool_calls": message_calls(calls)}
            choice = {"index": index, "message": message, "logprobs": logprobs}
        else:
            choice = {"index": index, "text": text, "logprobs": logprobs}
        return {**choice, "finish_reason": reason}

    def logprobs(self, tokens: list[TokenLogprob] | tuple[TokenLogprob, ...]) -> dict[str, Any]:
        """OpenAI's logprobs object: chat's ``content`` list, or the legacy parallel lists."""
        if self.chat:

            def entry(token: str, logprob: float) -> dict[str, Any]:
                return {"token": token, "logprob": logprob, "bytes": list(token.encode())}

            content = [
                {**entry(t.token, t.logprob), "top_logprobs": [entry(*alt) for alt in t.top]}
                for t in tokens
            ]
            return {"content": content, "refusal": None}
        offsets, offset = [], 0
        for t in tokens:
            offsets.append(offset)
            offset += len(t.token)
        return {
            "tokens": [t.token for t in tokens],
            "token_logprobs": [t.logprob for t in tokens],
            "top_logprobs": [dict(t.top) for t in tokens],
            "text_offset": offsets,
        }

    @staticmethod
    def sse(payload: dict[str, Any]) -> str:
        return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


async def _http_error(request: Request, error: Exception) -> Response:
    status = error.status_code if isinstance(error, HTTPException) else 500
    detail = error.detail if isinstance(error, HTTPException) else "internal error"
    message = f"{request.method} {request.url.path}: {detail}"
    return _error_response(ApiError(status, message, code="not_found" if status == 404 else None))


async def _internal_error(request: Request, error: Exception) -> Response:
    """Anything unforeseen: logged with its traceback here, never sent to the client."""
    logger.error("%s %s failed", request.method, request.url.path, exc_info=error)
    message = f"{request.method} {request.url.path}: internal error ({type(error).__name__})"
    return _error_response(ApiError(500, message, type_="server_error"))


class _Cors(CORSMiddleware):
    """Starlette's CORS with the OpenAI SDKs' ``x-stainless-*`` headers allowed by prefix."""

    def preflight_response(self, request_headers: Headers) -> Response:
        requested = request_headers.get("access-control-request-headers", "")
        names = [name.strip().lower() for name in requested.split(",") if name.strip()]
        sdk = [name for name in names if name.startswith(_SDK_HEADER_PREFIX)]
        if not sdk:
            return super().preflight_response(request_headers)
        rest = MutableHeaders(raw=list(request_headers.raw))
        others = [name for name in names if name not in sdk]
        if others:
            rest["access-control-request-headers"] = ", ".join(others)
        else:
            del rest["access-control-request-headers"]
        response = super().preflight_response(rest)
        if response.status_code == 200:
            allowed = response.headers.get("access-control-allow-headers", "")
            response.headers["access-control-allow-headers"] = ", ".join(
                [name for name in (allowed, *sdk) if name]
            )
        return response


def create_app(
    host: ServerHost,
    *,
    api_key: str,
    cors_origins: tuple[str, ...] = (),
    max_body_bytes: int = MAX_BODY_BYTES,
) -> Starlette:
    if not api_key:
        raise ValueError("the server needs an API key: every request must carry it")
    api = _Api(host, api_key, max_body_bytes=max_body_bytes)
    routes = [Route("/health", api.health, methods=["GET"])]
    for prefix in ("/v1", ""):
        routes += [
            Route(f"{prefix}/models", api.models, methods=["GET"]),
            Route(f"{prefix}/models/{{model_id:path}}", api.model, methods=["GET"]),
            Route(f"{prefix}/chat/completions", api.chat_completions, methods=["POST"]),
            Route(f"{prefix}/completions", api.completions, methods=["POST"]),
        ]
    routes += OllamaApi(api).routes()
    middleware = []
    if cors_origins:
        middleware.append(
            Middleware(
                _Cors,
                allow_origins=list(cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type"],
            )
        )
    return Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
    )
