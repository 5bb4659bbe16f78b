"""Off macOS, coremltools' "Failed to load _MLModelProxy" warnings never reach the terminal or log."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(sys.platform == "darwin", reason="Core ML loads on macOS")


def _stderr_of(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return result.stderr


def test_the_engine_imports_coremltools_without_the_missing_binding_lines() -> None:
    stderr = _stderr_of(
        "import logging\n"
        "from engine.runtime.coremltools_import import import_coremltools\n"
        "import_coremltools()\n"
        "logging.getLogger('coremltools').warning('a real coremltools warning')\n"
    )
    assert "Failed to load" not in stderr
    assert "a real coremltools warning" in stderr  # only those lines are dropped


def test_a_process_with_torch_quiets_them_before_importing_coremltools() -> None:
    """The converter's way (torch is loaded, coremltools is imported directly)."""
    stderr = _stderr_of(
        "import logging, torch\n"
        "logging.basicConfig(level=logging.WARNING)\n"
        "from engine.runtime.coremltools_import import quiet_missing_coreml_bindings\n"
        "quiet_missing_coreml_bindings()\n"
        "import coremltools\n"
    )
    assert "Failed to load" not in stderr
