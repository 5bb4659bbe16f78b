"""The searched block quantizer against brute force on small random blocks: never worse than
coremltools' max-abs scale on any block, close to the best scale a dense search finds, integers
always the nearest ones for the stored scale, outputs in the op's dtypes and ranges."""

from __future__ import annotations

import numpy as np
import pytest

import converter.quantization.block_quantizer as block_quantizer
from converter.quantization.block_quantizer import quantize_blocks


def _weights(rows: int = 48, columns: int = 64, *, seed: int = 0) -> np.ndarray:
    """Gaussian rows, heavy-tailed rows, one-signed rows, an outlier, an all-zero block."""
    rng = np.random.default_rng(seed)
    quarter = rows // 4
    parts = [
        rng.standard_normal((quarter, columns)) * 0.02,
        rng.standard_t(3, (quarter, columns)) * 0.02,
        np.abs(rng.standard_normal((quarter, columns))) * 0.02 + 0.01,
        -np.abs(rng.standard_normal((rows - 3 * quarter, columns))) * 0.5,
    ]
    weight = np.concatenate(parts).astype(np.float16)
    weight[0, :32] = 0
    weight[1, 5] = 0.3
    return weight


def _block_errors(weight: np.ndarray, blocks) -> np.ndarray:
    """Squared error per block, weights rebuilt in float32 from the stored float16 scale."""
    size = blocks.block_size
    data = blocks.data.astype(np.float32)
    if blocks.offset is not None:
        data -= np.repeat(blocks.offset.astype(np.float32), size, axis=1)
    rebuilt = data * np.repeat(blocks.scale.astype(np.float32), size, axis=1)
    return ((weight.astype(np.float32) - rebuilt) ** 2).reshape(-1, size).sum(axis=1)


def _max_abs_errors(weight: np.ndarray, size: int) -> np.ndarray:
    """coremltools' linear_symmetric int4: scale max|x| / 7, integers in ±7."""
    x = weight.astype(np.float32).reshape(-1, size)
    scale = (np.abs(x).max(axis=1, keepdims=True) / 7).astype(np.float16).astype(np.float32)
    q = np.clip(np.rint(np.divide(x, scale, out=np.zeros_like(x), where=scale > 0)), -7, 7)
    return ((x - q * scale) ** 2).sum(axis=1)


def _brute_force_errors(weight: np.ndarray, size: int, *, asymmetric: bool) -> np.ndarray:
    """The least error over a dense grid of float16 scales (both signs) and, when asymmetric,
    every zero point 0..15, with the nearest integers for each."""
    x = weight.astype(np.float32).reshape(-1, size)
    extent = np.abs(x).max(axis=1)
    best = (x**2).sum(axis=1)
    zeros = range(16) if asymmetric else [0]
    lo, hi = (0, 15) if asymmetric else (-8, 7)
    for divisor in np.linspace(0.5, 16, 1200):
        for sign in (1, -1):
            scale = (sign * extent / divisor).astype(np.float16).astype(np.float32)[:, None]
            for zero in zeros:
                nearest = np.rint(np.divide(x, scale, out=np.zeros_like(x), where=scale != 0))
                q = np.clip(nearest + zero, lo, hi) - zero
                best = np.minimum(best, ((x - q * scale) ** 2).sum(axis=1))
    return best


@pytest.mark.parametrize("form", ["symmetric", "asymmetric"])
def test_never_worse_than_max_abs_and_close_to_brute_force(form: str) -> None:
    weight = _weights(16, 64, seed=3)
    blocks = quantize_blocks(weight, block_size=32, form=form)
    errors = _block_errors(weight, blocks)
    assert (errors <= _max_abs_errors(weight, 32) * (1 + 1e-5) + 1e-12).all()
    brute = _brute_force_errors(weight, 32, asymmetric=form == "asymmetric")
    # Measured: in total within 0.1% of the dense search; the worst block 11% above it (a search
    # over candidates, not every scale).
    assert (errors <= brute * 1.15 + 1e-12).all()
    assert errors.sum() <= brute.sum() * 1.01


def test_integers_are_the_nearest_for_the_stored_scale_and_zero_point() -> None:
    weight = _weights()
    for form in ("symmetric", "asymmetric"):
        blocks = quantize_blocks(weight, block_size=16, form=form)
        scale = np.repeat(blocks.scale.astype(np.float32), 16, axis=1)
        zero = 0.0 if blocks.offset is None else np.repeat(blocks.offset, 16, axis=1)
        lo, hi = (0, 15) if form == "asymmetric" else (-8, 7)
        with np.errstate(divide="ignore", invalid="ignore"):
            nearest = np.where(scale != 0, np.rint(weight / scale), 0) + zero
        assert np.array_equal(blocks.data, np.clip(nearest, lo, hi))


def test_asymmetric_beats_symmetric_and_symmetric_beats_max_abs_overall() -> None:
    weight = _weights(64, 128, seed=5)
    symmetric = _block_errors(weight, quantize_blocks(weight, form="symmetric")).sum()
    asymmetric = _block_errors(weight, quantize_blocks(weight, form="asymmetric")).sum()
    assert asymmetric < 0.9 * symmetric < 0.9 * _max_abs_errors(weight, 32).sum()


def test_outputs_have_the_ops_dtypes_shapes_and_ranges() -> None:
    weight = _weights()
    symmetric = quantize_blocks(weight, block_size=32, form="symmetric")
    assert (symmetric.data_type, symmetric.data.dtype, symmetric.offset) == ("int4", np.int8, None)
    assert symmetric.data.shape == weight.shape and symmetric.scale.shape == (48, 2)
    assert symmetric.scale.dtype == np.float16 and symmetric.data.min() >= -8
    assert symmetric.data.max() <= 7 and symmetric.gguf_type == "int4-searched"

    asymmetric = quantize_blocks(weight, block_size=16, form="asymmetric")
    assert (asymmetric.data_type, asymmetric.data.dtype) == ("uint4", np.uint8)
    assert asymmetric.offset is not None and asymmetric.offset.dtype == np.uint8
    assert asymmetric.offset.shape == asymmetric.scale.shape == (48, 4)
    assert asymmetric.data.max() <= 15 and asymmetric.offset.max() <= 15
    # CoreMLBlocks' own float16 dequantization (coremltools' semantics) takes the integer offset.
    rebuilt = asymmetric.dequantize().astype(np.float32)
    assert np.abs(rebuilt - weight.astype(np.float32)).max() < 0.05

    eight = quantize_blocks(weight, form="symmetric", bits=8)
    assert eight.data_type == "int8" and eight.data.min() >= -128 and eight.data.max() <= 127
    assert eight.gguf_type == "int8-searched"
    assert _block_errors(weight, eight).sum() < _block_errors(weight, symmetric).sum() / 100


def test_chunks_of_rows_give_the_same_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    weight = _weights(40, 64)
    whole = quantize_blocks(weight, form="asymmetric")
    monkeypatch.setattr(block_quantizer, "CHUNK_ELEMENTS", 64 * 3)  # 3 rows, a partial last one
    chunked = quantize_blocks(weight, form="asymmetric")
    assert np.array_equal(whole.data, chunked.data)
    assert np.array_equal(whole.scale, chunked.scale)
    assert np.array_equal(whole.offset, chunked.offset)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"block_size": 48}, "block size 48 does not divide the weight's 64 columns"),
        ({"block_size": 0}, "block size 0 does not divide"),
        ({"form": "nf4"}, "form: expected one of symmetric, asymmetric, found 'nf4'"),
        ({"bits": 3}, "bits: expected 4 or 8, found 3"),
    ],
)
def test_bad_options_are_refused_saying_what_was_expected(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        quantize_blocks(_weights(4, 64), **kwargs)


def test_bad_weights_are_refused() -> None:
    with pytest.raises(ValueError, match="expected a 2-D weight"):
        quantize_blocks(np.zeros(64, dtype=np.float16))
    weight = _weights(4, 64)
    weight[2, 3] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        quantize_blocks(weight)


def _exact_errors(weight: np.ndarray, blocks) -> np.ndarray:
    """Squared error per block in float64, from the stored integers and float16 scale."""
    size = blocks.block_size
    data = blocks.data.astype(np.float64)
    if blocks.offset is not None:
        data -= np.repeat(blocks.offset.astype(np.float64), size, axis=1)
    rebuilt = data * np.repeat(blocks.scale.astype(np.float64), size, axis=1)
    return ((weight.astype(np.float64) - rebuilt) ** 2).reshape(-1, size).sum(axis=1)


def _exact_max_abs_errors(weight: np.ndarray, size: int, *, bits: int = 4) -> np.ndarray:
    """coremltools' linear_symmetric (scale max|x| / (half - 1), integers in ±(half - 1)),
    its squared error per block in float64."""
    most = (1 << (bits - 1)) - 1
    x = weight.astype(np.float64).reshape(-1, size)
    scale = (np.abs(x).max(axis=1, keepdims=True) / most).astype(np.float16).astype(np.float64)
    q = np.clip(np.rint(np.divide(x, scale, out=np.zeros_like(x), where=scale > 0)), -most, most)
    return ((x - q * scale) ** 2).sum(axis=1)


def _heavy_tailed(blocks: int, *, seed: int, dtype=np.float16) -> np.ndarray:
    """Student-t blocks with 2 degrees of freedom: one outlier often dwarfs the rest of its block,
    so a block's error is a tiny fraction of its energy (sums in float32 cancel there)."""
    rng = np.random.default_rng(seed)
    return (rng.standard_t(2, (blocks, 32)) * 0.02).astype(dtype).reshape(-1, 256)


@pytest.mark.parametrize("form", ["symmetric", "asymmetric"])
@pytest.mark.parametrize(("bits", "dtype"), [(4, np.float32), (8, np.float16)])
def test_never_worse_than_max_abs_on_heavy_tailed_blocks_in_float64(form, bits, dtype) -> None:
    """Fails both ways the promise can break: ranked by float32 sums (before the final choice
    was made in float64, 7-42 of these 50,000 blocks came out worse than max-abs at 4 bits on
    float32 weights, 2-12 at 8 bits, by up to 1%), and without the max-abs candidate (5-39
    blocks, by up to 2%: its scale beats every searched one there)."""
    weight = _heavy_tailed(50_000, seed=7, dtype=dtype)
    errors = _exact_errors(weight, quantize_blocks(weight, block_size=32, form=form, bits=bits))
    max_abs = _exact_max_abs_errors(weight, 32, bits=bits)
    worse = errors > max_abs * (1 + 1e-9)
    assert not worse.any(), (
        f"expected no block worse than max-abs, found {worse.sum()}, by up to "
        f"{(errors[worse] / max_abs[worse]).max() - 1:.2e}"
    )
