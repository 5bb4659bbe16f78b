"""The reference runtime keeps compressed weights compressed: resident memory near the package's
size (it held 8 bytes per int4 value as float32), the same answers whatever the budget of
dequantized copies, and the block path equal to the dequantizer it restates."""

from __future__ import annotations

import numpy as np
import pytest
import torch  # noqa: F401  # coremltools is imported after torch in the test suite

from engine.runtime.reference.compressed_weights import (
    BlockLinear,
    CompressedWeight,
    DequantizedCache,
    block_linear_or_none,
    gather_compressed,
    linear_compressed,
    pack_nibbles,
    unpack_nibbles,
)
from engine.runtime.reference.dequantize import (
    constexpr_blockwise_shift_scale,
    constexpr_lut_to_dense,
)

RNG = np.random.default_rng(0)


def _weight(form: str, cache_bytes: int) -> tuple[CompressedWeight, dict, np.ndarray]:
    """A (96, 128) weight with blocks of 32 along its inputs, in one of the package's forms."""
    scale = (RNG.random((96, 4)) * 0.05 + 0.001).astype(np.float16)
    if form == "int4":
        arguments = {"data": RNG.integers(-8, 8, (96, 128)).astype(np.int8), "scale": scale}
        bits, signed = 4, True
    elif form == "uint4_offset":  # GGUF-like: unsigned data, an offset per block
        arguments = {
            "data": RNG.integers(0, 16, (96, 128)).astype(np.uint8),
            "scale": scale,
            "offset": (RNG.random((96, 4)) * 8).astype(np.float16),
        }
        bits, signed = 4, False
    else:  # int8
        arguments = {"data": RNG.integers(-128, 128, (96, 128)).astype(np.int8), "scale": scale}
        bits, signed = None, True
    dense = constexpr_blockwise_shift_scale(**arguments)
    weight = CompressedWeight(
        "w",
        constexpr_blockwise_shift_scale,
        arguments,
        data_bits=bits,
        data_signed=signed,
        cache=DequantizedCache(cache_bytes),
    )
    return weight, arguments, dense


def test_nibbles_pack_and_unpack():
    values = RNG.integers(-8, 8, (5, 10)).astype(np.int8)
    packed = pack_nibbles(values)
    assert packed.shape == (5, 5) and packed.dtype == np.uint8
    assert np.array_equal(unpack_nibbles(packed, signed=True), values)
    unsigned = RNG.integers(0, 16, (3, 8)).astype(np.uint8)
    assert np.array_equal(
        unpack_nibbles(pack_nibbles(unsigned), signed=False, dtype=np.uint8), unsigned
    )


@pytest.mark.parametrize("form", ["int4", "uint4_offset", "int8"])
@pytest.mark.parametrize("cache_bytes", [0, 1 << 20])
def test_the_block_path_equals_the_dequantizer(form, cache_bytes):
    weight, arguments, dense = _weight(form, cache_bytes)
    if form != "int8":
        assert weight.nbytes <= dense.size * 0.625  # two values a byte, plus scales (offsets)
    block = block_linear_or_none(weight, arguments)
    assert isinstance(block, BlockLinear)
    x = RNG.standard_normal((3, 128)).astype(np.float16)
    bias = RNG.standard_normal(96).astype(np.float32)
    expected = (x.astype(np.float32) @ dense.astype(np.float32).T + bias).astype(np.float16)
    for _ in range(2):  # the second use from the cache when it fits
        found = linear_compressed(x, block, bias)
        scale = float(np.abs(expected.astype(np.float32)).max())  # float16 outputs' rounding
        np.testing.assert_allclose(found.astype(np.float32), expected, atol=2e-3 * scale)
    assert np.array_equal(weight.dense(), dense)
    indices = np.array([[0, 95, -1], [7, 7, 50]])
    assert np.array_equal(gather_compressed(weight, indices), dense[np.mod(indices, 96)])


def test_a_form_without_the_block_path_goes_through_its_dequantizer():
    indices = RNG.integers(0, 16, (40, 64)).astype(np.uint8)
    lut = RNG.standard_normal((1, 1, 16, 1)).astype(np.float16)
    arguments = {"indices": indices, "lut": lut}
    dense = constexpr_lut_to_dense(**arguments)
    weight = CompressedWeight(
        "palette",
        constexpr_lut_to_dense,
        arguments,
        data_bits=4,
        data_signed=False,
        cache=DequantizedCache(0),
    )
    assert block_linear_or_none(weight, arguments) is None
    assert np.array_equal(weight.dense(), dense)
    x = RNG.standard_normal((2, 64)).astype(np.float32)
    np.testing.assert_allclose(
        linear_compressed(x, weight, None), x @ dense.astype(np.float32).T, rtol=1e-5
    )
