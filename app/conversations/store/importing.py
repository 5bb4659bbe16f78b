"""Writing whole chats into the store (an import): every chat in one transaction.

The records come checked (``app/conversations/export.py`` parses a file against its schema);
this module only writes them, so a failure part-way leaves the store as it was.
"""

from __future__ import annotations

import logging
import sqlite3
import uuid
from collections.abc import Callable

from app.conversations.store.records import Conversation, StoredMessage

logger = logging.getLogger(__name__)

PROGRESS_EVERY = 100  # chats between two progress reports


class ImportCancelled(Exception):
    """The user cancelled an import; its transaction was rolled back."""


def taken_ids(db: sqlite3.Connection, ids: list[str]) -> set[str]:
    """Which of ``ids`` the store holds already (an export imported before keeps its ids)."""
    taken: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        rows = db.execute(f"SELECT id FROM conversations WHERE id IN ({marks})", chunk)
        taken.update(row[0] for row in rows)
    return taken


def import_conversations(
    db: sqlite3.Connection,
    records: list[tuple[Conversation, list[StoredMessage]]],
    *,
    progress: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> list[str]:
    """Write whole chats (times, versions and all, as an export holds them) in ONE
    transaction: a failure or a cancel leaves the store as it was. A taken id gets a new one.
    ``progress(done, total)`` every PROGRESS_EVERY chats; ``cancelled()`` is asked as often."""
    ids: list[str] = []
    written: set[str] = set()  # a set: a list's `in` made 50,000 chats take a minute
    db.execute("BEGIN IMMEDIATE")
    try:
        for conversation, messages in records:
            conversation_id = conversation.id
            taken = db.execute(
                "SELECT 1 FROM conversations WHERE id = ?", (conversation_id,)
            ).fetchone()
            if conversation_id in written or taken is not None:
                conversation_id = uuid.uuid4().hex
            db.execute(
                "INSERT INTO conversations (id, title, created_at, updated_at, system_prompt)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    conversation_id,
                    conversation.title,
                    conversation.created_at,
                    conversation.updated_at,
                    conversation.system_prompt,
                ),
            )
            db.executemany(
                "INSERT INTO messages (conversation_id, position, role, content, created_at,"
                " finish_reason, interrupted, version, active, model, generation)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        conversation_id,
                        m.position,
                        m.role,
                        m.content,
                        m.created_at,
                        m.finish_reason,
                        int(m.interrupted),
                        m.version,
                        int(m.active),
                        m.model,
                        m.generation,
                    )
                    for m in messages
                ],
            )
            ids.append(conversation_id)
            written.add(conversation_id)
            if len(ids) % PROGRESS_EVERY == 0 or len(ids) == len(records):
                if cancelled is not None and cancelled():
                    raise ImportCancelled("the import was cancelled; nothing was imported")
                if progress is not None:
                    progress(len(ids), len(records))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return ids
