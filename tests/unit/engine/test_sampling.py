"""Samplers: determinism, and the distribution properties each filter promises."""

from __future__ import annotations

import numpy as np
import pytest

from engine.generation.sampling import (
    DrawBuffers,
    draw_binned,
    make_logits_processors,
    make_sampler,
    repetition_penalty,
    to_float32,
)
from engine.messages import GenerationConfig

VOCAB = 32768
LOGITS = np.random.default_rng(0).standard_normal(VOCAB).astype(np.float32) * 3


def candidates(
    logits: np.ndarray, *, temperature: float, top_k: int, top_p: float, min_p: float
) -> tuple[np.ndarray, np.ndarray]:
    """The reference: (token ids, renormalised probabilities) that survive top-k, top-p (the
    smallest set of most probable tokens reaching ``top_p``, ties at the threshold kept), then
    min-p, by sorting everything. Slow and plain: what the sampler's one draw path must equal."""
    scaled = logits.astype(np.float64) / temperature
    ids = np.arange(scaled.shape[-1])
    if 0 < top_k < len(ids):
        ids = np.argsort(-scaled, kind="stable")[:top_k]
    weights = np.exp(scaled[ids] - scaled[ids].max())
    probs = weights / weights.sum()
    keep = np.ones(len(ids), dtype=bool)
    if top_p < 1.0:
        descending = np.sort(probs)[::-1]
        count = min(int(np.searchsorted(np.cumsum(descending), top_p)) + 1, len(descending))
        keep &= probs >= descending[count - 1]
    if min_p > 0.0:
        keep &= probs >= min_p * probs.max()
    return ids[keep], probs[keep] / probs[keep].sum()


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
    best, negative = int(LOGITS.argmax()), int(LOGITS.argmin())
    penalised = repetition_penalty(1.5)(LOGITS.copy(), [best, negative, VOCAB + 5, -1])
    assert penalised[best] == pytest.approx(LOGITS[best] / 1.5)
    assert penalised[negative] == pytest.approx(LOGITS[negative] * 1.5)
    untouched = np.ones(VOCAB, dtype=bool)
    untouched[[best, negative]] = False
    np.testing.assert_array_equal(penalised[untouched], LOGITS[untouched])
    assert make_logits_processors(GenerationConfig(repetition_penalty=1.0)) == []
    assert len(make_logits_processors(GenerationConfig(repetition_penalty=1.3))) == 1


def test_logits_processors_apply_in_order_on_float32_and_leave_the_callers_logits():
    calls = []

    def ban(token):
        def process(logits, history):
            calls.append((token, logits.dtype, list(history)))
            logits[token] = -np.inf
            return logits

        return process

    half = LOGITS.astype(np.float16)
    best_two = np.argsort(-half.astype(np.float32))[:3]
    sampler = make_sampler(
        GenerationConfig(temperature=0.0), processors=[ban(best_two[0]), ban(best_two[1])]
    )
    assert sampler(half, [1, 2]) == best_two[2]
    assert calls == [(best_two[0], np.float32, [1, 2]), (best_two[1], np.float32, [1, 2])]
    assert np.isfinite(half[best_two[0]])


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


@pytest.mark.parametrize(
    ("top_k", "top_p", "min_p"), [(5, 1.0, 0.0), (40, 0.8, 0.0), (40, 0.9, 0.1)]
)
def test_the_sampler_draws_the_reference_distribution(top_k, top_p, min_p):
    logits = np.random.default_rng(3).standard_normal(VOCAB).astype(np.float32) * 3
    config = GenerationConfig(temperature=0.7, top_k=top_k, top_p=top_p, min_p=min_p, seed=5)
    ids, probs = candidates(logits, temperature=0.7, top_k=top_k, top_p=top_p, min_p=min_p)
    sampler = make_sampler(config)
    draws = 4000
    counts = np.bincount([sampler(logits, []) for _ in range(draws)], minlength=VOCAB) / draws
    assert set(np.flatnonzero(counts)) <= set(ids.tolist())
    expected = np.zeros(VOCAB)
    expected[ids] = probs
    assert np.abs(counts - expected).max() < 0.035  # 4000 seeded draws: well within 5 sigma


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
