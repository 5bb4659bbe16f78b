"""``--gguf-form native``: a GGUF's blocks in the forms coremltools itself produces and tests on
device, instead of the exact ones.

The exact import (``converter.gguf.blocks``) keeps every GGUF block as ``scale * (data - offset)``
with llama.cpp's own integers; for blocks with a minimum (Q4_1, Q5_1, Q4_K, Q5_K) that offset is a
float16 (``-m / d``). iOS 18's ``constexpr_blockwise_shift_scale`` accepts it, but coremltools never
writes such an op (its quantizers write integer zero points or none) and so never runs one on a
device in its tests: on the first Mac it is the form most likely to meet a Core ML bug. The native
form keeps to what coremltools' own ``linear_quantize_weights`` makes:

- blocks without an offset (Q4_0 → int4, Q8_0/Q5_0/Q6_K → int8, symmetric) are already native and
  stay exact;
- blocks whose offset is a whole number inside the data's range become an integer zero point of
  the data's dtype, still exact;
- every other block is re-fitted with the searched recipe (``converter.quantization.block_quantizer``,
  asymmetric: uint4 data with a uint4 zero point, or uint8 with a uint8 zero point for 8-bit data)
  to the GGUF's own dequantized values, block by block at the GGUF's block size. That rounds each
  block onto an integer zero point: a second, small quantization error (``benchmarks/fidelity.py``
  measures it against the GGUF, beside the exact import's).

Deterministic, so the scales put into the program and the integers decoded again when the
package is written (``converter.quantization.lazy_blob_weights``) come from the same search.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from converter.gguf.blocks import CoreMLBlocks
from converter.quantization.block_quantizer import quantize_blocks

NATIVE_SUFFIX = "-native"
_DATA_MAX = {"uint4": 15, "uint8": 255}


def native_blocks(blocks: CoreMLBlocks) -> CoreMLBlocks:
    """``blocks`` (a GGUF tensor's exact form) in a form coremltools produces (see above)."""
    if blocks.offset is None:
        return blocks
    high = _DATA_MAX.get(blocks.data_type)
    offset = blocks.offset.astype(np.float32)
    if high is not None and np.all((offset == np.round(offset)) & (offset >= 0) & (offset <= high)):
        return replace(blocks, offset=offset.astype(np.uint8))
    refitted = quantize_blocks(
        blocks.dequantize(), block_size=blocks.block_size, form="asymmetric", bits=blocks.bits
    )
    return replace(refitted, gguf_type=blocks.gguf_type + NATIVE_SUFFIX)


def describe_native(gguf_type: str, count: int, exact: CoreMLBlocks) -> str:
    """The metadata's recipe text of a tensor group in the native form (``exact``: one of its
    tensors' exact blocks, to tell which rule applies)."""
    if exact.offset is None:
        return f"{count} tensors exact: {exact.data_type} block {exact.block_size}, float16 scale"
    data = "uint4" if exact.bits == 4 else "uint8"
    return (
        f"{count} tensors re-fitted from {gguf_type}: {data} block {exact.block_size}, float16 "
        f"scale, {data} zero point (searched)"
    )
