"""Which kv-cache states the engine keeps, and which one a request continues: the whole policy.

States are kept per conversation, least recently used evicted first: at most ``max_states``, and
only as many as fit ``memory_budget`` (always at least one besides the one in use). An evicted
conversation is prefilled again when it comes back.

Requests without a conversation id (the HTTP server's) are *anonymous*: they take the kept
anonymous state sharing the longest token prefix with their prompt (how llama.cpp's server picks a
slot), so a client that resends a growing chat lands on the state holding its earlier turns. Only
when that prefix is at least ``reuse_fraction`` of the state (llama.cpp's slot-prompt-similarity):
another chat sharing just the system prompt gets a state of its own rather than rewinding one that
a growing chat will come back to. Anonymous states live under keys no conversation id can take, at
most ``max_anonymous`` of them, so HTTP clients never evict the window's states.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from engine.generation.session import ConversationCache, common_prefix

logger = logging.getLogger(__name__)

ANONYMOUS_PREFIX = "\x00anonymous-"


@dataclass(frozen=True)
class StateCachePolicy:
    max_states: int = 4
    memory_budget: int = 600 * 1024 * 1024  # bytes of state kept, all conversations together
    max_anonymous: int = 2
    reuse_fraction: float = 0.5


def longest_prefix_key(
    caches: Mapping[str, ConversationCache], tokens: list[int]
) -> tuple[str | None, int]:
    """The key of the kept state sharing the longest token prefix with ``tokens``, and that length
    ((None, 0) when none shares a token)."""
    best_key, best = None, 0
    for key, cache in caches.items():
        length = common_prefix(cache.tokens, tokens)
        if length > best:
            best_key, best = key, length
    return best_key, best


class StateCache:
    """``StateCache(new_state, state_bytes=…)``: ``for_conversation(id)``, ``for_prompt(tokens)``,
    ``get``, ``forget``. ``new_state()`` makes an empty ``ConversationCache`` (the session's)."""

    def __init__(
        self,
        new_state: Callable[[], ConversationCache],
        *,
        state_bytes: int,
        policy: StateCachePolicy | None = None,
    ) -> None:
        self._new_state = new_state
        self.policy = policy or StateCachePolicy()
        self._kept: OrderedDict[str, ConversationCache] = OrderedDict()  # most recent last
        self._anonymous_made = 0
        self.capacity = min(
            self.policy.max_states, 1 + self.policy.memory_budget // max(1, state_bytes)
        )

    def __len__(self) -> int:
        return len(self._kept)

    def kept(self) -> list[str]:
        """The kept keys, least recently used first."""
        return list(self._kept)

    def get(self, key: str) -> ConversationCache | None:
        return self._kept.get(key)

    def forget(self, key: str) -> None:
        self._kept.pop(key, None)

    def for_conversation(self, key: str) -> ConversationCache:
        """The state of ``key`` (a new one when none is kept), now the most recently used; the
        least recently used others are evicted past the capacity."""
        cache = self._kept.pop(key, None) or self._new_state()
        self._kept[key] = cache
        while len(self._kept) > self.capacity:
            evicted, _ = self._kept.popitem(last=False)
            logger.debug("conversation %r evicted from the state cache", evicted)
        return cache

    def for_prompt(self, tokens: list[int]) -> ConversationCache:
        """The anonymous state a request with this prompt continues (see the module's text)."""
        return self.for_conversation(self.anonymous_key(tokens))

    def anonymous_key(self, tokens: list[int]) -> str:
        anonymous = {k: v for k, v in self._kept.items() if k.startswith(ANONYMOUS_PREFIX)}
        key, shared = longest_prefix_key(anonymous, tokens)
        if key is not None and shared >= anonymous[key].length * self.policy.reuse_fraction:
            return key
        if len(anonymous) >= self.policy.max_anonymous:
            return next(iter(anonymous))  # least recently used first
        self._anonymous_made += 1
        return f"{ANONYMOUS_PREFIX}{self._anonymous_made}"
