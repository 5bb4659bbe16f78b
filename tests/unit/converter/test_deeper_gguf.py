"""``benchmarks/convert_memory.py --gguf-layers N`` measures the exact import on a deeper GGUF made
from a real one: every block tensor is a byte-for-byte copy of ``blk.(i % layers)``, the metadata
is kept except the block count, and the file is written once and then reused."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.unit.converter.gguf_synthetic import synthetic_blocks

ROOT = Path(__file__).resolve().parents[3]


def benchmark_module():
    """``benchmarks/convert_memory.py`` (benchmarks/ is no package), loaded once."""
    if "convert_memory" in sys.modules:
        return sys.modules["convert_memory"]
    spec = importlib.util.spec_from_file_location(
        "convert_memory", ROOT / "benchmarks" / "convert_memory.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # a dataclass looks its module up while being defined
    spec.loader.exec_module(module)
    return module


def _write_source(path: Path, *, block_count: bool = True) -> None:
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    if block_count:
        writer.add_block_count(2)
    writer.add_token_list(["<unk>", "a", "b"])
    writer.add_chat_template("{{ messages }}")
    writer.add_tensor("token_embd.weight", synthetic_blocks("Q8_0", (8, 64), seed=9)[0],
                      raw_dtype=gguf.GGMLQuantizationType.Q8_0)  # fmt: skip
    for layer in range(2):
        raw, _ = synthetic_blocks("Q4_1", (32, 64), seed=layer)
        writer.add_tensor(f"blk.{layer}.attn_q.weight", raw,
                          raw_dtype=gguf.GGMLQuantizationType.Q4_1)  # fmt: skip
        writer.add_tensor(f"blk.{layer}.attn_norm.weight", np.full(64, layer + 1.0, np.float32))
    writer.add_tensor("output_norm.weight", np.ones(64, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_deeper_gguf_repeats_the_blocks_byte_for_byte(tmp_path: Path) -> None:
    from gguf import GGUFReader

    source = tmp_path / "small.gguf"
    _write_source(source)
    deeper = benchmark_module().deeper_gguf(source, layers=5, cache=tmp_path / "bench")

    original = {t.name: t for t in GGUFReader(str(source)).tensors}
    reader = GGUFReader(str(deeper))
    assert reader.fields["llama.block_count"].contents() == 5
    assert reader.fields["tokenizer.ggml.tokens"].contents() == ["<unk>", "a", "b"]
    assert reader.fields["tokenizer.chat_template"].contents() == "{{ messages }}"
    names = [t.name for t in reader.tensors]
    assert names[0] == "token_embd.weight" and names[-1] == "output_norm.weight"
    assert len(names) == 2 + 5 * 2
    for tensor in reader.tensors:
        source_name = tensor.name
        if tensor.name.startswith("blk."):
            _, layer, rest = tensor.name.split(".", 2)
            source_name = f"blk.{int(layer) % 2}.{rest}"
        assert tensor.tensor_type == original[source_name].tensor_type, tensor.name
        np.testing.assert_array_equal(tensor.data, original[source_name].data)


def test_deeper_gguf_is_written_once(tmp_path: Path) -> None:
    source = tmp_path / "small.gguf"
    _write_source(source)
    benchmark = benchmark_module()
    first = benchmark.deeper_gguf(source, layers=3, cache=tmp_path / "bench")
    written = first.stat().st_mtime_ns
    again = benchmark.deeper_gguf(source, layers=3, cache=tmp_path / "bench")
    assert again == first and again.stat().st_mtime_ns == written
    assert sorted(p.name for p in (tmp_path / "bench").iterdir()) == [first.name]


def test_deeper_gguf_needs_a_block_count(tmp_path: Path) -> None:
    source = tmp_path / "small.gguf"
    _write_source(source, block_count=False)
    with pytest.raises(SystemExit, match=r"expected llama\.block_count"):
        benchmark_module().deeper_gguf(source, layers=3, cache=tmp_path / "bench")
    assert not (tmp_path / "bench").exists() or not any((tmp_path / "bench").iterdir())
