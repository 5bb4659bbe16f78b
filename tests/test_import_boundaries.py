"""The dependency rules of DESIGN.md, checked in fresh interpreters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FORBIDDEN_IN_ENGINE = ("torch", "transformers", "PySide6", "qasync")


def _modules_of(package: str) -> list[str]:
    root = REPO / package
    return sorted(
        ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for p in root.rglob("*.py")
    )


def _loaded_after_import(module: str) -> set[str]:
    code = (
        "import sys, importlib\n"
        f"importlib.import_module({module!r})\n"
        "print('\\n'.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False
    )
    assert result.returncode == 0, f"importing {module} failed:\n{result.stderr}"
    return set(result.stdout.split())


@pytest.mark.parametrize("module", _modules_of("engine"))
def test_engine_imports_no_qt_torch_or_transformers(module: str) -> None:
    loaded = _loaded_after_import(module)
    assert not loaded & set(FORBIDDEN_IN_ENGINE), (
        f"{module} pulls in {loaded & set(FORBIDDEN_IN_ENGINE)}"
    )


def test_app_starts_without_torch() -> None:
    app_modules = [m for m in _modules_of("app") if not m.endswith("__main__")]
    code = (
        "import sys, importlib\n"
        f"for m in {app_modules!r}: importlib.import_module(m)\n"
        "print('\\n'.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False
    )
    assert result.returncode == 0, result.stderr
    loaded = set(result.stdout.split())
    assert "torch" not in loaded and "transformers" not in loaded


def test_the_gui_process_never_loads_model_code() -> None:
    """The model runs only in the engine process: no app module pulls in a runtime, the worker or
    coremltools (``engine.runtime`` itself is still imported for its types and error class)."""
    app_modules = [m for m in _modules_of("app") if not m.endswith("__main__")]
    code = (
        "import sys, importlib\n"
        f"for m in {app_modules!r}: importlib.import_module(m)\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False
    )
    assert result.returncode == 0, result.stderr
    loaded = set(result.stdout.split())
    model_code = {
        m
        for m in loaded
        if m.split(".")[0] == "coremltools"
        or m in ("engine.worker", "engine.coreml_runtime", "engine.session", "engine.generate")
        or m.startswith("engine.reference")
    }
    assert model_code == set()


def test_converter_never_imports_qt() -> None:
    offenders = [
        str(p.relative_to(REPO))
        for p in (REPO / "converter").rglob("*.py")
        if any(
            line.lstrip().startswith(
                ("import PySide6", "from PySide6", "import qasync", "from qasync")
            )
            for line in p.read_text().splitlines()
        )
    ]
    assert offenders == []
