"""Token samplers: small composable steps on float32 logits, as in mlx-lm's sample_utils.

``make_sampler(config)`` composes, in order: repetition penalty, temperature, top-k, top-p, min-p,
then a draw from a seeded generator (same seed, same text). Temperature 0 is greedy. Everything
works on the few candidates left after top-k or a partial sort, never a full sort of the vocabulary
when it can be avoided.
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


def apply_repetition_penalty(
    logits: np.ndarray, history: Sequence[int], penalty: float
) -> np.ndarray:
    """CTRL's penalty: divide positive logits of seen tokens by ``penalty``, multiply negative ones."""
    if penalty == 1.0 or not history:
        return logits
    return _penalise(to_float32(logits), history, penalty)  # on a float32 copy


def _penalise(logits: np.ndarray, history: Sequence[int], penalty: float) -> np.ndarray:
    """The repetition penalty applied in place to float32 ``logits``; returns them."""
    if penalty == 1.0 or not history:
        return logits
    seen = np.fromiter(set(history), dtype=np.int64)
    seen = seen[(seen >= 0) & (seen < logits.shape[-1])]
    values = logits[seen]
    logits[seen] = np.where(values > 0, values / penalty, values * penalty)
    return logits


def candidates(
    logits: np.ndarray, *, temperature: float, top_k: int, top_p: float, min_p: float
) -> tuple[np.ndarray, np.ndarray]:
    """(token ids, probabilities) that survive the filters, renormalised (in no particular order).

    Never a full sort of the vocabulary: top-k partitions, min-p compares with the best token, and
    top-p finds its threshold from a histogram of the log-probabilities (``_top_p_mask``).
    """
    logits = logits if logits.dtype == np.float32 else to_float32(logits)
    scaled = logits / np.float32(temperature)
    vocab = scaled.shape[-1]
    if 0 < top_k < vocab:
        ids = np.argpartition(scaled, -top_k)[-top_k:]
        scaled = scaled[ids]
    else:
        ids = None
    weights = np.exp(scaled - scaled.max())
    probs = weights / weights.sum()
    keep = None
    if top_p < 1.0:
        keep = _top_p_mask(scaled, probs, top_p)
    if min_p > 0.0:
        above = probs >= np.float32(min_p) * probs.max()
        keep = above if keep is None else keep & above
    if keep is not None:
        selected = np.flatnonzero(keep)
        ids = selected if ids is None else ids[selected]
        probs = probs[selected]
    elif ids is None:
        ids = np.arange(vocab)
    return ids, probs / probs.sum()


# Log-probability bins of the top-p histogram: tokens within one bin are sorted, the rest not.
_BINS = 1024
_SMALL = 2048  # below this many candidates a plain sort is as fast


def _top_p_mask(scaled: np.ndarray, probs: np.ndarray, top_p: float) -> np.ndarray:
    """The smallest set of most probable tokens whose mass reaches ``top_p``, as a mask.

    Tokens are put in bins of log-probability (``scaled`` is the log-probability up to a constant);
    the cumulative mass of the bins, best first, shows which bin the threshold falls in; only that
    bin's tokens are sorted. Exact: the same set as sorting everything (ties at the threshold kept).
    """
    if probs.size <= _SMALL:
        return _top_p_by_sorting(probs, top_p)
    peak = scaled.max()
    span = float(min(peak - scaled.min(), 80.0))  # below e^-80 of the best: one last bin
    if span <= 0.0:
        return np.ones(probs.shape, dtype=bool)
    bins = ((peak - scaled) * np.float32((_BINS - 1) / span)).astype(np.intp)
    np.minimum(bins, _BINS - 1, out=bins)
    mass = np.cumsum(np.bincount(bins, weights=probs, minlength=_BINS))
    boundary = min(int(np.searchsorted(mass, top_p)), _BINS - 1)
    before = float(mass[boundary - 1]) if boundary > 0 else 0.0
    members = np.flatnonzero(bins == boundary)
    inside = _top_p_by_sorting(probs[members], (top_p - before) / float(probs[members].sum()))
    keep = bins < boundary
    keep[members[inside]] = True
    return keep


def _top_p_by_sorting(probs: np.ndarray, top_p: float) -> np.ndarray:
    descending = np.sort(probs)[::-1]
    cumulative = np.cumsum(descending)
    count = min(int(np.searchsorted(cumulative, top_p * cumulative[-1])) + 1, len(descending))
    return probs >= descending[count - 1]


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

    The same distribution as ``candidates`` (then drawing), in a few passes over the vocabulary
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
    if min_p > 0.0:  # after top-p (as in ``candidates``): the best token's weight is 1
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


def make_sampler(config: GenerationConfig, *, seed: int | None = None) -> Sampler:
    """``sampler(logits, history) -> token``: greedy at temperature 0, else a seeded draw."""
    generator = np.random.default_rng(config.seed if seed is None else seed)
    penalty = config.repetition_penalty
    inverse_temperature = np.float32(1.0 / config.temperature) if config.temperature > 0 else 0.0
    buffers = DrawBuffers()

    def as_float32(logits: np.ndarray, history: Sequence[int]) -> np.ndarray:
        """The logits converted once into the reused buffer (argmax and everything after are
        slow on float16), the repetition penalty applied there."""
        buffers.ensure(logits.shape[-1])
        return _penalise(to_float32(logits, buffers.scaled), history, penalty)

    def greedy(logits: np.ndarray, history: Sequence[int]) -> int:
        return int(np.argmax(as_float32(logits, history)))

    def sample_top_k(logits: np.ndarray, history: Sequence[int]) -> int:
        logits = as_float32(logits, history)
        ids, probs = candidates(
            logits,
            temperature=config.temperature,
            top_k=config.top_k,
            top_p=config.top_p,
            min_p=config.min_p,
        )
        if len(ids) == 1:
            return int(ids[0])
        index = int(np.searchsorted(np.cumsum(probs), generator.random() * probs.sum()))
        return int(ids[min(index, len(ids) - 1)])

    def sample(logits: np.ndarray, history: Sequence[int]) -> int:
        scaled = as_float32(logits, history)
        np.multiply(scaled, inverse_temperature, out=scaled)
        return draw_binned(
            scaled,
            top_p=config.top_p,
            min_p=config.min_p,
            uniform=generator.random(),
            buffers=buffers,
        )

    if config.temperature <= 0.0:
        return greedy
    return sample_top_k if config.top_k > 0 else sample
