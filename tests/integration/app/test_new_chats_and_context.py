"""New chats are stored at their first message (no empty rows pile up), and the context gauge
estimates a chat not yet run in this session instead of showing "— / N"."""

from __future__ import annotations

from pathlib import Path

from app.chat.live_stats import estimate_context_tokens
from app.chat.status_line import describe_context
from app.conversations.store import ConversationStore

ANSWER_TIMEOUT_MS = 120_000


def test_new_chats_are_stored_only_when_their_first_message_is_sent(
    qtbot, make_window, tiny_chat_model: Path
) -> None:
    window = make_window(tiny_chat_model, max_new_tokens=2, in_process=True)
    for _ in range(3):
        window.new_chat()
    assert window.store.conversations() == [] and window.sidebar.model.rowCount() == 0
    assert window.title_label.text() == "New chat"
    assert window.controller.send("Hello")
    assert [c.title for c in window.store.conversations()] == ["Hello"]
    qtbot.waitUntil(lambda: not window.controller.busy, timeout=ANSWER_TIMEOUT_MS)
    window.new_chat()
    window.new_chat()
    assert len(window.store.conversations()) == 1 and window.sidebar.model.rowCount() == 1
    assert window.chat_view.rows == []


def test_empty_chats_left_by_older_versions_are_removed_at_start(qtbot, make_window) -> None:
    store = ConversationStore()  # the window's database (the test's private app-data folder)
    for _ in range(3):
        store.create_conversation()  # as older versions stored every "New chat" at once
    named = store.create_conversation("Kept: renamed by the user")
    prompted = store.create_conversation()
    store.set_system_prompt(prompted.id, "Kept: has its own prompt")
    used = store.create_conversation()
    store.append_message(used.id, "user", "Kept: has a message")
    store.close()
    window = make_window()
    assert {c.id for c in window.store.conversations()} == {named.id, prompted.id, used.id}
    assert window.sidebar.model.rowCount() == 3


def test_a_chat_not_run_in_this_session_shows_an_estimated_context(
    qtbot, make_window, tiny_chat_model: Path
) -> None:
    window = make_window(
        tiny_chat_model, max_new_tokens=2, system_prompt="Be brief.", in_process=True
    )
    store = window.store
    chat = store.create_conversation()
    store.append_message(chat.id, "user", "x" * 200)
    store.append_message(chat.id, "assistant", "y" * 120)
    window.open_conversation(chat.id)
    stats = window.controller.stats
    expected = estimate_context_tokens(["Be brief.", "x" * 200, "y" * 120])
    assert expected == (2 + 4) + (50 + 4) + (30 + 4)
    assert (stats.context_used, stats.context_estimated) == (expected, True)
    assert window.status_line.context_label.text() == f"≈ {expected} / 256 tokens"
    assert "estimated" in window.status_line.context_label.toolTip()
    assert window.status_line.gauge.isVisibleTo(window) and window.status_line.gauge.value() > 0
    window.new_chat()
    assert describe_context(window.controller.stats) == "— / 256 tokens"  # nothing to estimate

    window.controller.open_conversation(chat.id)
    window.controller.send("and?")
    qtbot.waitUntil(lambda: not window.controller.busy, timeout=ANSWER_TIMEOUT_MS)
    stats = window.controller.stats
    assert not stats.context_estimated and "≈" not in window.status_line.context_label.text()
    assert stats.context_used is not None and stats.context_used > 0
