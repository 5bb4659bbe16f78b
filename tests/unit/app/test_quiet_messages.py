"""Quieter messages (issue 24): a message's Copy, Edit and Regenerate show on hover or focus (the
last message's always), and are reachable by keyboard; a user's bubble is as wide as its text; the
system prompt in the header looks like the control it is."""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QColor, QGuiApplication
from PySide6.QtWidgets import QApplication

from app.ui.palette import PALETTES
from app.ui.theme import apply_palette
from tests.unit.app.scripted_engine import scripted_window


def _chat(qtbot, tmp_path, turns: list[tuple[str, str]]):
    window, engine = scripted_window(qtbot, tmp_path / "Model")
    for question, answer in turns:
        engine.answers.append([answer])
        window.composer.input.setPlainText(question)
        window.composer.button.click()
        qtbot.waitUntil(lambda: not window.controller.busy)
    return window


def test_actions_show_on_hover_or_focus_and_always_on_the_last_message(qtbot, tmp_path) -> None:
    window = _chat(qtbot, tmp_path, [("First?", "One."), ("Second?", "Two.")])
    first_question, first_answer, _, last_answer = window.chat_view.rows
    assert not first_answer.action_drawn(first_answer.copy_button)
    assert not first_question.action_drawn(first_question.edit_button)
    assert last_answer.action_drawn(last_answer.copy_button)
    assert last_answer.action_drawn(last_answer.regenerate_button)
    height = first_answer.height()
    QApplication.sendEvent(first_answer, QEvent(QEvent.Type.Enter))
    assert first_answer.action_drawn(first_answer.copy_button)
    assert first_answer.height() == height  # they were there all along: nothing moves
    QApplication.sendEvent(first_answer, QEvent(QEvent.Type.Leave))
    assert not first_answer.action_drawn(first_answer.copy_button)
    first_question.body.setFocus()  # the keyboard in a message: its text selected
    qtbot.waitUntil(lambda: first_question.action_drawn(first_question.edit_button))
    window.grab().save("/tmp/shots/i24-quiet-actions.png")


def test_the_last_answer_and_message_are_reachable_by_keyboard(qtbot, tmp_path) -> None:
    window = _chat(qtbot, tmp_path, [("First?", "One."), ("Second?", "Two.")])
    QGuiApplication.clipboard().clear()
    window.copy_answer_action.trigger()  # Chat → Copy Last Answer (Ctrl+Shift+C)
    assert QGuiApplication.clipboard().text() == "Two."
    window.composer.input.setFocus()
    qtbot.keyClick(window.composer.input, Qt.Key.Key_Up)  # ↑ in the empty message box
    last_question = window.chat_view.rows[2]
    assert last_question.editor is not None
    assert last_question.editor.toPlainText() == "Second?"
    assert last_question.action_drawn(last_question.copy_button)


def test_a_users_bubble_is_as_wide_as_its_text(qtbot, tmp_path) -> None:
    long_question = "Explain " + "why the sky looks blue at noon and red at dusk, " * 6
    window = _chat(qtbot, tmp_path, [("Hi", "Hello."), (long_question, "Because.")])
    short_row, long_row = window.chat_view.rows[0], window.chat_view.rows[2]
    qtbot.waitUntil(lambda: short_row.width() > 300)
    assert short_row.bubble.width() < short_row.width() * 0.3
    assert short_row.body.fontMetrics().horizontalAdvance("Hi") < short_row.bubble.width()
    assert long_row.bubble.width() > long_row.width() * 0.7  # wraps at most of the row
    assert long_row.bubble.width() <= long_row.width() * 0.8 + 1


def test_the_system_prompt_in_the_header_is_drawn_as_a_control(qtbot, tmp_path) -> None:
    for look in ("light", "dark"):
        apply_palette(QApplication.instance(), PALETTES[look])
        window = _chat(qtbot, tmp_path / look, [])
        button = window.system_prompt.button
        image = button.grab().toImage()
        edge = QColor(image.pixel(image.width() // 2, 0))  # its top edge: a frame
        assert edge.name() != PALETTES[look].window, look
    apply_palette(QApplication.instance(), PALETTES["light"])
