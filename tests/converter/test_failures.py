"""Bad input and cancellation through the library: one clear error, nothing left behind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from converter.convert import convert
from converter.errors import ConversionError
from converter.options import ConversionRequest
from converter.progress import CancelToken, ConversionCancelled, ProgressEvent


def _copy(source: Path, destination: Path) -> Path:
    shutil.copytree(source, destination)
    return destination


def test_cancel_inside_coremltools_conversion_leaves_no_output(tmp_path, tiny_mistral_dir):
    cancel = CancelToken()
    seen: list[ProgressEvent] = []

    def on_progress(event: ProgressEvent) -> None:
        seen.append(event)
        if event.stage == "convert" and event.stage_fraction > 0.1:
            cancel.cancel()  # from inside coremltools' op loop

    with pytest.raises(ConversionCancelled):
        convert(ConversionRequest(str(tiny_mistral_dir), tmp_path / "out", context_length=64),
                progress=on_progress, cancel=cancel)  # fmt: skip
    assert seen[-1].stage == "convert" and seen[-1].stage_fraction < 1.0
    assert list(tmp_path.iterdir()) == []


def test_corrupt_weights_are_reported_and_nothing_is_written(tmp_path, tiny_mistral_dir):
    source = _copy(tiny_mistral_dir, tmp_path / "source")
    weights = source / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ConversionError, match="corrupt or truncated"):
        convert(ConversionRequest(str(source), tmp_path / "out", context_length=64))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source"]


def test_unsupported_architecture_is_refused_before_loading_weights(tmp_path, tiny_llama_dir):
    source = _copy(tiny_llama_dir, tmp_path / "source")
    config = json.loads((source / "config.json").read_text())
    config["architectures"] = ["Qwen2ForCausalLM"]
    (source / "config.json").write_text(json.dumps(config))
    (source / "model.safetensors").write_bytes(b"not weights")  # never read
    stages: list[str] = []
    with pytest.raises(ConversionError, match="Qwen2ForCausalLM"):
        convert(
            ConversionRequest(str(source), tmp_path / "out"),
            progress=lambda e: stages.append(e.stage),
        )
    assert "load" not in stages
    assert not (tmp_path / "out").exists()


def test_folder_without_config_is_not_a_model(tmp_path):
    (tmp_path / "stuff").mkdir()
    with pytest.raises(ConversionError, match=r"no config\.json"):
        convert(ConversionRequest(str(tmp_path / "stuff"), tmp_path / "out"))


def test_context_length_above_the_model_maximum_is_refused(tmp_path, tiny_llama_dir):
    with pytest.raises(ConversionError, match="above the model's maximum 1024"):
        convert(ConversionRequest(str(tiny_llama_dir), tmp_path / "out", context_length=4096))
    assert not (tmp_path / "out").exists()


def test_uncreatable_output_is_refused(tmp_path, tiny_llama_dir):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ConversionError, match="cannot create"):
        convert(ConversionRequest(str(tiny_llama_dir), blocker / "out"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]
