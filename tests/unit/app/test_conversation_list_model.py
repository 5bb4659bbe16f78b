"""The sidebar's item model over the store, without widgets."""

from __future__ import annotations

import datetime
from pathlib import Path

from PySide6.QtCore import Qt

from app.conversations.conversation_list_model import (
    ConversationIdRole,
    ConversationListModel,
    GroupRole,
    PinnedRole,
    SubtitleRole,
    date_group,
    relative_time,
)
from app.conversations.store import ConversationStore


def test_model_lists_filters_and_renames(qtbot, tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "c.sqlite3")
    tides = store.create_conversation("Tides")
    store.append_message(tides.id, "user", "why does the moon pull water")
    code = store.create_conversation("Code")
    model = ConversationListModel(store)
    assert model.rowCount() == 2
    assert model.data(model.index(0), Qt.ItemDataRole.DisplayRole) == "Code"
    assert model.data(model.index(1), ConversationIdRole) == tides.id
    assert model.data(model.index(0), SubtitleRole) == "just now"

    with qtbot.waitSignal(model.searchFinished, timeout=10_000):
        model.set_search("MOON")
    assert model.rowCount() == 1 and model.conversation_at(0).id == tides.id
    assert model.row_of(code.id) == -1

    model.set_search("")
    row = model.row_of(tides.id)
    assert model.setData(model.index(row), "Ocean tides", Qt.ItemDataRole.EditRole)
    assert store.conversation(tides.id).title == "Ocean tides"
    assert not model.setData(model.index(row), "   ", Qt.ItemDataRole.EditRole)
    assert store.conversation(tides.id).title == "Ocean tides"


def test_relative_time() -> None:
    now = 1_000_000.0
    assert relative_time(now - 5, now=now) == "just now"
    assert relative_time(now - 300, now=now) == "5 min ago"
    assert relative_time(now - 7200, now=now) == "2 h ago"
    assert relative_time(now - 90000, now=now) == "yesterday"


NOW = datetime.datetime(2026, 12, 8, 15, 0).timestamp()  # a Tuesday afternoon, local time


def _at(days_ago: float, hour: int = 12) -> float:
    day = datetime.datetime.fromtimestamp(NOW) - datetime.timedelta(days=days_ago)
    return day.replace(hour=hour, minute=0).timestamp()


def test_date_groups_by_local_calendar_day_then_month() -> None:
    assert date_group(_at(0, hour=0), now=NOW) == "Today"
    assert date_group(_at(1, hour=23), now=NOW) == "Yesterday"
    assert date_group(_at(2), now=NOW) == "Previous 7 Days"
    assert date_group(_at(7), now=NOW) == "Previous 7 Days"
    assert date_group(_at(8), now=NOW) == "Previous 30 Days"
    assert date_group(_at(30), now=NOW) == "Previous 30 Days"
    assert date_group(_at(31), now=NOW) == "November 2026"
    assert date_group(_at(400), now=NOW) == "November 2025"
    assert date_group(1e308, now=NOW) == "Earlier"  # a time no calendar shows does not fail


def test_rows_are_grouped_by_date_with_pinned_chats_first(qapp, tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "c.sqlite3")
    ages = [0, 0, 1, 3, 10, 40, 41, 400] + [60 + n for n in range(52)]  # 60 chats
    chats = []
    for number, days in enumerate(ages):
        chat = store.create_conversation(f"Chat {number}")
        store._db.execute(
            "UPDATE conversations SET updated_at = ? WHERE id = ?", (_at(days), chat.id)
        )
        chats.append(chat)
    store.set_pinned(chats[5].id, True)
    model = ConversationListModel(store, clock=lambda: NOW)
    assert model.rowCount() == 60  # every row is a chat: the groups are drawn, not rows
    starts = [
        (r, model.index(r).data(GroupRole)) for r in range(60) if model.index(r).data(GroupRole)
    ]
    assert starts[:6] == [
        (0, "Pinned"),
        (1, "Today"),
        (3, "Yesterday"),
        (4, "Previous 7 Days"),
        (5, "Previous 30 Days"),
        (6, "October 2026"),
    ]
    assert model.conversation_at(0).id == chats[5].id and model.index(0).data(PinnedRole)
    months = [group for _, group in starts[6:]]
    assert months[-1] == "November 2025" and len(months) == len(set(months))
    model.set_pinned(0, False)  # unpinned: back to its own month
    assert store.conversation(chats[5].id).pinned is False
    assert model.index(0).data(GroupRole) == "Today"
    assert model.conversation_at(model.row_of(chats[5].id)).pinned is False
