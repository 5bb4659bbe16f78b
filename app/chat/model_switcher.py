"""The model chip in the chat header, and the menu it opens: the library's models (the loaded one
checked), then "Manage Models…". Choosing one loads it; the chat stays as it is.

A view: it lists what ``models`` returns (the app's models folder by default, read when the menu
opens) and says what was chosen (``modelChosen``); the window loads it. A ``MenuChip``: its text is
cut with "…" to the width it gets.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu

from app.chat.menu_chip import MenuChip
from app.models.model_library import ModelSummary, is_same_or_inside, local_models

logger = logging.getLogger(__name__)


class ModelSwitcher(MenuChip):
    modelChosen = Signal(str)  # a model folder to load
    manageRequested = Signal()  # Settings → Model

    def __init__(
        self, *, models: Callable[[], list[ModelSummary]] = local_models, parent: Any = None
    ) -> None:
        super().__init__("modelChip", parent)
        self.models = models
        self._loaded_path = ""
        self._blocked = ""  # why switching is not possible now ("" when it is)
        self.setAccessibleName("Model")

    # --- what it shows ---------------------------------------------------------------------------

    def set_model(self, text: str, *, loaded_path: str = "", tooltip: str = "") -> None:
        self._loaded_path = loaded_path
        self.set_label(text, tooltip)

    def set_blocked(self, reason: str) -> None:
        """Why no other model can be chosen now ("" : it can), e.g. an answer is being written."""
        self._blocked = reason

    # --- the menu --------------------------------------------------------------------------------

    def fill_menu(self) -> None:
        menu = self.menu()
        menu.clear()
        try:
            summaries = self.models()
        except OSError as error:  # the models folder cannot be read
            logger.warning("cannot list the models: %s", error)
            summaries = []
        loaded_listed = False
        for summary in summaries:
            loaded = bool(self._loaded_path) and is_same_or_inside(
                self._loaded_path, summary.folder
            )
            loaded_listed |= loaded
            self._add_model(menu, summary.display_name, str(summary.folder), loaded, summary)
        if self._loaded_path and not loaded_listed:  # opened from elsewhere: listed too, first
            first = menu.actions()[0] if menu.actions() else None
            action = self._model_action(menu, Path(self._loaded_path).name, self._loaded_path, True)
            menu.insertAction(first, action)
        if not menu.actions():
            empty = menu.addAction("No models on this computer yet")
            empty.setEnabled(False)
        menu.addSeparator()
        manage = menu.addAction("Manage Models…")
        manage.triggered.connect(self.manageRequested)

    def _add_model(
        self, menu: QMenu, name: str, folder: str, loaded: bool, summary: ModelSummary
    ) -> None:
        action = self._model_action(menu, name, folder, loaded)
        if action.isEnabled():
            action.setToolTip(
                f"{summary.name} · {summary.quantization} · {summary.context_length:,} tokens\n"
                + folder
            )
        menu.addAction(action)

    def _model_action(self, menu: QMenu, name: str, folder: str, loaded: bool) -> QAction:
        action = QAction(name, menu)
        action.setCheckable(True)
        action.setChecked(loaded)
        action.setData(folder)
        if not loaded and self._blocked:
            action.setEnabled(False)
            action.setToolTip(self._blocked)
        action.triggered.connect(lambda _checked=False, f=folder: self._choose(f))
        return action

    def _choose(self, folder: str) -> None:
        if self._loaded_path and is_same_or_inside(self._loaded_path, Path(folder)):
            return  # already the model: nothing to do
        self.modelChosen.emit(folder)

    def model_actions(self) -> list[QAction]:
        """The menu's model entries as it would show now (fills it): for tests and the keyboard."""
        self.fill_menu()
        return [a for a in self.menu().actions() if a.data() is not None]
