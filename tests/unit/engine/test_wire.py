"""The engine pipe's codec: every dataclass of engine.messages survives a round trip, found by
itself (a type added to messages.py is covered without touching this file), and bad lines are
refused with a clear error."""

from __future__ import annotations

import dataclasses
import types
import typing

import pytest

from engine import messages, wire

SAMPLE_TEXT = 'é 中文 "quoted" \\ back\nslash and a newline 🙂'


def _sample(annotation: typing.Any) -> typing.Any:
    """A value of ``annotation`` that is not a default (so a dropped field would show)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return args[-1]
    if origin in (typing.Union, types.UnionType):
        return _sample(next(a for a in args if a is not type(None)))
    if origin is tuple:
        return (_sample(args[0]), _sample(args[0]))
    if origin is dict:
        return {"key": _sample(args[1])}
    if dataclasses.is_dataclass(annotation):
        return _instance(annotation)
    return {int: 7, float: 2.5, str: SAMPLE_TEXT, bool: True}[annotation]


def _instance(kind: type) -> typing.Any:
    hints = typing.get_type_hints(kind, vars(messages))
    return kind(**{f.name: _sample(hints[f.name]) for f in dataclasses.fields(kind)})


MESSAGE_TYPES = sorted(wire.MESSAGE_TYPES.items())


def test_the_codec_knows_every_request_and_event_type() -> None:
    names = set(wire.MESSAGE_TYPES)
    for union in (messages.Request, messages.Event):
        assert {t.__name__ for t in typing.get_args(union)} <= names
    assert {"ChatMessage", "GenerationConfig", "ModelInfo", "GenerationStats"} <= names


@pytest.mark.parametrize(("name", "kind"), MESSAGE_TYPES, ids=[n for n, _ in MESSAGE_TYPES])
def test_every_message_type_survives_a_round_trip(name: str, kind: type) -> None:
    message = _instance(kind)
    line = wire.encode(message)
    assert line.endswith(b"\n") and line.count(b"\n") == 1  # one line, whatever the text holds
    assert wire.decode(line) == message
    assert type(wire.decode(line)) is kind


def test_defaults_none_and_interrupted_survive() -> None:
    stats = _instance(messages.GenerationStats)
    finished = messages.GenerationFinished(
        3, "", dataclasses.replace(stats, finish_reason="interrupted")
    )
    assert wire.decode(wire.encode(finished)) == finished
    error = messages.EngineError(None, "no request")
    assert wire.decode(wire.encode(error)) == error
    generate = messages.Generate(1, "c", (messages.ChatMessage("user", "hi"),))
    decoded = wire.decode(wire.encode(generate))
    assert decoded == generate and isinstance(decoded.messages, tuple)


def test_bad_lines_are_refused_with_what_was_expected() -> None:
    with pytest.raises(wire.WireError, match="expected a JSON message line"):
        wire.decode(b"print('hello')\n")
    with pytest.raises(wire.WireError, match="unknown message type 'Popen'"):
        wire.decode(b'{"type": "Popen", "fields": {"args": "rm -rf /"}}')
    with pytest.raises(wire.WireError, match="fields do not match"):
        wire.decode(b'{"type": "Cancel", "fields": {"nonsense": 1}}')
    with pytest.raises(wire.WireError, match=r"expected a dataclass of engine\.messages"):
        wire.encode(dataclasses.make_dataclass("Foreign", ["x"])(1))
