"""Tool calls over HTTP through the official openai client, on a scripted engine whose answer is a
call in the generic (Hermes) markup: OpenAI's tool_calls whole and streamed, the request's tools
and tool_choice carried to the engine, a history of calls accepted, bad tools refused by name."""

from __future__ import annotations

import json

import pytest

from engine.messages import ToolCall
from tests.unit.engine.server_fakes import API_KEY, ScriptedEngine, start_fake_server

CALL = ('<tool_call>\n{"name": "get_weather", ', '"arguments": {"city": "Paris"}}\n</tool_call>')
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
ASK = [{"role": "user", "content": "Weather in Paris?"}]


@pytest.fixture(scope="module")
def servers():
    calling = start_fake_server(ScriptedEngine(pieces=CALL))
    talking = start_fake_server(ScriptedEngine(pieces=("It is ", "sunny.")))
    yield calling, talking
    calling.host.stop()
    talking.host.stop()


def _client(server):
    import openai

    return openai.OpenAI(base_url=server.host.url, api_key=API_KEY, max_retries=0)


def test_a_call_is_answered_as_tool_calls_with_an_id(servers):
    calling, _ = servers
    choice = {"type": "function", "function": {"name": "get_weather"}}
    answer = _client(calling).chat.completions.create(
        model="m", messages=ASK, tools=TOOLS, tool_choice=choice, parallel_tool_calls=False
    )
    message = answer.choices[0].message
    assert answer.choices[0].finish_reason == "tool_calls"
    assert message.content is None and len(message.tool_calls) == 1
    call = message.tool_calls[0]
    assert call.id.startswith("call_") and call.type == "function"
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "get_weather",
        {"city": "Paris"},
    )
    config = calling.engine.received[-1].config
    assert json.loads(config.tools) == TOOLS
    assert (config.tool_choice, config.parallel_tool_calls) == ("get_weather", False)


def test_a_streamed_call_arrives_in_pieces_as_openai_sends_it(servers):
    calling, _ = servers
    chunks = list(
        _client(calling).chat.completions.create(
            model="m", messages=ASK, tools=TOOLS, tool_choice="required", stream=True
        )
    )
    deltas = [d for c in chunks if c.choices for d in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].id.startswith("call_") and deltas[0].function.name == "get_weather"
    assert len(deltas) > 2  # the arguments came in several pieces
    arguments = "".join(d.function.arguments or "" for d in deltas)
    assert json.loads(arguments) == {"city": "Paris"}
    assert not any(c.choices[0].delta.content for c in chunks if c.choices)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_with_auto_a_plain_answer_stays_text_whole_and_streamed(servers):
    _, talking = servers
    client = _client(talking)
    answer = client.chat.completions.create(model="m", messages=ASK, tools=TOOLS)
    assert answer.choices[0].message.content == "It is sunny."
    assert answer.choices[0].message.tool_calls is None
    assert answer.choices[0].finish_reason == "stop"
    chunks = list(client.chat.completions.create(model="m", messages=ASK, tools=TOOLS, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "It is sunny."


def test_tool_choice_none_never_parses_calls(servers):
    calling, _ = servers
    answer = _client(calling).chat.completions.create(
        model="m", messages=ASK, tools=TOOLS, tool_choice="none"
    )
    assert answer.choices[0].message.content == "".join(CALL)
    assert answer.choices[0].finish_reason == "stop"


def test_a_history_replaying_a_call_reaches_the_engine(servers):
    _, talking = servers
    history = [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_9",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_9", "content": '{"celsius": 21}'},
    ]
    answer = _client(talking).chat.completions.create(model="m", messages=history, tools=TOOLS)
    assert answer.choices[0].message.content == "It is sunny."
    sent = talking.engine.received[-1].messages
    assert sent[1].tool_calls == (ToolCall("call_9", "get_weather", '{"city": "Paris"}'),)
    assert (sent[2].role, sent[2].tool_call_id, sent[2].content) == (
        "tool",
        "call_9",
        '{"celsius": 21}',
    )


@pytest.mark.parametrize(
    ("extra", "param", "named"),
    [
        (
            {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            "tool_choice",
            "nope",
        ),
        ({"tool_choice": "required"}, "tool_choice", "no tools"),
        (
            {
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": "f",
                            "parameters": {"type": "object", "dependentRequired": {}},
                        },
                    }
                ]
            },
            "tools[0].function.parameters",
            "dependentRequired",
        ),
        ({"tools": [{"type": "retrieval"}]}, "tools[0]", "function"),
        ({"tools": TOOLS, "parallel_tool_calls": "yes"}, "parallel_tool_calls", "true or false"),
    ],
)
def test_bad_tools_are_a_400_naming_them(servers, extra, param, named):
    status, _, body = servers[1].request(
        "/v1/chat/completions", body={"model": "m", "messages": ASK, **extra}
    )
    assert status == 400
    assert body["error"]["param"] == param and named in body["error"]["message"]
