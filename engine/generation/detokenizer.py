"""Streaming detokenization: text for each new token, never half a UTF-8 character.

Each step decodes only a small window (the tokens since the last emitted piece, plus the token
before them, so SentencePiece's leading spaces come out right) and emits the new text unless it
ends in U+FFFD, the sign of a character whose bytes have not all arrived. Interface as mlx-lm's:
``reset``, ``add_token``, ``finalize``, ``last_segment``, ``text``. As in mlx-lm, ``last_segment``
is the text produced since it was last read, so a caller that reads it once after ``add_token``
and ``finalize`` of the last token gets both pieces (the answer never loses its last word).

SentencePiece's byte fallback decodes a run of byte tokens (``<0xE4>``...) as one unit, and all of
it becomes U+FFFD when the run is not valid UTF-8: a newline spelled ``<0x0A>`` turns into U+FFFD
when the bytes after it are half a character. So text is not emitted while the last token is a
byte token or a skipped special token (decode drops it, joining the runs around it); the run is
emitted with the next ordinary token, or by ``finalize``. The streamed text then always equals
``decode`` of all the ids, however the answer is cut.
"""

from __future__ import annotations

from typing import Any

REPLACEMENT = "\ufffd"


def _unsettled_ids(tokenizer: Any, *, skip_special_tokens: bool) -> frozenset[int]:
    """Byte-fallback tokens, and special tokens when decode skips them (see the module docstring).

    Read from the ``tokenizers.Tokenizer`` inside ``tokenizer`` (a ``ChatTokenizer``); a tokenizer
    without one (a test double with only ``decode``) holds nothing back."""
    inner = getattr(tokenizer, "tokenizer", None)
    if inner is None or not hasattr(inner, "token_to_id"):
        return frozenset()
    ids = {inner.token_to_id(f"<0x{byte:02X}>") for byte in range(256)}
    if skip_special_tokens:
        added = inner.get_added_tokens_decoder()
        ids.update(token_id for token_id, token in added.items() if token.special)
    ids.discard(None)
    return frozenset(ids)


class StreamingDetokenizer:
    def __init__(self, tokenizer: Any, *, skip_special_tokens: bool = True) -> None:
        self._tokenizer = tokenizer  # has decode(ids, skip_special_tokens=...)
        self._skip = skip_special_tokens
        self._unsettled = _unsettled_ids(tokenizer, skip_special_tokens=skip_special_tokens)
        self.reset()

    def reset(self) -> None:
        self.tokens: list[int] = []
        self._prefix_offset = 0
        self._read_offset = 0
        self._segments: list[str] = []
        self._unread: list[str] = []  # segments produced since last_segment was read

    def _decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=self._skip)

    def add_token(self, token: int) -> None:
        self.tokens.append(token)
        if token in self._unsettled:
            return  # a byte run may continue: its text is not settled yet
        prefix = self._decode(self.tokens[self._prefix_offset : self._read_offset])
        current = self._decode(self.tokens[self._prefix_offset :])
        if len(current) > len(prefix) and not current.endswith(REPLACEMENT):
            self._emit(current[len(prefix) :])
            self._prefix_offset = self._read_offset
            self._read_offset = len(self.tokens)

    def finalize(self) -> None:
        """Emit whatever is left (an incomplete character becomes U+FFFD, as decode would)."""
        prefix = self._decode(self.tokens[self._prefix_offset : self._read_offset])
        current = self._decode(self.tokens[self._prefix_offset :])
        if len(current) > len(prefix):
            self._emit(current[len(prefix) :])
        self._prefix_offset = self._read_offset = len(self.tokens)

    def _emit(self, segment: str) -> None:
        self._segments.append(segment)
        self._unread.append(segment)

    @property
    def last_segment(self) -> str:
        """The text produced since this was last read ("" while a character is incomplete).

        Reading it consumes it: ``add_token`` then ``finalize`` of the last token, read once,
        give the token's text and whatever finalize added, not only the latter.
        """
        segment = "".join(self._unread)
        self._unread.clear()
        return segment

    @property
    def text(self) -> str:
        return "".join(self._segments)
