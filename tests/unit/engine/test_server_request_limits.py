"""The HTTP server's requests within the engine's ``GENERATION_RANGES``: a field beyond them is a
400 naming it (not an engine error blamed on ``messages``), and any seed a client sends becomes
one the engine takes."""

from __future__ import annotations

import pytest

from engine.messages import GENERATION_RANGES
from engine.server.requests import ApiError, parse_chat_request


def _body(**fields: object) -> dict:
    return {"model": "m", "messages": [{"role": "user", "content": "x"}], **fields}


@pytest.mark.parametrize("seed", [0, 2**31 - 1, 2**31 + 5, 2**63 - 1, -(2**63)])
def test_any_64_bit_seed_becomes_one_the_engine_takes(seed: int) -> None:
    config = parse_chat_request(_body(seed=seed)).config
    assert config.problems() == {}
    assert config.seed == seed % (GENERATION_RANGES["seed"].maximum + 1)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_tokens", GENERATION_RANGES["max_new_tokens"].maximum + 1),
        ("max_completion_tokens", GENERATION_RANGES["max_new_tokens"].maximum + 1),
        ("top_k", GENERATION_RANGES["top_k"].maximum + 1),
        ("repetition_penalty", GENERATION_RANGES["repetition_penalty"].maximum + 0.5),
        ("repetition_penalty", GENERATION_RANGES["repetition_penalty"].minimum - 0.1),
    ],
)
def test_a_field_beyond_the_engines_range_is_a_400_naming_it(field: str, value: float) -> None:
    with pytest.raises(ApiError) as raised:
        parse_chat_request(_body(**{field: value}))
    assert raised.value.status == 400
    assert raised.value.param == field and field in str(raised.value)


def test_the_ends_of_the_engines_ranges_are_served() -> None:
    body = _body(
        max_tokens=GENERATION_RANGES["max_new_tokens"].maximum,
        top_k=GENERATION_RANGES["top_k"].maximum,
        repetition_penalty=GENERATION_RANGES["repetition_penalty"].maximum,
    )
    assert parse_chat_request(body).config.problems() == {}
