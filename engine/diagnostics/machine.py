"""This machine, as a bug report needs it: the system, the chip, the memory, the Python and package
versions, whether coremltools' native library is there and Core ML can run, the compiled cache.

Read without importing coremltools (its native library is looked for as a file beside the
package) or any backend, so it answers in well under a second on any machine.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from engine import paths
from engine.package.coreml_support import coreml_available, macos_version, physical_memory_bytes

PACKAGES = (
    "coreml-chat", "coremltools", "numpy", "tokenizers", "protobuf", "PySide6-Essentials",
    "qasync", "torch", "transformers", "gguf", "llguidance", "huggingface_hub",
)  # fmt: skip


def package_versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def coremltools_native_library() -> str | None:
    """The path of coremltools' ``libcoremlpython`` (its Core ML binding), or None: without it
    coremltools cannot run a model even on a Mac (a wheel for another platform or Python)."""
    spec = importlib.util.find_spec("coremltools")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        for library in sorted(Path(folder).glob("libcoremlpython*")):
            return str(library)
    return None


def chip() -> str:
    """The CPU's name ("Apple M2 Pro" on a Mac)."""
    if sys.platform == "darwin":
        return _sysctl("machdep.cpu.brand_string") or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _sysctl(name: str) -> str | None:
    try:
        result = subprocess.run(
            ["/usr/sbin/sysctl", "-n", name], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def compiled_cache() -> dict[str, Any]:
    """Where Core ML's compiled copies are kept, how many, and their size."""
    folder = paths.compiled_cache_dir()
    copies = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    return {
        "path": str(folder),
        "copies": [p.name for p in copies],
        "bytes": sum(folder_bytes(p) for p in copies),
    }


def describe_machine() -> dict[str, Any]:
    """The report's ``environment`` object (README: "Running on a Mac for the first time")."""
    version = macos_version()
    return {
        "system": platform.system(),
        "release": platform.release(),
        "macos_version": ".".join(map(str, version)) if version else None,
        "machine": platform.machine(),
        "chip": chip(),
        "memory_bytes": physical_memory_bytes(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "frozen": bool(getattr(sys, "frozen", False)),
        "packages": package_versions(),
        "coremltools_native_library": coremltools_native_library(),
        "coreml_available": coreml_available(),
        "compiled_cache": compiled_cache(),
    }
