"""The Jinja sandbox chat templates run in, bounded in time, size and iterations.

A model's chat template is code from whoever made the model folder. Jinja's sandbox stops attribute
escapes but not work: ``10**(10**8)`` or ``'A' * 2000000000`` run for minutes inside one C call,
three nested ``range(100000)`` loops never end, ``' ' | indent(10**10)`` takes all memory. Here:

- every operation that makes a big value from small ones is checked *before* it runs: ``*``, ``**``,
  ``%`` and ``+`` (the sandbox's ``intercepted_binops``), the string methods that take a width or
  repeat (``center``, ``zfill``, ``replace``, ``join``, ``format``...), the filters that do the same,
  values stored on a ``namespace``, arguments of macro calls, and every joined block of output;
  a value may hold at most ``RenderLimits.max_text`` characters (or items);
- every ``for`` loop iterates through ``guard_iteration``, which counts iterations (at most
  ``max_iterations`` per render) and checks the budget;
- the budget (a deadline, and the caller's cancel event, so Stop ends a render) is checked at every
  iteration, call, attribute lookup, filter and intercepted operator, so even loops that produce
  no output stop.

The budget of the render in progress lives in a context variable: compiled templates are shared
(cached), budgets are per render and per thread.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment

_SIZED = (str, bytes, list, tuple, dict)
_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})
_WIDTH_FILTERS = frozenset({"center", "indent", "format", "batch", "wordwrap", "truncate"})
_FORMAT_NUMBER = re.compile(r"\d+")


class TemplateLimitError(Exception):
    """The template went past one of the render limits (the message says which)."""


class RenderCancelled(Exception):
    """The caller's cancel event was set while the template was rendering."""


@dataclass(frozen=True)
class RenderLimits:
    seconds: float = 5.0  # real templates render in milliseconds
    max_text: int = 16_000_000  # characters of any one value and of the output (~4M tokens)
    max_iterations: int = 1_000_000  # loop iterations in one render
    max_int_bits: int = 65_536  # integers of at most this many bits (about 20,000 digits)


DEFAULT_LIMITS = RenderLimits()


class RenderBudget:
    """What one render may still spend; ``check`` raises when time is up or Stop was pressed."""

    def __init__(self, limits: RenderLimits, cancel: threading.Event | None) -> None:
        self.limits = limits
        self.cancel = cancel
        self.deadline = time.monotonic() + limits.seconds
        self.iterations = 0
        self._steps = 0

    def check(self) -> None:
        """Called at every step of the template; looks at the clock and the event every 32nd
        (microseconds apart), which keeps ordinary templates nearly as fast as without it."""
        self._steps += 1
        if self._steps & 31:
            return
        if self.cancel is not None and self.cancel.is_set():
            raise RenderCancelled("rendering the chat template was cancelled")
        if time.monotonic() > self.deadline:
            raise TemplateLimitError(
                f"the chat template took longer than {self.limits.seconds:g} s to render"
            )

    def check_size(self, size: int, what: str) -> None:
        if size > self.limits.max_text:
            raise TemplateLimitError(
                f"the chat template made {what} of {size:,} characters or items; "
                f"at most {self.limits.max_text:,} are allowed"
            )

    def check_int(self, bits: int) -> None:
        if bits > self.limits.max_int_bits:
            raise TemplateLimitError(
                f"the chat template computed a number of about {bits:,} bits; "
                f"at most {self.limits.max_int_bits:,} are allowed"
            )


_budget: ContextVar[RenderBudget | None] = ContextVar("chat_template_budget", default=None)


@contextmanager
def render_budget(budget: RenderBudget) -> Iterator[RenderBudget]:
    """Make ``budget`` the one the sandbox checks while the template renders in this context."""
    token = _budget.set(budget)
    try:
        yield budget
    finally:
        _budget.reset(token)


def _current() -> RenderBudget:
    budget = _budget.get()
    if budget is None:  # outside render_budget (a template rendered directly): per-step limits
        budget = RenderBudget(DEFAULT_LIMITS, None)
    budget.check()
    return budget


def _size(value: Any) -> int:
    return len(value) if isinstance(value, _SIZED) else 0


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_binop(budget: RenderBudget, operator: str, left: Any, right: Any) -> None:
    """Refuse an operation whose result would be too big, before it runs."""
    if operator == "*":
        for sequence, count in ((left, right), (right, left)):
            if isinstance(sequence, _SIZED) and _is_int(count):
                budget.check_size(len(sequence) * max(count, 0), "a repeated value")
        if _is_int(left) and _is_int(right):
            budget.check_int(left.bit_length() + right.bit_length())
    elif operator == "**" and _is_int(left) and _is_int(right) and right > 0:
        budget.check_int(max(abs(left).bit_length() - 1, 1) * right)
    elif operator == "+":
        if isinstance(left, _SIZED) and isinstance(right, _SIZED):
            budget.check_size(len(left) + len(right), "a joined value")
        elif _is_int(left) and _is_int(right):
            budget.check_int(max(left.bit_length(), right.bit_length()) + 1)
    elif operator == "%" and isinstance(left, (str, bytes)):
        values = right if isinstance(right, tuple) else (right,)
        _check_widths(budget, left, values)


def _check_widths(budget: RenderBudget, text: Any, values: Iterable[Any]) -> None:
    """Widths and precisions of ``%`` and ``format`` (in the text or passed as numbers)."""
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    for match in _FORMAT_NUMBER.finditer(text if isinstance(text, str) else ""):
        if len(match.group()) > 9 or int(match.group()) > budget.limits.max_text:
            budget.check_size(budget.limits.max_text + 1, "a padded value")
    for value in values:
        if _is_int(value):
            budget.check_size(abs(value), "a padded value")


def _check_method(budget: RenderBudget, method: Any, args: tuple, kwargs: dict) -> tuple:
    """Pre-checks for the str/bytes methods whose result can be far bigger than their inputs;
    returns the arguments to call with (an iterable for ``join`` is made a list, to measure it)."""
    target = getattr(getattr(method, "__wrapped__", method), "__self__", None)
    name = getattr(method, "__name__", "")
    if not isinstance(target, (str, bytes)):
        return args
    if name in _WIDTH_METHODS and args and _is_int(args[0]):
        budget.check_size(args[0], "a padded value")
    elif name == "expandtabs":
        size = args[0] if args and _is_int(args[0]) else kwargs.get("tabsize", 8)
        budget.check_size(len(target) + target.count("\t") * max(int(size), 0), "a value")
    elif name == "replace" and len(args) >= 2 and isinstance(args[1], type(target)):
        old, new = args[0], args[1]
        occurrences = target.count(old) if old else len(target) + 1
        if len(args) > 2 and _is_int(args[2]) and args[2] >= 0:
            occurrences = min(occurrences, args[2])
        budget.check_size(len(target) + occurrences * max(len(new) - len(old), 0), "a value")
    elif name == "join" and args:
        items = list(args[0])
        budget.check_size(len(items), "a list")
        total = sum(_size(item) for item in items) + len(target) * max(len(items) - 1, 0)
        budget.check_size(total, "a joined value")
        return (items, *args[1:])
    elif name in ("format", "format_map"):
        _check_widths(budget, target, (*args, *kwargs.values()))
    return args


def _guarded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that checks the budget, refuses huge widths and counts, and measures its result."""

    @functools.wraps(function)  # keeps jinja's pass_context/pass_eval_context marker
    def guarded(*args: Any, **kwargs: Any) -> Any:
        budget = _current()
        if name in _WIDTH_FILTERS:
            for value in (*args[1:], *kwargs.values()):
                if _is_int(value):
                    budget.check_size(abs(value), f"a {name} width")
            if name == "format" and args and isinstance(args[0], str):
                _check_widths(budget, args[0], ())
        if name == "join" and len(args) >= 2:  # join(eval_ctx, value, d="", attribute=None)
            items = args[1] if isinstance(args[1], (str, list, tuple)) else list(args[1])
            separator = kwargs.get("d", args[2] if len(args) > 2 else "")
            budget.check_size(len(items), "a list")
            budget.check_size(_size(separator) * len(items), "a joined value")
            args = (args[0], items, *args[2:])
        result = function(*args, **kwargs)
        budget.check_size(_size(result), f"the result of the {name} filter")
        return result

    return guarded


class _GuardedLoops(CodeGenerator):
    """Compiles every ``for`` loop to iterate through ``environment.guard_iteration``."""

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        guarded_iter = nodes.Call(
            nodes.EnvironmentAttribute("guard_iteration"), [node.iter], [], None, None
        ).set_lineno(node.lineno)
        guarded = nodes.For(
            node.target, guarded_iter, node.body, node.else_, node.test, node.recursive
        ).set_lineno(node.lineno)
        super().visit_For(guarded, frame)


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """transformers' sandbox (immutable), with every way to make work or memory bounded."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})
    code_generator_class = _GuardedLoops

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.filters = {name: _guarded_filter(name, f) for name, f in self.filters.items()}
        self.globals.pop("lipsum", None)  # lipsum(n=10**9): unbounded text, no template uses it

    def guard_iteration(self, iterable: Iterable[Any]) -> Iterator[Any]:
        budget = _current()
        limit = budget.limits.max_iterations
        for item in iterable:
            budget.iterations += 1
            if budget.iterations > limit:
                raise TemplateLimitError(
                    f"the chat template looped more than {limit:,} times in one render"
                )
            budget.check()
            yield item

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _check_binop(_current(), operator, left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _current()
        for value in (*args, *(v for k, v in kwargs.items() if not k.startswith("_"))):
            budget.check_size(_size(value), "an argument")
        args = _check_method(budget, __obj, args, kwargs)
        if isinstance(__obj, LoopContext) and args:  # loop(children) of a recursive loop
            args = (__self.guard_iteration(args[0]), *args[1:])
        result = super().call(__context, __obj, *args, **kwargs)
        budget.check_size(_size(result), "a call's result")
        return result

    def getattr(self, obj: Any, attribute: str) -> Any:
        _current()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _current()
        return super().getitem(obj, argument)

    def concat(self, parts: Iterable[Any]) -> str:  # type: ignore[override]
        """Every buffered block (macro bodies, ``set`` blocks, filter blocks) is joined here."""
        parts = list(parts)
        _current().check_size(sum(_size(part) for part in parts), "a block of output")
        return "".join(parts)


def check_stored_value(value: Any) -> None:
    """A value stored on a template ``namespace`` (the only state that grows across a loop)."""
    _current().check_size(_size(value), "a namespace value")
