"""File → Export Chats… and Import Chats…: the dialog and the few steps around it.

``ExportDialog`` asks what (this chat or all) and how (Markdown to read, JSON to keep and import
again) and where; ``ConversationTransfer`` writes the file atomically (a temporary file renamed
into place: never half a file) and imports our JSON off the GUI thread with progress: the file
is checked against its schema (``export_schema``), chats already here are skipped or copied as
the user chooses, and all of it is written in one transaction (never half an import). Errors
come back as one line for the window's banner.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass
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
    QMessageBox,
    QProgressDialog,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from app.conversations.export import ExportFileError, export_json, export_markdown, parse_export
from app.conversations.store import Conversation, ConversationStore, StoredMessage
from app.conversations.store.conversation_store import connect
from app.conversations.store.importing import ImportCancelled, import_conversations, taken_ids
from app.shell.background import BackgroundCall

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
    checked = Signal(object)  # an ImportPlan: the file is valid, nothing written yet
    progress = Signal(str, int, int)  # "check" or "write", chats done, chats in the file
    imported = Signal(list)  # the new conversations' ids
    failed = Signal(str)  # one line for the banner

    def __init__(self, store: ConversationStore, parent: Any = None) -> None:
        super().__init__(parent)
        self._store = store
        self.dialog: ExportDialog | None = None
        self.question: QMessageBox | None = None
        self.folder = Path.home()
        self._import_call: BackgroundCall | None = None
        self._progress_dialog: QProgressDialog | None = None
        self._cancel = threading.Event()

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
            self.import_file(Path(path), parent=parent)

    @property
    def importing(self) -> bool:
        return self._import_call is not None

    def import_file(self, path: Path, *, parent: Any = None) -> None:
        """Import a JSON export off the GUI thread: check the whole file (``checked``), ask when
        chats in it are here already, write every chat in one transaction (``imported``);
        nothing is imported when any part of it is wrong (``failed``) or it is cancelled."""
        if self._import_call is not None:
            self.failed.emit(f"Could not import {path.name}: another import is still running")
            return
        self._cancel.clear()
        self._progress_dialog = self._make_progress(parent, f"Checking {path.name}…")
        database = self._store.path

        def check() -> ImportPlan:
            text = path.read_text(encoding="utf-8")
            records = parse_export(
                text, progress=lambda done, total: call.report_progress(("check", done, total))
            )
            db = connect(database, read_only=True)
            try:
                taken = taken_ids(db, [conversation.id for conversation, _ in records])
            finally:
                db.close()
            return ImportPlan(path, records, taken)

        call = BackgroundCall(check, name="import-check", parent=self)
        call.progress.connect(self._show_progress)
        call.succeeded.connect(lambda plan: self._on_checked(plan, parent))
        call.failed.connect(lambda error: self._on_import_failed(path, error))
        self._import_call = call
        call.start()

    def _on_checked(self, plan: ImportPlan, parent: Any) -> None:
        self._import_call = None
        self.checked.emit(plan)
        if self._cancel.is_set():  # cancelled while the file was checked: nothing to write
            self._on_import_failed(plan.path, ImportCancelled())
            return
        records = plan.records
        if plan.taken:
            self._close_progress()
            choice = self.ask_about_duplicates(plan, parent)
            if choice is None:
                self.failed.emit(f"Import of {plan.path.name} cancelled: nothing was imported")
                return
            if choice == "skip":
                records = [r for r in records if r[0].id not in plan.taken]
            self._progress_dialog = self._make_progress(parent, f"Importing {plan.path.name}…")
        database = self._store.path

        def write() -> list[str]:
            db = connect(database)
            try:
                return import_conversations(
                    db,
                    records,
                    progress=lambda done, total: call.report_progress(("write", done, total)),
                    cancelled=self._cancel.is_set,
                )
            finally:
                db.close()

        call = BackgroundCall(write, name="import-write", parent=self)
        call.progress.connect(self._show_progress)
        call.succeeded.connect(lambda ids: self._on_written(plan.path, ids))
        call.failed.connect(lambda error: self._on_import_failed(plan.path, error))
        self._import_call = call
        call.start()

    def ask_about_duplicates(self, plan: ImportPlan, parent: Any) -> str | None:
        """ "skip", "copies" or None (cancel): chats of the file that are here already."""
        here, total = len(plan.taken), len(plan.records)
        box = QMessageBox(parent)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Import chats")
        box.setText(
            f"{here} of the {total} chat{'s' if total != 1 else ''} in “{plan.path.name}” "
            f"{'is' if here == 1 else 'are'} already here (imported before)."
        )
        box.setInformativeText("Skip them, or import them again as copies?")
        skip = box.addButton(
            "Skip Those" if here < total else "Skip All", QMessageBox.ButtonRole.AcceptRole
        )
        copies = box.addButton("Import as Copies", QMessageBox.ButtonRole.ActionRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(skip)
        self.question = box
        box.exec()
        clicked = box.clickedButton()
        return "skip" if clicked is skip else "copies" if clicked is copies else None

    def _on_written(self, path: Path, ids: list[str]) -> None:
        self._import_call = None
        self._close_progress()
        logger.info("imported %d chat(s) from %s", len(ids), path)
        self.imported.emit(ids)

    def _on_import_failed(self, path: Path, error: BaseException) -> None:
        self._import_call = None
        self._close_progress()
        if isinstance(error, ImportCancelled):
            self.failed.emit(f"Import of {path.name} cancelled: nothing was imported")
            return
        if not isinstance(error, OSError | UnicodeError | ExportFileError | sqlite3.Error):
            logger.error("importing %s failed", path, exc_info=error)
        self.failed.emit(f"Could not import {path.name}: {error}")

    def cancel_import(self) -> None:
        self._cancel.set()

    def _make_progress(self, parent: Any, label: str) -> QProgressDialog:
        self._close_progress()
        dialog = QProgressDialog(label, "Cancel", 0, 0, parent)
        dialog.setWindowTitle("Import chats")
        dialog.setMinimumDuration(400)  # a small file never flashes a dialog
        dialog.setMinimumWidth(380)  # "Importing chat 49,900 of 50,000…" whole
        dialog.setAutoClose(False)
        dialog.setAutoReset(False)
        dialog.canceled.connect(self.cancel_import)
        return dialog

    def _show_progress(self, value: tuple[str, int, int]) -> None:
        stage, done, total = value
        self.progress.emit(stage, done, total)
        dialog = self._progress_dialog
        if dialog is not None:
            verb = "Checking" if stage == "check" else "Importing"
            dialog.setLabelText(f"{verb} chat {done:,} of {total:,}…")
            dialog.setMaximum(total)
            dialog.setValue(done)

    def _close_progress(self) -> None:
        dialog, self._progress_dialog = self._progress_dialog, None
        if dialog is not None:
            dialog.canceled.disconnect(self.cancel_import)
            dialog.close()
            dialog.deleteLater()


@dataclass(frozen=True)
class ImportPlan:
    """A checked file: its chats, and the ids of those the store holds already."""

    path: Path
    records: list[tuple[Conversation, list[StoredMessage]]]
    taken: set[str]
