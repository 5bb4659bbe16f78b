"""The one owner of the app's settings while the app runs.

The window and the Settings dialog both change settings (the window remembers the loaded model, the
dialog everything else). Each used to hold its own ``AppSettings`` and write ``settings.json``, so
the last writer won and could write back an older model. Now both hold this store: ``update()``
changes one copy, emits ``changed`` (previous, current) and saves shortly after; ``save_now()``
writes at once (the dialog's Done, the window's close).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from app.settings.app_settings import AppSettings, save_settings

logger = logging.getLogger(__name__)

SAVE_DELAY_MS = 400  # a spin box dragged through ten values writes the file once

SaveSettings = Callable[[AppSettings], None]


class SettingsStore(QObject):
    changed = Signal(object, object)  # previous AppSettings, current AppSettings
    saveFailed = Signal(str)  # one line: what could not be written and why

    def __init__(
        self,
        settings: AppSettings | None = None,
        *,
        save: SaveSettings | None = save_settings,
        save_delay_ms: int = SAVE_DELAY_MS,
        parent: QObject | None = None,
    ) -> None:
        """``save=None`` keeps the settings in memory only (benchmarks, screenshots)."""
        super().__init__(parent)
        self._settings = replace(settings) if settings is not None else AppSettings()
        self._save = save
        self._dirty = False
        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(save_delay_ms)
        self._save_timer.timeout.connect(self.save_now)

    @property
    def settings(self) -> AppSettings:
        """A copy: a change made to it goes nowhere until it is passed to ``update()``."""
        return replace(self._settings)

    def update(self, **changes: Any) -> bool:
        """Apply ``changes`` (AppSettings field names); returns whether anything changed."""
        updated = replace(self._settings, **changes)
        if updated == self._settings:
            return False
        previous, self._settings = self._settings, updated
        self._dirty = True
        self._save_timer.start()
        self.changed.emit(replace(previous), self.settings)
        return True

    def save_now(self) -> None:
        """Write pending changes now; a failure is logged and reported through ``saveFailed``."""
        self._save_timer.stop()
        if not self._dirty or self._save is None:
            return
        try:
            self._save(self._settings)
        except OSError as error:
            logger.error("cannot save the settings: %s", error)
            self.saveFailed.emit(f"Settings could not be saved: {error}")
            return
        self._dirty = False
