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


def _run_spec(
    monkeypatch: pytest.MonkeyPatch, *, platform: str = "darwin", stand_in_helpers: bool = True
) -> dict[str, dict[str, Any]]:
    """Execute build_app.spec as PyInstaller would (on a Mac by default); returns each build
    step's keywords. ``stand_in_helpers=False`` runs PyInstaller's real data and metadata helpers
    (they read the installed packages' files, and import nothing)."""
    import PyInstaller.utils.hooks as hooks

    helpers = ["collect_submodules"]
    if stand_in_helpers:
        helpers += ["collect_data_files", "copy_metadata"]
    for helper in helpers:
        monkeypatch.setattr(hooks, helper, lambda *args, **kwargs: [])  # stand-in: no imports
    monkeypatch.setattr(sys, "platform", platform)
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


def test_the_spec_collects_the_data_files_and_metadata_of_every_bundled_dependency(monkeypatch):
    """transformers 5 imports `kernels`, which reads kernels/_internals/python_depends.json at
    import: the frozen converter refused every GGUF while the spec named its packages by hand. The
    spec now asks PyInstaller for the data of every distribution the project's requirements reach."""
    pytest.importorskip("kernels")
    steps = _run_spec(monkeypatch, platform=sys.platform, stand_in_helpers=False)
    datas = steps["Analysis"]["datas"]
    destinations = {Path(destination) / Path(source).name for source, destination in datas}
    assert Path("kernels/_internals/python_depends.json") in destinations, (
        "expected kernels' dependency table among the bundled data files"
    )
    metadata = {
        Path(destination).name for _, destination in datas if destination.endswith(".dist-info")
    }
    for distribution in ("transformers", "tokenizers", "torch", "coremltools", "kernels", "gguf"):
        assert any(name.lower().startswith(f"{distribution}-") for name in metadata), (
            f"expected {distribution}'s metadata among {sorted(metadata)}"
        )
    shared_libraries = [s for s, _ in datas if ".so" in Path(s).suffixes or s.endswith(".dylib")]
    assert shared_libraries == [], "native libraries are binaries, not data"


@pytest.mark.parametrize("folder", ["Downloads", "Desktop", "Documents"])
def test_the_info_plist_says_why_the_app_reads_the_users_folders(monkeypatch, folder):
    """macOS asks the person before the engine or converter process first reads a model in
    ~/Downloads, ~/Desktop or ~/Documents; these sentences are the reason that prompt gives."""
    info = _run_spec(monkeypatch)["BUNDLE"]["info_plist"]
    key = f"NS{folder}FolderUsageDescription"
    assert key in info, f"expected {key} in the Info.plist, found keys {sorted(info)}"
    sentence = info[key]
    assert isinstance(sentence, str) and sentence.startswith("coreml-chat "), sentence
    assert sentence.endswith(".") and folder in sentence, sentence
    plistlib.loads(plistlib.dumps(info))
