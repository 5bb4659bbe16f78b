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

# Candidates examined before top-p falls back to sorting everything.
_PARTIAL_SORT = 512


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
    """(token ids, probabilities) that survive the filters, probabilities renormalised."""
    scaled = logits.astype(np.float32, copy=False) / np.float32(temperature)
    vocab = scaled.shape[-1]
    if 0 < top_k < vocab:
        ids = np.argpartition(scaled, -top_k)[-top_k:]
    elif top_p < 1.0 and vocab > _PARTIAL_SORT:
        ids = np.argpartition(scaled, -_PARTIAL_SORT)[-_PARTIAL_SORT:]
    else:
        ids = np.arange(vocab)
    # Probabilities over the whole vocabulary, computed only for the candidates.
    peak = scaled.max()
    total = np.exp(scaled - peak).sum()
    probs = np.exp(scaled[ids] - peak) / total
    order = np.argsort(-probs, kind="stable")
    ids, probs = ids[order], probs[order]
    if top_p < 1.0:
        cumulative = np.cumsum(probs)
        if cumulative[-1] < top_p and len(ids) < vocab:  # the partial sort was not enough
            ids = np.argsort(-scaled, kind="stable")
            probs = np.exp(scaled[ids] - peak) / total
            cumulative = np.cumsum(probs)
        keep = int(np.searchsorted(cumulative, top_p)) + 1
        ids, probs = ids[:keep], probs[:keep]
    if min_p > 0.0:
        keep_mask = probs >= min_p * probs[0]
        ids, probs = ids[keep_mask], probs[keep_mask]
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
