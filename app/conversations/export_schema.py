"""The JSON export's schema: every field's type and range, written down once, checked before
anything is written.

An import reads a file from anywhere; each value must be something the store, SQLite and the
Markdown export can all take: text that UTF-8 can encode (no lone surrogates), integers SQLite
can hold (positions, versions), times that are finite Unix seconds a calendar can show (year
9999 at most), no nesting deeper than the format has. The first value that is not is reported with
its path (``conversations[3].messages[2].created_at``), what was expected and what was found.
No Qt here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_TIME = 253_402_300_799.0  # 9999-12-31 23:59:59 UTC: the last second time.strftime can show
MAX_INDEX = 2**31 - 1  # positions and versions: far past any chat, well inside SQLite's integers
MAX_CONTENT = 10_000_000  # characters of one message
MAX_NAME = 10_000  # characters of a title, an id, a model name, a finish reason


class ExportFileError(ValueError):
    """A file to import is not one of our exports: says where, what was expected and found."""


def fail(where: str, expected: str, found: Any) -> None:
    shown = "nothing" if found is ... else repr(found)
    if len(shown) > 80:
        shown = shown[:77] + "…"
    raise ExportFileError(f"{where}: expected {expected}, found {shown}")


@dataclass(frozen=True)
class Field:
    """One value's type and range: ``check(value)`` says what is wrong (None: nothing)."""

    expected: str
    check: Callable[[Any], bool]
    optional: bool = False  # may be missing (then None)

    def read(self, data: dict, where: str, name: str) -> Any:
        value = data.get(name, ...)
        if value is ... and self.optional:
            return None
        if value is ... or not self.check(value):
            fail(f"{where}.{name}", self.expected, value)
        return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, int | float)) and not isinstance(value, bool)


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800") that JSON allows and UTF-8 does not
        return False
    return True


def text(*, limit: int = MAX_NAME, non_empty: bool = False, nullable: bool = False) -> Field:
    what = "non-empty text" if non_empty else "text"
    what += f" of at most {limit:,} characters, valid Unicode (no lone surrogates)"
    if nullable:
        what += ", or null"

    def check(value: Any) -> bool:
        if value is None:
            return nullable
        return (
            isinstance(value, str)
            and len(value) <= limit
            and (bool(value.strip()) or not non_empty)
            and _encodable(value)
        )

    return Field(what, check)


def index() -> Field:
    return Field(f"an integer 0..{MAX_INDEX}", lambda v: _is_int(v) and 0 <= v <= MAX_INDEX)


def unix_time() -> Field:
    return Field(
        f"a number of Unix seconds 0..{MAX_TIME:.0f} (up to the year 9999)",
        lambda v: _is_number(v) and math.isfinite(v) and 0 <= v <= MAX_TIME,
    )


def boolean() -> Field:
    return Field("true or false", lambda v: isinstance(v, bool))


def choice(*values: str) -> Field:
    return Field(" or ".join(values), lambda v: isinstance(v, str) and v in values)


def _setting_value(value: Any) -> bool:
    if value is None or isinstance(value, bool | str):
        return not isinstance(value, str) or (len(value) <= MAX_NAME and _encodable(value))
    if _is_number(value):
        return math.isfinite(value) and abs(value) <= 2**63 - 1
    if isinstance(value, list):
        return len(value) <= 1000 and all(
            isinstance(item, str) and len(item) <= MAX_NAME and _encodable(item) for item in value
        )
    return False


def settings_object() -> Field:
    """An answer's generation settings: one flat object of finite numbers, text, true/false,
    null or lists of text (what the app writes), or null."""
    return Field(
        "null or an object of finite numbers, text, true/false, null or lists of text",
        lambda v: (
            v is None
            or (
                isinstance(v, dict)
                and len(v) <= 100
                and all(
                    isinstance(k, str) and _encodable(k) and _setting_value(x) for k, x in v.items()
                )
            )
        ),
    )


CONVERSATION: dict[str, Field] = {
    "id": text(limit=200, non_empty=True),
    "title": text(),
    "created_at": unix_time(),
    "updated_at": unix_time(),
    "system_prompt": text(limit=MAX_CONTENT, nullable=True),
}

MESSAGE: dict[str, Field] = {
    "position": index(),
    "version": index(),
    "shown": boolean(),
    "role": choice("system", "user", "assistant"),
    "content": text(limit=MAX_CONTENT),
    "created_at": unix_time(),
    "finish_reason": text(limit=100),
    "interrupted": boolean(),
    "model": text(),
    "generation": settings_object(),
}


def read_object(data: Any, where: str, schema: dict[str, Field]) -> dict[str, Any]:
    """``data``'s fields per ``schema``, each checked; the first bad one raises."""
    if not isinstance(data, dict):
        fail(where, "an object", data)
    return {name: field.read(data, where, name) for name, field in schema.items()}


def read_list(data: dict, where: str, name: str) -> list:
    value = data.get(name, ...)
    if not isinstance(value, list):
        fail(f"{where}.{name}" if where else name, "a list", value)
    return value


def load_json(text: str) -> Any:
    """``text`` as JSON (NaN and Infinity parse, the schema refuses them with their path);
    nesting past the decoder's recursion limit is refused, not raised."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ExportFileError(
            f"expected a JSON export of coreml-chat, found text that is not JSON ({error})"
        ) from error
    except RecursionError as error:  # the decoder recurses per level; the format is 4 deep
        raise ExportFileError(
            "expected a JSON export of coreml-chat (a few levels deep), found JSON nested "
            "deeper than Python's recursion limit"
        ) from error
