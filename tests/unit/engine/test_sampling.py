"""Samplers: determinism, and the distribution properties each filter promises."""

from __future__ import annotations

import numpy as np
import pytest

from engine.generation.sampling import (
    DrawBuffers,
    apply_repetition_penalty,
    candidates,
    draw_binned,
    make_sampler,
    to_float32,
)
from engine.messages import GenerationConfig

VOCAB = 32768
LOGITS = np.random.default_rng(0).standard_normal(VOCAB).astype(np.float32) * 3


def _draws(config: GenerationConfig, count: int = 300, history=()) -> list[int]:
    sampler = make_sampler(config)
    return [sampler(LOGITS, list(history)) for _ in range(count)]


def test_greedy_is_argmax():
    assert _draws(GenerationConfig(temperature=0.0), 3) == [int(LOGITS.argmax())] * 3


def test_float16_conversion_is_exact_for_every_value():
    every = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    expected = every.astype(np.float32)
    converted = to_float32(every)
    assert converted.dtype == np.float32
    np.testing.assert_array_equal(converted, expected)  # NaNs compare equal here
    strided = every[::3]  # not contiguous: converted through a copy
    np.testing.assert_array_equal(
        to_float32(strided, np.empty(strided.size, np.float32)), expected[::3]
    )


def test_float16_logits_sample_as_their_float32_values():
    half = (LOGITS / 3).astype(np.float16)
    as_float = half.astype(np.float32)
    for config in (
        GenerationConfig(temperature=0.0, repetition_penalty=1.0),
        GenerationConfig(temperature=0.0, repetition_penalty=1.3),
        GenerationConfig(temperature=0.8, top_p=0.9, seed=3),
        GenerationConfig(temperature=0.8, top_k=40, top_p=0.9, seed=3),
    ):
        history = [int(as_float.argmax()), 5, 7]
        a, b = make_sampler(config), make_sampler(config)
        assert [a(half, history) for _ in range(50)] == [b(as_float, history) for _ in range(50)]


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


def _binned_counts(logits, *, top_p, min_p, draws=5000):
    uniforms = (np.arange(draws) + 0.5) / draws  # evenly spread: counts are exact to ±1
    buffers = DrawBuffers()
    tokens = [
        draw_binned(logits, top_p=top_p, min_p=min_p, uniform=u, buffers=buffers) for u in uniforms
    ]
    return np.bincount(tokens, minlength=logits.shape[-1]) / draws


@pytest.mark.parametrize("spread", [1.0, 4.0], ids=["flat", "peaked"])
@pytest.mark.parametrize(("top_p", "min_p"), [(0.9, 0.0), (0.7, 0.05)])
def test_binned_draw_has_the_distribution_of_the_filtered_candidates(spread, top_p, min_p):
    logits = np.random.default_rng(7).standard_normal(VOCAB).astype(np.float32) * spread
    ids, probs = candidates(logits, temperature=1.0, top_k=0, top_p=top_p, min_p=min_p)
    expected = np.zeros(VOCAB)
    expected[ids] = probs
    frequencies = _binned_counts(logits, top_p=top_p, min_p=min_p)
    assert set(np.flatnonzero(frequencies)) <= set(ids.tolist())  # never outside the filters
    assert np.abs(frequencies - expected).max() <= 1.01 / 5000


def test_binned_draw_handles_masked_and_single_candidates():
    logits = np.full(VOCAB, -np.inf, dtype=np.float32)
    logits[[5, 9]] = [3.0, 1.0]
    frequencies = _binned_counts(logits, top_p=0.5, min_p=0.0, draws=200)
    assert frequencies[5] == 1.0  # token 5 alone holds more than half the mass
    frequencies = _binned_counts(logits, top_p=1.0, min_p=0.0, draws=1000)
    assert set(np.flatnonzero(frequencies)) == {5, 9}
    assert abs(frequencies[9] - 1 / (1 + np.exp(2.0))) < 2e-3


@pytest.mark.parametrize(
    "config",
    [
        GenerationConfig(temperature=0.0, repetition_penalty=2.0),
        GenerationConfig(temperature=0.1, repetition_penalty=2.0, seed=1),
        GenerationConfig(temperature=0.1, top_k=5, repetition_penalty=2.0, seed=1),
    ],
    ids=["greedy", "sample", "top-k"],
)
def test_the_sampler_applies_the_repetition_penalty(config):
    logits = np.full(VOCAB, -5.0, dtype=np.float32)
    logits[7], logits[11] = 10.0, 8.0  # 7 is far ahead, but seen: 10 / 2 < 8
    sampler = make_sampler(config)
    assert {sampler(logits, []) for _ in range(20)} == {7}
    assert {sampler(logits, [7, 3]) for _ in range(20)} == {11}
    assert logits[7] == 10.0  # the caller's logits are left alone
