"""A 10-turn chat through the official ``openai`` client against ``coreml-chat-serve``.

Goals: tokens fed ÷ new tokens ≤ 1.1 (the client resends the whole history every turn, as every
OpenAI client does; the server matches it to the kept kv-cache state), and the HTTP path adds at
most 0.5 ms per token over the in-process path (the same chat through ``EngineWorker`` directly,
as the window uses it). Per token = (last token's arrival - first token's arrival) ÷ (tokens - 1)
per turn, median over the turns; greedy, so both paths produce the same tokens.
Then a tool-calling conversation over HTTP (a forced call, its result, the answer; three rounds,
as an agent drives it; it fits a context of 512): its tokens fed ÷ new tokens too (goal ≤ 1.1: the replayed call and result
render to the tokens the state holds).
Runs on the demo model (SmolLM2-135M-Instruct int4, or ``--model FOLDER``; ``--tools-only``: the
tool conversation alone); prints one JSON object.
"""

from __future__ import annotations

import json
import os
import queue
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # make bench runs files

from benchmarks._goals import at_most, report
from benchmarks._models import REPO, demo_model_folder
from benchmarks.chat_feed_ratio import QUESTIONS
from engine.messages import (
    ChatMessage,
    Generate,
    GenerationConfig,
    GenerationFinished,
    LoadModel,
    ModelLoaded,
    TokenText,
)

MAX_TOKENS = 24
API_KEY = "bench-server-reuse"


def _start_server(folder: Path) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "engine.server.cli", str(folder), "--port", "0"]
    environment = {**os.environ, "COREML_CHAT_API_KEY": API_KEY, "PYTHONPATH": str(REPO)}
    server = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=environment
    )
    assert server.stdout is not None
    for line in server.stdout:
        if line.startswith("serving: "):
            return server, line.split(" ", 1)[1].strip()
    server.wait()
    raise RuntimeError(f"coreml-chat-serve exited ({server.returncode}) before serving")


def _per_token(first: float | None, last: float, tokens: int) -> float | None:
    if first is None or tokens < 2:
        return None
    return (last - first) / (tokens - 1)


def http_chat(url: str, model: str) -> dict:
    import openai

    client = openai.OpenAI(base_url=url, api_key=API_KEY, max_retries=0)
    messages: list[dict] = []
    fed = new = previous_prompt = 0
    per_token: list[float] = []
    for question in QUESTIONS:
        messages.append({"role": "user", "content": question})
        pieces, first, usage = [], None, None
        stream = client.chat.completions.create(
            model=model,
            messages=messages,
            max_tokens=MAX_TOKENS,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        last = time.perf_counter()
        for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage
            if chunk.choices and chunk.choices[0].delta.content:
                last = time.perf_counter()
                first = first or last
                pieces.append(chunk.choices[0].delta.content)
        if usage is None:
            raise RuntimeError("the stream ended without usage")
        cached = usage.prompt_tokens_details.cached_tokens
        fed += usage.prompt_tokens - cached + usage.completion_tokens
        new += (usage.prompt_tokens - previous_prompt) + usage.completion_tokens
        previous_prompt = usage.prompt_tokens + usage.completion_tokens
        value = _per_token(first, last, usage.completion_tokens)
        if value is not None:
            per_token.append(value)
        messages.append({"role": "assistant", "content": "".join(pieces)})
    return {"fed": fed, "new": new, "per_token": per_token}


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 30},
                "unit": {"enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
TOOL_QUESTIONS = ("Weather in Paris?", "And in Rome?", "What about Oslo?")


def http_tool_chat(url: str, model: str) -> dict:
    """Four rounds of: a question, the forced call, its result, the model's answer."""
    import openai

    client = openai.OpenAI(base_url=url, api_key=API_KEY, max_retries=0)
    messages: list[dict] = []
    fed = new = previous_prompt = 0
    calls_valid = 0

    def count(usage) -> None:
        nonlocal fed, new, previous_prompt
        cached = usage.prompt_tokens_details.cached_tokens
        fed += usage.prompt_tokens - cached + usage.completion_tokens
        new += (usage.prompt_tokens - previous_prompt) + usage.completion_tokens
        previous_prompt = usage.prompt_tokens + usage.completion_tokens

    for round_number, question in enumerate(TOOL_QUESTIONS):
        messages.append({"role": "user", "content": question})
        called = client.chat.completions.create(
            model=model, messages=messages, tools=[WEATHER_TOOL], temperature=0, max_tokens=60,
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
            parallel_tool_calls=False,
        )  # fmt: skip
        count(called.usage)
        (call,) = called.choices[0].message.tool_calls
        arguments = json.loads(call.function.arguments)
        calls_valid += isinstance(arguments.get("city"), str)
        messages.append(called.choices[0].message.model_dump(exclude_none=True))
        result = {"city": arguments.get("city"), "celsius": 18 + round_number, "sky": "clear"}
        messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)})
        answered = client.chat.completions.create(
            model=model, messages=messages, tools=[WEATHER_TOOL], tool_choice="none",
            temperature=0, max_tokens=16,
        )  # fmt: skip
        count(answered.usage)
        messages.append({"role": "assistant", "content": answered.choices[0].message.content})
    return {"fed": fed, "new": new, "calls_valid": calls_valid}


def in_process_chat(folder: Path) -> list[float]:
    from engine.worker import EngineWorker

    events: queue.Queue = queue.Queue()
    worker = EngineWorker(events.put)
    try:
        worker.submit(LoadModel(1, str(folder)))
        if not isinstance(events.get(timeout=1800), ModelLoaded):
            raise RuntimeError("the model did not load in-process")
        config = GenerationConfig(temperature=0.0, max_new_tokens=MAX_TOKENS, context_policy="stop")
        messages: list[ChatMessage] = []
        per_token: list[float] = []
        for index, question in enumerate(QUESTIONS):
            messages.append(ChatMessage("user", question))
            worker.submit(Generate(100 + index, "bench", tuple(messages), config))
            first, last = None, time.perf_counter()
            while True:
                event = events.get(timeout=600)
                if isinstance(event, TokenText) and event.text:
                    last = time.perf_counter()
                    first = first or last
                if isinstance(event, GenerationFinished):
                    break
            value = _per_token(first, last, event.stats.generated_tokens)
            if value is not None:
                per_token.append(value)
            messages.append(ChatMessage("assistant", event.text))
        return per_token
    finally:
        worker.close()


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=None, help="model folder (the demo)")
    parser.add_argument("--tools-only", action="store_true", help="the tool conversation alone")
    args = parser.parse_args()
    folder = args.model or demo_model_folder()
    from engine.package.model import find_package

    model = find_package(folder).stem
    server, url = _start_server(folder)
    try:
        tools = http_tool_chat(url, model)
        http = None if args.tools_only else http_chat(url, model)
    finally:
        server.terminate()
        server.wait(30)
    tool_report = {
        "tool_rounds": len(TOOL_QUESTIONS),
        "tool_tokens_fed": tools["fed"],
        "tool_new_tokens": tools["new"],
        "tool_fed_over_new": round(tools["fed"] / tools["new"], 3),
        "tool_calls_valid": tools["calls_valid"],
    }
    if http is None:
        report(
            "server_reuse",
            {"tool_fed_over_new": at_most(tools["fed"] / tools["new"], 1.1)},
            tool_report,
        )
        return 0
    in_process = in_process_chat(folder)
    http_ms = statistics.median(http["per_token"]) * 1000
    in_process_ms = statistics.median(in_process) * 1000
    report(
        "server_reuse",
        {
            "fed_over_new": at_most(http["fed"] / http["new"], 1.1),
            "added_ms_per_token": at_most(http_ms - in_process_ms, 0.5, "ms"),
            "tool_fed_over_new": at_most(tools["fed"] / tools["new"], 1.1),
        },
        {
            "turns": len(QUESTIONS),
            "tokens_fed": http["fed"],
            "new_tokens": http["new"],
            "http_ms_per_token": round(http_ms, 3),
            "in_process_ms_per_token": round(in_process_ms, 3),
            **tool_report,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
