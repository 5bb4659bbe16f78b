"""Where Core ML runs (macOS 15+), one answer for the engine's loader and the GUI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.package import coreml_support

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("system", "release", "expected"),
    [("darwin", "15.0", True), ("darwin", "26.1", True), ("darwin", "14.6.1", False),
     ("darwin", "", False), ("linux", "", False)],
)  # fmt: skip
def test_core_ml_runs_stateful_models_on_macos_15_and_newer(
    monkeypatch, system, release, expected
) -> None:
    monkeypatch.setattr(coreml_support.sys, "platform", system)
    monkeypatch.setattr(coreml_support.platform, "mac_ver", lambda: (release, ("", "", ""), ""))
    assert coreml_support.coreml_available() is expected


def test_the_app_offers_core_ml_choices_only_where_the_engine_runs_core_ml() -> None:
    """On macOS 14 the engine falls back to the reference runtime: the Model tab must not offer
    compute units there (it once asked ``sys.platform == "darwin"``). A fresh interpreter, made
    to look like macOS 14 and 15, imports the app's model library and the engine's loader."""
    code = (
        "import json, platform, sys\n"
        "sys.platform = 'darwin'\n"
        "platform.mac_ver = lambda: (sys.argv[1], ('', '', ''), '')\n"
        "from app.models import model_library\n"
        "import engine.runtime\n"
        "print(json.dumps([model_library.CORE_ML_PLATFORM, engine.runtime.coreml_available(),"
        " 'engine.runtime' in sys.modules]))\n"
    )
    found = {}
    for release in ("14.6", "15.1"):
        result = subprocess.run(
            [sys.executable, "-c", code, release], capture_output=True, text=True, cwd=REPO
        )
        assert result.returncode == 0, result.stderr
        found[release] = json.loads(result.stdout.strip().splitlines()[-1])[:2]
    assert found == {"14.6": [False, False], "15.1": [True, True]}
