"""The session on a converted model: prefix reuse, chunked prefill, rewind, context policies, cancel."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from engine.generation.generate import generate, stream_generate
from engine.generation.session import ChatSession, ContextFullError, causal_mask, common_prefix
from engine.messages import ChatMessage, GenerationConfig
from engine.runtime import load_model
from engine.text.tokenizer import ChatTokenizer

GREEDY = GenerationConfig(temperature=0.0, max_new_tokens=8)


@pytest.fixture(scope="module")
def session(mistral_session) -> ChatSession:
    return mistral_session


def _answer(session, cache, messages, config=GREEDY):
    pieces, last = [], None
    for response in stream_generate(session, cache, tuple(messages), config):
        pieces.append(response.text)
        last = response
    return "".join(pieces), last


def test_causal_mask_blocks_only_the_future():
    mask = causal_mask(3, 2)
    assert mask.shape == (1, 1, 2, 5) and mask.dtype == np.float16
    assert (mask[0, 0, 0] == [0, 0, 0, 0, -np.inf]).all()
    assert (mask[0, 0, 1] == [0, 0, 0, 0, 0]).all()
    big = causal_mask(100, 64)[0, 0]
    rows, columns = np.indices(big.shape)
    assert np.array_equal(np.isneginf(big), columns > 100 + rows)
    assert not np.isneginf(causal_mask(7, 1)).any()  # one new token sees everything


def test_common_prefix():
    assert common_prefix([1, 2, 3], [1, 2, 4, 5]) == 2
    assert common_prefix([1, 2], [1, 2, 3]) == 2
    assert common_prefix([], [1]) == 0 and common_prefix([9], [1]) == 0


def test_chunked_prefill_equals_whole_prefill(session):
    prompt = session.tokenizer.encode_chat([ChatMessage("user", "one two three four five six")])
    whole_cache, chunked_cache = session.new_cache(), session.new_cache()
    whole, _ = session.prefill(whole_cache, prompt)
    session.chunk_size = 3
    try:
        chunked, fed = session.prefill(chunked_cache, prompt)
    finally:
        session.chunk_size = 64
    assert fed == len(prompt)
    np.testing.assert_allclose(chunked, whole, atol=2e-3)


def test_second_turn_feeds_only_the_new_tokens(session):
    cache = session.new_cache()
    first = [ChatMessage("user", "Tell me about the sea.")]
    text, last = _answer(session, cache, first)
    assert last.stats.tokens_fed == last.stats.prompt_tokens
    second = [*first, ChatMessage("assistant", text), ChatMessage("user", "And the sky?")]
    _, last2 = _answer(session, cache, second)
    full = session.tokenizer.encode_chat(second)
    new_tokens = len(full) - len(session.tokenizer.encode_chat(first)) - last.stats.generated_tokens
    assert last2.stats.prompt_tokens == len(full)
    assert (
        last2.stats.tokens_fed <= new_tokens + 2
    )  # the answer as re-rendered may differ by a token
    assert last2.stats.tokens_fed < len(full) // 2


def test_regenerate_rewinds_instead_of_refeeding(session):
    cache = session.new_cache()
    conversation = [ChatMessage("user", "Write a word.")]
    first_text, first = _answer(session, cache, conversation)
    assert cache.length > first.stats.prompt_tokens  # the answer went into the cache
    fed_before = session.tokens_fed_total
    again_text, again = _answer(session, cache, conversation)
    assert again.stats.tokens_fed == 0  # rewound to the prompt, whose logits were kept
    # Decoding feeds each answer token but the last: nothing of the prompt is fed again.
    assert session.tokens_fed_total - fed_before == again.stats.generated_tokens - (
        again.finish_reason == "max_tokens"
    )
    assert again_text == first_text  # greedy: the same answer from the rewound cache


def test_edit_feeds_from_the_edited_message(session):
    cache = session.new_cache()
    history = [
        ChatMessage("user", "First question here."),
        ChatMessage("assistant", "First answer."),
        ChatMessage("user", "Second question."),
    ]
    _answer(session, cache, history)
    edited = [*history[:2], ChatMessage("user", "A different second question, longer.")]
    _, last = _answer(session, cache, edited)
    unchanged = len(session.tokenizer.encode_chat(history[:2], add_generation_prompt=False))
    assert last.stats.tokens_fed <= last.stats.prompt_tokens - unchanged + 2
    fresh_text, _ = _answer(session, session.new_cache(), edited)
    edited_text, _ = _answer(session, cache, edited)
    assert edited_text == fresh_text


def test_cancel_mid_answer_keeps_the_cache_consistent(session):
    cache = session.new_cache()
    conversation = [ChatMessage("user", "Count slowly.")]
    cancel = threading.Event()
    stream = stream_generate(
        session,
        cache,
        tuple(conversation),
        GenerationConfig(temperature=0.0, max_new_tokens=30),
        cancel=cancel,
    )
    next(stream)
    cancel.set()
    *_, last = stream
    assert last.finish_reason == "cancelled"
    assert 0 < last.stats.generated_tokens < 30
    # What was fed is recorded: the prompt and every answer token (each is fed before the next
    # token's cancel check).
    assert cache.length == last.stats.prompt_tokens + last.stats.generated_tokens
    assert cache.tokens[: last.stats.prompt_tokens] == session.tokenizer.encode_chat(conversation)
    fresh, _ = _answer(session, session.new_cache(), conversation)
    after, _ = _answer(session, cache, conversation)
    assert after == fresh


def test_context_full_policies(converted_package):
    folder = converted_package("mistral", "int4")
    session = ChatSession(load_model(folder), ChatTokenizer.from_folder(folder))
    long = "word " * 90
    conversation = []
    for i in range(3):
        conversation += [ChatMessage("user", f"{i} {long}"), ChatMessage("assistant", "ok")]
    conversation.append(ChatMessage("user", "last question"))
    stop = GenerationConfig(temperature=0.0, max_new_tokens=4, context_policy="stop")
    with pytest.raises(ContextFullError, match="context is 256"):
        session.plan(tuple(conversation), stop)
    _, last = _answer(session, session.new_cache(), conversation, stop)
    assert last.finish_reason == "context_full" and "new chat" in last.message

    drop = GenerationConfig(temperature=0.0, max_new_tokens=4, context_policy="drop_oldest")
    with_system = [ChatMessage("system", "Be brief."), *conversation]
    plan = session.plan(tuple(with_system), drop)
    assert plan.dropped_messages >= 2 and plan.messages[0].role == "system"
    assert plan.messages[-1].content == "last question"
    assert len(plan.tokens) <= 256
    _, last = _answer(session, session.new_cache(), with_system, drop)
    assert last.dropped_messages == plan.dropped_messages and last.finish_reason is not None

    alone = [ChatMessage("user", "word " * 400)]
    with pytest.raises(ContextFullError, match="last message alone"):
        session.plan(tuple(alone), drop)


def test_generate_joins_the_stream(session):
    conversation = (ChatMessage("user", "Hi"),)
    text, last = generate(session, conversation, GREEDY)
    streamed, _ = _answer(session, session.new_cache(), conversation)
    assert last.finish_reason in ("eos", "max_tokens") and last.stats.generated_tokens >= 1
    assert text and text == streamed  # greedy: the same answer, joined


def _answer_with_ids(session, cache, messages, config):
    pieces, ids, last = [], [], None
    for response in stream_generate(session, cache, tuple(messages), config):
        pieces.append(response.text)
        if response.token >= 0:
            ids.append(response.token)
        last = response
    return "".join(pieces), ids, last


@pytest.mark.parametrize("max_new_tokens", [1, 2, 5, 9])
def test_an_answer_cut_at_max_new_tokens_keeps_its_last_token(session, max_new_tokens):
    config = GenerationConfig(temperature=0.0, max_new_tokens=max_new_tokens)
    conversation = [ChatMessage("user", "Tell me a story about a cat.")]
    text, ids, last = _answer_with_ids(session, session.new_cache(), conversation, config)
    assert last.finish_reason == "max_tokens" and len(ids) == max_new_tokens
    assert text == session.tokenizer.decode(ids) and session.tokenizer.decode(ids[-1:]) != ""


def test_an_answer_that_fills_the_context_keeps_its_last_token(session):
    config = GenerationConfig(temperature=0.0, max_new_tokens=1000, context_policy="stop")
    conversation = [ChatMessage("user", "Tell me a long story about a cat. " * 12)]
    cache = session.new_cache()
    text, ids, last = _answer_with_ids(session, cache, conversation, config)
    assert last.finish_reason == "context_full" and cache.length == session.context_length
    assert text == session.tokenizer.decode(ids) and session.tokenizer.decode(ids[-1:]) != ""


def test_cancel_during_prefill_records_what_was_fed(session):
    cache = session.new_cache()
    conversation = (ChatMessage("user", "word " * 100),)
    cancel = threading.Event()
    seen = []

    def progress(done, total):
        seen.append(done)
        cancel.set()  # after the first chunk

    *_, last = stream_generate(session, cache, conversation, GREEDY, cancel=cancel,
                               on_prefill=progress)  # fmt: skip
    assert last.finish_reason == "cancelled" and seen == [session.chunk_size]
    assert cache.length == session.chunk_size
    text, resumed = _answer(session, cache, conversation)
    assert resumed.stats.tokens_fed == resumed.stats.prompt_tokens - session.chunk_size
    assert text == _answer(session, session.new_cache(), conversation)[0]


def test_stop_strings_cut_the_answer(session):
    conversation = (ChatMessage("user", "Say something."),)
    config = GenerationConfig(temperature=0.0, max_new_tokens=12)
    full, _ = _answer(session, session.new_cache(), conversation, config)
    assert len(full) > 4
    stop = full[2:4]
    cut_config = GenerationConfig(temperature=0.0, max_new_tokens=12, stop_strings=(stop,))
    cut, last = _answer(session, session.new_cache(), conversation, cut_config)
    assert last.finish_reason == "stop_string" and cut == full[: full.find(stop)]


def test_last_logits_only_package_gives_the_same_answer(converted_package, session):
    folder = converted_package("mistral", "none", last_logits_only=True)
    model = load_model(folder)
    last_only = ChatSession(model, ChatTokenizer.from_folder(folder, model.description.metadata))
    conversation = [ChatMessage("user", "Tell me a story about a cat.")]
    prompt = session.tokenizer.encode_chat(conversation)
    output = model.predict(
        {
            "inputIds": np.asarray([prompt], dtype=np.int32),
            "causalMask": causal_mask(0, len(prompt)),
        },
        model.make_state(),
    )["logits"]
    assert output.shape == (1, 1, session.tokenizer.vocab_size)
    config = GenerationConfig(temperature=0.0, max_new_tokens=10)
    expected, _ = _answer(session, session.new_cache(), conversation, config)
    assert _answer(last_only, last_only.new_cache(), conversation, config)[0] == expected


def test_after_dropping_the_next_turns_reuse_the_cache(converted_package):
    folder = converted_package("mistral", "int4")
    session = ChatSession(load_model(folder), ChatTokenizer.from_folder(folder))
    config = GenerationConfig(temperature=0.0, max_new_tokens=4, context_policy="drop_oldest")
    cache = session.new_cache()
    messages = [ChatMessage("system", "Be brief.")]
    turns = []
    for i in range(12):
        messages.append(ChatMessage("user", f"Question {i}: " + "tell me more " * 6))
        text, last = _answer(session, cache, messages, config)
        turns.append(last)
        messages.append(ChatMessage("assistant", text))
        assert last.stats.prompt_tokens + 4 <= 256
    first_drop = next(i for i, t in enumerate(turns) if t.dropped_messages)
    assert turns[first_drop].newly_dropped
    after = turns[first_drop + 1]
    assert not after.newly_dropped and after.dropped_messages == turns[first_drop].dropped_messages
    # Only what is new is fed, as in the turns before the context filled (Mistral's template puts
    # the system prompt in the last user message, so each turn also re-feeds the previous one).
    usual = max(t.stats.tokens_fed for t in turns[1:first_drop])
    assert after.stats.tokens_fed <= usual + 2 < after.stats.prompt_tokens // 2
    assert any(t.newly_dropped for t in turns[first_drop + 2 :])  # it keeps trimming as it grows
