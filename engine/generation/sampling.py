"""Token samplers: small composable steps on float32 logits, as in mlx-lm's sample_utils.

``make_sampler(config)`` applies the logits processors in order (repetition penalty; others plug in
the same way: a grammar's token mask, a logit bias), then temperature, top-k, and one draw under
top-p and min-p from a seeded generator (same seed, same text). Temperature 0 is greedy. No step
sorts the vocabulary: top-k partitions, and the draw (``draw_binned``) sorts only the few tokens of
one histogram bin.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from engine.messages import GenerationConfig

Sampler = Callable[[np.ndarray, Sequence[int]], int]

# Every float16 value as float32, indexed by its bits. NumPy converts float16 one element at a time
# (about 3.5 ns each here: 0.11 ms for a 32768 vocabulary, a third of the time per token); a
# gather through this 256 KB table does it in half that, and exactly.
_HALF_TO_FLOAT = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)


def to_float32(logits: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``logits`` as float32 (into ``out`` when given); float16 goes through a lookup table."""
    if logits.dtype == np.float16:
        bits = np.ascontiguousarray(logits).view(np.uint16)
        return np.take(_HALF_TO_FLOAT, bits, out=out, mode="clip")  # clip: no bounds pass
    if out is None:
        return logits.astype(np.float32)  # a copy: callers may write to it
    np.copyto(out, logits, casting="same_kind")
    return out


LogitsProcessor = Callable[[np.ndarray, Sequence[int]], np.ndarray]
"""``processor(logits, history) -> logits``: float32 logits of the whole vocabulary (the sampler's
own buffer: a processor may change them in place) and the tokens so far; mlx-lm's shape."""


def repetition_penalty(penalty: float) -> LogitsProcessor:
    """CTRL's penalty: positive logits of tokens seen so far divided by ``penalty``, negative ones
    multiplied by it."""

    def process(logits: np.ndarray, history: Sequence[int]) -> np.ndarray:
        if not history:
            return logits
        seen = np.fromiter(set(history), dtype=np.int64)
        seen = seen[(seen >= 0) & (seen < logits.shape[-1])]
        values = logits[seen]
        logits[seen] = np.where(values > 0, values / penalty, values * penalty)
        return logits

    return process


def presence_frequency_penalty(presence: float, frequency: float) -> LogitsProcessor:
    """OpenAI's penalties: ``logits[j] -= count[j] * frequency + (count[j] > 0) * presence``,
    ``count`` the times token j is already in the answer."""

    def process(logits: np.ndarray, history: Sequence[int]) -> np.ndarray:
        if not history:
            return logits
        seen, counts = np.unique(np.asarray(history, dtype=np.int64), return_counts=True)
        inside = (seen >= 0) & (seen < logits.shape[-1])
        seen, counts = seen[inside], counts[inside]
        logits[seen] -= (counts * frequency + presence).astype(np.float32)
        return logits

    return process


def logit_bias(biases: Sequence[tuple[int, float]]) -> LogitsProcessor:
    """OpenAI's logit_bias: each bias added to its token's logit (ids past the vocabulary are
    ignored; -100 all but bans a token, +100 all but forces it)."""
    ids = np.asarray([token for token, _ in biases], dtype=np.int64)
    values = np.asarray([bias for _, bias in biases], dtype=np.float32)

    def process(logits: np.ndarray, history: Sequence[int]) -> np.ndarray:
        inside = ids < logits.shape[-1]
        np.add.at(logits, ids[inside], values[inside])
        return logits

    return process


def make_logits_processors(config: GenerationConfig) -> list[LogitsProcessor]:
    """The processors ``config`` asks for, in the order they apply (before temperature)."""
    processors: list[LogitsProcessor] = []
    if config.repetition_penalty != 1.0:
        processors.append(repetition_penalty(config.repetition_penalty))
    if config.presence_penalty or config.frequency_penalty:
        processors.append(
            presence_frequency_penalty(config.presence_penalty, config.frequency_penalty)
        )
    if config.logit_bias:
        processors.append(logit_bias(config.logit_bias))
    return processors


# The sampler's histogram: bins of 1/16 nat of log-probability below the best token (64 nats in
# all; anything lower shares the last bin).
_PER_NAT = 16.0
_DRAW_BINS = 1024


class DrawBuffers:
    """Arrays ``draw_binned`` reuses from token to token: allocating a fresh vocabulary-sized
    array each time costs more than the arithmetic (page faults on every new mapping)."""

    def __init__(self) -> None:
        self.size = 0

    def ensure(self, size: int) -> None:
        if size != self.size:
            self.size = size
            self.scaled = np.empty(size, dtype=np.float32)
            self.weights = np.empty(size, dtype=np.float32)
            self.scaled_bins = np.empty(size, dtype=np.float32)
            self.bins = np.empty(size, dtype=np.intp)


def draw_binned(
    scaled: np.ndarray,
    *,
    top_p: float,
    min_p: float,
    uniform: float,
    buffers: DrawBuffers | None = None,
) -> int:
    """Draw a token from ``softmax(scaled)`` under top-p and min-p, given a uniform number in [0, 1).

    The distribution of softmax, top-p, then min-p (the sorting reference in
    ``tests/unit/engine/test_sampling.py``), in a few passes over the vocabulary
    and none of them a sort: the tokens' weights are summed per bin of log-probability; the bins'
    running total finds the bin where top-p's threshold falls (only its few tokens are sorted) and
    the bin the draw lands in (only its tokens are summed one by one).
    """
    buffers = buffers or DrawBuffers()
    buffers.ensure(scaled.shape[-1])
    peak = scaled.max()
    weights = np.subtract(scaled, peak, out=buffers.weights)  # log-weights, <= 0
    position = np.multiply(weights, np.float32(-_PER_NAT), out=buffers.scaled_bins)
    np.exp(weights, out=weights)
    bins = buffers.bins  # the bin index: truncated toward zero, in the same pass
    np.minimum(position, np.float32(_DRAW_BINS - 1), out=bins, casting="unsafe")
    cumulative = np.cumsum(np.bincount(bins, weights=weights, minlength=_DRAW_BINS))
    total = float(cumulative[-1])
    if top_p >= 1.0:
        boundary, before, kept = _DRAW_BINS, total, np.empty(0, dtype=np.intp)
    else:
        boundary = min(int(np.searchsorted(cumulative, top_p * total)), _DRAW_BINS - 1)
        before = float(cumulative[boundary - 1]) if boundary > 0 else 0.0
        members = np.flatnonzero(bins == boundary)
        member_weights = weights[members]
        descending = np.sort(member_weights)[::-1]
        running = np.cumsum(descending, dtype=np.float64)
        count = min(int(np.searchsorted(running, top_p * total - before)) + 1, len(descending))
        kept = members[member_weights >= descending[count - 1]]
    if min_p > 0.0:  # after top-p: the best token's weight is 1
        weights[weights < np.float32(min_p)] = 0.0
        cumulative = np.cumsum(np.bincount(bins, weights=weights, minlength=_DRAW_BINS))
        before = float(cumulative[boundary - 1]) if boundary > 0 else 0.0
    target = uniform * (before + float(weights[kept].sum(dtype=np.float64)))
    if target < before:
        chosen_bin = min(int(np.searchsorted(cumulative, target, side="right")), boundary - 1)
        in_bin = np.flatnonzero(bins == chosen_bin)
        target -= float(cumulative[chosen_bin - 1]) if chosen_bin > 0 else 0.0
    else:
        in_bin, target = kept, target - before
    in_bin = in_bin[weights[in_bin] > 0]
    running = np.cumsum(weights[in_bin], dtype=np.float64)
    index = min(int(np.searchsorted(running, target, side="right")), len(in_bin) - 1)
    return int(in_bin[index])


def make_sampler(
    config: GenerationConfig,
    *,
    seed: int | None = None,
    processors: Sequence[LogitsProcessor] | None = None,
) -> Sampler:
    """``sampler(logits, history) -> token``: the logits converted once to float32 (into a reused
    buffer; the caller's array is left alone), the logits processors applied in order
    (``make_logits_processors(config)`` unless ``processors`` is given), then greedy at temperature
    0, else a seeded draw under top-k, top-p and min-p (``draw_binned``: the one top-p path)."""
    generator = np.random.default_rng(config.seed if seed is None else seed)
    steps = list(make_logits_processors(config) if processors is None else processors)
    inverse_temperature = np.float32(1.0 / config.temperature) if config.temperature > 0 else 0.0
    buffers = DrawBuffers()
    top_k_buffers = DrawBuffers()

    def processed(logits: np.ndarray, history: Sequence[int]) -> np.ndarray:
        buffers.ensure(logits.shape[-1])
        values = to_float32(logits, buffers.scaled)
        for step in steps:
            values = step(values, history)
        return values

    def greedy(logits: np.ndarray, history: Sequence[int]) -> int:
        return int(np.argmax(processed(logits, history)))

    def sample(logits: np.ndarray, history: Sequence[int]) -> int:
        scaled = processed(logits, history)
        np.multiply(scaled, inverse_temperature, out=scaled)
        ids = None
        if 0 < config.top_k < scaled.shape[-1]:
            ids = np.argpartition(scaled, -config.top_k)[-config.top_k :]
            scaled = scaled[ids]
        token = draw_binned(
            scaled,
            top_p=config.top_p,
            min_p=config.min_p,
            uniform=generator.random(),
            buffers=buffers if ids is None else top_k_buffers,
        )
        return token if ids is None else int(ids[token])

    return greedy if config.temperature <= 0.0 else sample
