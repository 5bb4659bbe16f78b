"""Each family's switches, against transformers' own implementation of the same random weights:
whole, in chunks shorter and longer than the sliding window, and token by token. And the config
keys that would change the numbers are refused by name."""

from __future__ import annotations

import pytest
import torch

from converter.errors import ConversionError
from converter.model_spec import ModelSpec
from converter.torch_model import build_stateful_model, causal_mask
from tests.families import FAMILIES, WINDOW, family_config


def _pair(family: str, **overrides):
    import transformers

    config_class, model_class, _ = FAMILIES[family]
    torch.manual_seed(11)
    config = {**family_config(family), "vocab_size": 256, **overrides}
    reference = getattr(transformers, model_class)(getattr(transformers, config_class)(**config))
    with torch.no_grad():
        for parameter in reference.parameters():
            if parameter.ndim == 1:
                parameter.add_(torch.randn_like(parameter) * 0.3)
    spec = ModelSpec.from_config({**reference.config.to_dict(), "architectures": [model_class]})
    weights = reference.state_dict()
    return reference.eval(), spec, weights


def _feed(module, ids, chunks):
    module.reset_cache()
    outputs, past = [], 0
    for size in chunks:
        piece = ids[:, past : past + size].to(torch.int32)
        outputs.append(module(piece, causal_mask(past, size, dtype=torch.float32)))
        past += size
    return torch.cat(outputs, dim=1)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_matches_transformers_across_the_window(family):
    reference, spec, weights = _pair(family)
    module = build_stateful_model(spec, weights, context_length=64, cache_dtype=torch.float32)
    module = module.float()
    ids = torch.randint(0, 256, (1, 20), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = reference(ids).logits
        for chunks in ([20], [3, 12, 5], [1] * 20):
            torch.testing.assert_close(_feed(module, ids, chunks), expected, rtol=1e-4, atol=1e-4)
    if family.startswith("gemma"):
        assert spec.sliding_window == WINDOW and spec.is_sliding(0) and not spec.is_sliding(1)


@pytest.mark.parametrize(
    ("family", "switch"),
    [
        ("qwen2", {"qkv_bias": False}),
        ("qwen3", {"qk_norm": False}),
        ("gemma3", {"sliding_window": 0, "layer_types": ()}),
        ("gemma3", {"query_scale": 0.0}),
        ("gemma2", {"attn_softcap": 0.0}),
        ("gemma2", {"final_softcap": 0.0}),
        ("phi3", {"rope_scaling": ()}),
    ],
)
def test_each_switch_matters(family, switch):
    """Without the switch the module disagrees with transformers: the tests above can fail."""
    import dataclasses

    reference, spec, weights = _pair(family)
    spec = dataclasses.replace(spec, **switch)
    if not spec.qkv_bias:
        weights = {k: v for k, v in weights.items() if not k.endswith("_proj.bias")}
    if not spec.qk_norm:
        weights = {k: v for k, v in weights.items() if "_norm." not in k or "layernorm" in k}
    module = build_stateful_model(spec, weights, context_length=64, cache_dtype=torch.float32)
    ids = torch.randint(0, 256, (1, 20), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        got = _feed(module.float(), ids, [20])
        assert (got - reference(ids).logits).abs().max() > 1e-3


def test_gemma_residual_stream_is_rescaled_into_float16_range():
    _, spec, _ = _pair("gemma3")
    assert spec.residual_scale < 1 and spec.embedding_scale == pytest.approx(
        8.0 * spec.residual_scale  # sqrt(hidden_size 64)
    )


def test_qwen2_ignores_sliding_window_unless_use_sliding_window():
    config = {**family_config("qwen2"), "architectures": ["Qwen2ForCausalLM"]}
    assert ModelSpec.from_config({**config, "sliding_window": 4}).sliding_window == 0
    sliding = {**config, "sliding_window": 4, "use_sliding_window": True, "max_window_layers": 1}
    spec = ModelSpec.from_config(sliding)
    assert spec.sliding_window == 4 and not spec.is_sliding(0) and spec.is_sliding(1)


def test_gemma3_config_json_form_is_read():
    """A Hub config.json: rope_theta and rope_local_base_freq, no layer_types (pattern 6)."""
    config = {
        **family_config("gemma3"),
        "architectures": ["Gemma3ForCausalLM"],
        "num_hidden_layers": 6,
        "rope_theta": 1_000_000.0,
        "rope_local_base_freq": 10_000.0,
        "rope_scaling": {"rope_type": "linear", "factor": 8.0},
    }
    del config["layer_types"]
    spec = ModelSpec.from_config(config)
    assert [spec.is_sliding(i) for i in range(6)] == [True] * 5 + [False]
    assert spec.rope.rope_type == "linear" and spec.local_rope.theta == 10_000.0


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"logits_scaling": 8.0}, "logits_scaling=8.0"),
        ({"no_rope_layers": [1, 0]}, "no_rope_layers"),
        ({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, "'yarn'"),
        ({"hidden_act": "gelu"}, "hidden_act=gelu"),
    ],
)
def test_number_changing_keys_are_refused_by_name(extra, named):
    config = {**family_config("qwen2"), "architectures": ["Qwen2ForCausalLM"], **extra}
    with pytest.raises(ConversionError, match=named):
        ModelSpec.from_config(config)


def test_unsupported_architecture_names_the_supported_families():
    with pytest.raises(ConversionError, match=r"GraniteForCausalLM: .*Qwen3.*Gemma 3"):
        ModelSpec.from_config({"architectures": ["GraniteForCausalLM"]})


def test_phi3_longrope_holds_its_original_context_only():
    _, spec, _ = _pair("phi3")
    assert spec.rope.rope_type == "longrope" and spec.rope.attention_factor > 1
    assert spec.max_position_embeddings == 64 and spec.rotary_dim == 12
