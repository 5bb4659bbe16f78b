"""Conversations in SQLite (WAL) under the app's data folder.

A user message is written (and committed) before generation starts; the answer is written at its
first token, about every second while it streams (marked interrupted until it ends), and when it
ends. Every write commits at once, so killing the
process loses nothing that was already shown as sent. Schema changes go through ``user_version``
migrations.
"""

from __future__ import annotations

import logging
import sqlite3
import time
import uuid
from pathlib import Path

from app.conversations.store.importing import import_conversations
from app.conversations.store.migrations import MIGRATIONS
from app.conversations.store.records import (
    DEFAULT_TITLE,
    Conversation,
    SearchHit,
    StorageError,
    StoredMessage,
    title_from_text,
)
from app.conversations.store.rows import SELECT_MESSAGES, conversation_from_row, message_from_row
from app.conversations.store.search import SNIPPET_TOKENS
from app.conversations.store.search import search as search_messages
from engine import paths
from engine.messages import Role

logger = logging.getLogger(__name__)

DATABASE_NAME = "conversations.sqlite3"


def default_database_path() -> Path:
    return paths.data_dir() / DATABASE_NAME


def connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    """A connection as the store uses one (rows by name, autocommit, foreign keys, WAL), for the
    GUI thread's store or for work on another thread (a search, an import)."""
    if read_only:
        db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, isolation_level=None)
    else:
        db = sqlite3.connect(str(path), isolation_level=None)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA busy_timeout = 10000")  # another connection may be writing
    if not read_only:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
    return db


class ConversationStore:
    """All reads and writes of conversations; one connection, used on the GUI thread."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_database_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # 0600: conversations are private. SQLite gives the -wal and -shm files it creates
            # the database file's mode; older ones are made private too.
            for companion in ("", "-wal", "-shm"):
                target = self.path.with_name(self.path.name + companion)
                if not companion or target.exists():
                    paths.make_private_file(target)
        except OSError as error:
            raise StorageError(
                f"cannot open the conversation database {self.path}: expected a writable file, "
                f"found an error: {error}"
            ) from error
        try:
            self._db = connect(self.path)
            self._migrate()
        except sqlite3.DatabaseError as error:
            raise StorageError(
                f"cannot open the conversation database {self.path}: expected an SQLite file, "
                f"found an error: {error}"
            ) from error

    def close(self) -> None:
        self._db.close()

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        version = self.schema_version
        if version > len(MIGRATIONS):
            raise StorageError(
                f"the conversation database {self.path} has schema version {version}; "
                f"this app knows versions up to {len(MIGRATIONS)} (a newer app wrote it)"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            logger.info("migrating %s to schema version %d", self.path, number)
            self._db.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")

    # --- conversations ---------------------------------------------------------------------------

    def create_conversation(self, title: str = DEFAULT_TITLE) -> Conversation:
        now = time.time()
        conversation = Conversation(uuid.uuid4().hex, title, now, now)
        self._db.execute(
            "INSERT INTO conversations (id, title, created_at, updated_at) VALUES (?, ?, ?, ?)",
            (conversation.id, conversation.title, now, now),
        )
        return conversation

    def conversations(self, *, search: str = "") -> list[Conversation]:
        """Most recently updated first; ``search`` matches titles and message text (any case)."""
        if search.strip():
            return [hit.conversation for hit in self.search(search)]
        rows = self._db.execute("SELECT * FROM conversations ORDER BY updated_at DESC").fetchall()
        return [conversation_from_row(row) for row in rows]

    def search(self, text: str, *, snippet_tokens: int = SNIPPET_TOKENS) -> list[SearchHit]:
        """Chats matching ``text`` (titles and shown messages), most recently updated first."""
        return search_messages(self._db, text, snippet_tokens=snippet_tokens)

    def conversation(self, conversation_id: str) -> Conversation | None:
        row = self._db.execute(
            "SELECT * FROM conversations WHERE id = ?", (conversation_id,)
        ).fetchone()
        return conversation_from_row(row) if row else None

    def rename_conversation(self, conversation_id: str, title: str) -> None:
        title = " ".join(title.split())
        if not title:
            raise ValueError("a conversation title must not be empty: expected some text")
        self._require(conversation_id)
        self._db.execute(
            "UPDATE conversations SET title = ? WHERE id = ?", (title, conversation_id)
        )

    def set_system_prompt(self, conversation_id: str, prompt: str | None) -> None:
        """The chat's own system prompt; None: follow the global one again."""
        self._require(conversation_id)
        self._db.execute(
            "UPDATE conversations SET system_prompt = ? WHERE id = ?", (prompt, conversation_id)
        )

    def set_pinned(self, conversation_id: str, pinned: bool) -> None:
        """Pin a chat to the top of the sidebar, or unpin it (its time is not changed)."""
        self._require(conversation_id)
        self._db.execute(
            "UPDATE conversations SET pinned = ? WHERE id = ?", (int(pinned), conversation_id)
        )

    def delete_empty_conversations(self) -> int:
        """Remove chats that hold nothing of the user's (no message, no own system prompt, the
        default title, not pinned); how many. Older versions stored every "New chat" at once."""
        cursor = self._db.execute(
            "DELETE FROM conversations WHERE title = ? AND system_prompt IS NULL AND pinned = 0"
            " AND NOT EXISTS"
            " (SELECT 1 FROM messages m WHERE m.conversation_id = conversations.id)",
            (DEFAULT_TITLE,),
        )
        return cursor.rowcount

    def delete_conversation(self, conversation_id: str) -> None:
        self._db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    def import_conversations(
        self, records: list[tuple[Conversation, list[StoredMessage]]]
    ) -> list[str]:
        """Write whole chats in one transaction (``importing.import_conversations``)."""
        return import_conversations(self._db, records)

    # --- messages --------------------------------------------------------------------------------

    def messages(self, conversation_id: str) -> list[StoredMessage]:
        """The conversation as shown: one (the active) version per position."""
        rows = self._db.execute(
            f"{SELECT_MESSAGES} WHERE m.conversation_id = ? AND m.active = 1 ORDER BY m.position",
            (conversation_id,),
        ).fetchall()
        return [message_from_row(row) for row in rows]

    def all_messages(self, conversation_id: str) -> list[StoredMessage]:
        """Every version of every message, by position then version (export)."""
        rows = self._db.execute(
            f"{SELECT_MESSAGES} WHERE m.conversation_id = ? ORDER BY m.position, m.version",
            (conversation_id,),
        ).fetchall()
        return [message_from_row(row) for row in rows]

    def versions(self, message_id: int) -> list[StoredMessage]:
        """The versions at ``message_id``'s position, oldest first."""
        rows = self._db.execute(
            f"{SELECT_MESSAGES} JOIN messages o ON o.id = ? AND m.conversation_id ="
            " o.conversation_id AND m.position = o.position ORDER BY m.version",
            (message_id,),
        ).fetchall()
        return [message_from_row(row) for row in rows]

    def message(self, message_id: int) -> StoredMessage | None:
        row = self._db.execute(f"{SELECT_MESSAGES} WHERE m.id = ?", (message_id,)).fetchone()
        return message_from_row(row) if row else None

    def show_version(self, message_id: int) -> None:
        """Make ``message_id`` the shown version at its position (the others stay stored)."""
        target = self.message(message_id)
        if target is None:
            raise ValueError(f"no message with id {message_id}: expected an existing message")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute(
                "UPDATE messages SET active = 0 WHERE conversation_id = ? AND position = ?",
                (target.conversation_id, target.position),
            )
            self._db.execute("UPDATE messages SET active = 1 WHERE id = ?", (message_id,))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def append_message(
        self,
        conversation_id: str,
        role: Role,
        content: str,
        *,
        finish_reason: str = "",
        interrupted: bool = False,
        replaces: int | None = None,
        model: str = "",
        generation: str = "",
    ) -> StoredMessage:
        """Add a message at the end and commit; the first user message names the conversation.

        ``replaces``: the shown answer this one is a new version of (a regenerate). It is hidden,
        not deleted, in the same transaction, so a crash leaves one or the other shown.
        """
        conversation = self._require(conversation_id)
        now = time.time()
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if replaces is not None:
                position = self._hide_for_new_version(conversation_id, replaces)
            else:
                position = self._db.execute(
                    "SELECT COALESCE(MAX(position) + 1, 0) FROM messages"
                    " WHERE conversation_id = ? AND active = 1",
                    (conversation_id,),
                ).fetchone()[0]
            version = self._db.execute(
                "SELECT COALESCE(MAX(version) + 1, 0) FROM messages"
                " WHERE conversation_id = ? AND position = ?",
                (conversation_id, position),
            ).fetchone()[0]
            cursor = self._db.execute(
                "INSERT INTO messages (conversation_id, position, role, content, created_at,"
                " finish_reason, interrupted, version, model, generation)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    conversation_id,
                    position,
                    role,
                    content,
                    now,
                    finish_reason,
                    int(interrupted),
                    version,
                    model,
                    generation,
                ),
            )
            title = conversation.title
            if role == "user" and title == DEFAULT_TITLE:
                title = title_from_text(content)
            self._db.execute(
                "UPDATE conversations SET updated_at = ?, title = ? WHERE id = ?",
                (now, title, conversation_id),
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        stored = self.message(int(cursor.lastrowid or 0))
        assert stored is not None  # just committed
        return stored

    def _hide_for_new_version(self, conversation_id: str, replaces: int) -> int:
        """Inside a transaction: hide the shown answer ``replaces``; its position."""
        row = self._db.execute(
            "SELECT position, role, active FROM messages WHERE id = ? AND conversation_id = ?",
            (replaces, conversation_id),
        ).fetchone()
        if row is None or row["role"] != "assistant" or not row["active"]:
            raise ValueError(
                f"message {replaces} is not a shown answer of conversation {conversation_id!r}:"
                " expected the answer a regenerate replaces"
            )
        self._db.execute("UPDATE messages SET active = 0 WHERE id = ?", (replaces,))
        return int(row["position"])

    def update_message(
        self, message_id: int, content: str, *, finish_reason: str = "", interrupted: bool = False
    ) -> None:
        """Replace a message's text (a streaming answer grows through this) and commit."""
        cursor = self._db.execute(
            "UPDATE messages SET content = ?, finish_reason = ?, interrupted = ? WHERE id = ?",
            (content, finish_reason, int(interrupted), message_id),
        )
        if cursor.rowcount != 1:
            raise ValueError(f"no message with id {message_id}: expected an existing message")

    def truncate_from(self, conversation_id: str, position: int) -> None:
        """Delete the messages at ``position`` and after (regenerate, edit)."""
        self._db.execute(
            "DELETE FROM messages WHERE conversation_id = ? AND position >= ?",
            (conversation_id, position),
        )
        self._db.execute(
            "UPDATE conversations SET updated_at = ? WHERE id = ?", (time.time(), conversation_id)
        )

    def _require(self, conversation_id: str) -> Conversation:
        conversation = self.conversation(conversation_id)
        if conversation is None:
            raise ValueError(
                f"no conversation with id {conversation_id!r}: expected one the store created"
            )
        return conversation
