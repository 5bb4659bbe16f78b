"""Writing whole chats into the store (an import): every chat in one transaction.

The records come checked (``app/conversations/export.py`` parses a file against its schema);
this module only writes them, so a failure part-way leaves the store as it was.
"""

from __future__ import annotations

import logging
import sqlite3
import uuid

from app.conversations.store.records import Conversation, StoredMessage

logger = logging.getLogger(__name__)


def import_conversations(
    db: sqlite3.Connection, records: list[tuple[Conversation, list[StoredMessage]]]
) -> list[str]:
    """Write whole chats (times, versions and all, as an export holds them) in ONE
    transaction: a failure leaves the store as it was. A taken id gets a new one."""
    ids: list[str] = []
    db.execute("BEGIN IMMEDIATE")
    try:
        for conversation, messages in records:
            conversation_id = conversation.id
            taken = db.execute(
                "SELECT 1 FROM conversations WHERE id = ?", (conversation_id,)
            ).fetchone()
            if conversation_id in ids or taken is not None:
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
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return ids
