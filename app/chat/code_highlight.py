"""Syntax colours for code blocks: Pygments splits the code into tokens, the palette colours them.

Pygments does the lexing (hundreds of languages, kept up to date upstream); the colours come from
``app.ui.palette`` so highlighted code reads well in the light and the dark look alike. Pygments is
imported on the first code block, not at start-up.
"""

from __future__ import annotations

import functools
import html
import logging
from typing import Any

from app.ui.palette import Palette

logger = logging.getLogger(__name__)

MAX_HIGHLIGHTED_CHARS = 20_000  # longer blocks are shown plain: lexing them would stall a refresh


@functools.cache
def _token_colors() -> tuple[tuple[Any, str], ...]:
    """Pygments token kinds → palette field names, most specific first."""
    from pygments.token import Comment, Keyword, Name, Number, Operator, String

    return (
        (Comment, "syntax_comment"),
        (String, "syntax_string"),
        (Number, "syntax_number"),
        (Operator.Word, "syntax_keyword"),
        (Keyword, "syntax_keyword"),
        (Name.Function, "syntax_function"),
        (Name.Class, "syntax_class"),
        (Name.Builtin, "syntax_builtin"),
        (Name.Decorator, "syntax_builtin"),
        (Operator, "syntax_operator"),
    )


@functools.lru_cache(maxsize=64)
def _lexer(language: str) -> Any | None:
    from pygments.lexers import get_lexer_by_name
    from pygments.util import ClassNotFound

    try:
        return get_lexer_by_name(language, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return None


def _color_of(token_type: Any, palette: Palette) -> str:
    for kind, field_name in _token_colors():
        if token_type in kind:
            return getattr(palette, field_name)
    return ""


def highlighted_html(code: str, language: str, palette: Palette) -> str:
    """``code`` as escaped HTML with coloured spans; plain escaped text for an unknown language."""
    language = language.strip().lower()
    lexer = _lexer(language) if language and len(code) <= MAX_HIGHLIGHTED_CHARS else None
    if lexer is None:
        return html.escape(code)
    runs: list[tuple[str, str]] = []  # (colour, text): neighbours of one colour become one span
    for token_type, value in lexer.get_tokens(code):
        color = _color_of(token_type, palette) if value.strip() else ""
        if runs and (runs[-1][0] == color or not value.strip()):
            runs[-1] = (runs[-1][0], runs[-1][1] + value)
        else:
            runs.append((color, value))
    return "".join(
        f'<span style="color: {color};">{html.escape(text)}</span>' if color else html.escape(text)
        for color, text in runs
    )
