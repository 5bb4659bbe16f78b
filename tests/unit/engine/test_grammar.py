"""Constrained decoding: llguidance's token mask as a logits processor. A model that knows nothing
(random logits) answers JSON that parses and validates when the mask is on, and does not when it
is off; on real tokenizers at both vocabulary sizes the benchmark measures (49152, 32768)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from engine.generation.generate import generate
from engine.generation.grammar import (
    ANY_JSON_OBJECT,
    GrammarConstraint,
    GrammarError,
    json_schema_grammar,
)
from engine.generation.session import ChatSession
from engine.messages import ChatMessage, GenerationConfig
from engine.text.tokenizer import ChatTokenizer
from tests.unit.engine.model_fakes import RandomModel


class Weather(BaseModel):
    model_config = ConfigDict(extra="forbid")
    city: Literal["Paris", "Rome", "Oslo"]
    raining: bool
    celsius: int = Field(ge=-30, le=45)
    note: str = Field(max_length=12)


SCHEMA = json.dumps(Weather.model_json_schema())
ASK = (ChatMessage("user", "The weather in Paris, as JSON."),)


@pytest.fixture(scope="module")
def session(real_tokenizer_dir: Path) -> ChatSession:
    tokenizer = ChatTokenizer.from_folder(real_tokenizer_dir, {})
    return ChatSession(RandomModel(vocab=tokenizer.vocab_size), tokenizer)


def _answer(session: ChatSession, seed: int, schema: str | None) -> str:
    config = GenerationConfig(max_new_tokens=80, temperature=1.0, seed=seed, json_schema=schema)
    text, _ = generate(session, ASK, config)
    return text


def test_every_seeded_answer_under_the_schema_validates(session):
    answers = [_answer(session, seed, SCHEMA) for seed in range(20)]
    for text in answers:
        Weather.model_validate_json(text)  # raises on any answer that does not parse or validate
    assert len(set(answers)) > 1  # sampled, not one fixed string


def test_without_the_schema_the_same_model_answers_no_json(session):
    """What the test above would see if the mask were not applied."""
    for seed in range(3):
        with pytest.raises(ValueError):
            Weather.model_validate_json(_answer(session, seed, None))


def test_json_object_takes_an_object_and_refuses_an_array(session):
    grammar = json_schema_grammar(json.dumps(ANY_JSON_OBJECT))
    constraint = GrammarConstraint(session.grammar_tokenizer, grammar)
    for token in session.grammar_tokenizer.tokenize_str('{"a": [1, "x"]}'):
        constraint.accept(token)
    assert constraint.matcher.is_accepting()
    array = GrammarConstraint(session.grammar_tokenizer, grammar)
    with pytest.raises(GrammarError):
        array.accept(session.grammar_tokenizer.tokenize_str("[1]")[0])


def test_a_token_outside_the_mask_is_refused(session):
    constraint = GrammarConstraint(session.grammar_tokenizer, json_schema_grammar(SCHEMA))
    not_json = session.tokenizer.encode("hello")[0]
    with pytest.raises(GrammarError, match="not allowed"):
        constraint.accept(not_json)


@pytest.mark.parametrize(
    ("schema", "named"),
    [
        ({"type": "object", "dependentRequired": {"a": ["b"]}}, "dependentRequired"),
        ({"type": "string", "format": "no-such-format"}, "no-such-format"),
    ],
)
def test_a_schema_feature_that_cannot_be_enforced_is_named(schema, named):
    with pytest.raises(GrammarError, match=named):
        json_schema_grammar(json.dumps(schema))
