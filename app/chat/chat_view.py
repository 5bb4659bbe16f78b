"""The conversation: message rows (user bubbles, assistant markdown), streaming, per-message actions.

Layout and looks only: what a click means is the controller's business (signals out). Each message
body is a ``SafeTextBrowser``, which refuses every resource load, so rendered model output can never
make the app fetch anything.

Every widget of a row is created with its parent: a parentless widget made visible becomes a
top-level window for a moment (it stole the main window's activation, and its shortcuts with it).
The per-message buttons take no Tab focus, so Tab from the message box does not walk the history.
"""

from __future__ import annotations

import html
import logging
from typing import Any

from PySide6.QtCore import QEvent, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.chat.answer_versions import VersionSwitcher
from app.chat.markdown_render import (
    COPIED_LABEL,
    COPY_LABEL,
    ZERO_WIDTH_SPACE,
    MarkdownRenderer,
    last_stable_boundary,
    plain_text_html,
)
from app.chat.message_widgets import COPIED_FEEDBACK_MS, MessageEditor, SafeTextBrowser
from app.conversations.conversation_store import StoredMessage
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
FREEZE_CHUNK_CHARS = 1000  # a long answer is rendered in parts of at least this size
# A message shows at most this much (about 0.3-0.7 s of Qt layout); beyond it a note says how much
# more there is, and a streaming answer past it costs no re-render. Stored text and Copy keep all.
MAX_SHOWN_CHARS = 100_000
FINISH_NOTES = {
    "cancelled": "Stopped",
    "max_tokens": "Reached the token limit",
    "context_full": "The context is full",
    "error": "Interrupted by an error",
    "interrupted": "(interrupted)",
}


class MessageRow(QWidget):
    """One message: a right-aligned bubble for the user, an avatar and markdown for the model."""

    editSubmitted = Signal(int, str)  # message id, new text
    regenerateRequested = Signal()
    versionRequested = Signal(int, int)  # message id, step (‹ -1, › +1)

    def __init__(
        self,
        role: str,
        *,
        renderer: MarkdownRenderer,
        assistant_name: str = "Assistant",
        parent: Any = None,
    ) -> None:
        super().__init__(parent)
        self.role = role
        self.message: StoredMessage | None = None
        self.text = ""
        self._renderer = renderer
        self.frozen: list[tuple[str, SafeTextBrowser]] = []  # finished parts of a long answer
        self.body = self._new_browser()  # the part that is still changing
        self._shown: str | None = None  # the text the browsers show (at most MAX_SHOWN_CHARS)
        self.more_note = QLabel(objectName="finishNote")
        self.more_note.setTextFormat(Qt.TextFormat.PlainText)
        self.more_note.hide()
        self.bodies_layout = QVBoxLayout()
        self.bodies_layout.setContentsMargins(0, 0, 0, 0)
        self.bodies_layout.setSpacing(0)
        self.bodies_layout.addWidget(self.body)
        self.bodies_layout.addWidget(self.more_note)
        self.actions_row = QHBoxLayout()
        self.actions_row.setSpacing(2)
        self.copy_button = self._action("Copy", self.copy_text)
        self.edit_button = self._action("Edit", self.begin_edit)
        self.regenerate_button = self._action("Regenerate", self.regenerateRequested.emit)
        self.finish_note = QLabel(self, objectName="finishNote")
        self.finish_note.hide()
        self.typing = QLabel("Thinking…", self, objectName="typingIndicator")
        self.typing.hide()
        self.versions = VersionSwitcher(self)  # a child at once: never a window of its own
        self.versions.stepRequested.connect(self.versionRequested)
        if role == "user":
            self.actions_row.addStretch(1)
        else:
            self.actions_row.addWidget(self.versions)
        for button in (self.copy_button, self.edit_button, self.regenerate_button):
            self.actions_row.addWidget(button)
        self.actions_row.addWidget(self.finish_note)
        if role != "user":
            self.actions_row.addStretch(1)
        self.edit_button.setHidden(role != "user")  # hidden, never shown before it has a parent
        self.regenerate_button.hide()
        self._editor: QPlainTextEdit | None = None
        self._edit_box: QWidget | None = None

        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 6, 0, 6)
        outer.setSpacing(4)
        if role == "user":
            bubble = QFrame(self, objectName="userBubble")
            bubble_layout = QVBoxLayout(bubble)
            bubble_layout.setContentsMargins(14, 8, 14, 8)
            bubble_layout.addLayout(self.bodies_layout)
            self.bubble = bubble
            line = QHBoxLayout()
            line.addStretch(1)
            line.addWidget(bubble, 6)
            outer.addLayout(line)
        else:
            header = QHBoxLayout()
            header.setSpacing(8)
            avatar = QLabel((assistant_name[:1] or "A").upper(), self, objectName="avatar")
            avatar.setFixedSize(QSize(26, 26))
            avatar.setAlignment(Qt.AlignmentFlag.AlignCenter)
            avatar.setTextFormat(Qt.TextFormat.PlainText)
            header.addWidget(avatar)
            self.avatar = avatar
            self.author_label = QLabel(assistant_name, objectName="roleLabel")
            self.author_label.setTextFormat(Qt.TextFormat.PlainText)  # a model's name
            header.addWidget(self.author_label)
            header.addWidget(self.typing)
            header.addStretch(1)
            outer.addLayout(header)
            body_line = QHBoxLayout()
            body_line.setContentsMargins(34, 0, 0, 0)
            body_line.addLayout(self.bodies_layout)
            outer.addLayout(body_line)
            self.bubble = None
        actions_holder = QHBoxLayout()
        actions_holder.setContentsMargins(34 if role != "user" else 0, 0, 0, 0)
        actions_holder.addLayout(self.actions_row)
        outer.addLayout(actions_holder)

    def _action(self, label: str, slot: Any) -> QToolButton:
        button = QToolButton(self, objectName="messageAction")
        button.setText(label)
        button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # Tab skips the history's buttons
        button.setCursor(Qt.CursorShape.PointingHandCursor)
        button.clicked.connect(slot)
        return button

    # --- content -----------------------------------------------------------------------------

    def _new_browser(self) -> SafeTextBrowser:
        browser = SafeTextBrowser(self)
        browser.document().setDefaultStyleSheet(self._renderer.stylesheet())
        return browser

    def _render_into(self, browser: SafeTextBrowser, text: str) -> None:
        rendered = self._renderer.render(text)
        browser.code_blocks = rendered.code_blocks
        browser.setHtml(rendered.html)

    def set_text(self, text: str) -> None:
        """Show ``text``; a long markdown answer is cut into parts and only the last part is
        rendered again when the text grows (keeps each streaming refresh short). Past
        MAX_SHOWN_CHARS only a note grows."""
        self.text = text
        hidden = max(0, len(text) - MAX_SHOWN_CHARS)
        self.more_note.setText(
            f"… {hidden:,} more characters not shown here (Copy copies the whole message)"
        )
        self.more_note.setVisible(hidden > 0)
        text = text[:MAX_SHOWN_CHARS]
        if text == self._shown:
            return
        self._shown = text
        if self.role == "user":
            self.body.setHtml(plain_text_html(text))
            return
        frozen_text = "".join(part for part, _ in self.frozen)
        if not text.startswith(frozen_text):
            for _, browser in self.frozen:
                browser.setParent(None)
                browser.deleteLater()
            self.frozen, frozen_text = [], ""
        start = len(frozen_text)
        cut = last_stable_boundary(text, start, min_chunk=FREEZE_CHUNK_CHARS)
        if cut is not None:
            browser = self._new_browser()
            self._render_into(browser, text[start:cut])
            self.bodies_layout.insertWidget(len(self.frozen), browser)
            self.frozen.append((text[start:cut], browser))
            start = cut
        self._render_into(self.body, text[start:])

    def plain_text(self) -> str:
        """What the message shows, as plain text (all its parts, without the display-only breaks)."""
        browsers = [*(browser for _, browser in self.frozen), self.body]
        shown = "\n".join(browser.toPlainText().strip() for browser in browsers)
        return shown.replace(ZERO_WIDTH_SPACE, "")

    def set_message(self, message: StoredMessage) -> None:
        self.message = message
        self.set_text(message.content)
        self.versions.set_message(message)
        if message.model and self.role == "assistant":  # labelled with the model that wrote it
            self.author_label.setText(message.model)
            self.avatar.setText(message.model[:1].upper())
        note = FINISH_NOTES.get("interrupted" if message.interrupted else message.finish_reason, "")
        self.finish_note.setText(note)
        self.finish_note.setVisible(bool(note))

    def set_streaming(self, streaming: bool) -> None:
        self.typing.setVisible(streaming)
        for button in (self.copy_button, self.regenerate_button):
            button.setEnabled(not streaming)

    def copy_text(self) -> None:
        QGuiApplication.clipboard().setText(self.text)
        self.copy_button.setText(COPIED_LABEL)
        QTimer.singleShot(COPIED_FEEDBACK_MS, self, lambda: self.copy_button.setText(COPY_LABEL))

    def restyle(self, renderer: MarkdownRenderer) -> None:
        """Render again with ``renderer`` (the app switched between light and dark)."""
        self._renderer = renderer
        style = renderer.stylesheet()
        for part, browser in self.frozen:
            browser.document().setDefaultStyleSheet(style)
            self._render_into(browser, part)
        self.body.document().setDefaultStyleSheet(style)
        text, self.text = self.text, ""
        if self.role == "user":
            self.set_text(text)
        else:
            frozen_text = "".join(part for part, _ in self.frozen)
            self._render_into(self.body, text[len(frozen_text) :])
            self.text = text

    # --- editing a user message --------------------------------------------------------------

    def begin_edit(self) -> None:
        if self.message is None or self._edit_box is not None:
            return
        box = QWidget(self)
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        editor = MessageEditor(self.text, box)
        editor.escapePressed.connect(self.end_edit)
        editor.setMinimumHeight(70)
        editor.setMaximumHeight(180)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        cancel = QPushButton("Cancel", box)
        save = QPushButton("Save && Send", box)
        save.setDefault(True)
        cancel.clicked.connect(self.end_edit)
        save.clicked.connect(self._submit_edit)
        buttons.addWidget(cancel)
        buttons.addWidget(save)
        layout.addWidget(editor)
        layout.addLayout(buttons)
        for _, browser in self.frozen:
            browser.hide()
        self.body.hide()
        parent_layout = self.bubble.layout() if self.bubble is not None else self.layout()
        parent_layout.addWidget(box)
        self._editor, self._edit_box = editor, box
        editor.setFocus()

    def end_edit(self) -> None:
        if self._edit_box is not None:
            self._edit_box.deleteLater()
        self._editor = self._edit_box = None
        for _, browser in self.frozen:
            browser.show()
        self.body.show()

    def _submit_edit(self) -> None:
        if self._editor is None or self.message is None:
            return
        text = self._editor.toPlainText()
        message_id = self.message.id
        self.end_edit()
        self.editSubmitted.emit(message_id, text)

    @property
    def editor(self) -> QPlainTextEdit | None:
        return self._editor


class ChatView(QScrollArea):
    """The message column; follows the bottom while an answer streams (unless scrolled up)."""

    editSubmitted = Signal(int, str)
    regenerateRequested = Signal()
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
        row.versionRequested.connect(self.versionRequested)
        self._layout.insertWidget(self._layout.count() - 1, row)
        self.rows.append(row)
        self._update_empty_state()
        return row

    def _update_regenerate(self) -> None:
        for index, row in enumerate(self.rows):
            last = index == len(self.rows) - 1
            row.regenerate_button.setVisible(
                row.role == "assistant" and last and self.streaming_row is None
            )
            row.versions.set_switchable(last and self.streaming_row is None)

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
            self.streaming_row.typing.setText("Writing…")
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
