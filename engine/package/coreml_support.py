"""Where Core ML can run, asked without importing a backend.

The GUI process decides what to offer (compute units, "preparing this model for your Mac") and
must never import ``engine.runtime`` (its backends load coremltools); the loader asks the same
question before it picks a backend. One answer for both: on macOS 14 the app must not show Core
ML's choices while the engine runs the reference runtime.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

from engine.package.model import ModelLoadError, find_package
from engine.paths import compiled_model_path

# Names the named Core ML stand-in (engine/runtime/coreml_standin.py) for the engine and the
# doctor's probes: tests and benchmarks only. Here so the app reads the name without the backend.
STANDIN_ENV = "COREML_CHAT_COREML_STANDIN"


def macos_version() -> tuple[int, ...] | None:
    """The running macOS version, (15, 1) for example; None off macOS or when it is unreadable."""
    if sys.platform != "darwin":
        return None
    release = platform.mac_ver()[0]
    try:
        return tuple(int(part) for part in release.split("."))
    except ValueError:
        return None


def coreml_available() -> bool:
    """True where Core ML itself can run stateful models: macOS 15 or newer."""
    version = macos_version()
    return version is not None and version[0] >= 15


# Bits per weight in a package, by its quantization metadata (engine.package.metadata.QUANTIZATION):
# 4-bit blocks of 32 carry a float16 scale (and an offset or a 4-bit zero point): about 4.5 bits;
# an exact GGUF import is most often a 4-bit one (Q4_0, Q4_1, Q4_K). Unknown: 4.5 too (the most
# common chat package, and the one whose expansion surprises).
_BITS_PER_WEIGHT = (("int4", 4.5), ("gguf", 4.5), ("int8", 8.25), ("fp16", 16.0), ("none", 16.0))
# The share of memory the weights may take: macOS, the app, the kv-cache and Core ML's own buffers
# need the rest (a 16 GB Mac leaves a process about 11 GB before it swaps hard).
MEMORY_FOR_WEIGHTS = 0.7


def float16_weight_bytes(package_bytes: int, quantization: str) -> int:
    """About how much memory the package's weights take expanded to float16, as Core ML's CPU path
    (and the reference runtime) holds them: a 3.8 GB int4 7B package needs ~14 GB."""
    label = quantization.lower()
    bits = next((b for prefix, b in _BITS_PER_WEIGHT if label.startswith(prefix)), 4.5)
    return int(package_bytes * 16 / bits)


def cpu_only_memory_warning(
    package_bytes: int, quantization: str, physical_bytes: int | None
) -> str | None:
    """A sentence for the "CPU only" choice when the weights, expanded to float16 on the CPU, would
    not fit in this machine's memory (beside the system and the app); None when they fit."""
    if not physical_bytes:
        return None
    needed = float16_weight_bytes(package_bytes, quantization)
    if needed <= physical_bytes * MEMORY_FOR_WEIGHTS:
        return None
    return (
        f"CPU only expands this model's weights to float16: about {needed / 1e9:.1f} GB, more than "
        f"this Mac's {physical_bytes / 1e9:.0f} GB of memory can hold beside the system. Expect "
        "heavy swapping or a failed load: choose CPU and GPU."
    )


def physical_memory_bytes() -> int | None:
    """This machine's memory in bytes (None when the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


FIRST_COMPILE_TEXT = (
    "Preparing this model for your Mac, first time only (a 7B model can take several minutes)"
)


def needs_first_compile(path: Path) -> bool:
    """Whether loading ``path`` (a model folder or package) will compile it for Core ML first: Core
    ML runs here and the compiled cache holds no copy of it. Reads folder names only, so the GUI
    can ask before the engine loads (a 7B's compile looks like a hang otherwise)."""
    if not coreml_available():
        return False
    try:
        package = find_package(Path(path))
    except ModelLoadError:
        return False
    return not compiled_model_path(package).is_dir()


def loading_text(name: str, *, first_compile: bool, elapsed_seconds: float) -> str:
    """What the window says while ``name`` loads; the elapsed time once it takes a while."""
    text = f"{FIRST_COMPILE_TEXT}: {name}" if first_compile else f"Loading {name}…"
    if elapsed_seconds >= 2:
        minutes, seconds = divmod(int(elapsed_seconds), 60)
        text += f" ({minutes}:{seconds:02d})" if minutes else f" ({seconds} s)"
    return text
