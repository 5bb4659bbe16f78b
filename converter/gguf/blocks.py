"""GGUF quantized blocks, rewritten as Core ML's ``scale * (data - offset)`` without requantizing.

Every GGUF block format this module reads is affine per (sub-)block: Q4_0 is ``d * (q - 8)``,
Q4_1 ``d * q + m``, Q8_0 ``d * q``, Q5_0/Q5_1 the same with 5-bit ``q``, and the K-quants the same
per sub-block (Q4_K/Q5_K: 32 weights, scale ``d * sc``, min ``dmin * m``; Q6_K: 16 weights, scale
``d * sc``). iOS 18's ``constexpr_blockwise_shift_scale`` computes ``scale * (data - offset)`` per
block with int4/uint4/int8/uint8 data and a float16 offset, so each GGUF block becomes one Core ML
block holding the very integers llama.cpp runs.

What is exact: the integers, Q4_0/Q8_0/Q5_0 (``d`` is float16 already), and Q6_K up to the float16
rounding of ``d * sc``. A block with a min (Q4_1, Q5_1, Q4_K, Q5_K) needs ``offset = -m / d`` in
float16, which rounds; the resulting weights differ from ``gguf.quants.dequantize`` by about the
float16 rounding of the weight itself (measured in the tests and in ``benchmarks/fidelity.py``).
A block whose scale is zero is a constant ``m``: it becomes ``data = 0, offset = -1, scale = m``.

Arrays are decoded from the bytes of a few rows at a time (``GGUFImport.blocks`` reads them from
the file); nothing here holds more than one tensor's integers at a time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

QK_K = 256


@dataclass(frozen=True)
class CoreMLBlocks:
    """One weight as ``scale * (data - offset)`` per block of ``block_size`` along the last axis.

    ``data`` holds small integers in an ordinary NumPy dtype (uint8 for uint4, int8 for int4);
    ``data_type`` names the Core ML dtype they are stored as.
    """

    gguf_type: str
    data_type: str  # "int4", "uint4", "int8" or "uint8"
    data: np.ndarray  # (rows, columns)
    scale: np.ndarray  # float16 (rows, columns / block_size)
    offset: np.ndarray | None  # float16, same shape as scale, or None
    block_size: int

    @property
    def bits(self) -> int:
        return 4 if self.data_type.endswith("int4") else 8

    def dequantize(self) -> np.ndarray:
        """coremltools' semantics: ``data - offset`` then ``* scale``, each rounded to float16."""
        values = self.data.astype(np.float16)
        scale = np.repeat(self.scale, self.block_size, axis=-1)
        if self.offset is not None:
            values = values - np.repeat(self.offset, self.block_size, axis=-1)
        return scale * values


class UnsupportedBlockType(ValueError):
    """A GGUF tensor type with no exact Core ML form here."""


def _f16(raw: np.ndarray) -> np.ndarray:
    """Two bytes per row (little endian) as float16, shape (n, 1) → (n,)."""
    return np.ascontiguousarray(raw).view(np.float16).reshape(-1)


def _with_min(
    q: np.ndarray, scale: np.ndarray, minimum: np.ndarray, *, gguf_type: str, data_type: str
) -> CoreMLBlocks:
    """``scale * q + minimum`` per block (float32 parameters) as ``scale * (q - offset)``.

    ``offset = -minimum / scale`` in float16; where ``scale`` is zero the block is the constant
    ``minimum``: data 0, offset -1, scale ``minimum``.
    """
    blocks = scale.shape[-1]
    block_size = q.shape[-1] // blocks
    constant = scale == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = np.where(constant, -1.0, -minimum / np.where(constant, 1.0, scale))
    scale = np.where(constant, minimum, scale)
    if constant.any():
        q = q.reshape(q.shape[0], blocks, block_size)
        q[constant] = 0
        q = q.reshape(q.shape[0], -1)
    offset16 = offset.astype(np.float16)
    if not np.isfinite(offset16).all():
        bad = int((~np.isfinite(offset16)).sum())
        raise UnsupportedBlockType(
            f"{bad} {gguf_type} blocks have a min/scale ratio beyond float16 (max 65504)"
        )
    return CoreMLBlocks(
        gguf_type=gguf_type,
        data_type=data_type,
        data=q,
        scale=scale.astype(np.float16),
        offset=offset16,
        block_size=block_size,
    )


def _nibbles(qs: np.ndarray) -> np.ndarray:
    """(n, 16) bytes → (n, 32): low nibbles are weights 0-15, high nibbles 16-31."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=-1)


def _q5_high_bits(qh: np.ndarray) -> np.ndarray:
    """(n, 4) bytes → (n, 32) fifth bits, bit j of the little-endian uint32 for weight j."""
    bits = np.ascontiguousarray(qh).view("<u4").reshape(-1, 1) >> np.arange(32, dtype=np.uint32)
    return ((bits & 1) << 4).astype(np.uint8)


def _q4_0(blocks: np.ndarray, rows: int) -> CoreMLBlocks:
    d = _f16(blocks[:, :2])
    q = _nibbles(blocks[:, 2:]).astype(np.int8) - np.int8(8)
    return CoreMLBlocks("Q4_0", "int4", q.reshape(rows, -1), d.reshape(rows, -1), None, 32)


def _q8_0(blocks: np.ndarray, rows: int) -> CoreMLBlocks:
    d = _f16(blocks[:, :2])
    q = np.ascontiguousarray(blocks[:, 2:]).view(np.int8)
    return CoreMLBlocks("Q8_0", "int8", q.reshape(rows, -1), d.reshape(rows, -1), None, 32)


def _q5_0(blocks: np.ndarray, rows: int) -> CoreMLBlocks:
    d = _f16(blocks[:, :2])
    q = (_nibbles(blocks[:, 6:]) | _q5_high_bits(blocks[:, 2:6])).astype(np.int8) - np.int8(16)
    return CoreMLBlocks("Q5_0", "int8", q.reshape(rows, -1), d.reshape(rows, -1), None, 32)


def _q4_1(blocks: np.ndarray, rows: int) -> CoreMLBlocks:
    d = _f16(blocks[:, :2]).astype(np.float32).reshape(rows, -1)
    m = _f16(blocks[:, 2:4]).astype(np.float32).reshape(rows, -1)
    q = _nibbles(blocks[:, 4:]).reshape(rows, -1)
    return _with_min(q, d, m, gguf_type="Q4_1", data_type="uint4")


def _q5_1(blocks: np.ndarray, rows: int) -> CoreMLBlocks:
    d = _f16(blocks[:, :2]).astype(np.float32).reshape(rows, -1)
    m = _f16(blocks[:, 2:4]).astype(np.float32).reshape(rows, -1)
    q = (_nibbles(blocks[:, 8:]) | _q5_high_bits(blocks[:, 4:8])).reshape(rows, -1)
    return _with_min(q, d, m, gguf_type="Q5_1", data_type="uint8")


def _k_scales(scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 8 six-bit scales and mins of a Q4_K/Q5_K super-block (12 bytes)."""
    scales = scales.reshape(-1, 3, 4)
    low, high, mixed = scales[:, 0], scales[:, 1], scales[:, 2]
    sc = np.concatenate([low & 0x3F, (mixed & 0x0F) | ((low >> 2) & 0x30)], axis=-1)
    mins = np.concatenate([high & 0x3F, (mixed >> 4) | ((high >> 2) & 0x30)], axis=-1)
    return sc, mins


def _k_sub_block_parameters(blocks: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray]:
    d = _f16(blocks[:, :2]).astype(np.float32).reshape(-1, 1)
    dmin = _f16(blocks[:, 2:4]).astype(np.float32).reshape(-1, 1)
    sc, mins = _k_scales(blocks[:, 4:16])
    # Rounded to float16 first: the scale is stored in float16, and the min is expressed through it.
    scale = (d * sc).astype(np.float16).astype(np.float32)
    return scale.reshape(rows, -1), (-(dmin * mins)).reshape(rows, -1)


def _k_low_nibbles(qs: np.ndarray) -> np.ndarray:
    """(n, 128) bytes → (n, 256): each 32-byte chunk gives sub-block 2i (low) and 2i+1 (high)."""
    chunks = qs.reshape(-1, 4, 1, 32) >> np.array([0, 4], dtype=np.uint8).reshape(1, 1, 2, 1)
    return (chunks & 0x0F).reshape(-1, QK_K)


def _q4_k(blocks: np.ndarray, rows: int) -> CoreMLBlocks:
    scale, minimum = _k_sub_block_parameters(blocks, rows)
    q = _k_low_nibbles(blocks[:, 16:]).reshape(rows, -1)
    return _with_min(q, scale, minimum, gguf_type="Q4_K", data_type="uint4")


def _q5_k(blocks: np.ndarray, rows: int) -> CoreMLBlocks:
    scale, minimum = _k_sub_block_parameters(blocks, rows)
    qh = blocks[:, 16:48].reshape(-1, 1, 32) >> np.arange(8, dtype=np.uint8).reshape(1, 8, 1)
    q = _k_low_nibbles(blocks[:, 48:]) | ((qh & 1) << 4).reshape(-1, QK_K)
    return _with_min(q.reshape(rows, -1), scale, minimum, gguf_type="Q5_K", data_type="uint8")


def _q6_k(blocks: np.ndarray, rows: int) -> CoreMLBlocks:
    ql, qh = blocks[:, :128], blocks[:, 128:192]
    sc = np.ascontiguousarray(blocks[:, 192:208]).view(np.int8).astype(np.float32)
    d = _f16(blocks[:, 208:210]).astype(np.float32).reshape(-1, 1)
    low = ql.reshape(-1, 2, 1, 64) >> np.array([0, 4], dtype=np.uint8).reshape(1, 1, 2, 1)
    low = (low & 0x0F).reshape(-1, 2, 4, 32)
    high = qh.reshape(-1, 2, 1, 32) >> np.array([0, 2, 4, 6], dtype=np.uint8).reshape(1, 1, 4, 1)
    high = (high & 0x03).reshape(-1, 2, 4, 32)
    q = ((low | (high << 4)).astype(np.int8) - np.int8(32)).reshape(rows, -1)
    scale = (d * sc).astype(np.float16).reshape(rows, -1)
    return CoreMLBlocks("Q6_K", "int8", q, scale, None, 16)


DECODERS = {
    "Q4_0": _q4_0,
    "Q4_1": _q4_1,
    "Q5_0": _q5_0,
    "Q5_1": _q5_1,
    "Q8_0": _q8_0,
    "Q4_K": _q4_k,
    "Q5_K": _q5_k,
    "Q6_K": _q6_k,
}
FLOAT_TYPES = ("F32", "F16", "BF16")


def decode_blocks(raw: np.ndarray, gguf_type: str, shape: tuple[int, int]) -> CoreMLBlocks:
    """``raw``: the tensor's bytes (any shape; GGUFReader gives (rows, bytes per row)),
    ``shape``: (rows, columns) in torch order."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    if gguf_type not in DECODERS:
        raise UnsupportedBlockType(f"no exact Core ML form for GGUF type {gguf_type}")
    block_size, type_size = GGML_QUANT_SIZES[GGMLQuantizationType[gguf_type]]
    rows, columns = shape
    if columns % block_size:
        raise UnsupportedBlockType(
            f"{columns} columns are not a whole number of {gguf_type} blocks of {block_size}"
        )
    expected = rows * columns // block_size * type_size
    flat = np.asarray(raw, dtype=np.uint8).reshape(-1)
    if flat.size != expected:
        raise UnsupportedBlockType(
            f"{gguf_type} {shape} needs {expected} bytes, the file holds {flat.size}"
        )
    return DECODERS[gguf_type](flat.reshape(-1, type_size), rows)


def permute_rows(blocks: CoreMLBlocks, order: np.ndarray) -> CoreMLBlocks:
    """The same blocks with rows reordered (GGUF stores Llama's q/k rows permuted for RoPE)."""
    return CoreMLBlocks(
        gguf_type=blocks.gguf_type,
        data_type=blocks.data_type,
        data=blocks.data[order],
        scale=blocks.scale[order],
        offset=None if blocks.offset is None else blocks.offset[order],
        block_size=blocks.block_size,
    )
