"""Ollama's API on the same port: ``GET /api/version``, ``/api/tags``, ``POST /api/show``,
``/api/chat`` and ``/api/generate``, streamed as NDJSON (one JSON object a line) by default.

A request is translated into the OpenAI request it means and checked by the same parser
(``engine.server.requests``), so both dialects share one set of rules; a 400 names the Ollama
field (``options.num_predict``, not ``max_tokens``). ``options``: temperature, top_p, top_k,
min_p, num_predict, stop, seed, repeat_penalty; ``num_ctx`` and the rest are read-only here (the
loaded model's context is what it is). ``format``: "json" or a JSON schema, under the same
constrained decoding as ``response_format``. ``keep_alive`` is accepted (the model stays loaded).
Same key rule as the OpenAI routes: ``Authorization: Bearer <key>``. Errors are Ollama's
``{"error": "..."}`` with the status.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from engine.messages import GenerationFinished, GenerationStats, ModelInfo, RawPrompt, TokenText
from engine.server.host import RequestStream, ServerHost
from engine.server.requests import (
    DEFAULT_MAX_TOKENS,
    ApiError,
    ParsedRequest,
    parse_chat_request,
    parse_completion_request,
)
from engine.server.tool_output import ToolCallSplitter, split_calls
from engine.text.tool_calls import ParsedCall

OLLAMA_VERSION = "0.9.0"  # the API version this dialect follows (clients check a minimum)
_DONE_REASONS = {
    "eos": "stop",
    "stop_string": "stop",
    "max_tokens": "length",
    "context_full": "length",
}
# OpenAI field -> the Ollama field a client sent it as (for the 400s).
_OLLAMA_NAMES = {
    "max_tokens": "options.num_predict",
    "temperature": "options.temperature",
    "top_p": "options.top_p",
    "top_k": "options.top_k",
    "min_p": "options.min_p",
    "seed": "options.seed",
    "stop": "options.stop",
    "repetition_penalty": "options.repeat_penalty",
    "response_format": "format",
    "response_format.json_schema.schema": "format",
}
_OPTIONS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "min_p": "min_p",
    "seed": "seed",
    "stop": "stop",
    "repeat_penalty": "repetition_penalty",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
}


class GenerationCore(Protocol):
    """What this dialect needs of the OpenAI one (``engine.server.api``'s ``_Api``), passed in."""

    host: ServerHost

    def check_key(self, request: Request) -> None: ...
    async def read_json(self, request: Request) -> Any: ...
    def loaded_model(self) -> ModelInfo: ...
    def log_ignored(self, names: tuple[str, ...]) -> None: ...
    async def open_generation(
        self, request: Request, parsed: ParsedRequest, raw: RawPrompt | None
    ) -> tuple[RequestStream, Any] | None: ...
    async def next_event(self, stream: RequestStream, request: Request) -> Any: ...


def _error(error: ApiError) -> JSONResponse:
    message = error.message
    for openai_name, ollama_name in _OLLAMA_NAMES.items():
        if error.param == openai_name:
            message = message.replace(openai_name, ollama_name, 1)
    return JSONResponse({"error": message}, status_code=error.status)


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _details(info: ModelInfo) -> dict[str, Any]:
    return {
        "parent_model": "",
        "format": "coreml",
        "family": info.architecture,
        "families": [info.architecture],
        "parameter_size": "",
        "quantization_level": info.quantization,
    }


def _openai_body(body: Any, *, chat: bool) -> dict[str, Any]:
    """The OpenAI request an Ollama request means."""
    if not isinstance(body, dict):
        raise ApiError(
            400, f"the request body should be a JSON object, found {type(body).__name__}"
        )
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise ApiError(400, f"options should be an object, found {options!r:.100}", param="options")
    translated: dict[str, Any] = {
        "model": body.get("model") or "",
        "stream": body.get("stream", True),
    }
    for name, field in _OPTIONS.items():
        if options.get(name) is not None:
            translated[field] = options[name]
    predict = options.get("num_predict")
    if isinstance(predict, int) and not isinstance(predict, bool) and predict < 0:
        predict = None  # -1: as long as it takes (the engine's own limit); -2: fill the context
    if predict is not None:
        translated["max_tokens"] = predict
    form = body.get("format")
    if form == "json":
        translated["response_format"] = {"type": "json_object"}
    elif isinstance(form, dict):
        translated["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "format", "schema": form},
        }
    elif form not in (None, ""):
        raise ApiError(
            400, f'format should be "json" or a JSON schema, found {form!r:.100}', param="format"
        )
    if chat:
        translated["messages"] = _openai_messages(body.get("messages") or [])
        if body.get("tools"):
            translated["tools"] = body["tools"]
    return translated


def _openai_messages(messages: Any) -> Any:
    """Ollama's messages in OpenAI's shape: tool calls get ids (Ollama's have none, and their
    arguments are an object), and a tool result without ``tool_call_id`` answers the earliest call
    not yet answered."""
    if not isinstance(messages, list):
        return messages
    converted, pending = [], []
    for index, message in enumerate(messages):
        if isinstance(message, dict) and isinstance(message.get("tool_calls"), list):
            calls = []
            for number, call in enumerate(message["tool_calls"]):
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict):
                    arguments = function.get("arguments", {})
                    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
                    function = {"name": function.get("name"), "arguments": text}
                call_id = f"call_{index}_{number}"
                pending.append(call_id)
                calls.append({"id": call_id, "type": "function", "function": function})
            message = {**message, "tool_calls": calls}
        elif isinstance(message, dict) and message.get("role") == "tool":
            if "tool_call_id" not in message:
                message = {**message, "tool_call_id": pending.pop(0) if pending else ""}
            elif message["tool_call_id"] in pending:
                pending.remove(message["tool_call_id"])
        converted.append(message)
    return converted


def _ollama_calls(calls: list[tuple[str, ParsedCall]]) -> list[dict[str, Any]]:
    return [{"function": {"name": c.name, "arguments": json.loads(c.arguments)}} for _, c in calls]


def _timings(stats: GenerationStats, started: float) -> dict[str, Any]:
    prefill = stats.time_to_first_token
    decode = (
        stats.generated_tokens / stats.decode_tokens_per_second
        if stats.decode_tokens_per_second
        else 0.0
    )
    return {
        "total_duration": int((time.perf_counter() - started) * 1e9),
        "load_duration": 0,
        "prompt_eval_count": stats.prompt_tokens,
        "prompt_eval_duration": int(prefill * 1e9),
        "eval_count": stats.generated_tokens,
        "eval_duration": int(decode * 1e9),
    }


class OllamaApi:
    def __init__(self, core: GenerationCore) -> None:
        self.core = core

    def routes(self) -> list[Route]:
        return [
            Route("/api/version", self.version, methods=["GET"]),
            Route("/api/tags", self.tags, methods=["GET"]),
            Route("/api/show", self.show, methods=["POST"]),
            Route("/api/chat", self.chat, methods=["POST"]),
            Route("/api/generate", self.generate, methods=["POST"]),
        ]

    async def version(self, request: Request) -> Response:
        try:
            self.core.check_key(request)
        except ApiError as error:
            return _error(error)
        return JSONResponse({"version": OLLAMA_VERSION})

    async def tags(self, request: Request) -> Response:
        try:
            self.core.check_key(request)
        except ApiError as error:
            return _error(error)
        info = self.core.host.model_info
        models = []
        if info is not None:
            models.append({
                "name": info.name, "model": info.name, "modified_at": _now(), "size": 0,
                "digest": "", "details": _details(info),
            })  # fmt: skip
        return JSONResponse({"models": models})

    async def show(self, request: Request) -> Response:
        try:
            self.core.check_key(request)
            await self.core.read_json(request)  # any name: the loaded model answers
            info = self.core.loaded_model()
        except ApiError as error:
            return _error(error)
        capabilities = ["completion", "tools"] + (["insert"] if info.fill_in_middle else [])
        return JSONResponse({
            "modelfile": "", "parameters": "", "template": "", "details": _details(info),
            "model_info": {
                "general.architecture": info.architecture,
                f"{info.architecture}.context_length": info.context_length,
            },
            "capabilities": capabilities, "modified_at": _now(),
        })  # fmt: skip

    async def chat(self, request: Request) -> Response:
        return await self._answer(request, chat=True)

    async def generate(self, request: Request) -> Response:
        return await self._answer(request, chat=False)

    async def _answer(self, request: Request, *, chat: bool) -> Response:
        started = time.perf_counter()
        try:
            self.core.check_key(request)
            body = await self.core.read_json(request)
            info = self.core.loaded_model()
            if (
                not chat
                and isinstance(body, dict)
                and not body.get("prompt")
                and not body.get("suffix")
            ):
                return JSONResponse({  # an empty prompt loads the model: it is loaded
                    "model": info.name, "created_at": _now(), "response": "", "done": True,
                    "done_reason": "load",
                })  # fmt: skip
            parsed, raw = self._parse(body, chat=chat)
            self.core.log_ignored(parsed.ignored)
            if raw is not None and raw.suffix and not info.fill_in_middle:
                raise ApiError(
                    400,
                    f"suffix needs fill-in-the-middle tokens; {info.name} has none",
                    param="suffix",
                )
            opened = await self.core.open_generation(request, parsed, raw)
        except ApiError as error:
            return _error(error)
        if opened is None:
            return Response(status_code=499)
        stream, first = opened
        tools = chat and bool(parsed.config.tools) and parsed.config.tool_choice != "none"
        shape = _Shape(info.name, chat=chat, tool_format=info.tool_format if tools else None)
        if parsed.stream:
            return StreamingResponse(
                self._lines(stream, request, shape, first, started),
                media_type="application/x-ndjson",
            )
        try:
            return await self._whole(stream, request, shape, first, started)
        finally:
            self.core.host.close_request(stream)

    def _parse(self, body: Any, *, chat: bool) -> tuple[ParsedRequest, RawPrompt | None]:
        translated = _openai_body(body, chat=chat)
        if chat:
            parsed = parse_chat_request(translated)
            return parsed, None
        prompt, system, suffix = body.get("prompt") or "", body.get("system"), body.get("suffix")
        for name, value in (("prompt", prompt), ("system", system), ("suffix", suffix)):
            if not isinstance(value, str | None):
                raise ApiError(400, f"{name} should be a string, found {value!r:.100}", param=name)
        if body.get("raw") or suffix:  # no template: a raw continuation (or fill in the middle)
            translated.setdefault("max_tokens", DEFAULT_MAX_TOKENS)  # not OpenAI's 16
            parsed = parse_completion_request({**translated, "prompt": prompt or " "})
            return parsed, RawPrompt(prompt, suffix or None)
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": prompt}
        ]
        return parse_chat_request({**translated, "messages": messages}), None

    async def _whole(
        self, stream: RequestStream, request: Request, shape: _Shape, event: Any, started: float
    ) -> Response:
        pieces: list[str] = []
        while not isinstance(event, GenerationFinished):
            if event is None:
                return Response(status_code=499)
            if isinstance(event, TokenText) and not event.reasoning:
                pieces.append(event.text)
            event = await self.core.next_event(stream, request)
        if event.stats.finish_reason == "cancelled":
            return JSONResponse({"error": "the request was cancelled"}, status_code=503)
        self.core.host.served()
        text = event.text or "".join(pieces)
        calls: list[tuple[str, ParsedCall]] = []
        if shape.tool_format is not None:
            text, calls = split_calls(text, shape.tool_format)  # type: ignore[arg-type]
        return JSONResponse(shape.last(text, event.stats, started, calls, thinking=event.reasoning))

    async def _lines(
        self, stream: RequestStream, request: Request, shape: _Shape, event: Any, started: float
    ) -> AsyncIterator[str]:
        try:
            splitter = None if shape.tool_format is None else ToolCallSplitter(shape.tool_format)  # type: ignore[arg-type]
            while not isinstance(event, GenerationFinished):
                if event is None:
                    return
                if isinstance(event, TokenText) and event.text and event.reasoning:
                    yield shape.line(shape.piece("", thinking=event.text))
                elif isinstance(event, TokenText) and event.text:
                    shown = event.text if splitter is None else splitter.add(event.text)
                    if shown:
                        yield shape.line(shape.piece(shown))
                event = await self.core.next_event(stream, request)
            if event.stats.finish_reason == "cancelled":
                yield shape.line({"error": "the request was cancelled"})
                return
            rest, calls = splitter.finish() if splitter is not None else ("", [])
            yield shape.line(shape.last(rest, event.stats, started, calls))
            self.core.host.served()
        finally:
            self.core.host.close_request(stream)


class _Shape:
    """Ollama's response objects for /api/chat or /api/generate."""

    def __init__(self, model: str, *, chat: bool, tool_format: str | None) -> None:
        self.model, self.chat, self.tool_format = model, chat, tool_format

    def piece(
        self,
        text: str,
        calls: list[tuple[str, ParsedCall]] | None = None,
        *,
        thinking: str = "",
    ) -> dict[str, Any]:
        """A piece of the answer; the model's reasoning goes in ``thinking`` (Ollama's field)."""
        head = {"model": self.model, "created_at": _now()}
        if self.chat:
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if thinking:
                message["thinking"] = thinking
            if calls:
                message["tool_calls"] = _ollama_calls(calls)
            return {**head, "message": message, "done": False}
        return {
            **head,
            "response": text,
            **({"thinking": thinking} if thinking else {}),
            "done": False,
        }

    def last(
        self,
        text: str,
        stats: GenerationStats,
        started: float,
        calls: list[tuple[str, ParsedCall]],
        *,
        thinking: str = "",
    ) -> dict[str, Any]:
        reason = _DONE_REASONS.get(stats.finish_reason, "stop")
        return {
            **self.piece(text, calls, thinking=thinking),
            "done": True,
            "done_reason": reason,
            **_timings(stats, started),
        }

    @staticmethod
    def line(payload: dict[str, Any]) -> str:
        return json.dumps(payload, ensure_ascii=False) + "\n"
