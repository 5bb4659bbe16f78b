"""Answer versions: a regenerate keeps the earlier answers, ‹ › flips between them, the shown one is
what the next turn continues from, and they survive a restart."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.conversations.store import MIGRATIONS, ConversationStore
from engine.messages import GenerationConfig

ANSWER_TIMEOUT_MS = 120_000


def _wait_idle(qtbot, window) -> None:
    qtbot.waitUntil(lambda: not window.controller.busy, timeout=ANSWER_TIMEOUT_MS)


def test_a_new_version_hides_the_shown_answer_and_show_version_flips_back(
    tmp_path: Path,
) -> None:
    store = ConversationStore(tmp_path / "c.sqlite3")
    chat = store.create_conversation()
    store.append_message(chat.id, "user", "Name a colour")
    first = store.append_message(chat.id, "assistant", "Red")
    second = store.append_message(chat.id, "assistant", "Blue", replaces=first.id)
    assert (second.position, second.version) == (first.position, first.version + 1)
    shown = store.messages(chat.id)
    assert [m.content for m in shown] == ["Name a colour", "Blue"]
    assert (shown[1].version_number, shown[1].version_count) == (2, 2)
    store.show_version(first.id)
    assert [m.content for m in store.messages(chat.id)] == ["Name a colour", "Red"]
    assert [m.content for m in store.versions(second.id)] == ["Red", "Blue"]
    assert len(store.all_messages(chat.id)) == 3
    store.append_message(chat.id, "user", "Why?")  # continues after the shown version
    assert [m.position for m in store.messages(chat.id)] == [0, 1, 2]
    with pytest.raises(ValueError, match="not a shown answer"):
        store.append_message(chat.id, "assistant", "x", replaces=second.id)  # hidden one
    store.truncate_from(chat.id, 1)  # an edit drops every version after it
    assert store.all_messages(chat.id)[-1].content == "Name a colour"


def test_a_version_2_database_keeps_its_messages_as_single_versions(tmp_path: Path) -> None:
    database = tmp_path / "old.sqlite3"
    old = sqlite3.connect(database, isolation_level=None)
    for number, script in enumerate(MIGRATIONS[:2], start=1):
        old.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
    old.execute("INSERT INTO conversations VALUES ('c1', 'Old chat', 1.0, 1.0)")
    for position, role in enumerate(("user", "assistant")):
        old.execute(
            "INSERT INTO messages (conversation_id, position, role, content, created_at,"
            " finish_reason, interrupted) VALUES ('c1', ?, ?, ?, 1.0, '', ?)",
            (position, role, f"{role} text", position),
        )
    old.close()
    store = ConversationStore(database)
    question, answer = store.messages("c1")
    assert (question.content, answer.content, answer.interrupted) == (
        "user text",
        "assistant text",
        True,
    )
    assert (answer.version_number, answer.version_count, answer.active) == (1, 1, True)
    newer = store.append_message("c1", "assistant", "again", replaces=answer.id)
    assert newer.id > answer.id and newer.version_count == 2


def test_regenerate_keeps_versions_that_flip_continue_and_survive_a_restart(
    qtbot, make_window, tiny_chat_model: Path
) -> None:
    window = make_window(tiny_chat_model, max_new_tokens=6, in_process=True)  # greedy
    requests = []
    worker = window.bridge.worker
    submit = worker.submit
    worker.submit = lambda request: (requests.append(request), submit(request))[1]
    window.controller.send("Name a colour")
    _wait_idle(qtbot, window)
    conversation_id = window.controller.current_conversation_id
    first = window.store.messages(conversation_id)[-1]
    assert not window.chat_view.rows[-1].versions.isVisibleTo(window)  # one version: no ‹ ›
    assert first.model == tiny_chat_model.name  # stored with the answer: the model's folder name
    assert json.loads(first.generation)["max_new_tokens"] == 6

    window.settings_store.update(  # a different answer this time (sampled, fixed seed)
        generation=GenerationConfig(max_new_tokens=6, temperature=1.5, seed=7)
    )
    qtbot.mouseClick(window.chat_view.rows[-1].regenerate_button, Qt.MouseButton.LeftButton)
    _wait_idle(qtbot, window)
    assert [m.content for m in requests[-1].messages] == ["Name a colour"]  # old answer left out
    second = window.store.messages(conversation_id)[-1]
    assert second.id != first.id and second.content != first.content
    row = window.chat_view.rows[-1]
    assert len(window.chat_view.rows) == 2 and row.versions.text == "2/2"
    assert row.versions.previous_button.isEnabled() and not row.versions.next_button.isEnabled()

    qtbot.mouseClick(row.versions.previous_button, Qt.MouseButton.LeftButton)  # ‹
    row = window.chat_view.rows[-1]
    assert row.text == first.content and row.versions.text == "1/2"
    window.controller.send("And another?")
    _wait_idle(qtbot, window)
    history = [m.content for m in requests[-1].messages]
    assert history == ["Name a colour", first.content, "And another?"]  # the shown version
    earlier = window.chat_view.rows[1]  # no longer the last answer: shown, not switchable
    assert earlier.versions.text == "1/2" and not earlier.versions.next_button.isEnabled()
    assert not window.controller.show_version(first.id, +1)
    window.close()

    again = make_window(tiny_chat_model, in_process=True)
    assert again.controller.current_conversation_id == conversation_id
    rows = again.chat_view.rows
    assert [r.text for r in rows[:2]] == ["Name a colour", first.content]
    assert rows[1].versions.text == "1/2"
    assert [m.content for m in again.store.versions(first.id)] == [first.content, second.content]


def test_each_answer_is_labelled_with_the_model_that_wrote_it(qtbot, make_window) -> None:
    window = make_window()  # no model loaded: the labels come from the store alone
    store = window.store
    chat = store.create_conversation()
    store.append_message(chat.id, "user", "Hi")
    store.append_message(chat.id, "assistant", "Hello", model="Mistral-7B-Instruct")
    store.append_message(chat.id, "user", "Again")
    store.append_message(chat.id, "assistant", "Hey", model="SmolLM2-135M-Instruct")
    store.append_message(chat.id, "user", "Older")
    store.append_message(chat.id, "assistant", "From before models were stored")
    window.chat_view.assistant_name = "TinyMistral"  # as if another model were loaded now
    window.open_conversation(chat.id)
    labels = [row.author_label.text() for row in window.chat_view.rows if row.role == "assistant"]
    # the last was stored without a model name: not credited to the one loaded now (issue 24)
    assert labels == ["Mistral-7B-Instruct", "SmolLM2-135M-Instruct", "Assistant"]
    assert window.chat_view.rows[1].avatar.text() == "M"
