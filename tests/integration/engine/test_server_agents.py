"""What agents and IDE plugins send, on the demo model (SmolLM2-135M-Instruct as it ships) through
the official openai client: tools forced and automatic, streamed tool calls, ``.parse()`` with a
pydantic model, json_object, a raw continuation, any model name. SmolLM2's template has no tools,
so its calls are written in the generic (Hermes) markup the server asks for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field

from tests.fixtures.server import start_served

pytestmark = pytest.mark.slow

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 40},
                "unit": {"enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


class WeatherArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")
    city: str
    unit: str


class Capital(BaseModel):
    country: str = Field(max_length=40)
    capital: str = Field(max_length=40)


@pytest.fixture(scope="module")
def served(smollm2_exact_dir: Path):
    running = start_served(smollm2_exact_dir)
    yield running
    running.worker.close()


def test_twenty_seeded_forced_calls_all_validate(served):
    client = served.client()
    choice = {"type": "function", "function": {"name": "get_weather"}}
    for seed in range(20):
        answer = client.chat.completions.create(
            model="gpt-4o", messages=ASK, tools=[WEATHER], tool_choice=choice,
            parallel_tool_calls=False, seed=seed, temperature=0.8, max_tokens=60,
        )  # fmt: skip
        assert answer.model == served.model
        assert answer.choices[0].finish_reason == "tool_calls"
        (call,) = answer.choices[0].message.tool_calls
        assert call.function.name == "get_weather"
        WeatherArguments.model_validate_json(call.function.arguments)


def test_a_required_call_streams_in_pieces(served):
    chunks = list(
        served.client().chat.completions.create(
            model="local",
            messages=ASK,
            tools=[WEATHER],
            tool_choice="required",
            stream=True,
            max_tokens=120,
            temperature=0,
        )
    )
    deltas = [d for c in chunks if c.choices for d in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].function.name == "get_weather" and deltas[0].id
    calls: dict[int, str] = {}  # parallel calls allowed: each by its index
    for delta in deltas:
        calls[delta.index] = calls.get(delta.index, "") + (delta.function.arguments or "")
    assert 1 <= len(calls) <= 4 and len(deltas) > 2 * len(calls)  # arguments in pieces
    for arguments in calls.values():
        WeatherArguments.model_validate_json(arguments)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_auto_answers_text_or_a_call_and_a_tool_result_is_answered(served):
    client = served.client()
    first = client.chat.completions.create(
        model="local", messages=ASK, tools=[WEATHER], max_tokens=60, temperature=0
    )
    message = first.choices[0].message
    assert message.content or message.tool_calls
    call_id = "call_1"
    history = [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [{"id": call_id, "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'}}]},
        {"role": "tool", "tool_call_id": call_id, "content": '{"celsius": 21, "sky": "clear"}'},
    ]  # fmt: skip
    second = client.chat.completions.create(
        model="local", messages=history, tools=[WEATHER], tool_choice="none", max_tokens=30
    )
    assert second.choices[0].message.content


def test_parse_with_a_pydantic_model(served):
    answer = served.client().chat.completions.parse(
        model="local",
        messages=[{"role": "user", "content": "The capital of France, as JSON."}],
        response_format=Capital,
        max_tokens=60,
        temperature=0,
    )
    assert isinstance(answer.choices[0].message.parsed, Capital)


def test_json_object(served):
    answer = served.client().chat.completions.create(
        model="local",
        messages=[{"role": "user", "content": "Describe a cat as a JSON object."}],
        response_format={"type": "json_object"},
        max_tokens=80,
        temperature=0,
    )
    if answer.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(answer.choices[0].message.content), dict)
    else:  # cut at max_tokens: still the start of one object
        assert answer.choices[0].message.content.startswith("{")


def test_a_completion_continues_the_text_without_the_template(served):
    client = served.client()
    prompt = "The capital of France is"
    answer = client.completions.create(
        model="local", prompt=prompt, max_tokens=4, temperature=0, echo=True
    )
    text = answer.choices[0].text
    assert text.startswith(prompt) and len(text) > len(prompt)
    # Through the template it would be a chat turn: more prompt tokens than the text alone.
    assert answer.usage.prompt_tokens <= 8
