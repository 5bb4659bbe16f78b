"""Small building blocks shared by the Settings dialog's panes: cards, form rows, the style sheet.

Layout and style only; the panes' behaviour lives in their controllers.
"""

from __future__ import annotations

from string import Template

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QFontDatabase
from PySide6.QtWidgets import (
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLayout,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from app.ui.palette import Palette, current_palette

STYLE_SHEET_TEMPLATE = Template("""
QDialog#SettingsDialog { background: ${surface_alt}; }
QWidget#SettingsPage { background: transparent; }
QFrame#Card {
    background: ${surface};
    border: 1px solid ${border};
    border-radius: 10px;
}
QLabel#CardTitle { font-weight: 600; font-size: 13px; color: ${text}; }
QLabel#CardSubtitle, QLabel#Hint { color: ${text_secondary}; font-size: 12px; }
QLabel#ModelName { font-size: 17px; font-weight: 600; color: ${text}; }
QLabel#FieldLabel { color: ${text_secondary}; }
QLabel#ErrorText { color: ${error}; }
QLabel#SuccessText { color: ${success}; }
QLabel#StageMark { font-weight: 700; color: ${text_disabled}; }
QLabel#StageMark[state="running"] { color: ${accent}; }
QLabel#StageMark[state="done"] { color: ${success}; }
QLabel#StageMark[state="stopped"] { color: ${error}; }
QLabel#Badge {
    background: ${badge_background}; color: ${badge_text}; border-radius: 8px; padding: 2px 8px;
    font-size: 11px;
}
QToolButton#SegmentButton {
    border: 1px solid ${border_strong}; background: ${surface}; padding: 5px 18px; color: ${text};
    font-size: 13px;
}
QToolButton#SegmentButton:checked {
    background: ${accent}; color: ${text_on_accent}; border-color: ${accent};
}
QToolButton#SegmentButton:focus { border-color: ${focus_ring}; }
QToolButton#SegmentButton[segment="first"] {
    border-top-left-radius: 7px; border-bottom-left-radius: 7px;
}
QToolButton#SegmentButton[segment="last"] {
    border-top-right-radius: 7px; border-bottom-right-radius: 7px;
}
QPushButton {
    background: ${surface}; border: 1px solid ${border_strong}; border-radius: 6px;
    padding: 5px 14px; color: ${text};
}
QPushButton:hover { background: ${hover}; }
QPushButton:focus { border-color: ${focus_ring}; }
QPushButton:disabled { color: ${text_disabled}; border-color: ${border}; }
QPushButton#PrimaryButton { background: ${accent}; color: ${text_on_accent}; border-color: ${accent}; }
QPushButton#PrimaryButton:hover { background: ${accent_hover}; }
QPushButton#PrimaryButton:disabled { background: ${chip}; border-color: ${chip}; color: ${text_disabled}; }
QPushButton#DestructiveButton { color: ${error}; }
QPushButton#DestructiveButton:disabled { color: ${text_disabled}; }
QLineEdit, QPlainTextEdit {
    background: ${surface}; color: ${text}; border: 1px solid ${border_strong}; border-radius: 6px;
    padding: 4px 6px; selection-background-color: ${accent}; selection-color: ${text_on_accent};
}
QLineEdit:focus, QPlainTextEdit:focus { border: 1px solid ${accent}; }
QLineEdit:disabled { color: ${text_disabled}; background: ${surface_alt}; }
QScrollArea#PageScroll { background: transparent; border: none; }
QScrollArea#PageScroll > QWidget > QWidget { background: transparent; }
QPlainTextEdit#LogView { background: ${log_background}; color: ${log_text}; border-radius: 8px; }
QProgressBar {
    background: ${gauge_track}; border: none; border-radius: 4px; height: 8px; max-height: 8px;
    text-align: center; color: transparent;
}
QProgressBar::chunk { background: ${accent}; border-radius: 4px; }
QProgressBar#StageBar { height: 5px; max-height: 5px; border-radius: 2px; }
QProgressBar#StageBar::chunk { border-radius: 2px; }
QListWidget {
    background: ${surface}; color: ${text}; border: 1px solid ${border}; border-radius: 8px;
}
QListWidget::item { padding: 6px; }
QListWidget::item:selected { background: ${selected}; color: ${text}; }
""")


def settings_style_sheet(palette: Palette | None = None) -> str:
    """The Settings dialog's style sheet in ``palette``'s colours (the current one by default)."""
    return STYLE_SHEET_TEMPLATE.substitute((palette or current_palette()).template_values())


def monospace_font(point_size: int = 11) -> QFont:
    font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
    font.setPointSize(point_size)
    return font


def label(text: str, *, name: str = "", word_wrap: bool = False) -> QLabel:
    widget = QLabel(text)
    widget.setTextFormat(Qt.TextFormat.PlainText)  # model names, paths, errors: shown as they are
    if name:
        widget.setObjectName(name)
    widget.setWordWrap(word_wrap)
    widget.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return widget


def hint(text: str, *, word_wrap: bool = False) -> QLabel:
    return label(text, name="Hint", word_wrap=word_wrap)


class Card(QFrame):
    """A white rounded panel with a title (and an optional subtitle) above its content."""

    def __init__(self, title: str, subtitle: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("Card")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(16, 12, 16, 14)
        outer.setSpacing(8)
        header = QVBoxLayout()
        header.setSpacing(2)
        header.addWidget(label(title, name="CardTitle"))
        if subtitle:
            header.addWidget(label(subtitle, name="CardSubtitle", word_wrap=True))
        outer.addLayout(header)
        self.body = QVBoxLayout()
        self.body.setSpacing(8)
        outer.addLayout(self.body)

    def add(self, item: QWidget | QLayout) -> None:
        if isinstance(item, QLayout):
            self.body.addLayout(item)
        else:
            self.body.addWidget(item)

    def form(self) -> QFormLayout:
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        form.setFormAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        form.setHorizontalSpacing(14)
        form.setVerticalSpacing(8)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
        self.body.addLayout(form)
        return form


def row(*widgets: QWidget, stretch_last: bool = False, spacing: int = 8) -> QHBoxLayout:
    layout = QHBoxLayout()
    layout.setSpacing(spacing)
    layout.setContentsMargins(0, 0, 0, 0)
    for widget in widgets:
        layout.addWidget(widget)
    if not stretch_last:
        layout.addStretch(1)
    return layout


def scrolling(page: QWidget) -> QScrollArea:
    """``page`` in a frameless scroll area: a small dialog scrolls (both ways) instead of clipping."""
    area = QScrollArea()
    area.setObjectName("PageScroll")
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
    area.setWidget(page)
    return area


def page_layout(page: QWidget) -> QVBoxLayout:
    page.setObjectName("SettingsPage")
    layout = QVBoxLayout(page)
    layout.setContentsMargins(20, 16, 20, 16)
    layout.setSpacing(14)
    return layout


def clear_layout(layout: QLayout) -> None:
    """Take every item out of ``layout``; its widgets are hidden at once (``deleteLater`` alone
    leaves them painted until the next event loop turn) and deleted."""
    while layout.count():
        item = layout.takeAt(0)
        widget = item.widget()
        if widget is not None:
            widget.hide()
            widget.deleteLater()
