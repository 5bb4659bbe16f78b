"""Block quantization by searched scales: each block's scale (and zero point) chosen to minimize
its squared error, as llama.cpp's ``make_qx_quants``/``make_qkx2_quants`` do, instead of
coremltools' max-abs scale.

A weight (rows, columns) is cut into blocks of ``block_size`` input channels. For each block a
set of candidate scales is tried (the max-abs scale coremltools uses; the signed extreme mapped to
each end of the integer range, stretched in small steps; for the asymmetric form the block's
(min, max) mapped onto 0..15); for each candidate the integers are rounded, the scale is refitted
by least squares for those integers, rounded to float16 (what the package stores) and the
squared error computed. The best scale wins; the integers are then rounded once more for it
(nearest rounding is optimal for a fixed scale). Candidates are ranked by float32 sums (float64
at 8 bits); the last choice, between the winner and coremltools' own candidate, is made on their
squared errors in float64, each measured with the stored float16 scale, so no block ends worse
than coremltools' ``linear_symmetric`` (ranked by float32 sums alone, about 1 heavy-tailed block
in 2,000 did, by up to 1%).

Forms (all ``constexpr_blockwise_shift_scale``, ``scale * (data - offset)``):

- ``symmetric``: int4 data in [-8, 7], float16 scale: 4.5 bits per weight at block 32, the size
  of coremltools' int4 ``linear_symmetric``.
- ``asymmetric``: uint4 data in [0, 15] with a uint4 zero point per block (the op takes an
  integer offset of the data's dtype): 4.625 bits per weight at block 32. coremltools' candidate
  and the unstretched symmetric ones are tried with zero point 8 beside the (min, max) ones.
- ``bits=8``: the same searches on int8/uint8 data (for embeddings kept at 8 bits).

Rows go through in chunks of about ``CHUNK_ELEMENTS`` values, one chunk per core at a time, each
transposed to one block per column, so that every pass (scale, round, clip, sum) runs along
contiguous rows of blocks, all blocks of the chunk at once, and the work per block (least-squares
scales, their float16 rounding, errors, the best candidate) for all candidates at once. A
14336×4096 weight needs a few MB of temporaries per core beside its float16 input and its integer
output.
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
# Values quantized at a time: 128K float32 is 512 KB, within a core's L2 cache (measured: 2^15
# and 2^19 slower by 10-15%).
CHUNK_ELEMENTS = 1 << 17
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
        # One block per column: every pass below runs along contiguous rows of blocks.
        x = np.ascontiguousarray(weight[start:stop].reshape(-1, block_size).T, dtype=np.float32)
        q, s, z = _search(x, bits=bits, unsigned=unsigned)
        data[start:stop] = q.T.reshape(stop - start, columns)
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


class _Candidates:
    """Candidate integers for blocks ``x`` (block_size, blocks) float32, one block per column (so
    that every pass runs along contiguous rows of blocks), and the sums that rank them: per
    candidate x·levels and |levels|² (levels = data - zero). The passes over the values are three
    or four per candidate (scale by a constant, round, [shift,] clip) and two sums; the work per
    block is done for all candidates at once in ``best``. Sums are float32: a candidate's rank
    may err by ~1e-7 of its block's energy, never its error (see ``_max_abs_better``)."""

    def __init__(self, x: np.ndarray, *, lo: int, hi: int, count: int, exact: bool) -> None:
        self.x = x
        self.x64 = x.astype(np.float64) if exact else None
        self.lo, self.hi = lo, hi
        self.data = np.empty_like(x)  # the current candidate's integers, reused
        self.dots = np.empty((count, x.shape[1]), dtype=np.float64)
        self.norms = np.empty_like(self.dots)
        self.zeros = np.empty_like(self.dots)
        self.count = 0
        self._sum_x: np.ndarray | None = None

    @property
    def sum_x(self) -> np.ndarray:
        """Σ x per block, float64."""
        if self._sum_x is None:
            self._sum_x = np.add.reduce(self.x, axis=0).astype(np.float64)
        return self._sum_x

    def dot(self, levels: np.ndarray) -> np.ndarray:
        """x·levels per block: summed in float32, or float64 when ``self.x64`` is set (at 8 bits
        a block's error is ~1e-5 of its energy, where float32 sums would rank by noise)."""
        if self.x64 is None:
            return np.einsum("ij,ij->j", self.x, levels)
        return np.einsum("ij,ij->j", self.x64, levels.astype(np.float64))

    def quantize(
        self, values: np.ndarray, factor: np.ndarray | float, zero: np.ndarray | float
    ) -> np.ndarray:
        """The data ``clip(rint(values * factor) + zero, lo, hi)`` (float32) in ``self.data``."""
        data = self.data
        np.multiply(values, factor, out=data, dtype=np.float32, casting="unsafe")
        np.rint(data, out=data)
        if np.ndim(zero) or zero:
            np.add(data, zero, out=data, dtype=np.float32, casting="unsafe")
        np.clip(data, self.lo, self.hi, out=data)
        return data

    def add(self, inverse: np.ndarray, zero: float) -> None:
        """The levels ``clip(rint(x * inverse), lo - zero, hi - zero)`` at the form's own zero
        point as a candidate."""
        levels = self.data
        np.multiply(self.x, inverse, out=levels)
        np.rint(levels, out=levels)
        np.clip(levels, self.lo - zero, self.hi - zero, out=levels)
        c = self.count
        self.dots[c] = self.dot(levels)
        self.norms[c] = np.einsum("ij,ij->j", levels, levels)
        self.zeros[c] = zero
        self.count += 1

    def add_shifted(self, inverses: np.ndarray, zeros: np.ndarray) -> tuple:
        """The levels ``clip(rint(x * inverse) + zero, lo, hi) - zero`` (an inverse scale and a
        zero point per block) for each row of ``inverses`` and ``zeros`` as candidates; returns
        their x·levels, |levels|² and Σ levels, float64 (the last two exact: small integers)."""
        dot, norm, total = (np.empty(zeros.shape) for _ in range(3))
        for row, (inverse, zero) in enumerate(zip(inverses, zeros, strict=True)):
            levels = self.quantize(self.x, inverse, zero)
            np.subtract(levels, zero, out=levels, dtype=np.float32, casting="unsafe")
            dot[row] = self.dot(levels)
            norm[row] = np.einsum("ij,ij->j", levels, levels)
            total[row] = np.add.reduce(levels, axis=0)
        self.offer(dot, norm, zeros)
        return dot, norm, total

    def offer(self, dot: np.ndarray, norm: np.ndarray, zero: np.ndarray) -> None:
        """Levels with sums ``dot`` and ``norm`` at ``zero`` (one candidate, or a row each) as
        more candidates."""
        rows = 1 if dot.ndim == 1 else len(dot)
        c = slice(self.count, self.count + rows)
        self.dots[c], self.norms[c], self.zeros[c] = dot, norm, zero
        self.count += rows

    def best(self, zero: float) -> tuple[np.ndarray, np.ndarray]:
        """Per block the float16 scale and the zero point of the best candidate: each
        candidate's scale is the least-squares one for its levels rounded to float16, its error
        ``s² |levels|² - 2 s x·levels`` relative to the block's energy (scale 0, every value 0,
        error 0 here, is the first candidate); ties go to the earlier candidate."""
        dots, norms = self.dots[: self.count], self.norms[: self.count]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            scales = np.divide(dots, norms).astype(np.float16).astype(np.float64)
        # All-zero levels (0 / 0) or an overflowing float16 scale: scale 0.
        np.nan_to_num(scales, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        errors = np.multiply(scales, norms, out=norms)
        errors -= dots
        errors -= dots
        errors *= scales
        first = np.argmin(errors, axis=0)
        columns = np.arange(dots.shape[1])
        better = errors[first, columns] < 0
        scale = np.where(better, scales[first, columns], 0.0).astype(np.float16)
        return scale, np.where(better, self.zeros[first, columns], zero)


def _inverse(scale: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.where(scale != 0, 1 / scale, 0.0).astype(np.float32)


def _signed_extreme(x: np.ndarray) -> np.ndarray:
    """Per column the value of largest magnitude, signed; of two (+a and -a) the first one."""
    high = x.max(axis=0)
    low = x.min(axis=0)
    extreme = np.where(-low > high, low, high)
    tied = np.flatnonzero((-low == high) & (high > 0))
    if len(tied):
        columns = x[:, tied]
        extreme[tied] = columns[np.abs(columns).argmax(axis=0), np.arange(len(tied))]
    return extreme


def _search(x: np.ndarray, *, bits: int, unsigned: bool) -> tuple[np.ndarray, ...]:
    """(data, float16 scale, zero point) of blocks ``x`` (block_size, blocks) float32, one block
    per column; data in the same layout."""
    half = 1 << (bits - 1)  # 8 for 4 bits
    top = (1 << bits) - 1  # 15
    # The signed form as data - zero in [-half, half - 1]; unsigned: zero ``half``, data 0..top.
    zero = float(half) if unsigned else 0.0
    lo, hi = (0, top) if unsigned else (-half, half - 1)
    steps = (0.0,) if unsigned else SYMMETRIC_STEPS
    count = 2 * len(steps) + (2 * len(ASYMMETRIC_STEPS) if unsigned else 0)
    candidates = _Candidates(x, lo=lo, hi=hi, count=count, exact=bits == 8)
    extreme = _signed_extreme(x)
    magnitude = np.abs(extreme)
    # A block of zeros quantizes to zeros whatever it is multiplied by.
    safe = np.where(magnitude > 0, extreme, 1.0)
    for stretch in steps:
        # The extreme mapped to -half (the range's larger side) and to half - 1.
        for end in (-half, half - 1):
            candidates.add(((end + np.sign(end) * stretch) / safe).astype(np.float32), zero)
    if unsigned:
        low = np.minimum(x.min(axis=0), 0.0)
        spread = np.maximum(x.max(axis=0), 0.0) - low
        wide = spread > 0
        # The block's spread (max(x, 0) - min(x, 0)) mapped onto 0..top, stretched; its low end
        # onto the zero point.
        inverses = np.where(
            wide, (top + ASYMMETRIC_STEPS[:, None]) / np.where(wide, spread, 1.0), 0.0
        )
        inverses = inverses.astype(np.float32)
        zeros = np.clip(np.rint(-low * inverses), 0, top).astype(np.float64)
        n = x.shape[0]
        dot, norm, total = candidates.add_shifted(inverses, zeros)
        # The same integers with the zero point refitted: the least-squares line
        # x ≈ a * data + b gives zero = -b / a (sums of data from those of the levels); the
        # levels data - zero_fit are the levels + shift, whose sums follow without another pass.
        sum_x = candidates.sum_x
        sum_d = total + n * zeros
        sum_dd = norm + zeros * (2 * total + n * zeros)
        zero_fit = _fitted_zero(n, sum_d, sum_dd, dot + zeros * sum_x, sum_x, top=top)
        shift = zeros - zero_fit
        candidates.offer(dot + shift * sum_x, norm + shift * (2 * total + n * shift), zero_fit)
    scale, offset = candidates.best(zero)
    # Final integers: the nearest ones for the chosen float16 scale and zero point (as good as
    # the candidate's, or better), unless coremltools' max-abs blocks are better, in float64.
    chosen = candidates.quantize(x, _inverse(scale.astype(np.float32)), offset).copy()
    # coremltools' linear_symmetric: scale max|x| / (half - 1), integers in ±(half - 1).
    max_abs_scale = (magnitude / (half - 1)).astype(np.float16)
    max_abs = candidates.quantize(x, _inverse(max_abs_scale.astype(np.float32)), zero)
    keep_max_abs = _max_abs_better(x, (max_abs, max_abs_scale, zero), (chosen, scale, offset))
    data = np.where(keep_max_abs, max_abs, chosen)
    scale = np.where(keep_max_abs, max_abs_scale, scale)
    offset = np.where(keep_max_abs, zero, offset)
    dtype = np.uint8 if unsigned else np.int8
    return data.astype(dtype), scale, offset.astype(np.uint8)


def _max_abs_better(x: np.ndarray, max_abs: tuple, chosen: tuple) -> np.ndarray:
    """Where coremltools' max-abs blocks (data, scale, zero) have a lower squared error than the
    chosen ones, in float64. Errors are first compared in float32 (within 1e-5 of each other
    relatively: ~32 roundings of 2^-24 each); the close ones again in float64."""
    max_abs_error = _errors(x, *max_abs)
    chosen_error = _errors(x, *chosen)
    better = max_abs_error < chosen_error
    close = np.flatnonzero(np.abs(max_abs_error - chosen_error) <= 1e-5 * chosen_error)
    if len(close):
        x64 = x[:, close].astype(np.float64)
        again = [
            _errors(
                x64, data[:, close], scale[close], np.take(zero, close) if np.ndim(zero) else zero
            )
            for data, scale, zero in (max_abs, chosen)
        ]
        better[close] = again[0] < again[1]
    return better


def _errors(
    x: np.ndarray, data: np.ndarray, scale: np.ndarray, zero: np.ndarray | float
) -> np.ndarray:
    """Σ (x - scale · (data - zero))² per block (column), in ``x``'s dtype."""
    rebuilt = np.subtract(data, zero, dtype=x.dtype)
    rebuilt *= scale.astype(x.dtype)
    np.subtract(x, rebuilt, out=rebuilt)
    return np.einsum("ij,ij->j", rebuilt, rebuilt)


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
