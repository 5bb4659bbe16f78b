"""One part of an answer as shown: its markdown in rich-text views, each top-level code block in a
``CodeBlockView`` of its own (which scrolls sideways instead of wrapping).

A long answer is shown in several parts (``MessageRow`` freezes the finished ones); while one
streams, only its last widgets change: the ones before keep their widget and their text.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtWidgets import QVBoxLayout, QWidget

from app.chat.code_block_view import CodeBlockView
from app.chat.markdown_render import MarkdownRenderer, Segment, split_code_blocks
from app.chat.message_widgets import SafeTextBrowser

logger = logging.getLogger(__name__)

CODE_BLOCK_SPACING = 8


class AnswerPart(QWidget):
    def __init__(self, renderer: MarkdownRenderer, parent: Any = None) -> None:
        super().__init__(parent)
        self._renderer = renderer
        self.pieces: list[tuple[Segment, QWidget]] = []
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(CODE_BLOCK_SPACING)

    # --- content -------------------------------------------------------------------------------

    def set_markdown(self, text: str) -> None:
        segments = split_code_blocks(text)
        for index, segment in enumerate(segments):
            if index < len(self.pieces):
                shown, widget = self.pieces[index]
                if shown == segment:
                    continue
                if _kind(widget) == segment.kind:
                    self._fill(widget, segment)
                    self.pieces[index] = (segment, widget)
                    continue
                self._drop_from(index)
            widget = self._new(segment.kind)
            self._fill(widget, segment)
            self._layout.addWidget(widget)
            self.pieces.append((segment, widget))
        self._drop_from(len(segments))

    def restyle(self, renderer: MarkdownRenderer) -> None:
        self._renderer = renderer
        for segment, widget in self.pieces:
            if isinstance(widget, CodeBlockView):
                widget.restyle(renderer.palette)
            else:
                widget.document().setDefaultStyleSheet(renderer.stylesheet())
                self._fill(widget, segment)

    def _new(self, kind: str) -> QWidget:
        if kind == "code":
            return CodeBlockView(self._renderer.palette, self)
        browser = SafeTextBrowser(self)
        browser.document().setDefaultStyleSheet(self._renderer.stylesheet())
        return browser

    def _fill(self, widget: QWidget, segment: Segment) -> None:
        if isinstance(widget, CodeBlockView):
            widget.set_code(segment.text, segment.language)
        else:
            rendered = self._renderer.render(segment.text)
            widget.code_blocks = rendered.code_blocks  # code inside lists and quotes
            widget.setHtml(rendered.html)

    def _drop_from(self, index: int) -> None:
        for _, widget in self.pieces[index:]:
            widget.hide()  # now: deleteLater leaves it painted until the next loop
            widget.setParent(None)
            widget.deleteLater()
        del self.pieces[index:]

    # --- what it holds -------------------------------------------------------------------------

    @property
    def browsers(self) -> list[SafeTextBrowser]:
        return [w for _, w in self.pieces if isinstance(w, SafeTextBrowser)]

    @property
    def code_views(self) -> list[CodeBlockView]:
        return [w for _, w in self.pieces if isinstance(w, CodeBlockView)]

    def toPlainText(self) -> str:
        """What it shows as plain text (code blocks as their code)."""
        return "\n".join(
            w.plain_text() if isinstance(w, CodeBlockView) else w.toPlainText().strip()
            for _, w in self.pieces
        )

    def toHtml(self) -> str:
        return "\n".join(
            w.text_view.toHtml() if isinstance(w, CodeBlockView) else w.toHtml()
            for _, w in self.pieces
        )

    @property
    def refused_resources(self) -> list[str]:
        return [url for browser in self.browsers for url in browser.refused_resources]

    def loadResource(self, kind: int, url: Any) -> Any:
        """Every part refuses every resource (as ``SafeTextBrowser`` does)."""
        refused = [browser.loadResource(kind, url) for browser in self.browsers]
        return None if not refused else refused[0]


def _kind(widget: QWidget) -> str:
    return "code" if isinstance(widget, CodeBlockView) else "markdown"
