"""Message rows as a user meets them: no stray windows (code blocks:
``tests/unit/app/test_code_blocks.py``)."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication, QWidget

from tests.integration.app.window_helpers import stored_message

LONG_LINE = "result = compute(" + ", ".join(f"argument_{n}" for n in range(40)) + ")"
CODE_ANSWER = f"Here:\n\n```python\n{LONG_LINE}\nprint(result)\n```\n\nDone."


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
            window.chat_view.add_message(stored_message(number, "user", f"question {number}"))
            window.chat_view.add_message(stored_message(number + 1, "assistant", "an answer"))
            qapp.processEvents()
    finally:
        qapp.removeEventFilter(shows)
    assert shows.windows == []
    assert set(QApplication.topLevelWidgets()) - before == set()
    assert QApplication.activeWindow() is window
    assert all(row.edit_button.isVisibleTo(row) for row in window.chat_view.rows[::2])
