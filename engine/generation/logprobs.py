"""The log-probabilities of the sampled tokens (OpenAI's ``logprobs``), recorded beside sampling.

``LogprobRecorder.wrap(sampler)`` returns a sampler that, after each draw, notes the drawn token's
log-probability and the ``top`` most probable tokens' under the model's distribution (its logits
as they came, before temperature and the logits processors, as llama.cpp and vLLM report them).
Only when asked for: it costs one pass over the vocabulary per token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from engine.generation.sampling import Sampler, to_float32
from engine.messages import TokenLogprob


class LogprobRecorder:
    def __init__(self, tokenizer: Any, top: int, *, skip: frozenset[int] = frozenset()) -> None:
        """``tokenizer``: decodes one id to its text; ``skip``: ids not recorded (end of answer)."""
        self.tokenizer, self.top, self.skip = tokenizer, top, skip
        self.pending: list[TokenLogprob] = []

    def _text(self, token: int) -> str:
        return self.tokenizer.decode([token], skip_special_tokens=False)

    def record(self, logits: np.ndarray, token: int) -> None:
        values = to_float32(logits)
        peak = float(values.max())
        total = peak + float(np.log(np.exp(values - peak, dtype=np.float64).sum()))
        top: tuple[tuple[str, float], ...] = ()
        if self.top:
            best = np.argpartition(values, -self.top)[-self.top :]
            best = best[np.argsort(values[best])[::-1]]
            top = tuple((self._text(int(i)), float(values[i]) - total) for i in best)
        self.pending.append(TokenLogprob(self._text(token), float(values[token]) - total, top))

    def wrap(self, sampler: Sampler) -> Sampler:
        def recorded(logits: np.ndarray, history: Sequence[int]) -> int:
            token = sampler(logits, history)
            if token not in self.skip:
                self.record(logits, token)
            return token

        return recorded

    def take(self) -> tuple[TokenLogprob, ...]:
        taken, self.pending = tuple(self.pending), []
        return taken
