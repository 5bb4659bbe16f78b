"""First launch without a model: the demo model, a local package, a Hub download, or the Converter."""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.shell.demo_progress import DemoProgressPanel
from app.ui.theme import app_icon

logger = logging.getLogger(__name__)

CHOICES = (
    ("demo", "Try the demo model", "SmolLM2-135M-Instruct, converted on this machine (~100 MB)."),
    ("open", "Open a local model", "A model folder or an .mlpackage you already have."),
    ("hub", "Download from the Hub", "For example apple/mistral-coreml (Mistral 7B, int4)."),
    ("convert", "Convert a model", "Any Llama or Mistral checkpoint, folder or .gguf file."),
)
GLYPHS = {"demo": "★", "open": "▤", "hub": "↓", "convert": "⚙"}


class WelcomeCard(QPushButton):
    """A large button with a glyph, a bold heading and a grey line of detail."""

    def __init__(self, key: str, heading: str, detail: str, parent: Any = None) -> None:
        super().__init__(parent)
        self.setObjectName("welcomeCard")
        self.setAccessibleName(heading)
        self.heading = heading
        glyph = QLabel(GLYPHS.get(key, "•"), objectName="welcomeGlyph")
        glyph.setFixedSize(36, 36)
        glyph.setAlignment(Qt.AlignmentFlag.AlignCenter)
        title = QLabel(heading, objectName="welcomeCardTitle")
        text = QLabel(detail, objectName="welcomeCardDetail")
        text.setWordWrap(True)
        column = QVBoxLayout()
        column.setSpacing(2)
        column.addWidget(title)
        column.addWidget(text)
        row = QHBoxLayout(self)
        row.setContentsMargins(14, 12, 14, 12)
        row.setSpacing(12)
        row.addWidget(glyph, 0, Qt.AlignmentFlag.AlignTop)
        row.addLayout(column, 1)
        for label in (glyph, title, text):
            label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)


class WelcomeView(QWidget):
    demoRequested = Signal()
    openRequested = Signal()
    hubRequested = Signal()
    convertRequested = Signal()

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.setObjectName("welcomePage")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        icon = QLabel(alignment=Qt.AlignmentFlag.AlignCenter)
        icon.setPixmap(app_icon().pixmap(96, 96))
        title = QLabel("Welcome to coreml-chat", objectName="welcomeTitle")
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        subtitle = QLabel(
            "Chat with language models that run entirely on this computer.\n"
            "Choose a model to begin:",
            objectName="welcomeSubtitle",
        )
        subtitle.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.status = QLabel(objectName="welcomeStatus", alignment=Qt.AlignmentFlag.AlignCenter)
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.PlainText)  # model names and errors
        self.demo_progress = DemoProgressPanel()
        signals = {
            "demo": self.demoRequested,
            "open": self.openRequested,
            "hub": self.hubRequested,
            "convert": self.convertRequested,
        }
        grid = QGridLayout()
        grid.setSpacing(12)
        self.buttons: dict[str, QPushButton] = {}
        for number, (key, heading, detail) in enumerate(CHOICES):
            button = WelcomeCard(key, heading, detail)
            button.setCursor(Qt.CursorShape.PointingHandCursor)
            button.setMinimumSize(300, 78)
            button.clicked.connect(signals[key])
            grid.addWidget(button, number // 2, number % 2)
            self.buttons[key] = button
        column = QVBoxLayout()
        column.addStretch(2)
        column.addWidget(icon)
        column.addSpacing(8)
        column.addWidget(title)
        column.addWidget(subtitle)
        column.addSpacing(22)
        column.addLayout(grid)
        column.addSpacing(12)
        column.addWidget(self.status)
        progress_row = QHBoxLayout()
        progress_row.addStretch(1)
        progress_row.addWidget(self.demo_progress, 100)
        progress_row.addStretch(1)
        column.addLayout(progress_row)
        column.addStretch(3)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(40, 20, 40, 20)
        outer.addLayout(column)

    def set_status(self, text: str, *, busy: bool = False) -> None:
        self.status.setText(text)
        for button in self.buttons.values():
            button.setEnabled(not busy)
