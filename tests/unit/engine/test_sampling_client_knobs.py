"""OpenAI's presence and frequency penalties and logit_bias as logits processors (their
definitions: ``logits[j] -= count[j] * frequency + (count[j] > 0) * presence``; a bias added),
composed by ``make_sampler`` like the others, and their ranges as the engine's rule."""

from __future__ import annotations

import numpy as np
import pytest

from engine.generation.sampling import logit_bias, make_sampler, presence_frequency_penalty
from engine.messages import GenerationConfig


def test_penalties_follow_openais_definition():
    logits = np.zeros(8, dtype=np.float32)
    out = presence_frequency_penalty(0.5, 0.25)(logits, [3, 3, 5, 99])  # 99: past the vocabulary
    expected = np.zeros(8, dtype=np.float32)
    expected[3] = -(2 * 0.25 + 0.5)
    expected[5] = -(1 * 0.25 + 0.5)
    np.testing.assert_allclose(out, expected)


def test_a_bias_forces_or_bans_a_token_through_the_sampler():
    logits = np.linspace(0, 1, 16).astype(np.float16)  # greedy: token 15
    assert make_sampler(GenerationConfig(temperature=0))(logits, []) == 15
    forced = GenerationConfig(temperature=0, logit_bias=((4, 100.0),))
    assert make_sampler(forced)(logits, []) == 4
    banned = GenerationConfig(temperature=0, logit_bias=((15, -100.0), (9999, 5.0)))
    assert make_sampler(banned)(logits, []) == 14
    penalised = GenerationConfig(temperature=0, frequency_penalty=2.0)
    assert make_sampler(penalised)(logits, [15]) == 14


def test_a_bias_adds_to_the_logit():
    out = logit_bias(((1, 2.5), (1, 0.5)))(np.zeros(3, dtype=np.float32), [])
    np.testing.assert_allclose(out, [0.0, 3.0, 0.0])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("presence_penalty", 2.5),
        ("frequency_penalty", float("nan")),
        ("logit_bias", ((1, 101.0),)),
        ("logit_bias", ((-1, 1.0),)),
    ],
)
def test_out_of_range_knobs_are_problems_named(field, value):
    assert field in GenerationConfig(**{field: value}).problems()
