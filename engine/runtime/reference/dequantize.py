"""The ``constexpr_*`` ops: compressed weights, dequantized once when the reference runtime loads.

``constexpr_blockwise_shift_scale`` (iOS 18) covers int4/int8 weights per block and per channel;
``constexpr_affine_dequantize`` (iOS 16) per-channel int8; ``constexpr_lut_to_dense`` palettized
weights with scalar palettes (per tensor or per group).
"""

from __future__ import annotations

from typing import Any

import numpy as np

Array = np.ndarray


def constexpr_blockwise_shift_scale(
    data: Array, scale: Array, offset: Array | None = None
) -> Array:
    """Dequantize: ``(data - offset) * scale`` with scale/offset repeated over their blocks.

    coremltools' semantics: both steps in the scale's dtype, so with a float16 scale ``data -
    offset`` is rounded to float16 before the product (it matters for float16 offsets, which the
    exact GGUF import writes). Computed in float32 and rounded after each step, which gives the
    float16 results exactly (float32 has more than twice float16's precision) and is much faster
    than NumPy's float16 arithmetic.
    """
    dtype = scale.dtype
    values = data.astype(np.float32)
    if offset is not None:
        values -= _repeat_blocks(offset.astype(np.float32), data.shape)
        values = values.astype(dtype).astype(np.float32)
    return (values * _repeat_blocks(scale.astype(np.float32), data.shape)).astype(dtype)


def _repeat_blocks(parameter: Array, shape: tuple[int, ...]) -> Array:
    for axis, (size, blocks) in enumerate(zip(shape, parameter.shape, strict=True)):
        if blocks != size:
            parameter = np.repeat(parameter, size // blocks, axis=axis)
    return parameter


def constexpr_affine_dequantize(
    quantized_data: Array, zero_point: Array, scale: Array, axis: int
) -> Array:
    shape = [1] * quantized_data.ndim
    axis = int(axis)
    zero = np.asarray(zero_point, dtype=np.float32)
    scales = np.asarray(scale, dtype=np.float32)
    if zero.ndim == 1:
        shape[axis] = zero.shape[0]
        zero = zero.reshape(shape)
    if scales.ndim == 1:
        shape[axis] = scales.shape[0]
        scales = scales.reshape(shape)
    return ((quantized_data.astype(np.float32) - zero) * scales).astype(np.asarray(scale).dtype)


def constexpr_lut_to_dense(indices: Array, lut: Array, vector_axis: Any = None) -> Array:
    if lut.ndim != indices.ndim + 2 or lut.shape[-1] != 1:
        raise NotImplementedError("constexpr_lut_to_dense with vector palettes")
    table = lut[..., 0]
    result = np.empty(indices.shape, dtype=lut.dtype)
    block = [size // groups for size, groups in zip(indices.shape, table.shape[:-1], strict=False)]
    for group in np.ndindex(*table.shape[:-1]):
        region = tuple(slice(g * b, (g + 1) * b) for g, b in zip(group, block, strict=True))
        result[region] = table[group][indices[region].astype(np.int64)]
    return result


CONSTEXPR_OPS: dict[str, Any] = {
    "constexpr_blockwise_shift_scale": constexpr_blockwise_shift_scale,
    "constexpr_affine_dequantize": constexpr_affine_dequantize,
    "constexpr_lut_to_dense": constexpr_lut_to_dense,
}
