"""Start-up's check of the conversation database, and the dialog when it is damaged.

Before the store opens, ``PRAGMA quick_check`` reads the file. A damaged one used to crash the
app at its first query with a raw traceback; now the user is told what was found and chooses:
keep a copy and rebuild (every chat that can still be read, the search index anew), start a
new database (the damaged one kept beside it), or quit (nothing touched). The damaged file is
never written over (``store.integrity``).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QMessageBox

from app.conversations.store import ConversationStore, StorageError
from app.conversations.store.integrity import (
    DatabaseHealth,
    check_database,
    rebuild_database,
    start_new_database,
)

logger = logging.getLogger(__name__)

REBUILD, START_NEW, QUIT = "rebuild", "new", "quit"


def ask_what_to_do(health: DatabaseHealth, parent: Any = None) -> str:
    """The dialog: REBUILD, START_NEW or QUIT."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Conversation database damaged")
    box.setText("The conversation database is damaged.")
    found = "; ".join(health.problems[:3]) + ("; …" if len(health.problems) > 3 else "")
    box.setInformativeText(
        f"Checking {health.path.name} found: {found}\n\n"
        "Keep a copy and rebuild: the damaged file is kept beside it as it is; every chat that "
        "can still be read goes into a new database, with a new search index.\n"
        "Start a new database: the damaged file is kept beside it; no chats are shown.\n"
        "Quit: nothing is changed."
    )
    box.setDetailedText(f"{health.path}\n\n" + "\n".join(health.problems))
    rebuild = box.addButton("Keep a Copy and Rebuild", QMessageBox.ButtonRole.AcceptRole)
    new = box.addButton("Start a New Database", QMessageBox.ButtonRole.DestructiveRole)
    box.addButton("Quit", QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(rebuild)
    box.exec()
    clicked = box.clickedButton()
    return REBUILD if clicked is rebuild else START_NEW if clicked is new else QUIT


def open_checked_store(
    path: Path,
    *,
    ask: Callable[[DatabaseHealth], str] = ask_what_to_do,
    tell: Callable[[str], None] = lambda _text: None,
) -> ConversationStore | None:
    """The store at ``path`` after ``quick_check``; a damaged file goes the way ``ask`` says
    (None: quit). ``tell`` receives one line about what was done, for the window."""
    health = check_database(path)
    if not health.ok:
        logger.error("the conversation database %s is damaged: %s", path, health.problems)
        choice = ask(health)
        if choice == QUIT:
            return None
        if choice == REBUILD:
            try:
                recovery = rebuild_database(path)
            except (OSError, sqlite3.Error, StorageError) as error:
                raise StorageError(
                    f"cannot rebuild the conversation database {path}: expected to copy what "
                    f"can be read into a new file, found an error: {error}"
                ) from error
            tell(
                f"Rebuilt the conversation database: {recovery.conversations} chats, "
                f"{recovery.messages} messages kept"
                + (f", {recovery.lost_rows} unreadable" if recovery.lost_rows else "")
                + f"; the damaged file is kept as {recovery.kept.name}"
            )
        else:
            kept = start_new_database(path)
            tell(f"Started a new conversation database; the damaged file is kept as {kept.name}")
    return ConversationStore(path)
