"""The reasoning before an answer, folded: one line above the answer ("Thinking…" while the model
reasons, "Thought for 12 s" once it answers) that opens to show the reasoning as plain text and
closes again. It is never part of the answer's markdown, and Copy leaves it out.

The line is not a Tab stop (Tab does not walk the history, as for the message's other actions):
the keyboard opens and closes the last answer's reasoning from the Chat menu (Ctrl+Shift+R).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QToolButton, QVBoxLayout, QWidget

from app.chat.message_widgets import SafeTextBrowser

logger = logging.getLogger(__name__)

THINKING_LABEL = "Thinking…"
DONE_LABEL = "Thoughts"  # an answer whose reasoning time is unknown (read back from the store)


class ReasoningFold(QWidget):
    """The toggle line and, when open, the reasoning text (selectable, plain)."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.toggle = QToolButton(self, objectName="reasoningToggle")
        self.toggle.setCheckable(True)
        self.toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.toggle.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # as the message's other actions
        self.toggle.setCursor(Qt.CursorShape.PointingHandCursor)
        self.toggle.toggled.connect(self._on_toggled)
        self.text_view = SafeTextBrowser(self)
        self.text_view.setObjectName("reasoningText")
        self.text_view.setAccessibleName("Reasoning")
        self.text_view.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 4)
        layout.setSpacing(2)
        layout.addWidget(self.toggle, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.text_view)
        self.reasoning = ""
        self.thinking = False
        self._started: float | None = None  # when this view first saw the model reasoning
        self.seconds: float | None = None  # how long it reasoned, when this view saw it

    @property
    def expanded(self) -> bool:
        return self.toggle.isChecked()

    def set_reasoning(self, reasoning: str, *, thinking: bool) -> None:
        """The reasoning so far; ``thinking``: the model is still reasoning (no answer yet)."""
        now = time.monotonic()
        if thinking and self._started is None:
            self._started = now
        if not thinking and self.thinking and self._started is not None:
            self.seconds = now - self._started
        self.thinking = thinking
        if reasoning != self.reasoning:
            previous, self.reasoning = self.reasoning, reasoning
            if self.expanded and reasoning.startswith(previous):  # streaming: add the new end
                cursor = QTextCursor(self.text_view.document())
                cursor.movePosition(QTextCursor.MoveOperation.End)
                cursor.insertText(reasoning[len(previous) :])
            elif self.expanded:
                self.text_view.setPlainText(reasoning)
        self._relabel()

    def _relabel(self) -> None:
        if self.thinking:
            text = THINKING_LABEL
        elif self.seconds is not None:
            text = f"Thought for {max(1, round(self.seconds))} s"
        else:
            text = DONE_LABEL
        self.toggle.setText(text)
        state = "shown" if self.expanded else "hidden"
        self.toggle.setAccessibleName(f"{text}: reasoning {state}")
        self.toggle.setToolTip("Hide the reasoning" if self.expanded else "Show the reasoning")

    def _on_toggled(self, expanded: bool) -> None:
        self.toggle.setArrowType(Qt.ArrowType.DownArrow if expanded else Qt.ArrowType.RightArrow)
        self.text_view.setVisible(expanded)
        if expanded:  # once shown: its height is fitted to its width
            self.text_view.setPlainText(self.reasoning)
        self._relabel()
