"""Message rows as a user meets them: no stray windows, code that fits, Copy that says so."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication, QWidget

from app.conversations.conversation_store import StoredMessage


def _message(number: int, role: str, content: str) -> StoredMessage:
    return StoredMessage(
        id=number,
        conversation_id="c",
        position=number,
        role=role,  # type: ignore[arg-type]
        content=content,
        created_at=0.0,
        finish_reason="eos" if role == "assistant" else "",
    )


class WindowShows(QObject):
    """Records every widget that is shown as a window of its own."""

    def __init__(self) -> None:
        super().__init__()
        self.windows: list[str] = []

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Show and isinstance(watched, QWidget) and watched.isWindow():
            self.windows.append(f"{type(watched).__name__} {watched.objectName()}")
        return False


def test_adding_messages_shows_no_window_of_its_own_and_keeps_the_window_active(
    qtbot, qapp, make_window
) -> None:
    window = make_window()
    window.show_page("chat")
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
    before = set(QApplication.topLevelWidgets())
    shows = WindowShows()
    qapp.installEventFilter(shows)
    try:
        for number in range(0, 6, 2):
            window.chat_view.add_message(_message(number, "user", f"question {number}"))
            window.chat_view.add_message(_message(number + 1, "assistant", "an answer"))
            qapp.processEvents()
    finally:
        qapp.removeEventFilter(shows)
    assert shows.windows == []
    assert set(QApplication.topLevelWidgets()) - before == set()
    assert QApplication.activeWindow() is window
    assert all(row.edit_button.isVisibleTo(row) for row in window.chat_view.rows[::2])
