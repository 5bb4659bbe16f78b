"""The exact import reads each tensor from the file a few rows at a time: the result is the same as
decoding the whole tensor at once (row permutation included), whatever the chunk size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.unit.converter.gguf_synthetic import SMALL_LLAMA_CONFIG, synthetic_blocks

# GGUF name, torch shape, type: a permuted q projection, a K-quant, the embedding.
TENSORS = [
    ("blk.0.attn_q.weight", (256, 256), "Q4_1"),
    ("blk.0.ffn_down.weight", (256, 512), "Q6_K"),
    ("token_embd.weight", (32, 256), "Q8_0"),
]


def _write_gguf(path: Path) -> dict[str, np.ndarray]:
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    raws = {}
    for seed, (name, shape, gguf_type) in enumerate(TENSORS):
        raw, _ = synthetic_blocks(gguf_type, shape, seed=seed)
        writer.add_tensor(name, raw, raw_dtype=gguf.GGMLQuantizationType[gguf_type])
        raws[name] = raw
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return raws


@pytest.mark.parametrize("rows_per_read", [1, 3, 100, 4096])
def test_chunked_read_equals_one_decode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows_per_read: int
) -> None:
    from converter.gguf import exact_import as gguf_import
    from converter.gguf.blocks import decode_blocks, permute_rows
    from converter.torch_model import ModelSpec

    path = tmp_path / "small.gguf"
    raws = _write_gguf(path)
    spec = ModelSpec.from_config(SMALL_LLAMA_CONFIG)
    imported = gguf_import.read_gguf(path, spec)
    monkeypatch.setattr(gguf_import, "ROWS_PER_READ", rows_per_read)
    for gguf_name, shape, gguf_type in TENSORS:
        name = gguf_import.torch_name(gguf_name)
        want = decode_blocks(raws[gguf_name], gguf_type, shape)
        order = imported.row_order(imported.quantized[name])
        if order is not None:
            want = permute_rows(want, order)
        got = imported.blocks(name)
        assert (got.gguf_type, got.data_type, got.block_size) == (
            want.gguf_type,
            want.data_type,
            want.block_size,
        )
        assert got.data.dtype == want.data.dtype and np.array_equal(got.data, want.data), name
        assert np.array_equal(got.scale, want.scale), name
        if want.offset is None:
            assert got.offset is None
        else:
            assert np.array_equal(got.offset, want.offset), name
