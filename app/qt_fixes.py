"""Work-arounds for bugs in the installed Qt bindings, each detected before it is patched.

PySide6 6.12.0 on Python 3.11: ``SignalInstance.emit`` returns ``True`` without taking a new
reference, so every ``emit()`` made from Python lowers ``True``'s reference count by one. Python
3.12+ makes ``True`` immortal; on 3.11 the process aborts ("Fatal Python error: bool_dealloc") once
the count reaches zero: after a few thousand streamed tokens in this app, or at exit.
``install_signal_emit_fix()`` measures the leak on a throwaway signal and, only when it is there,
wraps ``emit`` to give the reference back. Call it once before any signal is emitted (the app's
entry point, the test fixtures, the scripts); it is idempotent.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from typing import Any

from PySide6.QtCore import QObject, Signal, SignalInstance

logger = logging.getLogger(__name__)

_PROBE_EMITS = 64
_installed = False


class _Probe(QObject):
    fired = Signal()


def emit_leaks_true() -> bool:
    """Whether ``Signal.emit`` drops a reference to ``True`` on every call (measured)."""
    probe = _Probe()
    before = sys.getrefcount(True)
    for _ in range(_PROBE_EMITS):
        probe.fired.emit()
    after = sys.getrefcount(True)
    leaked = before - after
    if leaked > 0:  # give back what the probe itself took
        for _ in range(leaked):
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(True))
    return leaked >= _PROBE_EMITS // 2


def install_signal_emit_fix() -> bool:
    """Patch ``SignalInstance.emit`` when it leaks; returns whether the patch is active."""
    global _installed
    if _installed:
        return True
    if not emit_leaks_true():
        return False
    original = SignalInstance.emit
    incref = ctypes.pythonapi.Py_IncRef
    true_object = ctypes.py_object(True)

    def emit(self: SignalInstance, *args: Any) -> Any:
        result = original(self, *args)
        if result is True:
            incref(true_object)
        return result

    SignalInstance.emit = emit  # type: ignore[method-assign]
    _installed = True
    logger.info("PySide6 Signal.emit leaks a reference to True: patched (see app/qt_fixes.py)")
    return True
