"""The streaming detokenizer: whole characters only, and exactly the text decode gives."""

from __future__ import annotations

import pytest

from engine.detokenizer import REPLACEMENT, StreamingDetokenizer
from engine.tokenizer import ChatTokenizer

TEXTS = [
    "Hello world, this is a test.",
    "  leading spaces and   gaps\nnew line",
    "Emoji 😀👍🏽 and 日本語のテキスト, ünïcödé.",
    "code: `def f(x):\n    return x`",
    "Ωmega 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ꙮ 🧑‍🚀🏳️‍🌈",
]


def _stream(tokenizer, ids):
    detokenizer = StreamingDetokenizer(tokenizer)
    pieces = []
    for token in ids:
        detokenizer.add_token(token)
        pieces.append(detokenizer.last_segment)
    detokenizer.finalize()
    pieces.append(detokenizer.last_segment)
    return detokenizer, pieces


@pytest.mark.parametrize("text", TEXTS, ids=["ascii", "spaces", "emoji-cjk", "code", "rare"])
def test_streaming_detokenizer_never_splits_a_character(real_tokenizer_dir, text):
    tokenizer = ChatTokenizer.from_folder(real_tokenizer_dir)
    ids = tokenizer.encode(text)
    detokenizer, pieces = _stream(tokenizer, ids)
    assert not any(REPLACEMENT in piece for piece in pieces)
    assert "".join(pieces) == tokenizer.decode(ids) == detokenizer.text
    assert sum(1 for p in pieces if p) > 1  # it streams, not one piece at the end


def test_an_answer_after_a_prompt_keeps_its_leading_space(mistral_v3_tokenizer_dir):
    # SentencePiece: "▁Paris" alone decodes to "Paris"; decode() of the answer ids does the same,
    # and every later word keeps its space.
    tokenizer = ChatTokenizer.from_folder(mistral_v3_tokenizer_dir)
    ids = tokenizer.encode("The capital is Paris. It is big.")
    _, pieces = _stream(tokenizer, ids)
    assert "".join(pieces) == tokenizer.decode(ids)
    assert any(piece.startswith(" ") for piece in pieces)


def test_byte_fallback_pieces_wait_for_the_whole_character(mistral_v3_tokenizer_dir):
    tokenizer = ChatTokenizer.from_folder(mistral_v3_tokenizer_dir)
    # SentencePiece byte fallback spells a character as byte tokens <0xE4><0xB8><0x80>.
    byte_tokens = [tokenizer.tokenizer.token_to_id(f"<0x{b:02X}>") for b in "一".encode()]
    assert None not in byte_tokens
    start = tokenizer.encode("A")
    detokenizer = StreamingDetokenizer(tokenizer)
    emitted = []
    for token in [*start, *byte_tokens]:
        detokenizer.add_token(token)
        emitted.append(detokenizer.last_segment)
    assert emitted == ["A", "", "", "一"]


def test_byte_level_bpe_emoji_waits_for_all_its_bytes(smollm2_int4_dir):
    tokenizer = ChatTokenizer.from_folder(smollm2_int4_dir)
    ids = tokenizer.encode("🧑‍🚀")  # several byte-level tokens, none a whole character alone
    _, pieces = _stream(tokenizer, ids)
    assert len(ids) > 1 and "".join(pieces) == "🧑‍🚀"
    assert all(REPLACEMENT not in p for p in pieces)


def test_an_unfinished_character_at_the_end_comes_out_as_decode_shows_it(
    mistral_v3_tokenizer_dir,
):
    tokenizer = ChatTokenizer.from_folder(mistral_v3_tokenizer_dir)
    ids = [*tokenizer.encode("ok"), tokenizer.tokenizer.token_to_id("<0xE4>")]
    _, pieces = _stream(tokenizer, ids)
    assert pieces[-2] == "" and "".join(pieces) == tokenizer.decode(ids)


def test_reset_starts_over(mistral_v3_tokenizer_dir):
    tokenizer = ChatTokenizer.from_folder(mistral_v3_tokenizer_dir)
    detokenizer = StreamingDetokenizer(tokenizer)
    for token in tokenizer.encode("first answer"):
        detokenizer.add_token(token)
    detokenizer.reset()
    ids = tokenizer.encode("second")
    for token in ids:
        detokenizer.add_token(token)
    detokenizer.finalize()
    assert detokenizer.text == tokenizer.decode(ids) and detokenizer.tokens == ids


def test_each_step_decodes_a_bounded_window(mistral_v3_tokenizer_dir):
    tokenizer = ChatTokenizer.from_folder(mistral_v3_tokenizer_dir)

    class CountingTokenizer:
        longest = 0

        def decode(self, ids, skip_special_tokens=True):
            CountingTokenizer.longest = max(CountingTokenizer.longest, len(ids))
            return tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)

    ids = tokenizer.encode("word " * 300)
    detokenizer = StreamingDetokenizer(CountingTokenizer())
    for token in ids:
        detokenizer.add_token(token)
    assert len(ids) >= 300 and CountingTokenizer.longest <= 3
