"""The macOS .app for other people: what can be checked without a Mac. The spec is run with
PyInstaller's build steps recorded instead of run (PyInstaller cannot build a .app on Linux, and
its collection helpers import every package: both are named stand-ins below); the entitlements and
the Makefile's notarisation target are checked as they are."""

from __future__ import annotations

import ast
import os
import plistlib
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SIGNING_ENV = (
    "COREML_CHAT_CODESIGN_IDENTITY",
    "COREML_CHAT_ENTITLEMENTS",
    "COREML_CHAT_NOTARY_PROFILE",
)


def _run_spec(monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, Any]]:
    """Execute build_app.spec as PyInstaller would on a Mac; returns each build step's keywords."""
    import PyInstaller.utils.hooks as hooks

    for helper in ("collect_data_files", "collect_submodules", "copy_metadata"):
        monkeypatch.setattr(hooks, helper, lambda *args, **kwargs: [])  # stand-in: no imports
    monkeypatch.setattr(sys, "platform", "darwin")
    steps: dict[str, dict[str, Any]] = {}

    def step(name: str):
        def record(*args: Any, **kwargs: Any) -> Any:
            steps[name] = kwargs
            return type(name, (), {"binaries": [], "datas": [], "pure": [], "scripts": []})()

        return record

    namespace = {"SPECPATH": str(ROOT), "__file__": str(ROOT / "build_app.spec")}
    namespace.update({name: step(name) for name in ("Analysis", "PYZ", "EXE", "COLLECT", "BUNDLE")})
    code = compile((ROOT / "build_app.spec").read_text(), "build_app.spec", "exec")
    exec(code, namespace)  # our own spec file, as PyInstaller runs it
    return steps


def test_unsigned_builds_are_ad_hoc_and_the_info_plist_disables_app_nap(monkeypatch):
    for name in SIGNING_ENV:
        monkeypatch.delenv(name, raising=False)
    steps = _run_spec(monkeypatch)
    assert steps["EXE"]["codesign_identity"] is None  # PyInstaller signs ad hoc
    assert steps["EXE"]["entitlements_file"] is None
    info = steps["BUNDLE"]["info_plist"]
    assert info["LSAppNapIsDisabled"] is True
    assert info["LSMinimumSystemVersion"] == "15.0"
    plistlib.dumps(info)  # valid as a property list


def test_an_identity_signs_with_the_hardened_runtimes_entitlements(monkeypatch, tmp_path):
    monkeypatch.setenv("COREML_CHAT_CODESIGN_IDENTITY", "Developer ID Application: A (TEAM123456)")
    monkeypatch.delenv("COREML_CHAT_ENTITLEMENTS", raising=False)
    steps = _run_spec(monkeypatch)
    assert steps["EXE"]["codesign_identity"] == "Developer ID Application: A (TEAM123456)"
    assert steps["EXE"]["entitlements_file"] == str(ROOT / "packaging" / "entitlements.plist")
    other = tmp_path / "more.plist"
    monkeypatch.setenv("COREML_CHAT_ENTITLEMENTS", str(other))
    assert _run_spec(monkeypatch)["EXE"]["entitlements_file"] == str(other)


def test_the_entitlements_are_a_valid_plist_with_only_what_python_needs():
    entitlements = plistlib.loads((ROOT / "packaging" / "entitlements.plist").read_bytes())
    assert entitlements == {"com.apple.security.cs.allow-unsigned-executable-memory": True}


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_notarize_without_credentials_says_so_and_succeeds(monkeypatch):
    env = {k: v for k, v in os.environ.items() if k not in SIGNING_ENV}
    result = subprocess.run(
        ["make", "--no-print-directory", "notarize"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "notarize: skipped: set COREML_CHAT_CODESIGN_IDENTITY" in result.stdout
    assert "COREML_CHAT_NOTARY_PROFILE" in result.stdout


def test_the_frozen_entry_calls_freeze_support_before_the_app():
    """multiprocessing's children re-run the frozen executable: freeze_support must take them
    before app.main reads the arguments."""
    tree = ast.parse((ROOT / "packaging" / "entry.py").read_text())
    (main_block,) = [node for node in tree.body if isinstance(node, ast.If)]
    calls = [
        ast.unparse(node.func)
        for statement in main_block.body
        for node in ast.walk(statement)
        if isinstance(node, ast.Call)
    ]
    assert calls.index("multiprocessing.freeze_support") < calls.index("main")
