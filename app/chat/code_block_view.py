"""A code block of an answer: its language, a Copy button, and the code as written.

The code never wraps: a long line stays one line and the block scrolls sideways (only the block,
never the message), so indentation keeps its shape. The block is as tall as its code, plus the
scroll bar when one is needed. Syntax colours come from ``code_highlight`` (the palette's).
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QGuiApplication, QTextOption
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QTextEdit, QToolButton, QVBoxLayout

from app.chat.code_highlight import highlighted_html
from app.chat.markdown_render import COPIED_LABEL, COPY_LABEL, MONOSPACE_FAMILIES
from app.chat.message_widgets import COPIED_FEEDBACK_MS, SafeTextBrowser
from app.ui.palette import Palette

logger = logging.getLogger(__name__)


class CodeText(SafeTextBrowser):
    """The code itself: no wrapping, a sideways scroll bar when a line is longer than the view."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.setObjectName("codeText")
        self.setLineWrapMode(QTextEdit.LineWrapMode.NoWrap)
        self.setWordWrapMode(QTextOption.WrapMode.NoWrap)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.document().setDocumentMargin(10)
        self.horizontalScrollBar().rangeChanged.connect(lambda *_: self._fit_height())

    def _fit_height(self) -> None:
        """As tall as the code, and the scroll bar under it when it shows."""
        height = int(self.document().size().height()) + 2
        bar = self.horizontalScrollBar()
        if bar.maximum() > 0:
            height += bar.sizeHint().height()
        if height != self.height():
            self.setFixedHeight(height)


class CodeBlockView(QFrame):
    def __init__(self, palette: Palette, parent: Any = None) -> None:
        super().__init__(parent)
        self.setObjectName("codeBlock")
        self.code = ""
        self.language = ""
        self._palette = palette
        self.language_label = QLabel(self, objectName="codeLanguage")
        self.language_label.setTextFormat(Qt.TextFormat.PlainText)  # the model's words
        self.copy_button = QToolButton(self, objectName="codeCopy")
        self.copy_button.setText(COPY_LABEL)
        self.copy_button.setToolTip("Copy the code")
        self.copy_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.copy_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # Tab skips the history
        self.copy_button.clicked.connect(self.copy_code)
        self.text_view = CodeText(self)
        header = QHBoxLayout()
        header.setContentsMargins(10, 3, 4, 3)
        header.addWidget(self.language_label)
        header.addStretch(1)
        header.addWidget(self.copy_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(header)
        layout.addWidget(self.text_view)
        self._apply_palette()

    def set_code(self, code: str, language: str) -> None:
        if (code, language) == (self.code, self.language):
            return
        self.code, self.language = code, language
        self.language_label.setText(language or "code")
        self._render()

    def restyle(self, palette: Palette) -> None:
        self._palette = palette
        self._apply_palette()
        self._render()

    def _render(self) -> None:
        p = self._palette
        self.text_view.setHtml(
            f'<pre style="font-family: {MONOSPACE_FAMILIES}; white-space: pre; margin: 0; '
            f'background-color: {p.code_background}; color: {p.text};">'
            f"{highlighted_html(self.code, self.language, p)}"
            "</pre>"
        )

    def _apply_palette(self) -> None:
        p = self._palette
        self.setStyleSheet(
            f"QFrame#codeBlock {{ background: {p.code_background}; border-radius: 8px; }}"
            f"QLabel#codeLanguage {{ color: {p.code_header_text}; font-size: 11px; }}"
            f"QToolButton#codeCopy {{ color: {p.code_header_text}; background: transparent; "
            f"border: none; padding: 2px 6px; font-size: 11px; }}"
            f"QToolButton#codeCopy:hover {{ color: {p.text}; }}"
        )  # the code's own view is transparent (SafeTextBrowser): the block's colour shows

    def copy_code(self) -> None:
        QGuiApplication.clipboard().setText(self.code)
        self.copy_button.setText(COPIED_LABEL)
        QTimer.singleShot(COPIED_FEEDBACK_MS, self, lambda: self.copy_button.setText(COPY_LABEL))

    def plain_text(self) -> str:
        return self.code
