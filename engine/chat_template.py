"""Render a model's chat template the way transformers does, without transformers.

The same sandboxed Jinja environment (``ImmutableSandboxedEnvironment`` with ``trim_blocks`` and
``lstrip_blocks``, the ``loopcontrols`` extension), the same helpers (``raise_exception``,
``strftime_now``, a ``tojson`` filter that keeps non-ASCII text), and the same variables
(``messages``, ``add_generation_prompt``, the special tokens), so the token ids match
``apply_chat_template``.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from typing import Any


class ChatTemplateError(Exception):
    """The template failed to render: ``str(error)`` says why (often the template's own message)."""


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


@lru_cache(maxsize=8)
def _compile(template: str) -> Any:
    from jinja2 import TemplateError
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    environment = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]
    )
    environment.filters["tojson"] = _tojson
    environment.globals["raise_exception"] = _raise_exception
    environment.globals["strftime_now"] = _strftime_now
    try:
        return environment.from_string(template)
    except TemplateError as error:
        raise ChatTemplateError(f"the model's chat template does not parse: {error}") from error


def render_chat_template(
    template: str,
    messages: list[dict[str, str]],
    *,
    add_generation_prompt: bool = True,
    special_tokens: dict[str, str] | None = None,
) -> str:
    from jinja2 import TemplateError

    compiled = _compile(template)
    try:
        return compiled.render(
            messages=messages,
            add_generation_prompt=add_generation_prompt,
            **(special_tokens or {}),
        )
    except ChatTemplateError:
        raise
    except TemplateError as error:
        raise ChatTemplateError(f"the model's chat template failed: {error}") from error
