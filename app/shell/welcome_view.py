"""First launch without a model: the demo model, a local package, a Hub download, or the Converter.

The page scrolls and its cards reflow to one column when two do not fit, so nothing overlaps or is
cut off at the window's minimum size; a card with keyboard focus shows a ring (the style sheet).
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLayout,
    QPushButton,
    QScrollArea,
    QSizePolicy,
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
    (
        "convert",
        "Convert a model",
        "Llama, Mistral, Qwen, Gemma, Phi: a checkpoint, folder or .gguf file.",
    ),
)
GLYPHS = {"demo": "★", "open": "▤", "hub": "↓", "convert": "⚙"}
CARD_MIN_WIDTH = 250
CARD_MIN_HEIGHT = 78
CARD_SPACING = 12
PAGE_MARGIN = 40


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
        # The labels' height for the card's width decides its height (a QPushButton would size
        # itself by its own, empty, text); wrapped detail text makes a narrow card taller.
        row.setSizeConstraint(QLayout.SizeConstraint.SetNoConstraint)
        row.setContentsMargins(14, 12, 14, 12)
        row.setSpacing(12)
        row.addWidget(glyph, 0, Qt.AlignmentFlag.AlignTop)
        row.addLayout(column, 1)
        for label in (glyph, title, text):
            label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        policy = QSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        policy.setHeightForWidth(True)
        self.setSizePolicy(policy)
        self.setMinimumSize(CARD_MIN_WIDTH, CARD_MIN_HEIGHT)


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
        self.grid = QGridLayout()
        self.grid.setSpacing(CARD_SPACING)
        self.columns = 0
        self.buttons: dict[str, QPushButton] = {}
        for key, heading, detail in CHOICES:
            button = WelcomeCard(key, heading, detail)
            button.setCursor(Qt.CursorShape.PointingHandCursor)
            button.clicked.connect(signals[key])
            self.buttons[key] = button
        self._place_cards(2)
        column = QVBoxLayout()
        column.addStretch(2)
        column.addWidget(icon)
        column.addSpacing(8)
        column.addWidget(title)
        column.addWidget(subtitle)
        column.addSpacing(22)
        column.addLayout(self.grid)
        column.addSpacing(12)
        column.addWidget(self.status)
        progress_row = QHBoxLayout()
        progress_row.addStretch(1)
        progress_row.addWidget(self.demo_progress, 100)
        progress_row.addStretch(1)
        column.addLayout(progress_row)
        column.addStretch(3)
        content = QWidget(objectName="welcomeContent")
        content_layout = QVBoxLayout(content)
        content_layout.setContentsMargins(PAGE_MARGIN, 20, PAGE_MARGIN, 20)
        content_layout.addLayout(column)
        self.scroll = QScrollArea(objectName="welcomeScroll")
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.setWidget(content)
        self.content = content
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.scroll)

    def _place_cards(self, columns: int) -> None:
        """Lay the cards out in ``columns`` columns (2 when they fit side by side, else 1)."""
        if columns == self.columns:
            return
        self.columns = columns
        for button in self.buttons.values():
            self.grid.removeWidget(button)
        for number, button in enumerate(self.buttons.values()):
            self.grid.addWidget(button, number // columns, number % columns)
        for column in range(2):
            self.grid.setColumnStretch(column, 1 if column < columns else 0)

    def resizeEvent(self, event: Any) -> None:
        available = self.scroll.viewport().width() - 2 * PAGE_MARGIN
        self._place_cards(2 if available >= 2 * CARD_MIN_WIDTH + CARD_SPACING else 1)
        super().resizeEvent(event)

    def set_status(self, text: str, *, busy: bool = False) -> None:
        self.status.setText(text)
        for button in self.buttons.values():
            button.setEnabled(not busy)
