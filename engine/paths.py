"""Where coreml-chat keeps its files: platform folders, all under one override for tests.

``COREML_CHAT_HOME`` (when set) replaces every platform folder with sub-folders of itself, so a test
or a second profile never touches the user's data.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "coreml-chat"
HOME_ENV = "COREML_CHAT_HOME"


def _base(kind: str) -> Path:
    override = os.environ.get(HOME_ENV)
    if override:
        return Path(override) / kind
    if kind == "data":
        return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    if kind == "cache":
        return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def data_dir() -> Path:
    """Conversations and settings."""
    return _base("data")


def config_dir() -> Path:
    return _base("config")


def cache_dir() -> Path:
    """Compiled models, fetched tokenizer files, the demo model's download."""
    return _base("cache")


def models_dir() -> Path:
    """Model folders the app converted or downloaded."""
    return data_dir() / "models"
