"""Work-arounds for bugs in the installed Qt bindings, each detected before it is patched.

PySide6 6.12.0 on Python 3.11: ``SignalInstance.emit`` returns ``True`` without taking a new
reference, so every ``emit()`` made from Python lowers ``True``'s reference count by one. Python
3.12+ makes ``True`` immortal; on 3.11 the process aborts ("Fatal Python error: bool_dealloc") once
the count reaches zero: after a few thousand streamed tokens in this app, or at exit.
``install_signal_emit_fix()`` measures the leak on a throwaway signal and, only when it is there,
wraps ``emit`` to give the reference back. Call it once before any signal is emitted (the app's
entry point, the test fixtures, the scripts); it is idempotent.

The same release also returns ``None`` from every void method (``resize``, ``setHtml``, …) without
a new reference, so ``None``'s count falls by one per call and a long streamed answer would abort
the app. That cannot be patched method by method: ``install_refcount_guard()`` (when the leak is
measured) starts a timer on the GUI thread that tops ``None``, ``True`` and ``False`` back up to
the counts they had at start. Those objects are never freed, so an extra reference costs nothing.
PySide6 6.11.3 has neither bug; pinning below 6.12 (or Python 3.12+, where these objects are
immortal) makes both work-arounds switch themselves off.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal, SignalInstance

logger = logging.getLogger(__name__)

_PROBE_EMITS = 64
_installed = False
GUARD_INTERVAL_MS = 100
_GUARDED: tuple[object, ...] = (None, True, False)


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


def void_calls_leak_none() -> bool:
    """Whether calling a void Qt method drops a reference to ``None`` (measured)."""
    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(_PROBE_EMITS):
        probe.setObjectName("probe")
    leaked = before - sys.getrefcount(None)
    for _ in range(max(0, leaked)):
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(None))
    return leaked >= _PROBE_EMITS // 2


class SingletonRefcountGuard(QObject):
    """Keeps the reference counts of None, True and False at or above their starting values."""

    def __init__(self, parent: QObject | None = None, *, interval_ms: int = GUARD_INTERVAL_MS):
        super().__init__(parent)
        self.floors = [(obj, sys.getrefcount(obj)) for obj in _GUARDED]
        self.restored = 0
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.top_up)
        self._timer.start()

    def top_up(self) -> None:
        for obj, floor in self.floors:
            missing = floor - sys.getrefcount(obj)
            if missing > 0:
                reference = ctypes.py_object(obj)
                for _ in range(missing):
                    ctypes.pythonapi.Py_IncRef(reference)
                self.restored += missing


_guard: SingletonRefcountGuard | None = None


def install_refcount_guard(
    *, interval_ms: int = GUARD_INTERVAL_MS
) -> SingletonRefcountGuard | None:
    """Start the guard when void calls leak (needs a QApplication; call on the GUI thread)."""
    global _guard
    if _guard is not None:
        return _guard
    if not void_calls_leak_none():
        return None
    _guard = SingletonRefcountGuard(interval_ms=interval_ms)
    logger.info("PySide6 void calls leak references to None: refcount guard started")
    return _guard


def install_qt_fixes() -> None:
    """Both work-arounds (after the QApplication exists)."""
    install_signal_emit_fix()
    install_refcount_guard()
