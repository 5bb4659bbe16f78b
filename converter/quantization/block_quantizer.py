"""Block quantization by searched scales: each block's scale (and zero point) chosen to minimize
its squared error, as llama.cpp's ``make_qx_quants``/``make_qkx2_quants`` do, instead of
coremltools' max-abs scale.

A weight (rows, columns) is cut into blocks of ``block_size`` input channels. For each block a
set of candidate scales is tried (the max-abs scale coremltools uses; the signed extreme mapped to
each end of the integer range, stretched in small steps; for the asymmetric form the block's
(min, max) mapped onto 0..15); for each candidate the integers are rounded, the scale is refitted
by least squares for those integers, rounded to float16 (what the package stores) and the
squared error computed. The best scale wins; the integers are then rounded once more for it
(nearest rounding is optimal for a fixed scale). Because coremltools' own candidate is among the
tried ones and the error is always measured with the stored float16 scale, no block ends worse
than coremltools' ``linear_symmetric``.

Forms (all ``constexpr_blockwise_shift_scale``, ``scale * (data - offset)``):

- ``symmetric``: int4 data in [-8, 7], float16 scale: 4.5 bits per weight at block 32, the size
  of coremltools' int4 ``linear_symmetric``.
- ``asymmetric``: uint4 data in [0, 15] with a uint4 zero point per block (the op takes an
  integer offset of the data's dtype): 4.625 bits per weight at block 32. coremltools' candidate
  and the unstretched symmetric ones are tried with zero point 8 beside the (min, max) ones.
- ``bits=8``: the same searches on int8/uint8 data (for embeddings kept at 8 bits).

Rows go through in chunks of about ``CHUNK_ELEMENTS`` values, one chunk per core at a time, so a
14336×4096 weight needs a few MB of float32 temporaries per core beside its float16 input and its
integer output.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np

from converter.gguf.blocks import CoreMLBlocks

logger = logging.getLogger(__name__)

Form = Literal["symmetric", "asymmetric"]
FORMS: tuple[Form, ...] = ("symmetric", "asymmetric")
# Values quantized at a time: 256K float32 is 1 MB, within a core's L2 cache.
CHUNK_ELEMENTS = 1 << 18
# The stretch of the extreme's mapping around the range's end, as llama.cpp's make_qx_quants
# (which steps by 0.1). Measured on Gaussian and t(4) weights: steps of 0.2 lose 0.01% of the
# error reduction for half the time; the asymmetric form only tries the unstretched ends (the
# stretched ones bought 0.2% there).
SYMMETRIC_STEPS = np.arange(-4, 5) * 0.2
# make_qkx2_quants' (min, max) → (nmax - 1 .. nmax + 1) by 0.1; by 0.3 here (0.08% more error
# than by 0.2, 0.36 s → 0.24 s on 2M weights).
ASYMMETRIC_STEPS = np.arange(-3, 4) * 0.3


def recipe_name(form: Form, bits: int = 4) -> str:
    """The metadata's name of a form: ``int4-searched`` / ``int4-searched-asymmetric``."""
    return f"int{bits}-searched" + ("-asymmetric" if form == "asymmetric" else "")


def describe(blocks: CoreMLBlocks) -> str:
    """``uint4 block 32, float16 scale, uint4 zero point`` (the recipe's text in the metadata)."""
    text = f"{blocks.data_type} block {blocks.block_size}, float16 scale"
    if blocks.offset is not None:
        text += f", {blocks.data_type} zero point"
    return text


def quantize_blocks(
    weight: np.ndarray, *, block_size: int = 32, form: Form = "asymmetric", bits: int = 4
) -> CoreMLBlocks:
    """``weight`` (rows, columns), any float dtype, as searched blocks along its columns."""
    if form not in FORMS:
        raise ValueError(f"form: expected one of {', '.join(FORMS)}, found {form!r}")
    if bits not in (4, 8):
        raise ValueError(f"bits: expected 4 or 8, found {bits}")
    if weight.ndim != 2:
        raise ValueError(f"expected a 2-D weight (rows, columns), found shape {weight.shape}")
    rows, columns = weight.shape
    if block_size < 2 or columns % block_size:
        raise ValueError(
            f"block size {block_size} does not divide the weight's {columns} columns "
            "(expected a divisor of at least 2)"
        )
    if not np.isfinite(weight).all():
        raise ValueError("the weight holds NaN or infinite values; it cannot be quantized")
    blocks = columns // block_size
    unsigned = form == "asymmetric"
    data = np.empty((rows, columns), dtype=np.uint8 if unsigned else np.int8)
    scale = np.empty((rows, blocks), dtype=np.float16)
    offset = np.empty((rows, blocks), dtype=np.uint8) if unsigned else None
    step = max(1, CHUNK_ELEMENTS // columns)

    def chunk(start: int) -> None:
        stop = min(start + step, rows)
        x = weight[start:stop].astype(np.float32).reshape(-1, block_size)
        q, s, z = _search(x, bits=bits, unsigned=unsigned)
        data[start:stop] = q.reshape(stop - start, columns)
        scale[start:stop] = s.reshape(stop - start, blocks)
        if offset is not None:
            offset[start:stop] = z.reshape(stop - start, blocks)

    starts = range(0, rows, step)
    workers = min(len(starts), os.cpu_count() or 1)
    if workers <= 1:
        for start in starts:
            chunk(start)
    else:
        # NumPy releases the GIL inside its loops: chunks of rows run on every core.
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="quantize") as pool:
            for _ in pool.map(chunk, starts):
                pass
    data_type = ("uint" if unsigned else "int") + str(bits)
    return CoreMLBlocks(
        gguf_type=recipe_name(form, bits),
        data_type=data_type,
        data=data,
        scale=scale,
        offset=offset,
        block_size=block_size,
    )


class _Best:
    """The best float16 scale and zero point per block so far, and their squared error."""

    def __init__(self, x: np.ndarray, zero: float) -> None:
        self.x = x
        self.energy = np.einsum("ij,ij->i", x, x).astype(np.float64)
        self.error = self.energy.copy()  # scale 0: every value becomes 0
        self.scale = np.zeros(len(x), dtype=np.float32)
        self.zero = np.full(len(x), zero, dtype=np.float32)
        self.levels = np.empty_like(x)  # the candidates' integers minus zero, reused

    def offer(self, zero: np.ndarray | float, *, scale: np.ndarray | None = None) -> np.ndarray:
        """``self.levels`` (data - zero, float32) with the float16 ``scale`` they were made for, or
        (None) the scale that fits them best by least squares, rounded to float16: kept where the
        error is lower than the best so far. Returns the dot products x·levels."""
        levels = self.levels
        dot = np.einsum("ij,ij->i", self.x, levels).astype(np.float64)
        norm = np.einsum("ij,ij->i", levels, levels).astype(np.float64)
        if scale is None:
            with np.errstate(divide="ignore", invalid="ignore"):
                scale = np.where(norm > 0, dot / norm, 0.0).astype(np.float16)
        s = scale.astype(np.float64)
        error = self.energy - 2 * s * dot + s * s * norm
        better = error < self.error
        self.error = np.where(better, error, self.error)
        self.scale = np.where(better, s, self.scale).astype(np.float32)
        self.zero = np.where(better, zero, self.zero).astype(np.float32)
        return dot

    def make_levels(
        self, inverse: np.ndarray, zero: np.ndarray | float, *, lo: int, hi: int
    ) -> np.ndarray:
        """``clip(rint(x * inverse) + zero, lo, hi) - zero`` into ``self.levels``, in 3 passes."""
        levels = self.levels
        np.multiply(self.x, inverse.astype(np.float32)[:, None], out=levels)
        np.rint(levels, out=levels)
        if np.ndim(zero):
            column = np.reshape(zero, (-1, 1)).astype(np.float32)
            np.clip(levels, lo - column, hi - column, out=levels)
        else:
            np.clip(levels, lo - zero, hi - zero, out=levels)
        return levels


def _inverse(scale: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(scale != 0, 1 / scale, 0.0).astype(np.float32)


def _search(x: np.ndarray, *, bits: int, unsigned: bool) -> tuple[np.ndarray, ...]:
    """(data, float16 scale, zero point) of blocks ``x`` (blocks, block_size) float32."""
    half = 1 << (bits - 1)  # 8 for 4 bits
    top = (1 << bits) - 1  # 15
    # The signed form as data - zero in [-half, half - 1]; unsigned: zero ``half``, data 0..top.
    zero = float(half) if unsigned else 0.0
    lo, hi = (0, top) if unsigned else (-half, half - 1)
    best = _Best(x, zero)
    extreme_at = np.abs(x).argmax(axis=1)
    extreme = x[np.arange(len(x)), extreme_at]  # signed: the value of largest magnitude
    magnitude = np.abs(extreme)
    nonzero = magnitude > 0
    safe = np.where(nonzero, extreme, 1.0)
    # coremltools' linear_symmetric: scale max|x| / (half - 1), integers in ±(half - 1).
    scale16 = (magnitude / (half - 1)).astype(np.float16)
    best.make_levels(_inverse(scale16.astype(np.float32)), zero, lo=lo, hi=hi)
    best.offer(zero, scale=scale16)
    for stretch in (0.0,) if unsigned else SYMMETRIC_STEPS:
        # The extreme mapped to -half (the range's larger side) and to half - 1.
        for end in (-half, half - 1):
            inverse = np.where(nonzero, (end + np.sign(end) * stretch) / safe, 0.0)
            best.make_levels(inverse, zero, lo=lo, hi=hi)
            best.offer(zero)
    if unsigned:
        low = np.minimum(x.min(axis=1), 0.0)
        high = np.maximum(x.max(axis=1), 0.0)
        spread = high - low
        wide = spread > 0
        n = x.shape[1]
        sum_x = x.sum(axis=1, dtype=np.float64)
        for stretch in ASYMMETRIC_STEPS:
            inverse = np.where(wide, (top + stretch) / np.where(wide, spread, 1.0), 0.0)
            candidate_zero = np.clip(np.rint(-low * inverse), 0, top).astype(np.float32)
            levels = best.make_levels(inverse, candidate_zero, lo=lo, hi=hi)
            dot = best.offer(candidate_zero)
            # The same integers with the zero point refitted: the least-squares line
            # x ≈ a * data + b gives zero = -b / a (sums of data from those of the levels).
            sum_l = levels.sum(axis=1, dtype=np.float64)
            norm = np.einsum("ij,ij->i", levels, levels).astype(np.float64)
            z = candidate_zero.astype(np.float64)
            sum_d = sum_l + n * z
            sum_dd = norm + 2 * z * sum_l + n * z * z
            sum_dx = dot + z * sum_x
            zero_fit = _fitted_zero(n, sum_d, sum_dd, sum_dx, sum_x, top=top)
            levels += (candidate_zero - zero_fit)[:, None]
            best.offer(zero_fit)
    # Final integers: the nearest ones for the chosen float16 scale and zero point.
    levels = best.make_levels(_inverse(best.scale), best.zero, lo=lo, hi=hi)
    data = levels + best.zero[:, None]
    dtype = np.uint8 if unsigned else np.int8
    return data.astype(dtype), best.scale.astype(np.float16), best.zero.astype(np.uint8)


def _fitted_zero(
    n: int,
    sum_d: np.ndarray,
    sum_dd: np.ndarray,
    sum_dx: np.ndarray,
    sum_x: np.ndarray,
    *,
    top: int,
) -> np.ndarray:
    """The integer zero point of the least-squares line ``x ≈ a * data + b`` (``-b / a``)."""
    denominator = n * sum_dd - sum_d * sum_d
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(denominator > 0, (n * sum_dx - sum_d * sum_x) / denominator, 0.0)
        b = (sum_x - a * sum_d) / n
        zero = np.where(a != 0, -b / a, 0.0)
    return np.clip(np.rint(zero), 0, top).astype(np.float32)
