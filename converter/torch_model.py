"""Our own stateful decoder module: the torch program the converter traces, for every family.

Built from a Hugging Face config and its weights, not by patching transformers (its internals change
between versions). The interface is the one of DESIGN.md's model folder:

- ``forward(input_ids int32 (1, q), causal_mask float16 (1, 1, q, end)) -> logits``
- ``end`` is the number of tokens in the cache after this call, so new keys and values are written in
  place into the ``keyCache``/``valueCache`` buffers at ``[end - q : end]``, and the rotary positions
  are ``end - q .. end - 1``: both are taken from the inputs' shapes, which stay symbolic in the trace.
- attention is one fused ``scaled_dot_product_attention`` without an explicit ``scale`` (coremltools
  keeps it fused only then), over the cache's first ``end`` positions with the caller's mask.
- the RMSNorm divides by the largest magnitude first, so ``x * x`` cannot overflow in float16.
- a family is a set of switches in ``ModelSpec`` (``converter.model_spec``), never a copy of this
  module. Sliding-window layers mask keys older than the window inside the module (the caller's mask
  is causal only); soft-capped attention (Gemma 2) takes an explicit path, since the fused op cannot
  express it.
"""

from __future__ import annotations

import math
import mmap
from collections.abc import Mapping

import torch
from torch import nn
from torch.nn import functional as F

from converter.errors import ConversionError
from converter.model_spec import (  # noqa: F401 (re-exported)
    SUPPORTED_ARCHITECTURES,
    ModelSpec,
    RoPE,
    unsupported_features,
)


def rope_inverse_frequencies(rope: RoPE, dims: int) -> torch.Tensor:
    """The rotary inverse frequencies over ``dims`` rotated dimensions, scaled as the config asks."""
    exponents = torch.arange(0, dims, 2, dtype=torch.float64) / dims
    inv_freq = 1.0 / (rope.theta**exponents)
    scaling = dict(rope.scaling)
    if rope.rope_type == "longrope":  # the short factors: see model_spec._longrope
        short = torch.tensor(scaling["short_factor"], dtype=torch.float64)
        return inv_freq / short
    if rope.rope_type == "linear":
        return inv_freq / float(scaling["factor"])
    if rope.rope_type != "llama3":
        return inv_freq
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


def rope_tables(rope: RoPE, dims: int, context_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin (context_length, dims), float32, in transformers' half-split layout."""
    positions = torch.arange(context_length, dtype=torch.float64)
    angles = torch.outer(positions, rope_inverse_frequencies(rope, dims))
    angles = torch.cat((angles, angles), dim=-1)
    factor = rope.attention_factor
    return (angles.cos() * factor).float(), (angles.sin() * factor).float()


class RMSNorm(nn.Module):
    """RMSNorm that stays finite in float16: scale by the row's largest magnitude before squaring.

    Its weight is the factor itself: Gemma's ``(1 + w)`` is added at load (``build_stateful_model``)."""

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
        hidden, head_dim = spec.hidden_size, spec.head_dim
        self.q_proj = nn.Linear(hidden, spec.num_heads * head_dim, bias=spec.qkv_bias)
        self.k_proj = nn.Linear(hidden, spec.num_kv_heads * head_dim, bias=spec.qkv_bias)
        self.v_proj = nn.Linear(hidden, spec.num_kv_heads * head_dim, bias=spec.qkv_bias)
        self.o_proj = nn.Linear(spec.num_heads * head_dim, hidden, bias=spec.o_bias)
        if spec.qk_norm:
            self.q_norm = RMSNorm(head_dim, spec.rms_norm_eps)
            self.k_norm = RMSNorm(head_dim, spec.rms_norm_eps)


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
        self.activation = spec.activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = project(self.gate_proj, x)
        tanh = self.activation == "gelu_tanh"
        gate = F.gelu(gate, approximate="tanh") if tanh else F.silu(gate)
        return project(self.down_proj, gate * project(self.up_proj, x))


class DecoderLayer(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.self_attn = Attention(spec)
        self.mlp = MLP(spec)
        # Norms that read the residual stream see it times residual_scale: eps scales with it.
        stream_eps = spec.rms_norm_eps * spec.residual_scale**2
        self.input_layernorm = RMSNorm(spec.hidden_size, stream_eps)
        if spec.sandwich_norms:
            self.post_attention_layernorm = RMSNorm(spec.hidden_size, spec.rms_norm_eps)
            self.pre_feedforward_layernorm = RMSNorm(spec.hidden_size, stream_eps)
            self.post_feedforward_layernorm = RMSNorm(spec.hidden_size, spec.rms_norm_eps)
        else:
            self.post_attention_layernorm = RMSNorm(spec.hidden_size, stream_eps)


class Backbone(nn.Module):
    """Holds the weights under Hugging Face's names (``model.layers.0.self_attn.q_proj.weight``)."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(spec.vocab_size, spec.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(spec) for _ in range(spec.num_layers))
        self.norm = RMSNorm(spec.hidden_size, spec.rms_norm_eps * spec.residual_scale**2)


def _rotate_half(x: torch.Tensor, half: int) -> torch.Tensor:
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, dims: int) -> torch.Tensor:
    """RoPE on the first ``dims`` dimensions of each head (all of them unless partial)."""
    if dims == x.shape[-1]:
        return x * cos + _rotate_half(x, dims // 2) * sin
    rotated, passed = x[..., :dims], x[..., dims:]
    rotated = rotated * cos + _rotate_half(rotated, dims // 2) * sin
    return torch.cat((rotated, passed), dim=-1)


class StatefulCausalLM(nn.Module):
    """A decoder whose kv-cache lives in two registered buffers (Core ML states)."""

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
        self._make_tables()

    @property
    def rotary_dim(self) -> int:
        return self.spec.rotary_dim or self.spec.head_dim

    def _make_tables(self) -> None:
        """RoPE tables (one per layer type when they differ) and the positions of the window mask."""
        spec = self.spec
        cos, sin = rope_tables(spec.rope, self.rotary_dim, self.context_length)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        if spec.local_rope is not None:
            cos, sin = rope_tables(spec.local_rope, self.rotary_dim, self.context_length)
            self.register_buffer("local_rope_cos", cos, persistent=False)
            self.register_buffer("local_rope_sin", sin, persistent=False)
        if spec.sliding_window:
            positions = torch.arange(self.context_length, dtype=torch.int32)
            self.register_buffer("positions", positions, persistent=False)

    def reset_cache(self, *, end: int | None = None) -> None:
        """Zero the caches in place, or only their first ``end`` positions (tracing touches no
        others: zeroing all of a 2048-token cache would make all of it resident for nothing)."""
        self.keyCache[:, :, :, :end].zero_()
        self.valueCache[:, :, :, :end].zero_()

    def _window_mask(self, mask: torch.Tensor, past: int, end: int) -> torch.Tensor:
        """The caller's causal mask with keys at or beyond the window behind each query masked
        (transformers keeps key j for query i when j > i - window)."""
        rows = self.positions[past:end].unsqueeze(1)
        columns = self.positions[:end].unsqueeze(0)
        outside = (rows - columns) >= self.spec.sliding_window
        return torch.where(outside, torch.full_like(mask, float("-inf")), mask)

    def _attend(self, q, keys, values, mask) -> torch.Tensor:
        spec = self.spec
        if not spec.attn_softcap:
            if spec.query_scale:  # scale q instead: an explicit scale would unfuse the op
                q = q * (spec.query_scale * math.sqrt(spec.head_dim))
            # Attention in float32 terms: coremltools' torch frontend computes in float32 and reads
            # the float16 states as float32, so the casts make both sides agree; its float16
            # compute-precision pass then turns the whole program into float16.
            return F.scaled_dot_product_attention(
                q.float(), keys.float(), values.float(), attn_mask=mask.float()
            )
        # Soft-capped scores (Gemma 2): cap * tanh(scores / cap), which the fused op cannot do.
        scale = spec.query_scale or spec.head_dim**-0.5
        scores = torch.matmul(q.float() * scale, keys.float().transpose(-1, -2))
        scores = torch.tanh(scores / spec.attn_softcap) * spec.attn_softcap + mask.float()
        return torch.matmul(torch.softmax(scores, dim=-1), values.float())

    def forward(self, input_ids: torch.Tensor, causal_mask: torch.Tensor) -> torch.Tensor:
        spec = self.spec
        length = input_ids.shape[1]
        end = causal_mask.shape[-1]
        past = end - length
        dtype = self.model.embed_tokens.weight.dtype
        mask = causal_mask.to(dtype)
        window_mask = self._window_mask(mask, past, end) if spec.sliding_window else mask
        tables = {False: (self.rope_cos[past:end].to(dtype), self.rope_sin[past:end].to(dtype))}
        if spec.local_rope is not None:
            tables[True] = (
                self.local_rope_cos[past:end].to(dtype),
                self.local_rope_sin[past:end].to(dtype),
            )
        repeats = spec.num_heads // spec.num_kv_heads
        dims = self.rotary_dim

        hidden = self.model.embed_tokens(input_ids)
        if spec.embedding_scale != 1.0:
            hidden = hidden * spec.embedding_scale
        for index, layer in enumerate(self.model.layers):
            attention = layer.self_attn
            sliding = spec.is_sliding(index)
            cos, sin = tables[sliding and spec.local_rope is not None]
            x = layer.input_layernorm(hidden)
            q = project(attention.q_proj, x).view(1, length, spec.num_heads, spec.head_dim)
            k = project(attention.k_proj, x).view(1, length, spec.num_kv_heads, spec.head_dim)
            v = project(attention.v_proj, x).view(1, length, spec.num_kv_heads, spec.head_dim)
            if spec.qk_norm:
                q = attention.q_norm(q)
                k = attention.k_norm(k)
            q = _rotate(q.transpose(1, 2), cos, sin, dims)
            k = _rotate(k.transpose(1, 2), cos, sin, dims)
            v = v.transpose(1, 2)
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
            attended = self._attend(q, keys, values, window_mask if sliding else mask).to(dtype)
            attended = attended.transpose(1, 2).reshape(1, length, spec.num_heads * spec.head_dim)
            attended = project(attention.o_proj, attended)
            if spec.sandwich_norms:
                hidden = hidden + layer.post_attention_layernorm(attended)
                feed = layer.mlp(layer.pre_feedforward_layernorm(hidden))
                hidden = hidden + layer.post_feedforward_layernorm(feed)
            else:
                hidden = hidden + attended
                hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
        if self.last_logits_only:
            hidden = hidden[:, -1:, :]
        logits = project(self.lm_head, self.model.norm(hidden))
        if spec.final_softcap:
            logits = torch.tanh(logits.float() / spec.final_softcap) * spec.final_softcap
        return logits


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
    norms_include_offset: bool = False,
) -> StatefulCausalLM:
    """Build the module on the meta device and adopt ``weights`` without copying them (the
    norms, a few vectors, are turned into the factors the module multiplies by)."""
    weights = split_fused(spec, weights)
    weights = {**weights, **_norm_factors(spec, weights, norms_include_offset=norms_include_offset)}
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
            f"the checkpoint has {len(unexpected)} tensors a {spec.architecture} has not "
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
    module._make_tables()
    return module.eval()


def fused_parts(spec: ModelSpec) -> dict[str, tuple[tuple[str, int], ...]]:
    """Phi-3's fused projections: each part's name and rows, in order."""
    width = spec.head_dim
    return {
        "self_attn.qkv_proj": (
            ("self_attn.q_proj", spec.num_heads * width),
            ("self_attn.k_proj", spec.num_kv_heads * width),
            ("self_attn.v_proj", spec.num_kv_heads * width),
        ),
        "mlp.gate_up_proj": (
            ("mlp.gate_proj", spec.intermediate_size),
            ("mlp.up_proj", spec.intermediate_size),
        ),
    }


def split_fused(spec: ModelSpec, weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Fused projections split into the module's by rows (views: nothing is copied)."""
    if not spec.fused_projections:
        return dict(weights)
    parts = fused_parts(spec)
    split: dict[str, torch.Tensor] = {}
    for name, tensor in weights.items():
        layer, _, kind = name.rpartition(".")
        key = next((k for k in parts if layer.endswith(k)), None)
        if key is None:
            split[name] = tensor
            continue
        base = layer[: -len(key)]
        expected = sum(rows for _, rows in parts[key])
        if tensor.shape[0] != expected:
            raise ConversionError(
                f"weight {name} has {tensor.shape[0]} rows, the config implies {expected}"
            )
        start = 0
        for part, rows in parts[key]:
            split[f"{base}{part}.{kind}"] = tensor.narrow(0, start, rows)
            start += rows
    return split


def _norm_factors(
    spec: ModelSpec, weights: Mapping[str, torch.Tensor], *, norms_include_offset: bool
) -> dict[str, torch.Tensor]:
    """The norms' weights as the factors the module multiplies by: Gemma's ``1 + w`` (llama.cpp
    stores it so already: ``norms_include_offset``), and the norms that write into the residual
    stream times ``residual_scale`` (keeping Gemma's stream in float16's range). In float32, then
    back to the tensor's dtype."""
    offset = 0.0 if norms_include_offset else spec.norm_offset
    writers = ("post_attention_layernorm.weight", "post_feedforward_layernorm.weight")
    changed = {}
    for name, tensor in weights.items():
        if not name.endswith("norm.weight"):
            continue
        scale = spec.residual_scale if spec.sandwich_norms and name.endswith(writers) else 1.0
        if offset or scale != 1.0:
            changed[name] = ((tensor.float() + offset) * scale).to(tensor.dtype)
    return changed
