"""The answer the engine is writing, as the chat controller tracks it, and the settings JSON that
is stored beside every answer."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from app.settings.app_settings import AppSettings, settings_to_dict
from engine.messages import GenerationConfig


@dataclass
class ActiveAnswer:
    """The answer being written: its request, its text so far, its timings and what the store
    keeps with it (the controller holds one at a time)."""

    request_id: int
    conversation_id: str
    started_at: float
    pieces: list[str] = field(default_factory=list)
    first_token_at: float | None = None
    tokens: int = 0
    context_base: int = 0  # tokens in the cache before this turn (as last reported)
    fed: int = 0  # tokens fed in prefill so far
    message_id: int | None = None  # its row in the store, from the first token on
    saved_at: float = 0.0
    replaces: int | None = None  # the shown answer a regenerate makes a new version of
    model: str = ""  # the name of the model writing it
    generation: str = ""  # its generation settings, JSON
    prefix: str = ""  # Continue: the stored answer this one carries on (``message_id`` is its row)
    continued_finish: str = ""  # Continue: that answer's own end, kept when no new token comes
    reasoning: bool = False  # the last piece was reasoning (its <think> marker is in ``pieces``)

    def provenance(self) -> dict[str, Any]:
        """What the store keeps with the answer: which model wrote it, with which settings."""
        return {"replaces": self.replaces, "model": self.model, "generation": self.generation}

    @property
    def text(self) -> str:
        """The answer as stored and shown: a continued answer's earlier text, then the new."""
        new = "".join(self.pieces)
        if not (self.prefix and new):
            return self.prefix or new
        # The model starts a new turn: its first word would stick to the last one.
        joiner = "" if self.prefix[-1].isspace() or new[0].isspace() else " "
        return self.prefix + joiner + new


def generation_json(config: GenerationConfig) -> str:
    """The settings an answer was written with, as stored beside it (keys sorted: stable)."""
    return json.dumps(
        settings_to_dict(AppSettings(generation=config))["generation"], sort_keys=True
    )
