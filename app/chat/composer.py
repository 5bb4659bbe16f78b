"""The message input: Enter sends, Shift+Enter starts a new line; the button is Send or Stop."""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout

logger = logging.getLogger(__name__)

MAX_VISIBLE_LINES = 8


class ComposerInput(QPlainTextEdit):
    submitted = Signal()
    escapePressed = Signal()
    editLastRequested = Signal()  # ↑ in an empty box: edit the last message (as in ChatGPT)

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.setObjectName("composerInput")
        self.setTabChangesFocus(True)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.document().contentsChanged.connect(self._fit_height)
        self._fit_height()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.escapePressed.emit()
            return
        if event.key() == Qt.Key.Key_Up and not self.toPlainText():
            self.editLastRequested.emit()
            return
        is_return = event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        if is_return and not event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.submitted.emit()
            return
        super().keyPressEvent(event)

    def _fit_height(self) -> None:
        line = self.fontMetrics().lineSpacing()
        lines = max(1, min(MAX_VISIBLE_LINES, self.document().blockCount()))
        wrapped = int(self.document().size().height()) if self.document().size().height() else lines
        lines = max(lines, min(MAX_VISIBLE_LINES, wrapped))
        self.setFixedHeight(lines * line + 14)


class Composer(QFrame):
    sendRequested = Signal(str)
    stopRequested = Signal()

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.setObjectName("composer")
        self.input = ComposerInput()
        self.input.setPlaceholderText("Message the model…")
        self.input.setAccessibleName("Message")
        self.input.submitted.connect(self._on_submit)
        self.input.escapePressed.connect(self._on_escape)
        self.button = QPushButton("↑", objectName="sendButton")
        self.button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.button.setToolTip("Send (Enter)")
        self.button.setAccessibleName("Send")
        self.button.clicked.connect(self._on_button)
        self.hint = QLabel("Enter to send · Shift+Enter for a new line", objectName="composerHint")
        self._busy = False
        self._can_send = True
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.input, 1)
        row.addWidget(self.button, 0, Qt.AlignmentFlag.AlignBottom)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 8, 8)
        layout.setSpacing(2)
        layout.addLayout(row)
        self.input.textChanged.connect(self._update_button)
        self._update_button()

    @property
    def busy(self) -> bool:
        return self._busy

    def set_busy(self, busy: bool) -> None:
        self._busy = busy
        self.button.setText("■" if busy else "↑")
        self.button.setToolTip("Stop (Esc)" if busy else "Send (Enter)")
        self.button.setAccessibleName("Stop" if busy else "Send")
        self.button.setProperty("stopMode", "true" if busy else "false")
        self.button.style().unpolish(self.button)
        self.button.style().polish(self.button)
        self._update_button()

    def set_can_send(self, can_send: bool, *, placeholder: str) -> None:
        self._can_send = can_send
        self.input.setPlaceholderText(placeholder)
        self._update_button()

    def _update_button(self) -> None:
        has_text = bool(self.input.toPlainText().strip())
        self.button.setEnabled(self._busy or (self._can_send and has_text))

    def _on_submit(self) -> None:
        if self._busy or not self._can_send:
            return
        text = self.input.toPlainText().strip()
        if text:
            self.sendRequested.emit(text)

    def _on_escape(self) -> None:
        if self._busy:
            self.stopRequested.emit()

    def _on_button(self) -> None:
        if self._busy:
            self.stopRequested.emit()
        else:
            self._on_submit()

    def clear(self) -> None:
        self.input.clear()
