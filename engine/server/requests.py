"""OpenAI request bodies checked and turned into the engine's messages and sampler settings.

Lenient where clients expect it, strict where it matters. A field this server knows is either
mapped (sampling: ``max_tokens``, ``temperature``, ``top_p``, ``seed``, ``stop``, penalties,
``logit_bias``, our extras ``top_k``, ``min_p``, ``repetition_penalty``; ``n``, ``logprobs``,
``response_format``, ``tools`` and ``tool_choice``, ``stream_options.include_usage``), accepted
because it changes nothing for one local model (``user``, ``store``, ``best_of`` = 1, ...), or,
with a value it cannot honour or a bad one, refused with a 400 that names it. A field it does not
know (``cache_prompt``, ``reasoning_effort``: every server has its extras) is ignored and listed in
``ParsedRequest.ignored`` for the caller to log. Any ``model`` name is served by the loaded model.
Nothing here imports Starlette: it is plain data in, plain data out.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from engine.messages import (
    GENERATION_RANGES,
    MAX_TOP_LOGPROBS,
    ChatMessage,
    GenerationConfig,
    RawPrompt,
    ToolCall,
)

DEFAULT_MAX_TOKENS = 512
MAX_LOGIT_BIASES = 300  # OpenAI's limit
MAX_CHOICES = 8  # n: answers run one after the other, each as long as one answer

MAX_JSON_DEPTH = 64  # a JSON schema nests deepest of what clients send; none nears this

# Fields accepted and ignored: they do not change what one local model answers.
_IGNORED = {
    "model",
    "stream",
    "stream_options",
    "user",
    "metadata",
    "store",
    "service_tier",
    "modalities",
}
# Fields accepted only with the value that means "nothing special" (OpenAI's defaults).
_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "best_of": (1, None),
    "functions": (None,),
    "function_call": (None, "none"),
}
_SAMPLER_FIELDS = {
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "seed",
    "stop",
    "top_k",
    "min_p",
    "repetition_penalty",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
}
_ROLES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
}


class ApiError(Exception):
    """An error answered as OpenAI's error object: ``{"error": {"message", "type", "param",
    "code"}}`` with ``status``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = (
            status,
            message,
            type_,
            param,
            code,
        )

    def body(self) -> dict[str, Any]:
        error = {"message": self.message, "type": self.type, "param": self.param}
        return {"error": {**error, "code": self.code}}


@dataclass(frozen=True)
class ParsedRequest:
    model: str  # as the client named it ("" when it did not): the loaded model serves any name
    messages: tuple[ChatMessage, ...]
    config: GenerationConfig
    stream: bool
    include_usage: bool
    ignored: tuple[str, ...] = ()  # fields this server does not know, ignored
    raw_prompt: RawPrompt | None = None  # a legacy completion: continue this (no template)
    n: int = 1  # answers asked for (each a generation of its own)
    echo: bool = False  # a legacy completion's answer starts with its prompt


_SURROGATE = re.compile("[\ud800-\udfff]")


def _path(parts: tuple[str | int, ...]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "body"


def check_json_value(body: Any, *, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Refuse what parsed as JSON but no text field can hold: nesting deeper than ``max_depth``
    and lone UTF-16 surrogates (``"\\ud800"`` decodes to a str that is not text: the tokenizer
    and any UTF-8 encoder fail on it). Iterative, so a deep body cannot exhaust the stack."""
    pending: list[tuple[Any, tuple[str | int, ...]]] = [(body, ())]
    while pending:
        value, where = pending.pop()
        if len(where) > max_depth:
            raise ApiError(
                400,
                f"the request body nests deeper than {max_depth} levels (at {_path(where[:3])}...)",
                param=_path(where[:1]),
            )
        if isinstance(value, str):
            if _SURROGATE.search(value):
                raise ApiError(
                    400,
                    f"{_path(where)} holds a lone UTF-16 surrogate (such as \\ud800): "
                    "expected text",
                    param=_path(where),
                )
        elif isinstance(value, dict):
            for key, item in value.items():
                if _SURROGATE.search(key):
                    raise ApiError(
                        400,
                        f"a key in {_path(where)} holds a lone UTF-16 surrogate",
                        param=_path(where),
                    )
                pending.append((item, (*where, key)))
        elif isinstance(value, list):
            pending.extend((item, (*where, index)) for index, item in enumerate(value))


def _number(body: dict, name: str, default: float) -> float:
    """A number's type here; its range is ``GENERATION_RANGES``', checked once in ``_config``."""
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ApiError(400, f"{name} should be a number, found {value!r}", param=name)
    return float(value)


def _integer(body: dict, name: str, low: int, high: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"{name} should be an integer, found {value!r}", param=name)
    if value < low or (high is not None and value > high):
        limit = f"at least {low}" if high is None else f"between {low} and {high}"
        raise ApiError(400, f"{name} should be {limit}, found {value}", param=name)
    return value


def _check_fields(body: dict, known: set[str]) -> tuple[str, ...]:
    """The names of the fields this server does not know (ignored); a known field with a value
    it cannot honour is a 400 naming it."""
    unknown = []
    for name, value in body.items():
        if name in _IGNORED or name in _SAMPLER_FIELDS or name in known:
            continue
        if name in _NEUTRAL:
            if value in _NEUTRAL[name] or value == []:
                continue
            raise ApiError(
                400, f"{name}={value!r} is not supported by this server", param=name, code=None
            )
        unknown.append(name)
    return tuple(unknown)


def _stop_strings(body: dict) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    if isinstance(stop, str):
        return (stop,)
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return tuple(stop)  # how many and how long: GenerationConfig.problems(), in _config
    raise ApiError(
        400, f"stop should be a string or a list of strings, found {stop!r}", param="stop"
    )


# GenerationConfig's fields by the name a client sends them under.
_PARAMS = {"max_new_tokens": "max_tokens", "stop_strings": "stop"}


def param_for(field: str) -> str:
    """The request field a client knows for the engine's ``field`` (``EngineError.field``)."""
    return _PARAMS.get(field, field)


def _logit_bias(body: dict) -> tuple[tuple[int, float], ...]:
    """OpenAI's ``{"token id": bias}``; the range of each bias is the engine's rule."""
    value = body.get("logit_bias")
    if value is None:
        return ()
    pairs = []
    if isinstance(value, dict) and len(value) <= MAX_LOGIT_BIASES:
        for key, bias in value.items():
            if not key.isdigit() or isinstance(bias, bool) or not isinstance(bias, int | float):
                break
            pairs.append((int(key), float(bias)))
        else:
            return tuple(pairs)
    raise ApiError(
        400,
        f"logit_bias should map up to {MAX_LOGIT_BIASES} token ids (as strings) to numbers from "
        f"-100 to 100, found {value!r:.100}",
        param="logit_bias",
    )


def _response_schema(body: dict) -> str | None:
    """``response_format`` as the JSON schema the answer is constrained to (JSON text): None for
    ``text``, any JSON object for ``json_object``, the given schema for ``json_schema`` (strict or
    not: the answer always matches it). A schema the grammar engine cannot enforce is a 400 naming
    the feature (llguidance's message: ``Unimplemented keys: ["dependentRequired"]``)."""
    from engine.generation.grammar import ANY_JSON_OBJECT, GrammarError, json_schema_grammar

    value = body.get("response_format")
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return json.dumps(ANY_JSON_OBJECT)
    if kind != "json_schema":
        raise ApiError(
            400,
            f"response_format should be {{'type': 'text' | 'json_object' | 'json_schema', ...}}, "
            f"found {value!r:.200}",
            param="response_format",
        )
    where = "response_format.json_schema"
    wrapper = value.get("json_schema")
    if not isinstance(wrapper, dict):
        raise ApiError(
            400, f"{where} should be an object with a schema, found {wrapper!r:.200}", param=where
        )
    schema = wrapper.get("schema", ANY_JSON_OBJECT)
    if not isinstance(schema, dict | bool):
        raise ApiError(
            400, f"{where}.schema should be a JSON schema, found {schema!r:.200}", param=where
        )
    try:
        json_schema_grammar(json.dumps(schema))
    except GrammarError as error:
        raise ApiError(400, f"{where}.schema: {error}", param=f"{where}.schema") from error
    return json.dumps(schema)


def _config(body: dict) -> GenerationConfig:
    """The sampler settings of ``body``: types checked here, ranges and stop strings by the
    engine's one rule (``GenerationConfig.problems()``), as 400s that name the client's field."""
    limits = GENERATION_RANGES
    most_tokens = int(limits["max_new_tokens"].maximum)
    max_tokens = _integer(body, "max_completion_tokens", 1, most_tokens)
    if max_tokens is None:
        max_tokens = _integer(body, "max_tokens", 1, most_tokens)
    seed = _integer(body, "seed", -(2**63))
    config = GenerationConfig(
        max_new_tokens=max_tokens or DEFAULT_MAX_TOKENS,
        temperature=_number(body, "temperature", 1.0),
        top_p=_number(body, "top_p", 1.0),
        top_k=_integer(body, "top_k", 0) or 0,
        min_p=_number(body, "min_p", 0.0),
        repetition_penalty=_number(body, "repetition_penalty", 1.0),
        presence_penalty=_number(body, "presence_penalty", 0.0),
        frequency_penalty=_number(body, "frequency_penalty", 0.0),
        logit_bias=_logit_bias(body),
        # any 64-bit seed, folded into the seeds the engine takes
        seed=None if seed is None else seed % (int(limits["seed"].maximum) + 1),
        stop_strings=_stop_strings(body),
        context_policy="stop",  # a client manages its own history: never drop its turns silently
        json_schema=_response_schema(body),
    )
    problems = config.problems()
    if problems:
        field, text = next(iter(problems.items()))
        param = param_for(field)
        raise ApiError(400, f"{param} {text}", param=param)
    return config


def _top_logprobs(body: dict, *, chat: bool) -> int | None:
    """Chat: ``logprobs`` true, ``top_logprobs`` 0-20 alternatives; legacy: ``logprobs`` 0-5."""
    if not chat:
        return _integer(body, "logprobs", 0, 5)
    wanted = body.get("logprobs")
    if not isinstance(wanted, bool | None):
        raise ApiError(400, f"logprobs should be true or false, found {wanted!r}", param="logprobs")
    top = _integer(body, "top_logprobs", 0, MAX_TOP_LOGPROBS)
    if top and not wanted:
        raise ApiError(400, "top_logprobs needs logprobs: true", param="top_logprobs")
    return (top or 0) if wanted else None


def _choices(body: dict) -> int:
    return _integer(body, "n", 1, MAX_CHOICES) or 1


def _common(body: Any) -> tuple[str, bool, bool]:
    if not isinstance(body, dict):
        raise ApiError(
            400, f"the request body should be a JSON object, found {type(body).__name__}"
        )
    model = body.get("model")
    if model is None:
        model = ""
    if not isinstance(model, str):
        raise ApiError(400, f"model should be a string, found {model!r}", param="model")
    stream = body.get("stream", False)
    if not isinstance(stream, bool | None):
        raise ApiError(400, f"stream should be true or false, found {stream!r}", param="stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict) or set(options) - {"include_usage"}:
        raise ApiError(
            400,
            f"stream_options should be {{'include_usage': bool}}, found {options!r}",
            param="stream_options",
        )
    return model, bool(stream), bool(options.get("include_usage", False))


def _content(value: Any, index: int) -> str:
    """A message's content: a string, or a list of text parts (images and audio are refused)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        texts = []
        for part in value:
            if not isinstance(part, dict) or part.get("type") != "text":
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise ApiError(
                    400,
                    f"messages[{index}].content: only text parts are supported, found {kind!r}",
                    param=f"messages[{index}].content",
                )
            texts.append(str(part.get("text", "")))
        return "".join(texts)
    raise ApiError(
        400,
        f"messages[{index}].content should be a string or text parts, found {value!r}",
        param=f"messages[{index}].content",
    )


def _tool_calls(value: Any, index: int) -> tuple[ToolCall, ...]:
    """An assistant message's ``tool_calls``: each ``{id, type: function, function: {name,
    arguments}}``, arguments as JSON text (OpenAI's) or an object."""
    where = f"messages[{index}].tool_calls"
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ApiError(400, f"{where} should be a list, found {value!r:.100}", param=where)
    calls = []
    for number, item in enumerate(value):
        function = item.get("function") if isinstance(item, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str) or not name:
            raise ApiError(
                400,
                f"{where}[{number}] should be {{'id', 'type': 'function', 'function': {{'name', "
                f"'arguments'}}}}, found {item!r:.100}",
                param=f"{where}[{number}]",
            )
        arguments = function.get("arguments", "{}")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments, ensure_ascii=False)
        call_id = item.get("id") if isinstance(item.get("id"), str) else f"call_{index}_{number}"
        calls.append(ToolCall(call_id, name, arguments))
    return tuple(calls)


def _message(item: Any, index: int) -> ChatMessage:
    if not isinstance(item, dict):
        raise ApiError(400, f"messages[{index}] should be an object", param="messages")
    role = _ROLES.get(item.get("role"))  # type: ignore[arg-type]
    if role is None:
        raise ApiError(
            400,
            f"messages[{index}].role should be system, developer, user, assistant or tool, "
            f"found {item.get('role')!r}",
            param=f"messages[{index}].role",
        )
    if item.get("function_call"):
        raise ApiError(
            400,
            f"messages[{index}].function_call: the legacy function call is not supported; "
            "send tool_calls",
            param=f"messages[{index}].function_call",
        )
    calls = _tool_calls(item.get("tool_calls"), index) if role == "assistant" else ()
    content = item.get("content")
    text = "" if content is None and (calls or role == "assistant") else _content(content, index)
    call_id = ""
    if role == "tool":
        call_id = item.get("tool_call_id")
        if not isinstance(call_id, str):
            raise ApiError(
                400,
                f"messages[{index}].tool_call_id should be the id of the call this answers, "
                f"found {call_id!r:.100}",
                param=f"messages[{index}].tool_call_id",
            )
    return ChatMessage(role, text, calls, call_id)  # type: ignore[arg-type]


def _tools(body: dict) -> dict[str, Any]:
    """``tools``, ``tool_choice`` and ``parallel_tool_calls`` as GenerationConfig's fields; each
    function's parameters must be a schema the grammar engine can enforce (a forced call is
    decoded under it), else a 400 naming the tool and the feature."""
    from engine.generation.grammar import GrammarError, json_schema_grammar

    tools = body.get("tools") or None
    choice = body.get("tool_choice")
    parallel = body.get("parallel_tool_calls")
    if not isinstance(parallel, bool | None):
        raise ApiError(
            400,
            f"parallel_tool_calls should be true or false, found {parallel!r}",
            param="parallel_tool_calls",
        )
    if tools is not None and not isinstance(tools, list):
        raise ApiError(400, f"tools should be a list, found {tools!r:.100}", param="tools")
    names = []
    for index, tool in enumerate(tools or []):
        where = f"tools[{index}]"
        function = tool.get("function") if isinstance(tool, dict) else None
        if (
            not isinstance(tool, dict)
            or tool.get("type", "function") != "function"
            or not (isinstance(function, dict) and isinstance(function.get("name"), str))
        ):
            raise ApiError(
                400,
                f"{where} should be {{'type': 'function', 'function': {{'name', 'description', "
                f"'parameters'}}}}, found {tool!r:.100}",
                param=where,
            )
        parameters = function.get("parameters")
        if parameters is not None:
            if not isinstance(parameters, dict):
                raise ApiError(
                    400,
                    f"{where}.function.parameters should be a JSON schema, found "
                    f"{parameters!r:.100}",
                    param=f"{where}.function.parameters",
                )
            try:
                json_schema_grammar(json.dumps(parameters))
            except GrammarError as error:
                raise ApiError(
                    400,
                    f"{where}.function.parameters ({function['name']}): {error}",
                    param=f"{where}.function.parameters",
                ) from error
        names.append(function["name"])
    if choice is None or choice in ("auto", "none", "required"):
        mode = choice or "auto"
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        mode = choice["function"].get("name")
        if mode not in names:
            raise ApiError(
                400,
                f"tool_choice names the function {mode!r}, which is not among the tools "
                f"({', '.join(names) or 'none'})",
                param="tool_choice",
            )
    else:
        raise ApiError(
            400,
            "tool_choice should be 'auto', 'none', 'required' or {'type': 'function', "
            f"'function': {{'name': ...}}}}, found {choice!r:.100}",
            param="tool_choice",
        )
    if mode == "required" and not names:
        raise ApiError(400, "tool_choice is 'required' but there are no tools", param="tool_choice")
    return {
        "tools": json.dumps(tools, ensure_ascii=False) if tools else None,
        "tool_choice": mode,
        "parallel_tool_calls": True if parallel is None else parallel,
    }


def parse_chat_request(body: Any) -> ParsedRequest:
    model, stream, include_usage = _common(body)
    ignored = _check_fields(body, {"messages", "tools", "tool_choice", "parallel_tool_calls", "n"})
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise ApiError(400, "messages should be a non-empty list", param="messages")
    messages = tuple(_message(item, index) for index, item in enumerate(raw))
    if messages[-1].role not in ("user", "tool"):
        raise ApiError(
            400, "the last message should be the user's (or a tool's result)", param="messages"
        )
    config = dataclasses.replace(
        _config(body), **_tools(body), top_logprobs=_top_logprobs(body, chat=True)
    )
    return ParsedRequest(model, messages, config, stream, include_usage, ignored, n=_choices(body))


def parse_completion_request(body: Any) -> ParsedRequest:
    """A legacy completion: a raw continuation of ``prompt`` (no chat template), the text between
    it and ``suffix`` when one is given (fill in the middle), ``echo`` to answer with the prompt
    first; ``max_tokens`` defaults to 16, as OpenAI's."""
    model, stream, include_usage = _common(body)
    ignored = _check_fields(body, {"prompt", "suffix", "echo", "n", "logprobs"})
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str) or not prompt:
        raise ApiError(
            400, f"prompt should be one non-empty string, found {prompt!r}", param="prompt"
        )
    suffix = body.get("suffix")
    if suffix is not None and not isinstance(suffix, str):
        raise ApiError(400, f"suffix should be a string, found {suffix!r}", param="suffix")
    echo = body.get("echo")
    if not isinstance(echo, bool | None):
        raise ApiError(400, f"echo should be true or false, found {echo!r}", param="echo")
    config = dataclasses.replace(_config(body), top_logprobs=_top_logprobs(body, chat=False))
    if body.get("max_tokens") is None and body.get("max_completion_tokens") is None:
        config = GenerationConfig(**{**config.__dict__, "max_new_tokens": 16})  # OpenAI's default
    return ParsedRequest(
        model,
        (),
        config,
        stream,
        include_usage,
        ignored,
        raw_prompt=RawPrompt(prompt, suffix),
        echo=bool(echo),
        n=_choices(body),
    )
