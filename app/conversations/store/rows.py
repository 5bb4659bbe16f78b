"""Rows of the conversation database as records: the one place that knows the column names."""

from __future__ import annotations

import sqlite3

from app.conversations.store.records import Conversation, StoredMessage

SELECT_MESSAGES = (
    "SELECT m.*, (SELECT COUNT(*) FROM messages v WHERE v.conversation_id = m.conversation_id"
    " AND v.position = m.position) AS version_count, (SELECT COUNT(*) FROM messages v"
    " WHERE v.conversation_id = m.conversation_id AND v.position = m.position"
    " AND v.version <= m.version) AS version_number FROM messages m"
)


def conversation_from_row(row: sqlite3.Row) -> Conversation:
    return Conversation(
        row["id"],
        row["title"],
        row["created_at"],
        row["updated_at"],
        row["system_prompt"],
        bool(row["pinned"]),
    )


def message_from_row(row: sqlite3.Row) -> StoredMessage:
    return StoredMessage(
        id=row["id"],
        conversation_id=row["conversation_id"],
        position=row["position"],
        role=row["role"],
        content=row["content"],
        created_at=row["created_at"],
        finish_reason=row["finish_reason"],
        interrupted=bool(row["interrupted"]),
        version=row["version"],
        active=bool(row["active"]),
        version_number=row["version_number"],
        version_count=row["version_count"],
        model=row["model"],
        generation=row["generation"],
    )
