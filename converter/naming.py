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
# What each quantization is called in a model folder's default name ("SmolLM2-135M-Instruct-gguf").
FOLDER_SUFFIXES: dict[str, str] = {"int4": "int4", "int8": "int8", "none": "fp16", "exact": "gguf"}
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
    resolved = resolved_quantization(quantize, gguf=is_gguf)
    return safe_name(f"{base}-{FOLDER_SUFFIXES.get(resolved, resolved)}")


def resolved_quantization(quantize: str, *, gguf: bool) -> str:
    """What ``quantize`` means for a source: "auto" keeps a GGUF's own blocks ("exact") and makes
    anything else int4; the other choices mean themselves. The one definition of "auto"."""
    if quantize == "auto":
        return "exact" if gguf else "int4"
    return quantize


def quantization_label(
    quantize: str,
    block_size: int,
    *,
    int4_recipe: str = "searched",
    int8_embeddings: bool = False,
    gguf_form: str = "exact",
) -> str:
    """The package metadata's quantization (``quantize`` resolved): ``int4-block32``
    (coremltools' linear_symmetric), ``int4-searched-block32`` / ``int4-searched-symmetric-block32``
    (``+int8-embeddings`` when kept at 8 bits), ``int8``, ``fp16``, ``gguf-exact`` or
    ``gguf-native`` (``--gguf-form native``)."""
    if quantize == "int4":
        recipe = "" if int4_recipe == "linear-symmetric" else f"{int4_recipe}-"
        suffix = "+int8-embeddings" if int8_embeddings else ""
        return f"int4-{recipe}block{block_size}{suffix}"
    labels = {"int8": "int8", "none": "fp16", "exact": f"gguf-{gguf_form}"}
    if quantize not in labels:
        raise ValueError(
            f"expected a resolved quantization (int4, int8, none, exact), found {quantize!r}"
        )
    return labels[quantize]


# The model families the converter supports, by the architecture a Hugging Face config names (and
# a package's metadata records): the names people know them by.
FAMILY_NAMES: dict[str, str] = {
    "LlamaForCausalLM": "Llama",
    "MistralForCausalLM": "Mistral",
    "Qwen2ForCausalLM": "Qwen2/2.5",
    "Qwen3ForCausalLM": "Qwen3",
    "Gemma3ForCausalLM": "Gemma 3",
    "Gemma2ForCausalLM": "Gemma 2",
    "Phi3ForCausalLM": "Phi-3",
}


def family_label(architecture: str) -> str:
    """``Qwen3 (Qwen3ForCausalLM)`` for a known family; the architecture as it is otherwise."""
    family = FAMILY_NAMES.get(architecture)
    return f"{family} ({architecture})" if family else (architecture or "unknown")
