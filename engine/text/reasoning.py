"""Reasoning kept apart from the answer: the text a model writes between ``<think>`` and
``</think>`` (Qwen3, DeepSeek-R1 distills) is reasoning; the rest is the answer.

Streamed pieces may cut a marker in two (``<thi`` + ``nk>``): a tail that could still become a
marker is held back until the next piece says what it is. Qwen3's template opens the block
itself when thinking is on in some versions (the prompt ends with ``<think>\\n``): ``started``
says so, and the answer begins after ``</think>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

OPEN, CLOSE = "<think>", "</think>"


@dataclass
class ReasoningSplitter:
    """``feed(piece)`` → ``[(text, is_reasoning), ...]``; ``finish()`` flushes what was held."""

    started: bool = False  # the prompt already opened the reasoning block
    reasoning: bool = field(init=False)
    _held: str = field(default="", init=False)
    _seen_open: bool = field(default=False, init=False)
    _after_marker: bool = field(default=False, init=False)  # newlines right after one are markup

    def __post_init__(self) -> None:
        self.reasoning = self.started
        self._seen_open = self.started
        self._after_marker = self.started

    def _marker(self) -> str | None:
        if self.reasoning:
            return CLOSE
        return None if self._seen_open else OPEN  # one reasoning block, at the start

    def feed(self, piece: str) -> list[tuple[str, bool]]:
        text = self._held + piece
        self._held = ""
        out: list[tuple[str, bool]] = []
        while text:
            marker = self._marker()
            if marker is None:
                self._emit(out, text)
                break
            index = text.find(marker)
            if index >= 0 and marker == OPEN and text[:index].strip():
                index = -1  # the answer began before it: one reasoning block, at the start
            if index >= 0:
                if index:
                    self._emit(out, text[:index])
                text = text[index + len(marker) :]
                if marker == OPEN:
                    self.reasoning, self._seen_open = True, True
                else:
                    self.reasoning = False
                self._after_marker = True
                continue
            if not self.reasoning and text.strip() and not OPEN.startswith(text.lstrip()[:7]):
                self._seen_open = True  # the answer began without reasoning
                self._emit(out, text)
                break
            keep = _partial_suffix(text, marker)
            if len(text) > keep:
                self._emit(out, text[: len(text) - keep])
            self._held = text[len(text) - keep :]
            break
        return out

    def _emit(self, out: list[tuple[str, bool]], text: str) -> None:
        if self._after_marker:
            text = text.lstrip("\n")
            self._after_marker = not text
        if text:
            out.append((text, self.reasoning))

    def finish(self) -> list[tuple[str, bool]]:
        held, self._held = self._held, ""
        out: list[tuple[str, bool]] = []
        self._emit(out, held)
        return out


def _partial_suffix(text: str, marker: str) -> int:
    """Length of the longest end of ``text`` that is a beginning of ``marker``."""
    for size in range(min(len(text), len(marker) - 1), 0, -1):
        if marker.startswith(text[-size:]):
            return size
    return 0


def split_reasoning(text: str, *, started: bool = False) -> tuple[str, str]:
    """(reasoning, answer) of a whole text."""
    splitter = ReasoningSplitter(started=started)
    parts = splitter.feed(text) + splitter.finish()
    reasoning = "".join(t for t, r in parts if r)
    answer = "".join(t for t, r in parts if not r)
    return reasoning, answer
