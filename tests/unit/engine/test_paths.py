"""The app's folders: the Mac's own on macOS whatever XDG variables say, XDG elsewhere."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from engine import paths

XDG = ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(paths.HOME_ENV)  # the tests' private home: the platform folders here
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    for name in XDG:  # as a Terminal whose shell profile sets them
        monkeypatch.setenv(name, str(tmp_path / "xdg" / name.lower()))
    return tmp_path / "user"


def test_macos_uses_the_library_folders_even_with_xdg_variables_set(home, monkeypatch):
    """A Finder launch has no XDG variables: a Terminal launch must find the same data."""
    monkeypatch.setattr(sys, "platform", "darwin")
    library = home / "Library"
    assert paths.data_dir() == library / "Application Support" / "coreml-chat"
    assert paths.config_dir() == library / "Application Support" / "coreml-chat"
    assert paths.cache_dir() == library / "Caches" / "coreml-chat"
    assert paths.log_dir() == library / "Logs" / "coreml-chat"
    assert paths.models_dir() == library / "Application Support" / "coreml-chat" / "models"


@pytest.mark.skipif(sys.platform == "darwin", reason="platformdirs picks its backend at import")
def test_linux_follows_xdg(home, tmp_path):
    assert paths.data_dir() == tmp_path / "xdg" / "xdg_data_home" / "coreml-chat"
    assert paths.cache_dir() == tmp_path / "xdg" / "xdg_cache_home" / "coreml-chat"
    assert paths.log_dir() == paths.data_dir() / "logs"


def test_the_override_holds_on_macos_too(private_home, monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert paths.data_dir() == private_home / "data"
    assert paths.cache_dir() == private_home / "cache"
    assert paths.log_dir() == private_home / "data" / "logs"
