"""Hostile input to the engine: chat templates that try to hang or exhaust it, and bad command lines.

Each case must end with one clear line (``ChatTemplateError``, an ``EngineError``, ``error:`` and a
non-zero exit) in bounded time and memory, and the engine must go on serving.
"""

from __future__ import annotations

import re
import threading

import pytest

from engine.chat_template import ChatTemplateCancelled, ChatTemplateError, render_chat_template
from engine.template_sandbox import RenderLimits

MESSAGES = [{"role": "user", "content": "Hello"}]
NESTED_RANGES = (
    "{% for a in range(100000) %}{% for b in range(100000) %}{% for c in range(100000) %}"
    "{% endfor %}{% endfor %}{% endfor %}"
)

HOSTILE = {
    "huge-power": ("{{ 10 ** (10 ** 8) }}", "bits"),
    "power-in-steps": ("{{ (10 ** 10000) ** 10000 }}", "bits"),
    "huge-repeat": ("{{ 'A' * 2000000000 }}", "repeated value"),
    "huge-list": ("{{ [1] * 10 ** 8 }}", "repeated value"),
    "nested-ranges": (NESTED_RANGES, "looped more than|took longer than"),
    "recursive-loop": (
        "{% for x in range(100000) recursive %}{% if loop.depth < 4 %}{{ loop(range(100000)) }}"
        "{% endif %}{% endfor %}",
        "looped more than|took longer than",  # whichever comes first on this machine
    ),
    "center": ("{{ 'x' | center(10 ** 9) }}", "center width"),
    "indent": ("{{ 'a\nb' | indent(10 ** 10) }}", "indent width"),
    "batch-fill": ("{{ [1] | batch(10 ** 9, 'x') | list }}", "batch width"),
    "ljust": ("{{ 'x'.ljust(10 ** 9) }}", "padded value"),
    "str-format-width": ("{{ '{:>999999999}'.format(1) }}", "padded value"),
    "percent-width": ("{{ '%999999999s' % 'x' }}", "padded value"),
    "percent-star": ("{{ '%*s' % (999999999, 'x') }}", "padded value"),
    "replace": ("{{ ('x' * 1000000).replace('', 'y' * 100) }}", "characters"),
    "join": ("{{ ('y' * 1000000).join(range(100) | map('string')) }}", "joined value"),
    "join-filter": ("{{ range(1000) | join('y' * 1000000) }}", "joined value"),
    "macro-doubling": (
        "{% macro d(s, n) %}{{ d(s ~ s, n - 1) if n else s }}{% endmacro %}{{ d('x', 40) }}",
        "argument",
    ),
    "namespace-doubling": (
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}",
        "namespace value",
    ),
    "set-block-doubling": (
        "{% set ns = namespace(s='x' * 1000000) %}{% for i in range(40) %}{% set block %}"
        "{{ ns.s }}{{ ns.s }}{% endset %}{% set ns.s = block %}{% endfor %}",
        "characters",
    ),
    "huge-output": ("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", "a prompt of"),
    "recursion": ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "recursion"),
    "float-overflow": ("{{ 10.0 ** 400 }}", "range"),
    "zero-division": ("{{ 1 / 0 }}", "division"),
    "type-error": ("{{ 1 + 'a' }}", "unsupported"),
    "lipsum": ("{{ lipsum(10 ** 9) }}", "undefined"),
    "deep-nesting": ("{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}", "does not parse"),
    "multi-line-message": ("{{ raise_exception('line one\nline two') }}", "line one line two"),
}


@pytest.mark.parametrize(("template", "expected"), HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_templates_fail_with_one_line(template, expected):
    with pytest.raises(ChatTemplateError) as failure:
        render_chat_template(template, MESSAGES)
    message = str(failure.value)
    assert re.search(expected, message) and "\n" not in message and len(message) <= 300


def test_a_render_past_its_deadline_stops_even_without_output():
    limits = RenderLimits(seconds=0.2, max_iterations=10**12)
    with pytest.raises(ChatTemplateError, match=r"took longer than 0\.2 s"):
        render_chat_template(NESTED_RANGES, MESSAGES, limits=limits)


def test_cancel_stops_a_render_in_progress():
    cancel = threading.Event()
    outcome: list[BaseException] = []

    def render() -> None:
        limits = RenderLimits(seconds=3600, max_iterations=10**12)
        try:
            render_chat_template(NESTED_RANGES, MESSAGES, cancel=cancel, limits=limits)
        except ChatTemplateError as error:
            outcome.append(error)

    thread = threading.Thread(target=render, daemon=True)
    thread.start()
    thread.join(0.3)
    assert thread.is_alive()  # still rendering: only Stop can end it
    cancel.set()
    thread.join(60)  # a watchdog, not a speed check: without the cancel check it runs an hour
    assert not thread.is_alive() and isinstance(outcome[0], ChatTemplateCancelled)


def test_bounded_sandbox_keeps_ordinary_template_work():
    template = (
        "{% set ns = namespace(text='') %}{% for m in messages %}{% set ns.text = ns.text + "
        "m.content | upper %}{% endfor %}{{ ns.text }}|{{ '-' * 3 }}|{{ 2 ** 10 }}|"
        "{{ '%5s' % 'ab' }}|{{ '{:>4}'.format(7) }}|{{ 'a b'.replace(' ', '_') }}|"
        "{{ ', '.join(['x', 'y']) }}|{{ [1, 2] | join('+') }}|{{ 'ab' | center(6) }}|"
        "{% for x in [[1, [2]]] recursive %}{% if x is iterable %}{{ loop(x) }}{% else %}{{ x }}"
        "{% endif %}{% endfor %}"
    )
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    assert render_chat_template(template, messages) == (
        "HIYO|---|1024|   ab|   7|a_b|x, y|1+2|  ab  |12"
    )
