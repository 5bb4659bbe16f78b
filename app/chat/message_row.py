"""One message of the conversation: a right-aligned bubble for the user, an avatar and markdown for
the model, its actions (copy, edit, regenerate, versions) and a long answer rendered in parts.

Each message body is a ``SafeTextBrowser`` (an answer's: an ``AnswerPart`` of them, its code
blocks in views of their own that scroll sideways), which refuses every resource load, so rendered model
output can never make the app fetch anything. Every widget of a row is created with its parent: a
parentless widget made visible becomes a top-level window for a moment (it stole the main window's
activation, and its shortcuts with it). The per-message buttons take no Tab focus, so Tab from the
message box does not walk the history.
"""

from __future__ import annotations

import html
import logging
from typing import Any

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.chat.answer_part import AnswerPart
from app.chat.answer_versions import VersionSwitcher
from app.chat.attachments import Attachment, split_attachments
from app.chat.elided_label import ElidedLabel
from app.chat.markdown_render import (
    COPIED_LABEL,
    COPY_LABEL,
    ZERO_WIDTH_SPACE,
    MarkdownRenderer,
    last_stable_boundary,
    plain_text_html,
)
from app.chat.message_widgets import COPIED_FEEDBACK_MS, MessageEditor, SafeTextBrowser
from app.chat.reasoning_fold import ReasoningFold
from app.conversations.store import StoredMessage
from engine.text.reasoning import ReasoningSplitter

logger = logging.getLogger(__name__)

# A user's bubble is as wide as its longest line (measured up to BUBBLE_MEASURED_CHARS), plus its
# padding, and at most BUBBLE_MAX_SHARE of the row.
BUBBLE_MAX_SHARE = 0.8
BUBBLE_MIN_WIDTH = 60
BUBBLE_PADDING = 14 * 2 + 2 * 2 + 10  # the bubble's margins, the document's, and slack
BUBBLE_MEASURED_CHARS = 400
FREEZE_CHUNK_CHARS = 1000  # a long answer is rendered in parts of at least this size
# A message shows at most this much (about 0.3-0.7 s of Qt layout); beyond it a note says how much
# more there is, and a streaming answer past it costs no re-render. Stored text and Copy keep all.
MAX_SHOWN_CHARS = 100_000
UNKNOWN_AUTHOR = "Assistant"  # an answer stored without its model's name (older versions)
FINISH_NOTES = {
    "cancelled": "Stopped",
    "max_tokens": "Reached the token limit",
    "context_full": "The context is full",
    "error": "Interrupted by an error",
    "interrupted": "(interrupted)",
}


def folded_file_html(file: Attachment) -> str:
    """An attached file in the user's bubble: its name and size on one line, not its text."""
    lines = len(file.text.splitlines())
    size = f"{lines:,} line{'s' if lines != 1 else ''}"
    return f"<p>Attached: {html.escape(file.name)} · {size}</p>"


class MessageRow(QWidget):
    """One message: a right-aligned bubble for the user, an avatar and markdown for the model."""

    editSubmitted = Signal(int, str)  # message id, new text
    regenerateRequested = Signal()  # also Retry: the last user message went unanswered
    continueRequested = Signal(int)  # message id (an answer cut at the token limit)
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
        self.text = ""  # as stored: an answer's reasoning included, between its think markers
        self.answer = ""  # what Copy copies: an answer without its reasoning
        self._renderer = renderer
        self.frozen: list[tuple[str, Any]] = []  # finished parts of a long answer (AnswerParts)
        self.body = self._new_browser()  # the part that is still changing
        self._shown: str | None = None  # the text the browsers show (at most MAX_SHOWN_CHARS)
        self.more_note = QLabel(objectName="finishNote")
        self.more_note.setTextFormat(Qt.TextFormat.PlainText)
        self.more_note.hide()
        self.reasoning_fold = ReasoningFold(self)  # an answer's reasoning, folded above it
        self.reasoning_fold.hide()
        self.bodies_layout = QVBoxLayout()
        self.bodies_layout.setContentsMargins(0, 0, 0, 0)
        self.bodies_layout.setSpacing(0)
        self.bodies_layout.addWidget(self.body)
        self.bodies_layout.addWidget(self.more_note)
        self._make_actions(role)
        self._show_actions()  # hidden, never shown before it has a parent

        self._lay_out(role, assistant_name)

    def _make_actions(self, role: str) -> None:
        """Copy, Edit, Regenerate, Retry and Continue, the version switcher and the finish note,
        in one row (which of them show: ``_show_actions``)."""
        self.actions_row = QHBoxLayout()
        self.actions_row.setSpacing(2)
        self.copy_button = self._action("Copy", self.copy_text)
        self.edit_button = self._action("Edit", self.begin_edit)
        self.regenerate_button = self._action("Regenerate", self.regenerateRequested.emit)
        self.retry_button = self._action("Retry", self.regenerateRequested.emit)
        self.retry_button.setToolTip("Ask for an answer to this message again")
        self.continue_button = self._action("Continue", self._on_continue)
        self.continue_button.setToolTip("Carry on from where the answer stopped")
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
        self.actions_row.addWidget(self.continue_button)
        self.actions_row.addWidget(self.retry_button)
        if role != "user":
            self.actions_row.addStretch(1)
        # Which actions this message has (``_show_actions`` shows them): Copy, Edit and Regenerate
        # are drawn only while the pointer or the focus is on the message, or it is the last one
        # (quiet: the style sheet draws them clear, in their place, so nothing moves when they
        # appear). Retry and Continue, when wanted, always show.
        self._wanted = {self.copy_button: True, self.edit_button: role == "user"}
        self._wanted |= {self.regenerate_button: False, self.retry_button: False}
        self._wanted[self.continue_button] = False
        self._hovered = self._focused = self._last = False
        self._editor: QPlainTextEdit | None = None
        self._edit_box: QWidget | None = None

    def _lay_out(self, role: str, assistant_name: str) -> None:
        """A user message in a bubble at the right; an answer under its author's name."""
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
            line.addWidget(bubble, 100)  # up to its maximum: its text's width (``_fit_bubble``)
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
            # A model's name (a folder's: it can be long), cut with "…" rather than widening the row.
            self.author_label = ElidedLabel(assistant_name, self, objectName="roleLabel")
            header.addWidget(self.author_label)
            header.addWidget(self.typing)
            header.addStretch(1)
            outer.addLayout(header)
            column = QVBoxLayout()
            column.setSpacing(0)
            column.addWidget(self.reasoning_fold)
            column.addLayout(self.bodies_layout)
            body_line = QHBoxLayout()
            body_line.setContentsMargins(34, 0, 0, 0)
            body_line.addLayout(column)
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

    def _new_browser(self) -> Any:
        """A user message's view, or a part of an answer (markdown and code block views)."""
        if self.role != "user":
            return AnswerPart(self._renderer, self)
        browser = SafeTextBrowser(self)
        browser.document().setDefaultStyleSheet(self._renderer.stylesheet())
        return browser

    def _render_into(self, part: AnswerPart, text: str) -> None:
        part.set_markdown(text)

    def set_text(self, text: str) -> None:
        """Show ``text``; a long markdown answer is cut into parts and only the last part is
        rendered again when the text grows (keeps each streaming refresh short). Past
        MAX_SHOWN_CHARS only a note grows."""
        self.text = self.answer = text
        files: list[Attachment] = []
        if self.role == "user":  # attached files folded to a line each (Copy and Edit: all)
            text, files = split_attachments(text)
        else:  # the reasoning folded above the answer; the markdown is the answer's alone
            reasoning, text, thinking = _split_reasoning(text)
            self.reasoning_fold.set_reasoning(reasoning, thinking=thinking)
            self.reasoning_fold.setVisible(bool(reasoning) or thinking)
            self.answer = text
        hidden = max(0, len(text) - MAX_SHOWN_CHARS)
        self.more_note.setText(
            f"… {hidden:,} more characters not shown here (Copy copies the whole message)"
        )
        self.more_note.setVisible(hidden > 0)
        text = text[:MAX_SHOWN_CHARS]
        if self.role == "user":
            shown = (plain_text_html(text) if text.strip() else "") + "".join(
                folded_file_html(file) for file in files
            )
            if shown != self._shown:
                self._shown = shown
                self.body.setHtml(shown)
                self._fit_bubble()
            return
        if text == self._shown:
            return
        self._shown = text
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
        if self.role == "assistant":  # labelled with the model that wrote it, never another
            author = message.model or UNKNOWN_AUTHOR
            self.author_label.setText(author)
            self.author_label.setToolTip(
                author if message.model else "Saved without the name of the model that wrote it"
            )
            self.avatar.setText(author[:1].upper())
        note = FINISH_NOTES.get("interrupted" if message.interrupted else message.finish_reason, "")
        self.finish_note.setText(note)
        self.finish_note.setVisible(bool(note))

    def set_streaming(self, streaming: bool) -> None:
        self.typing.setVisible(streaming)
        for button in (self.copy_button, self.regenerate_button):
            button.setEnabled(not streaming)

    def set_last(self, last: bool) -> None:
        """The actions only the last message has, once no answer is being written: Regenerate;
        Retry on a question left unanswered (stopped before its first token, failed); Continue
        on an answer cut at the token limit. The last message shows its actions at all times."""
        message = self.message
        self._last = last
        self._wanted[self.regenerate_button] = self.role == "assistant" and last
        self._wanted[self.retry_button] = self.role == "user" and last and message is not None
        self._wanted[self.continue_button] = (
            self.role == "assistant" and last and message is not None
            and message.finish_reason == "max_tokens" and not message.interrupted
        )  # fmt: skip
        self.versions.set_switchable(last)
        self._show_actions()

    # --- quiet actions: on hover or focus --------------------------------------------------------

    @property
    def actions_shown(self) -> bool:
        return self._hovered or self._focused or self._last or self._edit_box is not None

    def set_focus_within(self, focused: bool) -> None:
        """The keyboard is in this message (its text selected, its editor): show its actions."""
        if focused != self._focused:
            self._focused = focused
            self._show_actions()

    def enterEvent(self, event: Any) -> None:
        self._hovered = True
        self._show_actions()
        super().enterEvent(event)

    def leaveEvent(self, event: Any) -> None:
        self._hovered = False
        self._show_actions()
        super().leaveEvent(event)

    def _show_actions(self) -> None:
        quiet = not self.actions_shown
        for button, wanted in self._wanted.items():
            button.setVisible(wanted)
            value = (
                "true"
                if quiet and button not in (self.retry_button, self.continue_button)
                else "false"
            )
            if button.property("quiet") != value:
                button.setProperty("quiet", value)
                button.style().unpolish(button)
                button.style().polish(button)

    def action_drawn(self, button: QToolButton) -> bool:
        """Whether ``button`` is on screen and drawn (not quiet): what a user sees."""
        return button.isVisible() and button.property("quiet") != "true"

    # --- the user's bubble: as wide as its text --------------------------------------------------

    def _fit_bubble(self) -> None:
        if self.bubble is None:
            return
        limit = max(BUBBLE_MIN_WIDTH, int(self.width() * BUBBLE_MAX_SHARE))
        if self._edit_box is not None:
            self.bubble.setMaximumWidth(limit)  # the editor takes the room it can
            return
        shown = self.body.toPlainText().replace(ZERO_WIDTH_SPACE, "").replace("\u2028", "\n")
        lines = shown.split("\n")
        if any(len(line) > BUBBLE_MEASURED_CHARS for line in lines):
            natural = limit  # a long line wraps at the limit anyway: no need to measure it
        else:
            metrics = self.body.fontMetrics()
            natural = max((metrics.horizontalAdvance(line) for line in lines), default=0)
            natural += BUBBLE_PADDING
        self.bubble.setMaximumWidth(max(BUBBLE_MIN_WIDTH, min(natural, limit)))

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self._fit_bubble()

    def _on_continue(self) -> None:
        if self.message is not None:
            self.continueRequested.emit(self.message.id)

    def copy_text(self) -> None:
        """The message as written; an answer without its reasoning."""
        QGuiApplication.clipboard().setText(self.answer)
        self.copy_button.setText(COPIED_LABEL)
        QTimer.singleShot(COPIED_FEEDBACK_MS, self, lambda: self.copy_button.setText(COPY_LABEL))

    def restyle(self, renderer: MarkdownRenderer) -> None:
        """Render again with ``renderer`` (the app switched between light and dark)."""
        self._renderer = renderer
        style = renderer.stylesheet()
        text, self.text = self.text, ""
        if self.role == "user":
            self.body.document().setDefaultStyleSheet(style)
            self.set_text(text)
        else:
            for _, part in self.frozen:
                part.restyle(renderer)
            self.body.restyle(renderer)
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
        self._fit_bubble()
        self._show_actions()
        editor.setFocus()

    def end_edit(self) -> None:
        if self._edit_box is not None:
            self._edit_box.deleteLater()
        self._editor = self._edit_box = None
        for _, browser in self.frozen:
            browser.show()
        self.body.show()
        self._fit_bubble()
        self._show_actions()

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


def _split_reasoning(text: str) -> tuple[str, str, bool]:
    """(reasoning, answer, still reasoning) of an answer as stored or streamed so far."""
    splitter = ReasoningSplitter()
    parts = splitter.feed(text) + splitter.finish()
    reasoning = "".join(piece for piece, is_reasoning in parts if is_reasoning)
    answer = "".join(piece for piece, is_reasoning in parts if not is_reasoning)
    return reasoning, answer, splitter.reasoning
