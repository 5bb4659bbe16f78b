"""A welcome card with keyboard focus shows a ring and nothing else (issue 24)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication

from app.shell.welcome_view import WelcomeView
from app.ui.palette import PALETTES
from app.ui.theme import apply_palette

RIM = 12  # the ring and the rounded corners (radius 12) around it


def _inside(card) -> QImage:
    image = card.grab().toImage()
    return image.copy(RIM, RIM, image.width() - 2 * RIM, image.height() - 2 * RIM)


def test_focus_draws_only_a_ring_and_asks_for_no_platform_focus_frame(qtbot) -> None:
    """macOS drew its own focus frame, through the style sheet a filled rectangle, over the card's
    text (that frame is a widget of its own, drawn only by the macOS
    style: it cannot be grabbed here, so the card must not ask for it); and the ring, one pixel thicker than the border, moved the text by a pixel."""
    apply_palette(QApplication.instance(), PALETTES["light"])
    view = WelcomeView()
    qtbot.addWidget(view)
    view.resize(900, 700)
    view.show()
    qtbot.waitExposed(view)
    card = view.buttons["open"]
    view.buttons["demo"].setFocus()
    qtbot.waitUntil(lambda: view.buttons["demo"].hasFocus())
    before = _inside(card)
    qtbot.keyClick(view.buttons["demo"], Qt.Key.Key_Tab)  # the keyboard's focus: Fusion's
    qtbot.waitUntil(card.hasFocus)  # focus rectangle is drawn only then
    after = _inside(card)
    assert after == before  # the text, the glyph and the fill stay as they were
