"""Where coreml-chat keeps its files: platform folders, all under one override for tests.

``COREML_CHAT_HOME`` (when set) replaces every platform folder with sub-folders of itself, so a test
or a second profile never touches the user's data.

The compiled Core ML cache's naming lives here too (not in the Core ML backend): the app's model
library frees a deleted model's compiled copy, and the GUI process must not import the backend.
On macOS the folders are the Mac's own, computed here under ``~/Library``: platformdirs 4.6+
honours ``XDG_*`` variables on macOS too, so an app started from a Terminal that sets them and the
same app started from the Finder (which never does) would use different folders, and the
conversations of one would be missing in the other. Elsewhere platformdirs decides (XDG).
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import platformdirs

APP_NAME = "coreml-chat"
HOME_ENV = "COREML_CHAT_HOME"

# The Mac's folders, relative to the home folder (Apple's File System Programming Guide).
_MACOS = {
    "data": "Library/Application Support",
    "config": "Library/Application Support",
    "cache": "Library/Caches",
    "logs": "Library/Logs",
}


def _base(kind: str) -> Path:
    override = os.environ.get(HOME_ENV)
    if override:
        return Path(override) / kind
    if sys.platform == "darwin":
        return Path.home() / _MACOS[kind] / APP_NAME
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


def log_dir() -> Path:
    """The app's log files: ``~/Library/Logs/coreml-chat`` on macOS (where Console.app looks),
    ``logs`` in the data folder elsewhere and under ``COREML_CHAT_HOME``."""
    if sys.platform == "darwin" and not os.environ.get(HOME_ENV):
        return _base("logs")
    return data_dir() / "logs"


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


def compiled_copy_prefix(package: Path) -> str:
    """The start of every compiled copy's name for ``package``: its name and where it lives (two
    folders may both hold a ``Mistral7B.mlpackage``; neither may remove the other's copy)."""
    where = hashlib.sha256(str(package.resolve()).encode()).hexdigest()[:8]
    return f"{package.stem}-{where}-"


def compiled_model_path(package: Path) -> Path:
    """The compiled copy of ``package`` (present once Core ML has loaded it on a Mac)."""
    return compiled_cache_dir() / f"{compiled_copy_prefix(package)}{package_key(package)}.mlmodelc"


PRIVATE_MODE = 0o600  # conversations and logs: the user's alone


def make_private_file(path: Path) -> Path:
    """Create ``path`` (if it is not there) readable and writable by the user alone, and make an
    existing one so: created first, then opened by SQLite or a log handler, it never exists for a
    moment with the umask's wider mode."""
    descriptor = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, PRIVATE_MODE)
    try:
        os.fchmod(descriptor, PRIVATE_MODE)
    finally:
        os.close(descriptor)
    return path
