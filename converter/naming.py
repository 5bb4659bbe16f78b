"""Names for converted models, shared by the converter and the app (no heavy imports here).

One filter makes every name we write (the package's and the model folder's): letters, digits and
``._-``, starting with a letter or a digit. So a name is never empty, hidden, ``.`` or ``..``, and
never holds a path separator: a name cannot point a conversion outside the folder the user chose.
"""

from __future__ import annotations

import re
from pathlib import Path

# The quantization tag of a GGUF file name ("….Q4_1.gguf", "…-Q4_K_M.gguf", "….f16.gguf"): it
# describes the file we read, not the package we write (which has its own quantization).
_GGUF_QUANT_TAG = re.compile(r"[.-](?:I?Q\d\w*|B?F16|F32)$", re.IGNORECASE)
_NOT_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MAX_NAME_LENGTH = 200  # file systems allow 255 bytes; ".mlpackage" and staging prefixes need room


def gguf_model_name(file_name: str) -> str:
    """``SmolLM2-135M-Instruct.Q4_1.gguf`` → ``SmolLM2-135M-Instruct``."""
    base = re.sub(r"\.gguf$", "", file_name, flags=re.IGNORECASE)
    return _GGUF_QUANT_TAG.sub("", base) or base


def safe_name(text: str, *, fallback: str = "Model") -> str:
    """``text`` made into a name that passes ``name_problem`` (the default names go through it)."""
    name = _NOT_NAME_CHARACTERS.sub("-", text).lstrip("._-")[:MAX_NAME_LENGTH].rstrip(".")
    return name or fallback


def name_problem(name: str, *, what: str = "name") -> str | None:
    """Why ``name`` cannot name a package or a model folder (None: it can)."""
    if not name:
        return f"{what}: expected a name, found nothing"
    if len(name) > MAX_NAME_LENGTH:
        return f"{what}: expected at most {MAX_NAME_LENGTH} characters, found {len(name)}"
    if not NAME_PATTERN.match(name):
        return (
            f"{what}: expected letters, digits, '.', '_' or '-' starting with a letter or digit "
            f"(no path separators, not hidden), found {name!r}"
        )
    return None


def default_model_name(source: str, quantize: str) -> str:
    """A folder name for the converted model: the source's last path part plus the quantization."""
    text = source.strip().rstrip("/\\")
    base = Path(text).name or "model"
    is_gguf = base.lower().endswith(".gguf")
    if is_gguf:
        base = gguf_model_name(base)
    if quantize == "auto":  # what the converter resolves "auto" to
        quantize = "exact" if is_gguf else "int4"
    suffix = {"none": "fp16", "exact": "gguf"}.get(quantize, quantize)
    return safe_name(f"{base}-{suffix}")
