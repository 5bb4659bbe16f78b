"""The streaming detokenizer: whole characters only, and exactly the text decode gives."""

from __future__ import annotations

import pytest

from engine.generation.detokenizer import REPLACEMENT, StreamingDetokenizer
from engine.text.tokenizer import ChatTokenizer

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


def test_byte_fallback_pieces_wait_for_the_whole_run(mistral_v3_tokenizer_dir):
    tokenizer = ChatTokenizer.from_folder(mistral_v3_tokenizer_dir)
    # SentencePiece byte fallback spells a character as byte tokens <0xE4><0xB8><0x80>; decode
    # takes a run of them as one unit, so the run comes out with the next ordinary token.
    byte_tokens = [tokenizer.tokenizer.token_to_id(f"<0x{b:02X}>") for b in "一".encode()]
    assert None not in byte_tokens
    start, after = tokenizer.encode("A"), tokenizer.encode("A B")[-1]
    detokenizer = StreamingDetokenizer(tokenizer)
    emitted = []
    for token in [*start, *byte_tokens, after]:
        detokenizer.add_token(token)
        emitted.append(detokenizer.last_segment)
    assert emitted == ["A", "", "", "", "一 B"]


def test_a_byte_run_cut_mid_character_turns_into_what_decode_gives(mistral_v3_tokenizer_dir):
    # decode() makes every byte of an invalid run U+FFFD, even the complete newline before the
    # half character: streaming must not have shown that newline already.
    tokenizer = ChatTokenizer.from_folder(mistral_v3_tokenizer_dir)
    run = [tokenizer.tokenizer.token_to_id(f"<0x{b:02X}>") for b in b"\n\xe4\xb8"]
    ids = [*tokenizer.encode("ok"), *run]
    _, pieces = _stream(tokenizer, ids)
    assert "".join(pieces) == tokenizer.decode(ids) == "ok" + REPLACEMENT * 3


def test_byte_level_bpe_emoji_waits_for_all_its_bytes(smollm2_tokenizer_dir):
    tokenizer = ChatTokenizer.from_folder(smollm2_tokenizer_dir)
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


ALPHABET = "ab Z\n  éü日本語😀👍🏽🧑‍🚀ꙮ𝔘\t.,"


def _random_sequences(tokenizer, count=150, seed=0):
    """Token id sequences as a model might produce them: encoded multi-byte text cut at random
    token counts (a character's bytes split across the cut), and uniformly random ids (byte
    tokens, special tokens, anything)."""
    import random

    rng = random.Random(seed)
    vocab = tokenizer.vocab_size
    for _ in range(count):
        text = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 30)))
        ids = tokenizer.encode(text)
        yield ids[: rng.randint(1, len(ids))]
        yield [rng.randrange(vocab) for _ in range(rng.randint(1, 12))]


def test_streamed_text_always_equals_decode_wherever_the_answer_is_cut(real_tokenizer_dir):
    tokenizer = ChatTokenizer.from_folder(real_tokenizer_dir)
    for ids in _random_sequences(tokenizer):
        expected = tokenizer.decode(ids)
        # Read after every token, as a UI would ...
        _, pieces = _stream(tokenizer, ids)
        assert "".join(pieces) == expected, ids
        # ... and as the generation loop does: the last token's add_token and finalize, read once.
        detokenizer = StreamingDetokenizer(tokenizer)
        streamed = []
        for position, token in enumerate(ids):
            detokenizer.add_token(token)
            if position == len(ids) - 1:
                detokenizer.finalize()
            streamed.append(detokenizer.last_segment)
        assert "".join(streamed) == expected == detokenizer.text, ids


def test_the_last_token_survives_finalize(mistral_v3_tokenizer_dir):
    tokenizer = ChatTokenizer.from_folder(mistral_v3_tokenizer_dir)
    ids = tokenizer.encode("The answer is forty-two")
    detokenizer = StreamingDetokenizer(tokenizer)
    for token in ids[:-1]:
        detokenizer.add_token(token)
    head = detokenizer.last_segment
    detokenizer.add_token(ids[-1])
    detokenizer.finalize()
    assert head + detokenizer.last_segment == tokenizer.decode(ids)
    assert detokenizer.last_segment == ""  # read once: nothing is given twice
