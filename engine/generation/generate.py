"""Layered generation, as in mlx-lm: token steps, then streamed text, then the whole answer.

``generate_step`` yields token ids, feeding each one back into the cache; ``stream_generate``
prefills the conversation (only what is new), adds the streaming detokenizer and stop strings, and
yields ``GenerationResponse``s, the last of which carries the answer's ``GenerationStats`` (the
record the worker sends to the app as it is); ``generate`` joins their text.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from engine.generation.detokenizer import StreamingDetokenizer
from engine.generation.grammar import GrammarConstraint, json_schema_grammar, lark_grammar
from engine.generation.logprobs import LogprobRecorder
from engine.generation.sampling import Sampler, make_logits_processors, make_sampler
from engine.generation.session import Cancelled, ChatSession, ContextFullError, ConversationCache
from engine.messages import (
    ChatMessage,
    FinishReason,
    GenerationConfig,
    GenerationStats,
    RawPrompt,
    TokenLogprob,
)
from engine.text.chat_template import ChatTemplateCancelled, rendering_cancelled_by
from engine.text.tool_calls import forced_call_grammar


@dataclass(frozen=True)
class GenerationResponse:
    text: str  # the new piece of text (may be "")
    token: int  # -1 when no token goes with the response
    dropped_messages: int  # oldest messages left out of the prompt (context policy)
    newly_dropped: bool  # this turn dropped more than the previous one (say so once)
    stats: GenerationStats | None = None  # on the last response only: the answer's record
    message: str = ""  # why it finished, for context_full
    logprobs: tuple[TokenLogprob, ...] = ()  # tokens sampled since the last response, if asked

    @property
    def finish_reason(self) -> FinishReason | None:
        """None until the last response."""
        return None if self.stats is None else self.stats.finish_reason


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


@dataclass
class _Progress:
    """What the streaming layer knows so far about one answer."""

    context_length: int
    prompt_tokens: int = 0
    tokens_fed: int = 0
    dropped_messages: int = 0
    newly_dropped: bool = False
    generated_tokens: int = 0
    time_to_first_token: float = 0.0
    prefill_tokens_per_second: float = 0.0
    decode_tokens_per_second: float = 0.0

    def response(
        self,
        cache: ConversationCache,
        text: str = "",
        token: int = -1,
        finish_reason: FinishReason | None = None,
        message: str = "",
        logprobs: tuple[TokenLogprob, ...] = (),
    ) -> GenerationResponse:
        stats = None
        if finish_reason is not None:
            stats = GenerationStats(
                prompt_tokens=self.prompt_tokens,
                tokens_fed=self.tokens_fed,
                generated_tokens=self.generated_tokens,
                time_to_first_token=self.time_to_first_token,
                prefill_tokens_per_second=self.prefill_tokens_per_second,
                decode_tokens_per_second=self.decode_tokens_per_second,
                cache_length=cache.length,
                context_length=self.context_length,
                finish_reason=finish_reason,
            )
        return GenerationResponse(
            text, token, self.dropped_messages, self.newly_dropped, stats, message, logprobs
        )


def stream_generate(
    session: ChatSession,
    cache: ConversationCache | Callable[[list[int]], ConversationCache],
    messages: tuple[ChatMessage, ...] | RawPrompt,
    config: GenerationConfig,
    *,
    cancel: threading.Event | None = None,
    on_prefill: Callable[[int, int], None] | None = None,
) -> Iterator[GenerationResponse]:
    """Answer the conversation (or continue a ``RawPrompt``): one response per token (its text may
    be "" while a character or a possible stop string is incomplete); the last one carries the
    finish reason.

    ``cache`` is the conversation's state, or a function that chooses one by the rendered prompt's
    tokens (the engine's ``StateCache.for_prompt``: the prompt is rendered once, then the state
    sharing most of it is continued).

    Raises ``ChatTemplateError`` when the template fails and ``InvalidConfig`` when ``config`` has
    problems (``GenerationConfig.problems``); a conversation that does not fit ends with
    ``finish_reason="context_full"`` and a message instead.
    """
    config.check()  # ValueError naming what is out of range (NaN temperature...)
    started = time.perf_counter()
    progress = _Progress(session.context_length)
    dropped = cache.dropped_messages if isinstance(cache, ConversationCache) else 0
    try:
        with rendering_cancelled_by(cancel):  # Stop also ends a template stuck rendering
            plan = session.plan(messages, config, already_dropped=dropped)
    except ContextFullError as error:
        state = _chosen(cache, [])
        yield progress.response(state, finish_reason="context_full", message=str(error))
        return
    except ChatTemplateCancelled:
        yield progress.response(_chosen(cache, []), finish_reason="cancelled")
        return
    cache = _chosen(cache, plan.tokens)
    progress.prompt_tokens, progress.dropped_messages = len(plan.tokens), plan.dropped_messages
    progress.newly_dropped = plan.dropped_messages > cache.dropped_messages
    cache.dropped_messages = plan.dropped_messages
    try:
        logits, fed = session.prefill(cache, plan.tokens, progress=on_prefill, cancel=cancel)
    except Cancelled:
        yield progress.response(cache, finish_reason="cancelled")
        return
    prefill_seconds = time.perf_counter() - started
    progress.tokens_fed = fed
    progress.prefill_tokens_per_second = fed / prefill_seconds if prefill_seconds > 0 else 0.0
    sampler = _sampler(session, config)
    recorder = None
    if config.top_logprobs is not None:
        recorder = LogprobRecorder(
            session.tokenizer, config.top_logprobs, skip=session.tokenizer.eos_token_ids
        )
        sampler = recorder.wrap(sampler)
    detokenizer = StreamingDetokenizer(session.tokenizer)
    stop_strings = _StopStrings(config.stop_strings)
    decode_started = time.perf_counter()
    steps = generate_step(
        session, cache, logits, sampler, max_tokens=config.max_new_tokens, cancel=cancel
    )
    for token, reason in steps:
        if token >= 0:
            progress.generated_tokens += 1
            if progress.generated_tokens == 1:
                progress.time_to_first_token = time.perf_counter() - started
                decode_started = time.perf_counter()
            detokenizer.add_token(token)
        if reason is not None:
            detokenizer.finalize()
        piece, reason = stop_strings.add(detokenizer.last_segment, reason)
        decode_seconds = time.perf_counter() - decode_started
        if progress.generated_tokens > 1 and decode_seconds > 0:
            progress.decode_tokens_per_second = (progress.generated_tokens - 1) / decode_seconds
        if reason is not None:
            message = ""
            if reason == "context_full":
                message = f"the answer filled the model's context ({session.context_length} tokens)"
            taken = recorder.take() if recorder is not None else ()
            yield progress.response(cache, piece, token, reason, message, taken)
            return
        taken = recorder.take() if recorder is not None else ()
        yield progress.response(cache, piece, token, logprobs=taken)  # every token, even textless


def _chosen(
    cache: ConversationCache | Callable[[list[int]], ConversationCache], tokens: list[int]
) -> ConversationCache:
    return cache if isinstance(cache, ConversationCache) else cache(tokens)


def _sampler(session: ChatSession, config: GenerationConfig) -> Sampler:
    """The config's sampler; with a JSON schema, the grammar's mask is its last logits processor
    and every drawn token is reported to it (so it computes the next mask while the model runs)."""
    grammar = _grammar(session, config)
    if grammar is None:
        return make_sampler(config)
    constraint = GrammarConstraint(session.grammar_tokenizer, grammar)
    sampler = make_sampler(config, processors=[*make_logits_processors(config), constraint])

    def constrained(logits: np.ndarray, history: list[int]) -> int:
        token = sampler(logits, history)
        constraint.accept(token)
        return token

    return constrained


def _grammar(session: ChatSession, config: GenerationConfig) -> str | None:
    """The grammar the answer must follow: a forced tool call (``tool_choice`` "required" or a
    function's name) in the model's own call format, else ``json_schema``'s JSON, else none."""
    if config.tools and config.tool_choice not in ("auto", "none"):
        name = None if config.tool_choice == "required" else config.tool_choice
        lark = forced_call_grammar(
            session.tokenizer.tool_format,
            json.loads(config.tools),
            name=name,
            parallel=config.parallel_tool_calls,
            token_id=session.tokenizer.tokenizer.token_to_id,
        )
        return lark_grammar(lark)
    if config.json_schema is not None:
        return json_schema_grammar(config.json_schema)
    return None


class _StopStrings:
    """Cuts the answer at the first stop string; holds back a tail that could start one.

    Only the text not shown yet is searched (a stop string cannot start in text already shown,
    since any tail that could start one was held back), so each token costs a bounded amount.
    """

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops = tuple(s for s in stops if s)
        self.pending = ""

    def add(self, segment: str, reason: FinishReason | None) -> tuple[str, FinishReason | None]:
        """(text to show now, finish reason, "stop_string" when one was hit)."""
        if not self.stops:
            return segment, reason
        self.pending += segment
        hit = min((self.pending.find(s) for s in self.stops if s in self.pending), default=-1)
        if hit >= 0:
            piece, self.pending = self.pending[:hit], ""
            return piece, "stop_string"
        held = 0 if reason is not None else _held_back(self.pending, self.stops)
        cut = len(self.pending) - held
        piece, self.pending = self.pending[:cut], self.pending[cut:]
        return piece, reason


def generate(
    session: ChatSession,
    messages: tuple[ChatMessage, ...] | RawPrompt,
    config: GenerationConfig,
    *,
    cache: ConversationCache | None = None,
) -> tuple[str, GenerationResponse]:
    """The whole answer and the last response (its ``stats``)."""
    cache = cache or session.new_cache()
    pieces, last = [], None
    for response in stream_generate(session, cache, messages, config):
        pieces.append(response.text)
        last = response
    if last is None:
        raise RuntimeError("stream_generate yielded nothing")
    return "".join(pieces), last
