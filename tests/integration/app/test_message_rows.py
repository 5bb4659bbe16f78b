"""Message rows as a user meets them: no stray windows, code that fits, Copy that says so."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QPoint, Qt
from PySide6.QtGui import QGuiApplication, QTextCursor
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


def _copy_link(browser) -> QTextCursor:
    """A cursor over the first code block's Copy link."""
    block = browser.document().begin()
    while block.isValid():
        iterator = block.begin()
        while not iterator.atEnd():
            fragment = iterator.fragment()
            if fragment.charFormat().anchorHref() == "copy:0":
                cursor = QTextCursor(browser.document())
                cursor.setPosition(fragment.position())
                cursor.setPosition(
                    fragment.position() + fragment.length(), QTextCursor.MoveMode.KeepAnchor
                )
                return cursor
            iterator += 1
        block = block.next()
    raise AssertionError("no Copy link in the message")


def test_a_long_code_line_wraps_and_its_copy_link_stays_in_view_and_says_copied(qtbot) -> None:
    from app.chat.chat_view import ChatView

    view = ChatView()
    qtbot.addWidget(view)
    view.resize(620, 500)
    view.show()
    qtbot.waitExposed(view)
    row = view.add_message(stored_message(1, "assistant", CODE_ANSWER))
    body = row.body
    qtbot.waitUntil(lambda: body.viewport().width() > 100)
    visible = body.viewport().width()
    assert body.document().size().width() <= visible + 1  # nothing runs past the right edge
    link = _copy_link(body)
    start = body.cursorRect(QTextCursor(body.document()))
    cursor = QTextCursor(body.document())
    cursor.setPosition(link.selectionEnd())
    end = body.cursorRect(cursor)
    assert start.left() >= 0 and end.right() <= visible, (end, visible)
    assert link.selectedText() == "Copy"

    QGuiApplication.clipboard().clear()
    middle = QPoint(end.left() - 8, end.center().y())
    qtbot.mouseClick(body.viewport(), Qt.MouseButton.LeftButton, pos=middle)
    assert QGuiApplication.clipboard().text() == f"{LONG_LINE}\nprint(result)"
    assert _copy_link(body).selectedText() == "Copied"
    qtbot.waitUntil(lambda: _copy_link(body).selectedText() == "Copy", timeout=5000)

    qtbot.mouseClick(row.copy_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == CODE_ANSWER
    assert row.copy_button.text() == "Copied"
    qtbot.waitUntil(lambda: row.copy_button.text() == "Copy", timeout=5000)
