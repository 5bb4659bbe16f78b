"""The engine pipe's wire format: every dataclass of ``engine.messages`` as one JSON line.

The app and the engine process exchange exactly the request and event dataclasses of
``engine/messages.py``: this module turns them into bytes and back, by type name and field names,
so a type added there needs no change here. A dataclass is written as
``{"type": "TokenText", "fields": {...}}`` (nested dataclasses the same way); JSON arrays come back
as tuples, because the messages are frozen dataclasses that hold tuples. No pickle: a line from the
other side can only ever build one of these dataclasses, never run code. Versionless: both ends are
always the same executable.

One line per message (``json.dumps`` escapes newlines inside strings), so a reader needs nothing
but ``read_line``. Both ends bound what they accept from the other: a line of at most
``MAX_LINE_BYTES`` (a longer one is skipped to its end, never held whole) nested at most
``MAX_DEPTH`` deep (our messages nest about six deep; a line of ten thousand ``[`` would otherwise
end the reading process with a RecursionError). Cost per token event, encode and decode together: about 0.04 ms
(``benchmarks/engine_ipc.py``; the goal for the whole trip through the pipe is 0.2 ms).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, BinaryIO

from engine import messages

TYPE_KEY = "type"
FIELDS_KEY = "fields"
MAX_LINE_BYTES = 64 * 1024 * 1024  # a conversation of long pasted documents fits many times
MAX_DEPTH = 32  # arrays and objects inside each other


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


def _from_plain(value: Any, depth: int = 0) -> Any:
    if isinstance(value, (list, dict)) and depth >= MAX_DEPTH:
        raise WireError(f"expected a message nested at most {MAX_DEPTH} deep, found a deeper one")
    if isinstance(value, list):
        return tuple(_from_plain(item, depth + 1) for item in value)
    if isinstance(value, dict):
        if TYPE_KEY in value and FIELDS_KEY in value and len(value) == 2:
            return _build(value[TYPE_KEY], value[FIELDS_KEY], depth + 1)
        return {key: _from_plain(item, depth + 1) for key, item in value.items()}
    return value


def _build(name: object, fields: object, depth: int) -> Any:
    kind = MESSAGE_TYPES.get(name) if isinstance(name, str) else None
    if kind is None:
        raise WireError(f"unknown message type {name!r}: expected one of engine.messages' types")
    if not isinstance(fields, dict):
        raise WireError(f"{name}: expected an object of fields, found {type(fields).__name__}")
    try:
        return kind(**{key: _from_plain(item, depth + 1) for key, item in fields.items()})
    except TypeError as error:
        raise WireError(f"{name}: fields do not match the dataclass: {error}") from error


def encode(message: Any) -> bytes:
    """One message as a JSON line (UTF-8, ending with a newline)."""
    return (json.dumps(_to_plain(message), ensure_ascii=False) + "\n").encode()


def decode(line: bytes | str) -> Any:
    """The message that ``encode`` wrote as ``line``; ``WireError`` for anything else (too long,
    too deep, not JSON, not one of our messages)."""
    if len(line) > MAX_LINE_BYTES:
        raise WireError(
            f"expected a message line of at most {MAX_LINE_BYTES:,} bytes, found {len(line):,}"
        )
    try:
        plain = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        shown = line[:80] if isinstance(line, str) else line[:80].decode(errors="replace")
        raise WireError(f"expected a JSON message line, found {shown!r}: {error}") from error
    except RecursionError as error:  # json's C parser refuses depth past the recursion limit
        raise WireError(
            f"expected a message nested at most {MAX_DEPTH} deep, found a far deeper one"
        ) from error
    if not isinstance(plain, dict) or TYPE_KEY not in plain:
        raise WireError(f"expected an object with a {TYPE_KEY!r}, found {str(plain)[:80]!r}")
    return _from_plain(plain)


def read_line(stream: BinaryIO) -> bytes:
    """The next line of ``stream`` (b"" at its end). A line longer than ``MAX_LINE_BYTES`` is
    read to its end in pieces and dropped, and raises ``WireError``: the next call reads the
    line after it."""
    line = stream.readline(MAX_LINE_BYTES + 1)
    if len(line) <= MAX_LINE_BYTES or line.endswith(b"\n"):
        return line
    skipped = len(line)
    while True:
        piece = stream.readline(MAX_LINE_BYTES)
        skipped += len(piece)
        if not piece or piece.endswith(b"\n"):
            break
    raise WireError(
        f"expected a message line of at most {MAX_LINE_BYTES:,} bytes, found {skipped:,}"
    )
