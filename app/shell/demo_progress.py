"""The welcome page's progress for "Try the demo model": what runs, a bar, and Cancel.

Layout only: ``DemoConversion`` (app/conversion/demo_conversion.py) does the work and the window
passes its progress here.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from app.conversion.demo_conversion import DemoProgress

logger = logging.getLogger(__name__)


class DemoProgressPanel(QWidget):
    """Hidden until the demo set-up starts; hidden again when it ends."""

    cancelRequested = Signal()

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.setObjectName("demoProgress")
        self.label = QLabel(objectName="welcomeStatus", alignment=Qt.AlignmentFlag.AlignCenter)
        self.label.setTextFormat(Qt.TextFormat.PlainText)  # converter messages quote file names
        self.label.setWordWrap(True)
        self.bar = QProgressBar(objectName="demoProgressBar")
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(False)
        self.bar.setAccessibleName("Demo model set-up progress")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setAccessibleName("Cancel the demo model set-up")
        self.cancel_button.clicked.connect(self._on_cancel)
        bar_row = QHBoxLayout()
        bar_row.setSpacing(10)
        bar_row.addWidget(self.bar, 1)
        bar_row.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addWidget(self.label)
        layout.addLayout(bar_row)
        self.setMaximumWidth(624)  # the width of the two columns of cards
        self.hide()

    def show_progress(self, progress: DemoProgress) -> None:
        if progress.fraction is None:
            self.bar.setRange(0, 0)  # busy: a download through pip has no byte count
        else:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(min(max(progress.fraction, 0.0), 1.0) * 1000))
        if self.cancel_button.isEnabled():  # "Cancelling…" stays until the end
            self.label.setText(progress.message)
        self.show()

    def start(self) -> None:
        self.cancel_button.setEnabled(True)
        self.bar.setRange(0, 0)
        self.label.setText("")
        self.show()

    def finish(self) -> None:
        self.hide()

    @property
    def fraction(self) -> float | None:
        """The bar's value (None while busy), for tests and accessibility."""
        if self.bar.maximum() == 0:
            return None
        return self.bar.value() / self.bar.maximum()

    def _on_cancel(self) -> None:
        self.cancel_button.setEnabled(False)
        self.label.setText("Cancelling…")
        self.cancelRequested.emit()
