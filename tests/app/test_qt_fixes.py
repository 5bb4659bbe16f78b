"""The PySide6 emit work-around: after it, emitting never lowers True's reference count."""

from __future__ import annotations

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
