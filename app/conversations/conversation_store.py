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

from app.conversations.store_migrations import MIGRATIONS
from engine import paths
from engine.messages import Role

logger = logging.getLogger(__name__)

DATABASE_NAME = "conversations.sqlite3"
DEFAULT_TITLE = "New chat"
TITLE_LENGTH = 48

_MIGRATIONS = MIGRATIONS  # the name older tests and tools use

SNIPPET_TOKENS = 10  # words around a search match in its snippet
MATCH_START, MATCH_END = "\x02", "\x03"  # how a snippet marks the matched words


class StorageError(RuntimeError):
    """The conversation database cannot be opened or has an unexpected shape."""


@dataclass(frozen=True)
class Conversation:
    id: str
    title: str
    created_at: float
    updated_at: float
    system_prompt: str | None = None  # the chat's own; None: the global one (settings)


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
    version: int = 0  # answers at one position (regenerate keeps the earlier ones)
    active: bool = True  # the shown version at its position
    version_number: int = 1  # 1-based place of this version among its position's versions
    version_count: int = 1
    model: str = ""  # the name of the model that wrote an answer ("" when unknown)
    generation: str = ""  # its generation settings as JSON ("" when unknown)


@dataclass(frozen=True)
class SearchHit:
    """A chat found by a search: its best matching message (None: the title matched) and a
    snippet of that message with the matched words between MATCH_START and MATCH_END."""

    conversation: Conversation
    message_id: int | None
    snippet: str


def fts_query(text: str) -> str:
    """The user's words as an FTS5 query: each word a quoted prefix, all of them required (no
    FTS syntax from the user is interpreted: quotes are doubled inside each phrase)."""
    words = [word.replace('"', '""') for word in text.split()]
    return " ".join(f'"{word}"*' for word in words if word.strip('"'))


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
            return [hit.conversation for hit in self.search(search)]
        rows = self._db.execute("SELECT * FROM conversations ORDER BY updated_at DESC").fetchall()
        return [_conversation(row) for row in rows]

    def search(self, text: str, *, snippet_tokens: int = SNIPPET_TOKENS) -> list[SearchHit]:
        """Chats whose title contains ``text`` or whose shown messages hold every word of it
        (word prefixes, any case or accent; the FTS5 index), most recently updated first; each
        with its best matching message and a snippet around the match."""
        query = fts_query(text)
        if not query:
            return []
        best: dict[str, tuple[int, str]] = {}
        rows = self._db.execute(
            "SELECT m.conversation_id, m.id, snippet(messages_fts, 0, char(2), char(3), '…', ?)"
            " AS snippet FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid"
            " WHERE messages_fts MATCH ? AND m.active = 1 ORDER BY bm25(messages_fts)",
            (snippet_tokens, query),
        ).fetchall()
        for row in rows:
            best.setdefault(row["conversation_id"], (row["id"], row["snippet"]))
        pattern = "%" + _escape_like(text.strip()) + "%"
        hits = []
        for row in self._db.execute(
            "SELECT *, title LIKE ? ESCAPE '\\' AS title_matches FROM conversations"
            " ORDER BY updated_at DESC",
            (pattern,),
        ).fetchall():
            found = best.get(row["id"])
            if found is not None:
                hits.append(SearchHit(_conversation(row), found[0], " ".join(found[1].split())))
            elif row["title_matches"]:
                hits.append(SearchHit(_conversation(row), None, ""))
        return hits

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

    def set_system_prompt(self, conversation_id: str, prompt: str | None) -> None:
        """The chat's own system prompt; None: follow the global one again."""
        self._require(conversation_id)
        self._db.execute(
            "UPDATE conversations SET system_prompt = ? WHERE id = ?", (prompt, conversation_id)
        )

    def delete_empty_conversations(self) -> int:
        """Remove chats that hold nothing of the user's (no message, no own system prompt, the
        default title); how many. Older versions stored every "New chat" at once."""
        cursor = self._db.execute(
            "DELETE FROM conversations WHERE title = ? AND system_prompt IS NULL AND NOT EXISTS"
            " (SELECT 1 FROM messages m WHERE m.conversation_id = conversations.id)",
            (DEFAULT_TITLE,),
        )
        return cursor.rowcount

    def delete_conversation(self, conversation_id: str) -> None:
        self._db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    def import_conversations(
        self, records: list[tuple[Conversation, list[StoredMessage]]]
    ) -> list[str]:
        """Write whole chats (times, versions and all, as an export holds them) in ONE
        transaction: a failure leaves the store as it was. A taken id gets a new one."""
        ids: list[str] = []
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for conversation, messages in records:
                conversation_id = conversation.id
                if conversation_id in ids or self.conversation(conversation_id) is not None:
                    conversation_id = uuid.uuid4().hex
                self._db.execute(
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
                self._db.executemany(
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
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return ids

    # --- messages --------------------------------------------------------------------------------

    def messages(self, conversation_id: str) -> list[StoredMessage]:
        """The conversation as shown: one (the active) version per position."""
        rows = self._db.execute(
            f"{_SELECT_MESSAGES} WHERE m.conversation_id = ? AND m.active = 1 ORDER BY m.position",
            (conversation_id,),
        ).fetchall()
        return [_message(row) for row in rows]

    def all_messages(self, conversation_id: str) -> list[StoredMessage]:
        """Every version of every message, by position then version (export)."""
        rows = self._db.execute(
            f"{_SELECT_MESSAGES} WHERE m.conversation_id = ? ORDER BY m.position, m.version",
            (conversation_id,),
        ).fetchall()
        return [_message(row) for row in rows]

    def versions(self, message_id: int) -> list[StoredMessage]:
        """The versions at ``message_id``'s position, oldest first."""
        rows = self._db.execute(
            f"{_SELECT_MESSAGES} JOIN messages o ON o.id = ? AND m.conversation_id ="
            " o.conversation_id AND m.position = o.position ORDER BY m.version",
            (message_id,),
        ).fetchall()
        return [_message(row) for row in rows]

    def message(self, message_id: int) -> StoredMessage | None:
        row = self._db.execute(f"{_SELECT_MESSAGES} WHERE m.id = ?", (message_id,)).fetchone()
        return _message(row) if row else None

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


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _conversation(row: sqlite3.Row) -> Conversation:
    return Conversation(
        row["id"], row["title"], row["created_at"], row["updated_at"], row["system_prompt"]
    )


_SELECT_MESSAGES = (
    "SELECT m.*, (SELECT COUNT(*) FROM messages v WHERE v.conversation_id = m.conversation_id"
    " AND v.position = m.position) AS version_count, (SELECT COUNT(*) FROM messages v"
    " WHERE v.conversation_id = m.conversation_id AND v.position = m.position"
    " AND v.version <= m.version) AS version_number FROM messages m"
)


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
        version=row["version"],
        active=bool(row["active"]),
        version_number=row["version_number"],
        version_count=row["version_count"],
        model=row["model"],
        generation=row["generation"],
    )
