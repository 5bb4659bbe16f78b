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
BACKENDS = ("engine.runtime.coreml", "engine.runtime.reference")
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
        ("engine.runtime.coreml", "engine.runtime.reference"),
        ("engine.runtime.reference.runtime", "engine.runtime.coreml"),
    ],
    ids=["coreml", "reference"],
)
def test_a_backend_does_not_import_the_other_or_a_layer_above(backend: str, other: str) -> None:
    """A backend sits on ``engine.package``: importing it loads its parent package (the loader,
    whose module level imports only ``engine.package``), never the other backend, and nothing that
    generates text (``engine.generation``, ``engine.text``, the worker)."""
    loaded = _loaded_after_importing([backend])
    above = ("engine.generation", "engine.text", "engine.server", "engine.worker")
    assert _within(loaded, (other, *above)) == []
    assert _within(loaded, QT + HEAVY) == []


def test_only_the_loader_imports_a_backend() -> None:
    """Sessions, the worker, the CLIs, the app and the converter go through ``engine.runtime``."""
    offenders = []
    for package in ("engine", "app", "converter"):
        for path in (REPO / package).rglob("*.py"):
            module = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(
                ".__init__"
            )
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
        or m
        in (
            "engine.worker",
            "engine.runtime.coreml",
            "engine.generation.session",
            "engine.generation.generate",
        )
        or m.startswith("engine.runtime.reference")
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


def _import_graph() -> dict[str, set[str]]:
    """Each module of app/, engine/ and converter/ mapped to the project modules it imports,
    anywhere in the file: module level, inside functions, and under ``TYPE_CHECKING``."""
    modules = {m for package in ("app", "engine", "converter") for m in _modules_of(package)}
    graph: dict[str, set[str]] = {}
    for module in modules:
        path = REPO / (module.replace(".", "/") + ".py")
        if not path.exists():
            path = REPO / module.replace(".", "/") / "__init__.py"
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names if alias.name in modules)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module in modules:  # ``from pkg import sub`` runs pkg/__init__ too
                    edges.add(node.module)
                edges.update(
                    f"{node.module}.{alias.name}"
                    for alias in node.names
                    if f"{node.module}.{alias.name}" in modules
                )
        graph[module] = edges - {module}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_anywhere() -> None:
    """No two modules import each other, directly or through others, even inside a function or
    under ``TYPE_CHECKING``: a shared type moves down a layer, or a function is passed in."""
    assert _cycles(_import_graph()) == []
