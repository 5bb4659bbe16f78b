"""Hostile input aimed at what the app stores and reads back (issue 21): search queries, a damaged
database, import files, the settings file."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from app.conversations.conversation_list_model import ConversationListModel
from app.conversations.store import ConversationStore
from app.conversations.store import search as searching
from app.settings.app_settings import AppSettings, load_settings, settings_path

# --- the settings file -----------------------------------------------------------------------


def test_a_settings_file_nested_100000_deep_gives_the_defaults(caplog) -> None:
    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"generation": ' + "[" * 100_000 + "]" * 100_000 + "}", encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        assert load_settings() == AppSettings()  # no RecursionError: the promise is "never raises"
    assert "nested deeper" in caplog.text


# --- search ----------------------------------------------------------------------------------


def _store_with_chats(path: Path, count: int = 60) -> ConversationStore:
    store = ConversationStore(path)
    for number in range(count):
        chat = store.create_conversation()
        store.append_message(chat.id, "user", f"a question about apples, number {number}")
        store.append_message(chat.id, "assistant", "an answer about avocados and apples " * 5)
    return store


def test_a_10000_character_query_of_one_letter_words_is_bounded(tmp_path: Path) -> None:
    store = _store_with_chats(tmp_path / "c.sqlite3")
    query = " ".join("a" for _ in range(5000)) + " "  # 10,000 characters
    started = time.perf_counter()
    hits = store.search(query)
    elapsed = time.perf_counter() - started
    assert len(hits) == 60  # every chat holds a word starting with "a"
    assert elapsed < 2.0, f"expected a search bounded to well under 2 s, found {elapsed:.1f} s"
    distinct = " ".join(chr(0x4E00 + n) for n in range(5000))  # 5,000 different words
    started = time.perf_counter()
    assert store.search(distinct) == []
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize("query", ["a\x00b", "\x00", "\ud800", "apples\ud800", "\x1b[31m", "\x7f"])
def test_control_characters_and_lone_surrogates_in_a_query_are_spaces(
    tmp_path: Path, query: str
) -> None:
    store = _store_with_chats(tmp_path / "c.sqlite3", count=2)
    hits = store.search(query)  # no sqlite3.OperationalError, no UnicodeEncodeError
    assert all(hit.conversation.id for hit in hits)


def test_the_list_model_searches_off_the_gui_thread_and_drops_stale_searches(
    qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store_with_chats(tmp_path / "c.sqlite3", count=3)
    pears = store.create_conversation("Pears")
    real_search = searching.search
    threads: list[str] = []

    def recording_search(db, text, **kwargs):
        threads.append(threading.current_thread().name)
        if text == "apples":
            time.sleep(0.5)  # the user typed on meanwhile
        return real_search(db, text, **kwargs)

    monkeypatch.setattr(searching, "search", recording_search)
    model = ConversationListModel(store)
    shown: list[str] = []
    model.searchFinished.connect(shown.append)
    started = time.perf_counter()
    model.set_search("apples")
    model.set_search("pears")
    assert time.perf_counter() - started < 0.3  # the GUI thread did not wait for the search
    qtbot.waitUntil(lambda: shown == ["pears"], timeout=10_000)
    qtbot.wait(800)  # the stale "apples" search ends now: its hits must not replace the rows
    assert shown == ["pears"]
    assert [model.conversation_at(r).id for r in range(model.rowCount())] == [pears.id]
    assert threads and threading.main_thread().name not in threads
