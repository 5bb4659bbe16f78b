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


def apply_repetition_penalty(
    logits: np.ndarray, history: Sequence[int], penalty: float
) -> np.ndarray:
    """CTRL's penalty: divide positive logits of seen tokens by ``penalty``, multiply negative ones."""
    if penalty == 1.0 or not history:
        return logits
    seen = np.fromiter(set(history), dtype=np.int64)
    seen = seen[(seen >= 0) & (seen < logits.shape[-1])]
    values = logits[seen]
    logits = logits.copy()
    logits[seen] = np.where(values > 0, values / penalty, values * penalty)
    return logits


def _softmax(values: np.ndarray) -> np.ndarray:
    shifted = np.exp(values - values.max())
    return shifted / shifted.sum()


def candidates(
    logits: np.ndarray, *, temperature: float, top_k: int, top_p: float, min_p: float
) -> tuple[np.ndarray, np.ndarray]:
    """(token ids, probabilities) that survive the filters, renormalised (in no particular order).

    No full sort of the vocabulary: top-k partitions; top-p and min-p first keep the tokens above
    a small fraction of the best one (a few dozen in a real model's distribution), and widen that
    only when those do not hold the mass top-p asks for.
    """
    scaled = logits.astype(np.float32, copy=False) / np.float32(temperature)
    vocab = scaled.shape[-1]
    if 0 < top_k < vocab:
        ids = np.argpartition(scaled, -top_k)[-top_k:]
        weights = np.exp(scaled[ids] - scaled[ids].max())
        probs = weights / weights.sum()
    else:
        weights = np.exp(scaled - scaled.max())
        everything = weights / weights.sum()
        if top_p >= 1.0 and min_p <= 0.0:
            return np.arange(vocab), everything
        peak = everything.max()
        for cutoff in (max(min_p, 1e-4), max(min_p, 1e-8), min_p):
            ids = np.flatnonzero(everything >= cutoff * peak)
            if top_p >= 1.0 or everything[ids].sum() >= top_p or cutoff == min_p:
                break
        probs = everything[ids]
    # Which tokens top-p keeps needs the sorted probabilities, not a sorted index: sort values
    # (cheaper than argsort), find the threshold, and keep the ids at or above it.
    if top_p < 1.0:
        descending = np.sort(probs)[::-1]
        keep = int(np.searchsorted(np.cumsum(descending), top_p)) + 1
        threshold = descending[min(keep, len(descending)) - 1]
        selected = probs >= threshold
        ids, probs = ids[selected], probs[selected]
    if min_p > 0.0:
        selected = probs >= min_p * probs.max()
        ids, probs = ids[selected], probs[selected]
    return ids, probs / probs.sum()


def make_sampler(config: GenerationConfig, *, seed: int | None = None) -> Sampler:
    generator = np.random.default_rng(config.seed if seed is None else seed)
    penalty = config.repetition_penalty

    def greedy(logits: np.ndarray, history: Sequence[int]) -> int:
        return int(np.argmax(apply_repetition_penalty(logits, history, penalty)))

    def sample(logits: np.ndarray, history: Sequence[int]) -> int:
        logits = apply_repetition_penalty(logits, history, penalty)
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

    return greedy if config.temperature <= 0.0 else sample
