"""Where Core ML can run, asked without importing a backend.

The GUI process decides what to offer (compute units, "preparing this model for your Mac") and
must never import ``engine.runtime`` (its backends load coremltools); the loader asks the same
question before it picks a backend. One answer for both: on macOS 14 the app must not show Core
ML's choices while the engine runs the reference runtime.
"""

from __future__ import annotations

import platform
import sys


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
