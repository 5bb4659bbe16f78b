"""What the store hands out: plain frozen dataclasses, no SQLite and no Qt."""

from __future__ import annotations

from dataclasses import dataclass

from engine.messages import Role

DEFAULT_TITLE = "New chat"
TITLE_LENGTH = 48


class StorageError(RuntimeError):
    """The conversation database cannot be opened or has an unexpected shape."""


@dataclass(frozen=True)
class Conversation:
    id: str
    title: str
    created_at: float
    updated_at: float
    system_prompt: str | None = None  # the chat's own; None: the global one (settings)
    pinned: bool = False  # kept at the top of the sidebar


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


def title_from_text(text: str) -> str:
    """A conversation title from its first user message: one line, at most TITLE_LENGTH chars."""
    line = " ".join(text.split())
    if not line:
        return DEFAULT_TITLE
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"
