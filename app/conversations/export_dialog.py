"""File → Export Chats… and Import Chats…: the dialog and the few steps around it.

``ExportDialog`` asks what (this chat or all) and how (Markdown to read, JSON to keep and import
again) and where; ``ConversationTransfer`` writes the file atomically (a temporary file renamed
into place: never half a file) and imports our JSON through ``export.import_json`` (one
transaction: never half an import). Errors come back as one line for the window's banner.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from app.conversations.export import ExportFileError, export_json, export_markdown, import_json
from app.conversations.store import ConversationStore

logger = logging.getLogger(__name__)

FORMATS = {"markdown": ".md", "json": ".json"}


def write_atomically(path: Path, text: str) -> None:
    """``text`` into ``path`` through a temporary file beside it: all of it or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class ExportDialog(QDialog):
    """What to export, in which format, to which file."""

    def __init__(self, *, current_title: str | None, folder: Path, parent: Any = None) -> None:
        super().__init__(parent)
        self.setObjectName("exportDialog")
        self.setWindowTitle("Export chats")
        self.setMinimumWidth(480)
        self._folder = folder
        self._current_title = current_title
        self.current_chat = QRadioButton(
            f"This chat: “{current_title}”" if current_title else "This chat (none is open)"
        )
        self.current_chat.setEnabled(current_title is not None)
        self.all_chats = QRadioButton("All chats")
        (self.current_chat if current_title else self.all_chats).setChecked(True)
        self.markdown = QRadioButton("Markdown: to read or share")
        self.json = QRadioButton("JSON: everything (versions, models, settings), can be imported")
        self.markdown.setChecked(True)
        self._scope = QButtonGroup(self)
        self._format = QButtonGroup(self)
        for button in (self.current_chat, self.all_chats):
            self._scope.addButton(button)
            button.toggled.connect(self._suggest_path)
        for button in (self.markdown, self.json):
            self._format.addButton(button)
            button.toggled.connect(self._suggest_path)
        self.path_edit = QLineEdit()
        self.path_edit.setAccessibleName("Export to this file")
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._browse)
        path_row = QHBoxLayout()
        path_row.addWidget(self.path_edit, 1)
        path_row.addWidget(browse)
        scope_box, format_box = QVBoxLayout(), QVBoxLayout()
        for button in (self.current_chat, self.all_chats):
            scope_box.addWidget(button)
        for button in (self.markdown, self.json):
            format_box.addWidget(button)
        form = QFormLayout()
        form.addRow("Export", _holder(scope_box))
        form.addRow("As", _holder(format_box))
        form.addRow("To", _holder(path_row))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.export_button = buttons.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole)
        self.export_button.setDefault(True)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        note = QLabel("Only JSON exports can be imported again (File → Import Chats…).")
        note.setObjectName("hint")
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(buttons)
        self._suggest_path()

    @property
    def scope(self) -> str:
        return "current" if self.current_chat.isChecked() else "all"

    @property
    def format(self) -> str:
        return "json" if self.json.isChecked() else "markdown"

    @property
    def path(self) -> Path:
        return Path(self.path_edit.text().strip()).expanduser()

    def _suggest_path(self) -> None:
        """A file name from the chat (or "chats") and today's date, with the format's suffix."""
        stem = "coreml-chat " + time.strftime("%Y-%m-%d")
        if self.scope == "current" and self._current_title:
            safe = "".join(c if c.isalnum() or c in " -_" else " " for c in self._current_title)
            stem = " ".join(safe.split())[:60] or stem
        folder = self.path.parent if self.path_edit.text().strip() else self._folder
        self.path_edit.setText(str(folder / (stem + FORMATS[self.format])))

    def _browse(self) -> None:
        suffix = FORMATS[self.format]
        path, _ = QFileDialog.getSaveFileName(
            self, "Export to", str(self.path), f"{self.format.title()} (*{suffix})"
        )
        if path:
            self.path_edit.setText(path)


def _holder(layout: Any) -> QWidget:
    widget = QWidget()
    layout.setContentsMargins(0, 0, 0, 0)
    widget.setLayout(layout)
    return widget


class ConversationTransfer(QObject):
    """Export and import for the window: File menu items call ``open_export`` and
    ``choose_import``; results and errors come back as signals."""

    exported = Signal(str)  # the file written
    imported = Signal(list)  # the new conversations' ids
    failed = Signal(str)  # one line for the banner

    def __init__(self, store: ConversationStore, parent: Any = None) -> None:
        super().__init__(parent)
        self._store = store
        self.dialog: ExportDialog | None = None
        self.folder = Path.home()

    def open_export(self, current_id: str | None, parent: Any = None) -> ExportDialog:
        conversation = self._store.conversation(current_id) if current_id else None
        dialog = ExportDialog(
            current_title=conversation.title if conversation else None,
            folder=self.folder,
            parent=parent,
        )
        dialog.accepted.connect(lambda: self.export(dialog, current_id))
        self.dialog = dialog
        dialog.open()
        return dialog

    def export(self, dialog: ExportDialog, current_id: str | None) -> Path | None:
        if dialog.scope == "current" and current_id:
            ids = [current_id]
        else:
            ids = [c.id for c in self._store.conversations()]
        path = dialog.path
        try:
            if not dialog.path_edit.text().strip():
                raise ValueError("no file chosen: expected a path to export to")
            render = export_json if dialog.format == "json" else export_markdown
            write_atomically(path, render(self._store, ids))
        except (OSError, ValueError) as error:
            self.failed.emit(f"Could not export to {path}: {error}")
            return None
        self.folder = path.parent
        logger.info("exported %d chat(s) to %s", len(ids), path)
        self.exported.emit(str(path))
        return path

    def choose_import(self, parent: Any = None) -> None:
        path, _ = QFileDialog.getOpenFileName(
            parent, "Import chats", str(self.folder), "coreml-chat JSON export (*.json)"
        )
        if path:
            self.import_file(Path(path))

    def import_file(self, path: Path) -> list[str]:
        """Import a JSON export; nothing is imported when any part of it is wrong."""
        try:
            text = path.read_text(encoding="utf-8")
            ids = import_json(self._store, text)
        except (OSError, UnicodeDecodeError, ExportFileError) as error:
            self.failed.emit(f"Could not import {path.name}: {error}")
            return []
        logger.info("imported %d chat(s) from %s", len(ids), path)
        self.imported.emit(ids)
        return ids
