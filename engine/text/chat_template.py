"""Render a model's chat template the way transformers does, without transformers.

The same sandboxed Jinja environment (``ImmutableSandboxedEnvironment`` with ``trim_blocks`` and
``lstrip_blocks``, the ``loopcontrols`` extension and the ``{% generation %}`` tag), the same helpers
(``raise_exception``, ``strftime_now``, ``dict``, an underscore-refusing ``namespace``, a ``tojson``
filter that keeps non-ASCII text), and the same variables (``messages``, ``tools`` and
``documents`` as None, ``add_generation_prompt``, the special tokens), so the token ids match
``apply_chat_template``.

A template is code from whoever made the model folder, so it runs bounded (``template_sandbox``):
time, iterations, the size of every value and of the output; Stop (the ``cancel`` event) ends it.
Whatever goes wrong, the caller gets one ``ChatTemplateError`` with a one-line message.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.text.template_sandbox import RenderLimits

_MESSAGE_CHARACTERS = 300  # an error message quotes at most this much of what went wrong


class ChatTemplateError(Exception):
    """The template failed to render: ``str(error)`` says why (often the template's own message)."""


class ChatTemplateCancelled(ChatTemplateError):
    """Rendering stopped because the caller's cancel event was set (Stop)."""


_cancel: ContextVar[threading.Event | None] = ContextVar("chat_template_cancel", default=None)


@contextmanager
def rendering_cancelled_by(cancel: threading.Event | None) -> Iterator[None]:
    """Renders in this block stop when ``cancel`` is set (the generation's Stop): the renders
    happen deep in planning (``ChatSession.plan``), so the event travels beside the calls."""
    token = _cancel.set(cancel)
    try:
        yield
    finally:
        _cancel.reset(token)


def current_cancel() -> threading.Event | None:
    """The cancel event of the enclosing ``rendering_cancelled_by`` block (None outside one)."""
    return _cancel.get()


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    if len(text) > _MESSAGE_CHARACTERS:
        text = text[: _MESSAGE_CHARACTERS - 1] + "…"
    return text


def _raise_exception(message: str) -> None:
    raise ChatTemplateError(message)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _strftime_now(format_: str) -> str:
    return datetime.now().strftime(format_)


class _TemplateDict:
    """``dict(...)`` for templates, without the type itself (as transformers exposes it)."""

    def __call__(self, *args: Any, **kwargs: Any) -> dict:
        return dict(*args, **kwargs)

    def fromkeys(self, *args: Any, **kwargs: Any) -> dict:
        return dict.fromkeys(*args, **kwargs)


def _extensions() -> list[Any]:
    import jinja2
    from jinja2.ext import Extension, loopcontrols

    class GenerationBlock(Extension):
        """``{% generation %}...{% endgeneration %}`` renders its body (transformers uses it to
        mark assistant tokens for training; for inference it is transparent)."""

        tags = {"generation"}  # noqa: RUF012 (jinja's own class attribute)

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            call = self.call_method("_render_body")
            return jinja2.nodes.CallBlock(call, [], [], body).set_lineno(lineno)

        def _render_body(self, caller: Any) -> str:
            return caller()

    return [GenerationBlock, loopcontrols]


def _namespace_class() -> type:
    import jinja2.utils

    from engine.text.template_sandbox import check_stored_value

    class TemplateNamespace(jinja2.utils.Namespace):
        """Jinja's namespace, refusing underscore names (as transformers does)."""

        def __init__(*args: Any, **kwargs: Any) -> None:  # self is args[0], as in jinja
            self, rest = args[0], args[1:]
            attributes = dict(*rest, **kwargs)
            for name, value in attributes.items():
                TemplateNamespace._check_name(name)
                check_stored_value(value)
            jinja2.utils.Namespace.__init__(self, attributes)

        def __setitem__(self, name: str, value: Any) -> None:
            TemplateNamespace._check_name(name)
            check_stored_value(value)
            jinja2.utils.Namespace.__setitem__(self, name, value)

        @staticmethod
        def _check_name(name: Any) -> None:
            if isinstance(name, str) and name.startswith("_"):
                raise jinja2.exceptions.SecurityError(
                    f"chat templates cannot store underscore names on a namespace ({name!r})"
                )

    return TemplateNamespace


@lru_cache(maxsize=8)
def _compile(template: str) -> Any:
    from engine.text.template_sandbox import BoundedSandbox

    environment = BoundedSandbox(trim_blocks=True, lstrip_blocks=True, extensions=_extensions())
    environment.filters["tojson"] = _tojson
    environment.globals["raise_exception"] = _raise_exception
    environment.globals["strftime_now"] = _strftime_now
    environment.globals["dict"] = _TemplateDict()
    environment.globals["namespace"] = _namespace_class()
    try:
        return environment.from_string(template)
    # Parsing and compiling a hostile template can fail in any way (deep nesting: RecursionError).
    except Exception as error:
        raise ChatTemplateError(
            f"the model's chat template does not parse: {_one_line(error)}"
        ) from error


def render_chat_template(
    template: str,
    messages: list[dict[str, str]],
    *,
    add_generation_prompt: bool = True,
    special_tokens: dict[str, str] | None = None,
    cancel: threading.Event | None = None,
    limits: RenderLimits | None = None,
    tools: list[dict[str, Any]] | None = None,
    variables: Mapping[str, Any] | None = None,
) -> str:
    """The rendered prompt (``variables``: the template's own options, e.g. ``enable_thinking``).
    ``cancel`` (default: the one of ``rendering_cancelled_by``) stops the
    render with ``ChatTemplateCancelled``; ``limits`` default to ``template_sandbox.DEFAULT_LIMITS``."""
    from engine.text import template_sandbox
    from engine.text.template_sandbox import RenderBudget, RenderCancelled, render_budget

    compiled = _compile(template)
    budget = RenderBudget(limits or template_sandbox.DEFAULT_LIMITS, cancel or _cancel.get())
    pieces: list[str] = []
    size = 0
    try:
        with render_budget(budget):
            for piece in compiled.generate(
                **(variables or {}),
                **(special_tokens or {}),
                messages=messages,
                tools=tools or None,  # transformers passes None when there are none; templates
                documents=None,  # test ``tools is not none``
                add_generation_prompt=add_generation_prompt,
            ):
                size += len(piece)
                budget.check_size(size, "a prompt")
                pieces.append(piece)
    except RenderCancelled as error:
        raise ChatTemplateCancelled(str(error)) from error
    except ChatTemplateError as error:  # raise_exception(): the template's own words
        raise ChatTemplateError(_one_line(error)) from error
    # The template is someone else's code: whatever it raises (TemplateError, our limits,
    # OverflowError, RecursionError, MemoryError, TypeError...) is the template's failure.
    except Exception as error:
        raise ChatTemplateError(f"the model's chat template failed: {_one_line(error)}") from error
    return "".join(pieces)
