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
from collections.abc import Iterable
from typing import Any

from app.conversations.store import (
    Conversation,
    ConversationStore,
    StoredMessage,
)

logger = logging.getLogger(__name__)

FORMAT_NAME = "coreml-chat conversations"
FORMAT_VERSION = 1
ROLES = ("system", "user", "assistant")
ROLE_NAMES = {"system": "System", "user": "You", "assistant": "Assistant"}


class ExportFileError(ValueError):
    """A file to import is not one of our exports: says where, what was expected and found."""


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
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def _quote(text: str) -> str:
    return text.strip().replace("\n", "\n> ")


# --- import ----------------------------------------------------------------------------------


def parse_export(text: str) -> list[tuple[Conversation, list[StoredMessage]]]:
    """Check a JSON export completely; the chats and their messages, nothing written yet."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ExportFileError(
            f"expected a JSON export of coreml-chat, found text that is not JSON ({error})"
        ) from error
    _expect(isinstance(document, dict), "the file", "a JSON object", document)
    _expect(
        document.get("format") == FORMAT_NAME, "format", repr(FORMAT_NAME), document.get("format")
    )
    _expect(
        document.get("version") == FORMAT_VERSION,
        "version",
        f"{FORMAT_VERSION} (a newer app may have written it)",
        document.get("version"),
    )
    chats = document.get("conversations")
    _expect(isinstance(chats, list), "conversations", "a list", chats)
    return [_parse_conversation(chat, f"conversations[{n}]") for n, chat in enumerate(chats)]


def _parse_conversation(data: Any, where: str) -> tuple[Conversation, list[StoredMessage]]:
    _expect(isinstance(data, dict), where, "an object", data)
    conversation = Conversation(
        id=_field(data, where, "id", str),
        title=_field(data, where, "title", str),
        created_at=_number(data, where, "created_at"),
        updated_at=_number(data, where, "updated_at"),
        system_prompt=_field(data, where, "system_prompt", (str, type(None))),
    )
    _expect(bool(conversation.id.strip()), f"{where}.id", "a non-empty id", conversation.id)
    raw = data.get("messages")
    _expect(isinstance(raw, list), f"{where}.messages", "a list", raw)
    messages = [_parse_message(m, f"{where}.messages[{n}]") for n, m in enumerate(raw)]
    shown: dict[int, int] = {}
    seen: set[tuple[int, int]] = set()
    for number, message in enumerate(messages):
        place = f"{where}.messages[{number}]"
        key = (message.position, message.version)
        _expect(key not in seen, place, "a (position, version) pair used once", key)
        seen.add(key)
        shown[message.position] = shown.get(message.position, 0) + int(message.active)
    for position, count in sorted(shown.items()):
        _expect(count == 1, f"{where} position {position}", "exactly one shown version", count)
    return conversation, messages


def _parse_message(data: Any, where: str) -> StoredMessage:
    _expect(isinstance(data, dict), where, "an object", data)
    role = data.get("role")
    _expect(role in ROLES, f"{where}.role", " or ".join(ROLES), role)
    generation = data.get("generation")
    _expect(
        generation is None or isinstance(generation, dict),
        f"{where}.generation",
        "an object or null",
        generation,
    )
    position = _field(data, where, "position", int)
    version = _field(data, where, "version", int)
    _expect(position >= 0 and version >= 0, where, "positions and versions ≥ 0", data)
    return StoredMessage(
        id=0,
        conversation_id="",
        position=position,
        role=role,
        content=_field(data, where, "content", str),
        created_at=_number(data, where, "created_at"),
        finish_reason=_field(data, where, "finish_reason", str),
        interrupted=_field(data, where, "interrupted", bool),
        version=version,
        active=_field(data, where, "shown", bool),
        model=_field(data, where, "model", str),
        generation="" if generation is None else json.dumps(generation, sort_keys=True),
    )


def _field(data: dict, where: str, name: str, kind: type | tuple[type, ...]) -> Any:
    value = data.get(name, ...)
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
    _expect(ok, f"{where}.{name}", names.replace("NoneType", "null"), value)
    return value


def _number(data: dict, where: str, name: str) -> float:
    value = data.get(name, ...)
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    _expect(ok, f"{where}.{name}", "a number (Unix seconds)", value)
    return float(value)


def _expect(condition: bool, where: str, expected: str, found: Any) -> None:
    if not condition:
        shown = "nothing" if found is ... else repr(found)
        if len(shown) > 80:
            shown = shown[:77] + "…"
        raise ExportFileError(f"{where}: expected {expected}, found {shown}")


def import_json(store: ConversationStore, text: str) -> list[str]:
    """Import every chat of a JSON export in one transaction; their ids in the store (a chat
    whose id is taken already comes in as a copy with a new id)."""
    return store.import_conversations(parse_export(text))
