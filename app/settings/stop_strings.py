"""Stop strings as the Generation tab writes them: one a line. The rule that checks them is the
engine's (``engine.messages.stop_strings_problem``), shared with the HTTP server. One a line cannot
hold a line break, so the editor takes ``\\n`` for one (``\\t`` a tab, ``\\\\`` a backslash).
"""

from __future__ import annotations

import logging

from engine.messages import MAX_STOP_STRING_LENGTH, MAX_STOP_STRINGS, stop_strings_problem

logger = logging.getLogger(__name__)

_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\"}


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


__all__ = [
    "MAX_STOP_STRINGS",
    "MAX_STOP_STRING_LENGTH",
    "format_stop_strings",
    "parse_stop_strings",
    "stop_strings_problem",
]
