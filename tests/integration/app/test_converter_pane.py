"""The Converter tab driven like a user would: the suite's one real conversion through the
converter process (a Hub id, from the offline cache, to "Use This Model"), its one cancel from the
button, and form errors that start nothing. The CLI, ``ConverterProcess`` and ``convert()`` are
not converted again elsewhere: their own tests stop early or use the session's packages."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.conversion.converter_pane import format_elapsed
from app.settings.app_settings import AppSettings, load_settings
from app.settings.settings_store import SettingsStore
from converter.options import build_parser
from engine.package import metadata as meta


def hub_cache_with(repo_id: str, source: Path, cache: Path) -> None:
    """Lay ``source``'s files out as huggingface_hub's cache holds a downloaded snapshot."""
    import shutil

    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / ("0" * 40)
    shutil.copytree(source, snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)


def _dialog(qtbot, output_dir: Path):
    from app.shell.settings_dialog import SettingsDialog

    dialog = SettingsDialog(SettingsStore(AppSettings(converter_output_dir=str(output_dir))))
    qtbot.addWidget(dialog)
    return dialog


def test_form_errors_start_nothing(qtbot, tmp_path: Path) -> None:
    dialog = _dialog(qtbot, tmp_path / "models")
    pane = dialog.converter_pane
    assert not pane.start()
    assert "expected a Hub id" in pane.status_label.text()
    pane.source_field.setText(str(tmp_path / "nothing.gguf"))
    assert not pane.start()
    assert "no such .gguf file" in pane.status_label.text()
    assert not pane.is_running() and not (tmp_path / "models").exists()


def test_quantization_choices_shape_the_request(qtbot, tmp_path: Path) -> None:
    pane = _dialog(qtbot, tmp_path).converter_pane
    pane.source_field.setText("mistralai/Mistral-7B-Instruct-v0.3")
    assert pane.name_field.text() == "Mistral-7B-Instruct-v0.3-int4"
    pane.quantization_box.setCurrentIndex(pane.quantization_box.findData("none"))
    assert not pane.block_spin.isEnabled()
    assert pane.name_field.text() == "Mistral-7B-Instruct-v0.3-fp16"
    pane.name_field.setText("mine")
    pane.name_field.textEdited.emit("mine")
    pane.source_field.setText("other/model")
    request = pane.request()
    assert request.output_dir == tmp_path / "mine" and request.quantize == "none"
    assert [format_elapsed(s) for s in (5, 75, 3725)] == ["0:05", "1:15", "1:02:05"]


def test_the_gguf_form_is_offered_for_a_gguf_kept_in_its_blocks(qtbot, tmp_path: Path) -> None:
    from app.conversion.converter_pane import GGUF_FORM_HINT

    pane = _dialog(qtbot, tmp_path).converter_pane
    pane.source_field.setText("owner/model")
    assert not pane.gguf_form_box.isEnabled() and pane.request().gguf_form == "exact"
    pane.source_field.setText(str(tmp_path / "model.Q4_K_M.gguf"))
    assert pane.gguf_form_box.isEnabled()
    pane.gguf_form_box.setCurrentIndex(pane.gguf_form_box.findData("native"))
    assert pane.request().gguf_form == "native"
    assert "coremltools itself writes and tests" in GGUF_FORM_HINT
    assert pane.gguf_form_box.toolTip() == GGUF_FORM_HINT
    pane.quantization_box.setCurrentIndex(pane.quantization_box.findData("int4"))  # re-quantized
    assert not pane.gguf_form_box.isEnabled() and pane.request().gguf_form == "exact"


def test_the_int4_recipe_and_8_bit_embeddings_reach_the_request(qtbot, tmp_path: Path) -> None:
    pane = _dialog(qtbot, tmp_path).converter_pane
    pane.source_field.setText("mistralai/Mistral-7B-Instruct-v0.3")
    assert pane.request().int4_recipe == "searched" and not pane.request().int8_embeddings
    pane.int4_recipe_box.setCurrentIndex(pane.int4_recipe_box.findData("linear-symmetric"))
    pane.int8_embeddings_check.setChecked(True)
    request = pane.request()
    assert request.int4_recipe == "linear-symmetric" and request.int8_embeddings
    assert (
        type(request).from_args(build_parser().parse_args(request.to_argv())) == request
    )  # the process gets its argv

    # A .gguf kept exactly (Automatic) has no int4 embeddings to keep at 8 bits.
    pane.source_field.setText(str(tmp_path / "model.Q4_K_M.gguf"))
    assert not pane.int8_embeddings_check.isEnabled() and not pane.request().int8_embeddings
    pane.quantization_box.setCurrentIndex(pane.quantization_box.findData("int4"))
    assert pane.int8_embeddings_check.isEnabled() and pane.request().int8_embeddings
    pane.quantization_box.setCurrentIndex(pane.quantization_box.findData("int8"))
    assert not pane.int4_recipe_box.isEnabled()


@pytest.mark.slow
def test_converts_a_hub_id_to_completion_and_uses_the_model(
    qtbot, tiny_mistral_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.runtime import load_model

    hub_cache_with("example/tiny-mistral", tiny_mistral_dir, tmp_path / "hub")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))  # the converter process inherits it
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    output_dir = tmp_path / "models"
    dialog = _dialog(qtbot, output_dir)
    pane = dialog.converter_pane
    dialog.prefill_converter("example/tiny-mistral", str(output_dir))
    pane.context_spin.setValue(64)
    pane.last_logits_check.setChecked(True)
    stages_seen: set[str] = set()
    pane.process.progressChanged.connect(
        lambda: stages_seen.add(pane.process.tracker.current_stage)
    )
    with qtbot.waitSignal(pane.process.finished, timeout=300000) as finished:
        assert pane.start()
        assert pane.cancel_button.isEnabled() and not pane.start_button.isEnabled()
    outcome = finished.args[0]
    assert outcome.status == "done", pane.log_view.toPlainText()[-500:]
    expected = output_dir / "tiny-mistral-int4"
    assert Path(outcome.output) == expected.resolve() and outcome.seconds > 0
    assert {"resolve", "load", "convert", "quantize", "save"} <= stages_seen
    assert pane.process.tracker.overall == 1.0
    assert pane.overall_bar.value() == 1000
    assert all(bar.value() == 1000 for bar in pane.stage_bars.values())
    assert pane.status_label.text().startswith("Converted in")
    assert "Converted in " in pane.log_view.toPlainText()
    assert [p.name for p in output_dir.iterdir()] == ["tiny-mistral-int4"]  # no staging left
    assert len(list(expected.glob("*.mlpackage"))) == 1
    assert (expected / meta.TOKENIZER_FILE).is_file()
    metadata = load_model(expected).description.metadata
    assert metadata[meta.SOURCE_MODEL_ID] == "example/tiny-mistral"
    assert metadata[meta.LAST_LOGITS_ONLY] == "true" and metadata[meta.CONTEXT_LENGTH] == "64"
    assert not pane.use_button.isHidden()
    chosen: list[str] = []
    dialog.modelChosen.connect(chosen.append)
    pane.use_button.click()
    assert chosen == [str(expected.resolve())]
    dialog.accept()
    assert load_settings().model_path == str(expected.resolve())


@pytest.mark.slow
def test_cancel_button_stops_and_leaves_nothing(
    qtbot, tiny_mistral_dir: Path, tmp_path: Path
) -> None:
    output_dir = tmp_path / "models"
    pane = _dialog(qtbot, output_dir).converter_pane
    pane.prefill(str(tiny_mistral_dir), str(output_dir))
    pane.context_spin.setValue(64)
    pane.process.progressChanged.connect(
        lambda: (
            pane.cancel_button.click()
            if pane.process.tracker.current_stage == "load" and pane.cancel_button.isEnabled()
            else None
        )
    )
    with qtbot.waitSignal(pane.process.finished, timeout=300000) as finished:
        assert pane.start()
    outcome = finished.args[0]
    assert outcome.status == "cancelled" and outcome.leftovers == ()
    assert pane.status_label.text() == "Cancelled; nothing was written."
    states = [mark.property("state") for mark in pane.stage_marks.values()]
    assert states.count("stopped") == 1 and states[0] == "done"
    assert list(output_dir.iterdir()) == []  # neither the model folder nor a staging folder
    assert pane.start_button.isEnabled() and not pane.cancel_button.isEnabled()
