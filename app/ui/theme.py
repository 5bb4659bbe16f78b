"""The app's look: light or dark (or the system's choice), the style sheet, the icon and the font.

One palette (``app.ui.palette``) fills both Qt's ``QPalette`` (what unstyled widgets draw with:
spin boxes, combo boxes, check boxes, menus, editors) and the style sheet template
``resources/style.qss``, so no widget is left with the platform's colours under ours (dark text
on a dark desktop was the result). ``ThemeFollower`` keeps the look in step with the ``theme``
setting and, in "auto", with the system's colour scheme.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QColor, QFont, QGuiApplication, QIcon, QPalette
from PySide6.QtWidgets import QApplication

from app.settings.app_settings import THEMES
from app.ui.palette import PALETTES, Palette, SchemeName, set_current_palette

if TYPE_CHECKING:
    from app.settings.app_settings import AppSettings
    from app.settings.settings_store import SettingsStore

logger = logging.getLogger(__name__)

APP_DISPLAY_NAME = "coreml-chat"
_system_palette: QPalette | None = None  # the platform's palette, before ours replaced it


def resources_dir() -> Path:
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root:
        return Path(frozen_root) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"  # app/ui/theme.py -> repo root


def style_sheet(palette: Palette) -> str:
    """``resources/style.qss`` with ``palette``'s colours filled in ("" when it is missing)."""
    path = resources_dir() / "style.qss"
    try:
        template = path.read_text(encoding="utf-8")
    except OSError as error:
        logger.warning("no style sheet at %s (%s): using Qt's default look", path, error)
        return ""
    return Template(template).substitute(palette.template_values())


def app_icon() -> QIcon:
    path = resources_dir() / "icon.png"
    return QIcon(str(path)) if path.is_file() else QIcon()


def system_scheme(app: QGuiApplication) -> SchemeName:
    """The desktop's light or dark setting: Qt's colour scheme when the platform reports one,
    else the lightness of the platform's own window colour."""
    scheme = app.styleHints().colorScheme()
    if scheme == Qt.ColorScheme.Dark:
        return "dark"
    if scheme == Qt.ColorScheme.Light:
        return "light"
    palette = _system_palette if _system_palette is not None else app.palette()
    return "dark" if palette.color(QPalette.ColorRole.Window).lightness() < 128 else "light"


def tell_platform(mode: str, app: QGuiApplication) -> None:
    """Ask the platform for the chosen look too, so what Qt does not draw (native file dialogs,
    the title bar on macOS) matches; "auto" hands the choice back to the system."""
    hints = app.styleHints()
    if mode == "dark":
        hints.setColorScheme(Qt.ColorScheme.Dark)
    elif mode == "light":
        hints.setColorScheme(Qt.ColorScheme.Light)
    else:
        hints.unsetColorScheme()


def resolve_scheme(mode: str, app: QGuiApplication) -> SchemeName:
    if mode == "light" or mode == "dark":
        return mode
    if mode != "auto":
        logger.warning("unknown theme %r (expected %s): following the system", mode, THEMES)
    return system_scheme(app)


def qt_palette(palette: Palette) -> QPalette:
    """Qt's palette in our colours: what Fusion draws unstyled widgets with."""
    qt = QPalette()
    role = QPalette.ColorRole
    for roles, color in (
        ((role.Window,), palette.window),
        ((role.WindowText, role.Text, role.ButtonText, role.ToolTipText), palette.text),
        ((role.Base,), palette.surface),
        ((role.AlternateBase, role.ToolTipBase), palette.surface_alt),
        ((role.Button,), palette.surface),
        ((role.BrightText,), palette.error),
        ((role.Highlight,), palette.accent),
        ((role.HighlightedText,), palette.text_on_accent),
        ((role.PlaceholderText,), palette.text_tertiary),
        ((role.Link,), palette.link),
        ((role.LinkVisited,), palette.link),
        ((role.Light, role.Midlight), palette.hover),
        ((role.Mid, role.Dark), palette.border_strong),
        ((role.Shadow,), palette.border),
    ):
        for item in roles:
            qt.setColor(item, QColor(color))
    disabled = QPalette.ColorGroup.Disabled
    for item in (role.WindowText, role.Text, role.ButtonText):
        qt.setColor(disabled, item, QColor(palette.text_disabled))
    return qt


def _remember_system_palette(app: QApplication) -> None:
    global _system_palette
    if _system_palette is None:
        _system_palette = QPalette(app.palette())


def apply_palette(app: QApplication, palette: Palette) -> None:
    """Show ``palette`` everywhere: Qt's palette, the style sheet, and ``current_palette()``."""
    _remember_system_palette(app)
    set_current_palette(palette)
    app.setPalette(qt_palette(palette))
    app.setStyleSheet(style_sheet(palette))


def apply_theme(app: QApplication, *, mode: str = "auto") -> Palette:
    """Name, style, font, icon and the light or dark look (``mode``: auto, light or dark)."""
    app.setApplicationName(APP_DISPLAY_NAME)
    app.setApplicationDisplayName(APP_DISPLAY_NAME)
    app.setOrganizationName(APP_DISPLAY_NAME)
    _remember_system_palette(app)
    app.setStyle("Fusion")
    font = QFont()
    font.setFamilies(
        [".AppleSystemUIFont", "SF Pro Text", "Helvetica Neue", "Inter", "DejaVu Sans"]
    )
    font.setPointSizeF(10.5 if sys.platform != "darwin" else 13.0)
    app.setFont(font)
    app.setWindowIcon(app_icon())
    tell_platform(mode, app)
    palette = PALETTES[resolve_scheme(mode, app)]
    apply_palette(app, palette)
    return palette


class ThemeFollower(QObject):
    """Keeps the look in step with the ``theme`` setting and, in "auto", the system's scheme."""

    def __init__(
        self, app: QApplication, settings: SettingsStore, parent: QObject | None = None
    ) -> None:
        super().__init__(parent or app)
        self._app = app
        self._settings = settings
        settings.changed.connect(self._on_settings_changed)
        app.styleHints().colorSchemeChanged.connect(self._on_system_scheme_changed)

    @property
    def mode(self) -> str:
        return self._settings.settings.theme

    def apply(self) -> Palette:
        tell_platform(self.mode, self._app)
        palette = PALETTES[resolve_scheme(self.mode, self._app)]
        apply_palette(self._app, palette)
        logger.debug("theme %s (%s)", palette.name, self.mode)
        return palette

    def _on_settings_changed(self, previous: AppSettings, current: AppSettings) -> None:
        if previous.theme != current.theme:
            self.apply()

    def _on_system_scheme_changed(self, _scheme: Qt.ColorScheme) -> None:
        if self.mode == "auto":
            self.apply()
