"""The app's persistent settings: one JSON file in the config folder, written atomically, mode 0600.

``load_settings()`` never fails: a missing file gives the defaults; an unreadable or corrupt file
gives the defaults and a logged warning; a single bad value (wrong type, out of range) falls back to
that field's default and is logged, the rest of the file is kept. ``save_settings()`` writes a
temporary file beside the real one (mode 0600: the file may hold a Hugging Face access token) and
renames it into place, so a crash never leaves half a file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, get_args

from app.settings.presets import MAX_PRESET_NAME, MAX_PRESETS, Preset
from app.settings.stop_strings import stop_strings_problem
from engine import paths
from engine.messages import ContextPolicy, GenerationConfig
from engine.package.model import COMPUTE_UNITS

logger = logging.getLogger(__name__)

SETTINGS_FILE_NAME = "settings.json"
SETTINGS_VERSION = 1
CONTEXT_POLICIES: tuple[str, ...] = get_args(ContextPolicy)
DEFAULT_COMPUTE_UNITS = "cpu_and_gpu"
DEFAULT_SERVER_PORT = 8080
THEMES: tuple[str, ...] = ("auto", "light", "dark")  # auto follows the system's light/dark setting


def _default_converter_output_dir() -> str:
    return str(paths.models_dir())


@dataclass
class AppSettings:
    system_prompt: str = ""
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    compute_units: str = DEFAULT_COMPUTE_UNITS
    model_path: str = ""  # the last loaded model folder (or .mlpackage)
    hf_token: str = ""
    # The Hugging Face Hub's address for downloads and tokenizer fetches (a mirror or a proxy);
    # empty: huggingface_hub's own (HF_ENDPOINT, else huggingface.co).
    hub_endpoint: str = ""
    converter_output_dir: str = field(default_factory=_default_converter_output_dir)
    # The engine's OpenAI-compatible server on 127.0.0.1 (the key is made on first enable).
    server_enabled: bool = False
    server_port: int = DEFAULT_SERVER_PORT
    server_api_key: str = ""
    server_cors_origins: tuple[str, ...] = ()
    theme: str = "auto"
    presets: tuple[Preset, ...] = ()  # named generation settings + system prompt
    chat_presets: tuple[tuple[str, str], ...] = ()  # (conversation id, preset name)


def settings_path() -> Path:
    return paths.config_dir() / SETTINGS_FILE_NAME


# --- JSON ----------------------------------------------------------------------------------------


def settings_to_dict(settings: AppSettings) -> dict[str, Any]:
    generation = settings.generation
    return {
        "version": SETTINGS_VERSION,
        "system_prompt": settings.system_prompt,
        "generation": {
            "max_new_tokens": generation.max_new_tokens,
            "temperature": generation.temperature,
            "top_k": generation.top_k,
            "top_p": generation.top_p,
            "min_p": generation.min_p,
            "repetition_penalty": generation.repetition_penalty,
            "seed": generation.seed,
            "stop_strings": list(generation.stop_strings),
            "context_policy": generation.context_policy,
            # null: the chat template's own default (reasoning models think); false: they don't
            "enable_thinking": generation.enable_thinking,
        },
        "compute_units": settings.compute_units,
        "model_path": settings.model_path,
        "hf_token": settings.hf_token,
        "hub_endpoint": settings.hub_endpoint,
        "converter_output_dir": settings.converter_output_dir,
        "server_enabled": settings.server_enabled,
        "server_port": settings.server_port,
        "server_api_key": settings.server_api_key,
        "server_cors_origins": list(settings.server_cors_origins),
        "theme": settings.theme,
        "presets": [
            {
                "name": preset.name,
                "system_prompt": preset.system_prompt,
                "generation": settings_to_dict(AppSettings(generation=preset.generation))[
                    "generation"
                ],
            }
            for preset in settings.presets
        ],
        "chat_presets": dict(settings.chat_presets),
    }


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_number(name: str) -> Callable[[Any], str | None]:
    """The engine's own check of one numeric field: the file holds what the engine can use."""

    def check(value: Any) -> str | None:
        return GenerationConfig(**{name: value}).problems().get(name)

    return check


def _check_choice(choices: tuple[str, ...]) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if value not in choices:
            return f"expected one of {', '.join(choices)}, found {value!r}"
        return None

    return check


def _check_str(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"expected text, found {value!r}"
    return None


_GENERATION_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "max_new_tokens": _check_number("max_new_tokens"),
    "temperature": _check_number("temperature"),
    "top_k": _check_number("top_k"),
    "top_p": _check_number("top_p"),
    "min_p": _check_number("min_p"),
    "repetition_penalty": _check_number("repetition_penalty"),
    "seed": _check_number("seed"),
    "stop_strings": stop_strings_problem,
    "context_policy": _check_choice(CONTEXT_POLICIES),
    "enable_thinking": lambda value: (
        None
        if value is None or isinstance(value, bool)
        else f"expected null, true or false, found {value!r}"
    ),
}


def _check_bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"expected true or false, found {value!r}"


def _check_port(value: Any) -> str | None:
    if not _is_int(value) or not 1024 <= value <= 65535:
        return f"expected a port 1024..65535, found {value!r}"
    return None


def endpoint_problem(value: Any) -> str | None:
    """What is wrong with a Hub address (None: empty, meaning huggingface.co, or http(s)://)."""
    if not isinstance(value, str) or (value and not value.startswith(("http://", "https://"))):
        return (
            f"expected empty or an http(s):// address such as 'https://hf-mirror.com', "
            f"found {value!r}"
        )
    return None


def _check_origins(value: Any) -> str | None:
    if not isinstance(value, list) or not all(isinstance(s, str) and s for s in value):
        return f"expected a list of origins such as 'http://localhost:3000', found {value!r}"
    return None


_TOP_LEVEL_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "system_prompt": _check_str,
    "compute_units": _check_choice(COMPUTE_UNITS),
    "model_path": _check_str,
    "hf_token": _check_str,
    "hub_endpoint": endpoint_problem,
    "converter_output_dir": _check_str,
    "server_enabled": _check_bool,
    "server_port": _check_port,
    "server_api_key": _check_str,
    "server_cors_origins": _check_origins,
    "theme": _check_choice(THEMES),
}


def _generation_from_dict(data: Any, source: Path) -> GenerationConfig:
    default = GenerationConfig()
    if not isinstance(data, dict):
        logger.warning(
            "%s: 'generation' should be an object, found %r; using the default generation settings",
            source,
            data,
        )
        return default
    values: dict[str, Any] = {}
    for name, check in _GENERATION_CHECKS.items():
        if name not in data:
            continue
        problem = check(data[name])
        if problem:
            logger.warning("%s: generation.%s: %s; using the default", source, name, problem)
            continue
        value = data[name]
        if name == "stop_strings":
            value = tuple(value)
        elif name in ("temperature", "top_p", "min_p", "repetition_penalty"):
            value = float(value)
        values[name] = value
    return replace(default, **values)


def _presets_from_list(data: Any, source: Path) -> tuple[Preset, ...]:
    """The presets of the file; a bad one is skipped (and logged), the others kept."""
    if not isinstance(data, list):
        logger.warning("%s: presets: expected a list, found %r; no presets", source, data)
        return ()
    presets: list[Preset] = []
    for index, entry in enumerate(data[:MAX_PRESETS]):
        name = entry.get("name") if isinstance(entry, dict) else None
        prompt = entry.get("system_prompt", "") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_PRESET_NAME:
            logger.warning(
                "%s: presets[%d]: expected a name, found %r; skipped", source, index, name
            )
            continue
        if not isinstance(prompt, str) or name in {p.name for p in presets}:
            logger.warning(
                "%s: presets[%d] (%s): a bad or repeated entry; skipped", source, index, name
            )
            continue
        generation = _generation_from_dict(entry.get("generation", {}), source)
        presets.append(Preset(name, prompt, generation))
    return tuple(presets)


def _chat_presets_from_dict(
    data: Any, names: set[str], source: Path
) -> tuple[tuple[str, str], ...]:
    if not isinstance(data, dict):
        logger.warning("%s: chat_presets: expected an object, found %r; none", source, data)
        return ()
    return tuple(
        (chat, name)
        for chat, name in data.items()
        if isinstance(chat, str) and isinstance(name, str) and name in names
    )


def settings_from_dict(data: Any, *, source: Path | None = None) -> AppSettings:
    """Settings from parsed JSON; bad fields fall back to their defaults (each logged)."""
    where = source or settings_path()
    settings = AppSettings()
    if not isinstance(data, dict):
        logger.warning(
            "%s should hold a JSON object, found %s; using the default settings",
            where,
            type(data).__name__,
        )
        return settings
    version = data.get("version", SETTINGS_VERSION)
    if version != SETTINGS_VERSION:
        logger.warning(
            "%s: settings version %r, expected %d; reading what still fits",
            where,
            version,
            SETTINGS_VERSION,
        )
    values: dict[str, Any] = {}
    for name, check in _TOP_LEVEL_CHECKS.items():
        if name not in data:
            continue
        problem = check(data[name])
        if problem:
            logger.warning("%s: %s: %s; using the default", where, name, problem)
            continue
        values[name] = tuple(data[name]) if name == "server_cors_origins" else data[name]
    if "generation" in data:
        values["generation"] = _generation_from_dict(data["generation"], where)
    if "presets" in data:
        values["presets"] = _presets_from_list(data["presets"], where)
    if "chat_presets" in data:
        names = {p.name for p in values.get("presets", ())}
        values["chat_presets"] = _chat_presets_from_dict(data["chat_presets"], names, where)
    known = {f.name for f in fields(AppSettings)} | {"version"}
    unknown = sorted(set(data) - known)
    if unknown:
        logger.info("%s: ignoring unknown settings %s", where, ", ".join(unknown))
    return replace(settings, **values)


# --- Files ---------------------------------------------------------------------------------------


def load_settings() -> AppSettings:
    """The saved settings, or the defaults (never raises for a missing, unreadable or bad file)."""
    path = settings_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return AppSettings()
    except (OSError, UnicodeDecodeError) as error:
        logger.warning("cannot read %s (%s); using the default settings", path, error)
        return AppSettings()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        logger.warning("%s is not valid JSON (%s); using the default settings", path, error)
        return AppSettings()
    except RecursionError:  # the decoder recurses per level: a hostile file goes past the stack
        logger.warning(
            "%s: expected settings a few levels deep, found JSON nested deeper than Python's"
            " recursion limit; using the default settings",
            path,
        )
        return AppSettings()
    return settings_from_dict(data, source=path)


def save_settings(settings: AppSettings) -> None:
    """Write ``settings`` atomically to ``settings_path()`` with mode 0600.

    Raises ``OSError`` (with the path in its message) when the folder cannot be written; the old
    file, if any, is then left as it was.
    """
    path = settings_path()
    text = json.dumps(settings_to_dict(settings), indent=2, ensure_ascii=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(
        prefix=f".{SETTINGS_FILE_NAME}.", suffix=".tmp", dir=path.parent
    )
    try:
        os.fchmod(
            descriptor, paths.PRIVATE_MODE
        )  # mkstemp already creates 0600; said for the reader
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    logger.debug("settings saved to %s", path)
