"""The dependency rules of DESIGN.md, checked in fresh interpreters: one per package.

Each check imports a whole package (or a backend, or the converter's light contract) in a new
interpreter and looks at what ``sys.modules`` holds afterwards, so an import that pulls in torch or
the other backend three modules down is caught, not only the ones written in the file itself.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
QT = ("PySide6", "shiboken6", "qasync")
HEAVY = ("torch", "transformers")
BACKENDS = ("engine.coreml_runtime", "engine.reference")
LOADER = "engine.runtime"


def _modules_of(package: str) -> list[str]:
    root = REPO / package
    return sorted(
        ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for p in root.rglob("*.py")
        if p.name != "__main__.py"
    )


def _loaded_after_importing(modules: list[str]) -> set[str]:
    """Every module (full dotted names) loaded once ``modules`` are imported in a new interpreter."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False
    )
    assert result.returncode == 0, f"importing {modules} failed:\n{result.stderr}"
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def _within(loaded: set[str], packages: tuple[str, ...]) -> list[str]:
    """The loaded modules that are ``packages`` or lie inside them."""
    return sorted(
        name for name in loaded if any(name == p or name.startswith(p + ".") for p in packages)
    )


def _top_level_imports(path: Path) -> set[str]:
    """The modules ``path`` imports at module level (not inside functions)."""
    imported: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module)
    return imported


def _all_imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at module level or inside a function."""
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module)
    return imported


def test_engine_imports_no_qt_torch_or_transformers() -> None:
    loaded = _loaded_after_importing(_modules_of("engine"))
    assert _within(loaded, QT + HEAVY) == []


@pytest.mark.parametrize(
    ("backend", "other"),
    [
        ("engine.coreml_runtime", "engine.reference"),
        ("engine.reference.runtime", "engine.coreml_runtime"),
    ],
    ids=["coreml", "reference"],
)
def test_a_backend_does_not_import_the_other_or_the_loader(backend: str, other: str) -> None:
    loaded = _loaded_after_importing([backend])
    assert _within(loaded, (other, LOADER)) == []
    assert _within(loaded, QT + HEAVY) == []


def test_only_the_loader_imports_a_backend() -> None:
    """Sessions, the worker, the CLIs, the app and the converter go through ``engine.runtime``."""
    offenders = []
    for package in ("engine", "app", "converter"):
        for path in (REPO / package).rglob("*.py"):
            module = ".".join(path.relative_to(REPO).with_suffix("").parts)
            if module == LOADER or _within({module}, BACKENDS):
                continue
            if _within(_all_imports(path), BACKENDS):
                offenders.append(module)
    assert offenders == []


def test_app_imports_no_torch_coremltools_loader_or_backend() -> None:
    """The GUI process never loads or runs a model (DESIGN.md: Processes)."""
    loaded = _loaded_after_importing(_modules_of("app"))
    forbidden = (*HEAVY, "coremltools", LOADER, *BACKENDS)
    assert _within(loaded, forbidden) == []


def test_the_converter_contract_the_app_imports_is_light() -> None:
    """What ``app/`` imports from ``converter/`` at module level loads no torch, coremltools or Qt."""
    contract = sorted(
        {
            name
            for path in (REPO / "app").rglob("*.py")
            for name in _top_level_imports(path)
            if name == "converter" or name.startswith("converter.")
        }
    )
    assert contract, "app/ imports nothing from converter/: this check checks nothing"
    loaded = _loaded_after_importing(contract)
    assert _within(loaded, (*QT, *HEAVY, "coremltools")) == []


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
        if _within(_all_imports(p), QT)
    ]
    assert offenders == []


# The converter's torch-free contract: what the app imports from converter/.
CONVERTER_CONTRACT = (
    "converter.options",
    "converter.naming",
    "converter.progress",
    "converter.errors",
    "converter.output_folder",
)


def test_converter_contract_imports_no_torch() -> None:
    loaded = _loaded_after_importing(list(CONVERTER_CONTRACT))
    assert _within(loaded, (*QT, *HEAVY, "coremltools", "numpy")) == []


def test_app_imports_only_the_contract_from_the_converter() -> None:
    allowed = {*CONVERTER_CONTRACT, "converter.demo_model", "converter.cli"}
    offenders = []
    for path in (REPO / "app").rglob("*.py"):
        for line in path.read_text().splitlines():
            words = line.split()
            if words[:1] in (["from"], ["import"]) and len(words) > 1:
                module = words[1]
                if module.startswith("converter.") and module not in allowed:
                    offenders.append(f"{path.relative_to(REPO)}: {line.strip()}")
    assert offenders == []
