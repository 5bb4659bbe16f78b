"""The preset chip in the chat header: which generation preset this chat uses, and a menu to choose
another ("Default" is Settings → Generation), then "Manage Presets…". A view: the window keeps
which chat uses which (``app.settings.presets``)."""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtGui import QAction

from app.chat.menu_chip import MenuChip
from app.settings.presets import Preset

logger = logging.getLogger(__name__)

DEFAULT_LABEL = "Default"


class PresetSwitcher(MenuChip):
    presetChosen = Signal(str)  # a preset's name; "" for the defaults
    manageRequested = Signal()  # Settings → Generation

    def __init__(self, parent: Any = None) -> None:
        super().__init__("presetChip", parent)
        self.setAccessibleName("Generation preset")
        self._presets: tuple[Preset, ...] = ()
        self._current = ""
        self.show_presets((), "")

    def show_presets(self, presets: tuple[Preset, ...], current: str) -> None:
        self._presets, self._current = presets, current
        preset = next((p for p in presets if p.name == current), None)
        if preset is None:
            self.set_label(DEFAULT_LABEL, "Generation: Settings → Generation. Click for presets.")
            return
        g = preset.generation
        self.set_label(
            preset.name,
            f"Preset “{preset.name}”: temperature {g.temperature:g}, top-p {g.top_p:g}, "
            f"up to {g.max_new_tokens} tokens\n"
            f"System prompt: {preset.system_prompt.strip()[:200] or '(none)'}",
        )

    @property
    def current(self) -> str:
        return self._current

    def fill_menu(self) -> None:
        menu = self.menu()
        menu.clear()
        choices = [("", f"{DEFAULT_LABEL} (Settings → Generation)")]
        choices += [(p.name, p.name) for p in self._presets]
        for name, label in choices:
            action = QAction(label, menu)
            action.setCheckable(True)
            action.setChecked(name == self._current)
            action.setData(name)
            action.triggered.connect(lambda _checked=False, n=name: self.presetChosen.emit(n))
            menu.addAction(action)
        menu.addSeparator()
        manage = menu.addAction("Manage Presets…")
        manage.triggered.connect(self.manageRequested)

    def preset_actions(self) -> list[QAction]:
        self.fill_menu()
        return [a for a in self.menu().actions() if a.data() is not None]
