"""The ‹ 2/3 › switcher on an answer row: which of a position's answer versions is shown.

Layout only: a click asks for the previous or next version (``stepRequested``); the controller
decides (it refuses while an answer is being written) and the view is rebuilt from the store.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QToolButton, QWidget

from app.conversations.store import StoredMessage

logger = logging.getLogger(__name__)


class VersionSwitcher(QWidget):
    """‹ n/N ›, hidden while a message has a single version."""

    stepRequested = Signal(int, int)  # message id, -1 or +1

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.setObjectName("versionSwitcher")
        self._message_id: int | None = None
        self.previous_button = self._arrow("‹", -1, "Previous version of this answer")
        self.next_button = self._arrow("›", +1, "Next version of this answer")
        self.label = QLabel(objectName="versionLabel")
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.previous_button)
        layout.addWidget(self.label)
        layout.addWidget(self.next_button)
        self._switchable = True
        self._number = self._count = 1
        self.setVisible(False)

    def _arrow(self, text: str, step: int, name: str) -> QToolButton:
        button = QToolButton(objectName="messageAction")
        button.setText(text)
        button.setAccessibleName(name)
        button.setToolTip(name)
        button.setCursor(Qt.CursorShape.PointingHandCursor)
        button.clicked.connect(lambda: self._step(step))
        return button

    def _step(self, step: int) -> None:
        if self._message_id is not None:
            self.stepRequested.emit(self._message_id, step)

    def set_message(self, message: StoredMessage) -> None:
        self._message_id = message.id
        self._number, self._count = message.version_number, message.version_count
        self.label.setText(f"{self._number}/{self._count}")
        self.label.setAccessibleName(f"Version {self._number} of {self._count}")
        self.setVisible(message.role == "assistant" and self._count > 1)
        self._update_buttons()

    def set_switchable(self, switchable: bool) -> None:
        """Only the last answer switches (later turns followed the version shown then)."""
        self._switchable = switchable
        self.setToolTip(
            "" if switchable else "Versions can be switched on the last answer of a chat"
        )
        self._update_buttons()

    def _update_buttons(self) -> None:
        self.previous_button.setEnabled(self._switchable and self._number > 1)
        self.next_button.setEnabled(self._switchable and self._number < self._count)

    @property
    def text(self) -> str:
        return "" if self.isHidden() else self.label.text()
