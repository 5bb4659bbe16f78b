"""The conversation store: WAL, migrations, ordering, search, truncation, durability across processes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from app.conversations.store import (
    DEFAULT_TITLE,
    MIGRATIONS,
    ConversationStore,
    StorageError,
    title_from_text,
)


def test_store_uses_wal_and_the_latest_schema(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "c.sqlite3")
    mode = store._db.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    assert store.schema_version == len(MIGRATIONS)
    store.close()
    reopened = ConversationStore(tmp_path / "c.sqlite3")  # a second open migrates nothing
    assert reopened.schema_version == len(MIGRATIONS)


def test_a_version_1_database_gains_the_interrupted_column_and_keeps_its_messages(
    tmp_path: Path,
) -> None:
    database = tmp_path / "old.sqlite3"
    old = sqlite3.connect(database, isolation_level=None)
    old.executescript(f"BEGIN; {MIGRATIONS[0]}; PRAGMA user_version = 1; COMMIT;")
    old.execute("INSERT INTO conversations VALUES ('c1', 'Old chat', 1.0, 1.0)")
    old.execute(
        "INSERT INTO messages (conversation_id, position, role, content, created_at,"
        " finish_reason) VALUES ('c1', 0, 'user', 'kept', 1.0, '')"
    )
    old.close()
    store = ConversationStore(database)
    assert store.schema_version == len(MIGRATIONS)
    (message,) = store.messages("c1")
    assert message.content == "kept" and message.interrupted is False
    answer = store.append_message("c1", "assistant", "half", interrupted=True)
    assert store.message(answer.id).interrupted is True
    store.update_message(answer.id, "half an answer", finish_reason="eos")
    assert store.message(answer.id) == replace(
        answer, content="half an answer", finish_reason="eos", interrupted=False
    )


def test_messages_keep_their_order_and_the_first_user_message_names_the_conversation(
    tmp_path: Path,
) -> None:
    store = ConversationStore(tmp_path / "c.sqlite3")
    conversation = store.create_conversation()
    assert conversation.title == DEFAULT_TITLE
    store.append_message(conversation.id, "user", "How do   tides\nwork?")
    store.append_message(conversation.id, "assistant", "The moon.", finish_reason="eos")
    store.append_message(conversation.id, "user", "And the sun?")
    messages = store.messages(conversation.id)
    assert [m.position for m in messages] == [0, 1, 2]
    assert [m.role for m in messages] == ["user", "assistant", "user"]
    assert messages[1].finish_reason == "eos"
    assert store.conversation(conversation.id).title == "How do tides work?"


def test_showing_a_version_hides_the_others_at_its_position(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "c.sqlite3")
    conversation = store.create_conversation()
    store.append_message(conversation.id, "user", "Name a colour.")
    first = store.append_message(conversation.id, "assistant", "Blue.")
    second = store.append_message(conversation.id, "assistant", "Red.", replaces=first.id)
    third = store.append_message(conversation.id, "assistant", "Green.", replaces=second.id)
    assert [m.content for m in store.versions(first.id)] == ["Blue.", "Red.", "Green."]
    for shown in (first, second, third, first):
        store.show_version(shown.id)
        answers = [m for m in store.messages(conversation.id) if m.role == "assistant"]
        assert [m.id for m in answers] == [shown.id]  # one version at the position, the chosen one
    assert len(store.versions(first.id)) == 3  # the others stay stored
    with pytest.raises(ValueError, match="no message with id"):
        store.show_version(10_000)


def test_search_matches_titles_and_message_text_and_escapes_wildcards(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "c.sqlite3")
    first = store.create_conversation("Recipes")
    store.append_message(first.id, "user", "pancakes with 100% buckwheat")
    second = store.create_conversation("Physics")
    store.append_message(second.id, "user", "what is entropy")
    assert [c.id for c in store.conversations(search="ENTROPY")] == [second.id]
    assert [c.id for c in store.conversations(search="recipes")] == [first.id]
    assert [c.id for c in store.conversations(search="100%")] == [first.id]
    assert store.conversations(search="0_b") == []  # "_" is not a wildcard
    assert [c.id for c in store.conversations()] == [second.id, first.id]  # most recent first


def test_truncate_rename_delete(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "c.sqlite3")
    conversation = store.create_conversation()
    for role, text in (("user", "a"), ("assistant", "b"), ("user", "c"), ("assistant", "d")):
        store.append_message(conversation.id, role, text)
    store.truncate_from(conversation.id, 2)
    assert [m.content for m in store.messages(conversation.id)] == ["a", "b"]
    store.rename_conversation(conversation.id, "  Renamed \n chat ")
    assert store.conversation(conversation.id).title == "Renamed chat"
    with pytest.raises(ValueError, match="must not be empty"):
        store.rename_conversation(conversation.id, "   ")
    store.delete_conversation(conversation.id)
    assert store.conversations() == []
    assert store._db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0
    with pytest.raises(ValueError, match="no conversation"):
        store.append_message(conversation.id, "user", "x")


def test_a_killed_process_loses_no_committed_message(tmp_path: Path) -> None:
    database = tmp_path / "c.sqlite3"
    code = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from app.conversations.store import ConversationStore\n"
        f"store = ConversationStore(Path({str(database)!r}))\n"
        "c = store.create_conversation()\n"
        "store.append_message(c.id, 'user', 'saved before generation')\n"
        "os._exit(9)  # no close, no checkpoint: as if killed\n"
    )
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True)
    assert result.returncode == 9, result.stderr
    store = ConversationStore(database)
    (conversation,) = store.conversations()
    assert [m.content for m in store.messages(conversation.id)] == ["saved before generation"]


def test_a_newer_schema_or_a_non_database_file_is_refused_clearly(tmp_path: Path) -> None:
    newer = tmp_path / "newer.sqlite3"
    connection = sqlite3.connect(newer)
    connection.execute("PRAGMA user_version = 99")
    connection.close()
    with pytest.raises(StorageError, match="schema version 99"):
        ConversationStore(newer)
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError, match="expected an SQLite file"):
        ConversationStore(garbage)


def test_title_from_text() -> None:
    assert title_from_text("   ") == DEFAULT_TITLE
    long = title_from_text("word " * 40)
    assert len(long) <= 48 and long.endswith("…")
