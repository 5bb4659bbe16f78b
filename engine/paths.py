"""Where coreml-chat keeps its files: platform folders, all under one override for tests.

``COREML_CHAT_HOME`` (when set) replaces every platform folder with sub-folders of itself, so a test
or a second profile never touches the user's data.

The compiled Core ML cache's naming lives here too (not in the Core ML backend): the app's model
library frees a deleted model's compiled copy, and the GUI process must not import the backend.
"""

from __future__ import annotations

import hashlib
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


def package_key(package: Path) -> str:
    """A key that changes when the package does: its spec bytes, and its files' sizes and dates."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*")):
        if not path.is_file():
            continue
        stat = path.stat()
        relative = path.relative_to(package).as_posix()
        digest.update(f"{relative}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
        if path.name.endswith(".mlmodel") or path.name == "Manifest.json":
            digest.update(path.read_bytes())
    return digest.hexdigest()[:32]


def compiled_cache_dir() -> Path:
    """Where Core ML's compiled ``.mlmodelc`` copies of packages are kept (macOS)."""
    return cache_dir() / "compiled"


def compiled_model_path(package: Path) -> Path:
    """The compiled copy of ``package`` (present once Core ML has loaded it on a Mac)."""
    return compiled_cache_dir() / f"{package.stem}-{package_key(package)}.mlmodelc"
