"""Search: the FTS5 index kept in step with the messages, snippets with the match highlighted, and
choosing a hit opens its chat scrolled to the message."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QTextBrowser

from app.conversations.conversation_list_model import (
    ConversationListModel,
    MatchedMessageRole,
    SnippetRole,
)
from app.conversations.search_snippet import matched_words, snippet_html
from app.conversations.store import (
    MATCH_END,
    MATCH_START,
    MIGRATIONS,
    ConversationStore,
    fts_query,
)


def _indexed(store: ConversationStore, word: str) -> list[int]:
    rows = store._db.execute(
        "SELECT rowid FROM messages_fts WHERE messages_fts MATCH ? ORDER BY rowid", (word,)
    ).fetchall()
    return [row[0] for row in rows]


def test_the_index_follows_inserts_updates_version_switches_and_deletes(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "c.sqlite3")
    chat = store.create_conversation("Kitchen")
    question = store.append_message(chat.id, "user", "How long do I boil an egg?")
    answer = store.append_message(chat.id, "assistant", "About", interrupted=True)
    store.update_message(answer.id, "About seven minutes for a soft yolk.")  # streamed
    assert _indexed(store, "yolk") == [answer.id] and _indexed(store, "about") == [answer.id]
    (hit,) = store.search("YOLK")
    assert (hit.conversation.id, hit.message_id) == (chat.id, answer.id)
    assert matched_words(hit.snippet) == ["yolk"]
    newer = store.append_message(chat.id, "assistant", "Ten minutes.", replaces=answer.id)
    assert store.search("yolk") == []  # hidden versions are not what the chat shows
    store.show_version(answer.id)
    assert [h.message_id for h in store.search("yolk")] == [answer.id]
    assert store.search("kitch")[0].message_id is None  # the title matched, no message
    assert [h.message_id for h in store.search("boil EGG")] == [question.id]  # every word
    assert store.search("boil fish") == []
    store.truncate_from(chat.id, 1)
    assert _indexed(store, "ten") == [] and _indexed(store, "yolk") == []
    store.delete_conversation(chat.id)  # the cascade fires the delete trigger too
    assert _indexed(store, "egg") == [] and newer.id > 0


def test_an_existing_database_is_indexed_by_the_migration(tmp_path: Path) -> None:
    database = tmp_path / "old.sqlite3"
    old = sqlite3.connect(database, isolation_level=None)
    for number, script in enumerate(MIGRATIONS[:5], start=1):
        old.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
    old.execute("INSERT INTO conversations (id, title, created_at, updated_at)"
                " VALUES ('c1', 'Old', 1.0, 1.0)")  # fmt: skip
    old.execute(
        "INSERT INTO messages (conversation_id, position, role, content, created_at)"
        " VALUES ('c1', 0, 'user', 'crème brûlée recipe', 1.0)"
    )
    old.close()
    store = ConversationStore(database)
    (hit,) = store.search("creme brulee")  # accents folded
    assert hit.conversation.id == "c1" and matched_words(hit.snippet) == ["crème", "brûlée"]


def test_user_text_is_never_fts_syntax_and_snippets_are_escaped(tmp_path: Path) -> None:
    assert fts_query('say "hi" OR NEAR(x*') == '"say"* """hi"""* "OR"* "NEAR(x*"*'
    store = ConversationStore(tmp_path / "c.sqlite3")
    chat = store.create_conversation()
    store.append_message(chat.id, "user", "<b>bold</b> & NEAR OR this")
    for text in ('"', "NEAR(", "OR", "*", "bold)"):
        store.search(text)  # no sqlite3.OperationalError for any of them
    (hit,) = store.search("this")
    rich = snippet_html(hit.snippet)
    assert "&lt;b&gt;bold&lt;/b&gt; &amp;" in rich and "<b>" not in rich
    assert rich.endswith("this</span>") and "background-color" in rich
    assert snippet_html(f"a{MATCH_START}b{MATCH_END}c").count("<span") == 1


def test_the_list_model_carries_the_snippet_and_the_matched_message(qtbot, tmp_path) -> None:
    store = ConversationStore(tmp_path / "c.sqlite3")
    chat = store.create_conversation()
    message = store.append_message(chat.id, "user", "the quick brown fox jumps")
    model = ConversationListModel(store)
    assert model.index(0).data(SnippetRole) == ""
    with qtbot.waitSignal(model.searchFinished, timeout=10_000):
        model.set_search("brown")
    index = model.index(0)
    assert index.data(MatchedMessageRole) == message.id
    assert matched_words(index.data(SnippetRole)) == ["brown"]


def test_choosing_a_search_hit_opens_the_chat_at_the_message(qtbot, make_window) -> None:
    window = make_window()
    store = window.store
    chat = store.create_conversation()
    target = store.append_message(chat.id, "user", "where did I put the zebra notes?")
    for number in range(30):
        store.append_message(chat.id, "assistant", f"filler answer {number}\n\n" + "text " * 80)
    other = store.create_conversation()
    store.append_message(other.id, "user", "something else")
    window.open_conversation(other.id)
    window.resize(900, 600)
    model = window.sidebar.model
    with qtbot.waitSignal(model.searchFinished, timeout=10_000):
        qtbot.keyClicks(window.sidebar.search, "zebra")
    assert model.rowCount() == 1 and matched_words(model.index(0).data(SnippetRole)) == ["zebra"]
    window.sidebar.grab().save("/tmp/i16-search-sidebar.png")
    rect = window.sidebar.list.visualRect(model.index(0))
    qtbot.mouseClick(window.sidebar.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert window.controller.current_conversation_id == chat.id
    row = next(r for r in window.chat_view.rows if r.message.id == target.id)
    last = window.chat_view.rows[-1]
    viewport = window.chat_view.viewport()

    def shown(widget) -> bool:
        top = widget.mapTo(viewport, widget.rect().topLeft()).y()
        return 0 <= top < viewport.height()

    qtbot.waitUntil(lambda: shown(row), timeout=3000)
    qtbot.wait(200)  # late layout passes must not pull the view back to the bottom
    assert shown(row) and not shown(last)


def test_search_results_are_reached_from_the_keyboard_and_the_match_is_highlighted(
    qtbot, make_window
) -> None:
    window = make_window()
    store = window.store
    chat = store.create_conversation()
    target = store.append_message(chat.id, "user", "Notes on the crème brûlée recipe")
    store.append_message(chat.id, "assistant", "Caramelise the sugar. " + "Filler. " * 50)
    other = store.create_conversation()
    store.append_message(other.id, "user", "something else entirely")
    window.sidebar.refresh(current=None)
    window.resize(900, 600)
    window.activateWindow()
    search = window.sidebar.search
    search.setFocus()
    qtbot.waitUntil(search.hasFocus)
    model = window.sidebar.model
    with qtbot.waitSignal(model.searchFinished, timeout=10_000):
        qtbot.keyClicks(search, "creme")
    assert model.rowCount() == 1

    qtbot.keyClick(search, Qt.Key.Key_Down)  # ↓: into the results, the first one opened
    assert window.sidebar.list.hasFocus() and window.sidebar.list.currentIndex().row() == 0
    assert window.controller.current_conversation_id == chat.id

    window.open_conversation(other.id)
    search.setFocus()
    qtbot.waitUntil(search.hasFocus)
    search.clear()
    qtbot.keyClicks(search, "brulee")
    qtbot.keyClick(search, Qt.Key.Key_Return)  # before the hits arrive: opened when they do
    qtbot.waitUntil(lambda: window.controller.current_conversation_id == chat.id, timeout=10_000)
    row = next(r for r in window.chat_view.rows if r.message.id == target.id)
    marked = [
        selection.cursor.selectedText()
        for browser in row.findChildren(QTextBrowser)
        for selection in browser.extraSelections()
    ]
    assert marked == ["brûlée"]  # as the message spells it
    others = [r for r in window.chat_view.rows if r is not row]
    assert all(not b.extraSelections() for r in others for b in r.findChildren(QTextBrowser))
    qtbot.wait(300)
    window.grab().save("/tmp/store-search-highlight.png")
