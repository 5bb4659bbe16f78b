"""response_format over HTTP, on a scripted engine: the schema the client sends reaches the
engine's GenerationConfig (the engine's constrained decoding is tested in test_grammar.py), and a
schema the grammar engine cannot enforce is a 400 naming the feature."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from tests.unit.engine.server_fakes import API_KEY, ScriptedEngine, start_fake_server


class City(BaseModel):
    name: str
    population: int


@pytest.fixture(scope="module")
def server():
    running = start_fake_server(ScriptedEngine(pieces=('{"name": "Paris", ', '"population": 2}')))
    yield running
    running.host.stop()


def _chat(**extra: object) -> dict:
    return {"model": "m", "messages": [{"role": "user", "content": "A city as JSON"}], **extra}


def test_openai_parse_with_a_pydantic_model_sends_its_schema(server):
    import openai

    client = openai.OpenAI(base_url=server.host.url, api_key=API_KEY, max_retries=0)
    answer = client.chat.completions.parse(
        model="m", messages=_chat()["messages"], response_format=City
    )
    assert answer.choices[0].message.parsed == City(name="Paris", population=2)
    schema = json.loads(server.engine.received[-1].config.json_schema)
    assert schema["properties"].keys() == {"name", "population"}
    assert schema["additionalProperties"] is False  # the strict schema openai made of City


def test_json_object_asks_for_any_object_and_text_for_nothing(server):
    status, _, _ = server.request(
        "/v1/chat/completions", body=_chat(response_format={"type": "json_object"})
    )
    assert status == 200
    assert json.loads(server.engine.received[-1].config.json_schema) == {"type": "object"}
    status, _, _ = server.request(
        "/v1/chat/completions", body=_chat(response_format={"type": "text"})
    )
    assert status == 200 and server.engine.received[-1].config.json_schema is None


@pytest.mark.parametrize(
    ("response_format", "param", "named"),
    [
        (
            {
                "type": "json_schema",
                "json_schema": {
                    "name": "x",
                    "schema": {"type": "object", "dependentRequired": {"a": ["b"]}},
                },
            },
            "response_format.json_schema.schema",
            "dependentRequired",
        ),
        ({"type": "yaml"}, "response_format", "json_schema"),
        ({"type": "json_schema", "json_schema": "x"}, "response_format.json_schema", "schema"),
    ],
)
def test_a_response_format_that_cannot_be_honoured_is_a_400_naming_it(
    server, response_format, param, named
):
    status, _, body = server.request(
        "/v1/chat/completions", body=_chat(response_format=response_format)
    )
    assert status == 400
    assert body["error"]["param"] == param and named in body["error"]["message"]
