"""The kv-cache keeping policy (engine/generation/state_cache.py), with no thread and no model:
least-recently-used eviction within a count and a memory budget, anonymous states chosen by their
longest common prefix, and never at the cost of a conversation's state."""

from __future__ import annotations

from engine.generation.session import ConversationCache
from engine.generation.state_cache import (
    ANONYMOUS_PREFIX,
    StateCache,
    StateCachePolicy,
    longest_prefix_key,
)


def _cache(tokens: list[int] | None = None) -> ConversationCache:
    return ConversationCache(state=object(), tokens=list(tokens or []))


def _states(**policy: float) -> StateCache:
    return StateCache(_cache, state_bytes=1, policy=StateCachePolicy(**policy))  # type: ignore[arg-type]


def test_least_recently_used_conversations_are_evicted_past_the_count() -> None:
    states = _states(max_states=3)
    for key in ("a", "b", "c"):
        states.for_conversation(key)
    states.for_conversation("a")  # used again: now the most recent
    states.for_conversation("d")
    assert states.kept() == ["c", "a", "d"]
    assert states.get("b") is None


def test_the_memory_budget_bounds_the_count_but_keeps_one_besides_the_one_in_use() -> None:
    small = StateCache(_cache, state_bytes=400, policy=StateCachePolicy(memory_budget=1000))
    assert small.capacity == 3
    huge = StateCache(_cache, state_bytes=10**12, policy=StateCachePolicy(memory_budget=1000))
    assert huge.capacity == 1 + 0
    assert huge.for_conversation("a") is huge.for_conversation("a")


def test_a_conversation_gets_its_own_state_back() -> None:
    states = _states()
    first = states.for_conversation("a")
    first.tokens.extend([1, 2, 3])
    states.for_conversation("b")
    assert states.for_conversation("a") is first
    states.forget("a")
    assert states.for_conversation("a") is not first


def test_longest_prefix_key_picks_the_state_sharing_most() -> None:
    caches = {"x": _cache([1, 2, 3, 9]), "y": _cache([1, 2, 3, 4, 5]), "z": _cache([7])}
    assert longest_prefix_key(caches, [1, 2, 3, 4, 6]) == ("y", 4)
    assert longest_prefix_key(caches, [8]) == (None, 0)


def test_an_anonymous_request_continues_the_state_holding_its_earlier_turns() -> None:
    states = _states(max_anonymous=2)
    chat = states.for_prompt([1, 2, 3])
    chat.tokens.extend([1, 2, 3, 4])
    assert states.for_prompt([1, 2, 3, 4, 5, 6]) is chat  # the same chat, grown


def test_sharing_only_a_system_prompt_is_not_enough_to_take_a_state() -> None:
    states = _states(max_anonymous=2, reuse_fraction=0.5)
    chat = states.for_prompt([1, 2, 3, 4, 5, 6, 7, 8])
    chat.tokens.extend([1, 2, 3, 4, 5, 6, 7, 8])
    other = states.for_prompt([1, 2, 9, 9])  # shares 2 of 8
    assert other is not chat


def test_anonymous_states_never_evict_the_windows_conversations() -> None:
    states = _states(max_states=4, max_anonymous=2)
    mine = states.for_conversation("window chat")
    for start in range(10):
        states.for_prompt([100 + start]).tokens.extend([100 + start])
    anonymous = [k for k in states.kept() if k.startswith(ANONYMOUS_PREFIX)]
    assert len(anonymous) == 2
    assert states.get("window chat") is mine
