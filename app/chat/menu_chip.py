"""A chip in the chat header that opens a menu (the model, the preset): its text cut with "…" to
the width it gets (the whole of it in ``text()`` and the tooltip), ending in ▾."""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QMenu, QSizePolicy, QToolButton

logger = logging.getLogger(__name__)

ARROW = " ▾"
MINIMUM_TEXT = "Mmmm…"
PADDING = 24  # the style sheet's padding and border, both sides
SLACK = 6  # text widths do not add up exactly (kerning, rounding): a whole text never elides


class ElidedToolButton(QToolButton):
    """A header chip whose text is cut with "…" to the width it gets (``suffix`` kept whole);
    ``text()`` is the whole text, the tooltip too unless one is given."""

    suffix = ""

    def __init__(self, object_name: str, parent: Any = None) -> None:
        super().__init__(parent)
        self.setObjectName(object_name)
        self._full_text = ""
        self.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Preferred)
        self.setCursor(Qt.CursorShape.PointingHandCursor)

    def set_label(self, text: str, tooltip: str = "") -> None:
        self._full_text = text
        self.setToolTip(tooltip or text)
        self._elide()
        self.updateGeometry()

    def text(self) -> str:  # type: ignore[override]
        """The whole text, not the part that fits."""
        return self._full_text

    def shown_text(self) -> str:
        return super().text().removesuffix(self.suffix)

    def textFormat(self) -> Qt.TextFormat:
        """A tool button draws its text as it is, never as markup (names are file names)."""
        return Qt.TextFormat.PlainText

    def sizeHint(self) -> QSize:
        width = self.fontMetrics().horizontalAdvance(self._full_text + self.suffix)
        return QSize(width + PADDING + SLACK, super().sizeHint().height())

    def minimumSizeHint(self) -> QSize:
        width = self.fontMetrics().horizontalAdvance(MINIMUM_TEXT + self.suffix) + PADDING
        return QSize(width, super().minimumSizeHint().height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        room = self.width() - PADDING - self.fontMetrics().horizontalAdvance(self.suffix)
        shown = self.fontMetrics().elidedText(
            self._full_text, Qt.TextElideMode.ElideRight, max(room, 0)
        )
        super().setText(shown + self.suffix)


class MenuChip(ElidedToolButton):
    """An ``ElidedToolButton`` that opens a menu, filled each time it opens (``fill_menu``)."""

    suffix = ARROW

    def __init__(self, object_name: str, parent: Any = None) -> None:
        super().__init__(object_name, parent)
        self.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self)
        menu.setToolTipsVisible(True)
        menu.aboutToShow.connect(self.fill_menu)
        self.setMenu(menu)

    def fill_menu(self) -> None:
        """Subclasses list their choices."""
