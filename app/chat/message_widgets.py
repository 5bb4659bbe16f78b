"""The widgets a message is made of: its rich-text body and the editor of a sent message.

``SafeTextBrowser`` refuses every resource load (local or remote), so rendered model output can
never make the app fetch anything; its code blocks' Copy links copy and answer "Copied".
``MessageEditor`` claims Esc for itself (it cancels the edit instead of stopping an answer).
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QEvent, QMimeData, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication, QKeyEvent, QTextCursor, QTextOption
from PySide6.QtWidgets import QFrame, QPlainTextEdit, QSizePolicy, QTextBrowser

from app.chat.markdown_render import COPIED_LABEL, COPY_LABEL, COPY_SCHEME, ZERO_WIDTH_SPACE
from app.ui.keyboard import claims_escape

logger = logging.getLogger(__name__)

COPIED_FEEDBACK_MS = 1500  # how long "Copied" shows after a Copy


class SafeTextBrowser(QTextBrowser):
    """Rich text that sizes to its content and never loads a resource (local or remote)."""

    copyRequested = Signal(int)
    code_blocks: list[str]

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.setStyleSheet("background: transparent;")
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)  # select and copy text; not a Tab stop
        self.document().setDocumentMargin(2)
        self.document().contentsChanged.connect(self._fit_height)
        self.anchorClicked.connect(self._on_anchor)
        self.refused_resources: list[str] = []
        self.code_blocks = []

    def createMimeDataFromSelection(self) -> QMimeData:
        """A copied selection without the display-only break opportunities (see markdown_render)."""
        data = QMimeData()
        data.setText(self.textCursor().selection().toPlainText().replace(ZERO_WIDTH_SPACE, ""))
        return data

    def loadResource(self, kind: int, url: QUrl | str) -> Any:
        self.refused_resources.append(url.toString() if isinstance(url, QUrl) else str(url))
        return None

    def _on_anchor(self, url: QUrl) -> None:
        if url.scheme() == COPY_SCHEME:
            try:
                number = int(url.path())
            except ValueError:
                logger.warning("bad copy link %s", url.toString())
                return
            if 0 <= number < len(self.code_blocks):
                QGuiApplication.clipboard().setText(self.code_blocks[number])
                self._relabel_copy_link(number, COPIED_LABEL)
                QTimer.singleShot(
                    COPIED_FEEDBACK_MS, self, lambda: self._relabel_copy_link(number, COPY_LABEL)
                )
                self.copyRequested.emit(number)
        elif url.scheme() in ("http", "https", "mailto"):
            QDesktopServices.openUrl(url)  # the user's browser, on the user's click

    def _copy_link_cursor(self, number: int) -> QTextCursor | None:
        """A cursor selecting the label of code block ``number``'s Copy link, if it is shown."""
        href = f"{COPY_SCHEME}:{number}"
        block = self.document().begin()
        while block.isValid():
            iterator = block.begin()
            while not iterator.atEnd():
                fragment = iterator.fragment()
                if fragment.charFormat().anchorHref() == href:
                    cursor = QTextCursor(self.document())
                    cursor.setPosition(fragment.position())
                    end = fragment.position() + fragment.length()
                    cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
                    return cursor
                iterator += 1
            block = block.next()
        return None

    def _relabel_copy_link(self, number: int, text: str) -> None:
        """Show ``text`` as the label of code block ``number``'s Copy link (the "Copied" feedback)."""
        cursor = self._copy_link_cursor(number)
        if cursor is not None:  # None: the part was rendered again meanwhile
            cursor.insertText(text, cursor.charFormat())

    def _fit_height(self) -> None:
        self.document().setTextWidth(max(50, self.viewport().width()))
        height = int(self.document().size().height()) + 4
        if height != self.height():
            self.setFixedHeight(height)

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self._fit_height()


class MessageEditor(QPlainTextEdit):
    """Editing a sent message: Esc cancels the edit (it does not stop an answer)."""

    escapePressed = Signal()

    def __init__(self, text: str, parent: Any = None) -> None:
        super().__init__(text, parent)
        self.setObjectName("messageEditor")
        self.setAccessibleName("Edit message")
        self.setTabChangesFocus(True)

    def event(self, event: QEvent) -> bool:
        if claims_escape(event):
            return True
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.escapePressed.emit()
            return
        super().keyPressEvent(event)
