"""Tool calls in the model's own format: which one its chat template speaks, the tools and a
history of calls for a template that speaks none, the calls parsed back out of an answer, and the
grammar that makes a forced call always parse.

The formats, by the markup their templates write:
- ``mistral``: ``[TOOL_CALLS] [{"name": ..., "arguments": {...}}, ...]`` (a control token, then a
  JSON list; v3 tokenizers, ``[AVAILABLE_TOOLS]`` in the prompt);
- ``hermes``: ``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`` per call (Qwen 2.5,
  Hermes, SmolLM3);
- ``llama3``: ``{"name": ..., "parameters": {...}}`` (Llama 3.1-3.3's JSON tool calling);
- ``generic``: a template with no tools (SmolLM2): the tools are described in the system prompt
  and the model is asked for Hermes' markup, which is plain text; its history is written the same way.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from engine.messages import ChatMessage

ToolFormat = Literal["mistral", "hermes", "llama3", "generic"]
MISTRAL_CALLS_TOKEN = "[TOOL_CALLS]"
HERMES_OPEN, HERMES_CLOSE = "<tool_call>", "</tool_call>"
# Compact JSON in a forced call: a small model given free whitespace spends its tokens on it.
_COMPACT = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
# Calls in one forced answer with parallel_tool_calls: a small model, free to go on, repeats its
# call until max_tokens; four is room for real parallel calls and ends the loop.
MAX_PARALLEL_CALLS = 4
GENERIC_TOOLS_PROMPT = (
    "You may call functions to answer. The functions, as JSON:\n{tools}\n\n"
    "To call a function, answer with nothing but\n"
    '<tool_call>\n{{"name": "<function name>", "arguments": {{<arguments as JSON>}}}}\n'
    "</tool_call>\n(one such block per call). Otherwise answer normally."
)


@dataclass(frozen=True)
class ParsedCall:
    name: str
    arguments: str  # JSON text of the arguments object


def new_call_id() -> str:
    return "call_" + secrets.token_hex(12)


def detect_format(template: str) -> ToolFormat:
    """The tool-call format ``template`` speaks, by its markup; ``generic`` when it has none."""
    if MISTRAL_CALLS_TOKEN in template or "[AVAILABLE_TOOLS]" in template:
        return "mistral"
    if HERMES_OPEN in template:
        return "hermes"
    if "<|python_tag|>" in template or ("ipython" in template and "parameters" in template):
        return "llama3"
    return "generic"


def _functions(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [tool.get("function", tool) for tool in tools]


def has_tool_history(messages: tuple[ChatMessage, ...] | list[ChatMessage]) -> bool:
    return any(m.role == "tool" or m.tool_calls for m in messages)


def history_as_text(
    messages: tuple[ChatMessage, ...] | list[ChatMessage],
) -> list[ChatMessage]:
    """Calls and their results as plain messages in Hermes' markup, for a template that cannot
    render them: an assistant's calls as ``<tool_call>`` blocks after its text, consecutive tool
    results as one user message of ``<tool_response>`` blocks."""
    converted: list[ChatMessage] = []
    for message in messages:
        if message.role == "tool":
            block = f"<tool_response>\n{message.content}\n</tool_response>"
            if (
                converted
                and converted[-1].role == "user"
                and converted[-1].content.startswith("<tool_response>")
            ):
                converted[-1] = ChatMessage("user", f"{converted[-1].content}\n{block}")
            else:
                converted.append(ChatMessage("user", block))
        elif message.tool_calls:
            blocks = "\n".join(
                f'{HERMES_OPEN}\n{{"name": {json.dumps(call.name)}, "arguments": '
                f"{call.arguments}}}\n{HERMES_CLOSE}"
                for call in message.tool_calls
            )
            text = f"{message.content}\n{blocks}" if message.content else blocks
            converted.append(ChatMessage("assistant", text))
        else:
            converted.append(message)
    return converted


def generic_messages(
    messages: tuple[ChatMessage, ...] | list[ChatMessage], tools: list[dict[str, Any]]
) -> list[ChatMessage]:
    """The conversation for a template with no tools: the tools in the system prompt (after the
    client's own, if any), the history in Hermes' markup."""
    described = "\n".join(json.dumps(function) for function in _functions(tools))
    prompt = GENERIC_TOOLS_PROMPT.format(tools=described)
    converted = history_as_text(messages)
    if converted and converted[0].role == "system":
        return [ChatMessage("system", f"{converted[0].content}\n\n{prompt}"), *converted[1:]]
    return [ChatMessage("system", prompt), *converted]


def template_payload(message: ChatMessage) -> dict[str, Any]:
    """A message as chat templates expect it (transformers' shape: arguments as an object)."""
    payload: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        payload["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": _arguments_object(call.arguments)},
            }
            for call in message.tool_calls
        ]
    if message.role == "tool":
        payload["tool_call_id"] = message.tool_call_id
    return payload


def _arguments_object(arguments: str) -> Any:
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments


# --- parsing an answer ---------------------------------------------------------------------------


def _call(item: Any, argument_keys: tuple[str, ...]) -> ParsedCall | None:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        return None
    for key in argument_keys:
        if key in item:
            value = item[key]
            if isinstance(value, str):  # some models quote the arguments object
                try:
                    value = json.loads(value)
                except ValueError:
                    return None
            if not isinstance(value, dict):
                return None
            return ParsedCall(item["name"], json.dumps(value, ensure_ascii=False))
    return ParsedCall(item["name"], "{}")


def parse_tool_calls(text: str, form: ToolFormat) -> tuple[str, list[ParsedCall]]:
    """(the answer's text outside the calls, the calls) as ``form`` writes them; an answer whose
    markup does not parse is all text and no calls (never half a call)."""
    stripped = text.strip()
    if form in ("hermes", "generic"):
        start = text.find(HERMES_OPEN)
        if start < 0:
            return text, []
        pattern = re.compile(
            re.escape(HERMES_OPEN) + r"\s*(.*?)\s*(?:" + re.escape(HERMES_CLOSE) + r"|$)", re.S
        )
        calls = []
        for match in pattern.finditer(text, start):
            closed = match.group(0).endswith(HERMES_CLOSE)
            try:
                call = _call(json.loads(match.group(1)), ("arguments", "parameters"))
            except ValueError:
                call = None
            if call is None:
                if closed or not calls:
                    return text, []
                break  # the answer was cut inside its last call: the whole ones stand
            calls.append(call)
        return text[:start].strip(), calls
    if form == "mistral":
        body = stripped.removeprefix(MISTRAL_CALLS_TOKEN).strip()
        if not body.startswith("["):
            return text, []
        try:
            items = json.loads(body)
        except ValueError:
            return text, []
        calls = [_call(item, ("arguments",)) for item in items] if isinstance(items, list) else []
        if not calls or any(call is None for call in calls):
            return text, []
        return "", [call for call in calls if call is not None]
    body = stripped.removeprefix("<|python_tag|>").strip()
    if not body.startswith("{"):
        return text, []
    try:
        call = _call(json.loads(body), ("parameters", "arguments"))
    except ValueError:
        return text, []
    return ("", [call]) if call is not None else (text, [])


def call_opening(form: ToolFormat) -> str:
    """What an answer that is a call starts with, as the detokenizer shows it (control tokens are
    not shown: Mistral's calls start with their JSON list)."""
    return {"mistral": "[", "llama3": "{"}.get(form, HERMES_OPEN)


def starts_a_call(text: str, form: ToolFormat) -> bool | None:
    """Whether an answer beginning with ``text`` is a call: None while it cannot be told yet."""
    stripped = text.lstrip()
    opening = call_opening(form)
    if stripped.startswith(opening):
        return True
    if not stripped or opening.startswith(stripped):
        return None
    return False


# --- forcing a call ------------------------------------------------------------------------------


def _call_schema(function: dict[str, Any], arguments_key: str) -> dict[str, Any]:
    parameters = function.get("parameters") or {"type": "object"}
    return {
        "type": "object",
        "properties": {"name": {"const": function["name"]}, arguments_key: parameters},
        "required": ["name", arguments_key],
        "additionalProperties": False,
    }


def forced_call_grammar(
    form: ToolFormat,
    tools: list[dict[str, Any]],
    *,
    name: str | None,
    parallel: bool,
    token_id: Callable[[str], int | None],
) -> str:
    """The llguidance (Lark) grammar of an answer that is one call (several with ``parallel``) of
    the function ``name`` (any of ``tools`` when None), in ``form``'s markup, so the call always
    parses and its arguments always match the function's schema. ``token_id`` looks up a control
    token (Mistral's ``[TOOL_CALLS]``)."""
    functions = [f for f in _functions(tools) if name is None or f.get("name") == name]
    if not functions:
        raise ValueError(f"no tool named {name!r}: expected one of the request's tools")
    key = "parameters" if form == "llama3" else "arguments"
    options = [_call_schema(function, key) for function in functions]
    call = {"anyOf": options} if len(options) > 1 else options[0]
    if form == "mistral":
        calls = {
            "type": "array",
            "items": call,
            "minItems": 1,
            "maxItems": MAX_PARALLEL_CALLS if parallel else 1,
        }
        opening = token_id(MISTRAL_CALLS_TOKEN)
        head = f"<[{opening}]> " if opening is not None else ""
        return f"start: {head}calls\ncalls: %json {json.dumps({**calls, 'x-guidance': _COMPACT})}"
    schema = json.dumps({**call, "x-guidance": _COMPACT})
    if form == "llama3":
        return f"start: call\ncall: %json {schema}"
    block = f'block: "{HERMES_OPEN}\\n" call "\\n{HERMES_CLOSE}"'
    more = ' ("\\n" block)?' * (MAX_PARALLEL_CALLS - 1) if parallel else ""
    start = f"start: block{more}"
    return f"{start}\n{block}\ncall: %json {schema}"
