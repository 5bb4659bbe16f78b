"""Small GGUF tensors of every block type, with gguf's own dequantization as the reference.

gguf 0.19 quantizes Q4_0, Q4_1 and Q8_0; the other types are random bytes whose float16 fields
(d, dmin, m) are set to finite values, which is all a block needs to be valid.
"""

from __future__ import annotations

import numpy as np

QUANTIZABLE = ("Q4_0", "Q4_1", "Q8_0")
# Byte offsets of the float16 fields inside one block of each type.
FLOAT16_FIELDS = {"Q5_0": (0,), "Q5_1": (0, 2), "Q4_K": (0, 2), "Q5_K": (0, 2), "Q6_K": (208,)}


def synthetic_blocks(
    gguf_type: str, shape: tuple[int, int], *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(raw bytes (rows, bytes per row), ``gguf.quants.dequantize`` of them (rows, columns))."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
    from gguf.quants import dequantize, quantize

    qtype = GGMLQuantizationType[gguf_type]
    rng = np.random.default_rng(seed)
    rows, columns = shape
    if gguf_type in QUANTIZABLE:
        weights = rng.standard_normal(shape).astype(np.float32)
        weights[0, :32] = 0.25  # a constant block: Q4_1's scale is zero there
        raw = quantize(weights, qtype)
    else:
        block_size, type_size = GGML_QUANT_SIZES[qtype]
        blocks = rows * columns // block_size
        raw = rng.integers(0, 256, (blocks, type_size), dtype=np.uint8)
        for offset in FLOAT16_FIELDS[gguf_type]:
            values = (rng.standard_normal(blocks) * 0.01).astype(np.float16)
            raw[:, offset : offset + 2] = values.view(np.uint8).reshape(blocks, 2)
        raw = raw.reshape(rows, -1)
    return raw, dequantize(raw, qtype).reshape(shape)


# The small Llama whose tensors the synthetic GGUF files of these tests hold.
SMALL_LLAMA_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "vocab_size": 32,
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 1,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
}
