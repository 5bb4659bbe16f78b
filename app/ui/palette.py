"""Every colour the app uses, once, for the light and the dark look.

The style sheets (``resources/style.qss`` and the Settings dialog's) are templates filled from a
``Palette``; the widgets that paint themselves (the sidebar's rows, rendered Markdown, the
converter's stage marks) read the same fields. ``current_palette()`` is the one the running app
shows; ``app.ui.theme`` sets it. No other module writes a colour literal (a test checks).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

SchemeName = Literal["light", "dark"]


@dataclass(frozen=True)
class Palette:
    """Named colours (``#rrggbb``) of one look; the names say where they are used."""

    name: SchemeName
    # surfaces
    window: str  # chat page, welcome page, message column
    sidebar: str
    surface: str  # cards, inputs, the composer
    surface_alt: str  # the Settings dialog's background, the status line
    hover: str
    selected: str  # the selected sidebar row, selected list items
    user_bubble: str
    chip: str  # the model chip, the search field at rest
    border: str
    border_strong: str  # inputs, buttons
    divider: str
    # text
    text: str
    text_secondary: str
    text_tertiary: str
    text_disabled: str
    text_on_accent: str
    # accent and states
    accent: str
    accent_hover: str
    accent_muted: str  # accent on a quiet background (no longer a disabled button: too alike)
    focus_ring: str
    badge_background: str
    badge_text: str
    link: str
    success: str
    warning: str  # finish notes ("Stopped")
    error: str
    notice_background: str
    notice_text: str
    error_background: str
    error_border: str
    error_text: str
    gauge_track: str
    gauge_ok: str
    gauge_high: str
    gauge_full: str
    scrollbar: str
    avatar_start: str
    avatar_end: str
    # code, tables and quotes in rendered Markdown
    code_background: str
    code_header_background: str
    code_header_text: str
    table_border: str
    table_header_background: str
    quote_bar: str
    quote_text: str
    log_background: str
    log_text: str
    # syntax highlighting (Pygments token kinds → these)
    syntax_keyword: str
    syntax_string: str
    syntax_comment: str
    syntax_number: str
    syntax_function: str
    syntax_class: str
    syntax_builtin: str
    syntax_operator: str
    search_match_background: str  # a search hit's matched words in the sidebar
    search_match_text: str

    def template_values(self) -> dict[str, str]:
        """The fields by name, for ``string.Template`` style sheets (``${text}``)."""
        return {item.name: getattr(self, item.name) for item in fields(self)}


LIGHT = Palette(
    name="light",
    window="#ffffff",
    sidebar="#f4f5f7",
    surface="#ffffff",
    surface_alt="#f5f5f7",
    hover="#e9ebef",
    selected="#dfe7f5",
    user_bubble="#eef2f8",
    chip="#eceef2",
    border="#e3e5e8",
    border_strong="#d1d1d6",
    divider="#eceef1",
    text="#1d1d1f",
    text_secondary="#5f6670",
    text_tertiary="#80868f",
    text_disabled="#aeaeb2",
    text_on_accent="#ffffff",
    accent="#0a74e0",
    accent_hover="#0064c8",
    accent_muted="#a9cdfb",
    focus_ring="#3d8ef0",
    badge_background="#e8f0fe",
    badge_text="#1a56c4",
    link="#0a66d8",
    success="#248a3d",
    warning="#9a6700",
    error="#d70015",
    notice_background="#fff4d6",
    notice_text="#8a5a00",
    error_background="#fdecec",
    error_border="#f5c2c0",
    error_text="#9b1c1c",
    gauge_track="#eceef1",
    gauge_ok="#34c759",
    gauge_high="#ff9f0a",
    gauge_full="#ff453a",
    scrollbar="#cfd3d9",
    avatar_start="#5b8def",
    avatar_end="#8a5cf6",
    code_background="#f3f4f6",
    code_header_background="#e6e8ec",
    code_header_text="#5f6670",
    table_border="#d5d8dd",
    table_header_background="#f1f3f6",
    quote_bar="#c7ccd4",
    quote_text="#4b5563",
    log_background="#1e1e1e",
    log_text="#d4d4d4",
    syntax_keyword="#a626a4",
    syntax_string="#2f7d32",
    syntax_comment="#7c8490",
    syntax_number="#b15c00",
    syntax_function="#2256c9",
    syntax_class="#8a5a00",
    syntax_builtin="#0b7b8b",
    syntax_operator="#4b5563",
    search_match_background="#fde68a",
    search_match_text="#1d1d1f",
)

DARK = Palette(
    name="dark",
    window="#1e1f22",
    sidebar="#18191c",
    surface="#2a2b2f",
    surface_alt="#232427",
    hover="#303237",
    selected="#2f3a4d",
    user_bubble="#2c3240",
    chip="#2d2f34",
    border="#3a3c42",
    border_strong="#4a4d54",
    divider="#2f3136",
    text="#ececf1",
    text_secondary="#b4b8c0",
    text_tertiary="#8e939c",
    text_disabled="#6b6f77",
    text_on_accent="#ffffff",
    accent="#2670dc",
    accent_hover="#3a80e6",
    accent_muted="#2b4a70",
    focus_ring="#5aa2ff",
    badge_background="#22344f",
    badge_text="#9cc3ff",
    link="#6cb0ff",
    success="#4cc26a",
    warning="#e0a84a",
    error="#ff6961",
    notice_background="#4a3a17",
    notice_text="#f3d28b",
    error_background="#3d2224",
    error_border="#6b3235",
    error_text="#ffb4ae",
    gauge_track="#34363b",
    gauge_ok="#30d158",
    gauge_high="#ff9f0a",
    gauge_full="#ff453a",
    scrollbar="#4a4d54",
    avatar_start="#4f7fe0",
    avatar_end="#7d55e6",
    code_background="#26272b",
    code_header_background="#313338",
    code_header_text="#a9aeb7",
    table_border="#464950",
    table_header_background="#2c2e33",
    quote_bar="#5a5e66",
    quote_text="#c0c4cc",
    log_background="#141517",
    log_text="#d4d4d4",
    syntax_keyword="#d490e6",
    syntax_string="#98c379",
    syntax_comment="#868c96",
    syntax_number="#e5a66b",
    syntax_function="#70b4ff",
    syntax_class="#e5c07b",
    syntax_builtin="#56c2d6",
    syntax_operator="#b4b8c0",
    search_match_background="#8a6d1f",
    search_match_text="#fff8e1",
)

PALETTES: dict[SchemeName, Palette] = {"light": LIGHT, "dark": DARK}
_current: Palette = LIGHT


def current_palette() -> Palette:
    """The palette the app shows now (light until ``app.ui.theme`` applies another)."""
    return _current


def set_current_palette(palette: Palette) -> None:
    global _current
    _current = palette


def relative_luminance(color: str) -> float:
    """WCAG relative luminance of ``#rrggbb`` (0 black … 1 white)."""
    channels = [int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_ratio(first: str, second: str) -> float:
    """WCAG contrast ratio between two ``#rrggbb`` colours (1 … 21; text wants 4.5 or more)."""
    lighter, darker = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)
