"""Help → Run Diagnostics: `coreml-chat --doctor` in the background, its summary in a window.

The doctor is a process of its own (it starts one probe process per measurement), so the window
stays responsive and no model runs in the GUI's process; the app quitting ends it. The summary is
the text to paste into a bug report; the JSON report lies beside it.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.shell.background import BackgroundCall

logger = logging.getLogger(__name__)


def doctor_command(report: Path) -> list[str]:
    """This interpreter (or the frozen app's executable) with ``--doctor``."""
    prefix = [sys.executable] if getattr(sys, "frozen", False) else [sys.executable, "-m", "app"]
    return [*prefix, "--doctor", "--json", str(report)]


class DoctorRunner(QObject):
    """Runs the doctor once at a time; ``finished(summary text)`` or ``failed(message)``."""

    started = Signal()
    finished = Signal(str)
    failed = Signal(str)

    def __init__(self, report: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.report = report
        self._process: subprocess.Popen[str] | None = None
        self._call = BackgroundCall(self._run, name="doctor", parent=self)
        self._call.succeeded.connect(lambda summary: self.finished.emit(str(summary)))
        self._call.failed.connect(lambda error: self.failed.emit(str(error)))
        app = QGuiApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.stop)

    def is_running(self) -> bool:
        return self._call.is_running()

    def start(self) -> bool:
        """Start the doctor; False when it is already running."""
        if self._call.is_running():
            return False
        self._call.start()
        self.started.emit()
        return True

    def stop(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()

    def _run(self) -> str:
        self.report.parent.mkdir(parents=True, exist_ok=True)
        command = doctor_command(self.report)
        logger.info("running the doctor: %s", " ".join(command))
        with subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        ) as self._process:
            _, stderr = self._process.communicate()
        summary = self.report.with_suffix(".txt")
        if not summary.is_file():
            tail = "\n".join(stderr.strip().splitlines()[-5:]) or "no output"
            raise RuntimeError(
                f"the doctor wrote no report (exit code {self._process.returncode}): {tail}"
            )
        return summary.read_text(encoding="utf-8")


class DoctorDialog(QDialog):
    """The summary, selectable, with a Copy button and where the JSON report is."""

    def __init__(self, summary: str, report: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Diagnostics")
        self.resize(760, 520)
        self.text = QPlainTextEdit(summary)
        self.text.setReadOnly(True)
        layout = QVBoxLayout(self)
        where = QLabel(f"The full report: {report}")
        where.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(where)
        layout.addWidget(self.text)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        copy = QPushButton("Copy Summary")
        copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(summary))
        buttons.addButton(copy, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
