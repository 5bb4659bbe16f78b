"""The OpenAI-compatible server against the official ``openai`` client, on a real model.

One engine worker with SmolLM2-135M-Instruct (reference runtime) serves on 127.0.0.1 at a free
port for the whole module; requests go through HTTP exactly as an editor's or a script's would.
"""

from __future__ import annotations

import threading

import pytest

from engine.messages import ServerState, StopServer
from tests.fixtures.server import raw_request, start_served

pytestmark = pytest.mark.slow


def ask(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_models_lists_the_loaded_model(served):
    models = served.client().models.list()
    assert [m.id for m in models.data] == [served.model]


def test_a_whole_answer_has_usage_and_finish_reason(served):
    answer = served.client().chat.completions.create(
        model=served.model, messages=ask("Name a colour."), max_tokens=4, temperature=0
    )
    choice = answer.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert answer.usage.completion_tokens <= 4
    assert answer.usage.prompt_tokens > 5
    assert 0 <= answer.usage.prompt_tokens_details.cached_tokens <= answer.usage.prompt_tokens


def test_a_streamed_answer_ends_with_usage_and_matches_the_whole_one(served):
    client = served.client()
    kwargs = {"model": served.model, "messages": ask("Say hello."), "max_tokens": 6}
    whole = client.chat.completions.create(**kwargs, temperature=0)
    chunks = list(
        client.chat.completions.create(
            **kwargs, temperature=0, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == whole.choices[0].finish_reason
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_a_legacy_completion_answers(served):
    answer = served.client().completions.create(
        model=served.model, prompt="Count to three.", max_tokens=5, temperature=0
    )
    assert answer.choices[0].text
    assert answer.usage.completion_tokens <= 5


def test_a_wrong_or_missing_key_is_refused_with_401(served):
    import openai

    with pytest.raises(openai.AuthenticationError) as raised:
        served.client(api_key="not-the-key").models.list()
    assert raised.value.status_code == 401
    assert raised.value.body["code"] == "invalid_api_key"
    status, body = raw_request(f"{served.url}/models")
    assert status == 401 and body["error"]["code"] == "invalid_api_key"


def test_a_growing_chat_is_served_from_the_kv_cache(served):
    client = served.client()
    messages = ask("Tell me about the moon in one sentence.")
    first = client.chat.completions.create(
        model=served.model, messages=messages, max_tokens=12, temperature=0
    )
    # Another client's chat in between: it gets a state of its own, the first one is kept.
    client.chat.completions.create(
        model=served.model, messages=ask("Write one word about cats."), max_tokens=3
    )
    messages += [
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": "And the sun?"},
    ]
    second = client.chat.completions.create(
        model=served.model, messages=messages, max_tokens=4, temperature=0
    )
    assert second.usage.prompt_tokens_details.cached_tokens >= first.usage.prompt_tokens


def test_a_client_that_disconnects_mid_stream_frees_the_engine(served, monkeypatch):
    cancelled: list[int | None] = []
    cancel = served.worker.cancel

    def spy(request_id=None):
        cancelled.append(request_id)
        cancel(request_id)

    monkeypatch.setattr(served.worker, "cancel", spy)
    client = served.client()
    stream = client.chat.completions.create(
        model=served.model, messages=ask("Write a long story."), max_tokens=300, stream=True
    )
    for count, _ in enumerate(stream):
        if count == 3:
            break
    stream.close()
    after = client.chat.completions.create(
        model=served.model, messages=ask("Hi"), max_tokens=2, temperature=0
    )
    assert after.usage.completion_tokens <= 2
    assert cancelled and all(rid is not None and rid >= 1 << 48 for rid in cancelled)


def test_concurrent_requests_queue_and_all_finish(served):
    client = served.client()
    results: dict[int, object] = {}

    def run(index: int) -> None:
        results[index] = client.chat.completions.create(
            model=served.model, messages=ask(f"Say the number {index}."), max_tokens=3
        )

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert sorted(results) == [0, 1, 2]
    assert all(r.usage.completion_tokens <= 3 for r in results.values())


def test_served_requests_are_counted_and_stop_says_so(smollm2_int4_dir):
    running = start_served(smollm2_int4_dir)
    try:
        running.client().chat.completions.create(
            model=running.model, messages=ask("Hi"), max_tokens=1
        )
        assert running.states[-1].running and running.states[-1].requests_served == 1
        running.worker.submit(StopServer())
        assert running.states[-1] == ServerState(False, "", 0)
        import urllib.error

        with pytest.raises(urllib.error.URLError):
            raw_request(f"{running.url}/models")
    finally:
        running.worker.close()


def test_serve_cli_without_a_model_says_so(tmp_path):
    from engine.server.cli import main

    assert main([str(tmp_path / "missing"), "--port", "0", "--api-key", "k"]) == 1


def test_serve_cli_refuses_a_bad_port(capsys):
    from engine.server.cli import main

    with pytest.raises(SystemExit):
        main(["model", "--port", "70000"])
    assert "--port must be between 0 and 65535" in capsys.readouterr().err
