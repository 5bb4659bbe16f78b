"""``--gguf-form native``: each GGUF block type in a form coremltools itself writes (no float16
offset), exact where such a form holds the block, re-fitted by the searched recipe elsewhere and
then close to the GGUF's own dequantization."""

from __future__ import annotations

import numpy as np
import pytest

from converter.gguf.blocks import decode_blocks
from converter.quantization.native_form import native_blocks
from tests.unit.converter.gguf_synthetic import synthetic_blocks

SHAPE = (8, 512)


@pytest.mark.parametrize("gguf_type", ["Q4_0", "Q8_0", "Q5_0", "Q6_K"])
def test_symmetric_blocks_are_native_already_and_stay_exact(gguf_type: str) -> None:
    raw, _ = synthetic_blocks(gguf_type, SHAPE)
    exact = decode_blocks(raw, gguf_type, SHAPE)
    native = native_blocks(exact)
    assert native.offset is None and native.data_type in ("int4", "int8")
    assert native is exact


@pytest.mark.parametrize("gguf_type", ["Q4_1", "Q4_K", "Q5_1", "Q5_K"])
def test_blocks_with_a_minimum_get_an_integer_zero_point(gguf_type: str) -> None:
    raw, reference = synthetic_blocks(gguf_type, SHAPE)
    exact = decode_blocks(raw, gguf_type, SHAPE)
    assert exact.offset is not None and exact.offset.dtype == np.float16  # what native avoids
    native = native_blocks(exact)
    assert native.data_type == ("uint4" if exact.bits == 4 else "uint8")
    assert native.offset is not None and np.issubdtype(native.offset.dtype, np.integer)
    assert native.offset.max() <= (15 if exact.bits == 4 else 255)
    assert native.block_size == exact.block_size and native.gguf_type == f"{gguf_type}-native"
    # Re-fitted to the GGUF's own values. Measured against the GGUF's own step (a block's range
    # over 15 levels, 31 for the 5-bit types): an RMS error of 0.22 steps on average (uniform
    # rounding: 0.29) and no weight off by two steps; a block far from zero is where the integer
    # zero point costs most (its grid must reach 0).
    got = native.dequantize().astype(np.float32)
    blocks = reference.reshape(SHAPE[0], -1, exact.block_size)
    levels = 15 if gguf_type.startswith("Q4") else 31
    step = (blocks.max(-1) - blocks.min(-1)) / levels
    varied = step > 0
    error = np.abs(got - reference).reshape(blocks.shape)
    rms = np.sqrt((error**2).mean(-1))
    assert (rms[varied] / step[varied]).mean() <= 0.29
    assert (error.max(-1)[varied] <= 2 * step[varied]).all()
    # deterministic: the integers decoded again when the package is written match the scales
    again = native_blocks(decode_blocks(raw, gguf_type, SHAPE))
    assert np.array_equal(again.data, native.data) and np.array_equal(again.scale, native.scale)


def test_a_whole_offset_in_range_becomes_a_zero_point_without_refitting() -> None:
    from dataclasses import replace

    raw, _ = synthetic_blocks("Q4_1", SHAPE)
    exact = decode_blocks(raw, "Q4_1", SHAPE)
    whole = replace(exact, offset=np.full_like(exact.offset, 8.0))
    native = native_blocks(whole)
    assert np.array_equal(native.data, whole.data) and native.offset.dtype == np.uint8
    assert np.array_equal(native.dequantize(), whole.dequantize())  # exact


def test_a_native_import_reads_every_tensor_in_coremltools_forms(tmp_path) -> None:
    """The import itself (``read_gguf(form="native")``): each tensor read from the file, rows
    permuted, in a native form; the same integers when read again (the lazy write reads again);
    the metadata's recipes say which tensors were re-fitted."""
    from converter.gguf import exact_import as gguf_import
    from converter.torch_model import ModelSpec
    from tests.unit.converter.gguf_synthetic import SMALL_LLAMA_CONFIG
    from tests.unit.converter.test_gguf_chunked_read import TENSORS, _write_gguf

    path = tmp_path / "small.gguf"
    _write_gguf(path)
    spec = ModelSpec.from_config(SMALL_LLAMA_CONFIG)
    exact = gguf_import.read_gguf(path, spec)
    native = gguf_import.read_gguf(path, spec, form="native")
    for gguf_name, _, gguf_type in TENSORS:
        name = gguf_import.torch_name(gguf_name)
        got, again, kept = native.blocks(name), native.blocks(name), exact.blocks(name)
        assert got.offset is None or np.issubdtype(got.offset.dtype, np.integer), gguf_type
        assert np.array_equal(got.data, again.data) and np.array_equal(got.scale, again.scale)
        if kept.offset is None:  # Q6_K, Q8_0: exact either way
            assert np.array_equal(got.dequantize(), kept.dequantize())
        else:  # Q4_1 (a permuted q projection): re-fitted, in the same row order
            error = np.abs(got.dequantize().astype(np.float32) - kept.dequantize())
            assert error.mean() < 0.25 * np.abs(kept.dequantize().astype(np.float32)).mean()
    recipes = native.recipes()
    assert recipes["Q4_1"].startswith("1 tensors re-fitted from Q4_1: uint4 block 32")
    assert recipes["Q6_K"] == "1 tensors exact: int8 block 16, float16 scale"
