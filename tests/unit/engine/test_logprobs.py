"""logprobs: the sampled tokens' log-probabilities under the model's distribution, recorded beside
sampling, and OpenAI's shapes for them (chat's ``content`` list, the legacy parallel lists)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.generation.generate import stream_generate
from engine.generation.logprobs import LogprobRecorder
from engine.generation.session import ChatSession
from engine.messages import ChatMessage, GenerationConfig
from engine.text.tokenizer import ChatTokenizer
from tests.unit.engine.model_fakes import RandomModel
from tests.unit.engine.server_fakes import API_KEY, ScriptedEngine, start_fake_server


class _Texts:
    def decode(self, ids: list[int], *, skip_special_tokens: bool = True) -> str:
        return f"<{ids[0]}>"


def test_a_recorded_logprob_is_the_log_softmax_of_the_logits():
    logits = np.array([0.0, 2.0, -1.0, 1.0], dtype=np.float16)
    recorder = LogprobRecorder(_Texts(), 2)
    recorder.record(logits, 3)
    (taken,) = recorder.take()
    expected = logits.astype(np.float64) - np.log(np.exp(logits.astype(np.float64)).sum())
    assert taken.token == "<3>" and taken.logprob == pytest.approx(expected[3], abs=1e-6)
    assert [t for t, _ in taken.top] == ["<1>", "<3>"]
    assert [lp for _, lp in taken.top] == pytest.approx([expected[1], expected[3]], abs=1e-6)
    assert recorder.take() == ()


def test_every_sampled_token_is_reported_once(smollm2_tokenizer_dir: Path):
    tokenizer = ChatTokenizer.from_folder(smollm2_tokenizer_dir, {})
    session = ChatSession(RandomModel(vocab=tokenizer.vocab_size), tokenizer)
    config = GenerationConfig(max_new_tokens=12, temperature=0, top_logprobs=3)
    responses = list(
        stream_generate(session, session.new_cache(), (ChatMessage("user", "Hi"),), config)
    )
    reported = [entry for r in responses for entry in r.logprobs]
    assert len(reported) == responses[-1].stats.generated_tokens
    for entry in reported:  # greedy: the chosen token is the most probable one
        assert entry.top[0] == (entry.token, entry.logprob) and entry.logprob <= 0
    text = "".join(r.text for r in responses)
    assert "".join(entry.token for entry in reported) == text
    plain = GenerationConfig(max_new_tokens=4, temperature=0)
    assert all(
        not r.logprobs
        for r in stream_generate(session, session.new_cache(), (ChatMessage("user", "Hi"),), plain)
    )


@pytest.fixture(scope="module")
def server():
    running = start_fake_server(ScriptedEngine(pieces=("Hello", ", world")))
    yield running
    running.host.stop()


def test_openai_logprobs_whole_and_streamed(server):
    import openai

    client = openai.OpenAI(base_url=server.host.url, api_key=API_KEY, max_retries=0)
    ask = [{"role": "user", "content": "Hi"}]
    answer = client.chat.completions.create(model="m", messages=ask, logprobs=True, top_logprobs=2)
    content = answer.choices[0].logprobs.content
    assert [(c.token, c.logprob) for c in content] == [("Hello", -0.25), (", world", -0.5)]
    assert [t.token for t in content[0].top_logprobs] == ["alt0", "alt1"]
    assert content[0].bytes == list(b"Hello")
    assert server.engine.received[-1].config.top_logprobs == 2
    chunks = client.chat.completions.create(model="m", messages=ask, logprobs=True, stream=True)
    streamed = [
        c
        for chunk in chunks
        if chunk.choices and chunk.choices[0].logprobs
        for c in chunk.choices[0].logprobs.content
    ]
    assert [c.token for c in streamed] == ["Hello", ", world"]
    legacy = client.completions.create(model="m", prompt="x", logprobs=1)
    assert legacy.choices[0].logprobs.tokens == ["Hello", ", world"]
    assert legacy.choices[0].logprobs.text_offset == [0, 5]
    plain = client.chat.completions.create(model="m", messages=ask)
    assert plain.choices[0].logprobs is None


def test_top_logprobs_without_logprobs_is_a_400(server):
    body = {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "top_logprobs": 2}
    status, _, answer = server.request("/v1/chat/completions", body=body)
    assert status == 400 and answer["error"]["param"] == "top_logprobs"
