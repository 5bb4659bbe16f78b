"""The message input: Enter sends, Shift+Enter starts a new line; the button is Send or Stop; "+"
attaches text files (shown above the input with their token cost; ``attachments`` reads them)."""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.chat.attachments import (
    TEXT_SUFFIXES,
    Attachment,
    AttachmentError,
    describe_tokens,
    message_with_attachments,
    read_attachment,
)
from app.chat.elided_label import ElidedLabel

logger = logging.getLogger(__name__)

MAX_VISIBLE_LINES = 8


class ComposerInput(QPlainTextEdit):
    submitted = Signal()
    escapePressed = Signal()
    editLastRequested = Signal()  # ↑ in an empty box: edit the last message (as in ChatGPT)
    filesDropped = Signal(list)  # local file paths dropped on the box: attached, not typed

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.setObjectName("composerInput")
        self.setTabChangesFocus(True)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.document().contentsChanged.connect(self._fit_height)
        self._fit_height()

    def _dropped_files(self, mime: QMimeData) -> list[str]:
        return [url.toLocalFile() for url in mime.urls() if url.isLocalFile()]

    def canInsertFromMimeData(self, source: QMimeData) -> bool:
        return bool(self._dropped_files(source)) or super().canInsertFromMimeData(source)

    def insertFromMimeData(self, source: QMimeData) -> None:
        """Files dropped (or pasted from Finder) become attachments, not their paths as text."""
        files = self._dropped_files(source)
        if files:
            self.filesDropped.emit(files)
            return
        super().insertFromMimeData(source)

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


class AttachmentChip(QFrame):
    """One attached file: its name and token cost, and ✕ to take it off."""

    removeRequested = Signal(object)  # Attachment

    def __init__(self, attachment: Attachment, parent: Any = None) -> None:
        super().__init__(parent)
        self.setObjectName("attachmentChip")
        self.attachment = attachment
        # A file name, cut with "…" when the window is narrow (the whole of it in the tooltip).
        self.label = ElidedLabel(f"{attachment.name} · ≈ {attachment.tokens:,} tokens", self)
        remove = QToolButton(self, objectName="attachmentRemove")
        remove.setText("✕")
        remove.setAccessibleName(f"Remove {attachment.name}")
        remove.clicked.connect(lambda: self.removeRequested.emit(self.attachment))
        self.remove_button = remove
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 2, 2, 2)
        layout.setSpacing(4)
        layout.addWidget(self.label)
        layout.addWidget(remove)


class Composer(QFrame):
    sendRequested = Signal(str)
    stopRequested = Signal()
    attachmentRefused = Signal(str)  # why a file was not attached

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
        self.attach_button = QToolButton(objectName="attachButton")
        self.attach_button.setText("+")
        self.attach_button.setToolTip("Attach a text file: notes, Markdown, source code")
        self.attach_button.setAccessibleName("Attach a file")
        self.attach_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.attach_button.clicked.connect(self.choose_files)
        self.input.filesDropped.connect(self.attach_files)
        self.attachments: list[Attachment] = []
        self.context_length: int | None = None  # the loaded model's, for the token line
        self.attachments_box = QWidget(self)
        self._chips_layout = QHBoxLayout(self.attachments_box)
        self._chips_layout.setContentsMargins(0, 0, 0, 4)
        self._chips_layout.setSpacing(6)
        self.tokens_label = ElidedLabel(parent=self.attachments_box, objectName="attachmentTokens")
        self._chips_layout.addWidget(self.tokens_label)
        self._chips_layout.addStretch(1)
        self.attachments_box.hide()
        self._busy = False
        self._can_send = True
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.attach_button, 0, Qt.AlignmentFlag.AlignBottom)
        row.addWidget(self.input, 1)
        row.addWidget(self.button, 0, Qt.AlignmentFlag.AlignBottom)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 8, 8)
        layout.setSpacing(2)
        layout.addWidget(self.attachments_box)
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
        has_text = bool(self.input.toPlainText().strip()) or bool(self.attachments)
        self.button.setEnabled(self._busy or (self._can_send and has_text))

    def _on_submit(self) -> None:
        if self._busy or not self._can_send:
            return
        text = message_with_attachments(self.input.toPlainText(), self.attachments)
        if text:
            self.sendRequested.emit(text)

    # --- attachments -----------------------------------------------------------------------------

    def choose_files(self) -> None:
        patterns = " ".join(f"*{suffix}" for suffix in TEXT_SUFFIXES)
        paths, _ = QFileDialog.getOpenFileNames(
            self, "Attach text files", "", f"Text files ({patterns});;All files (*)"
        )
        self.attach_files(paths)

    def attach_files(self, paths: list[str]) -> list[Attachment]:
        """Attach each readable text file of ``paths``; say why about the others."""
        added = []
        for path in paths:
            try:
                attachment = read_attachment(path)
            except AttachmentError as error:
                self.attachmentRefused.emit(str(error))
                continue
            self.attachments.append(attachment)
            chip = AttachmentChip(attachment, self.attachments_box)
            chip.removeRequested.connect(self.remove_attachment)
            self._chips_layout.insertWidget(self._chips_layout.count() - 2, chip)
            added.append(attachment)
        self._show_attachments()
        return added

    def remove_attachment(self, attachment: Attachment) -> None:
        if attachment in self.attachments:
            self.attachments.remove(attachment)
        for chip in self.chips():
            if chip.attachment is attachment:
                chip.hide()
                chip.setParent(None)
                chip.deleteLater()
                break
        self._show_attachments()

    def chips(self) -> list[AttachmentChip]:
        return self.attachments_box.findChildren(AttachmentChip)

    def set_context_length(self, context_length: int | None) -> None:
        self.context_length = context_length
        self._show_attachments()

    def _show_attachments(self) -> None:
        line, too_many = describe_tokens(self.attachments, self.context_length)
        self.tokens_label.setText(line + (": more than fits" if too_many else ""))
        self.tokens_label.setProperty("tooMany", "true" if too_many else "false")
        self.tokens_label.style().unpolish(self.tokens_label)
        self.tokens_label.style().polish(self.tokens_label)
        self.attachments_box.setVisible(bool(self.attachments))
        self._update_button()

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
        for attachment in list(self.attachments):
            self.remove_attachment(attachment)
