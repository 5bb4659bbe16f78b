"""GGUF tensor names per architecture: every tensor lands on the module's own name or is an error
(a silently dropped bias once converted a different model); fused tensors split by rows exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from converter.errors import ConversionError
from converter.gguf.tensor_names import torch_name
from tests.families import family_config


@pytest.mark.parametrize(
    ("architecture", "gguf_name", "expected"),
    [
        ("qwen2", "blk.2.attn_q.bias", "model.layers.2.self_attn.q_proj.bias"),
        ("qwen3", "blk.0.attn_k_norm.weight", "model.layers.0.self_attn.k_norm.weight"),
        ("gemma3", "blk.1.ffn_norm.weight", "model.layers.1.pre_feedforward_layernorm.weight"),
        (
            "gemma2",
            "blk.1.post_ffw_norm.weight",
            "model.layers.1.post_feedforward_layernorm.weight",
        ),
        ("llama", "blk.1.ffn_norm.weight", "model.layers.1.post_attention_layernorm.weight"),
        ("phi3", "blk.0.attn_qkv.weight", "model.layers.0.self_attn.qkv_proj.weight"),
        ("llama", "rope_freqs.weight", None),
    ],
)
def test_names_per_architecture(architecture, gguf_name, expected):
    assert torch_name(gguf_name, architecture) == expected


@pytest.mark.parametrize(
    ("architecture", "gguf_name"),
    [
        ("qwen2", "blk.0.attn_q_norm.weight"),
        ("gemma3", "blk.0.something_new.weight"),
        ("phi3", "rope_factors_long.weight"),
    ],
)
def test_a_tensor_no_map_names_is_an_error(architecture, gguf_name):
    with pytest.raises(ConversionError, match=gguf_name.replace(".", r"\.")):
        torch_name(gguf_name, architecture)


def test_an_architecture_without_a_map_is_refused():
    with pytest.raises(ConversionError, match="'falcon' has no exact import"):
        torch_name("blk.0.attn_q.weight", "falcon")


def test_phi3_fused_tensors_split_into_the_module_rows_exactly(tmp_path: Path):
    import gguf
    from gguf.quants import quantize

    from converter.gguf.blocks import decode_blocks
    from converter.gguf.exact_import import read_gguf
    from converter.model_spec import ModelSpec

    config = {**family_config("phi3"), "architectures": ["Phi3ForCausalLM"]}
    spec = ModelSpec.from_config(config)
    rows = spec.hidden_size + 2 * spec.num_kv_heads * spec.head_dim  # q, k, v
    values = np.random.default_rng(0).standard_normal((rows, spec.hidden_size)).astype(np.float32)
    raw = quantize(values, gguf.GGMLQuantizationType.Q8_0)
    path = tmp_path / "phi3.gguf"
    writer = gguf.GGUFWriter(str(path), "phi3")
    writer.add_tensor("blk.0.attn_qkv.weight", raw, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    imported = read_gguf(path, spec)
    whole = decode_blocks(raw, "Q8_0", values.shape)
    start = 0
    for part, count in (("q", 64), ("k", 32), ("v", 32)):
        got = imported.blocks(f"model.layers.0.self_attn.{part}_proj.weight")
        assert np.array_equal(got.data, whole.data[start : start + count])
        assert np.array_equal(got.scale, whole.scale[start : start + count])
        start += count


def test_a_bias_a_llama_has_not_is_refused_not_dropped(tmp_path: Path):
    """The name maps, but the Llama module has no bias: building it refuses the tensor."""
    import gguf

    from converter.gguf.exact_import import module_weights, read_gguf
    from converter.model_spec import ModelSpec
    from converter.torch_model import build_stateful_model
    from tests.unit.converter.gguf_synthetic import SMALL_LLAMA_CONFIG

    path = tmp_path / "llama.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tensor("blk.0.attn_q.bias", np.ones(256, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    spec = ModelSpec.from_config(SMALL_LLAMA_CONFIG)
    weights = module_weights(read_gguf(path, spec))
    with pytest.raises(ConversionError, match=r"first: model\.layers\.0\.self_attn\.q_proj\.bias"):
        build_stateful_model(spec, weights, context_length=16)
