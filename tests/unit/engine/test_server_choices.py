"""n answers, system_fingerprint, penalties and logit_bias over HTTP, on a scripted engine."""

from __future__ import annotations

import pytest

from tests.unit.engine.server_fakes import API_KEY, ScriptedEngine, start_fake_server

ASK = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def server():
    running = start_fake_server(ScriptedEngine(pieces=("Hello", ", world")))
    yield running
    running.host.stop()


def _client(server):
    import openai

    return openai.OpenAI(base_url=server.host.url, api_key=API_KEY, max_retries=0)


def test_n_answers_each_a_generation_of_its_own_seeded_in_turn(server):
    before = len(server.engine.received)
    answer = _client(server).chat.completions.create(model="m", messages=ASK, n=3, seed=41)
    assert [c.index for c in answer.choices] == [0, 1, 2]
    assert {c.message.content for c in answer.choices} == {"Hello, world"}
    assert answer.usage.completion_tokens == 3 * 2 and answer.usage.prompt_tokens == 10
    sent = server.engine.received[before:]
    assert [g.config.seed for g in sent] == [41, 42, 43]
    assert len({g.request_id for g in sent}) == 3


def test_n_answers_streamed_carry_their_index(server):
    chunks = list(
        _client(server).chat.completions.create(
            model="m", messages=ASK, n=2, stream=True, stream_options={"include_usage": True}
        )
    )
    texts: dict[int, str] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
    assert texts == {0: "Hello, world", 1: "Hello, world"}
    assert chunks[-1].usage.completion_tokens == 4
    completions = _client(server).completions.create(model="m", prompt="x", n=2)
    assert [c.text for c in completions.choices] == ["Hello, world", "Hello, world"]


def test_the_system_fingerprint_names_what_answered(server):
    client = _client(server)
    first = client.chat.completions.create(model="m", messages=ASK)
    again = client.completions.create(model="m", prompt="x")
    assert first.system_fingerprint.startswith("fp_")
    assert first.system_fingerprint == again.system_fingerprint


def test_penalties_and_logit_bias_reach_the_engine(server):
    _client(server).chat.completions.create(
        model="m", messages=ASK, presence_penalty=0.5, frequency_penalty=-1, logit_bias={"17": -100}
    )
    config = server.engine.received[-1].config
    assert (config.presence_penalty, config.frequency_penalty) == (0.5, -1.0)
    assert config.logit_bias == ((17, -100.0),)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"presence_penalty": 2.5}, "presence_penalty"),
        ({"frequency_penalty": "x"}, "frequency_penalty"),
        ({"logit_bias": {"17": 101}}, "logit_bias"),
        ({"logit_bias": {"abc": 1}}, "logit_bias"),
        ({"n": 0}, "n"),
    ],
)
def test_bad_values_are_a_400_naming_the_field(server, extra, param):
    status, _, body = server.request(
        "/v1/chat/completions", body={"model": "m", "messages": ASK, **extra}
    )
    assert status == 400 and body["error"]["param"] == param
