"""Keyboard matters shared by the views: shortcut names in the platform's words, Esc ownership.

Shortcut texts come from ``QKeySequence``'s native text, so a tooltip says "Ctrl+N" on Linux and
Windows and "⌘N" on macOS, from one definition of the key.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QKeyEvent, QKeySequence


def shortcut_text(key: QKeySequence | QKeySequence.StandardKey | str) -> str:
    """``key`` as this platform writes it (the first binding of a standard key)."""
    sequence = key if isinstance(key, QKeySequence) else QKeySequence(key)
    return sequence.toString(QKeySequence.SequenceFormat.NativeText)


def with_shortcut(text: str, key: QKeySequence | QKeySequence.StandardKey | str) -> str:
    """``text (shortcut)`` for a tooltip; just ``text`` when the key has no binding here."""
    name = shortcut_text(key)
    return f"{text} ({name})" if name else text


def claims_escape(event: QEvent) -> bool:
    """Accept a ShortcutOverride for a plain Esc, so the widget gets the key instead of the
    window's Esc shortcut (Stop): Esc in an editor or a search field acts there."""
    if (
        event.type() == QEvent.Type.ShortcutOverride
        and isinstance(event, QKeyEvent)
        and event.key() == Qt.Key.Key_Escape
        and not event.modifiers()
    ):
        event.accept()
        return True
    return False
