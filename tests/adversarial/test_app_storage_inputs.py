"""Hostile input aimed at what the app stores and reads back (issue 21): search queries, a damaged
database, import files, the settings file."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from app.conversations.conversation_list_model import ConversationListModel
from app.conversations.export import FORMAT_NAME, FORMAT_VERSION, export_markdown
from app.conversations.export_dialog import ConversationTransfer
from app.conversations.store import ConversationStore
from app.conversations.store import search as searching
from app.conversations.store.integrity import DatabaseHealth, check_database
from app.settings.app_settings import AppSettings, load_settings, settings_path
from app.shell.database_check import QUIT, REBUILD, START_NEW, ask_what_to_do, open_checked_store

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


# --- import ----------------------------------------------------------------------------------


def _export_document(chats: int = 1) -> dict:
    message = {
        "position": 0,
        "version": 0,
        "shown": True,
        "role": "user",
        "content": "hello",
        "created_at": 1_700_000_000.0,
        "finish_reason": "",
        "interrupted": False,
        "model": "",
        "generation": None,
    }
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "conversations": [
            {
                "id": f"chat{number}",
                "title": f"Chat {number}",
                "created_at": 1_700_000_000.0,
                "updated_at": 1_700_000_000.0,
                "system_prompt": None,
                "messages": [dict(message)],
            }
            for number in range(chats)
        ],
    }


def _chat(number: int, message: dict) -> dict:
    return {
        "id": f"chat{number}",
        "title": f"Chat {number}",
        "created_at": 1_700_000_000.0,
        "updated_at": 1_700_000_000.0,
        "system_prompt": None,
        "messages": [dict(message)],
    }


def _with(path: tuple, value: object) -> str:
    document = _export_document(2)
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return json.dumps(document)  # NaN and Infinity come out as Python's json writes them


HOSTILE_IMPORTS = [
    (
        "nested",
        json.dumps(_export_document(1))[:-1] + ', "extra": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "nested deeper than Python's recursion limit",
    ),
    (
        "nan",
        _with(("conversations", 1, "messages", 0, "created_at"), float("nan")),
        "conversations[1].messages[0].created_at: expected a number of Unix seconds",
    ),
    (
        "huge position",
        _with(("conversations", 0, "messages", 0, "position"), 2**70),
        "conversations[0].messages[0].position: expected an integer 0..2147483647",
    ),
    (
        "lone surrogate",
        _with(("conversations", 1, "messages", 0, "content"), "\ud800"),
        "conversations[1].messages[0].content: expected text of at most",
    ),
    (
        "1e308",
        _with(("conversations", 1, "created_at"), 1e308),
        "conversations[1].created_at: expected a number of Unix seconds 0..253402300799",
    ),
    (
        "infinity",
        _with(("conversations", 0, "messages", 0, "created_at"), float("inf")),
        "conversations[0].messages[0].created_at: expected a number of Unix seconds",
    ),
    (
        "nan in settings",
        _with(("conversations", 0, "messages", 0, "generation"), {"temperature": float("nan")}),
        "conversations[0].messages[0].generation: expected null or an object of finite numbers",
    ),
]


@pytest.mark.parametrize(
    ("content", "expected"),
    [case[1:] for case in HOSTILE_IMPORTS],
    ids=[case[0] for case in HOSTILE_IMPORTS],
)
def test_a_hostile_import_is_refused_with_the_path_of_its_first_bad_item(
    qtbot, tmp_path: Path, content: str, expected: str
) -> None:
    store = ConversationStore(tmp_path / "c.sqlite3")
    transfer = ConversationTransfer(store)
    path = tmp_path / "hostile.json"
    path.write_text(content, encoding="utf-8", errors="surrogatepass")
    with qtbot.waitSignal(transfer.failed, timeout=30_000) as failed:
        transfer.import_file(path)  # nothing escapes as an internal error
    assert failed.args[0].startswith("Could not import hostile.json: ")
    assert expected in failed.args[0]
    assert store.conversations() == []  # nothing of the file was written
    assert not transfer.importing


def test_markdown_export_shows_a_time_no_calendar_can_show(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "c.sqlite3")
    chat = store.create_conversation("Old import")
    store.append_message(chat.id, "user", "hi")
    store._db.execute("UPDATE messages SET created_at = 1e308")  # written by an older import
    store._db.execute("UPDATE conversations SET created_at = ?", (float("inf"),))
    text = export_markdown(store, [chat.id])  # no OverflowError
    assert "unknown time (1e+308 is not a date)" in text and "unknown time (inf" in text


def test_a_large_import_runs_off_the_gui_thread_with_progress(qtbot, tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "c.sqlite3")
    transfer = ConversationTransfer(store)
    path = tmp_path / "many.json"
    path.write_text(json.dumps(_export_document(5_000)), encoding="utf-8")
    progress: list[tuple[str, int, int]] = []
    transfer.progress.connect(lambda *args: progress.append(args))
    started = time.perf_counter()
    with qtbot.waitSignal(transfer.imported, timeout=120_000) as imported:
        transfer.import_file(path)
        returned_after = time.perf_counter() - started
    assert returned_after < 0.5, f"expected the GUI thread back at once, found {returned_after} s"
    assert len(imported.args[0]) == 5_000 and len(store.conversations()) == 5_000
    assert ("check", 5_000, 5_000) in progress and ("write", 5_000, 5_000) in progress
    assert len(progress) <= 2 * 5_000 // 100  # a report per hundred chats, not per chat


# --- a damaged database ----------------------------------------------------------------------

PAGE = 4096


def _damaged_database(tmp_path: Path, table: str = "messages_fts_data") -> Path:
    """A database of 40 chats with one page of ``table`` overwritten (the header intact)."""
    path = tmp_path / "conversations.sqlite3"
    store = _store_with_chats(path, count=40)
    (page,) = store._db.execute(
        "SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)
    ).fetchone()
    store.close()
    with path.open("r+b") as file:
        file.seek((page - 1) * PAGE)
        file.write(b"\xa5" * PAGE)
    return path


def test_the_damaged_page_crashed_the_first_query(tmp_path: Path) -> None:
    """What start-up met before the check: the store opens, its first query fails."""
    path = _damaged_database(tmp_path)
    with pytest.raises(sqlite3.DatabaseError, match="vtable constructor failed: messages_fts"):
        ConversationStore(path).delete_empty_conversations()


def test_start_up_checks_the_database_keeps_a_copy_and_rebuilds(tmp_path: Path) -> None:
    path = _damaged_database(tmp_path)
    damaged = path.read_bytes()
    asked: list[DatabaseHealth] = []
    told: list[str] = []

    def ask(health: DatabaseHealth) -> str:
        asked.append(health)
        return REBUILD

    store = open_checked_store(path, ask=ask, tell=told.append)
    assert store is not None and len(asked) == 1 and asked[0].problems
    assert store.delete_empty_conversations() == 0  # the query that crashed
    assert len(store.conversations()) == 40 and len(store.search("apples")) == 40  # index anew
    (kept,) = [p for p in tmp_path.iterdir() if ".damaged-" in p.name]
    assert kept.read_bytes() == damaged  # never written over
    assert "40 chats, 80 messages kept" in told[0] and kept.name in told[0]
    assert check_database(path).ok


def test_start_up_can_start_a_new_database_or_quit_touching_nothing(tmp_path: Path) -> None:
    path = _damaged_database(tmp_path)
    damaged = path.read_bytes()
    assert open_checked_store(path, ask=lambda _health: QUIT) is None
    assert path.read_bytes() == damaged and sorted(p.name for p in tmp_path.iterdir()) == [
        path.name
    ]
    store = open_checked_store(path, ask=lambda _health: START_NEW)
    assert store is not None and store.conversations() == []
    (kept,) = [p for p in tmp_path.iterdir() if ".damaged-" in p.name]
    assert kept.read_bytes() == damaged


def test_a_damaged_messages_page_keeps_every_row_still_readable(tmp_path: Path) -> None:
    path = tmp_path / "conversations.sqlite3"
    store = _store_with_chats(path, count=300)
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store.close()
    with path.open("r+b") as file:  # a page in the middle: some leaf of the messages table
        file.seek((pages // 2) * PAGE)
        file.write(b"\xa5" * PAGE)
    store = open_checked_store(path, ask=lambda _health: REBUILD)
    assert store is not None
    chats = store.conversations()
    assert 200 < len(chats) <= 300  # most survive; those on the damaged page are in the copy
    for chat in chats[:20]:
        store.messages(chat.id)  # every kept row reads


def test_the_dialog_offers_rebuild_new_or_quit(qtbot, tmp_path: Path) -> None:
    path = _damaged_database(tmp_path)
    health = check_database(path)
    seen: list[list[str]] = []

    def answer() -> None:
        boxes = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox)]
        box = next((w for w in boxes if w.isVisible()), None)  # earlier tests' boxes linger
        if box is None:
            QTimer.singleShot(20, answer)
            return
        box.resize(560, box.sizeHint().height())
        box.grab().save("/tmp/store-damaged-database.png")
        seen.append([b.text() for b in box.buttons()])
        next(b for b in box.buttons() if b.text() == "Quit").click()

    QTimer.singleShot(20, answer)
    assert ask_what_to_do(health) == QUIT
    assert seen and {"Keep a Copy and Rebuild", "Start a New Database", "Quit"} <= set(seen[0])


def test_a_healthy_database_left_by_a_crash_checks_ok_and_nothing_is_created_beside_it(
    tmp_path: Path,
) -> None:
    store = _store_with_chats(tmp_path / "live.sqlite3", count=5)  # open: its -wal holds data
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    for suffix in ("", "-wal"):  # as a crash (or a copy) can leave it: no -shm
        (crashed / f"conversations.sqlite3{suffix}").write_bytes(
            (tmp_path / f"live.sqlite3{suffix}").read_bytes()
        )
    store.close()
    path = crashed / "conversations.sqlite3"
    assert check_database(path).ok
    assert sorted(p.name for p in crashed.iterdir()) == [path.name, path.name + "-wal"]
    reopened = open_checked_store(path, ask=lambda _health: pytest.fail("asked for nothing"))
    assert reopened is not None and len(reopened.conversations()) == 5  # the WAL's chats too
