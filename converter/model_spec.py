"""What a Hugging Face config says about the model, as the switches of our one stateful module.

Every supported family is the same decoder with a few switches (``ModelSpec``): biases on q/k/v,
RMSNorm on q and k, Gemma's ``(1 + w)`` norms and four norms per layer, an embedding scale, the
activation, soft-capping, sliding-window layers, fused weights split at load, the RoPE variant. A
config key that would change the numbers and that no switch implements is refused by name:
converting anyway would convert a different model than the source (``attention_bias`` once
converted to 0% top-1 agreement and verified as 100%).

Configs come in two shapes: the ``config.json`` a checkpoint ships (``rope_theta``,
``rope_local_base_freq``, ``rope_scaling``; no ``layer_types`` in older ones) and transformers'
own ``to_dict()`` (``rope_parameters``, nested per layer type for Gemma 3; ``layer_types``). Both
are read here, with transformers' defaults where a key is absent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from converter.errors import ConversionError
from converter.naming import FAMILY_NAMES

FULL, SLIDING = "full_attention", "sliding_attention"


@dataclass(frozen=True)
class Family:
    """The switches one architecture sets (everything else comes from its config)."""

    name: str  # for messages: "Qwen2/2.5"
    qkv_bias: bool = False  # q/k/v projections carry biases (Qwen2 always)
    qk_norm: bool = False  # RMSNorm over head_dim on q and k before RoPE (Qwen3, Gemma 3)
    norm_offset: float = 0.0  # Gemma's norms multiply by (1 + w): 1.0
    scaled_embeddings: bool = False  # Gemma multiplies embeddings by sqrt(hidden_size)
    sandwich_norms: bool = False  # Gemma 2/3: post-attention and pre/post-feed-forward norms
    activation_key: str = "hidden_act"
    default_activation: str = "silu"
    tie_default: bool = False
    # Gemma's residual stream exceeds float16's range (Gemma 3 270M: 1.04e5): a constant rescale
    # of the stream (the embedding scale and the norms that write into it) is exact, because every
    # norm that reads the stream is scale-invariant. A power of two: no rounding.
    residual_scale: float = 1.0
    sliding_pattern: int = 0  # default layer types: sliding unless (i + 1) % pattern == 0
    fused_projections: bool = False  # Phi-3's qkv_proj and gate_up_proj
    partial_rotary: bool = False  # partial_rotary_factor honoured (Phi)
    rope_types: tuple[str, ...] = ("default", "llama3", "linear")


# What Gemma 2 and 3 share: (1 + w) norms, four of them a layer, embeddings scaled by sqrt(hidden),
# gelu-tanh, tied embeddings, and the residual stream rescaled into float16's range.
_GEMMA: dict[str, object] = {
    "norm_offset": 1.0,
    "scaled_embeddings": True,
    "sandwich_norms": True,
    "activation_key": "hidden_activation",
    "default_activation": "gelu_pytorch_tanh",
    "tie_default": True,
    "residual_scale": 0.125,
}

FAMILIES = {
    "LlamaForCausalLM": Family(FAMILY_NAMES["LlamaForCausalLM"]),
    "MistralForCausalLM": Family(FAMILY_NAMES["MistralForCausalLM"]),
    "Qwen2ForCausalLM": Family(FAMILY_NAMES["Qwen2ForCausalLM"], qkv_bias=True),
    "Qwen3ForCausalLM": Family(FAMILY_NAMES["Qwen3ForCausalLM"], qk_norm=True),
    "Gemma3ForCausalLM": Family(
        FAMILY_NAMES["Gemma3ForCausalLM"], qk_norm=True, sliding_pattern=6, **_GEMMA
    ),
    "Gemma2ForCausalLM": Family(FAMILY_NAMES["Gemma2ForCausalLM"], sliding_pattern=2, **_GEMMA),
    "Phi3ForCausalLM": Family(
        FAMILY_NAMES["Phi3ForCausalLM"],
        fused_projections=True,
        partial_rotary=True,
        rope_types=("default", "longrope"),
    ),
}
SUPPORTED_ARCHITECTURES = tuple(FAMILIES)
SUPPORTED_NAMES = "Llama, Mistral, Qwen2/2.5, Qwen3, Gemma 2, Gemma 3 and Phi-3/3.5/4-mini"
# Architectures whose configs carry their model type under another name.
MODEL_TYPES = {
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
    "gemma3_text": "Gemma3ForCausalLM",
    "gemma3": "Gemma3ForCausalLM",
    "gemma2": "Gemma2ForCausalLM",
    "phi3": "Phi3ForCausalLM",
}
ACTIVATIONS = {"silu": "silu", "swish": "silu", "gelu_pytorch_tanh": "gelu_tanh"}
# Keys of Llama look-alikes that change the numbers (Granite's multipliers, SmolLM3's layers
# without RoPE, ...): refused by name when present with a value that is not neutral.
_NEUTRAL = {
    "embedding_multiplier": 1.0,
    "residual_multiplier": 1.0,
    "attention_multiplier": None,
    "logits_scaling": 1.0,
    "no_rope_layers": None,
    "no_rope_layer_interval": None,
    "use_bidirectional_attention": False,
    "mlp_bias": False,
}


@dataclass(frozen=True)
class RoPE:
    """One RoPE table's parameters (Gemma 3 has one per layer type)."""

    theta: float
    rope_type: str = "default"
    scaling: tuple[tuple[str, Any], ...] = ()
    attention_factor: float = 1.0  # longrope: cos and sin are multiplied by it


@dataclass(frozen=True)
class ModelSpec:
    """The architecture facts the stateful module needs, read from a Hugging Face config."""

    architecture: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    tie_word_embeddings: bool
    max_position_embeddings: int
    rope_scaling: tuple[tuple[str, Any], ...] = ()
    sliding_window: int = 0  # 0: none
    # Family switches (the defaults are Llama's).
    qkv_bias: bool = False
    o_bias: bool = False
    qk_norm: bool = False
    norm_offset: float = 0.0
    embedding_scale: float = 1.0  # including residual_scale
    residual_scale: float = 1.0
    sandwich_norms: bool = False
    activation: str = "silu"  # or "gelu_tanh"
    query_scale: float = 0.0  # attention scale; 0: 1/sqrt(head_dim)
    attn_softcap: float = 0.0
    final_softcap: float = 0.0
    layer_types: tuple[str, ...] = ()  # per layer FULL or SLIDING; empty: all FULL
    local_rope: RoPE | None = None  # the sliding layers' RoPE when it differs (Gemma 3)
    rotary_dim: int = 0  # 0: head_dim (Phi-4-mini rotates 0.75 of it)
    fused_projections: bool = False  # Phi-3's qkv_proj and gate_up_proj, split at load

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ModelSpec:
        """Read a config dict (``config.json`` or ``PretrainedConfig.to_dict()``)."""
        architecture = architecture_of(config)
        family = FAMILIES[architecture]
        unsupported = unsupported_features(config, family=family)
        if unsupported:
            raise ConversionError(
                f"{architecture} with {unsupported[0]} is not supported: coreml-chat does not "
                "implement it (converting anyway would drop it silently)"
            )
        number = _ConfigReader(config)
        heads = number.integer("num_attention_heads")
        hidden = number.integer("hidden_size")
        head_dim = number.integer("head_dim", hidden // heads)
        layers = number.integer("num_hidden_layers")
        global_rope, local_rope = _ropes(config, family)
        layer_types = _layer_types(config, family, layers)
        window = number.integer("sliding_window", 0) if SLIDING in layer_types else 0
        if SLIDING in layer_types and not window:
            raise ConversionError("config.json: sliding-attention layers without sliding_window")
        embedding_scale = math.sqrt(hidden) if family.scaled_embeddings else 1.0
        query_scale = 0.0
        if "query_pre_attn_scalar" in config and config["query_pre_attn_scalar"] is not None:
            query_scale = number.real("query_pre_attn_scalar", 1.0) ** -0.5
            if math.isclose(query_scale, head_dim**-0.5, rel_tol=1e-12):
                query_scale = 0.0
        attention_bias = bool(config.get("attention_bias", False))
        max_positions = number.integer("max_position_embeddings", 2048)
        if global_rope.rope_type == "longrope":
            global_rope, max_positions = _longrope(global_rope, config, max_positions)
            local_rope = global_rope
        rotary_dim = round(head_dim * _partial_rotary(config)) if family.partial_rotary else 0
        if rotary_dim % 2 or rotary_dim > head_dim:
            raise ConversionError(
                f"config.json: partial rotary gives {rotary_dim} of {head_dim} dims"
            )
        return cls(
            architecture=architecture,
            vocab_size=number.integer("vocab_size"),
            hidden_size=hidden,
            intermediate_size=number.integer("intermediate_size"),
            num_layers=layers,
            num_heads=heads,
            num_kv_heads=number.integer("num_key_value_heads", heads),
            head_dim=head_dim,
            rms_norm_eps=number.real("rms_norm_eps", 1e-6),
            rope_theta=global_rope.theta,
            tie_word_embeddings=bool(config.get("tie_word_embeddings", family.tie_default)),
            max_position_embeddings=max_positions,
            rope_scaling=global_rope.scaling,
            sliding_window=window,
            qkv_bias=family.qkv_bias or attention_bias,
            o_bias=attention_bias,
            qk_norm=family.qk_norm,
            norm_offset=family.norm_offset,
            embedding_scale=embedding_scale * family.residual_scale,
            residual_scale=family.residual_scale,
            sandwich_norms=family.sandwich_norms,
            activation=ACTIVATIONS[_activation(config, family)],
            query_scale=query_scale,
            attn_softcap=_softcap(config, "attn_logit_softcapping"),
            final_softcap=_softcap(config, "final_logit_softcapping"),
            layer_types=layer_types if SLIDING in layer_types else (),
            local_rope=local_rope if local_rope != global_rope else None,
            rotary_dim=0 if rotary_dim == head_dim else rotary_dim,
            fused_projections=family.fused_projections,
        )

    @property
    def rope(self) -> RoPE:
        scaling = dict(self.rope_scaling)
        rope_type = str(scaling.get("rope_type", "default")) if self.rope_scaling else "default"
        factor = float(scaling.get("attention_factor", 1.0)) if rope_type == "longrope" else 1.0
        return RoPE(self.rope_theta, rope_type, self.rope_scaling, factor)

    def is_sliding(self, layer: int) -> bool:
        return bool(self.layer_types) and self.layer_types[layer] == SLIDING

    @property
    def parameter_count(self) -> int:
        attention = self.hidden_size * self.head_dim * (2 * self.num_heads + 2 * self.num_kv_heads)
        mlp = 3 * self.hidden_size * self.intermediate_size
        per_layer = attention + mlp + 2 * self.hidden_size
        embeddings = self.vocab_size * self.hidden_size * (1 if self.tie_word_embeddings else 2)
        return self.num_layers * per_layer + embeddings + self.hidden_size


def architecture_of(config: Mapping[str, Any]) -> str:
    """The config's architecture if coreml-chat converts it; a one-line error naming it if not."""
    architectures = config.get("architectures") or []
    architecture = architectures[0] if architectures else ""
    if not architecture:
        architecture = MODEL_TYPES.get(str(config.get("model_type", "")), "")
    if architecture not in FAMILIES:
        found = architecture or f"model_type {config.get('model_type', 'unknown')!r}"
        hint = ""
        if architecture.endswith("ForConditionalGeneration"):
            hint = " (a multimodal model: only text-only checkpoints convert)"
        raise ConversionError(
            f"unsupported architecture {found}{hint}: coreml-chat converts {SUPPORTED_NAMES} "
            f"models ({', '.join(SUPPORTED_ARCHITECTURES)})"
        )
    return architecture


class _ConfigReader:
    """Reads numbers from a config, with a one-line error for a key that is missing or not a
    number (a traceback from ``int(config[key])`` says neither which file nor what to do)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config

    def _value(self, key: str, default: Any) -> Any:
        value = self.config.get(key)
        if value is None:
            if default is None:
                raise ConversionError(
                    f"the model's config.json lacks {key!r}, which every supported config has; "
                    "is the checkpoint complete?"
                )
            return default
        return value

    def integer(self, key: str, default: int | None = None) -> int:
        value = self._value(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConversionError(
                f"config.json: expected a non-negative whole number for {key!r}, found {value!r}"
            )
        if value == 0 and key not in ("sliding_window",):
            raise ConversionError(f"config.json: expected a positive {key!r}, found 0")
        return value

    def real(self, key: str, default: float) -> float:
        value = self._value(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise ConversionError(
                f"config.json: expected a positive number for {key!r}, found {value!r}"
            )
        return float(value)


def _activation(config: Mapping[str, Any], family: Family) -> str:
    return str(
        config.get(family.activation_key)
        or config.get("hidden_act")
        or config.get("hidden_activation")
        or family.default_activation
    )


def _softcap(config: Mapping[str, Any], key: str) -> float:
    value = config.get(key)
    if value is None or value == 0:
        return 0.0
    return _ConfigReader(config).real(key, 1.0)


def _layer_types(config: Mapping[str, Any], family: Family, layers: int) -> tuple[str, ...]:
    """Each layer's attention: FULL or SLIDING, as transformers decides it."""
    architecture = architecture_of(config)
    if architecture.startswith("Qwen") and not config.get("use_sliding_window"):
        return (FULL,) * layers  # transformers ignores sliding_window then
    given = config.get("layer_types")
    if given is not None:
        types = tuple(str(item) for item in given)
        if len(types) != layers or not set(types) <= {FULL, SLIDING}:
            raise ConversionError(
                f"config.json: expected {layers} layer_types of {FULL!r}/{SLIDING!r}, "
                f"found {list(types)!r}"
            )
        return types
    if family.sliding_pattern:
        pattern = config.get("sliding_window_pattern") or family.sliding_pattern
        return tuple(SLIDING if (i + 1) % pattern else FULL for i in range(layers))
    if architecture.startswith("Qwen"):
        first = int(config.get("max_window_layers", layers))
        return tuple(FULL if i < first else SLIDING for i in range(layers))
    # Llama/Mistral: a sliding_window applies to every layer.
    return (SLIDING if config.get("sliding_window") else FULL,) * layers


def _rope_from(parameters: Mapping[str, Any], theta: Any, family: Family) -> RoPE:
    parameters = dict(parameters or {})
    theta = parameters.get("rope_theta", theta) or 10000.0
    rope_type = str(parameters.get("rope_type", parameters.get("type", "default")) or "default")
    if rope_type not in family.rope_types:
        raise ConversionError(
            f"unsupported rope scaling {rope_type!r}: coreml-chat supports "
            f"{', '.join(family.rope_types)} rope for {family.name}"
        )
    if not isinstance(theta, int | float) or isinstance(theta, bool) or not theta > 0:
        raise ConversionError(f"config.json: expected a positive rope_theta, found {theta!r}")
    keep = {
        "llama3": (
            "factor",
            "low_freq_factor",
            "high_freq_factor",
            "original_max_position_embeddings",
        ),
        "linear": ("factor",),
        "longrope": (
            "short_factor",
            "long_factor",
            "factor",
            "attention_factor",
            "original_max_position_embeddings",
        ),
    }.get(rope_type, ())
    scaling = tuple(
        sorted(
            (k, tuple(v) if isinstance(v, list) else v) for k, v in parameters.items() if k in keep
        )
    )
    if rope_type != "default":
        scaling = (("rope_type", rope_type), *scaling)
    return RoPE(float(theta), rope_type, scaling)


def _ropes(config: Mapping[str, Any], family: Family) -> tuple[RoPE, RoPE]:
    """The full-attention layers' RoPE and the sliding layers'."""
    parameters = config.get("rope_parameters") or config.get("rope_scaling") or {}
    if not isinstance(parameters, Mapping):
        raise ConversionError(
            f"config.json: expected an object for rope_parameters, found {parameters!r}"
        )
    if FULL in parameters or SLIDING in parameters:  # transformers' per-layer-type form
        full = _rope_from(parameters.get(FULL) or {}, config.get("rope_theta"), family)
        local = _rope_from(
            parameters.get(SLIDING) or parameters.get(FULL) or {}, full.theta, family
        )
        return full, local
    full = _rope_from(parameters, config.get("rope_theta"), family)
    if "rope_local_base_freq" in config:  # Gemma 3's config.json: local layers unscaled
        local_theta = config["rope_local_base_freq"]
        return full, _rope_from({}, local_theta, family)
    if architecture_of(config) == "Gemma3ForCausalLM":
        return full, RoPE(10000.0)
    return full, full


def _partial_rotary(config: Mapping[str, Any]) -> float:
    rope = config.get("rope_parameters")
    if isinstance(rope, Mapping) and rope.get("partial_rotary_factor") is not None:
        return float(rope["partial_rotary_factor"])
    return float(config.get("partial_rotary_factor") or 1.0)


def _longrope(rope: RoPE, config: Mapping[str, Any], max_positions: int) -> tuple[RoPE, int]:
    """Phi's LongRoPE with its short factors, and the context it holds: transformers switches to
    the long factors for the whole sequence once it exceeds ``original_max_position_embeddings``,
    which a kv-cache of earlier positions cannot follow; that longer context is refused."""
    scaling = dict(rope.scaling)
    original = scaling.get("original_max_position_embeddings") or config.get(
        "original_max_position_embeddings"
    )
    if not isinstance(original, int) or original <= 0:
        raise ConversionError("config.json: longrope without original_max_position_embeddings")
    factor = scaling.get("factor") or max_positions / original
    attention = scaling.get("attention_factor")
    if attention is None:
        attention = 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(original))
    short = scaling.get("short_factor")
    if not isinstance(short, tuple) or not short:
        raise ConversionError("config.json: longrope without short_factor")
    scaling.update(attention_factor=float(attention), original_max_position_embeddings=original)
    kept = tuple(sorted(scaling.items()))
    return RoPE(rope.theta, "longrope", kept, float(attention)), min(max_positions, original)


def unsupported_features(config: Mapping[str, Any], *, family: Family | None = None) -> list[str]:
    """Config features the stateful module does not implement, as ``key=value`` (empty: none)."""
    if family is None:
        family = FAMILIES.get(architecture_of(config), Family("Llama"))
    found = []
    llama_like = family.name in ("Llama", "Mistral")
    if llama_like and config.get("attention_bias"):
        found.append(f"attention_bias={config['attention_bias']}")
    activation = _activation(config, family)
    if activation not in ACTIVATIONS or (llama_like and ACTIVATIONS.get(activation) != "silu"):
        found.append(f"{family.activation_key}={activation}")
    if config.get("quantization_config"):
        method = dict(config["quantization_config"]).get("quant_method", "unknown")
        found.append(f"quantization_config (a {method} checkpoint)")
    partial = config.get("partial_rotary_factor", 1.0)
    rope = config.get("rope_parameters")
    if isinstance(rope, Mapping) and "partial_rotary_factor" in rope:
        partial = rope["partial_rotary_factor"]
    if not family.partial_rotary and partial not in (None, 1, 1.0):
        found.append(f"partial_rotary_factor={partial}")
    for key, neutral in _NEUTRAL.items():
        if key in config and config[key] not in (neutral, None) and config[key] != []:
            found.append(f"{key}={config[key]}")
    return found
