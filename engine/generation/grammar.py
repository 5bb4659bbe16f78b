"""Constrained decoding: a grammar's token mask as one more logits processor (llguidance).

A JSON schema (``response_format``, a tool's parameters) becomes an llguidance grammar; an
``LLMatcher`` follows the tokens sampled so far and says which tokens may come next, as a bitmask
over the vocabulary. ``GrammarConstraint`` is a logits processor in mlx-lm's shape
(``processor(logits, history) -> logits``): tokens it was not given are -inf. The sampler tells it
the token it drew (``accept``); the matcher consumes it and, with ``overlap``, computes the next
mask on a thread of its own while the model runs the token (llguidance releases the GIL while it
computes), so the mask is ready, or nearly, when the next logits are.

llguidance is imported when a grammar is first built: the engine stays light without one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

# Compact JSON: a small model given free whitespace can spend its tokens on it.
JSON_OPTIONS = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
ANY_JSON_OBJECT: dict[str, Any] = {"type": "object"}

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


class GrammarError(ValueError):
    """A schema llguidance cannot compile (the message names the unsupported feature), or a
    matcher that fell into its error state."""


def _mask_executor() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="coreml-chat-mask")
        return _executor


def json_schema_grammar(schema: dict[str, Any] | str) -> str:
    """The llguidance grammar of JSON matching ``schema``; ``GrammarError`` naming what it cannot
    honour (``Unimplemented keys: ["dependentRequired"]``, ``Unknown format: foo``)."""
    import llguidance

    try:
        grammar = llguidance.LLMatcher.grammar_from_json_schema(schema, overrides=JSON_OPTIONS)  # type: ignore[arg-type]
    except ValueError as error:
        raise GrammarError(f"the schema is not a JSON object: {error}") from error
    problem = llguidance.LLMatcher.validate_grammar(grammar)
    if problem:
        raise GrammarError(f"the schema cannot be enforced: {problem}")
    return grammar


def lark_grammar(lark: str) -> str:
    """The llguidance grammar of ``lark`` (llguidance's Lark: ``%json {schema}``, ``<[id]>`` for a
    control token); ``GrammarError`` naming what it cannot honour."""
    import llguidance

    grammar = llguidance.LLMatcher.grammar_from_lark(lark)
    problem = llguidance.LLMatcher.validate_grammar(grammar)
    if problem:
        raise GrammarError(f"the grammar cannot be enforced: {problem}")
    return grammar


def grammar_tokenizer(tokenizer_json: str, *, vocab_size: int, eos_ids: Sequence[int]) -> Any:
    """llguidance's view of a ``tokenizers`` tokenizer (its JSON, ``Tokenizer.to_str()``); about a
    second to build: build it once per model. ``vocab_size`` is the model's logits width."""
    import llguidance

    return llguidance.LLTokenizer(
        tokenizer_json, n_vocab=vocab_size, eos_token=sorted(eos_ids) or None
    )


class GrammarConstraint:
    """The token mask of one answer under one grammar (a logits processor; see the module)."""

    def __init__(self, tokenizer: Any, grammar: str, *, overlap: bool = True) -> None:
        import llguidance

        self.matcher = llguidance.LLMatcher(tokenizer, grammar)
        if self.matcher.is_error():
            raise GrammarError(f"the grammar cannot be used: {self.matcher.get_error()}")
        self.vocab_size = int(tokenizer.vocab_size)
        self.overlap = overlap
        self._words = np.full((self.vocab_size + 31) // 32, -1, dtype=np.int32)
        self._allowed = np.empty(self.vocab_size, dtype=bool)
        self._pending: Future | None = None
        self._fresh = False  # the buffer holds the mask for the tokens consumed so far
        self._consumed = 0

    # --- the mask ------------------------------------------------------------------------------

    def _compute(self) -> None:
        self.matcher.unsafe_compute_mask_ptr(self._words.ctypes.data, self._words.nbytes)

    def _wait(self) -> None:
        """Wait for the mask being computed, if any: the matcher is busy until then."""
        if self._pending is not None:
            self._pending.result()
            self._pending = None
            self._fresh = True

    def __call__(self, logits: np.ndarray, history: Sequence[int]) -> np.ndarray:
        self._wait()
        for token in history[self._consumed :]:  # tokens the sampler did not report (tests)
            self.accept(token, prefetch=False)
        if self.matcher.is_error():
            raise GrammarError(f"constrained decoding failed: {self.matcher.get_error()}")
        if not self._fresh:
            self._compute()
        self._fresh = False
        bits = np.unpackbits(self._words.view(np.uint8), bitorder="little")
        np.greater(bits[: self.vocab_size], 0, out=self._allowed)
        width = min(self.vocab_size, logits.shape[-1])
        np.copyto(logits[:width], -np.inf, where=~self._allowed[:width])
        logits[width:] = -np.inf  # the model's padding rows: never tokens of the grammar
        return logits

    # --- the sampled token ---------------------------------------------------------------------

    def accept(self, token: int, *, prefetch: bool = True) -> None:
        """The sampler drew ``token``: consume it and (``overlap``) compute the next mask now."""
        self._wait()
        self._fresh = False
        self._consumed += 1
        if not self.matcher.consume_token(token):
            raise GrammarError(
                f"token {token} is not allowed by the grammar: {self.matcher.get_error()}"
            )
        if prefetch and self.overlap and not self.matcher.is_stopped():
            self._pending = _mask_executor().submit(self._compute)

    @property
    def finished(self) -> bool:
        """The grammar is complete: nothing but the end of the answer may follow."""
        self._wait()
        return self.matcher.is_stopped()

    def close(self) -> None:
        self._wait()
