"""The worker thread: events for a real model, errors that leave it serving, cancel while busy."""

from __future__ import annotations

from engine.messages import (
    Cancel,
    ChatMessage,
    ContextTrimmed,
    EngineError,
    ForgetConversation,
    Generate,
    GenerationConfig,
    GenerationFinished,
    LoadModel,
    ModelLoaded,
    PrefillProgress,
    TokenText,
)


def test_worker_serves_after_errors_and_streams_tokens(worker, converted_package, tmp_path):
    engine, events = worker
    hello = (ChatMessage("user", "Hello"),)
    engine.submit(Generate(1, "c", hello))
    error, _ = events.until(GenerationFinished, 1)
    assert isinstance(error, EngineError) and "no model" in error.message
    engine.submit(LoadModel(2, str(tmp_path / "missing")))
    error, _ = events.until(ModelLoaded, 2)
    assert isinstance(error, EngineError) and "no such model" in error.message
    (tmp_path / "empty.mlpackage").mkdir()
    engine.submit(LoadModel(3, str(tmp_path / "empty.mlpackage")))
    error, _ = events.until(ModelLoaded, 3)
    assert isinstance(error, EngineError) and "not a Core ML package" in error.message

    engine.submit(LoadModel(4, str(converted_package("mistral", "int4"))))
    loaded, _ = events.until(ModelLoaded, 4)
    assert isinstance(loaded, ModelLoaded) and loaded.info.context_length == 256
    assert (
        loaded.info.quantization == "int4-searched-block32"
        and loaded.info.runtime_name == "reference"
    )

    bad = (ChatMessage("user", "a"), ChatMessage("user", "b"))  # the template raises
    engine.submit(Generate(5, "c", bad))
    error, _ = events.until(GenerationFinished, 5)
    assert isinstance(error, EngineError) and "alternate" in error.message

    config = GenerationConfig(temperature=0.0, max_new_tokens=6)
    engine.submit(Generate(6, "c", hello, config))
    finished, seen = events.until(GenerationFinished, 6)
    assert isinstance(finished, GenerationFinished)
    tokens = [e for e in seen if isinstance(e, TokenText)]
    assert "".join(t.text for t in tokens) == finished.text
    assert any(isinstance(e, PrefillProgress) for e in seen)
    stats = finished.stats
    assert stats.tokens_fed == stats.prompt_tokens and stats.generated_tokens >= 1
    assert stats.time_to_first_token > 0 and stats.cache_length > stats.prompt_tokens - 1


LONG = GenerationConfig(temperature=1.0, max_new_tokens=200, seed=0)
SHORT = GenerationConfig(temperature=0.0, max_new_tokens=3)


def _first_token(events, request_id):
    while True:
        event = events.events.get(timeout=60)
        if isinstance(event, TokenText) and event.request_id == request_id:
            return event


def test_cancel_takes_effect_between_tokens(worker, converted_package):
    engine, events = worker
    engine.submit(LoadModel(1, str(converted_package("mistral", "int4"))))
    events.until(ModelLoaded, 1)
    go_on = (ChatMessage("user", "Go on forever"),)
    engine.submit(Generate(2, "a", go_on, LONG))
    engine.submit(Generate(3, "b", go_on, SHORT))
    engine.submit(Generate(4, "c", go_on, SHORT))
    _first_token(events, 2)
    engine.submit(Cancel(3))  # queued: it will finish without running
    engine.submit(Cancel(2))  # running: it stops between two tokens
    finished, _ = events.until(GenerationFinished, 2)
    assert finished.stats.finish_reason == "cancelled" and finished.stats.generated_tokens < 200
    skipped, _ = events.until(GenerationFinished, 3)
    assert skipped.stats.finish_reason == "cancelled" and skipped.stats.tokens_fed == 0
    served, _ = events.until(GenerationFinished, 4)
    assert served.stats.finish_reason in ("eos", "max_tokens") and served.stats.tokens_fed > 0

    # cancel() with no id: the running generation and whatever was submitted before it.
    engine.submit(Generate(5, "a", go_on, LONG))
    engine.submit(Generate(6, "b", go_on, SHORT))
    _first_token(events, 5)
    engine.cancel()
    engine.submit(Generate(7, "c", go_on, SHORT))
    assert events.until(GenerationFinished, 5)[0].stats.finish_reason == "cancelled"
    assert events.until(GenerationFinished, 6)[0].stats.finish_reason == "cancelled"
    assert events.until(GenerationFinished, 7)[0].stats.finish_reason != "cancelled"


def test_least_recently_used_states_are_evicted_and_prefilled_again(worker, converted_package):
    engine, events = worker
    engine.submit(LoadModel(1, str(converted_package("mistral", "int4"))))
    events.until(ModelLoaded, 1)
    hello = (ChatMessage("user", "Hello"),)
    request = 1
    for conversation in ["c1", "c2", "c3", "c4", "c5"]:  # one more than MAX_CONVERSATION_STATES
        request += 1
        engine.submit(Generate(request, conversation, hello, SHORT))
        assert events.until(GenerationFinished, request)[0].stats.tokens_fed > 0
    engine.submit(Generate(10, "c5", hello, SHORT))  # still cached: a regenerate feeds nothing
    assert events.until(GenerationFinished, 10)[0].stats.tokens_fed == 0
    engine.submit(Generate(11, "c1", hello, SHORT))  # evicted: prefilled again
    finished, _ = events.until(GenerationFinished, 11)
    assert finished.stats.tokens_fed == finished.stats.prompt_tokens > 0
    engine.submit(ForgetConversation("c5"))
    engine.submit(Generate(12, "c5", hello, SHORT))
    finished, _ = events.until(GenerationFinished, 12)
    assert finished.stats.tokens_fed == finished.stats.prompt_tokens


def test_a_prompt_longer_than_the_context_is_an_error_and_the_worker_goes_on(
    worker, converted_package
):
    engine, events = worker
    engine.submit(LoadModel(1, str(converted_package("mistral", "int4"))))
    events.until(ModelLoaded, 1)
    too_long = (ChatMessage("user", "word " * 400),)
    engine.submit(Generate(2, "c", too_long, SHORT))
    error, _ = events.until(GenerationFinished, 2)
    assert isinstance(error, EngineError) and "context" in error.message
    finished, _ = events.until(GenerationFinished, 2)
    assert finished.stats.finish_reason == "context_full"
    engine.submit(Generate(3, "c", (ChatMessage("user", "Hello"),), SHORT))
    assert events.until(GenerationFinished, 3)[0].stats.generated_tokens >= 1

    long_chat = []
    for i in range(3):
        long_chat += [ChatMessage("user", f"{i} " + "word " * 90), ChatMessage("assistant", "ok")]
    long_chat.append(ChatMessage("user", "last question"))
    engine.submit(Generate(4, "d", (ChatMessage("system", "Be brief."), *long_chat), SHORT))
    finished, seen = events.until(GenerationFinished, 4)
    trimmed = [e for e in seen if isinstance(e, ContextTrimmed)]
    assert len(trimmed) == 1 and trimmed[0].dropped_messages >= 2
    assert finished.stats.prompt_tokens <= 256 and finished.stats.generated_tokens >= 1
