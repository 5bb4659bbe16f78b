"""GGUF tensor names → our module's (Hugging Face's) names, one map per GGUF architecture.

llama.cpp names a tensor by what it does (``blk.3.attn_q.weight``, ``blk.3.post_ffw_norm.weight``);
the same GGUF name can hold a different Hugging Face tensor per architecture (``ffn_norm`` is Llama's
``post_attention_layernorm`` but Gemma's ``pre_feedforward_layernorm``). A tensor no map names is
an error, never skipped: a dropped bias or norm converts a different model (it once verified as
100% while agreeing 0% with the source). Only tables the module recomputes are left out.
"""

from __future__ import annotations

import re

from converter.errors import ConversionError

_LLAMA = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_QK_NORMS = {"attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm"}
_GEMMA2 = {
    **_LLAMA,
    "ffn_norm": "pre_feedforward_layernorm",
    "post_attention_norm": "post_attention_layernorm",
    "post_ffw_norm": "post_feedforward_layernorm",
}
# Per GGUF architecture: layer tensor names (weights and biases share them).
LAYER_NAMES = {
    "llama": _LLAMA,
    "mistral": _LLAMA,
    "qwen2": _LLAMA,
    "qwen3": {**_LLAMA, **_QK_NORMS},
    "gemma2": _GEMMA2,
    "gemma3": {**_GEMMA2, **_QK_NORMS},
    # Phi-3: fused q/k/v and gate/up, split by rows at import (converter.gguf.exact_import).
    "phi3": {
        **{k: v for k, v in _LLAMA.items() if k not in ("attn_q", "attn_k", "attn_v", "ffn_gate")},
        "attn_qkv": "self_attn.qkv_proj",
        "ffn_up": "mlp.gate_up_proj",
    },
}
TOP_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
# Tables the module computes itself from the config (llama3's rope frequencies).
RECOMPUTED = frozenset({"rope_freqs.weight"})
# llama.cpp stores Gemma's norm factors as 1 + w (transformers subtracts the 1 when it reads them).
NORMS_INCLUDE_OFFSET = frozenset({"gemma2", "gemma3"})
# llama.cpp permutes q/k rows for its interleaved (non-NEOX) RoPE: Llama's only.
PERMUTED_QK = frozenset({"llama", "mistral"})
_LAYER_PATTERN = re.compile(r"^blk\.(\d+)\.(\w+)\.(weight|bias)$")


def torch_name(gguf_name: str, architecture: str = "llama") -> str | None:
    """``blk.3.attn_q.weight`` → ``model.layers.3.self_attn.q_proj.weight`` (None: recomputed)."""
    if architecture not in LAYER_NAMES:
        raise ConversionError(
            f"GGUF architecture {architecture!r} has no exact import; supported: "
            f"{', '.join(LAYER_NAMES)}"
        )
    if gguf_name in RECOMPUTED:
        return None
    if gguf_name.startswith("rope_factors_"):
        raise ConversionError(
            f"GGUF tensor {gguf_name} holds LongRoPE factors, which the exact import does not "
            "read yet (transformers does not either): convert the Hub model instead"
        )
    if gguf_name in TOP_NAMES:
        return TOP_NAMES[gguf_name]
    match = _LAYER_PATTERN.match(gguf_name)
    names = LAYER_NAMES[architecture]
    if match and match.group(2) in names:
        return f"model.layers.{match.group(1)}.{names[match.group(2)]}.{match.group(3)}"
    raise ConversionError(
        f"GGUF tensor {gguf_name} is not part of a {architecture} model as coreml-chat knows it; "
        "it would change the model's numbers, so it is not dropped"
    )
