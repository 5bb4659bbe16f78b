"""A search hit's snippet in the sidebar: the matching message's words around the match, the
matched words highlighted.

The store marks matches with control characters (``MATCH_START``/``MATCH_END``, which no
message text can forge into markup); the text is HTML-escaped first and only then are the marks
turned into highlight spans, so a message can never inject markup into the list.
"""

from __future__ import annotations

import html
import logging

from PySide6.QtCore import QRect, QRectF
from PySide6.QtGui import QAbstractTextDocumentLayout, QColor, QFont, QPainter, QTextDocument

from app.conversations.store import MATCH_END, MATCH_START
from app.ui.palette import current_palette

logger = logging.getLogger(__name__)


def snippet_html(snippet: str) -> str:
    """The snippet as rich text: escaped, the matched words in highlight spans."""
    colors = current_palette()
    parts = snippet.split(MATCH_START)
    out = [_escape(parts[0])]
    for part in parts[1:]:
        matched, _, rest = part.partition(MATCH_END)
        out.append(
            f'<span style="background-color: {colors.search_match_background}; '
            f'color: {colors.search_match_text};">'
            f"{_escape(matched)}</span>{_escape(rest)}"
        )
    return "".join(out)


def _escape(text: str) -> str:
    return html.escape(text.replace(MATCH_START, "").replace(MATCH_END, ""), quote=False)


def matched_words(snippet: str) -> list[str]:
    """The highlighted words of a snippet (what the user's search matched)."""
    words = []
    for part in snippet.split(MATCH_START)[1:]:
        words.append(part.split(MATCH_END, 1)[0])
    return words


def paint_snippet(
    painter: QPainter, rect: QRect, snippet: str, *, font: QFont, color: QColor
) -> None:
    """Draw the snippet in ``rect`` (at most two lines, clipped), text in ``color``."""
    document = QTextDocument()
    document.setDefaultFont(font)
    document.setDocumentMargin(0)
    document.setTextWidth(rect.width())
    document.setHtml(f'<div style="color: {color.name()};">{snippet_html(snippet)}</div>')
    painter.save()
    painter.translate(rect.topLeft())
    clip = QRectF(0, 0, rect.width(), rect.height())
    painter.setClipRect(clip)
    context = QAbstractTextDocumentLayout.PaintContext()
    context.clip = clip
    document.documentLayout().draw(painter, context)
    painter.restore()
