"""What the status line shows while a chat runs, and the context estimate it shows until the engine
has counted (the controller fills ``LiveStats``; ``status_line`` draws it)."""

from __future__ import annotations

from dataclasses import dataclass

CHARS_PER_TOKEN = 4  # a rough average for English text with BPE tokenizers
TOKENS_PER_MESSAGE = 4  # the chat template's markup around each message (role, separators)


def estimate_context_tokens(texts: list[str]) -> int:
    """About how many tokens a chat of ``texts`` (system prompt and messages) fills: shown as an
    estimate until the engine reports the real count after the chat's next answer."""
    return sum(len(text) // CHARS_PER_TOKEN + TOKENS_PER_MESSAGE for text in texts if text)


@dataclass
class LiveStats:
    """What the status line shows."""

    generating: bool = False
    time_to_first_token: float | None = None
    tokens_per_second: float | None = None
    generated_tokens: int = 0
    context_used: int | None = None
    context_length: int | None = None
    context_estimated: bool = False  # context_used is estimated from the stored text
    prefill_done: int = 0
    prefill_total: int = 0
    finish_reason: str = ""
