"""Tiny random models of each supported family, and GGUF files written from them.

Each model is built from transformers' own config class and saved with ``save_pretrained``; its
vectors (norms, biases) are randomised, so a dropped bias or a misread norm changes the logits. The
GGUF is written with the ``gguf`` package's writer under llama.cpp's tensor names for the
architecture (Gemma's norms as 1 + w, as llama.cpp stores them), layer weights in Q4_0, the
embedding in Q8_0, with the start of SmolLM2's tokenizer (a GPT-2 BPE) copied from the demo GGUF.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# family → (transformers config and model class names, GGUF architecture)
FAMILIES = {
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", "qwen2"),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", "qwen3"),
    "gemma3": ("Gemma3TextConfig", "Gemma3ForCausalLM", "gemma3"),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM", "gemma2"),
    "phi3": ("Phi3Config", "Phi3ForCausalLM", "phi3"),
}
WINDOW = 8  # the Gemma models' sliding window: tests feed chunks shorter and longer than it
VOCAB = 49152  # SmolLM2's tokenizer


# The shape of every tiny random model the tests convert (Llama and Mistral in tests/conftest.py too).
TINY_DECODER = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 1024,
    "bos_token_id": 1,
    "eos_token_id": 2,
}


def family_config(family: str) -> dict:
    common = {**TINY_DECODER, "vocab_size": VOCAB, "rms_norm_eps": 1e-6}
    if family == "qwen2":
        return {**common, "rope_theta": 1_000_000.0, "tie_word_embeddings": True}
    if family == "qwen3":
        # head_dim 128 as in every Qwen3 (transformers reads no head_dim from a qwen3 GGUF).
        return {**common, "head_dim": 128, "rope_theta": 1_000_000.0}
    if family == "phi3":  # Phi-4-mini's shape: partial rotary 0.75, LongRoPE
        half = 64 // 4 * 3 // 4 // 2  # head_dim 16, 12 of it rotated
        return {
            **common,
            "pad_token_id": 0,
            "max_position_embeddings": 256,
            "original_max_position_embeddings": 64,
            "partial_rotary_factor": 0.75,
            "rope_parameters": {
                "rope_type": "longrope",
                "rope_theta": 10000.0,
                "partial_rotary_factor": 0.75,
                "original_max_position_embeddings": 64,
                "short_factor": [1.0 + 0.1 * i for i in range(half)],
                "long_factor": [2.0 + 0.5 * i for i in range(half)],
            },
            "tie_word_embeddings": True,
        }
    gemma = {
        **common,
        "head_dim": 32,
        "sliding_window": WINDOW,
        "query_pre_attn_scalar": 24,  # not head_dim: the query scale is a switch of its own
        "layer_types": ["sliding_attention", "full_attention"],
    }
    if family == "gemma3":
        return gemma
    # Small caps, so that soft-capping changes these random models' numbers.
    return {**gemma, "attn_logit_softcapping": 0.05, "final_logit_softcapping": 1.0}


def save_family_model(folder: Path, family: str, tokenizer_dir: Path) -> Path:
    import shutil

    import torch
    import transformers

    config_class, model_class, _ = FAMILIES[family]
    torch.manual_seed(sum(map(ord, family)))
    config = getattr(transformers, config_class)(**family_config(family))
    model = getattr(transformers, model_class)(config)
    with torch.no_grad():
        for _, parameter in model.named_parameters():
            if parameter.ndim == 1:  # norms and biases: not their initial ones and zeros
                parameter.add_(torch.randn_like(parameter) * 0.3)
    model.save_pretrained(str(folder))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(tokenizer_dir / name, folder / name)
    return folder


def write_family_gguf(model_dir: Path, path: Path, family: str, tokenizer_gguf: Path) -> Path:
    """``model_dir``'s weights as a GGUF of ``family``'s architecture (Q4_0 layers, Q8_0
    embedding, F32 vectors), with ``tokenizer_gguf``'s tokenizer."""
    import gguf
    from gguf.quants import quantize
    from safetensors.torch import load_file

    from converter.gguf.tensor_names import LAYER_NAMES, NORMS_INCLUDE_OFFSET, TOP_NAMES

    arch = FAMILIES[family][2]
    config = family_config(family)
    weights = {
        k: v.float().numpy() for k, v in load_file(str(model_dir / "model.safetensors")).items()
    }
    names = {hf: gguf_name for gguf_name, hf in TOP_NAMES.items()}
    for layer in range(config["num_hidden_layers"]):
        for short, hf in LAYER_NAMES[arch].items():
            for kind in ("weight", "bias"):
                names[f"model.layers.{layer}.{hf}.{kind}"] = f"blk.{layer}.{short}.{kind}"
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim", config["hidden_size"] // heads)
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(config["num_key_value_heads"])
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_rope_freq_base(config.get("rope_theta", 10000.0))
    writer.add_vocab_size(config["vocab_size"])
    if "sliding_window" in config:
        writer.add_sliding_window(config["sliding_window"])
    for name, value in config.items():
        if name.endswith("softcapping"):
            key = "attn_logit_softcapping" if name.startswith("attn") else "final_logit_softcapping"
            writer.add_float32(f"{arch}.{key}", value)
    _copy_tokenizer(writer, gguf.GGUFReader(str(tokenizer_gguf)))
    for hf_name, values in weights.items():
        if hf_name not in names:
            raise KeyError(f"no GGUF name for {hf_name}")
        gguf_name = names[hf_name]
        if values.ndim == 1:
            if arch in NORMS_INCLUDE_OFFSET and hf_name.endswith("norm.weight"):
                values = values + 1.0
            writer.add_tensor(gguf_name, values.astype(np.float32))
            continue
        qtype = (
            gguf.GGMLQuantizationType.Q8_0 if "embed" in hf_name else gguf.GGMLQuantizationType.Q4_0
        )
        writer.add_tensor(gguf_name, quantize(values, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


# The GGUF's tokenizer keeps SmolLM2's first tokens (its specials and bytes) and the merges among
# them: building transformers' tokenizer from the whole 49152-token vocabulary takes seconds at
# every read of the file, and the numbers under test do not depend on it.
TOKENIZER_TOKENS = 1024


def _copy_tokenizer(writer, reader) -> None:
    import gguf

    tokens = reader.fields["tokenizer.ggml.tokens"].contents()[:TOKENIZER_TOKENS]
    known = set(tokens)
    for field in reader.fields.values():
        if not field.name.startswith("tokenizer."):
            continue
        kind = field.types[0]
        sub_type = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        value = field.contents()
        if field.name == "tokenizer.ggml.tokens":
            value = tokens
        elif field.name == "tokenizer.ggml.merges":
            value = [m for m in value if "".join(m.split(" ")) in known]
        elif kind == gguf.GGUFValueType.ARRAY and len(value) > TOKENIZER_TOKENS:
            value = value[:TOKENIZER_TOKENS]
        writer.add_key_value(field.name, value, kind, sub_type=sub_type)
