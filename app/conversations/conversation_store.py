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
from dataclasses import dataclass
from pathlib import Path

from engine import paths
from engine.messages import Role

logger = logging.getLogger(__name__)

DATABASE_NAME = "conversations.sqlite3"
DEFAULT_TITLE = "New chat"
TITLE_LENGTH = 48

_MIGRATIONS: tuple[str, ...] = (
    # 1: conversations and their messages
    """
    CREATE TABLE conversations (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
        content TEXT NOT NULL,
        created_at REAL NOT NULL,
        finish_reason TEXT NOT NULL DEFAULT '',
        UNIQUE (conversation_id, position)
    );
    CREATE INDEX messages_by_conversation ON messages(conversation_id, position);
    """,
    # 2: an answer cut by a quit, SIGTERM, a crash or kill -9 (written while it streams)
    """
    ALTER TABLE messages ADD COLUMN interrupted INTEGER NOT NULL DEFAULT 0;
    """,
)


class StorageError(RuntimeError):
    """The conversation database cannot be opened or has an unexpected shape."""


@dataclass(frozen=True)
class Conversation:
    id: str
    title: str
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class StoredMessage:
    id: int
    conversation_id: str
    position: int
    role: Role
    content: str
    created_at: float
    finish_reason: str = ""  # "" while unknown; the engine's finish reason for answers
    interrupted: bool = False  # cut off before the engine finished it (quit, crash, kill -9)


def default_database_path() -> Path:
    return paths.data_dir() / DATABASE_NAME


def title_from_text(text: str) -> str:
    """A conversation title from its first user message: one line, at most TITLE_LENGTH chars."""
    line = " ".join(text.split())
    if not line:
        return DEFAULT_TITLE
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"


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
            self._db = sqlite3.connect(str(self.path), isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
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
        if version > len(_MIGRATIONS):
            raise StorageError(
                f"the conversation database {self.path} has schema version {version}; "
                f"this app knows versions up to {len(_MIGRATIONS)} (a newer app wrote it)"
            )
        for number, script in enumerate(_MIGRATIONS[version:], start=version + 1):
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
            pattern = "%" + _escape_like(search.strip()) + "%"
            rows = self._db.execute(
                "SELECT * FROM conversations c WHERE c.title LIKE ? ESCAPE '\\' OR EXISTS ("
                " SELECT 1 FROM messages m WHERE m.conversation_id = c.id"
                " AND m.content LIKE ? ESCAPE '\\') ORDER BY updated_at DESC",
                (pattern, pattern),
            ).fetchall()
        else:
            rows = self._db.execute(
                "SELECT * FROM conversations ORDER BY updated_at DESC"
            ).fetchall()
        return [_conversation(row) for row in rows]

    def conversation(self, conversation_id: str) -> Conversation | None:
        row = self._db.execute(
            "SELECT * FROM conversations WHERE id = ?", (conversation_id,)
        ).fetchone()
        return _conversation(row) if row else None

    def rename_conversation(self, conversation_id: str, title: str) -> None:
        title = " ".join(title.split())
        if not title:
            raise ValueError("a conversation title must not be empty: expected some text")
        self._require(conversation_id)
        self._db.execute(
            "UPDATE conversations SET title = ? WHERE id = ?", (title, conversation_id)
        )

    def delete_conversation(self, conversation_id: str) -> None:
        self._db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    # --- messages --------------------------------------------------------------------------------

    def messages(self, conversation_id: str) -> list[StoredMessage]:
        rows = self._db.execute(
            "SELECT * FROM messages WHERE conversation_id = ? ORDER BY position",
            (conversation_id,),
        ).fetchall()
        return [_message(row) for row in rows]

    def message(self, message_id: int) -> StoredMessage | None:
        row = self._db.execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
        return _message(row) if row else None

    def append_message(
        self,
        conversation_id: str,
        role: Role,
        content: str,
        *,
        finish_reason: str = "",
        interrupted: bool = False,
    ) -> StoredMessage:
        """Add a message at the end and commit; the first user message names the conversation."""
        conversation = self._require(conversation_id)
        now = time.time()
        self._db.execute("BEGIN IMMEDIATE")
        try:
            position = self._db.execute(
                "SELECT COALESCE(MAX(position) + 1, 0) FROM messages WHERE conversation_id = ?",
                (conversation_id,),
            ).fetchone()[0]
            cursor = self._db.execute(
                "INSERT INTO messages (conversation_id, position, role, content, created_at,"
                " finish_reason, interrupted) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (conversation_id, position, role, content, now, finish_reason, int(interrupted)),
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
        return StoredMessage(
            int(cursor.lastrowid or 0),
            conversation_id,
            position,
            role,
            content,
            now,
            finish_reason,
            interrupted,
        )

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


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _conversation(row: sqlite3.Row) -> Conversation:
    return Conversation(row["id"], row["title"], row["created_at"], row["updated_at"])


def _message(row: sqlite3.Row) -> StoredMessage:
    return StoredMessage(
        id=row["id"],
        conversation_id=row["conversation_id"],
        position=row["position"],
        role=row["role"],
        content=row["content"],
        created_at=row["created_at"],
        finish_reason=row["finish_reason"],
        interrupted=bool(row["interrupted"]),
    )
