"""The HTTP server's requests within the engine's ``GENERATION_RANGES``: a field beyond them is a
400 naming it (not an engine error blamed on ``messages``), and any seed a client sends becomes
one the engine takes."""

from __future__ import annotations

import pytest

from engine.messages import (
    GENERATION_RANGES,
    MAX_STOP_STRING_LENGTH,
    MAX_STOP_STRINGS,
    EngineError,
    GenerationConfig,
    stop_strings_problem,
)
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


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", 0.0005),  # below MIN_TEMPERATURE: once blamed on `messages` by the worker
        ("temperature", GENERATION_RANGES["temperature"].maximum + 1),
        ("top_p", 1.5),
        ("min_p", -0.1),
        ("stop", "x" * 100_000),
        ("stop", [f"s{i}" for i in range(MAX_STOP_STRINGS + 1)]),
        ("stop", [""]),
    ],
)
def test_the_one_rule_refuses_what_the_engine_would_as_a_400_naming_the_field(
    field: str, value: object
) -> None:
    with pytest.raises(ApiError) as raised:
        parse_chat_request(_body(**{field: value}))
    assert raised.value.status == 400
    assert raised.value.param == field and str(raised.value).startswith(field)


def test_top_p_zero_keeps_the_most_probable_token_instead_of_becoming_one() -> None:
    assert parse_chat_request(_body(top_p=0)).config.top_p == 0.0
    assert parse_chat_request(_body(stop=["a", "b", "c", "d", "e"])).config.stop_strings == (
        "a",
        "b",
        "c",
        "d",
        "e",
    )


def test_the_window_and_the_server_share_the_stop_string_limits() -> None:
    from app.settings import stop_strings as settings_rule

    assert settings_rule.stop_strings_problem is stop_strings_problem
    assert GenerationConfig(stop_strings=("x" * (MAX_STOP_STRING_LENGTH + 1),)).problems()
    assert GenerationConfig(stop_strings=("x" * MAX_STOP_STRING_LENGTH,)).problems() == {}


@pytest.mark.parametrize(
    ("kind", "field", "status", "param"),
    [
        ("invalid_request", "temperature", 400, "temperature"),
        ("invalid_request", "max_new_tokens", 400, "max_tokens"),
        ("invalid_request", "", 400, "messages"),
        ("context_full", "", 400, "messages"),
        ("no_model", "", 503, None),
        ("out_of_memory", "", 503, None),
        ("internal", "", 500, None),
    ],
)
def test_an_engine_errors_kind_decides_the_status_never_its_text(kind, field, status, param):
    from engine.server.api import _engine_error

    # the text says the opposite of the kind: only the kind may count
    error = _engine_error(EngineError(1, "internal error: no model is loaded", kind, field))
    assert (error.status, error.param) == (status, param)
