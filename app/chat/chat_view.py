"""The conversation: message rows (user bubbles, assistant markdown), streaming, per-message actions.

Layout and looks only: what a click means is the controller's business (signals out). A row, its
safe rendering and its buttons are ``message_row.MessageRow``.
"""

from __future__ import annotations

import html
import logging
from typing import Any

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from app.chat.markdown_render import MarkdownRenderer
from app.chat.message_row import MessageRow
from app.conversations.store import StoredMessage
from app.ui.palette import current_palette

logger = logging.getLogger(__name__)

COLUMN_MAX_WIDTH = 780
# What a switch between light and dark sends: Qt's palette changes, the style sheet is replaced.
PALETTE_EVENTS = (
    QEvent.Type.ApplicationPaletteChange,
    QEvent.Type.PaletteChange,
    QEvent.Type.StyleChange,
)
STREAM_REFRESH_MS = 40  # re-render a streaming answer at most this often
SCROLL_SETTLE_MS = 60  # a search hit is scrolled to after the opened chat's rows settle


class ChatView(QScrollArea):
    """The message column; follows the bottom while an answer streams (unless scrolled up)."""

    editSubmitted = Signal(int, str)
    regenerateRequested = Signal()  # Regenerate, or Retry an unanswered question
    continueRequested = Signal(int)  # message id
    versionRequested = Signal(int, int)  # message id, step

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.setObjectName("messageScroll")
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.renderer = MarkdownRenderer()
        self.assistant_name = "Assistant"
        self.rows: list[MessageRow] = []
        self.streaming_row: MessageRow | None = None
        self._pending_text: str | None = None
        self._follow = True
        column = QWidget(objectName="messageColumn")
        self._layout = QVBoxLayout(column)
        self._layout.setContentsMargins(24, 16, 24, 16)
        self._layout.setSpacing(6)
        self.empty_state = QLabel(objectName="emptyState")
        self.empty_state.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_state.setWordWrap(True)
        self._layout.addWidget(self.empty_state)
        self._layout.addStretch(1)
        self.set_empty_text("How can I help?", "Your messages stay on this computer.")
        outer = QWidget(objectName="messageColumn")
        outer_layout = QHBoxLayout(outer)
        outer_layout.setContentsMargins(0, 0, 0, 0)
        outer_layout.addStretch(1)
        column.setMaximumWidth(COLUMN_MAX_WIDTH)
        column.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        outer_layout.addWidget(column, 100)
        outer_layout.addStretch(1)
        self.setWidget(outer)
        self._refresh = QTimer(self, singleShot=True, interval=STREAM_REFRESH_MS)
        self._refresh.timeout.connect(self._apply_pending_text)
        QApplication.instance().focusChanged.connect(self._on_focus_changed)
        bar = self.verticalScrollBar()
        bar.rangeChanged.connect(self._on_range_changed)
        bar.valueChanged.connect(self._on_scrolled)

    # --- rows --------------------------------------------------------------------------------

    def set_empty_text(self, title: str, detail: str) -> None:
        """What an empty conversation shows."""
        self._empty_text = (title, detail)
        colors = self.renderer.palette
        self.empty_state.setText(
            f'<div style="font-size: 20px; font-weight: 600; color: {colors.text};">'
            f"{html.escape(title)}</div>"
            f'<div style="color: {colors.text_tertiary}; margin-top: 6px;">{html.escape(detail)}</div>'
        )

    def changeEvent(self, event: QEvent) -> None:
        """The app switched between light and dark: render the messages in the new colours."""
        super().changeEvent(event)
        if event.type() in PALETTE_EVENTS:
            self.follow_palette()

    def showEvent(self, event: Any) -> None:
        self.follow_palette()  # a switch while this page was hidden
        super().showEvent(event)

    def follow_palette(self) -> None:
        """Render with the app's current palette if the messages show another one."""
        palette = current_palette()
        if palette == self.renderer.palette:
            return
        self.renderer = MarkdownRenderer(palette=palette)
        self.set_empty_text(*self._empty_text)
        for row in self.rows:
            row.restyle(self.renderer)

    def _update_empty_state(self) -> None:
        self.empty_state.setVisible(not self.rows)

    def clear(self) -> None:
        for row in self.rows:
            row.setParent(None)
            row.deleteLater()
        self.rows = []
        self.streaming_row = None
        self._pending_text = None
        self._refresh.stop()
        self._update_empty_state()

    def set_messages(self, messages: list[StoredMessage]) -> None:
        self.clear()
        for message in messages:
            self._append_row(message.role).set_message(message)
        self._update_regenerate()
        self._follow = True
        QTimer.singleShot(0, self.scroll_to_bottom)

    def add_message(self, message: StoredMessage) -> MessageRow:
        row = self._append_row(message.role)
        row.set_message(message)
        self._follow = True
        self._update_regenerate()
        return row

    def _append_row(self, role: str) -> MessageRow:
        self.follow_palette()
        row = MessageRow(role, renderer=self.renderer, assistant_name=self.assistant_name)
        row.editSubmitted.connect(self.editSubmitted)
        row.regenerateRequested.connect(self.regenerateRequested)
        row.continueRequested.connect(self.continueRequested)
        row.versionRequested.connect(self.versionRequested)
        self._layout.insertWidget(self._layout.count() - 1, row)
        self.rows.append(row)
        self._update_empty_state()
        return row

    def _update_regenerate(self) -> None:
        for index, row in enumerate(self.rows):
            row.set_last(index == len(self.rows) - 1 and self.streaming_row is None)

    def _on_focus_changed(self, _old: QWidget | None, new: QWidget | None) -> None:
        """A message with the keyboard in it (its text, its editor) shows its actions."""
        for row in self.rows:
            row.set_focus_within(new is not None and row.isAncestorOf(new))

    def last_row(self, role: str) -> MessageRow | None:
        return next((row for row in reversed(self.rows) if row.role == role), None)

    def copy_last_answer(self) -> bool:
        """Chat → Copy Last Answer: the keyboard's way to the last answer's Copy."""
        row = self.last_row("assistant")
        if row is None or row is self.streaming_row:
            return False
        row.copy_text()
        return True

    def toggle_last_reasoning(self) -> bool:
        """Chat → Show or Hide Last Reasoning: the keyboard's way to the last answer's reasoning
        (the fold's line is not a Tab stop: Tab does not walk the history)."""
        row = self.last_row("assistant")
        if row is None or not row.reasoning_fold.isVisible():
            return False
        row.reasoning_fold.toggle.toggle()
        self.ensureWidgetVisible(row.reasoning_fold)
        return True

    def edit_last_message(self) -> bool:
        """Chat → Edit Last Message (↑ in an empty message box): the last question's Edit."""
        row = self.last_row("user")
        if row is None or self.streaming_row is not None:
            return False
        self.ensureWidgetVisible(row)
        row.begin_edit()
        return True

    # --- streaming ---------------------------------------------------------------------------

    def begin_answer(self) -> None:
        row = self._append_row("assistant")
        row.set_streaming(True)
        self.streaming_row = row
        self._follow = True
        self._update_regenerate()

    def update_answer(self, text: str) -> None:
        """Show ``text`` (the whole answer so far), coalesced to one render per STREAM_REFRESH_MS."""
        self._pending_text = text
        if not self._refresh.isActive():
            self._refresh.start()

    def _apply_pending_text(self) -> None:
        if self.streaming_row is not None and self._pending_text is not None:
            self.streaming_row.set_text(self._pending_text)
            thinking = self.streaming_row.reasoning_fold.thinking
            self.streaming_row.typing.setText("Thinking…" if thinking else "Writing…")
        self._pending_text = None

    def finish_answer(self, message: StoredMessage | None) -> None:
        self._refresh.stop()
        row = self.streaming_row
        self.streaming_row = None
        self._pending_text = None
        if row is not None:
            if message is None:
                self.rows.remove(row)
                row.setParent(None)
                row.deleteLater()
                self._update_empty_state()
            else:
                row.set_streaming(False)
                row.set_message(message)
        self._update_regenerate()

    @property
    def streaming_text(self) -> str:
        if self.streaming_row is None:
            return ""
        return self._pending_text if self._pending_text is not None else self.streaming_row.text

    # --- scrolling ---------------------------------------------------------------------------

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self.empty_state.setMinimumHeight(int(self.viewport().height() * 0.8))  # centred

    def _on_scrolled(self, value: int) -> None:
        bar = self.verticalScrollBar()
        self._follow = value >= bar.maximum() - 40

    def _on_range_changed(self, _minimum: int, maximum: int) -> None:
        if self._follow:
            self.verticalScrollBar().setValue(maximum)

    def scroll_to_message(self, message_id: int) -> MessageRow | None:
        """Bring the row of ``message_id`` into view (a search hit), once the rows are laid out;
        stop following the bottom so the view stays there."""
        row = next((r for r in self.rows if r.message and r.message.id == message_id), None)
        if row is not None:
            self._follow = False
            QTimer.singleShot(SCROLL_SETTLE_MS, lambda: self._reveal(row))
        return row

    def _reveal(self, row: MessageRow) -> None:
        if row in self.rows:
            self._follow = False
            self.ensureWidgetVisible(row, 0, 24)

    def scroll_to_bottom(self) -> None:
        self.verticalScrollBar().setValue(self.verticalScrollBar().maximum())
