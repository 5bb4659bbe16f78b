"""Stop strings as the Generation tab writes them: one a line. The rule that checks them is the
engine's (``engine.messages.stop_strings_problem``), shared with the HTTP server. One a line cannot
hold a line break, so the editor takes ``\\n`` for one (``\\t`` a tab, ``\\s`` a space, ``\\\\`` a
backslash). Whitespace typed at the end of a line is dropped: it cannot be seen, and a stray one
("Paris" and a Tab) made a stop string that never matched; a stop string that ends in whitespace
says so with an escape, as the editor writes it back.
"""

from __future__ import annotations

import logging

from engine.messages import MAX_STOP_STRING_LENGTH, MAX_STOP_STRINGS, stop_strings_problem

logger = logging.getLogger(__name__)

_ESCAPES = {"n": "\n", "t": "\t", "s": " ", "\\": "\\"}


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
    lines = (line.rstrip() for line in text.splitlines())
    strings = tuple(_unescape(line) for line in lines if line != "")
    return strings, stop_strings_problem(list(strings))


def format_stop_strings(strings: tuple[str, ...]) -> str:
    """The editor's text for ``strings`` (``parse_stop_strings`` gives them back)."""
    return "\n".join(_escape(s) for s in strings)


def _escape(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")
    body = escaped.rstrip(" ")
    return body + "\\s" * (len(escaped) - len(body))  # trailing spaces survive the rstrip


__all__ = [
    "MAX_STOP_STRINGS",
    "MAX_STOP_STRING_LENGTH",
    "format_stop_strings",
    "parse_stop_strings",
    "stop_strings_problem",
]
