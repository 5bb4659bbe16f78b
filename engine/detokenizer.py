"""Streaming detokenization: text for each new token, never half a UTF-8 character.

Each step decodes only a small window (the tokens since the last emitted piece, plus the token
before them, so SentencePiece's leading spaces come out right) and emits the new text unless it
ends in U+FFFD, the sign of a character whose bytes have not all arrived. Interface as mlx-lm's:
``reset``, ``add_token``, ``finalize``, ``last_segment``, ``text``.
"""

from __future__ import annotations

from typing import Any

REPLACEMENT = "\ufffd"


class StreamingDetokenizer:
    def __init__(self, tokenizer: Any, *, skip_special_tokens: bool = True) -> None:
        self._tokenizer = tokenizer  # has decode(ids, skip_special_tokens=...)
        self._skip = skip_special_tokens
        self.reset()

    def reset(self) -> None:
        self.tokens: list[int] = []
        self._prefix_offset = 0
        self._read_offset = 0
        self._segments: list[str] = []
        self._last = ""

    def _decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=self._skip)

    def add_token(self, token: int) -> None:
        self.tokens.append(token)
        prefix = self._decode(self.tokens[self._prefix_offset : self._read_offset])
        current = self._decode(self.tokens[self._prefix_offset :])
        if len(current) > len(prefix) and not current.endswith(REPLACEMENT):
            self._last = current[len(prefix) :]
            self._segments.append(self._last)
            self._prefix_offset = self._read_offset
            self._read_offset = len(self.tokens)
        else:
            self._last = ""

    def finalize(self) -> None:
        """Emit whatever is left (an incomplete character becomes U+FFFD, as decode would)."""
        prefix = self._decode(self.tokens[self._prefix_offset : self._read_offset])
        current = self._decode(self.tokens[self._prefix_offset :])
        self._last = current[len(prefix) :] if len(current) > len(prefix) else ""
        if self._last:
            self._segments.append(self._last)
        self._prefix_offset = self._read_offset = len(self.tokens)

    @property
    def last_segment(self) -> str:
        """The text the latest ``add_token``/``finalize`` produced ("" while a character is incomplete)."""
        return self._last

    @property
    def text(self) -> str:
        return "".join(self._segments)
