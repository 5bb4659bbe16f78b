"""Names for converted models, shared by the converter and the app (no heavy imports here)."""

from __future__ import annotations

import re

# The quantization tag of a GGUF file name ("….Q4_1.gguf", "…-Q4_K_M.gguf", "….f16.gguf"): it
# describes the file we read, not the package we write (which has its own quantization).
_GGUF_QUANT_TAG = re.compile(r"[.-](?:I?Q\d\w*|B?F16|F32)$", re.IGNORECASE)


def gguf_model_name(file_name: str) -> str:
    """``SmolLM2-135M-Instruct.Q4_1.gguf`` → ``SmolLM2-135M-Instruct``."""
    base = re.sub(r"\.gguf$", "", file_name, flags=re.IGNORECASE)
    return _GGUF_QUANT_TAG.sub("", base) or base
