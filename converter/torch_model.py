"""Our own stateful Llama/Mistral module: the torch program the converter traces.

Built from a Hugging Face config and its weights, not by patching transformers (its internals change
between versions). The interface is the one of DESIGN.md's model folder:

- ``forward(input_ids int32 (1, q), causal_mask float16 (1, 1, q, end)) -> logits``
- ``end`` is the number of tokens in the cache after this call, so new keys and values are written in
  place into the ``keyCache``/``valueCache`` buffers at ``[end - q : end]``, and the rotary positions
  are ``end - q .. end - 1``: both are taken from the inputs' shapes, which stay symbolic in the trace.
- attention is one fused ``scaled_dot_product_attention`` without an explicit ``scale`` (coremltools
  keeps it fused only then), over the cache's first ``end`` positions with the caller's mask.
- the RMSNorm divides by the largest magnitude first, so ``x * x`` cannot overflow in float16.
"""

from __future__ import annotations

import math
import mmap
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from converter.errors import ConversionError

SUPPORTED_ARCHITECTURES = ("MistralForCausalLM", "LlamaForCausalLM")


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
    sliding_window: int = 0  # Mistral's attention window; 0: none

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ModelSpec:
        """Read a config dict (``config.json`` or ``PretrainedConfig.to_dict()``)."""
        architectures = config.get("architectures") or []
        architecture = architectures[0] if architectures else ""
        if architecture not in SUPPORTED_ARCHITECTURES:
            found = architecture or f"model_type {config.get('model_type', 'unknown')!r}"
            raise ConversionError(
                f"unsupported architecture {found}: coreml-chat converts "
                f"{' and '.join(SUPPORTED_ARCHITECTURES)} models"
            )
        unsupported = unsupported_features(config)
        if unsupported:
            raise ConversionError(
                f"{architecture} with {unsupported[0]} is not supported: coreml-chat converts "
                "plain Llama/Mistral layers only (converting anyway would drop it silently)"
            )
        number = _ConfigReader(config)
        heads = number.integer("num_attention_heads")
        hidden = number.integer("hidden_size")
        rope = dict(config.get("rope_parameters") or config.get("rope_scaling") or {})
        theta = config.get("rope_theta") or rope.get("rope_theta") or 10000.0
        rope_type = rope.get("rope_type", rope.get("type", "default")) or "default"
        if rope_type not in ("default", "llama3"):
            raise ConversionError(
                f"unsupported rope scaling {rope_type!r}: coreml-chat supports default and llama3 rope"
            )
        scaling = tuple(sorted((k, v) for k, v in rope.items() if k != "rope_theta"))
        return cls(
            architecture=architecture,
            vocab_size=number.integer("vocab_size"),
            hidden_size=hidden,
            intermediate_size=number.integer("intermediate_size"),
            num_layers=number.integer("num_hidden_layers"),
            num_heads=heads,
            num_kv_heads=number.integer("num_key_value_heads", heads),
            head_dim=number.integer("head_dim", hidden // heads),
            rms_norm_eps=number.real("rms_norm_eps", 1e-6),
            rope_theta=number.real("rope_theta", theta),
            tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
            max_position_embeddings=number.integer("max_position_embeddings", 2048),
            rope_scaling=scaling if rope_type == "llama3" else (),
            sliding_window=number.integer("sliding_window", 0),
        )

    @property
    def parameter_count(self) -> int:
        attention = self.hidden_size * self.head_dim * (2 * self.num_heads + 2 * self.num_kv_heads)
        mlp = 3 * self.hidden_size * self.intermediate_size
        per_layer = attention + mlp + 2 * self.hidden_size
        embeddings = self.vocab_size * self.hidden_size * (1 if self.tie_word_embeddings else 2)
        return self.num_layers * per_layer + embeddings + self.hidden_size


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
                    f"the model's config.json lacks {key!r}, which a Llama/Mistral config has; "
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


def unsupported_features(config: Mapping[str, Any]) -> list[str]:
    """Config features the stateful module does not implement, as ``key=value`` (empty: none).

    Each would change the model's numbers; ignoring one converts a different model than the
    source (``attention_bias`` once converted to 0% top-1 agreement and verified as 100%).
    """
    found = []
    for key in ("attention_bias", "mlp_bias"):
        if config.get(key):
            found.append(f"{key}={config[key]}")
    if config.get("hidden_act", "silu") not in ("silu", "swish"):
        found.append(f"hidden_act={config['hidden_act']}")
    if config.get("quantization_config"):
        method = dict(config["quantization_config"]).get("quant_method", "unknown")
        found.append(f"quantization_config (a {method} checkpoint)")
    partial = config.get("partial_rotary_factor", 1.0)
    if partial not in (None, 1, 1.0):
        found.append(f"partial_rotary_factor={partial}")
    return found


def rope_inverse_frequencies(spec: ModelSpec) -> torch.Tensor:
    """The rotary inverse frequencies, with llama3's scaling applied when the config asks for it."""
    exponents = torch.arange(0, spec.head_dim, 2, dtype=torch.float64) / spec.head_dim
    inv_freq = 1.0 / (spec.rope_theta**exponents)
    if not spec.rope_scaling:
        return inv_freq
    scaling = dict(spec.rope_scaling)
    factor = float(scaling["factor"])
    low = float(scaling.get("low_freq_factor", 1.0))
    high = float(scaling.get("high_freq_factor", 4.0))
    original = float(scaling.get("original_max_position_embeddings", 8192))
    wavelength = 2 * math.pi / inv_freq
    scaled = torch.where(wavelength > original / low, inv_freq / factor, inv_freq)
    smooth = (original / wavelength - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelength >= original / high) & (wavelength <= original / low)
    return torch.where(medium, smoothed, scaled)


class RMSNorm(nn.Module):
    """RMSNorm that stays finite in float16: scale by the row's largest magnitude before squaring."""

    def __init__(self, size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-4)
        scaled = x / scale
        # mean((x/s)^2) + eps/s^2, with eps/s/s so that s*s itself is never formed.
        variance = scaled.pow(2).mean(dim=-1, keepdim=True) + (self.eps / scale) / scale
        return scaled * torch.rsqrt(variance) * self.weight


class Attention(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.num_heads = spec.num_heads
        self.num_kv_heads = spec.num_kv_heads
        self.head_dim = spec.head_dim
        self.q_proj = nn.Linear(spec.hidden_size, spec.num_heads * spec.head_dim, bias=False)
        self.k_proj = nn.Linear(spec.hidden_size, spec.num_kv_heads * spec.head_dim, bias=False)
        self.v_proj = nn.Linear(spec.hidden_size, spec.num_kv_heads * spec.head_dim, bias=False)
        self.o_proj = nn.Linear(spec.num_heads * spec.head_dim, spec.hidden_size, bias=False)


def project(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)``, with ``x`` cast to the weight's dtype by casts the trace records.

    coremltools' torch frontend computes in float32 (its scalar constants are float32), so an
    activation reaching a linear layer is float32 there, and the layer's float16 weight would be
    promoted to a float32 copy: twice the model's size in memory, then cast back by the float16
    pass. With x cast to float16 first (a no-op pair in torch; cast_optimization removes it from the
    program) the weight is used as it is, and converting costs no copy of the weights.
    """
    return layer(x.float().to(layer.weight.dtype))


class MLP(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(spec.hidden_size, spec.intermediate_size, bias=False)
        self.up_proj = nn.Linear(spec.hidden_size, spec.intermediate_size, bias=False)
        self.down_proj = nn.Linear(spec.intermediate_size, spec.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = F.silu(project(self.gate_proj, x)) * project(self.up_proj, x)
        return project(self.down_proj, hidden)


class DecoderLayer(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.self_attn = Attention(spec)
        self.mlp = MLP(spec)
        self.input_layernorm = RMSNorm(spec.hidden_size, spec.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(spec.hidden_size, spec.rms_norm_eps)


class Backbone(nn.Module):
    """Holds the weights under Hugging Face's names (``model.layers.0.self_attn.q_proj.weight``)."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(spec.vocab_size, spec.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(spec) for _ in range(spec.num_layers))
        self.norm = RMSNorm(spec.hidden_size, spec.rms_norm_eps)


def _rotate_half(x: torch.Tensor, half: int) -> torch.Tensor:
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class StatefulCausalLM(nn.Module):
    """A Llama/Mistral decoder whose kv-cache lives in two registered buffers (Core ML states)."""

    def __init__(
        self,
        spec: ModelSpec,
        *,
        context_length: int,
        last_logits_only: bool = False,
        cache_dtype: torch.dtype = torch.float16,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.context_length = context_length
        self.last_logits_only = last_logits_only
        self.model = Backbone(spec)
        self.lm_head = nn.Linear(spec.hidden_size, spec.vocab_size, bias=False)
        if spec.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        cache_shape = (spec.num_layers, 1, spec.num_kv_heads, context_length, spec.head_dim)
        self.register_buffer("keyCache", torch.zeros(cache_shape, dtype=cache_dtype))
        self.register_buffer("valueCache", torch.zeros(cache_shape, dtype=cache_dtype))
        positions = torch.arange(context_length, dtype=torch.float64)
        angles = torch.outer(positions, rope_inverse_frequencies(spec))
        angles = torch.cat((angles, angles), dim=-1)
        self.register_buffer("rope_cos", angles.cos().float(), persistent=False)
        self.register_buffer("rope_sin", angles.sin().float(), persistent=False)

    def reset_cache(self, *, end: int | None = None) -> None:
        """Zero the caches in place, or only their first ``end`` positions (tracing touches no
        others: zeroing all of a 2048-token cache would make all of it resident for nothing)."""
        self.keyCache[:, :, :, :end].zero_()
        self.valueCache[:, :, :, :end].zero_()

    def forward(self, input_ids: torch.Tensor, causal_mask: torch.Tensor) -> torch.Tensor:
        spec = self.spec
        length = input_ids.shape[1]
        end = causal_mask.shape[-1]
        past = end - length
        dtype = self.model.embed_tokens.weight.dtype
        mask = causal_mask.to(dtype)
        cos = self.rope_cos[past:end].to(dtype)
        sin = self.rope_sin[past:end].to(dtype)
        repeats = spec.num_heads // spec.num_kv_heads
        half = spec.head_dim // 2

        hidden = self.model.embed_tokens(input_ids)
        for index, layer in enumerate(self.model.layers):
            attention = layer.self_attn
            x = layer.input_layernorm(hidden)
            q = (
                project(attention.q_proj, x)
                .view(1, length, spec.num_heads, spec.head_dim)
                .transpose(1, 2)
            )
            k = project(attention.k_proj, x).view(1, length, spec.num_kv_heads, spec.head_dim)
            v = project(attention.v_proj, x).view(1, length, spec.num_kv_heads, spec.head_dim)
            k = k.transpose(1, 2)
            v = v.transpose(1, 2)
            q = q * cos + _rotate_half(q, half) * sin
            k = k * cos + _rotate_half(k, half) * sin
            self.keyCache[index : index + 1, :, :, past:end, :] = k.unsqueeze(0).to(
                self.keyCache.dtype
            )
            self.valueCache[index : index + 1, :, :, past:end, :] = v.unsqueeze(0).to(
                self.valueCache.dtype
            )
            keys = self.keyCache[index, :, :, :end, :].to(dtype)
            values = self.valueCache[index, :, :, :end, :].to(dtype)
            if repeats > 1:
                grouped = (1, spec.num_kv_heads, repeats, end, spec.head_dim)
                keys = keys.unsqueeze(2).expand(grouped).reshape(1, spec.num_heads, end, -1)
                values = values.unsqueeze(2).expand(grouped).reshape(1, spec.num_heads, end, -1)
            # Attention in float32 terms: coremltools' torch frontend computes in float32 and reads
            # the float16 states as float32, so the casts make both sides agree; its float16
            # compute-precision pass then turns the whole program into float16.
            attended = F.scaled_dot_product_attention(
                q.float(), keys.float(), values.float(), attn_mask=mask.float()
            ).to(dtype)
            attended = attended.transpose(1, 2).reshape(1, length, spec.num_heads * spec.head_dim)
            hidden = hidden + project(attention.o_proj, attended)
            hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
        if self.last_logits_only:
            hidden = hidden[:, -1:, :]
        return project(self.lm_head, self.model.norm(hidden))


def causal_mask(past: int, length: int, *, dtype: torch.dtype = torch.float16) -> torch.Tensor:
    """The additive mask for ``length`` new tokens after ``past`` cached ones: (1, 1, q, past + q)."""
    rows = torch.arange(length).unsqueeze(1)
    columns = torch.arange(past + length).unsqueeze(0)
    mask = torch.zeros(length, past + length, dtype=torch.float32)
    mask[columns > past + rows] = float("-inf")
    return mask.to(dtype)[None, None]


def untouched_zeros(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """Zeros in a private anonymous memory map: the OS provides a page only when it is written
    (``torch.zeros`` writes every byte). The kv-cache of a 2048-token context is tens of MB that
    a conversion never fills."""
    size = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
    buffer = mmap.mmap(-1, max(size, 1), flags=mmap.MAP_PRIVATE)
    return torch.frombuffer(buffer, dtype=dtype, count=math.prod(shape)).reshape(shape)


def build_stateful_model(
    spec: ModelSpec,
    weights: Mapping[str, torch.Tensor],
    *,
    context_length: int,
    last_logits_only: bool = False,
    cache_dtype: torch.dtype = torch.float16,
) -> StatefulCausalLM:
    """Build the module on the meta device and adopt ``weights`` without copying them."""
    with torch.device("meta"):
        module = StatefulCausalLM(
            spec,
            context_length=context_length,
            last_logits_only=last_logits_only,
            cache_dtype=cache_dtype,
        )
    expected = {name for name, _ in module.named_parameters(remove_duplicate=True)}
    # Tensors the module has no place for change the model (biases, extra norms, adapters):
    # refused, not dropped. Only the rotary tables some checkpoints store are recomputed here.
    unexpected = sorted(
        name
        for name in weights
        if name not in expected
        and not name.endswith("rotary_emb.inv_freq")
        and not (name == "lm_head.weight" and spec.tie_word_embeddings)
    )
    if unexpected:
        raise ConversionError(
            f"the checkpoint has {len(unexpected)} tensors a plain Llama/Mistral has not "
            f"(first: {unexpected[0]}); coreml-chat cannot convert them and will not drop them"
        )
    state = {name: tensor for name, tensor in weights.items() if name in expected}
    if spec.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    missing = sorted(expected - set(state))
    if missing:
        raise ConversionError(
            f"the weights lack {len(missing)} tensors the architecture needs "
            f"(first: {missing[0]}); is the checkpoint complete?"
        )
    for name, tensor in state.items():
        wanted = dict(module.named_parameters())[name].shape
        if tuple(tensor.shape) != tuple(wanted):
            raise ConversionError(
                f"weight {name} has shape {tuple(tensor.shape)}, the config implies {tuple(wanted)}"
            )
    module.load_state_dict(state, strict=False, assign=True)
    if spec.tie_word_embeddings:
        module.lm_head.weight = module.model.embed_tokens.weight
    # Buffers were made on the meta device: materialise them for real.
    cache_shape = (spec.num_layers, 1, spec.num_kv_heads, context_length, spec.head_dim)
    module.keyCache = untouched_zeros(cache_shape, cache_dtype)
    module.valueCache = untouched_zeros(cache_shape, cache_dtype)
    positions = torch.arange(context_length, dtype=torch.float64)
    angles = torch.outer(positions, rope_inverse_frequencies(spec))
    angles = torch.cat((angles, angles), dim=-1)
    module.rope_cos = angles.cos().float()
    module.rope_sin = angles.sin().float()
    return module.eval()
