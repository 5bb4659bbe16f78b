"""The app's look: the style sheet and icon from ``resources/`` (beside the code, or in a frozen app)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from PySide6.QtGui import QFont, QIcon
from PySide6.QtWidgets import QApplication

logger = logging.getLogger(__name__)

APP_DISPLAY_NAME = "coreml-chat"


def resources_dir() -> Path:
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root:
        return Path(frozen_root) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"  # app/ui/theme.py -> repo root


def style_sheet() -> str:
    path = resources_dir() / "style.qss"
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        logger.warning("no style sheet at %s (%s): using Qt's default look", path, error)
        return ""


def app_icon() -> QIcon:
    path = resources_dir() / "icon.png"
    return QIcon(str(path)) if path.is_file() else QIcon()


def apply_theme(app: QApplication) -> None:
    app.setApplicationName(APP_DISPLAY_NAME)
    app.setApplicationDisplayName(APP_DISPLAY_NAME)
    app.setOrganizationName(APP_DISPLAY_NAME)
    app.setStyle("Fusion")
    font = QFont()
    font.setFamilies(
        [".AppleSystemUIFont", "SF Pro Text", "Helvetica Neue", "Inter", "DejaVu Sans"]
    )
    font.setPointSizeF(10.5 if sys.platform != "darwin" else 13.0)
    app.setFont(font)
    app.setWindowIcon(app_icon())
    app.setStyleSheet(style_sheet())
