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
    config["architectures"] = ["GraniteForCausalLM"]
    (source / "config.json").write_text(json.dumps(config))
    (source / "model.safetensors").write_bytes(b"not weights")  # never read
    stages: list[str] = []
    with pytest.raises(ConversionError, match="unsupported architecture GraniteForCausalLM"):
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


def _tiny_llama_with(folder: Path, tokenizer_dir: Path, **config_changes) -> Path:
    """A tiny random Llama whose config turns on a feature (transformers implements it)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(7)
    config = LlamaConfig(
        vocab_size=32768, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        **config_changes,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(str(folder))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(tokenizer_dir / name, folder / name)
    return folder


@pytest.mark.parametrize("feature", ["attention_bias", "mlp_bias"])
def test_llama_with_biases_is_refused_not_converted_wrong(
    tmp_path, mistral_v3_tokenizer_dir, feature
):
    source = _tiny_llama_with(tmp_path / "source", mistral_v3_tokenizer_dir, **{feature: True})
    stages: list[str] = []
    with pytest.raises(ConversionError, match=f"{feature}=True is not supported"):
        convert(
            ConversionRequest(str(source), tmp_path / "out", context_length=16),
            progress=lambda e: stages.append(e.stage),
        )
    assert "load" not in stages and not (tmp_path / "out").exists()


def test_checkpoint_tensors_we_do_not_handle_are_refused(tmp_path, tiny_mistral_dir):
    import torch
    from safetensors.torch import load_file, save_file

    source = _copy(tiny_mistral_dir, tmp_path / "source")
    weights = load_file(str(source / "model.safetensors"))
    weights["model.layers.0.self_attn.q_proj.bias"] = torch.ones(64, dtype=torch.float32)
    save_file(weights, str(source / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ConversionError, match=r"first: model\.layers\.0\.self_attn\.q_proj\.bias"):
        convert(ConversionRequest(str(source), tmp_path / "out", context_length=16))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source"]


def test_block_size_that_does_not_divide_the_weights_is_refused_up_front(tmp_path, tiny_llama_dir):
    stages: list[str] = []
    with pytest.raises(ConversionError, match="--block-size 48 does not divide"):
        convert(
            ConversionRequest(str(tiny_llama_dir), tmp_path / "out", context_length=16,
                              block_size=48),
            progress=lambda e: stages.append(e.stage),
        )  # fmt: skip
    assert "load" not in stages and list(tmp_path.iterdir()) == []


def _one_linear_program():
    import coremltools as ct
    import numpy as np
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    weight = np.random.default_rng(0).standard_normal((64, 96)).astype(np.float16)

    @mb.program(
        input_specs=[mb.TensorSpec(shape=(1, 96), dtype=types.fp16)],
        opset_version=ct.target.iOS18,
    )
    def program(x):
        return mb.linear(x=x, weight=weight, name="out")

    return program


def test_weights_coremltools_left_unquantized_fail_the_conversion():
    """coremltools skips a weight its block size does not divide, with a warning only; the
    package must not be labelled int4 then."""
    from converter.coreml_export import compress_and_build

    def quiet(fraction: float, message: str) -> None:
        pass

    built = compress_and_build(_one_linear_program(), mode="int4", block_size=32, report=quiet,
                               cancel=None)  # fmt: skip
    assert built is not None
    with pytest.raises(ConversionError, match="left 1 of 1 weights in float16"):
        compress_and_build(_one_linear_program(), mode="int4", block_size=40, report=quiet,
                           cancel=None)  # fmt: skip
