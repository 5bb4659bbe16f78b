"""GGUF blocks → Core ML ``scale * (data - offset)``: equal to ``gguf.quants.dequantize`` within
float16 rounding, for every block type the exact import reads."""

from __future__ import annotations

import numpy as np
import pytest

from converter.gguf.blocks import UnsupportedBlockType, decode_blocks, permute_rows
from tests.unit.converter.gguf_synthetic import synthetic_blocks

SHAPE = (8, 512)
FORMS = {
    "Q4_0": ("int4", 32, False),
    "Q4_1": ("uint4", 32, True),
    "Q8_0": ("int8", 32, False),
    "Q5_0": ("int8", 32, False),
    "Q5_1": ("uint8", 32, True),
    "Q4_K": ("uint4", 32, True),
    "Q5_K": ("uint8", 32, True),
    "Q6_K": ("int8", 16, False),
}
# Types whose Core ML form is exact: the same float16 as gguf's float32 result, rounded.
EXACT = ("Q4_0", "Q8_0", "Q5_0")


@pytest.mark.parametrize("gguf_type", sorted(FORMS))
def test_blocks_equal_gguf_dequantize_within_float16_rounding(gguf_type: str) -> None:
    raw, reference = synthetic_blocks(gguf_type, SHAPE)
    blocks = decode_blocks(raw, gguf_type, SHAPE)
    data_type, block_size, has_offset = FORMS[gguf_type]
    assert (blocks.data_type, blocks.block_size) == (data_type, block_size)
    assert (blocks.offset is not None) == has_offset
    low, high = {"int4": (-8, 7), "uint4": (0, 15), "int8": (-128, 127), "uint8": (0, 255)}[
        data_type
    ]
    assert low <= blocks.data.min() and blocks.data.max() <= high
    got = blocks.dequantize()
    assert got.dtype == np.float16 and got.shape == SHAPE
    if gguf_type in EXACT:
        np.testing.assert_array_equal(got, reference.astype(np.float16))
        return
    # Within float16 rounding: each block's error below two float16 steps of its largest weight.
    per_block = np.abs(reference).reshape(SHAPE[0], -1, block_size).max(axis=-1, keepdims=True)
    step = np.spacing(per_block.astype(np.float16)).astype(np.float32)
    error = np.abs(got.astype(np.float32) - reference).reshape(SHAPE[0], -1, block_size)
    assert (error <= 2 * step).all(), float((error / step).max())


def test_constant_block_keeps_its_value() -> None:
    """Q4_1 of a constant block has scale 0: it becomes data 0, offset -1, scale m."""
    raw, reference = synthetic_blocks("Q4_1", SHAPE)
    got = decode_blocks(raw, "Q4_1", SHAPE).dequantize()
    np.testing.assert_array_equal(got[0, :32], reference[0, :32].astype(np.float16))
    assert reference[0, 0] == np.float32(0.25)


def test_rows_permute_with_their_blocks() -> None:
    raw, _ = synthetic_blocks("Q4_1", SHAPE)
    order = np.array([3, 1, 0, 2, 7, 6, 5, 4])
    got = permute_rows(decode_blocks(raw, "Q4_1", SHAPE), order).dequantize()
    np.testing.assert_array_equal(got, decode_blocks(raw, "Q4_1", SHAPE).dequantize()[order])


def test_unsupported_type_and_wrong_size_are_refused() -> None:
    raw, _ = synthetic_blocks("Q4_0", SHAPE)
    with pytest.raises(UnsupportedBlockType, match="no exact Core ML form for GGUF type Q2_K"):
        decode_blocks(raw, "Q2_K", SHAPE)
    with pytest.raises(UnsupportedBlockType, match="needs 2304 bytes, the file holds 1152"):
        decode_blocks(raw[:4], "Q4_0", SHAPE)
