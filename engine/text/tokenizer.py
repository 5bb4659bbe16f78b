"""A model's tokenizer and chat template, from the files beside its package (``tokenizers`` only)."""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from engine.messages import ChatMessage
from engine.package import metadata as meta
from engine.package.model import ModelLoadError
from engine.text.chat_template import ChatTemplateError, render_chat_template
from engine.text.tool_calls import (
    ToolFormat,
    detect_format,
    generic_messages,
    has_tool_history,
    history_as_text,
    template_payload,
)

logger = logging.getLogger(__name__)


def _token_text(value: Any) -> str:
    """tokenizer_config.json holds special tokens as strings or as {"content": ...} objects."""
    if isinstance(value, dict):
        return str(value.get("content", ""))
    return value if isinstance(value, str) else ""


def _align(parts: list[tuple[str, bool]], plain: str) -> list[tuple[str, bool]]:
    """The parts as the template renders them without markers: a template that trims a message
    (``message.content | trim``) trims the marked text inside the markers only, so each person's
    part is matched against the plain rendering, trimmed the way that makes the rest line up.
    When nothing lines up the marked parts are kept (the same text but for that whitespace)."""
    aligned: list[tuple[str, bool]] = []
    cursor = 0
    for index, (text, written) in enumerate(parts):
        following = parts[index + 1][0] if index + 1 < len(parts) else None
        options = (text, text.strip(), text.lstrip(), text.rstrip()) if written else (text,)
        for option in options:
            end = cursor + len(option)
            if plain.startswith(option, cursor) and (
                following is None
                or plain.startswith(following, end)
                or (parts[index + 1][1] and plain.startswith(following.strip()[:1], end))
            ):
                aligned.append((option, written))
                cursor = end
                break
        else:
            return parts
    return aligned if cursor == len(plain) else parts


@dataclass(frozen=True)
class FillInMiddleFormat:
    """A tokenizer's fill-in-the-middle markup: its three control tokens, and whether the suffix
    comes first (Mistral's Codestral: ``[SUFFIX]…[PREFIX]…``, no middle token)."""

    prefix: str
    suffix: str
    middle: str | None
    suffix_first: bool = False


# The formats of the FIM-trained families, by their control tokens: StarCoder and SmolLM's,
# Qwen2.5-Coder's, Mistral's (v3 tokenizers and later).
FILL_IN_MIDDLE_FORMATS = (
    FillInMiddleFormat("<fim_prefix>", "<fim_suffix>", "<fim_middle>"),
    FillInMiddleFormat("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"),
    FillInMiddleFormat("[PREFIX]", "[SUFFIX]", None, suffix_first=True),
)


class NoFillInMiddleError(ValueError):
    """The tokenizer has none of ``FILL_IN_MIDDLE_FORMATS``' control tokens."""


@dataclass
class ChatTokenizer:
    tokenizer: Any  # tokenizers.Tokenizer
    chat_template: str
    special_tokens: dict[str, str] = field(default_factory=dict)
    eos_token_ids: frozenset[int] = frozenset()
    bos_token_id: int | None = None
    # Renders the template: in this process (tests, tools), or ``render_process.render_isolated``
    # (the engine: a killable child, so Stop and the time limit hold whatever the template does).
    render_template: Callable[..., str] = render_chat_template

    @classmethod
    def from_folder(
        cls,
        folder: Path,
        metadata: dict[str, str] | None = None,
        *,
        render_template: Callable[..., str] = render_chat_template,
    ) -> ChatTokenizer:
        """Read ``tokenizer.json`` + ``tokenizer_config.json`` (and ``chat_template.jinja``, which
        transformers 5 writes beside them and prefers); eos ids also from the package metadata."""
        from tokenizers import Tokenizer

        metadata = metadata or {}
        tokenizer_file = folder / meta.TOKENIZER_FILE
        config_file = folder / meta.TOKENIZER_CONFIG_FILE
        for required in (tokenizer_file, config_file):
            if not required.is_file():
                raise ModelLoadError(f"expected {required.name} in {folder}, found none")
        try:
            tokenizer = Tokenizer.from_file(str(tokenizer_file))
        except Exception as error:  # tokenizers raises a plain Exception on a bad file
            raise ModelLoadError(f"{tokenizer_file} is not a tokenizers file: {error}") from error
        try:
            config = json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ModelLoadError(f"{config_file} is not valid JSON: {error}") from error
        if not isinstance(config, dict):
            raise ModelLoadError(
                f"{config_file} should hold a JSON object, not {type(config).__name__}"
            )
        template_file = folder / "chat_template.jinja"
        template = config.get("chat_template")
        if template_file.is_file():
            template = template_file.read_text(encoding="utf-8")
        if isinstance(template, list):  # several named templates: take the default one
            named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
            template = named.get("default") or next(iter(named.values()), None)
        if not isinstance(template, str) or not template.strip():
            raise ModelLoadError(
                f"{config_file} has no chat_template: coreml-chat needs an instruct (chat) model"
            )
        special = {
            name: _token_text(config.get(name))
            for name in ("bos_token", "eos_token", "unk_token", "pad_token")
        }
        eos_ids = set()
        eos_id = tokenizer.token_to_id(special["eos_token"]) if special["eos_token"] else None
        if eos_id is not None:
            eos_ids.add(eos_id)
        for item in metadata.get(meta.EOS_TOKEN_IDS, "").split(","):
            if item.strip().isdigit():
                eos_ids.add(int(item))
        if not eos_ids:
            raise ModelLoadError(
                f"no end-of-sequence token: {config_file} has no eos_token and the package "
                "metadata no eos token ids, so an answer would never end"
            )
        bos_text = special["bos_token"]
        bos_id = tokenizer.token_to_id(bos_text) if bos_text else None
        if bos_id is None and metadata.get(meta.BOS_TOKEN_ID, "").strip().isdigit():
            bos_id = int(metadata[meta.BOS_TOKEN_ID])
        return cls(tokenizer, template, special, frozenset(eos_ids), bos_id, render_template)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    @cached_property
    def tool_format(self) -> ToolFormat:
        """The tool-call format the chat template speaks (``generic``: none of its own)."""
        return detect_format(self.chat_template)

    def render(
        self,
        messages: list[ChatMessage],
        *,
        add_generation_prompt: bool = True,
        tools: list[dict[str, Any]] | None = None,
        variables: Mapping[str, Any] | None = None,
    ) -> str:
        return self.render_template(
            self.chat_template,
            [template_payload(m) for m in messages],
            add_generation_prompt=add_generation_prompt,
            special_tokens=self.special_tokens,
            tools=tools,
            variables=variables,
        )

    def _with_tools(
        self, messages: list[ChatMessage], tools: list[dict[str, Any]] | None
    ) -> tuple[list[ChatMessage], list[dict[str, Any]] | None]:
        """The messages and tools to render: a template with no tools gets them described in the
        system prompt and its history of calls as text (``tool_calls.generic_messages``); a
        template that has tools but cannot render a history of calls (it raises) gets that
        history as text. Done before the markers go in: all of it is encoded as text."""
        if self.tool_format == "generic":
            if tools:
                return generic_messages(messages, tools), None
            return (history_as_text(messages) if has_tool_history(messages) else messages), None
        self._refuse_control_text(messages, tools)
        if has_tool_history(messages):
            try:
                self.render(messages, tools=tools)
            except ChatTemplateError:
                logger.info("the chat template cannot render tool calls: they go in as text")
                return history_as_text(messages), tools
        return messages, tools

    def _refuse_control_text(
        self, messages: list[ChatMessage], tools: list[dict[str, Any]] | None
    ) -> None:
        """A template with tools writes them, and the calls in a history, as its own markup: text
        there that spells a control token (``[INST]``, ``<|im_end|>``) would become one. Such a
        request is refused (``ValueError``, naming where), never encoded as markup."""
        specials = self._special_pattern
        if specials is None:
            return
        pending: list[tuple[str, Any]] = [("tools", tools or [])]
        for index, message in enumerate(messages):
            for number, call in enumerate(message.tool_calls):
                where = f"messages[{index}].tool_calls[{number}]"
                pending += [(f"{where}.name", call.name), (f"{where}.arguments", call.arguments)]
        while pending:
            where, value = pending.pop()
            if isinstance(value, dict):
                pending += [(f"{where}.{key}", key) for key in value]
                pending += [(f"{where}.{key}", item) for key, item in value.items()]
            elif isinstance(value, list):
                pending += [(f"{where}[{i}]", item) for i, item in enumerate(value)]
            elif isinstance(value, str) and (found := specials.search(value)):
                raise ValueError(
                    f"{where} holds {found.group(0)!r}, this model's control token: expected "
                    "plain text in tools and tool calls (the template writes them as markup)"
                )

    def render_parts(
        self,
        messages: list[ChatMessage],
        *,
        add_generation_prompt: bool = True,
        tools: list[dict[str, Any]] | None = None,
        variables: Mapping[str, Any] | None = None,
    ) -> list[tuple[str, bool]]:
        """The rendered conversation as (text, written by a person) parts, in order.

        Each message's content is rendered between two random markers, so what the template wrote
        (its markup, which may hold control tokens) and what a user or client wrote (text only)
        can be told apart afterwards; the markers are then removed.
        """
        messages, tools = self._with_tools(messages, tools)
        nonce = secrets.token_hex(8)
        opening, closing = f"\ue000{nonce}\ue001", f"\ue002{nonce}\ue003"
        marked = [
            ChatMessage(m.role, f"{opening}{m.content}{closing}", m.tool_calls, m.tool_call_id)
            for m in messages
        ]
        rendered = self.render(
            marked, add_generation_prompt=add_generation_prompt, tools=tools, variables=variables
        )
        parts: list[tuple[str, bool]] = []
        pattern = re.compile(f"{re.escape(opening)}(.*?){re.escape(closing)}", re.DOTALL)
        position = 0
        for match in pattern.finditer(rendered):
            parts.append((rendered[position : match.start()], False))
            parts.append((match.group(1), True))
            position = match.end()
        parts.append((rendered[position:], False))
        # A template that cut a marker off (slicing a message) leaves strays: plain markup then.
        parts = [
            (text.replace(opening, "").replace(closing, ""), written)
            for text, written in parts
            if text
        ]
        plain = self.render(
            messages, add_generation_prompt=add_generation_prompt, tools=tools, variables=variables
        )
        return _align(parts, plain)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` as transformers' apply_chat_template makes them (no extra specials)."""
        return list(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def encode_text(self, text: str) -> list[int]:
        """A raw prompt's ids: all of ``text`` as text (a control token's text too) with the
        specials the tokenizer's own post-processor adds around it (Mistral's BOS; none for
        SmolLM2), as ``tokenizer(text)`` gives them."""
        first, _ = self._literal_tokenizers
        return list(first.encode(text, add_special_tokens=True).ids)

    @cached_property
    def fill_in_middle(self) -> FillInMiddleFormat | None:
        """The tokenizer's fill-in-the-middle format, None when it has none."""
        for form in FILL_IN_MIDDLE_FORMATS:
            names = (form.prefix, form.suffix) + ((form.middle,) if form.middle else ())
            if all(self.tokenizer.token_to_id(name) is not None for name in names):
                return form
        return None

    def encode_fill_in_middle(self, prefix: str, suffix: str) -> list[int]:
        """The ids asking for the text between ``prefix`` and ``suffix`` (both encoded as text),
        after the specials the post-processor puts first (a BOS)."""
        form = self.fill_in_middle
        if form is None:
            wanted = ", ".join(f"{f.prefix} {f.suffix}" for f in FILL_IN_MIDDLE_FORMATS)
            raise NoFillInMiddleError(
                f"this model's tokenizer has no fill-in-the-middle tokens (expected one of: "
                f"{wanted}): it cannot take a suffix"
            )
        _, rest = self._literal_tokenizers
        marked = self.tokenizer.encode("x", add_special_tokens=True).ids
        plain = self.tokenizer.encode("x", add_special_tokens=False).ids
        leading = list(marked[: marked.index(plain[0])]) if plain and plain[0] in marked else []

        def text(value: str) -> list[int]:
            return list(rest.encode(value, add_special_tokens=False).ids) if value else []

        def token(name: str) -> list[int]:
            return [self.tokenizer.token_to_id(name)]

        if form.suffix_first:
            body = token(form.suffix) + text(suffix) + token(form.prefix) + text(prefix)
        else:
            body = token(form.prefix) + text(prefix) + token(form.suffix) + text(suffix)
        return leading + body + (token(form.middle) if form.middle else [])

    def encode_chat(
        self,
        messages: list[ChatMessage],
        *,
        add_generation_prompt: bool = True,
        tools: list[dict[str, Any]] | None = None,
        variables: Mapping[str, Any] | None = None,
    ) -> list[int]:
        """The conversation's ids; control tokens come only from the template's own markup.

        When no message holds the text of a special token (``[INST]``, ``</s>``,
        ``<|im_start|>``), that is simply the rendered text encoded; otherwise the text is
        encoded the way ``tokenizers`` does it (split at the special tokens, each run of text
        between them normalized and pre-tokenized on its own), except that special tokens are
        looked for only in the markup: a person's text is encoded as text.
        """
        parts = self.render_parts(
            messages, add_generation_prompt=add_generation_prompt, tools=tools, variables=variables
        )
        specials = self._special_pattern
        if specials is None or not any(written and specials.search(t) for t, written in parts):
            return self.encode("".join(text for text, _ in parts))
        return self._encode_parts(parts, specials)

    @cached_property
    def _special_pattern(self) -> re.Pattern[str] | None:
        texts = sorted(
            {t.content for t in self.tokenizer.get_added_tokens_decoder().values() if t.special},
            key=len,
            reverse=True,
        )
        return re.compile("|".join(re.escape(t) for t in texts if t)) if texts else None

    @cached_property
    def _literal_tokenizers(self) -> tuple[Any, Any]:
        """Copies that never parse special tokens: (for text at the start, for text after it).

        A Metaspace pre-tokenizer with ``prepend_scheme: first`` adds its "▁" only to the text
        at offset 0; the second copy never adds it, as text after a special token gets none.
        """
        from tokenizers import Tokenizer

        description = json.loads(self.tokenizer.to_str())
        first = Tokenizer.from_str(json.dumps(description))
        stack = [description.get("pre_tokenizer")]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                if node.get("type") == "Metaspace" and node.get("prepend_scheme") == "first":
                    node["prepend_scheme"] = "never"
                stack.extend(node.get("pretokenizers") or [])
        rest = Tokenizer.from_str(json.dumps(description))
        for copy in (first, rest):
            copy.encode_special_tokens = True
        return first, rest

    def _encode_parts(self, parts: list[tuple[str, bool]], specials: re.Pattern[str]) -> list[int]:
        ids: list[int] = []
        run: list[str] = []
        at_start = True

        def flush() -> None:
            nonlocal at_start
            text = "".join(run)
            run.clear()
            if text:
                first, rest = self._literal_tokenizers
                encoder = first if at_start else rest
                ids.extend(encoder.encode(text, add_special_tokens=False).ids)
            at_start = False

        for text, written in parts:
            if written:
                run.append(text)
                continue
            position = 0
            for match in specials.finditer(text):
                run.append(text[position : match.start()])
                flush()
                ids.append(self.tokenizer.token_to_id(match.group(0)))
                position = match.end()
            run.append(text[position:])
        flush()
        return ids

    def decode(self, ids: list[int], *, skip_special_tokens: bool = True) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)
