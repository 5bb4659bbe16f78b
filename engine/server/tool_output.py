"""An answer's tool calls in OpenAI's shapes: held back whole while streaming, then sent as
``delta.tool_calls`` (the name first, the arguments in pieces, as OpenAI streams them), or as the
message's ``tool_calls``. The model's own call format is parsed by ``engine.text.tool_calls``."""

from __future__ import annotations

from typing import Any

from engine.text.tool_calls import (
    ParsedCall,
    ToolFormat,
    new_call_id,
    parse_tool_calls,
    starts_a_call,
)

ARGUMENT_PIECE_CHARACTERS = 12


class ToolCallSplitter:
    """Passes an answer's text on until it turns out to start a call; from then on holds it back,
    and ``finish`` parses it (text that was no call after all is given back as text)."""

    def __init__(self, form: ToolFormat) -> None:
        self.form = form
        self.held = ""
        self.is_call: bool | None = None

    def add(self, text: str) -> str:
        """The text to show now ("" while held)."""
        if self.is_call is False:
            return text
        self.held += text
        if self.is_call is None:
            self.is_call = starts_a_call(self.held, self.form)
            if self.is_call is False:
                shown, self.held = self.held, ""
                return shown
        return ""

    def finish(self) -> tuple[str, list[tuple[str, ParsedCall]]]:
        """(text still to show, the calls with new ids)."""
        return split_calls(self.held, self.form) if self.held else ("", [])


def split_calls(text: str, form: ToolFormat) -> tuple[str, list[tuple[str, ParsedCall]]]:
    content, calls = parse_tool_calls(text, form)
    if not calls:
        return text, []
    return content, [(new_call_id(), call) for call in calls]


def message_calls(calls: list[tuple[str, ParsedCall]]) -> list[dict[str, Any]]:
    return [
        {"id": call_id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for call_id, c in calls
    ]


def call_deltas(calls: list[tuple[str, ParsedCall]]) -> list[dict[str, Any]]:
    """The ``delta`` of each streamed chunk: per call, its id, type and name with empty arguments,
    then the arguments in pieces."""
    deltas: list[dict[str, Any]] = []
    for index, (call_id, call) in enumerate(calls):
        head = {"name": call.name, "arguments": ""}
        deltas.append(
            {"tool_calls": [{"index": index, "id": call_id, "type": "function", "function": head}]}
        )
        text = call.arguments
        for start in range(0, len(text), ARGUMENT_PIECE_CHARACTERS):
            piece = text[start : start + ARGUMENT_PIECE_CHARACTERS]
            deltas.append({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    return deltas
