"""Chat template, tokenizer and streaming detokenizer against transformers, on real tokenizers."""

from __future__ import annotations

import pytest

from engine.chat_template import ChatTemplateError
from engine.detokenizer import REPLACEMENT, StreamingDetokenizer
from engine.messages import ChatMessage
from engine.tokenizer import ChatTokenizer

CONVERSATIONS = [
    [ChatMessage("user", "Hello there!")],
    [
        ChatMessage("user", "What is 2+2?"),
        ChatMessage("assistant", "It is 4."),
        ChatMessage("user", "And 3+3? Answer in 日本語 please 😀"),
    ],
    [
        ChatMessage("system", "You are terse."),
        ChatMessage("user", "Name a colour."),
        ChatMessage("assistant", " Blue. "),
        ChatMessage("user", "Another."),
    ],
]


@pytest.fixture(scope="module", params=["mistral_v3", "smollm2"])
def tokenizer_folder(request):
    if request.param == "mistral_v3":
        return request.getfixturevalue("mistral_v3_tokenizer_dir")
    return request.getfixturevalue("smollm2_int4_dir")


@pytest.mark.parametrize("conversation", CONVERSATIONS, ids=["one", "multi-turn", "system"])
def test_prompt_ids_equal_transformers_apply_chat_template(tokenizer_folder, conversation):
    from transformers import AutoTokenizer

    reference = AutoTokenizer.from_pretrained(str(tokenizer_folder))
    ours = ChatTokenizer.from_folder(tokenizer_folder)
    payload = [{"role": m.role, "content": m.content} for m in conversation]
    expected = reference.apply_chat_template(payload, add_generation_prompt=True, tokenize=True)
    if hasattr(expected, "keys"):
        expected = expected["input_ids"]
    assert ours.encode_chat(conversation) == list(expected)


def test_template_errors_are_reported(mistral_v3_tokenizer_dir):
    tokenizer = ChatTokenizer.from_folder(mistral_v3_tokenizer_dir)
    with pytest.raises(ChatTemplateError, match="roles must alternate"):
        tokenizer.encode_chat([ChatMessage("user", "a"), ChatMessage("user", "b")])


@pytest.mark.parametrize(
    "text",
    [
        "Hello world, this is a test.",
        "  leading spaces and   gaps\nnew line",
        "Emoji 😀👍🏽 and 日本語のテキスト, ünïcödé.",
        "code: `def f(x):\n    return x`",
    ],
)
def test_streaming_detokenizer_never_splits_a_character(tokenizer_folder, text):
    tokenizer = ChatTokenizer.from_folder(tokenizer_folder)
    ids = tokenizer.encode(text)
    detokenizer = StreamingDetokenizer(tokenizer)
    pieces = []
    for token in ids:
        detokenizer.add_token(token)
        pieces.append(detokenizer.last_segment)
    detokenizer.finalize()
    pieces.append(detokenizer.last_segment)
    assert not any(REPLACEMENT in piece for piece in pieces)
    assert "".join(pieces) == tokenizer.decode(ids) == detokenizer.text
    assert sum(1 for p in pieces if p) > 1  # it streams, not one piece at the end


def test_byte_fallback_pieces_wait_for_the_whole_character(mistral_v3_tokenizer_dir):
    tokenizer = ChatTokenizer.from_folder(mistral_v3_tokenizer_dir)
    # A rare CJK character SentencePiece spells as three byte tokens <0xE4><0xB8><0x80>.
    byte_tokens = [tokenizer.tokenizer.token_to_id(f"<0x{b:02X}>") for b in "一".encode()]
    if None in byte_tokens:
        pytest.skip("this tokenizer has no byte fallback tokens")
    detokenizer = StreamingDetokenizer(tokenizer)
    emitted = []
    for token in byte_tokens:
        detokenizer.add_token(token)
        emitted.append(detokenizer.last_segment)
    assert emitted[:2] == ["", ""] and emitted[2] == "一"
