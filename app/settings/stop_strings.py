"""Stop strings: how the Generation tab writes them (one a line) and the one rule that checks them.

The engine ends an answer where one appears (``GenerationConfig.stop_strings``) and holds back as
much streamed text as the longest one is long, so the rule keeps them few and short, and never
empty (an empty one would stop every answer before its first character). One a line cannot hold a
line break, so the editor takes ``\\n`` for one (``\\t`` a tab, ``\\\\`` a backslash).
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)

MAX_STOP_STRINGS = 16
MAX_STOP_STRING_LENGTH = 80  # characters
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\"}


def stop_strings_problem(value: Any) -> str | None:
    """What is wrong with ``value`` as the settings' stop strings (None: nothing)."""
    if not isinstance(value, list | tuple) or not all(isinstance(s, str) for s in value):
        return f"expected a list of strings, found {value!r}"
    if len(value) > MAX_STOP_STRINGS:
        return f"expected at most {MAX_STOP_STRINGS} stop strings, found {len(value)}"
    for text in value:
        if not text.strip(" "):
            return f"expected visible text or a line break in each stop string, found {text!r}"
        if len(text) > MAX_STOP_STRING_LENGTH:
            return (
                f"expected stop strings of at most {MAX_STOP_STRING_LENGTH} characters, found "
                f"{len(text)} in {text[:20]!r}…"
            )
    if len(set(value)) != len(value):
        return "expected each stop string once, found one twice"
    return None


def _unescape(line: str) -> str:
    out: list[str] = []
    characters = iter(line)
    for character in characters:
        if character != "\\":
            out.append(character)
            continue
        following = next(characters, "")
        out.append(_ESCAPES.get(following, "\\" + following))
    return "".join(out)


def parse_stop_strings(text: str) -> tuple[tuple[str, ...], str | None]:
    """The editor's text (one a line; blank lines skipped) → the stop strings and the problem
    with them (None when they are fine)."""
    strings = tuple(_unescape(line) for line in text.splitlines() if line != "")
    return strings, stop_strings_problem(list(strings))


def format_stop_strings(strings: tuple[str, ...]) -> str:
    """The editor's text for ``strings`` (``parse_stop_strings`` gives them back)."""
    lines = (s.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t") for s in strings)
    return "\n".join(lines)
