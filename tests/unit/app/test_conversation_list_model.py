"""The sidebar's item model over the store, without widgets."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt

from app.conversations.conversation_list_model import (
    ConversationIdRole,
    ConversationListModel,
    SubtitleRole,
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
