"""A reasoning model's thinking comes back apart from its answer: OpenAI's dialect as
``reasoning_content`` (what llama-server and LM Studio send), Ollama's as ``thinking``; whole and
streamed, through the real clients, on a scripted engine."""

from __future__ import annotations

import pytest

from tests.unit.engine.server_fakes import API_KEY, ScriptedEngine, start_fake_server

THOUGHTS = ("The user greets me. ", "Greet back.")
ANSWER = ("Hello", ", world")
ASK = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def server():
    running = start_fake_server(ScriptedEngine(pieces=ANSWER, thoughts=THOUGHTS))
    yield running
    running.host.stop()


def test_a_whole_answer_carries_the_reasoning_apart(server) -> None:
    status, _, body = server.request("/v1/chat/completions", body={"model": "m", "messages": ASK})
    message = body["choices"][0]["message"]
    assert status == 200
    assert message["content"] == "".join(ANSWER)
    assert message["reasoning_content"] == "".join(THOUGHTS)


def test_a_stream_sends_reasoning_deltas_before_the_content(server) -> None:
    import openai

    client = openai.OpenAI(base_url=server.host.url, api_key=API_KEY, max_retries=0)
    deltas = [
        chunk.choices[0].delta
        for chunk in client.chat.completions.create(model="m", messages=ASK, stream=True)
        if chunk.choices
    ]
    thinking = [getattr(d, "reasoning_content", None) for d in deltas]
    content = "".join(d.content or "" for d in deltas)
    assert "".join(t for t in thinking if t) == "".join(THOUGHTS)
    assert content == "".join(ANSWER)  # the answer alone: no thinking in it
    last_thought = max(i for i, t in enumerate(thinking) if t)
    first_answer = min(i for i, d in enumerate(deltas) if d.content)
    assert last_thought < first_answer


def test_ollama_returns_the_thinking_field(server) -> None:
    import ollama

    client = ollama.Client(host=server.base, headers={"Authorization": f"Bearer {API_KEY}"})
    whole = client.chat(model="m", messages=ASK)
    assert whole.message.content == "".join(ANSWER)
    assert whole.message.thinking == "".join(THOUGHTS)
    parts = list(client.chat(model="m", messages=ASK, stream=True))
    assert "".join(p.message.thinking or "" for p in parts) == "".join(THOUGHTS)
    assert "".join(p.message.content or "" for p in parts) == "".join(ANSWER)
