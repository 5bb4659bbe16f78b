"""``benchmarks/convert_memory.py --gguf-7b`` measures the exact import on a GGUF of Mistral 7B's
shape made from the demo's: its metadata and tokenizer, the ``llama.*`` keys that shape the model
set to the new width, every matrix Q4_1 of random bytes with finite per-block scales, every norm
ones. Here on a tiny shape: the file reads back with the right shapes and types, and transformers'
GGUF reader takes its config. Nothing is converted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.unit.converter.test_deeper_gguf import benchmark_module

ROOT = Path(__file__).resolve().parents[3]


def _tiny(benchmark):
    return benchmark.LlamaShape(
        hidden=64, intermediate=96, layers=2, heads=4, kv_heads=2, head_dim=32
    )


def test_wide_gguf_has_the_shape_asked_for(smollm2_gguf: Path, tmp_path: Path) -> None:
    from gguf import GGMLQuantizationType, GGUFReader
    from gguf.quants import dequantize

    benchmark = benchmark_module()
    wide = benchmark.wide_gguf(smollm2_gguf, shape=_tiny(benchmark), cache=tmp_path / "bench")
    source = GGUFReader(str(smollm2_gguf))
    reader = GGUFReader(str(wide))
    expected_keys = {
        "llama.embedding_length": 64,
        "llama.feed_forward_length": 96,
        "llama.block_count": 2,
        "llama.attention.head_count": 4,
        "llama.attention.head_count_kv": 2,
        "llama.rope.dimension_count": 32,
    }
    for key, value in expected_keys.items():
        assert reader.fields[key].contents() == value, key
    for key in ("tokenizer.ggml.tokens", "tokenizer.chat_template", "llama.vocab_size"):
        assert reader.fields[key].contents() == source.fields[key].contents(), key

    shapes = {  # GGUF order: innermost (input) dimension first
        "token_embd.weight": [64, 49152],
        "attn_q.weight": [64, 128],
        "attn_k.weight": [64, 64],
        "attn_v.weight": [64, 64],
        "attn_output.weight": [128, 64],
        "ffn_gate.weight": [64, 96],
        "ffn_up.weight": [64, 96],
        "ffn_down.weight": [96, 64],
        "attn_norm.weight": [64],
        "ffn_norm.weight": [64],
        "output_norm.weight": [64],
    }
    names = [t.name for t in reader.tensors]
    assert names[0] == "token_embd.weight" and names[-1] == "output_norm.weight"
    assert len(names) == 2 + 2 * 9
    for tensor in reader.tensors:
        suffix = tensor.name.split(".", 2)[-1] if tensor.name.startswith("blk.") else tensor.name
        assert tensor.shape.tolist() == shapes[suffix], tensor.name
        if suffix.endswith("norm.weight"):
            assert tensor.tensor_type == GGMLQuantizationType.F32, tensor.name
            np.testing.assert_array_equal(tensor.data, np.ones(64, np.float32))
        else:
            assert tensor.tensor_type == GGMLQuantizationType.Q4_1, tensor.name
            weights = dequantize(tensor.data, GGMLQuantizationType.Q4_1)
            assert np.isfinite(weights).all(), tensor.name
            assert np.abs(weights).max() < 0.3, tensor.name  # |m| <= 10 d, 15 d + m <= 9 d
            assert len(np.unique(weights)) > 8, f"{tensor.name}: expected random nibbles"
            blocks = tensor.data.reshape(-1, 20)
            d = blocks[:, 0:2].copy().view(np.float16).ravel()
            assert len(np.unique(d)) > 1, f"{tensor.name}: expected d to differ between blocks"
            assert (d > 0).all(), tensor.name


def test_transformers_reads_the_wide_config(smollm2_gguf: Path, tmp_path: Path) -> None:
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    benchmark = benchmark_module()
    wide = benchmark.wide_gguf(smollm2_gguf, shape=_tiny(benchmark), cache=tmp_path / "bench")
    config = load_gguf_checkpoint(str(wide), return_tensors=False)["config"]
    assert config["hidden_size"] == 64
    assert config["intermediate_size"] == 96
    assert config["num_hidden_layers"] == 2
    assert config["num_attention_heads"] == 4
    assert config["num_key_value_heads"] == 2
    assert config["head_dim"] == 32
    assert config["vocab_size"] == 49152


def test_wide_gguf_is_written_once(smollm2_gguf: Path, tmp_path: Path) -> None:
    benchmark = benchmark_module()
    first = benchmark.wide_gguf(smollm2_gguf, shape=_tiny(benchmark), cache=tmp_path / "bench")
    written = first.stat().st_mtime_ns
    again = benchmark.wide_gguf(smollm2_gguf, shape=_tiny(benchmark), cache=tmp_path / "bench")
    assert again == first and again.stat().st_mtime_ns == written
    assert sorted(p.name for p in (tmp_path / "bench").iterdir()) == [first.name]


def test_wide_gguf_refuses_a_width_q4_1_cannot_hold(smollm2_gguf: Path, tmp_path: Path) -> None:
    benchmark = benchmark_module()
    shape = benchmark.LlamaShape(hidden=48, intermediate=96, layers=1, heads=2, kv_heads=1,
                                 head_dim=24)  # fmt: skip
    with pytest.raises(SystemExit, match="expected a width divisible by 32, found 48"):
        benchmark.wide_gguf(smollm2_gguf, shape=shape, cache=tmp_path / "bench")
    assert not any((tmp_path / "bench").iterdir())
