"""The sidebar's widgets on a real list model: date groups drawn above their first chat, pinning
from the menu, renaming inline."""

from __future__ import annotations

import datetime
from pathlib import Path

from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtWidgets import QApplication, QLineEdit, QMenu

from app.conversations.conversation_list_model import ConversationListModel, GroupRole
from app.conversations.sidebar import GROUP_HEADER_HEIGHT, Sidebar
from app.conversations.store import ConversationStore

NOW = datetime.datetime(2026, 12, 8, 15, 0).timestamp()


def _sidebar(qtbot, tmp_path: Path, count: int = 60) -> tuple[Sidebar, ConversationStore, list]:
    store = ConversationStore(tmp_path / "c.sqlite3")
    chats = []
    for number in range(count):
        chat = store.create_conversation(f"Chat number {number}")
        days = [0, 0, 1, 3, 10, 40][number] if number < 6 else 35 + number * 4
        when = (datetime.datetime.fromtimestamp(NOW) - datetime.timedelta(days=days)).timestamp()
        store._db.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (when, chat.id))
        chats.append(chat)
    sidebar = Sidebar(ConversationListModel(store, clock=lambda: NOW))
    qtbot.addWidget(sidebar)
    sidebar.resize(260, 640)
    sidebar.show()
    qtbot.waitExposed(sidebar)
    return sidebar, store, chats


def test_groups_are_drawn_above_their_first_chat_and_pinned_chats_come_first(
    qtbot, tmp_path: Path
) -> None:
    sidebar, store, chats = _sidebar(qtbot, tmp_path)
    listing, model = sidebar.list, sidebar.model
    first, second = listing.visualRect(model.index(0)), listing.visualRect(model.index(1))
    assert first.height() == 46 + GROUP_HEADER_HEIGHT and second.height() == 46  # "Today" band
    sidebar.grab().save("/tmp/store-sidebar-groups.png")

    shown: list[list[str]] = []

    def pick_pin() -> None:
        menu = next(
            (w for w in QApplication.topLevelWidgets() if isinstance(w, QMenu) and w.isVisible()),
            None,
        )
        if menu is None:
            QTimer.singleShot(20, pick_pin)
            return
        shown.append([a.text() for a in menu.actions() if a.text()])
        next(a for a in menu.actions() if a.text() == "Pin").trigger()
        menu.close()

    target = model.row_of(chats[4].id)
    QTimer.singleShot(20, pick_pin)
    sidebar._show_menu(listing.visualRect(model.index(target)).center())
    assert shown == [["Rename", "Pin", "Delete…"]]
    assert store.conversation(chats[4].id).pinned
    assert model.conversation_at(0).id == chats[4].id and model.index(0).data(GroupRole) == "Pinned"
    qtbot.wait(50)
    sidebar.grab().save("/tmp/store-sidebar-pinned.png")


def test_f2_renames_inline_over_the_title_not_the_group_name(qtbot, tmp_path: Path) -> None:
    sidebar, store, _chats = _sidebar(qtbot, tmp_path, count=3)
    listing, model = sidebar.list, sidebar.model
    listing.setFocus()
    qtbot.waitUntil(listing.hasFocus)
    listing.setCurrentIndex(model.index(0))
    qtbot.keyClick(listing, Qt.Key.Key_F2)
    editor = listing.findChild(QLineEdit)
    assert editor is not None and editor.isVisible()
    row = listing.visualRect(model.index(0))
    assert editor.geometry().top() >= row.top() + GROUP_HEADER_HEIGHT  # the band stays readable
    sidebar.grab().save("/tmp/store-sidebar-rename.png")
    editor.selectAll()
    qtbot.keyClicks(editor, "Renamed inline")
    renamed = model.conversation_at(0).id
    qtbot.keyClick(editor, Qt.Key.Key_Return)  # the delegate commits on the next event loop turn
    qtbot.waitUntil(lambda: store.conversation(renamed).title == "Renamed inline")
    assert model.conversation_at(0).title == "Renamed inline"
    assert listing.visualRect(model.index(0)).contains(QPoint(row.center()))
