"""The stateful torch module against transformers' own implementation of the same weights."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from converter.errors import ConversionError
from converter.torch_model import ModelSpec, RMSNorm, build_stateful_model, causal_mask


def _load_pair(folder: Path):
    from transformers import AutoModelForCausalLM

    reference = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    config = reference.config.to_dict()
    spec = ModelSpec.from_config(config)
    module = build_stateful_model(
        spec, reference.state_dict(), context_length=64, cache_dtype=torch.float32
    ).float()
    return reference, module


def _feed(module, ids: torch.Tensor, chunks: list[int]) -> torch.Tensor:
    module.reset_cache()
    outputs, past = [], 0
    for size in chunks:
        piece = ids[:, past : past + size].to(torch.int32)
        outputs.append(module(piece, causal_mask(past, size, dtype=torch.float32)))
        past += size
    return torch.cat(outputs, dim=1)


@pytest.mark.parametrize("arch", ["mistral", "llama"])
def test_logits_match_transformers_whole_chunked_and_token_by_token(arch, request):
    folder = request.getfixturevalue(f"tiny_{arch}_dir")
    reference, module = _load_pair(folder)
    assert module.spec.tie_word_embeddings == (arch == "llama")
    ids = torch.randint(
        0, module.spec.vocab_size, (1, 11), generator=torch.Generator().manual_seed(3)
    )
    with torch.no_grad():
        expected = reference(ids).logits
        for chunks in ([11], [4, 5, 2], [1] * 11):
            got = _feed(module, ids, chunks)
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_last_logits_only_returns_the_last_position(tiny_mistral_dir):
    reference, module = _load_pair(tiny_mistral_dir)
    module.last_logits_only = True
    ids = torch.randint(
        0, module.spec.vocab_size, (1, 6), generator=torch.Generator().manual_seed(5)
    )
    with torch.no_grad():
        got = _feed(module, ids, [6])
        expected = reference(ids).logits[:, -1:]
    assert got.shape == (1, 1, module.spec.vocab_size)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_rmsnorm_stays_finite_in_float16_where_the_naive_one_overflows():
    norm = RMSNorm(8, eps=1e-6).half()
    x = torch.tensor([[300.0, -500.0, 20.0, 1.0, 0.5, 700.0, -3.0, 2.0]], dtype=torch.float16)
    x32 = x.float()
    expected = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + 1e-6)
    # 700² overflows float16, so the naive norm collapses to zeros: what the module guards against.
    naive = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
    assert not torch.allclose(naive.float(), expected, rtol=0.1)
    got = norm(x).float()
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, expected, rtol=2e-3, atol=2e-3)


def test_unsupported_architecture_is_refused_naming_what_is_supported():
    config = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}
    with pytest.raises(ConversionError, match=r"GPT2LMHeadModel.*MistralForCausalLM"):
        ModelSpec.from_config(config)


def test_missing_weights_are_named(tiny_llama_dir):
    reference, _ = _load_pair(tiny_llama_dir)
    weights = dict(reference.state_dict())
    del weights["model.layers.1.mlp.up_proj.weight"]
    spec = ModelSpec.from_config(reference.config.to_dict())
    with pytest.raises(ConversionError, match=re.escape("model.layers.1.mlp.up_proj.weight")):
        build_stateful_model(spec, weights, context_length=16)
