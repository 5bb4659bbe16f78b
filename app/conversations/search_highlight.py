"""A chosen search hit inside the opened chat: its message scrolled into view and the matched
words highlighted there.

The highlight is a set of extra selections on the message's text browsers: the rendered text is
not touched, and the next hit (or another chat) clears it. The words are the snippet's
highlighted words (``matched_words``), as the message spells them, so a search for "creme" marks
"crème".
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtGui import QColor, QTextCharFormat, QTextDocument
from PySide6.QtWidgets import QTextBrowser, QTextEdit

from app.ui.palette import current_palette

logger = logging.getLogger(__name__)


def highlight_words(browser: QTextBrowser, words: list[str]) -> int:
    """Mark every occurrence of ``words`` (any case) in ``browser``; how many were marked."""
    colors = current_palette()
    form = QTextCharFormat()
    form.setBackground(QColor(colors.search_match_background))
    form.setForeground(QColor(colors.search_match_text))
    document = browser.document()
    selections = []
    for word in {w for w in words if w.strip()}:
        cursor = document.find(word, 0)
        while not cursor.isNull():
            selection = QTextEdit.ExtraSelection()
            selection.cursor = cursor
            selection.format = form
            selections.append(selection)
            cursor = document.find(word, cursor, QTextDocument.FindFlag(0))
    browser.setExtraSelections(selections)
    return len(selections)


def show_search_hit(chat_view: Any, message_id: int, words: list[str]) -> int:
    """Scroll ``chat_view`` to the hit's message and highlight ``words`` in it (the marks of an
    earlier hit are cleared); how many places were marked."""
    for row in chat_view.rows:
        for browser in row.findChildren(QTextBrowser):
            browser.setExtraSelections([])
    row = chat_view.scroll_to_message(message_id)
    if row is None:
        return 0
    return sum(highlight_words(browser, words) for browser in row.findChildren(QTextBrowser))
