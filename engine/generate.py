"""Layered generation, as in mlx-lm: token steps, then streamed text, then the whole answer.

``generate_step`` yields token ids, feeding each one back into the cache; ``stream_generate``
prefills the conversation (only what is new), adds the streaming detokenizer and stop strings, and
yields ``GenerationResponse``s; ``generate`` joins their text.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from engine.detokenizer import StreamingDetokenizer
from engine.messages import ChatMessage, FinishReason, GenerationConfig
from engine.sampling import Sampler, make_sampler
from engine.session import Cancelled, ChatSession, ContextFullError, ConversationCache


@dataclass(frozen=True)
class GenerationResponse:
    text: str  # the new piece of text (may be "")
    token: int  # -1 when no token goes with the response
    prompt_tokens: int
    tokens_fed: int
    dropped_messages: int
    generated_tokens: int
    time_to_first_token: float
    prefill_tokens_per_second: float
    decode_tokens_per_second: float
    cache_length: int
    finish_reason: FinishReason | None = None
    message: str = ""  # why it finished, for context_full


def generate_step(
    session: ChatSession,
    cache: ConversationCache,
    logits: np.ndarray,
    sampler: Sampler,
    *,
    max_tokens: int,
    cancel: threading.Event | None = None,
) -> Iterator[tuple[int, FinishReason | None]]:
    """Yield (token, None) per token; the last item carries the finish reason (token -1 if none)."""
    history: list[int] = []
    eos = session.tokenizer.eos_token_ids
    for count in range(max_tokens):
        if cancel is not None and cancel.is_set():
            yield -1, "cancelled"
            return
        token = sampler(logits, history)
        if token in eos:
            yield -1, "eos"
            return
        history.append(token)
        if count + 1 == max_tokens:
            yield token, "max_tokens"
            return
        if cache.length + 1 > session.context_length:
            yield token, "context_full"
            return
        yield token, None
        logits = session.feed(cache, [token])
    yield -1, "max_tokens"


def _held_back(text: str, stops: tuple[str, ...]) -> int:
    """How many trailing characters of ``text`` could start a stop string (not shown yet)."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:size]):
                longest = max(longest, size)
                break
    return longest


def stream_generate(
    session: ChatSession,
    cache: ConversationCache,
    messages: tuple[ChatMessage, ...],
    config: GenerationConfig,
    *,
    cancel: threading.Event | None = None,
    on_prefill: Callable[[int, int], None] | None = None,
) -> Iterator[GenerationResponse]:
    started = time.perf_counter()
    try:
        plan = session.plan(messages, config)
    except ContextFullError as error:
        yield _final(cache, 0, 0, 0, 0, 0.0, 0.0, 0.0, "context_full", str(error))
        return
    try:
        logits, fed = session.prefill(cache, plan.tokens, progress=on_prefill, cancel=cancel)
    except Cancelled:
        yield _final(
            cache, len(plan.tokens), 0, plan.dropped_messages, 0, 0.0, 0.0, 0.0, "cancelled"
        )
        return
    prefill_seconds = time.perf_counter() - started
    prefill_tps = fed / prefill_seconds if prefill_seconds > 0 else 0.0
    sampler = make_sampler(config)
    detokenizer = StreamingDetokenizer(session.tokenizer)
    stops = tuple(s for s in config.stop_strings if s)
    shown = ""  # text already yielded
    generated = 0
    first_token_at = 0.0
    decode_started = time.perf_counter()
    finish: FinishReason | None = None
    steps = generate_step(
        session, cache, logits, sampler, max_tokens=config.max_new_tokens, cancel=cancel
    )
    for token, reason in steps:
        if token >= 0:
            generated += 1
            if generated == 1:
                first_token_at = time.perf_counter() - started
            detokenizer.add_token(token)
        if reason is not None:
            detokenizer.finalize()
        text = detokenizer.text
        hit = min((text.find(s) for s in stops if s in text), default=-1)
        if hit >= 0:
            text, reason = text[:hit], "stop_string"
        visible = text if reason is not None else text[: len(text) - _held_back(text, stops)]
        piece = visible[len(shown) :] if visible.startswith(shown) else ""
        shown = visible if piece or visible == shown else shown
        decode_seconds = time.perf_counter() - decode_started
        decode_tps = (
            (generated - 1) / decode_seconds if generated > 1 and decode_seconds > 0 else 0.0
        )
        if reason is not None:
            finish = reason
            yield GenerationResponse(
                piece, token, len(plan.tokens), fed, plan.dropped_messages, generated,
                first_token_at, prefill_tps, decode_tps, cache.length, finish,
            )  # fmt: skip
            return
        if piece:
            yield GenerationResponse(
                piece, token, len(plan.tokens), fed, plan.dropped_messages, generated,
                first_token_at, prefill_tps, decode_tps, cache.length, None,
            )  # fmt: skip


def _final(cache, prompt, fed, dropped, generated, ttft, p_tps, d_tps, reason, message=""):
    return GenerationResponse(
        "", -1, prompt, fed, dropped, generated, ttft, p_tps, d_tps, cache.length, reason, message
    )


def generate(
    session: ChatSession,
    messages: tuple[ChatMessage, ...],
    config: GenerationConfig,
    *,
    cache: ConversationCache | None = None,
) -> tuple[str, GenerationResponse]:
    """The whole answer and the last response (its stats)."""
    cache = cache or session.new_cache()
    pieces, last = [], None
    for response in stream_generate(session, cache, messages, config):
        pieces.append(response.text)
        last = response
    if last is None:
        raise RuntimeError("stream_generate yielded nothing")
    return "".join(pieces), last
