"""Generation presets: saved from Settings → Generation, chosen per chat in the header, used by
that chat's turns (and only that chat's), kept in the settings file."""

from __future__ import annotations

import logging

from app.settings.app_settings import AppSettings, settings_from_dict, settings_to_dict
from app.settings.presets import Preset
from engine.messages import GenerationConfig
from tests.unit.app.scripted_engine import scripted_window

PRECISE = Preset("Precise", "Answer in one sentence.", GenerationConfig(temperature=0.0, seed=1))


def test_presets_and_the_chats_choices_round_trip_and_bad_entries_are_skipped(caplog) -> None:
    settings = AppSettings(presets=(PRECISE,), chat_presets=(("chat-1", "Precise"),))
    assert settings_from_dict(settings_to_dict(settings)) == settings
    data = settings_to_dict(settings)
    data["presets"].append({"name": "", "generation": {}})
    data["presets"].append({"name": "Wild", "generation": {"temperature": 99}})
    data["chat_presets"]["chat-2"] = "Gone"  # a preset that is no longer there
    with caplog.at_level(logging.WARNING):
        loaded = settings_from_dict(data)
    assert [p.name for p in loaded.presets] == ["Precise", "Wild"]
    assert loaded.presets[1].generation.temperature == GenerationConfig().temperature
    assert loaded.chat_presets == (("chat-1", "Precise"),)
    assert "presets[1]: expected a name" in caplog.text


def test_a_preset_chosen_in_the_header_drives_that_chats_turns_only(qtbot, tmp_path) -> None:
    window, engine = scripted_window(
        qtbot, tmp_path / "Model", system_prompt="Be brief.", presets=(PRECISE,)
    )
    chip = window.preset_chip
    assert chip.text() == "Default"
    assert [a.text() for a in chip.preset_actions()] == [
        "Default (Settings → Generation)",
        "Precise",
    ]
    prompt_chip = window.system_prompt.button
    assert prompt_chip.text() == "System prompt: global"
    chip.preset_actions()[1].trigger()  # a new chat: it takes the preset at its first message
    assert chip.text() == "Precise"
    assert prompt_chip.text() == "System prompt: preset “Precise”"  # its prompt, not the global
    assert "Answer in one sentence." in prompt_chip.toolTip()

    def ask(text: str) -> None:
        engine.answers.append(["Fine."])
        window.composer.input.setPlainText(text)
        window.composer.button.click()
        qtbot.waitUntil(lambda: not window.controller.busy)

    ask("Capital of France?")
    precise_chat = window.controller.current_conversation_id
    request = engine.generates()[-1]
    assert request.config == PRECISE.generation
    assert request.messages[0].content == "Answer in one sentence."
    assert window.settings.chat_presets == ((precise_chat, "Precise"),)

    window.new_chat()
    assert chip.text() == "Default"
    assert prompt_chip.text() == "System prompt: global"
    ask("Capital of Italy?")
    request = engine.generates()[-1]
    assert (
        request.config == window.settings.generation and request.messages[0].content == "Be brief."
    )
    window.open_conversation(precise_chat)
    assert chip.text() == "Precise"
    assert prompt_chip.text() == "System prompt: preset “Precise”"
    chip.preset_actions()[0].trigger()  # back to the defaults
    assert window.settings.chat_presets == ()


def test_settings_saves_and_deletes_presets(qtbot, tmp_path) -> None:
    window, _engine = scripted_window(qtbot, tmp_path / "Model", system_prompt="Be kind.")
    window.open_settings("generation")
    dialog = window.settings_dialog
    pane = dialog.generation_pane
    pane.temperature.setValue(0.2)
    assert dialog.save_preset("Careful") is None
    (preset,) = window.settings.presets
    assert (preset.name, preset.system_prompt, preset.generation.temperature) == (
        "Careful",
        "Be kind.",
        0.2,
    )
    assert pane.presets_box.currentText() == "Careful"
    assert [a.text() for a in window.preset_chip.preset_actions()][-1] == "Careful"
    window.preset_chip.preset_actions()[1].trigger()
    pane.delete_preset_button.click()
    assert window.settings.presets == () and window.preset_chip.text() == "Default"
