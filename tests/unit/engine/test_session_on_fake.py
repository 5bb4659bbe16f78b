"""The session's logic on the NumPy fake of the ``Model`` protocol (tests/fixtures/fake_model.py):
causal masks, the longest-common-prefix reuse, rewinds, chunked prefill, stop strings and context
trimming, each in milliseconds. The fake's logits depend on every visible token and its position,
so a reuse that kept a wrong state would give other logits than a fresh prefill."""

from __future__ import annotations

import numpy as np
import pytest

from engine.generation.generate import generate, stream_generate
from engine.generation.session import ContextFullError, causal_mask, common_prefix
from engine.messages import ChatMessage, GenerationConfig

GREEDY = GenerationConfig(temperature=0.0, max_new_tokens=6)


def _chat(*texts: str) -> tuple[ChatMessage, ...]:
    roles = ("user", "assistant")
    return tuple(ChatMessage(roles[i % 2], text) for i, text in enumerate(texts))  # type: ignore[arg-type]


def test_causal_mask_hides_exactly_the_future() -> None:
    mask = causal_mask(3, 4)[0, 0]
    assert mask.shape == (4, 7) and mask.dtype == np.float16
    for i in range(4):
        for j in range(7):
            assert (mask[i, j] == -np.inf) == (j > 3 + i)
    assert not np.isinf(causal_mask(5, 1)).any()


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [([], [1], 0), ([1, 2, 3], [1, 2, 3], 3), ([1, 2, 3], [1, 2], 2), ([1, 9, 3], [1, 2, 3], 1)],
)
def test_common_prefix(a, b, expected) -> None:
    assert common_prefix(a, b) == expected


def test_a_reused_prefix_gives_the_logits_of_a_fresh_prefill(fake_session) -> None:
    session = fake_session
    first = session.tokenizer.encode_chat(list(_chat("hello world")))
    second = session.tokenizer.encode_chat(list(_chat("hello world", "yes", "tell me about cats")))
    kept = session.new_cache()
    session.prefill(kept, first)
    logits, fed = session.prefill(kept, second)
    assert fed == len(second) - common_prefix(first, second) < len(second)
    fresh, fed_fresh = session.prefill(session.new_cache(), second)
    assert fed_fresh == len(second)
    np.testing.assert_array_equal(logits, fresh)


def test_an_edit_rewinds_to_the_common_prefix_and_hides_what_came_after(fake_session) -> None:
    session = fake_session
    long = session.tokenizer.encode_chat(list(_chat("tell me about cats and dogs")))
    edited = session.tokenizer.encode_chat(list(_chat("tell me about red")))
    cache = session.new_cache()
    session.prefill(cache, long)
    logits, fed = session.prefill(cache, edited)
    assert cache.tokens == edited
    assert fed == len(edited) - common_prefix(long, edited)
    np.testing.assert_array_equal(logits, session.prefill(session.new_cache(), edited)[0])


def test_a_regenerate_feeds_nothing_and_starts_from_the_same_logits(fake_session) -> None:
    session = fake_session
    prompt = session.tokenizer.encode_chat(list(_chat("what is the capital of france")))
    cache = session.new_cache()
    logits, _ = session.prefill(cache, prompt)
    session.feed(cache, [7, 8])  # the answer's tokens
    again, fed = session.prefill(cache, prompt)
    assert fed == 0 and cache.tokens == prompt
    np.testing.assert_array_equal(again, logits)


def test_prefill_goes_in_chunks_each_with_its_own_mask(fake_session) -> None:
    session = fake_session
    prompt = session.tokenizer.encode_chat(list(_chat(" ".join(["one two three"] * 6))))
    session.prefill(session.new_cache(), prompt)
    calls = session.model.predict_calls
    assert [q for q, _ in calls] == [8] * (len(prompt) // 8) + (
        [len(prompt) % 8] * (len(prompt) % 8 > 0)
    )
    assert [end for _, end in calls][-1] == len(prompt)


def test_the_answer_continues_the_same_state_across_turns(fake_session) -> None:
    session = fake_session
    cache = session.new_cache()
    text, last = generate(session, _chat("hello"), GREEDY, cache=cache)
    assert last.stats is not None and last.stats.generated_tokens > 0
    _, second = generate(session, _chat("hello", text, "tell me about cats"), GREEDY, cache=cache)
    assert second.stats is not None
    assert second.stats.tokens_fed < second.stats.prompt_tokens  # the first turn was kept


def test_a_stop_string_cuts_the_answer_and_is_never_shown(fake_session) -> None:
    session = fake_session
    free, _ = generate(
        session, _chat("hello"), GenerationConfig(temperature=0.0, max_new_tokens=12)
    )
    words = free.split()
    assert len(words) >= 3, f"the fake answered too little to test with: {free!r}"
    stop = words[2]
    config = GenerationConfig(temperature=0.0, max_new_tokens=12, stop_strings=(stop,))
    pieces = [r.text for r in stream_generate(session, session.new_cache(), _chat("hello"), config)]
    cut = "".join(pieces)
    assert stop not in cut and free.startswith(cut) and len(cut) < len(free)


def test_a_full_context_drops_the_oldest_turns_or_stops_as_the_policy_says(fake_session) -> None:
    session = fake_session
    turns = []
    for _ in range(12):
        turns += ["tell me about cats and dogs one two three", "yes"]
    long = _chat(*turns, "hello")
    plan = session.plan(long, GenerationConfig(max_new_tokens=8))
    assert plan.dropped_messages > 0 and plan.messages[-1].content == "hello"
    assert len(plan.tokens) <= session.context_length - 8
    with pytest.raises(ContextFullError, match="start a new chat"):
        session.plan(long, GenerationConfig(max_new_tokens=8, context_policy="stop"))
