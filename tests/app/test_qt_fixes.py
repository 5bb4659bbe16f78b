"""The PySide6 emit work-around: after it, emitting never lowers True's reference count."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_many_emits_leave_true_alone_and_the_process_exits_cleanly() -> None:
    # A fresh interpreter: True starts with few references, so an unpatched leak aborts it.
    code = (
        "import sys\n"
        "from app.qt_fixes import install_signal_emit_fix\n"
        "install_signal_emit_fix()\n"
        "from PySide6.QtCore import QObject, Signal\n"
        "class Source(QObject):\n"
        "    changed = Signal(object)\n"
        "source = Source()\n"
        "received = []\n"
        "source.changed.connect(received.append)\n"
        "before = sys.getrefcount(True)\n"
        "for number in range(5000):\n"
        "    source.changed.emit(number)\n"
        "print(sys.getrefcount(True) - before, len(received))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["0", "5000"]


def test_the_refcount_guard_survives_many_void_calls() -> None:
    # 200,000 void calls would drop None's count far below zero in a fresh interpreter.
    code = (
        "import sys, time\n"
        "from PySide6.QtCore import QObject\n"
        "from PySide6.QtWidgets import QApplication\n"
        "from app.qt_fixes import install_refcount_guard, void_calls_leak_none\n"
        "app = QApplication([])\n"
        "leaks = void_calls_leak_none()\n"
        "guard = install_refcount_guard(interval_ms=5)\n"
        "target = QObject()\n"
        "floor = sys.getrefcount(None)\n"
        "for _ in range(100):\n"
        "    for _ in range(2000):\n"
        "        target.setObjectName('x')\n"
        "    time.sleep(0.01)\n"
        "    app.processEvents()\n"
        "guard and guard.top_up()\n"
        "print(leaks, guard is not None, sys.getrefcount(None) >= floor)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    leaks, guarded, kept = result.stdout.split()
    assert guarded == leaks  # the guard runs exactly when the bindings leak
    assert kept == "True"
