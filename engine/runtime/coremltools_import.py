"""Import coremltools without dragging torch and transformers in.

coremltools imports torch (and transformers) at import time when they are installed, which costs
seconds and breaks the rule that the chat runtime never loads torch. When torch is not loaded yet,
we hide it (and the other frontends) for the duration of the import only: coremltools then records
that those frontends are unavailable, which the engine never needs. A process that already loaded
torch (the converter, the test suite) imports coremltools as usual.

Off macOS, importing coremltools logs "Failed to load _MLModelProxy: No module named
'coremltools.libcoremlpython'" (and the same for each other Core ML binding) as warnings: expected
where there is no Core ML framework, and only noise on the user's terminal and in the log (before
logging is configured Python prints them anyway). ``quiet_missing_coreml_bindings`` drops exactly
those records, off macOS only; every other coremltools message still gets through.
"""

from __future__ import annotations

import importlib
import logging
import re
import sys
from types import ModuleType

_HIDDEN = ("torch", "torchvision", "transformers", "tensorflow", "sklearn", "xgboost", "libsvm")
MISSING_BINDING = re.compile(r"^Failed to load _ML\w*Proxy\b")


class MissingCoreMLBindingFilter(logging.Filter):
    """Drops coremltools' "Failed to load _ML…Proxy" warnings (the Core ML framework is absent)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not MISSING_BINDING.match(record.getMessage())


def quiet_missing_coreml_bindings() -> None:
    """Off macOS, keep coremltools' missing-binding warnings out of the terminal and the log."""
    if sys.platform == "darwin":  # there a binding that fails to load is worth reading
        return
    coremltools_logger = logging.getLogger("coremltools")
    if not any(isinstance(f, MissingCoreMLBindingFilter) for f in coremltools_logger.filters):
        coremltools_logger.addFilter(MissingCoreMLBindingFilter())


def import_coremltools() -> ModuleType:
    quiet_missing_coreml_bindings()
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
