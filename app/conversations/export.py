"""Conversations out and in: Markdown to read, JSON to keep (and to import again).

The JSON holds everything the store does, so export → import → export gives the same bytes:
roles, times (Unix seconds, as stored), every answer version and which one is shown, the model
and generation settings of each answer, interrupted flags, each chat's own system prompt. It
names its format and version; an import checks every field first and then writes all chats in
one transaction, so a bad file imports nothing. No Qt here (the dialog is ``export_dialog.py``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from app.conversations.export_schema import (
    CONVERSATION,
    MESSAGE,
    ExportFileError,  # noqa: F401 (callers catch it from here)
    fail,
    load_json,
    read_list,
    read_object,
)
from app.conversations.store import (
    Conversation,
    ConversationStore,
    StoredMessage,
)

logger = logging.getLogger(__name__)

FORMAT_NAME = "coreml-chat conversations"
FORMAT_VERSION = 1
PROGRESS_EVERY = 100  # chats checked between two progress reports
ROLE_NAMES = {"system": "System", "user": "You", "assistant": "Assistant"}


# --- export ----------------------------------------------------------------------------------


def _message_dict(message: StoredMessage) -> dict[str, Any]:
    return {
        "position": message.position,
        "version": message.version,
        "shown": message.active,
        "role": message.role,
        "content": message.content,
        "created_at": message.created_at,
        "finish_reason": message.finish_reason,
        "interrupted": message.interrupted,
        "model": message.model,
        "generation": json.loads(message.generation) if message.generation else None,
    }


def export_json(store: ConversationStore, conversation_ids: Iterable[str]) -> str:
    """The chats as one JSON document (oldest chat first), every version of every message."""
    conversations = []
    for conversation in _conversations(store, conversation_ids):
        conversations.append(
            {
                "id": conversation.id,
                "title": conversation.title,
                "created_at": conversation.created_at,
                "updated_at": conversation.updated_at,
                "system_prompt": conversation.system_prompt,
                "messages": [_message_dict(m) for m in store.all_messages(conversation.id)],
            }
        )
    document = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "conversations": conversations}
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def export_markdown(store: ConversationStore, conversation_ids: Iterable[str]) -> str:
    """The chats as they are shown (the shown answer versions), for people to read."""
    parts: list[str] = []
    for conversation in _conversations(store, conversation_ids):
        lines = [f"# {conversation.title}", "", f"*{_when(conversation.created_at)}*", ""]
        if conversation.system_prompt is not None:
            lines += ["> **System prompt (this chat):** " + _quote(conversation.system_prompt), ""]
        for message in store.messages(conversation.id):
            who = ROLE_NAMES[message.role]
            if message.role == "assistant" and message.model:
                who = message.model
            notes = [_when(message.created_at)]
            if message.version_count > 1:
                notes.append(f"version {message.version_number} of {message.version_count}")
            if message.interrupted:
                notes.append("interrupted")
            lines += [f"**{who}** · {' · '.join(notes)}", "", message.content.rstrip(), ""]
        parts.append("\n".join(lines).rstrip() + "\n")
    return "\n---\n\n".join(parts)


def _conversations(store: ConversationStore, ids: Iterable[str]) -> list[Conversation]:
    found = []
    for conversation_id in ids:
        conversation = store.conversation(conversation_id)
        if conversation is None:
            raise ValueError(f"no conversation with id {conversation_id!r} to export")
        found.append(conversation)
    return sorted(found, key=lambda c: (c.created_at, c.id))


def _when(timestamp: float) -> str:
    """The local date and time; a time no calendar can show (written by an older import that did
    not check it) reads as such instead of failing the whole export."""
    try:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))
    except (OverflowError, ValueError, OSError):
        return f"unknown time ({timestamp!r} is not a date)"


def _quote(text: str) -> str:
    return text.strip().replace("\n", "\n> ")


# --- import ----------------------------------------------------------------------------------


def parse_export(
    text: str, *, progress: Callable[[int, int], None] | None = None
) -> list[tuple[Conversation, list[StoredMessage]]]:
    """Check a JSON export completely against ``export_schema``; the chats and their messages,
    nothing written yet. ``progress(done, total)`` every PROGRESS_EVERY chats and at the end."""
    document = load_json(text)
    if not isinstance(document, dict):
        fail("the file", "a JSON object", document)
    if document.get("format") != FORMAT_NAME:
        fail("format", repr(FORMAT_NAME), document.get("format", ...))
    if document.get("version") != FORMAT_VERSION:
        fail(
            "version",
            f"{FORMAT_VERSION} (a newer app may have written it)",
            document.get("version", ...),
        )
    chats = read_list(document, "", "conversations")
    records = []
    for number, chat in enumerate(chats):
        records.append(_parse_conversation(chat, f"conversations[{number}]"))
        done = number + 1
        if progress is not None and (done % PROGRESS_EVERY == 0 or done == len(chats)):
            progress(done, len(chats))
    return records


def _parse_conversation(data: Any, where: str) -> tuple[Conversation, list[StoredMessage]]:
    fields = read_object(data, where, CONVERSATION)
    conversation = Conversation(
        id=fields["id"],
        title=fields["title"],
        created_at=float(fields["created_at"]),
        updated_at=float(fields["updated_at"]),
        system_prompt=fields["system_prompt"],
    )
    raw = read_list(data, where, "messages")
    messages = [_parse_message(m, f"{where}.messages[{n}]") for n, m in enumerate(raw)]
    shown: dict[int, int] = {}
    seen: set[tuple[int, int]] = set()
    for number, message in enumerate(messages):
        key = (message.position, message.version)
        if key in seen:
            fail(f"{where}.messages[{number}]", "a (position, version) pair used once", key)
        seen.add(key)
        shown[message.position] = shown.get(message.position, 0) + int(message.active)
    for position, count in sorted(shown.items()):
        if count != 1:
            fail(f"{where} position {position}", "exactly one shown version", count)
    return conversation, messages


def _parse_message(data: Any, where: str) -> StoredMessage:
    fields = read_object(data, where, MESSAGE)
    generation = fields["generation"]
    return StoredMessage(
        id=0,
        conversation_id="",
        position=fields["position"],
        role=fields["role"],
        content=fields["content"],
        created_at=float(fields["created_at"]),
        finish_reason=fields["finish_reason"],
        interrupted=fields["interrupted"],
        version=fields["version"],
        active=fields["shown"],
        model=fields["model"],
        generation="" if generation is None else json.dumps(generation, sort_keys=True),
    )


def import_json(store: ConversationStore, text: str) -> list[str]:
    """Import every chat of a JSON export in one transaction; their ids in the store (a chat
    whose id is taken already comes in as a copy with a new id)."""
    return store.import_conversations(parse_export(text))
