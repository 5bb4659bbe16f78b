"""Generation presets: named sets of generation settings and a system prompt, chosen per chat.

A chat uses its preset's settings and system prompt (its own system prompt, set in the header,
still comes first); a chat without one uses Settings → Generation ("Default"). The presets and
which chat uses which live in the settings file (``AppSettings.presets``, ``chat_presets``);
these functions are the rules, without Qt.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from engine.messages import GenerationConfig

logger = logging.getLogger(__name__)

MAX_PRESETS = 50
MAX_PRESET_NAME = 60


@dataclass(frozen=True)
class Preset:
    name: str
    system_prompt: str = ""
    generation: GenerationConfig = field(default_factory=GenerationConfig)


def preset_name_problem(name: str, existing: tuple[Preset, ...] = ()) -> str | None:
    """What is wrong with ``name`` for a new preset (None: nothing; an existing one is replaced)."""
    if not name.strip():
        return "a preset needs a name: expected some text"
    if len(name) > MAX_PRESET_NAME:
        return f"expected a name of at most {MAX_PRESET_NAME} characters, found {len(name)}"
    if name.strip() not in {p.name for p in existing} and len(existing) >= MAX_PRESETS:
        return f"expected at most {MAX_PRESETS} presets: delete one first"
    return None


def find_preset(presets: tuple[Preset, ...], name: str) -> Preset | None:
    return next((preset for preset in presets if preset.name == name), None)


def with_preset(presets: tuple[Preset, ...], preset: Preset) -> tuple[Preset, ...]:
    """``presets`` with ``preset`` added, or replacing the one of its name (in its place)."""
    if find_preset(presets, preset.name) is None:
        return (*presets, preset)
    return tuple(preset if p.name == preset.name else p for p in presets)


def chat_preset(chat_presets: tuple[tuple[str, str], ...], conversation_id: str | None) -> str:
    """The preset chosen for the chat ("" : none, it uses the defaults)."""
    if conversation_id is None:
        return ""
    return dict(chat_presets).get(conversation_id, "")


def with_chat_preset(
    chat_presets: tuple[tuple[str, str], ...], conversation_id: str, name: str
) -> tuple[tuple[str, str], ...]:
    """The chats' presets with ``conversation_id`` using ``name`` ("" : back to the defaults)."""
    kept = tuple((chat, preset) for chat, preset in chat_presets if chat != conversation_id)
    return (*kept, (conversation_id, name)) if name else kept


def without_preset(
    presets: tuple[Preset, ...], chat_presets: tuple[tuple[str, str], ...], name: str
) -> tuple[tuple[Preset, ...], tuple[tuple[str, str], ...]]:
    """Delete preset ``name``: the chats that used it go back to the defaults."""
    return (
        tuple(p for p in presets if p.name != name),
        tuple((chat, preset) for chat, preset in chat_presets if preset != name),
    )
