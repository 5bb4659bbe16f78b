"""Settings: the JSON file (defaults, round trip, mode 0600, bad files) and the dialog's persistence."""

from __future__ import annotations

import json
import logging
import os
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from app.settings.app_settings import (
    AppSettings,
    load_settings,
    save_settings,
    settings_path,
)
from app.settings.settings_store import SettingsStore
from engine import paths
from engine.messages import GenerationConfig, ModelInfo


def test_defaults_when_there_is_no_file(private_home: Path) -> None:
    settings = load_settings()
    assert settings == AppSettings()
    assert settings.compute_units == "cpu_and_gpu"
    assert settings.generation == GenerationConfig()
    assert settings.converter_output_dir == str(paths.models_dir())
    assert str(private_home) in settings.converter_output_dir
    assert not settings_path().exists()  # loading writes nothing


def test_round_trip_with_mode_0600() -> None:
    settings = AppSettings(
        system_prompt="Be brief.",
        generation=GenerationConfig(
            max_new_tokens=99,
            temperature=0.0,
            top_k=40,
            top_p=0.9,
            min_p=0.05,
            repetition_penalty=1.1,
            seed=7,
            stop_strings=("</s>", "User:"),
            context_policy="stop",
        ),
        compute_units="cpu_only",
        model_path="/models/SmolLM2",
        hf_token="hf_secret",
        converter_output_dir="/tmp/out",
    )
    save_settings(settings)
    assert load_settings() == settings
    assert stat.S_IMODE(os.stat(settings_path()).st_mode) == 0o600
    assert json.loads(settings_path().read_text())["generation"]["stop_strings"] == [
        "</s>",
        "User:",
    ]
    assert [p.name for p in settings_path().parent.iterdir()] == ["settings.json"]


@pytest.mark.parametrize(
    "content", ["{not json", "[1, 2]", "\udcff".encode("utf-8", "surrogateescape")]
)
def test_corrupt_files_give_defaults_and_a_warning(content, caplog) -> None:
    settings_path().parent.mkdir(parents=True)
    if isinstance(content, bytes):
        settings_path().write_bytes(content + b"\xff\xfe")
    else:
        settings_path().write_text(content)
    with caplog.at_level(logging.WARNING, logger="app.settings.app_settings"):
        assert load_settings() == AppSettings()
    assert caplog.records and "default settings" in caplog.records[0].getMessage()


def test_bad_fields_fall_back_one_by_one(caplog) -> None:
    settings_path().parent.mkdir(parents=True)
    data = {
        "system_prompt": "kept",
        "compute_units": "gpu_only",
        "hf_token": 42,
        "generation": {"temperature": "hot", "top_k": 50, "top_p": 7, "seed": True, "x": 1},
        "unknown_key": 1,
    }
    settings_path().write_text(json.dumps(data))
    with caplog.at_level(logging.WARNING, logger="app.settings.app_settings"):
        settings = load_settings()
    assert settings.system_prompt == "kept"
    assert settings.compute_units == "cpu_and_gpu"
    assert settings.hf_token == ""
    assert settings.generation.top_k == 50
    assert settings.generation.temperature == GenerationConfig().temperature
    assert settings.generation.top_p == 1.0 and settings.generation.seed is None
    messages = " ".join(r.getMessage() for r in caplog.records)
    for expected in ("found 'gpu_only'", "not 'hot'", "from 0.0 to 1.0 (1 disables), not 7"):
        assert expected in messages
    assert "found 42" in messages


def test_a_failed_write_keeps_the_old_file(monkeypatch: pytest.MonkeyPatch) -> None:
    save_settings(AppSettings(system_prompt="old"))

    def broken_replace(*_args) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr("app.settings.app_settings.os.replace", broken_replace)
        with pytest.raises(OSError, match="No space left"):
            save_settings(AppSettings(system_prompt="new"))
    assert load_settings().system_prompt == "old"
    assert [p.name for p in settings_path().parent.iterdir()] == ["settings.json"]


# --- The store: the one owner while the app runs ----------------------------------------------------


def test_store_emits_each_change_once_and_saves_on_request(qtbot) -> None:
    store = SettingsStore(AppSettings(system_prompt="old"))
    changes: list[tuple[AppSettings, AppSettings]] = []
    store.changed.connect(lambda previous, current: changes.append((previous, current)))
    assert store.update(system_prompt="new")
    assert not store.update(system_prompt="new")  # no change, no signal
    assert store.update(model_path="/m/Tiny")
    assert [(p.system_prompt, c.system_prompt) for p, c in changes] == [
        ("old", "new"),
        ("new", "new"),
    ]
    assert changes[-1][1].model_path == "/m/Tiny"
    assert not settings_path().exists()  # saved shortly after, not on every keystroke
    store.save_now()
    saved = load_settings()
    assert (saved.system_prompt, saved.model_path) == ("new", "/m/Tiny")


def test_store_saves_by_itself_after_a_change(qtbot) -> None:
    store = SettingsStore(save_delay_ms=10)
    store.update(hf_token="hf_x")
    qtbot.waitUntil(lambda: settings_path().exists(), timeout=5000)
    assert load_settings().hf_token == "hf_x"


def test_store_hands_out_copies_and_reports_a_failed_save(qtbot) -> None:
    def refuse(_settings: AppSettings) -> None:
        raise PermissionError(13, "Permission denied", "/config/settings.json")

    store = SettingsStore(save=refuse)
    store.settings.system_prompt = "changed behind the store's back"
    assert store.settings.system_prompt == ""
    store.update(system_prompt="kept")
    with qtbot.waitSignal(store.saveFailed) as failed:
        store.save_now()
    assert "Permission denied" in failed.args[0] and "/config/settings.json" in failed.args[0]
    assert store.settings.system_prompt == "kept"  # nothing lost; the next save tries again


# --- The dialog ----------------------------------------------------------------------------------


def _dialog(qtbot, settings: AppSettings, **kwargs):
    from app.shell.settings_dialog import SettingsDialog

    dialog = SettingsDialog(SettingsStore(settings), **kwargs)
    qtbot.addWidget(dialog)
    return dialog


def test_dialog_changes_persist_across_a_reopen(qtbot) -> None:
    dialog = _dialog(qtbot, load_settings())
    emitted: list[AppSettings] = []
    dialog.store.changed.connect(lambda _previous, current: emitted.append(current))
    model, generation = dialog.model_pane, dialog.generation_pane
    model.compute_units_box.setCurrentIndex(model.compute_units_box.findData("cpu_only"))
    generation.temperature.setValue(0.2)
    generation.top_k.setValue(40)
    generation.top_p.setValue(0.95)
    generation.min_p.setValue(0.05)
    generation.repetition_penalty.setValue(1.15)
    generation.max_new_tokens.setValue(256)
    generation.fixed_seed.setChecked(True)
    generation.seed.setValue(1234)
    generation.context_policy.setCurrentIndex(generation.context_policy.findData("stop"))
    generation.system_prompt.setPlainText("Answer in French.")
    qtbot.keyClicks(model.hub.token_field, "hf_abc")
    dialog.accept()  # Done: saves at once

    assert emitted and emitted[-1].compute_units == "cpu_only"
    saved = load_settings()
    assert saved.compute_units == "cpu_only"
    assert saved.hf_token == "hf_abc"
    assert saved.system_prompt == "Answer in French."
    assert saved.generation == GenerationConfig(
        max_new_tokens=256,
        temperature=0.2,
        top_k=40,
        top_p=0.95,
        min_p=0.05,
        repetition_penalty=1.15,
        seed=1234,
        context_policy="stop",
    )
    reopened = _dialog(qtbot, load_settings())
    assert reopened.model_pane.compute_units() == "cpu_only"
    assert reopened.model_pane.token() == "hf_abc"
    assert reopened.generation_pane.config() == saved.generation
    assert reopened.generation_pane.system_prompt_text() == "Answer in French."
    assert reopened.generation_pane.seed.isEnabled()


def test_the_thinking_checkbox_is_saved_and_reopened(qtbot) -> None:
    """Checked (the default) leaves ``enable_thinking`` unset; unchecked saves false."""
    dialog = _dialog(qtbot, load_settings())
    assert dialog.generation_pane.thinking.isChecked()
    assert dialog.settings().generation.enable_thinking is None
    dialog.generation_pane.thinking.setChecked(False)
    dialog.accept()
    assert load_settings().generation.enable_thinking is False
    assert json.loads(settings_path().read_text())["generation"]["enable_thinking"] is False
    reopened = _dialog(qtbot, load_settings())
    assert not reopened.generation_pane.thinking.isChecked()
    reopened.generation_pane.thinking.setChecked(True)
    reopened.accept()
    assert load_settings().generation.enable_thinking is None


def test_restore_defaults_and_unseeded(qtbot) -> None:
    start = AppSettings(generation=GenerationConfig(temperature=1.5, seed=3))
    dialog = _dialog(qtbot, start)
    dialog.generation_pane.fixed_seed.setChecked(False)
    assert dialog.settings().generation.seed is None
    dialog.generation_pane.restore_button.click()
    assert dialog.settings().generation == GenerationConfig()


def test_tabs_model_info_and_converter_prefill(qtbot, tmp_path: Path) -> None:
    dialog = _dialog(qtbot, AppSettings())
    assert dialog.model_pane.model_name.text() == "No model loaded"
    info = ModelInfo(
        "TinyMistral", "/m/TinyMistral", 256, "int4-block32", "MistralForCausalLM", "reference",
        "cpu_and_gpu", "tiny/mistral",
    )  # fmt: skip
    dialog.set_model_info(info)
    assert dialog.model_pane.model_name.text() == "TinyMistral"
    detail_texts = [
        dialog.model_pane.details.itemAt(i).widget().text()
        for i in range(dialog.model_pane.details.count())
    ]
    assert "256 tokens" in detail_texts and "Reference runtime (NumPy)" in detail_texts
    dialog.show_tab("generation")
    assert dialog.pages.currentIndex() == 1
    with pytest.raises(ValueError, match="expected one of model, generation, converter"):
        dialog.show_tab("advanced")  # type: ignore[arg-type]
    dialog.prefill_converter("someone/model", str(tmp_path))
    assert dialog.pages.currentIndex() == 2
    pane = dialog.converter_pane
    assert pane.source_field.text() == "someone/model"
    assert pane.name_field.text() == "model-int4"
    assert pane.request().output_dir == tmp_path / "model-int4"


def test_token_is_not_echoed(qtbot) -> None:
    from PySide6.QtWidgets import QLineEdit

    dialog = _dialog(qtbot, replace(AppSettings(), hf_token="hf_secret"))
    field = dialog.model_pane.hub.token_field
    assert field.echoMode() == QLineEdit.EchoMode.Password
    dialog.model_pane.hub.show_token.click()
    assert field.echoMode() == QLineEdit.EchoMode.Normal
    assert dialog.converter_pane.request().token == "hf_secret"


def test_the_hub_address_typed_in_settings_is_saved_and_used_and_a_bad_one_refused(qtbot) -> None:
    dialog = _dialog(qtbot, load_settings())
    card = dialog.model_pane.hub
    card.endpoint_field.setText("ftp://mirror.example")
    card.endpoint_field.editingFinished.emit()
    assert "expected empty or an http(s):// address" in card.download_status.text()
    assert dialog.store.settings.hub_endpoint == ""

    card.endpoint_field.setText("https://hf-mirror.example/ ")
    card.endpoint_field.editingFinished.emit()
    assert dialog.store.settings.hub_endpoint == "https://hf-mirror.example"
    assert card.lookup.endpoint == card.download.endpoint == "https://hf-mirror.example"
    dialog.accept()  # Done: saves at once
    assert load_settings().hub_endpoint == "https://hf-mirror.example"
    reopened = _dialog(qtbot, load_settings())
    assert reopened.model_pane.hub.endpoint_field.text() == "https://hf-mirror.example"

    reopened.model_pane.hub.endpoint_field.setText("")
    reopened.model_pane.hub.endpoint_field.editingFinished.emit()
    assert reopened.store.settings.hub_endpoint == ""
    assert reopened.model_pane.hub.lookup.endpoint is None
