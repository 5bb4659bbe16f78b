"""The engine pipe's wire format: every dataclass of ``engine.messages`` as one JSON line.

The app and the engine process exchange exactly the request and event dataclasses of
``engine/messages.py``: this module turns them into bytes and back, by type name and field names,
so a type added there needs no change here. A dataclass is written as
``{"type": "TokenText", "fields": {...}}`` (nested dataclasses the same way); JSON arrays come back
as tuples, because the messages are frozen dataclasses that hold tuples. No pickle: a line from the
other side can only ever build one of these dataclasses, never run code. Versionless: both ends are
always the same executable.

One line per message (``json.dumps`` escapes newlines inside strings), so a reader needs nothing
but ``readline``. Cost per token event, encode and decode together: about 0.04 ms
(``benchmarks/engine_ipc.py``; the goal for the whole trip through the pipe is 0.2 ms).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from engine import messages

TYPE_KEY = "type"
FIELDS_KEY = "fields"


class WireError(ValueError):
    """A line from the pipe is not one of our messages: says what was expected and what was found."""


def _message_types() -> dict[str, type]:
    return {
        name: value
        for name, value in vars(messages).items()
        if isinstance(value, type)
        and dataclasses.is_dataclass(value)
        and value.__module__ == messages.__name__
    }


MESSAGE_TYPES: dict[str, type] = _message_types()


def _to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        name = type(value).__name__
        if MESSAGE_TYPES.get(name) is not type(value):
            raise WireError(f"cannot send {name}: expected a dataclass of engine.messages")
        fields = {f.name: _to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {TYPE_KEY: name, FIELDS_KEY: fields}
    if isinstance(value, (tuple, list)):
        return [_to_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _to_plain(item) for key, item in value.items()}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise WireError(
        f"cannot send a {type(value).__name__}: expected str, int, float, bool, None, tuples, "
        "dicts or engine.messages dataclasses"
    )


def _from_plain(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_from_plain(item) for item in value)
    if isinstance(value, dict):
        if TYPE_KEY in value and FIELDS_KEY in value and len(value) == 2:
            return _build(value[TYPE_KEY], value[FIELDS_KEY])
        return {key: _from_plain(item) for key, item in value.items()}
    return value


def _build(name: object, fields: object) -> Any:
    kind = MESSAGE_TYPES.get(name) if isinstance(name, str) else None
    if kind is None:
        raise WireError(f"unknown message type {name!r}: expected one of engine.messages' types")
    if not isinstance(fields, dict):
        raise WireError(f"{name}: expected an object of fields, found {type(fields).__name__}")
    try:
        return kind(**{key: _from_plain(item) for key, item in fields.items()})
    except TypeError as error:
        raise WireError(f"{name}: fields do not match the dataclass: {error}") from error


def encode(message: Any) -> bytes:
    """One message as a JSON line (UTF-8, ending with a newline)."""
    return (json.dumps(_to_plain(message), ensure_ascii=False) + "\n").encode()


def decode(line: bytes | str) -> Any:
    """The message that ``encode`` wrote as ``line``."""
    try:
        plain = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        shown = line[:80] if isinstance(line, str) else line[:80].decode(errors="replace")
        raise WireError(f"expected a JSON message line, found {shown!r}: {error}") from error
    if not isinstance(plain, dict) or TYPE_KEY not in plain:
        raise WireError(f"expected an object with a {TYPE_KEY!r}, found {str(plain)[:80]!r}")
    return _from_plain(plain)
