"""Ollama's API on the same port, through the official ``ollama`` client, on a scripted engine:
version, tags, show, chat and generate (whole and NDJSON-streamed), options and format mapped onto
the engine's config, tools, the same key rule, errors that name the Ollama field."""

from __future__ import annotations

import dataclasses
import json

import pytest

from engine.messages import RawPrompt
from tests.unit.engine.server_fakes import API_KEY, MODEL_INFO, ScriptedEngine, start_fake_server

CALL = ('<tool_call>\n{"name": "get_weather", ', '"arguments": {"city": "Paris"}}\n</tool_call>')
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
ASK = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def servers():
    talking = start_fake_server(ScriptedEngine(pieces=("Hello", ", world")))
    calling = start_fake_server(
        ScriptedEngine(pieces=CALL, info=dataclasses.replace(MODEL_INFO, fill_in_middle=True))
    )
    yield talking, calling
    talking.host.stop()
    calling.host.stop()


def _client(server, key: str = API_KEY):
    import ollama

    return ollama.Client(host=server.base, headers={"Authorization": f"Bearer {key}"})


def test_version_tags_and_show(servers):
    client = _client(servers[0])
    assert servers[0].request("/api/version")[2]["version"]
    (model,) = client.list().models
    assert model.model == MODEL_INFO.name and model.details.quantization_level == "q4_1"
    shown = client.show("anything")
    assert shown.modelinfo["llama.context_length"] == MODEL_INFO.context_length


def test_chat_whole_and_streamed_with_options(servers):
    talking, _ = servers
    client = _client(talking)
    options = {
        "temperature": 0.3,
        "top_k": 7,
        "num_predict": 9,
        "stop": ["\n"],
        "seed": 5,
        "num_ctx": 99999,
    }
    answer = client.chat(model="llama3.2", messages=ASK, options=options, keep_alive="5m")
    assert answer.message.content == "Hello, world" and answer.done_reason == "stop"
    assert answer.model == MODEL_INFO.name and answer.eval_count == 2
    config = talking.engine.received[-1].config
    assert (config.temperature, config.top_k, config.max_new_tokens) == (0.3, 7, 9)
    assert (config.stop_strings, config.seed) == (("\n",), 5)
    parts = list(client.chat(model="x", messages=ASK, stream=True))
    assert "".join(p.message.content for p in parts) == "Hello, world"
    assert [p.done for p in parts] == [False, False, True]


def test_generate_through_the_template_raw_and_in_the_middle(servers):
    talking, calling = servers
    client = _client(talking)
    assert client.generate(model="x", prompt="Why?", system="Be brief.").response == "Hello, world"
    sent = talking.engine.received[-1]
    assert [(m.role, m.content) for m in sent.messages] == [
        ("system", "Be brief."),
        ("user", "Why?"),
    ]
    client.generate(model="x", prompt="def f(", raw=True)
    assert talking.engine.received[-1].raw_prompt == RawPrompt("def f(")
    _client(calling).generate(model="x", prompt="def f(", suffix="    return 1\n")
    assert calling.engine.received[-1].raw_prompt == RawPrompt("def f(", "    return 1\n")
    assert client.generate(model="x", prompt="").done_reason == "load"


def test_format_json_and_a_schema_constrain_the_answer(servers):
    talking, _ = servers
    client = _client(talking)
    client.chat(model="x", messages=ASK, format="json")
    assert json.loads(talking.engine.received[-1].config.json_schema) == {"type": "object"}
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    client.chat(model="x", messages=ASK, format=schema)
    assert json.loads(talking.engine.received[-1].config.json_schema) == schema


def test_tool_calls_come_back_with_arguments_as_an_object(servers):
    _, calling = servers
    client = _client(calling)
    answer = client.chat(model="x", messages=ASK, tools=TOOLS)
    (call,) = answer.message.tool_calls
    assert (call.function.name, dict(call.function.arguments)) == ("get_weather", {"city": "Paris"})
    streamed = list(client.chat(model="x", messages=ASK, tools=TOOLS, stream=True))
    assert streamed[-1].message.tool_calls[0].function.name == "get_weather"
    history = [
        *ASK,
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
        },
        {"role": "tool", "content": "21 C"},
    ]
    status, _, body = calling.request(
        "/api/chat", body={"model": "x", "messages": history, "stream": False}
    )
    assert status == 200, body
    sent = calling.engine.received[-1].messages
    assert sent[2].tool_call_id == sent[1].tool_calls[0].id  # the result answers the call


def test_the_key_is_required_and_errors_name_the_ollama_field(servers):
    import ollama

    with pytest.raises(ollama.ResponseError) as raised:
        _client(servers[0], key="wrong").list()
    assert raised.value.status_code == 401
    with pytest.raises(ollama.ResponseError) as raised:
        _client(servers[0]).chat(model="x", messages=ASK, options={"temperature": "hot"})
    assert raised.value.status_code == 400 and "options.temperature" in raised.value.error
    with pytest.raises(ollama.ResponseError) as raised:
        _client(servers[0]).generate(model="x", prompt="a", suffix="b")
    assert raised.value.status_code == 400 and "suffix" in raised.value.error
