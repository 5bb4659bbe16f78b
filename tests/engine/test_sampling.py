"""Samplers: determinism, and the distribution properties each filter promises."""

from __future__ import annotations

import numpy as np

from engine.messages import GenerationConfig
from engine.sampling import apply_repetition_penalty, candidates, make_sampler

VOCAB = 32768
LOGITS = np.random.default_rng(0).standard_normal(VOCAB).astype(np.float32) * 3


def _draws(config: GenerationConfig, count: int = 300, history=()) -> list[int]:
    sampler = make_sampler(config)
    return [sampler(LOGITS, list(history)) for _ in range(count)]


def test_greedy_is_argmax():
    assert _draws(GenerationConfig(temperature=0.0), 3) == [int(LOGITS.argmax())] * 3


def test_same_seed_same_tokens_other_seed_other_tokens():
    config = GenerationConfig(temperature=1.0, top_p=0.95, seed=42)
    assert _draws(config) == _draws(config)
    assert _draws(config) != _draws(GenerationConfig(temperature=1.0, top_p=0.95, seed=43))


def test_top_k_never_picks_outside_the_k_best():
    top = set(np.argsort(-LOGITS)[:5].tolist())
    draws = _draws(GenerationConfig(temperature=2.0, top_k=5, seed=1), 500)
    assert set(draws) <= top and len(set(draws)) > 1


def test_top_p_keeps_the_smallest_set_with_that_mass():
    ids, probs = candidates(LOGITS, temperature=1.0, top_k=0, top_p=0.5, min_p=0.0)
    full = np.exp(LOGITS - LOGITS.max())
    full /= full.sum()
    order = np.argsort(-full)
    needed = int(np.searchsorted(np.cumsum(full[order]), 0.5)) + 1
    assert set(ids.tolist()) == set(order[:needed].tolist())
    assert np.isclose(probs.sum(), 1.0)


def test_min_p_drops_tokens_below_the_fraction_of_the_best():
    ids, _probs = candidates(LOGITS, temperature=1.0, top_k=0, top_p=1.0, min_p=0.2)
    full = np.exp(LOGITS - LOGITS.max())
    assert set(ids.tolist()) == set(np.flatnonzero(full >= 0.2 * full.max()).tolist())


def test_repetition_penalty_lowers_a_repeated_token():
    best = int(LOGITS.argmax())
    penalised = apply_repetition_penalty(LOGITS, [best], 1.5)
    assert penalised[best] < LOGITS[best]
    negative = int(LOGITS.argmin())
    assert apply_repetition_penalty(LOGITS, [negative], 1.5)[negative] < LOGITS[negative]
    assert apply_repetition_penalty(LOGITS, [best], 1.0) is LOGITS
