"""Issue 16: stop strings are editable in Settings → Generation, checked, saved, and reach the engine."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.settings.app_settings import AppSettings, load_settings, settings_path
from app.settings.settings_store import SettingsStore
from app.settings.stop_strings import (
    MAX_STOP_STRING_LENGTH,
    MAX_STOP_STRINGS,
    format_stop_strings,
    parse_stop_strings,
)
from engine.messages import GenerationConfig

ANSWER_TIMEOUT_MS = 120_000


def test_one_a_line_with_escapes_round_trips() -> None:
    strings, problem = parse_stop_strings("</answer>\n\nUser:\\n\nC:\\\\path\\tx\n")
    assert problem is None
    assert strings == ("</answer>", "User:\n", "C:\\path\tx")
    assert parse_stop_strings(format_stop_strings(strings)) == (strings, None)
    assert parse_stop_strings("") == ((), None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ok\n\\s\\s\n", "expected visible text or a line break in each stop string, found '  '"),
        ("x" * (MAX_STOP_STRING_LENGTH + 1), f"at most {MAX_STOP_STRING_LENGTH} characters"),
        ("\n".join(f"s{i}" for i in range(MAX_STOP_STRINGS + 1)), f"at most {MAX_STOP_STRINGS}"),
        ("User:\nUser:", "expected each stop string once"),
    ],
)
def test_bad_stop_strings_say_what_was_expected(text: str, expected: str) -> None:
    _strings, problem = parse_stop_strings(text)
    assert problem is not None and expected in problem


def test_a_bad_list_in_the_settings_file_falls_back(caplog) -> None:
    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    generation = {"stop_strings": ["", "User:"], "temperature": 0.3}
    path.write_text(json.dumps({"version": 1, "generation": generation}))
    with caplog.at_level(logging.WARNING):
        settings = load_settings()
    assert settings.generation.stop_strings == () and settings.generation.temperature == 0.3
    assert "generation.stop_strings: expected visible text" in caplog.text


def _dialog(qtbot, settings: AppSettings):
    from app.shell.settings_dialog import SettingsDialog

    dialog = SettingsDialog(SettingsStore(settings))
    qtbot.addWidget(dialog)
    return dialog


def test_whitespace_typed_at_the_end_of_a_line_is_dropped_and_escaped_whitespace_kept() -> None:
    assert parse_stop_strings("Paris\t\nUser: \n   \n") == (("Paris", "User:"), None)
    strings = ("User: ", "end\t", " lead")
    assert format_stop_strings(strings) == "User:\\s\nend\\t\n lead"
    assert parse_stop_strings(format_stop_strings(strings)) == (strings, None)


def test_tab_leaves_the_stop_strings_and_system_prompt_boxes(qtbot) -> None:
    """Issue 24: Tab moved focus nowhere and typed a tab: "Paris" + Tab saved "Paris\\t"."""
    dialog = _dialog(qtbot, AppSettings())
    pane = dialog.generation_pane
    dialog.show_tab("generation")
    dialog.show()
    qtbot.waitExposed(dialog)
    for box in (pane.system_prompt, pane.stop_strings):
        box.setFocus()
        qtbot.waitUntil(box.hasFocus)
        qtbot.keyClicks(box, "Paris")
        qtbot.keyClick(box, Qt.Key.Key_Tab)
        assert box.toPlainText() == "Paris"
        assert not box.hasFocus()
    assert dialog.store.settings.generation.stop_strings == ("Paris",)
    assert dialog.store.settings.system_prompt == "Paris"


def test_the_generation_tab_edits_checks_and_saves_them(qtbot) -> None:
    dialog = _dialog(qtbot, AppSettings(generation=GenerationConfig(stop_strings=("User:\n",))))
    pane = dialog.generation_pane
    assert pane.stop_strings.toPlainText() == "User:\\n"
    dialog.show_tab("generation")
    dialog.show()
    pane.stop_strings.setFocus()
    pane.stop_strings.moveCursor(pane.stop_strings.textCursor().MoveOperation.End)
    qtbot.keyClick(pane.stop_strings, Qt.Key.Key_Return)
    qtbot.keyClicks(pane.stop_strings, "</answer>")
    assert dialog.store.settings.generation.stop_strings == ("User:\n", "</answer>")
    pane.stop_strings.insertPlainText("\n" + "x" * (MAX_STOP_STRING_LENGTH + 1))  # pasted
    assert pane.stop_strings_error.isVisible()
    assert f"at most {MAX_STOP_STRING_LENGTH} characters" in pane.stop_strings_error.text()
    assert dialog.store.settings.generation.stop_strings == ("User:\n", "</answer>")  # last good
    pane.grab().save("/tmp/i16-stop-strings.png")
    dialog.accept()
    assert load_settings().generation.stop_strings == ("User:\n", "</answer>")
    reopened = _dialog(qtbot, load_settings())
    assert reopened.generation_pane.stop_strings.toPlainText() == "User:\\n\n</answer>"
    reopened.generation_pane.restore_button.click()
    assert reopened.store.settings.generation.stop_strings == ()
    assert reopened.generation_pane.stop_strings.toPlainText() == ""


def test_a_stop_string_set_in_settings_ends_the_answer(
    qtbot, make_window, tiny_chat_model: Path
) -> None:
    window = make_window(tiny_chat_model, max_new_tokens=12)

    def ask() -> str:
        window.new_chat()
        window.composer.input.setPlainText("Hello")
        qtbot.keyClick(window.composer.input, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: not window.controller.busy, timeout=ANSWER_TIMEOUT_MS)
        return window.store.messages(window.controller.current_conversation_id)[-1].content

    full = ask()  # greedy: the same answer each time
    stop = full[len(full) // 2 :][:3]
    assert stop.strip(" ") and stop in full
    window.open_settings("generation")
    pane = window.settings_dialog.generation_pane
    pane.stop_strings.setPlainText(format_stop_strings((stop,)))
    window.settings_dialog.accept()
    cut = ask()
    assert cut == full[: full.index(stop)]
