"""Light and dark: one palette behind Qt's palette, the style sheets and the self-painted widgets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication, QMenuBar

from app.ui import palette as palette_module
from app.ui import theme
from app.ui.palette import DARK, LIGHT, contrast_ratio, current_palette

REPO = Path(__file__).resolve().parents[2]
READABLE = 4.5  # WCAG AA for body text


def _dark_desktop_palette() -> QPalette:
    """What a dark desktop hands a Qt app: light text on dark surfaces."""
    dark = QPalette()
    for role, color in (
        (QPalette.ColorRole.Window, "#202020"),
        (QPalette.ColorRole.Base, "#181818"),
        (QPalette.ColorRole.Button, "#2a2a2a"),
        (QPalette.ColorRole.WindowText, "#f0f0f0"),
        (QPalette.ColorRole.Text, "#f0f0f0"),
        (QPalette.ColorRole.ButtonText, "#f0f0f0"),
    ):
        dark.setColor(role, QColor(color))
    return dark


@pytest.fixture
def desktop(qapp, monkeypatch):
    """The app on a desktop whose palette the test chooses; everything restored afterwards."""
    saved_palette = QPalette(qapp.palette())
    saved_sheet = qapp.styleSheet()
    saved_style = qapp.style().name()

    def use(palette: QPalette) -> QApplication:
        monkeypatch.setattr(theme, "_system_palette", None)
        qapp.setPalette(palette)
        return qapp

    yield use
    qapp.setStyleSheet(saved_sheet)
    qapp.setPalette(saved_palette)
    qapp.setStyle(saved_style)
    palette_module.set_current_palette(LIGHT)


def _behind(widget, color: QColor) -> str:
    """``color``, or for a transparent background the colour of the nearest parent behind it."""
    holder = widget
    while color.alpha() == 0 and holder.parentWidget() is not None:
        holder = holder.parentWidget()
        holder.ensurePolished()
        color = holder.palette().color(QPalette.ColorRole.Window)
    return color.name()


def _pairs(widget) -> list[tuple[str, str, str]]:
    """(widget, text colour, the background it is drawn on) for its three text roles."""
    widget.ensurePolished()
    colors = widget.palette()
    role = QPalette.ColorRole
    return [
        (
            type(widget).__name__,
            colors.color(text).name(),
            _behind(widget, colors.color(background)),
        )
        for text, background in (
            (role.Text, role.Base),
            (role.WindowText, role.Window),
            (role.ButtonText, role.Button),
        )
    ]


def test_auto_follows_the_desktop_and_the_setting_switches_the_settings_dialog(
    qtbot, desktop
) -> None:
    from app.settings.app_settings import AppSettings
    from app.settings.settings_store import SettingsStore
    from app.shell.settings_dialog import SettingsDialog

    app = desktop(_dark_desktop_palette())
    assert theme.apply_theme(app, mode="auto") is DARK  # the desktop is dark
    store = SettingsStore(AppSettings(theme="light"), save=None)
    theme.ThemeFollower(app, store).apply()
    assert current_palette() is LIGHT and LIGHT.window in app.styleSheet()
    dialog = SettingsDialog(store)
    qtbot.addWidget(dialog)
    dialog.show()
    assert LIGHT.surface_alt in dialog.styleSheet()

    dialog.general_pane.theme_box.setCurrentIndex(dialog.general_pane.theme_box.findData("dark"))
    assert store.settings.theme == "dark" and current_palette() is DARK
    assert DARK.window in app.styleSheet() and LIGHT.sidebar not in app.styleSheet()
    assert app.palette().color(QPalette.ColorRole.Base).name() == DARK.surface
    assert DARK.surface_alt in dialog.styleSheet()  # the dialog's own sheet followed
    dialog.general_pane.theme_box.setCurrentIndex(dialog.general_pane.theme_box.findData("auto"))
    assert store.settings.theme == "auto" and current_palette() is DARK


@pytest.mark.parametrize("mode", ["dark", "light"])
def test_every_kind_of_input_is_readable_on_a_dark_desktop(qtbot, desktop, mode: str) -> None:
    from app.chat.composer import Composer
    from app.chat.message_widgets import MessageEditor
    from app.settings.generation_pane import GenerationPane

    app = desktop(_dark_desktop_palette())
    shown = theme.apply_theme(app, mode=mode)
    assert current_palette() is shown and shown.name == mode
    pane = GenerationPane()
    composer = Composer()
    editor = MessageEditor("an edited message")
    menu_bar = QMenuBar()
    menu_bar.addMenu("&File")
    for widget in (pane, composer, editor, menu_bar):
        qtbot.addWidget(widget)
        widget.show()
    widgets = [
        pane.temperature,
        pane.top_k,
        pane.context_policy,
        pane.fixed_seed,
        pane.system_prompt,
    ]
    widgets += [composer.input, editor, menu_bar]
    unreadable = [
        (name, text, background, round(contrast_ratio(text, background), 2))
        for widget in widgets
        for name, text, background in _pairs(widget)
        if contrast_ratio(text, background) < READABLE
    ]
    assert unreadable == []


def test_messages_render_again_in_the_new_colours_after_a_switch(qtbot, desktop) -> None:
    from app.chat.chat_view import ChatView
    from app.conversations.store import StoredMessage
    from app.settings.app_settings import AppSettings
    from app.settings.settings_store import SettingsStore

    app = desktop(_dark_desktop_palette())
    theme.apply_theme(app, mode="light")
    store = SettingsStore(AppSettings(theme="light"), save=None)
    theme.ThemeFollower(app, store)

    view = ChatView()
    qtbot.addWidget(view)
    view.show()
    answer = StoredMessage(
        id=2,
        conversation_id="c",
        position=1,
        role="assistant",
        content="Look:\n\n```python\nx = 1\n```\n",
        created_at=0.0,
        finish_reason="eos",
    )
    view.add_message(answer)
    assert LIGHT.code_background in view.rows[0].body.toHtml()
    hidden = ChatView()  # made while light, never shown: its first message comes after the switch
    qtbot.addWidget(hidden)

    store.update(theme="dark")
    assert current_palette() is DARK
    assert DARK.code_background in view.rows[0].body.toHtml()
    assert DARK.text in view.empty_state.text()
    hidden.add_message(answer)
    assert DARK.code_background in hidden.rows[0].body.toHtml()


def test_the_theme_setting_is_saved_and_a_bad_value_falls_back(tmp_path) -> None:
    from app.settings.app_settings import AppSettings, settings_from_dict, settings_to_dict

    data = settings_to_dict(AppSettings(theme="dark"))
    assert data["theme"] == "dark" and settings_from_dict(data).theme == "dark"
    assert settings_from_dict({**data, "theme": "purple"}).theme == "auto"


def test_palettes_keep_text_readable_in_both_looks() -> None:
    for colors in (LIGHT, DARK):
        for text, background in (
            ("text", "window"),
            ("text", "surface"),
            ("text", "user_bubble"),
            ("text_secondary", "window"),
            ("text", "code_background"),
            ("error_text", "error_background"),
            ("notice_text", "notice_background"),
            ("link", "window"),
            ("text_on_accent", "accent"),
        ):
            ratio = contrast_ratio(getattr(colors, text), getattr(colors, background))
            assert ratio >= READABLE, (colors.name, text, background, round(ratio, 2))


def test_no_colour_is_written_outside_the_palette() -> None:
    literal = re.compile(r"#[0-9a-fA-F]{6}\b|#[0-9a-fA-F]{3}\b|\b(?:white|black)\b(?=[;\"'])")
    allowed = {REPO / "app" / "ui" / "palette.py"}
    found = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in [*(REPO / "app").rglob("*.py"), *(REPO / "resources").glob("*.qss")]
        if path not in allowed
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if literal.search(line)
    ]
    assert found == []
