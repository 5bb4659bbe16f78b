"""One conversation's kv-cache, and feeding it only what is new.

A ``ConversationCache`` is a model state plus the token ids it holds. Before each turn the newly
rendered conversation is compared with those ids: the longest common prefix stays, the cache is
rewound to it (a regenerate or an edit is just a shorter prefix), and only the rest is fed, in
chunks, each with its causal mask. Rewinding costs nothing: positions past the cache length are
never visible, because the mask's width is the cache length after the call.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from engine.messages import ChatMessage, GenerationConfig, RawPrompt
from engine.package import metadata as meta
from engine.package.model import Model, check_chat_model
from engine.text.tokenizer import ChatTokenizer

CHUNK_SIZE = 64


class ContextFullError(Exception):
    """The conversation does not fit in the model's context, even after the policy ran."""


class Cancelled(Exception):
    """Prefill was cancelled between chunks; the cache holds what was fed."""


def causal_mask(past: int, length: int) -> np.ndarray:
    """(1, 1, q, past + q) float16: 0 where new token i may look at position j, -inf where j > past+i."""
    mask = np.zeros((1, 1, length, past + length), dtype=np.float16)
    if length > 1:
        rows = np.arange(length)[:, None]
        columns = np.arange(past + length)[None, :]
        mask[0, 0][columns > past + rows] = -np.inf
    return mask


def common_prefix(a: list[int], b: list[int]) -> int:
    length = min(len(a), len(b))
    if length == 0:
        return 0
    left, right = np.asarray(a[:length]), np.asarray(b[:length])
    different = np.flatnonzero(left != right)
    return int(different[0]) if different.size else length


@dataclass
class ConversationCache:
    """A model state and the ids of the tokens it holds (its length is the cache length).

    ``last_prompt_logits`` keeps the logits after the last prompt fed (for ``length`` tokens), so a
    regenerate, which rewinds to exactly that prompt, starts sampling without feeding anything.
    """

    state: Any
    tokens: list[int] = field(default_factory=list)
    dropped_messages: int = 0  # oldest messages the context policy left out of the last prompt
    last_prompt_logits: tuple[int, np.ndarray] | None = None

    @property
    def length(self) -> int:
        return len(self.tokens)

    def rewind(self, length: int) -> None:
        """Forget everything after ``length`` tokens (the state's entries past it are never seen)."""
        del self.tokens[length:]
        if self.last_prompt_logits is not None and self.last_prompt_logits[0] > length:
            self.last_prompt_logits = None


@dataclass(frozen=True)
class PromptPlan:
    tokens: list[int]
    messages: tuple[ChatMessage, ...]
    dropped_messages: int


class ChatSession:
    """A loaded model with its tokenizer: renders, plans, feeds and steps conversations."""

    def __init__(self, model: Model, tokenizer: ChatTokenizer, *, chunk_size: int = CHUNK_SIZE):
        check_chat_model(model.description)
        self.model = model
        self.tokenizer = tokenizer
        self.chunk_size = chunk_size
        self.context_length = model.description.context_length
        self.tokens_fed_total = 0

    def new_cache(self) -> ConversationCache:
        return ConversationCache(self.model.make_state())

    @cached_property
    def grammar_tokenizer(self) -> Any:
        """llguidance's tokenizer for constrained decoding, built at the first grammar (~1 s)."""
        from engine.generation.grammar import grammar_tokenizer

        width = self.model.description.output(meta.LOGITS).shape[-1]
        vocab = max(self.tokenizer.vocab_size, width if isinstance(width, int) else 0)
        return grammar_tokenizer(
            self.tokenizer.tokenizer.to_str(),
            vocab_size=vocab,
            eos_ids=self.tokenizer.eos_token_ids,
        )

    # --- planning ------------------------------------------------------------------------------

    def plan(
        self,
        messages: tuple[ChatMessage, ...] | RawPrompt,
        config: GenerationConfig,
        *,
        already_dropped: int = 0,
    ) -> PromptPlan:
        """Render ``messages``; when they do not fit, apply ``config.context_policy``.

        A ``RawPrompt`` is tokenized as it is (no template, nothing to drop): it fits or it is a
        ``ContextFullError``; a suffix it cannot take is a ``NoFillInMiddleError``.

        ``drop_oldest`` drops whole exchanges (never the system prompt) until the prompt fills at
        most three quarters of what is left after the answer's reserve, so that the next turns fit
        without dropping again; ``already_dropped`` (what the previous turn of this conversation
        dropped) is dropped first, so the kept prefix, and the kv-cache with it, stays the same.
        """
        reserve = min(config.max_new_tokens, self.context_length // 4)
        budget = self.context_length - reserve
        if isinstance(messages, RawPrompt):
            return self._plan_raw(messages, budget, reserve)
        tools = json.loads(config.tools) if config.tools else None
        system = [m for m in messages[:1] if m.role == "system"]
        turns = list(messages[len(system) :])
        dropped = min(already_dropped, max(0, len(turns) - 1))
        while dropped < len(turns) - 1 and turns[dropped].role in ("assistant", "tool"):
            dropped += 1  # a conversation starts with a user message
        variables = template_variables(config)
        tokens = self.tokenizer.encode_chat(
            system + turns[dropped:], tools=tools, variables=variables
        )
        if len(tokens) <= budget:
            return PromptPlan(tokens, tuple(system + turns[dropped:]), dropped)
        if config.context_policy == "stop":
            raise ContextFullError(
                f"the conversation is {len(tokens)} tokens; the model's context is "
                f"{self.context_length} (with {reserve} kept for the answer): start a new chat"
            )
        target = budget * 3 // 4
        while dropped < len(turns) - 1 and len(tokens) > target:
            # Drop the oldest exchange: a user message and the answer after it.
            rest = turns[dropped:]
            dropped += 2 if len(rest) > 2 and rest[1].role == "assistant" else 1
            tokens = self.tokenizer.encode_chat(
                system + turns[dropped:], tools=tools, variables=variables
            )
        if len(tokens) <= budget:
            return PromptPlan(tokens, tuple(system + turns[dropped:]), dropped)
        raise ContextFullError(
            f"the last message alone is {len(tokens)} tokens; the model's context is "
            f"{self.context_length} (with {reserve} kept for the answer): shorten it"
        )

    def _plan_raw(self, prompt: RawPrompt, budget: int, reserve: int) -> PromptPlan:
        if prompt.suffix is None:
            tokens = self.tokenizer.encode_text(prompt.text)
        else:
            tokens = self.tokenizer.encode_fill_in_middle(prompt.text, prompt.suffix)
        if not tokens:
            raise ValueError("the prompt is empty: expected text to continue")
        if len(tokens) > budget:
            raise ContextFullError(
                f"the prompt is {len(tokens)} tokens; the model's context is "
                f"{self.context_length} (with {reserve} kept for the answer): shorten it"
            )
        return PromptPlan(tokens, (), 0)

    # --- feeding -------------------------------------------------------------------------------

    def feed(self, cache: ConversationCache, tokens: list[int]) -> np.ndarray:
        """Run ``tokens`` after the cache; returns the last position's logits, shape (vocab,), as
        the runtime hands them back: float16 on the reference runtime (our packages' output type),
        float32 on a Mac (coremltools converts every float16 output to float32)."""
        past = cache.length
        if past + len(tokens) > self.context_length:
            raise ContextFullError(
                f"{past + len(tokens)} tokens do not fit the context of {self.context_length}"
            )
        inputs = {
            meta.INPUT_IDS: np.asarray([tokens], dtype=np.int32),
            meta.CAUSAL_MASK: causal_mask(past, len(tokens)),
        }
        logits = self.model.predict(inputs, cache.state)[meta.LOGITS]
        cache.tokens.extend(tokens)
        self.tokens_fed_total += len(tokens)
        return logits[0, -1]  # a view: no copy, no conversion (the sampler converts as it reads)

    def prefill(
        self,
        cache: ConversationCache,
        prompt: list[int],
        *,
        progress: Callable[[int, int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> tuple[np.ndarray, int]:
        """Keep the common prefix, feed the rest in chunks; returns (last logits, tokens fed)."""
        if not prompt:
            raise ValueError("empty prompt")
        keep = common_prefix(cache.tokens, prompt)
        if keep == len(prompt):
            saved = cache.last_prompt_logits
            cache.rewind(keep)
            if saved is not None and saved[0] == keep:
                return saved[1].copy(), 0  # regenerate: the prompt and its logits are cached
            keep -= 1  # the last prompt token is fed again: its logits start the answer
        cache.rewind(keep)
        remaining = prompt[keep:]
        logits = np.empty(0, dtype=np.float32)
        fed = 0
        for start in range(0, len(remaining), self.chunk_size):
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            chunk = remaining[start : start + self.chunk_size]
            logits = self.feed(cache, chunk)
            fed += len(chunk)
            if progress is not None:
                progress(fed, len(remaining))
        logits = np.array(logits, dtype=np.float32)  # a copy of its own
        cache.last_prompt_logits = (cache.length, logits)
        return logits.copy(), fed


def template_variables(config: GenerationConfig) -> dict[str, object]:
    """The chat template's options a generation config sets (``enable_thinking`` only when
    given: templates that do not know it ignore it, and None keeps the template's default)."""
    return {} if config.enable_thinking is None else {"enable_thinking": config.enable_thinking}
