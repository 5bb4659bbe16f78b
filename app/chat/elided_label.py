"""A one-line label that never asks for more width than it is given.

A plain ``QLabel`` asks for the width of its whole text as its minimum: one long notice in the
status line ("the conversation no longer fit …", quoting the engine) made the chat page demand
thousands of pixels, so the window grew past the screen and the splitter took the width from the
sidebar. This label asks for a few characters at least, shows what fits with "…", and keeps the
whole text (``text()``, and the tooltip).
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QLabel, QSizePolicy

logger = logging.getLogger(__name__)

MINIMUM_CHARACTERS = "Mmmm…"  # the least it asks for: a hint that there is more


class ElidedLabel(QLabel):
    def __init__(self, text: str = "", parent: Any = None, **properties: Any) -> None:
        super().__init__(parent, **properties)
        self._full_text = ""
        self.setTextFormat(Qt.TextFormat.PlainText)  # notices quote engine messages
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        self.setText(text)

    def setText(self, text: str) -> None:
        self._full_text = text
        self.setToolTip(text)
        self._elide()
        self.updateGeometry()

    def text(self) -> str:
        """The whole text, not the part that fits."""
        return self._full_text

    def shown_text(self) -> str:
        """What is on screen: the text, or its start and "…"."""
        return super().text()

    def sizeHint(self) -> QSize:
        margins = self.contentsMargins()
        width = self.fontMetrics().horizontalAdvance(self._full_text) + 2
        return QSize(width + margins.left() + margins.right(), super().sizeHint().height())

    def minimumSizeHint(self) -> QSize:
        margins = self.contentsMargins()
        width = self.fontMetrics().horizontalAdvance(MINIMUM_CHARACTERS)
        return QSize(width + margins.left() + margins.right(), super().minimumSizeHint().height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        available = self.contentsRect().width()
        shown = self.fontMetrics().elidedText(
            self._full_text, Qt.TextElideMode.ElideRight, max(available, 0)
        )
        super().setText(shown)
