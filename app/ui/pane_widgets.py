"""Small building blocks shared by the Settings dialog's panes: cards, form rows, the style sheet.

Layout and style only; the panes' behaviour lives in their controllers.
"""

from __future__ import annotations

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

ACCENT = "#0a84ff"
ERROR_COLOR = "#d70015"
SUCCESS_COLOR = "#248a3d"

STYLE_SHEET = f"""
QDialog#SettingsDialog {{ background: #f5f5f7; }}
QWidget#SettingsPage {{ background: transparent; }}
QFrame#Card {{
    background: #ffffff;
    border: 1px solid #e3e3e8;
    border-radius: 10px;
}}
QLabel#CardTitle {{ font-weight: 600; font-size: 13px; color: #1d1d1f; }}
QLabel#CardSubtitle, QLabel#Hint {{ color: #6e6e73; font-size: 12px; }}
QLabel#ModelName {{ font-size: 17px; font-weight: 600; color: #1d1d1f; }}
QLabel#FieldLabel {{ color: #3a3a3c; }}
QLabel#ErrorText {{ color: {ERROR_COLOR}; }}
QLabel#SuccessText {{ color: {SUCCESS_COLOR}; }}
QLabel#Badge {{
    background: #e8f0fe; color: #1a56c4; border-radius: 8px; padding: 2px 8px; font-size: 11px;
}}
QToolButton#SegmentButton {{
    border: 1px solid #d1d1d6; background: #ffffff; padding: 5px 18px; color: #1d1d1f;
    font-size: 13px;
}}
QToolButton#SegmentButton:checked {{ background: {ACCENT}; color: white; border-color: {ACCENT}; }}
QToolButton#SegmentButton[segment="first"] {{
    border-top-left-radius: 7px; border-bottom-left-radius: 7px;
}}
QToolButton#SegmentButton[segment="last"] {{
    border-top-right-radius: 7px; border-bottom-right-radius: 7px;
}}
QPushButton {{
    background: #ffffff; border: 1px solid #d1d1d6; border-radius: 6px; padding: 5px 14px;
    color: #1d1d1f;
}}
QPushButton:hover {{ background: #f2f2f7; }}
QPushButton:disabled {{ color: #aeaeb2; border-color: #e5e5ea; }}
QPushButton#PrimaryButton {{ background: {ACCENT}; color: white; border-color: {ACCENT}; }}
QPushButton#PrimaryButton:hover {{ background: #0071e3; }}
QPushButton#PrimaryButton:disabled {{ background: #a9cdfb; border-color: #a9cdfb; }}
QPushButton#DestructiveButton {{ color: {ERROR_COLOR}; }}
QLineEdit, QPlainTextEdit {{
    background: #ffffff; border: 1px solid #d1d1d6; border-radius: 6px; padding: 4px 6px;
    selection-background-color: {ACCENT};
}}
QLineEdit:focus, QPlainTextEdit:focus {{ border: 1px solid {ACCENT}; }}
QLineEdit:disabled {{ color: #8e8e93; background: #fafafa; }}
QScrollArea#PageScroll {{ background: transparent; border: none; }}
QScrollArea#PageScroll > QWidget > QWidget {{ background: transparent; }}
QPlainTextEdit#LogView {{ background: #1e1e1e; color: #d4d4d4; border-radius: 8px; }}
QProgressBar {{
    background: #e5e5ea; border: none; border-radius: 4px; height: 8px; max-height: 8px;
    text-align: center; color: transparent;
}}
QProgressBar::chunk {{ background: {ACCENT}; border-radius: 4px; }}
QProgressBar#StageBar {{ height: 5px; max-height: 5px; border-radius: 2px; }}
QProgressBar#StageBar::chunk {{ border-radius: 2px; }}
QListWidget {{ background: #ffffff; border: 1px solid #e3e3e8; border-radius: 8px; }}
QListWidget::item {{ padding: 6px; }}
QListWidget::item:selected {{ background: #e8f0fe; color: #1d1d1f; }}
"""


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
    """``page`` in a frameless vertical scroll area (small screens, long forms)."""
    area = QScrollArea()
    area.setObjectName("PageScroll")
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setWidget(page)
    return area


def page_layout(page: QWidget) -> QVBoxLayout:
    page.setObjectName("SettingsPage")
    layout = QVBoxLayout(page)
    layout.setContentsMargins(20, 16, 20, 16)
    layout.setSpacing(14)
    return layout
