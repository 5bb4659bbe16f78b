"""A reasoning model's answer in the window: its reasoning folded above the answer, never part
of the answer's markdown or of Copy; the setting that tells the template not to think (issue 22)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QPalette

from app.chat.reasoning_fold import DONE_LABEL, THINKING_LABEL
from engine.messages import Generate, GenerationConfig
from tests.unit.app.scripted_engine import scripted_window

REASONING = "The user asks for 2+2. Two and two make four."


def _send(window, text: str) -> None:
    window.composer.input.setPlainText(text)
    window.composer.button.click()


def test_reasoning_streams_folded_and_the_answer_renders_alone(qtbot, tmp_path) -> None:
    window, engine = scripted_window(qtbot, tmp_path / "Model", theme="light")
    engine.hold = True
    engine.answers.append(["<think>", "\nThe user asks for 2+2."])
    _send(window, "2+2?")
    row = window.chat_view.streaming_row
    fold = row.reasoning_fold
    qtbot.waitUntil(lambda: fold.isVisible() and fold.toggle.text() == THINKING_LABEL)
    assert row.typing.text() == "Thinking…"
    assert row.plain_text() == ""  # nothing of the reasoning in the answer's view
    assert not fold.text_view.isVisible()  # folded
    fold.toggle.click()  # open while it streams: the reasoning grows in place
    assert fold.text_view.toPlainText() == "The user asks for 2+2."

    engine.release([" Two and two make four.", "</think>", "\n\n**Four**."])
    qtbot.waitUntil(lambda: not window.controller.busy)
    assert fold.text_view.toPlainText() == REASONING
    assert fold.toggle.text().startswith("Thought for ") and fold.toggle.text().endswith(" s")
    assert row.plain_text() == "Four."
    assert "think" not in row.body.toHtml().lower()
    stored = window.controller.messages()[-1].content
    assert stored == f"<think>{REASONING}</think>**Four**."  # nothing shown is lost

    row.copy_button.click()
    assert QGuiApplication.clipboard().text() == "**Four**."


@pytest.fixture(params=["light", "dark"])
def themed(qapp, request):
    """The app's look (style sheet and palette) in light and dark; Qt's default again after."""
    from app.ui import palette, theme

    saved_palette, saved_sheet = QPalette(qapp.palette()), qapp.styleSheet()
    saved_style = qapp.style().name()
    theme.apply_theme(qapp, mode=request.param)
    yield request.param
    qapp.setStyleSheet(saved_sheet)
    qapp.setPalette(saved_palette)
    qapp.setStyle(saved_style)
    palette.set_current_palette(palette.LIGHT)


def test_the_reasoning_opens_and_closes_by_click_and_from_the_chat_menu(
    qtbot, tmp_path, themed
) -> None:
    theme = themed
    window, engine = scripted_window(qtbot, tmp_path / "Model", theme=theme)
    window.resize(760, 560)
    engine.answers.append(["<think>", REASONING, "</think>", "It is **4**."])
    _send(window, "2+2?")
    qtbot.waitUntil(lambda: not window.controller.busy)
    row = window.chat_view.rows[-1]
    fold = row.reasoning_fold
    assert fold.isVisible() and not fold.text_view.isVisible()
    window.grab().save(f"/tmp/shots/i22-folded-{theme}.png")

    qtbot.mouseClick(fold.toggle, Qt.MouseButton.LeftButton)
    assert fold.text_view.isVisible()
    assert fold.text_view.toPlainText() == REASONING
    assert row.plain_text() == "It is 4."
    window.grab().save(f"/tmp/shots/i22-expanded-{theme}.png")

    # The keyboard's way: the Chat menu's command (Tab does not walk the history).
    assert not fold.toggle.focusPolicy() & Qt.FocusPolicy.TabFocus
    window.reasoning_action.trigger()
    assert not fold.text_view.isVisible()
    window.reasoning_action.trigger()
    assert fold.text_view.isVisible()


def test_a_stored_answer_without_markers_shows_no_fold(qtbot, tmp_path) -> None:
    window, engine = scripted_window(qtbot, tmp_path / "Model")
    engine.answers.append(["Just **four**."])
    _send(window, "2+2?")
    qtbot.waitUntil(lambda: not window.controller.busy)
    conversation = window.controller.current_conversation_id
    window.controller.open_conversation(conversation)  # read back from the store
    row = window.chat_view.rows[-1]
    assert not row.reasoning_fold.isVisible()
    assert row.plain_text() == "Just four."
    assert row.answer == "Just **four**."


def test_a_stored_answer_with_reasoning_shows_it_folded(qtbot, tmp_path) -> None:
    window, engine = scripted_window(qtbot, tmp_path / "Model")
    engine.answers.append(["<think>", REASONING, "</think>", "Four."])
    _send(window, "2+2?")
    qtbot.waitUntil(lambda: not window.controller.busy)
    window.controller.open_conversation(window.controller.current_conversation_id)
    row = window.chat_view.rows[-1]
    assert row.reasoning_fold.isVisible()
    assert row.reasoning_fold.toggle.text() == DONE_LABEL  # its time is not stored
    assert row.plain_text() == "Four."
    # The next question's history carries the answer alone.
    engine.answers.append(["Five."])
    _send(window, "And 2+3?")
    qtbot.waitUntil(lambda: not window.controller.busy)
    history = engine.generates()[-1].messages
    assert [m.content for m in history if m.role == "assistant"] == ["Four."]


@pytest.mark.parametrize(("think", "expected"), [(True, None), (False, False)])
def test_the_thinking_setting_reaches_the_generate_request(
    qtbot, tmp_path, think, expected
) -> None:
    """Settings → Generation's checkbox, changed from the other state, reaches the request."""
    start = GenerationConfig(enable_thinking=None if not think else False)
    window, engine = scripted_window(qtbot, tmp_path / "Model", generation=start)
    window.open_settings("generation")
    pane = window.settings_dialog.generation_pane
    assert pane.thinking.isChecked() is not think
    pane.thinking.setChecked(think)
    window.settings_dialog.accept()
    engine.answers.append(["Four."])
    _send(window, "2+2?")
    qtbot.waitUntil(lambda: not window.controller.busy)
    request = engine.generates()[-1]
    assert isinstance(request, Generate)
    assert request.config.enable_thinking is expected
