"""The Settings dialog's General tab: how the app looks (light, dark, or as the system is)."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QWidget

from app.settings.app_settings import THEMES
from app.ui.pane_widgets import Card, label, page_layout

THEME_LABELS = {
    "auto": "Follow the system",
    "light": "Light",
    "dark": "Dark",
}


class GeneralPane(QWidget):
    themeChanged = Signal(str)  # one of THEMES

    def __init__(self, *, theme: str) -> None:
        super().__init__()
        layout = page_layout(self)
        card = Card(
            "Appearance", "Follow the system switches with the desktop's light or dark setting."
        )
        form = card.form()
        self.theme_box = QComboBox()
        self.theme_box.setAccessibleName("Theme")
        for key in THEMES:
            self.theme_box.addItem(THEME_LABELS[key], key)
        form.addRow(label("Theme", name="FieldLabel"), self.theme_box)
        layout.addWidget(card)
        layout.addStretch(1)
        self.set_theme(theme)
        self.theme_box.currentIndexChanged.connect(lambda: self.themeChanged.emit(self.theme()))

    def theme(self) -> str:
        return str(self.theme_box.currentData())

    def set_theme(self, theme: str) -> None:
        self.theme_box.blockSignals(True)
        self.theme_box.setCurrentIndex(max(self.theme_box.findData(theme), 0))
        self.theme_box.blockSignals(False)
