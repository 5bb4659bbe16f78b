"""The window from the keyboard: focus that shows, keys that open and delete chats, Esc where it is
pressed, names for screen readers, and Tab that does not walk through the message history."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QPalette
from PySide6.QtWidgets import QAbstractButton, QApplication, QMessageBox

from tests.integration.app.window_helpers import stored_message


@pytest.fixture
def themed(qapp):
    """The app's look (style sheet and palette) for the test; Qt's default again afterwards."""
    from app.ui import palette, theme

    saved_palette, saved_sheet = QPalette(qapp.palette()), qapp.styleSheet()
    saved_style = qapp.style().name()
    theme.apply_theme(qapp, mode="light")
    yield
    qapp.setStyleSheet(saved_sheet)
    qapp.setPalette(saved_palette)
    qapp.setStyle(saved_style)
    palette.set_current_palette(palette.LIGHT)


def _active(qtbot, window) -> None:
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)


def _triggered(action: QAction) -> list[bool]:
    seen: list[bool] = []
    action.triggered.connect(lambda *_: seen.append(True))
    return seen


def test_a_welcome_card_with_keyboard_focus_looks_focused(qtbot, themed, make_window) -> None:
    window = make_window()
    window.show_page("welcome")
    _active(qtbot, window)
    card = window.welcome.buttons["open"]
    assert card.focusPolicy() & Qt.FocusPolicy.TabFocus
    window.welcome.buttons["demo"].setFocus(Qt.FocusReason.TabFocusReason)
    qtbot.waitUntil(lambda: window.welcome.buttons["demo"].hasFocus())
    unfocused = card.grab().toImage()
    card.setFocus(Qt.FocusReason.TabFocusReason)
    qtbot.waitUntil(card.hasFocus)
    assert card.grab().toImage() != unfocused


def test_arrows_and_return_open_chats_and_delete_asks_then_deletes(qtbot, make_window) -> None:
    window = make_window()
    store = window.store
    for title in ("First", "Second", "Third"):
        chat = store.create_conversation(title)
        store.append_message(chat.id, "user", f"about {title}")
    window.sidebar.refresh(current=None)
    _active(qtbot, window)
    listing = window.sidebar.list
    listing.setFocus()
    qtbot.waitUntil(listing.hasFocus)
    shown = (
        [c.id for c in window.sidebar.model.conversations]
        if hasattr(window.sidebar.model, "conversations")
        else [window.sidebar.model.conversation_at(r).id for r in range(3)]
    )

    qtbot.keyClick(listing, Qt.Key.Key_Down)
    first = window.controller.current_conversation_id
    assert first in shown and window.current_page == "chat"
    qtbot.keyClick(listing, Qt.Key.Key_Down)
    second = window.controller.current_conversation_id
    assert second in shown and second != first
    third_row = next(row for row in range(3) if shown[row] not in (first, second))
    listing.setCurrentIndex(window.sidebar.model.index(third_row))  # moved, not opened
    assert window.controller.current_conversation_id == second
    qtbot.keyClick(listing, Qt.Key.Key_Return)
    assert window.controller.current_conversation_id == shown[third_row]

    def answer_yes() -> None:
        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, QMessageBox), dialog
        dialog.button(QMessageBox.StandardButton.Yes).click()

    QTimer.singleShot(0, answer_yes)
    qtbot.keyClick(listing, Qt.Key.Key_Delete)
    qtbot.waitUntil(lambda: store.conversation(shown[third_row]) is None)
    assert len(store.conversations()) == 2


def test_esc_acts_in_the_search_field_and_the_message_editor_not_as_stop(
    qtbot, make_window
) -> None:
    window = make_window()
    stops = _triggered(window.stop_action)
    _active(qtbot, window)
    search = window.sidebar.search
    search.setFocus()
    qtbot.waitUntil(search.hasFocus)
    qtbot.keyClicks(search, "lisbon")
    qtbot.keyClick(search, Qt.Key.Key_Escape)
    assert search.text() == "" and stops == []

    window.show_page("chat")
    row = window.chat_view.add_message(stored_message(1, "user", "a question to edit"))
    row.begin_edit()
    editor = row.editor
    assert editor is not None
    qtbot.waitUntil(editor.hasFocus)
    qtbot.keyClick(editor, Qt.Key.Key_Escape)
    assert row.editor is None and stops == []  # the edit was cancelled, nothing was stopped


def test_icon_buttons_the_message_box_search_and_gauge_have_accessible_names(
    qtbot, make_window
) -> None:
    window = make_window()
    unnamed = [
        button.text()
        for button in window.findChildren(QAbstractButton)
        if button.isVisibleTo(window)
        and not button.objectName().startswith("qt_")  # Qt's own (menu bar extension)
        and not any(ch.isalpha() for ch in button.text())
        and not button.accessibleName()
    ]
    assert unnamed == []
    for widget in (
        window.composer.input,
        window.composer.button,
        window.sidebar.search,
        window.status_line.gauge,
    ):
        assert widget.accessibleName(), widget


def test_tab_from_the_message_box_does_not_walk_through_the_messages(qtbot, make_window) -> None:
    window = make_window()
    window.show_page("chat")
    for number in range(0, 8, 2):
        window.chat_view.add_message(stored_message(number, "user", f"question {number}"))
        window.chat_view.add_message(stored_message(number + 1, "assistant", "an `answer`"))
    qtbot.waitUntil(lambda: all(row.isVisibleTo(window) for row in window.chat_view.rows))
    assert window.chat_view.rows[0].copy_button.isVisibleTo(window)
    start = window.composer.input
    stops = []
    widget = start.nextInFocusChain()
    while widget is not start:
        if (
            widget.focusPolicy() & Qt.FocusPolicy.TabFocus
            and widget.isVisibleTo(window)
            and widget.isEnabled()
            and window.chat_view.widget().isAncestorOf(widget)
        ):
            stops.append(f"{type(widget).__name__} {getattr(widget, 'text', lambda: '')()}")
        widget = widget.nextInFocusChain()
    assert stops == []
