"""Assistant markdown → HTML for Qt's rich text, safely.

markdown-it-py runs with raw HTML disabled, so ``<script>`` or ``<img src=…>`` from the model is
escaped and shown as text. Markdown images are rendered as a text link (never an ``<img>``), and
links keep only http(s)/mailto targets. A top-level code block is cut out of the markdown
(``split_code_blocks``) and shown by a view of its own that scrolls sideways (``code_block_view``);
one inside a list or a quote stays here: a monospaced box, syntax-coloured
(``app.chat.code_highlight``) and wrapped (a long line never pushes the box, or its "Copy" link
``copy:N``, out of sight), with the Copy link that the view turns into a clipboard copy. Tables get
borders and padding, quotes a bar at the left; every colour comes from the palette. The views also refuse every resource load
(``SafeTextBrowser.loadResource``), so nothing remote is ever fetched even if this were bypassed.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from markdown_it import MarkdownIt

from app.chat.code_highlight import highlighted_html
from app.ui.palette import Palette, current_palette

logger = logging.getLogger(__name__)

COPY_SCHEME = "copy"
COPY_LABEL = "Copy"
COPIED_LABEL = "Copied"
SAFE_LINK_SCHEMES = ("http://", "https://", "mailto:")
MONOSPACE_FAMILIES = "'SF Mono', Menlo, 'DejaVu Sans Mono', Consolas, monospace"
# Qt's text layout looks for line breaks with a cost that grows with the square of a word's length
# (a 1 MB line without spaces froze the window for minutes). Words of LONG_WORD characters or more
# get a zero-width space (a break opportunity, invisible) after every WORD_BREAK_EVERY characters,
# in the HTML shown only: stored messages, "Copy" and the code blocks' copies keep the text as it
# is, and shorter words (most URLs) are never touched.
LONG_WORD = 64
WORD_BREAK_EVERY = 16
ZERO_WIDTH_SPACE = "\u200b"
_TEXT_NODE = re.compile(r">([^<]+)")
_UNIT = r"(?:&#?\w+;|[^\s<>&\u200b])"  # an entity counts as one character
_LONG_WORD = re.compile(rf"{_UNIT}{{{LONG_WORD},}}")
_CHUNK = re.compile(rf"{_UNIT}{{{WORD_BREAK_EVERY}}}(?=.)", re.DOTALL)


@dataclass
class RenderedMarkdown:
    html: str
    code_blocks: list[str] = field(default_factory=list)


def _rule(method: Callable[[list, int], str]) -> Callable[..., str]:
    def rule(_renderer: Any, tokens: list, index: int, _options: Any, _env: Any) -> str:
        return method(tokens, index)

    return rule


def _is_safe_link(url: str) -> bool:
    return url.strip().lower().startswith(SAFE_LINK_SCHEMES)


class MarkdownRenderer:
    def __init__(self, *, palette: Palette | None = None) -> None:
        self.palette = palette or current_palette()
        self._md = MarkdownIt("commonmark", {"html": False, "linkify": False})
        self._md.enable(["table", "strikethrough"])
        # markdown-it binds each rule to its renderer: plain functions that call back into self.
        for name, method in (
            ("fence", self._render_code),
            ("code_block", self._render_code),
            ("image", self._render_image),
            ("link_open", self._render_link_open),
            ("link_close", self._render_link_close),
            ("table_open", self._render_table_open),
            ("th_open", self._render_cell_open),
            ("td_open", self._render_cell_open),
            ("blockquote_open", self._render_quote_open),
            ("blockquote_close", self._render_quote_close),
        ):
            self._md.add_render_rule(name, _rule(method))
        self._code_blocks: list[str] = []
        self._link_stack: list[bool] = []

    def render(self, text: str) -> RenderedMarkdown:
        self._code_blocks = []
        self._link_stack = []
        body = break_long_words(self._md.render(text))
        return RenderedMarkdown(body, list(self._code_blocks))

    def stylesheet(self) -> str:
        """CSS for the QTextDocument showing the rendered HTML (Qt's rich-text subset)."""
        p = self.palette
        return (
            f"body {{ color: {p.text}; }}"
            f"a {{ color: {p.link}; text-decoration: none; }}"
            f"code {{ font-family: {MONOSPACE_FAMILIES}; background-color: {p.code_background}; }}"
            f"pre {{ font-family: {MONOSPACE_FAMILIES}; margin: 0; white-space: pre-wrap; }}"
            "table.md { border-collapse: collapse; }"
            "p { margin-top: 0; margin-bottom: 8px; }"
            "h1, h2, h3 { margin-top: 6px; margin-bottom: 6px; }"
        )

    # --- render rules (markdown-it calls them as renderer methods) ------------------------------

    def _render_code(self, tokens: list, index: int):
        token = tokens[index]
        code = token.content.rstrip("\n")
        number = len(self._code_blocks)
        self._code_blocks.append(code)
        language = token.info.split()[0] if token.info.strip() else ""
        p = self.palette
        # pre-wrap: a long line wraps inside the box instead of widening it past the view.
        return (
            f'<table class="code" width="100%" border="0" cellspacing="0" cellpadding="8" '
            f'bgcolor="{p.code_background}" style="margin-top: 4px; margin-bottom: 10px;">'
            f'<tr bgcolor="{p.code_header_background}"><td style="color: {p.code_header_text}; '
            f'font-size: small; padding: 4px 8px;">{html.escape(language or "code")}</td>'
            f'<td align="right" style="font-size: small; padding: 4px 8px;">'
            f'<a href="{COPY_SCHEME}:{number}">{COPY_LABEL}</a></td></tr>'
            f'<tr><td colspan="2"><pre style="white-space: pre-wrap;">'
            f"{highlighted_html(code, language, p)}</pre></td></tr></table>"
        )

    def _render_table_open(self, tokens: list, index: int):
        p = self.palette
        return (
            f'<table class="md" border="1" cellspacing="0" cellpadding="6" '
            f'style="border-collapse: collapse; border-color: {p.table_border}; '
            f'border-style: solid; margin-top: 2px; margin-bottom: 10px;">'
        )

    def _render_cell_open(self, tokens: list, index: int):
        token = tokens[index]
        style = str(token.attrGet("style") or "")
        align = next(
            (side for side in ("left", "center", "right") if f"text-align:{side}" in style), ""
        )
        attributes = f' align="{align}"' if align else ""
        if token.tag == "th":
            attributes += f' bgcolor="{self.palette.table_header_background}"'
        return f"<{token.tag}{attributes}>"

    def _render_quote_open(self, tokens: list, index: int):
        # Qt's rich text draws no border on a blockquote: a one-cell table with a left border does.
        p = self.palette
        return (
            '<table width="100%" cellspacing="0" cellpadding="0" '
            'style="border-collapse: collapse; margin-top: 2px; margin-bottom: 8px;"><tr>'
            f'<td style="border-left: 3px solid {p.quote_bar}; padding-left: 10px; '
            f'color: {p.quote_text};">'
        )

    def _render_quote_close(self, tokens: list, index: int):
        return "</td></tr></table>"

    def _render_image(self, tokens: list, index: int):
        token = tokens[index]
        source = str(token.attrGet("src") or "")
        alt = "".join(child.content for child in (token.children or [])) or "image"
        # Never an <img>: a remote picture would be fetched. Show what it was, as text.
        return html.escape(f"[image: {alt}] ({source})")

    def _render_link_open(self, tokens: list, index: int):
        href = str(tokens[index].attrGet("href") or "")
        safe = _is_safe_link(href)
        self._link_stack.append(safe)
        if not safe:
            return ""
        return f'<a href="{html.escape(href, quote=True)}">'

    def _render_link_close(self, tokens: list, index: int):
        safe = self._link_stack.pop() if self._link_stack else False
        return "</a>" if safe else ""


def break_long_words(markup: str) -> str:
    """``markup`` with a zero-width space after every WORD_BREAK_EVERY characters of a long word,
    in text only (never inside a tag, an attribute such as a link's target, or an entity)."""

    def in_word(word: re.Match[str]) -> str:
        return _CHUNK.sub(lambda chunk: chunk.group(0) + ZERO_WIDTH_SPACE, word.group(0))

    def in_text(match: re.Match[str]) -> str:
        return ">" + _LONG_WORD.sub(in_word, match.group(1))

    return _TEXT_NODE.sub(in_text, markup)


def plain_text_html(text: str) -> str:
    """A user message: shown exactly as typed (escaped, line breaks kept; long words can wrap)."""
    return break_long_words("<p>" + html.escape(text).replace("\n", "<br>") + "</p>")


@dataclass(frozen=True)
class Segment:
    """A run of an answer shown by one widget: markdown (prose, lists, tables) or a code block."""

    kind: str  # "markdown" | "code"
    text: str  # the markdown, or the code itself (no fence lines)
    language: str = ""


_SEGMENTER = MarkdownIt("commonmark", {"html": False})


def split_code_blocks(text: str) -> list[Segment]:
    """``text`` cut around its top-level code blocks (fenced or indented), in order. A code block
    is shown by a widget of its own that scrolls sideways instead of wrapping; a block inside a
    list or a quote stays in its markdown (wrapped). An unclosed fence (an answer still being
    written) runs to the end, as markdown-it reads it."""
    lines = text.split("\n")
    segments: list[Segment] = []
    taken = 0  # lines already in a segment
    for token in _SEGMENTER.parse(text):
        if token.level != 0 or token.type not in ("fence", "code_block") or not token.map:
            continue
        start, end = token.map
        if start > taken:
            segments.append(Segment("markdown", "\n".join(lines[taken:start])))
        language = token.info.split()[0] if token.info.strip() else ""
        segments.append(Segment("code", token.content.rstrip("\n"), language))
        taken = end
    rest = "\n".join(lines[taken:])
    if rest.strip() or not segments:
        segments.append(Segment("markdown", rest))
    return segments


FENCE_MARKERS = ("```", "~~~")


def last_stable_boundary(text: str, start: int, *, min_chunk: int) -> int | None:
    """The last offset after ``start`` where ``text`` can be cut into separately rendered parts.

    A cut goes after a blank line outside any code fence, before a line that is not indented (so
    it never splits a code block, an indented continuation, or a fenced block). Returns None when
    no such cut leaves at least ``min_chunk`` characters before it. Streaming answers freeze the
    part before the cut, so each refresh re-renders only the tail.
    """
    in_fence = False
    best: int | None = None
    offset = start
    lines = text[start:].split("\n")
    previous_blank = False
    for index, line in enumerate(lines):
        if index == len(lines) - 1:
            break  # the last line may still be growing
        if (
            previous_blank
            and not in_fence
            and line.strip()
            and not line.startswith((" ", "\t"))
            and offset - start >= min_chunk
        ):
            best = offset
        if line.lstrip().startswith(FENCE_MARKERS):
            in_fence = not in_fence
        previous_blank = not line.strip()
        offset += len(line) + 1
    return best
