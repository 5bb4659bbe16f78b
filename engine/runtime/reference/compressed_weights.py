"""Linear and embedding weights kept compressed in the reference runtime, dequantized per use.

Dequantizing every ``constexpr_*`` weight once at load and keeping the linear ones as float32 cost
8 bytes per int4 weight value of resident memory: about 28 GB for a 7B int4 package (4 GB on
disk). Here a weight stays what the package holds (int4 values two to a byte, their scales and
offsets), plus float32 copies up to a budget (``DequantizedCache``, ``default_cache_budget``):

- ``linear`` with a ``constexpr_blockwise_shift_scale`` weight of blocks along its input
  dimension (what our converter and the GGUF path write) is, past the budget, computed a few
  hundred output rows at a time: the rows are dequantized into a small float32 buffer that stays
  in the CPU cache and multiplied there.
- ``gather`` (an embedding) dequantizes only the rows it takes, through the dequantizer itself.
- any other compressed form (palettes, ``constexpr_affine_dequantize``, forms added later) goes
  through its dequantizer, whole, kept in the cache when it fits.

The dequantizers (``engine.runtime.reference.dequantize``) stay the one definition of each form: this
module calls them, on whole weights or on row slices, and the block path above restates
``constexpr_blockwise_shift_scale``'s arithmetic only after checking, per weight at load, that it
agrees with the dequantizer on sample rows (else that weight takes the generic path).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

Array = np.ndarray

# Elements of a block-quantized linear dequantized at a time: 64 rows × 4096 inputs × 4 bytes is
# 1 MB of float32, within a core's L2 cache (1 MB measured faster here than 4 MB).
ROW_CHUNK_ELEMENTS = 1 << 18
CACHE_ENV = "COREML_CHAT_REFERENCE_WEIGHT_CACHE_MB"

# Every byte of packed int4 data as its two values (low nibble first), as float32.
_NIBBLES = np.arange(256, dtype=np.uint8)
_UNSIGNED_PAIRS = np.stack([_NIBBLES & 15, _NIBBLES >> 4], axis=1).astype(np.float32)
_SIGNED_PAIRS = np.where(_UNSIGNED_PAIRS > 7, _UNSIGNED_PAIRS - 16, _UNSIGNED_PAIRS).astype(
    np.float32
)
# The same pairs as one 8-byte item each: ``np.take`` copies one item per byte of data.
_UNSIGNED_PAIRS64 = _UNSIGNED_PAIRS.view(np.uint64).ravel()
_SIGNED_PAIRS64 = _SIGNED_PAIRS.view(np.uint64).ravel()


def pack_nibbles(values: Array) -> Array:
    """4-bit integers (held one per byte, as the MIL loader gives them) two to a byte, low nibble
    first, along the last axis (even length)."""
    raw = values.astype(np.uint8) & 15
    return raw[..., 0::2] | (raw[..., 1::2] << 4)


def unpack_nibbles(packed: Array, *, signed: bool, dtype: Any = np.int8) -> Array:
    """The inverse of ``pack_nibbles``: values in ``dtype`` (sign-extended when ``signed``)."""
    table = _SIGNED_PAIRS if signed else _UNSIGNED_PAIRS
    return table[packed].reshape(*packed.shape[:-1], packed.shape[-1] * 2).astype(dtype)


class CompressedWeight:
    """One compressed weight: its dequantizer and arguments, with 4-bit data packed two to a byte.

    ``dense()`` is the dequantizer's result (what the runtime held before); ``rows(indices)`` only
    the given rows of it; ``linear_t()`` the transposed float32 matrix, from the shared LRU.
    """

    def __init__(
        self,
        name: str,
        dequantizer: Callable[..., Array],
        arguments: dict[str, Any],
        *,
        data_bits: int | None,
        data_signed: bool,
        cache: DequantizedCache,
    ) -> None:
        self.name = name
        self._dequantizer = dequantizer
        self._cache = cache
        self._packed_argument: str | None = None
        self._data_signed = data_signed
        self._data_dtype: Any = None
        arguments = dict(arguments)
        self.shape: tuple[int, ...] = ()
        for key in ("data", "indices", "quantized_data"):
            value = arguments.get(key)
            if isinstance(value, np.ndarray) and not self.shape:
                self.shape = tuple(value.shape)  # the dequantized weight's shape
            if (
                data_bits is not None
                and data_bits <= 4
                and isinstance(value, np.ndarray)
                and value.ndim >= 1
                and value.shape[-1] % 2 == 0
                and np.issubdtype(value.dtype, np.integer)
            ):
                self._packed_argument, self._data_dtype = key, value.dtype
                arguments[key] = pack_nibbles(value)
                break
        self._arguments = arguments
        if not self.shape:  # a form without integer data: learn the shape once
            self.shape = tuple(self.dense().shape)

    @property
    def nbytes(self) -> int:
        return sum(v.nbytes for v in self._arguments.values() if isinstance(v, np.ndarray))

    def _unpacked(self, arguments: dict[str, Any]) -> dict[str, Any]:
        if self._packed_argument is None:
            return arguments
        arguments = dict(arguments)
        arguments[self._packed_argument] = unpack_nibbles(
            arguments[self._packed_argument], signed=self._data_signed, dtype=self._data_dtype
        )
        return arguments

    def dense(self) -> Array:
        """The whole weight, dequantized (a fresh array)."""
        return self._dequantizer(**self._unpacked(self._arguments))

    def rows(self, indices: Array) -> Array:
        """``dense()[indices]`` along axis 0, dequantizing only those rows: every argument that
        spans the weight's rows (one entry per row) is sliced, the others are kept whole."""
        rows = self.shape[0]
        sliced = {
            key: value[indices]
            if isinstance(value, np.ndarray) and value.ndim >= 2 and value.shape[0] == rows
            else value
            for key, value in self._arguments.items()
        }
        return self._dequantizer(**self._unpacked(sliced))

    def linear_t(self) -> Array:
        """The weight transposed, float32, contiguous (for ``x @ w_t``): kept in the cache when
        it fits, else made for this use."""

        def make() -> Array:
            return np.ascontiguousarray(self.dense().astype(np.float32).T)

        size = int(np.prod(self.shape)) * 4
        kept = self._cache.get(self.name, size, make)
        return kept if kept is not None else make()


class DequantizedCache:
    """Dequantized float32 matrices, by weight name, up to ``budget_bytes``; the rest are
    dequantized per use. Filled in order of first use and never evicted: a model uses its layers
    in the same cycle every token, so an LRU smaller than the model would drop each matrix just
    before its next use and keep nothing useful; this keeps the first ones for good."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = max(0, budget_bytes)
        self._entries: dict[str, Array] = {}
        self._refused: set[str] = set()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, name: str, nbytes: int, make: Callable[[], Array]) -> Array | None:
        """The cached matrix, else ``make()`` kept when ``nbytes`` more fit, else None."""
        found = self._entries.get(name)
        if found is not None or name in self._refused:
            return found
        with self._lock:
            if self._bytes + nbytes > self.budget_bytes:
                self._refused.add(name)
                return None
            self._bytes += nbytes
        value = make()
        self._entries[name] = value
        return value


def default_cache_budget() -> int:
    """Bytes of dequantized weights a model keeps: ``COREML_CHAT_REFERENCE_WEIGHT_CACHE_MB`` when
    set (0: every weight dequantized per use, the least memory), else a quarter of the machine's
    memory (a small model keeps all its weights dequantized and decodes at full speed; a 7B int4
    model keeps what fits and dequantizes the rest per use instead of needing 28 GB)."""
    text = os.environ.get(CACHE_ENV, "").strip()
    if text:
        try:
            megabytes = float(text)
        except ValueError:
            raise ValueError(
                f"{CACHE_ENV}: expected megabytes (a number), found {text!r}"
            ) from None
        if megabytes < 0:
            raise ValueError(f"{CACHE_ENV}: expected 0 or more megabytes, found {text}")
        return int(megabytes * (1 << 20))
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        physical = 8 << 30
    return physical // 4


class BlockLinear:
    """``x @ W.T`` for a ``constexpr_blockwise_shift_scale`` weight W (out, in) with blocks along
    ``in`` (scale and offset (out, in // block)), dequantized ``ROW_CHUNK_ELEMENTS`` at a time."""

    def __init__(self, weight: CompressedWeight, data: Array, scale: Array, offset: Array | None):
        self.weight = weight
        self.out_features, self.in_features = data.shape
        self.blocks = scale.shape[1]
        self.block = self.in_features // self.blocks
        self._scale = scale  # the package's own arrays (float16): converted a chunk at a time
        self._offset = offset
        self._packed = weight._packed_argument is not None
        self._data = weight._arguments[weight._packed_argument or "data"]
        self._signed = weight._data_signed
        self._chunk = max(1, ROW_CHUNK_ELEMENTS // self.in_features)

    @staticmethod
    def accepts(arguments: dict[str, Any]) -> bool:
        data, scale = arguments.get("data"), arguments.get("scale")
        offset = arguments.get("offset")
        if not isinstance(data, np.ndarray) or not isinstance(scale, np.ndarray):
            return False
        if data.ndim != 2 or scale.ndim != 2 or not np.issubdtype(data.dtype, np.integer):
            return False
        rows, columns = data.shape
        if scale.shape[0] != rows or scale.shape[1] == 0 or columns % scale.shape[1] != 0:
            return False
        if scale.dtype != np.float16:
            return False
        return offset is None or (isinstance(offset, np.ndarray) and offset.shape == scale.shape)

    def _integer_rows(self, start: int, stop: int, out: Array) -> Array:
        """Rows ``start:stop`` of the integer data, as float32 in ``out``."""
        values = out[: stop - start]
        if self._packed:  # each byte's two values at once, 8 bytes per byte from a table
            table = _SIGNED_PAIRS64 if self._signed else _UNSIGNED_PAIRS64
            np.take(table, self._data[start:stop], out=values.view(np.uint64), mode="clip")
        else:
            np.copyto(values, self._data[start:stop], casting="unsafe")
        return values

    def _dequantize_rows(self, start: int, stop: int, out: Array) -> Array:
        """Rows ``start:stop`` of W as float32 in ``out``: ``(data - offset) * scale`` in float32.
        The dequantizer rounds that to float16; float32 keeps it (at most float16's rounding,
        2^-11 relative, from it) and costs two passes less."""
        count = stop - start
        values = self._integer_rows(start, stop, out)
        blocks = values.reshape(count, self.blocks, self.block)
        if self._offset is not None:
            blocks -= self._offset[start:stop, :, None].astype(np.float32)
        blocks *= self._scale[start:stop, :, None].astype(np.float32)
        return values

    def transposed(self) -> Array:
        """The whole of W.T as float32 (what the cache keeps)."""
        result = np.empty((self.out_features, self.in_features), dtype=np.float32)
        for start in range(0, self.out_features, self._chunk):
            stop = min(start + self._chunk, self.out_features)
            self._dequantize_rows(start, stop, result[start:stop])
        return np.ascontiguousarray(result.T)

    def __call__(self, x: Array) -> Array:
        """``x @ W.T`` in float32 for ``x`` (..., in)."""
        flat = x.reshape(-1, self.in_features)
        size = self.out_features * self.in_features * 4
        kept = self.weight._cache.get(self.weight.name, size, self.transposed)
        if kept is not None:
            return (flat @ kept).reshape(*x.shape[:-1], self.out_features)
        if flat.shape[0] <= FEW_ROWS:
            return self._few_rows(flat).reshape(*x.shape[:-1], self.out_features)
        result = np.empty((flat.shape[0], self.out_features), dtype=np.float32)
        buffer = np.empty((self._chunk, self.in_features), dtype=np.float32)
        for start in range(0, self.out_features, self._chunk):
            stop = min(start + self._chunk, self.out_features)
            rows = self._dequantize_rows(start, stop, buffer)
            np.matmul(flat, rows.T, out=result[:, start:stop])
        return result.reshape(*x.shape[:-1], self.out_features)

    def _few_rows(self, flat: Array) -> Array:
        """``flat @ W.T`` for a few rows (decode) without scaling W: per block, the integers'
        product with the block's inputs, then scaled (and offset) once per block:
        ``Σ_b s_b (q_b · x_b - o_b Σ x_b)``. One pass over W fewer than dequantizing it."""
        rows = flat.shape[0]
        by_block = np.ascontiguousarray(
            flat.reshape(rows, self.blocks, self.block).transpose(1, 2, 0)
        )
        sums = by_block.sum(axis=1) if self._offset is not None else None  # (blocks, rows)
        result = np.empty((rows, self.out_features), dtype=np.float32)
        buffer = np.empty((self._chunk, self.in_features), dtype=np.float32)
        for start in range(0, self.out_features, self._chunk):
            stop = min(start + self._chunk, self.out_features)
            count = stop - start
            values = self._integer_rows(start, stop, buffer).reshape(count, self.blocks, self.block)
            products = np.matmul(values.transpose(1, 0, 2), by_block)  # (blocks, count, rows)
            if sums is not None:
                offsets = self._offset[start:stop].T.astype(np.float32)  # (blocks, count)
                products -= offsets[:, :, None] * sums[:, None, :]
            scales = self._scale[start:stop].T.astype(np.float32)  # (blocks, count)
            products *= scales[:, :, None]
            result[:, start:stop] = products.sum(axis=0).T
        return result


# At most this many rows (tokens) take ``BlockLinear._few_rows``; more amortise dequantizing W.
FEW_ROWS = 8


def linear_compressed(
    x: Array, weight: BlockLinear | CompressedWeight, bias: Array | None
) -> Array:
    """The ``linear`` op on a compressed weight (``bias`` float32 or None)."""
    values = x if x.dtype == np.float32 else x.astype(np.float32)
    block = isinstance(weight, BlockLinear)
    result = weight(values) if block else values @ weight.linear_t()  # type: ignore[operator, union-attr]
    if bias is not None:
        result += bias
    return result.astype(x.dtype)


def gather_compressed(
    x: CompressedWeight,
    indices: Array,
    axis: int = 0,
    batch_dims: int = 0,
    validate_indices: bool = False,
) -> Array:
    """The ``gather`` op on a compressed weight: only the rows taken are dequantized (axis 0)."""
    from engine.runtime.reference.ops import gather

    if int(axis) != 0 or int(batch_dims) != 0:
        return gather(x.dense(), indices, axis, batch_dims, validate_indices)
    indices = np.asarray(indices).astype(np.int64)
    size = x.shape[0]
    if validate_indices and ((indices < -size) | (indices >= size)).any():
        raise IndexError(f"gather index out of range for an axis of size {size}")
    flat = np.mod(indices.reshape(-1), size)  # "wrap", as ``gather`` does
    return x.rows(flat).reshape(*indices.shape, *x.shape[1:])


def block_linear_or_none(weight: CompressedWeight, arguments: dict[str, Any]) -> BlockLinear | None:
    """The block path for ``weight`` when its form allows it and it agrees with the dequantizer
    on a sample of rows (a form this module does not know takes the generic path instead)."""
    if not BlockLinear.accepts(arguments):
        return None
    block = BlockLinear(weight, arguments["data"], arguments["scale"], arguments.get("offset"))
    sample = np.unique(np.array([0, block.out_features // 2, block.out_features - 1]))
    expected = weight.rows(sample).astype(np.float32)
    buffer = np.empty((1, block.in_features), dtype=np.float32)
    for position, row in enumerate(sample):
        found = block._dequantize_rows(int(row), int(row) + 1, buffer)[0]
        # float16's rounding of the dequantizer's result (half an ulp, plus subnormals' step)
        tolerance = np.abs(expected[position]) * 2.0**-10 + 2.0**-24
        if not np.all(np.abs(found - expected[position]) <= tolerance):
            return None
    return block
