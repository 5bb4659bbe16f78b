"""A model's tokenizer and chat template, from the files beside its package (``tokenizers`` only)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import package_metadata as meta
from engine.chat_template import render_chat_template
from engine.messages import ChatMessage
from engine.model_package import ModelLoadError

logger = logging.getLogger(__name__)


def _token_text(value: Any) -> str:
    """tokenizer_config.json holds special tokens as strings or as {"content": ...} objects."""
    if isinstance(value, dict):
        return str(value.get("content", ""))
    return value if isinstance(value, str) else ""


@dataclass
class ChatTokenizer:
    tokenizer: Any  # tokenizers.Tokenizer
    chat_template: str
    special_tokens: dict[str, str] = field(default_factory=dict)
    eos_token_ids: frozenset[int] = frozenset()
    bos_token_id: int | None = None

    @classmethod
    def from_folder(cls, folder: Path, metadata: dict[str, str] | None = None) -> ChatTokenizer:
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
        return cls(tokenizer, template, special, frozenset(eos_ids), bos_id)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def render(self, messages: list[ChatMessage], *, add_generation_prompt: bool = True) -> str:
        payload = [{"role": m.role, "content": m.content} for m in messages]
        return render_chat_template(
            self.chat_template,
            payload,
            add_generation_prompt=add_generation_prompt,
            special_tokens=self.special_tokens,
        )

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` as transformers' apply_chat_template makes them (no extra specials)."""
        return list(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def encode_chat(
        self, messages: list[ChatMessage], *, add_generation_prompt: bool = True
    ) -> list[int]:
        return self.encode(self.render(messages, add_generation_prompt=add_generation_prompt))

    def decode(self, ids: list[int], *, skip_special_tokens: bool = True) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)
