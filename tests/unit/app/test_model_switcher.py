"""The header's model chip is a menu of the library's models; switching keeps the chat."""

from __future__ import annotations

from pathlib import Path

from app.models.model_library import ModelSummary
from tests.unit.app.scripted_engine import scripted_window


def _summary(folder: Path) -> ModelSummary:
    return ModelSummary(
        "SmolLM2-135M-Instruct", folder, folder / "SmolLM2-135M-Instruct.mlpackage", 2048,
        "int4", "llama", "HuggingFaceTB/SmolLM2-135M-Instruct", 90_000_000, True,
    )  # fmt: skip


def test_the_chip_lists_the_library_and_switching_keeps_the_chat(qtbot, tmp_path) -> None:
    first, second = tmp_path / "SmolLM2 exact", tmp_path / "SmolLM2 int4"
    window, engine = scripted_window(qtbot, first)
    second.mkdir()
    chip = window.model_chip
    chip.models = lambda: [_summary(first), _summary(second)]  # the models folder's listing
    engine.answers.append(["Paris."])
    window.composer.input.setPlainText("Capital of France?")
    window.composer.button.click()
    qtbot.waitUntil(lambda: not window.controller.busy)
    chat = window.controller.current_conversation_id

    actions = chip.model_actions()
    assert [(a.text(), a.isChecked()) for a in actions] == [
        ("SmolLM2 exact", True),
        ("SmolLM2 int4", False),
    ]
    assert chip.menu().actions()[-1].text() == "Manage Models…"
    actions[1].trigger()
    qtbot.waitUntil(lambda: window.bridge.model_info.path == str(second))
    assert window.controller.current_conversation_id == chat  # the same chat, still shown
    assert [r.text for r in window.chat_view.rows] == ["Capital of France?", "Paris."]
    assert chip.text().startswith("SmolLM2 int4 · ")
    assert [a.isChecked() for a in chip.model_actions()] == [False, True]

    engine.answers.append(["Rome."])
    window.composer.input.setPlainText("And Italy?")
    window.composer.button.click()
    qtbot.waitUntil(lambda: not window.controller.busy)
    assert [m.model for m in window.controller.messages() if m.role == "assistant"] == [
        "SmolLM2 exact",
        "SmolLM2 int4",
    ]
    chip.menu().actions()[-1].trigger()  # Manage Models…
    assert window.settings_dialog.isVisible()
    assert window.settings_dialog.pages.currentIndex() == 0  # the Model tab


def test_no_switch_while_an_answer_is_written(qtbot, tmp_path) -> None:
    first, second = tmp_path / "A", tmp_path / "B"
    window, engine = scripted_window(qtbot, first)
    second.mkdir()
    window.model_chip.models = lambda: [_summary(first), _summary(second)]
    engine.hold = True
    engine.answers.append(["Once"])
    window.composer.input.setPlainText("Tell me a story")
    window.composer.button.click()
    qtbot.waitUntil(lambda: window.controller.busy)
    other = window.model_chip.model_actions()[1]
    assert not other.isEnabled() and other.toolTip() == "Stop the answer first"
    window.controller.stop()
    qtbot.waitUntil(lambda: not window.controller.busy)
    assert window.model_chip.model_actions()[1].isEnabled()
