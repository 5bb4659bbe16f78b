"""The clients agents are built with, against the server on a scripted engine: LangChain's
ChatOpenAI (bind_tools, with_structured_output by json_schema and by function calling) and
litellm (plain and tools). The engine's side (constrained decoding, the call format) is tested on
its own; here, that each library's requests are accepted and its parsers read our answers."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from tests.unit.engine.server_fakes import API_KEY, ScriptedEngine, start_fake_server

CALL = (
    '<tool_call>\n{"name": "Capital", ',
    '"arguments": {"country": "France", "city": "Paris"}}\n</tool_call>',
)
JSON = ('{"country": "France", ', '"city": "Paris"}')


class Capital(BaseModel):
    """The capital city of a country."""

    country: str
    city: str


@pytest.fixture(scope="module")
def servers():
    running = {
        "call": start_fake_server(ScriptedEngine(pieces=CALL)),
        "json": start_fake_server(ScriptedEngine(pieces=JSON)),
        "text": start_fake_server(ScriptedEngine(pieces=("Paris", "."))),
    }
    yield running
    for server in running.values():
        server.host.stop()


def _chat_openai(server):
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(base_url=server.host.url, api_key=API_KEY, model="local", max_retries=0)


def test_langchain_bind_tools_reads_the_call(servers):
    answer = _chat_openai(servers["call"]).bind_tools([Capital]).invoke("Capital of France?")
    (call,) = answer.tool_calls
    assert call["name"] == "Capital" and call["args"] == {"country": "France", "city": "Paris"}
    assert call["id"].startswith("call_")
    sent = servers["call"].engine.received[-1].config
    assert '"Capital"' in sent.tools and sent.tool_choice == "auto"


def test_langchain_structured_output_by_function_calling_forces_the_call(servers):
    model = _chat_openai(servers["call"]).with_structured_output(Capital, method="function_calling")
    assert model.invoke("Capital of France?") == Capital(country="France", city="Paris")
    assert servers["call"].engine.received[-1].config.tool_choice == "Capital"


def test_langchain_structured_output_by_json_schema(servers):
    model = _chat_openai(servers["json"]).with_structured_output(Capital, method="json_schema")
    assert model.invoke("Capital of France?") == Capital(country="France", city="Paris")
    assert '"city"' in servers["json"].engine.received[-1].config.json_schema


def test_litellm_plain_and_with_tools(servers, monkeypatch):
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch from the internet
    import litellm

    common = {"model": "openai/local", "api_key": API_KEY, "num_retries": 0}
    text = litellm.completion(
        **common, api_base=servers["text"].host.url, messages=[{"role": "user", "content": "Hi"}]
    )
    assert text.choices[0].message.content == "Paris."
    tool = {
        "type": "function",
        "function": {"name": "Capital", "parameters": Capital.model_json_schema()},
    }
    called = litellm.completion(
        **common, api_base=servers["call"].host.url, tools=[tool], tool_choice="required",
        messages=[{"role": "user", "content": "Capital of France?"}],
    )  # fmt: skip
    assert called.choices[0].finish_reason == "tool_calls"
    assert called.choices[0].message.tool_calls[0].function.name == "Capital"
