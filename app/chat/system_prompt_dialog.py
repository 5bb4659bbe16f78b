"""A chat's own system prompt: the header's button that shows it and the dialog that edits it.

A chat either follows the global system prompt (Settings → Generation) or has its own; its own
may be empty (no system prompt for this chat). Layout only: the window hands the result to
``ChatController.set_system_prompt``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QVBoxLayout,
)

from app.chat.menu_chip import ElidedToolButton

logger = logging.getLogger(__name__)

BUTTON_TEXT_LENGTH = 28


def describe_prompt(own: str | None, global_prompt: str, *, source: str = "global") -> str:
    """The header button's text: where this chat's prompt comes from and how it starts.
    ``global_prompt`` is the prompt a chat without its own follows, from ``source`` ("global":
    Settings → Generation; or the chat's preset, e.g. "preset “Coding”")."""
    if own is None:
        return f"System prompt: {source}" if global_prompt.strip() else "System prompt: none"
    line = " ".join(own.split())
    if not line:
        return "System prompt: none (this chat)"
    if len(line) > BUTTON_TEXT_LENGTH:
        line = line[: BUTTON_TEXT_LENGTH - 1].rstrip() + "…"
    return f"System prompt: “{line}”"


class SystemPromptButton(ElidedToolButton):
    """Shows the current chat's system prompt (its start; all of it in the tooltip), cut with "…"
    when the window is narrow."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__("systemPromptButton", parent)
        # A control, framed like the model chip beside it (the style sheet): it opens the editor.
        self.setAccessibleName("This chat's system prompt")
        self.show_prompt(None, "")

    def show_prompt(self, own: str | None, global_prompt: str, *, source: str = "global") -> None:
        effective = global_prompt if own is None else own
        if own is not None:
            origin = "this chat's own"
        elif source == "global":
            origin = "the global one (Settings → Generation)"
        else:
            origin = f"the chat's {source}"
        self.set_label(
            describe_prompt(own, global_prompt, source=source),
            f"System prompt: {origin}\n\n{effective.strip() or '(empty)'}\n\nClick to edit.",
        )


class SystemPromptDialog(QDialog):
    """Edit one chat's system prompt, or let it follow the global one."""

    def __init__(
        self, *, own: str | None, global_prompt: str, chat_title: str, parent: Any = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("systemPromptDialog")
        self.setWindowTitle(f"System prompt — {chat_title}")
        self.resize(520, 340)
        self._global = global_prompt
        self._own_draft = global_prompt if own is None else own  # kept while following global
        self.follow_global = QCheckBox("Use the global system prompt (Settings → Generation)")
        self.follow_global.setChecked(own is None)
        self.editor = QPlainTextEdit(global_prompt if own is None else own)
        self.editor.setTabChangesFocus(True)  # Tab moves on, as in the Settings' prompt box
        self.editor.setAccessibleName("System prompt of this chat")
        self.editor.setPlaceholderText("No system prompt for this chat")
        self.note = QLabel(objectName="hint", wordWrap=True)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.ok_button = buttons.button(QDialogButtonBox.StandardButton.Ok)
        layout = QVBoxLayout(self)
        layout.addWidget(self.follow_global)
        layout.addWidget(self.editor, 1)
        layout.addWidget(self.note)
        layout.addWidget(buttons)
        self.follow_global.toggled.connect(self._on_follow)
        self._on_follow(self.follow_global.isChecked())

    def _on_follow(self, follow: bool) -> None:
        if follow and not self.editor.isReadOnly():
            self._own_draft = self.editor.toPlainText()
        self.editor.setReadOnly(follow)
        self.editor.setPlainText(self._global if follow else self._own_draft)
        self.note.setText(
            "This chat follows the global prompt; changes in Settings apply here too."
            if follow
            else "Only this chat starts with this prompt; it is sent first at every turn."
        )

    def prompt(self) -> str | None:
        """The chat's own prompt, or None to follow the global one."""
        return None if self.follow_global.isChecked() else self.editor.toPlainText().strip()


class SystemPromptEditor(QObject):
    """Keeps the header button in step with the current chat and opens the dialog on a click
    (or the Chat menu's item); the window only places the button."""

    def __init__(
        self,
        controller: Any,
        settings_store: Any,
        parent: Any = None,
        *,
        inherited: Callable[[], tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(parent)
        self._controller = controller
        self._settings = settings_store
        # Where a chat without its own prompt takes it from, and that prompt: ("global", the
        # settings' prompt) unless the window says the chat's preset ("preset “Coding”", its own).
        self._inherited = inherited or (lambda: ("global", self._settings.settings.system_prompt))
        self.button = SystemPromptButton()
        self.button.clicked.connect(self.open_dialog)
        self.dialog: SystemPromptDialog | None = None
        controller.conversationOpened.connect(lambda *_: self.refresh())
        controller.systemPromptChanged.connect(lambda *_: self.refresh())
        settings_store.changed.connect(lambda *_: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        own = self._controller.own_system_prompt()
        source, inherited = self._inherited()
        self.button.show_prompt(own, inherited, source=source)

    def open_dialog(self) -> SystemPromptDialog:
        conversation_id = self._controller.current_conversation_id
        conversation = (
            self._controller.store.conversation(conversation_id) if conversation_id else None
        )
        dialog = SystemPromptDialog(
            own=self._controller.own_system_prompt(),
            global_prompt=self._settings.settings.system_prompt,
            chat_title=conversation.title if conversation else "New chat",
            parent=self.button.window(),
        )
        dialog.accepted.connect(lambda: self._apply(dialog, conversation_id))
        self.dialog = dialog
        dialog.open()
        return dialog

    def _apply(self, dialog: SystemPromptDialog, conversation_id: str | None) -> None:
        if self._controller.current_conversation_id != conversation_id:
            logger.info("system prompt not applied: the chat changed while the dialog was open")
            return
        self._controller.set_system_prompt(dialog.prompt())
