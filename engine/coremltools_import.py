"""Import coremltools without dragging torch and transformers in.

coremltools imports torch (and transformers) at import time when they are installed, which costs
seconds and breaks the rule that the chat runtime never loads torch. When torch is not loaded yet,
we hide it (and the other frontends) for the duration of the import only: coremltools then records
that those frontends are unavailable, which the engine never needs. A process that already loaded
torch (the converter, the test suite) imports coremltools as usual.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

_HIDDEN = ("torch", "torchvision", "transformers", "tensorflow", "sklearn", "xgboost", "libsvm")


def import_coremltools() -> ModuleType:
    if "coremltools" in sys.modules:
        return sys.modules["coremltools"]
    if "torch" in sys.modules:
        return importlib.import_module("coremltools")
    hidden = [name for name in _HIDDEN if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # makes `import name` raise ImportError
    try:
        return importlib.import_module("coremltools")
    finally:
        for name in hidden:
            if sys.modules.get(name) is None:
                del sys.modules[name]
