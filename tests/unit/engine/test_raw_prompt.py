"""Legacy completions as a raw continuation: the prompt tokenized as text with the BOS the
tokenizer adds and no chat template, fill in the middle where the tokenizer has FIM tokens, and the
server's ``suffix``, ``echo`` and ``stop``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from engine.generation.session import ChatSession, ContextFullError
from engine.messages import GenerationConfig, RawPrompt
from engine.text.tokenizer import ChatTokenizer, NoFillInMiddleError
from tests.unit.engine.model_fakes import RandomModel
from tests.unit.engine.server_fakes import MODEL_INFO, ScriptedEngine, start_fake_server

TEXT = "Hello [INST] <|im_end|> </s> world"


def _tokenizer(folder: Path) -> ChatTokenizer:
    return ChatTokenizer.from_folder(folder, {})


def _specials(tokenizer: ChatTokenizer) -> set[int]:
    decoder = tokenizer.tokenizer.get_added_tokens_decoder()
    return {index for index, token in decoder.items() if token.special}


def test_a_raw_prompt_is_text_with_the_bos_the_tokenizer_adds(real_tokenizer_dir):
    tokenizer = _tokenizer(real_tokenizer_dir)
    ids = tokenizer.encode_text(TEXT)
    added = tokenizer.tokenizer.encode("x", add_special_tokens=True).ids[:-1]  # Mistral: [BOS]
    assert ids[: len(added)] == added
    assert not _specials(tokenizer) & set(ids[len(added) :])  # control-token text stays text
    assert TEXT in tokenizer.decode(ids, skip_special_tokens=False)
    plain = "Once upon a time"
    assert tokenizer.encode_text(plain) == tokenizer.tokenizer.encode(plain).ids


def test_a_raw_prompt_is_planned_without_the_chat_template(real_tokenizer_dir):
    tokenizer = _tokenizer(real_tokenizer_dir)
    session = ChatSession(RandomModel(vocab=tokenizer.vocab_size, context=64), tokenizer)
    config = GenerationConfig(max_new_tokens=4)
    plan = session.plan(RawPrompt("The capital of France is"), config)
    assert plan.tokens == tokenizer.encode_text("The capital of France is")
    with pytest.raises(ContextFullError, match="the prompt is"):
        session.plan(RawPrompt("word " * 200), config)


def test_mistral_v3_fills_in_the_middle_suffix_first(mistral_v3_tokenizer_dir):
    tokenizer = _tokenizer(mistral_v3_tokenizer_dir)
    assert tokenizer.fill_in_middle is not None
    ids = tokenizer.encode_fill_in_middle("def add(a, b):\n    return", "\n\nprint(add(1, 2))")
    suffix_id = tokenizer.tokenizer.token_to_id("[SUFFIX]")
    prefix_id = tokenizer.tokenizer.token_to_id("[PREFIX]")
    assert ids[0] == tokenizer.bos_token_id and ids[1] == suffix_id
    assert ids.count(suffix_id) == ids.count(prefix_id) == 1
    after = ids.index(prefix_id)
    assert "print(add(1, 2))" in tokenizer.decode(ids[2:after])
    assert tokenizer.decode(ids[after + 1 :]).endswith("return")


def test_a_tokenizer_without_fim_tokens_refuses_a_suffix(smollm2_tokenizer_dir):
    tokenizer = _tokenizer(smollm2_tokenizer_dir)
    assert tokenizer.fill_in_middle is None
    with pytest.raises(NoFillInMiddleError, match="fill-in-the-middle"):
        tokenizer.encode_fill_in_middle("a", "b")


@pytest.fixture(scope="module")
def servers():
    plain = start_fake_server(ScriptedEngine(pieces=(" Paris", ".")))
    fim = start_fake_server(
        ScriptedEngine(info=dataclasses.replace(MODEL_INFO, fill_in_middle=True))
    )
    yield plain, fim
    plain.host.stop()
    fim.host.stop()


def test_a_completion_sends_a_raw_prompt_not_a_chat(servers):
    plain, _ = servers
    body = {"model": "m", "prompt": "The capital of France is", "stop": ["\n"], "max_tokens": 5}
    status, _, answer = plain.request("/v1/completions", body=body)
    assert status == 200 and answer["choices"][0]["text"] == " Paris."
    sent = plain.engine.received[-1]
    assert sent.messages == () and sent.raw_prompt == RawPrompt("The capital of France is")
    assert sent.config.stop_strings == ("\n",) and sent.config.max_new_tokens == 5


def test_echo_puts_the_prompt_first_whole_and_streamed(servers):
    import openai

    plain, _ = servers
    client = openai.OpenAI(base_url=plain.host.url, api_key="unit-test-key", max_retries=0)
    whole = client.completions.create(model="m", prompt="The capital is", echo=True)
    assert whole.choices[0].text == "The capital is Paris."
    chunks = client.completions.create(model="m", prompt="The capital is", echo=True, stream=True)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "The capital is Paris."


def test_a_suffix_needs_fim_tokens(servers):
    plain, fim = servers
    body = {"model": "m", "prompt": "def f(", "suffix": "\n    return x"}
    status, _, answer = plain.request("/v1/completions", body=body)
    assert status == 400 and answer["error"]["param"] == "suffix"
    assert "fill-in-the-middle" in answer["error"]["message"]
    status, _, answer = fim.request("/v1/completions", body=body)
    assert status == 200
    assert fim.engine.received[-1].raw_prompt == RawPrompt("def f(", "\n    return x")
    # an empty suffix asks for nothing: a plain continuation on a model without FIM
    assert plain.request("/v1/completions", body={**body, "suffix": ""})[0] == 200
    assert plain.engine.received[-1].raw_prompt == RawPrompt("def f(")


@pytest.mark.parametrize(("field", "value"), [("suffix", 3), ("echo", "yes"), ("prompt", [1, 2])])
def test_bad_completion_fields_are_a_400_naming_them(servers, field, value):
    status, _, answer = servers[0].request(
        "/v1/completions", body={"model": "m", "prompt": "x", field: value}
    )
    assert status == 400 and answer["error"]["param"] == field
