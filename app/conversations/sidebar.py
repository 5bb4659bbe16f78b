"""The list of conversations: new, search, select, rename inline (double-click, F2 or the menu),
pin, delete; grouped by date (pinned chats first) when no search is shown.

From the keyboard: the arrow keys and Return open chats, Delete (or Backspace) asks to delete the
current one, F2 renames; in the search field ↓ moves to the results and Return opens the first
(once the search has found it), Esc clears it (instead of stopping an answer).
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QModelIndex, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QKeyEvent, QKeySequence, QPainter, QPainterPath
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QMenu,
    QMessageBox,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.conversations.conversation_list_model import (
    ConversationIdRole,
    ConversationListModel,
    GroupRole,
    MatchedMessageRole,
    PinnedRole,
    SnippetRole,
    SubtitleRole,
)
from app.conversations.search_snippet import matched_words, paint_snippet
from app.conversations.store.search import MAX_QUERY_CHARS
from app.ui.keyboard import claims_escape, with_shortcut
from app.ui.palette import current_palette

logger = logging.getLogger(__name__)

SIDEBAR_WIDTH = 250
OPEN_KEYS = (Qt.Key.Key_Return, Qt.Key.Key_Enter)
DELETE_KEYS = (Qt.Key.Key_Delete, Qt.Key.Key_Backspace)
GROUP_HEADER_HEIGHT = 28  # the band above a group's first row that names the group


class ConversationDelegate(QStyledItemDelegate):
    """Title and relative time on a rounded row; the selected row is highlighted softly. A
    group's first row carries the group's name in a band above it."""

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        height = 68 if index.data(SnippetRole) else 46
        return QSize(option.rect.width(), height + _header_height(index))

    def updateEditorGeometry(self, editor: Any, option: QStyleOptionViewItem, index: Any) -> None:
        """The inline rename field over the title, not over the group's name."""
        rect = QRect(option.rect).adjusted(10, _header_height(index) + 4, -10, 0)
        rect.setHeight(min(rect.height(), 28))
        editor.setGeometry(rect)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        colors = current_palette()
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        header = _header_height(index)
        if header:
            heading = QFont(option.font)
            heading.setPointSizeF(max(7.0, option.font.pointSizeF() - 1.5))
            heading.setWeight(QFont.Weight.DemiBold)
            painter.setFont(heading)
            painter.setPen(QColor(colors.text_tertiary))
            band = QRect(
                option.rect.left() + 16, option.rect.top(), option.rect.width() - 24, header
            )
            painter.drawText(
                band,
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom,
                str(index.data(GroupRole)),
            )
        rect = QRect(option.rect).adjusted(6, 2 + header, -6, -2)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        hovered = bool(option.state & QStyle.StateFlag.State_MouseOver)
        if selected or hovered:
            path = QPainterPath()
            path.addRoundedRect(rect, 8, 8)
            painter.fillPath(path, QColor(colors.selected if selected else colors.hover))
        title_font = QFont(option.font)
        title_font.setWeight(QFont.Weight.DemiBold if selected else QFont.Weight.Medium)
        painter.setFont(title_font)
        painter.setPen(QColor(colors.text))
        text_rect = rect.adjusted(10, 5, -10, -5)
        title = painter.fontMetrics().elidedText(
            str(index.data(Qt.ItemDataRole.DisplayRole) or ""),
            Qt.TextElideMode.ElideRight,
            text_rect.width(),
        )
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop, title)
        small = QFont(option.font)
        small.setPointSizeF(max(7.0, option.font.pointSizeF() - 1.5))
        painter.setFont(small)
        painter.setPen(QColor(colors.text_tertiary))
        snippet = index.data(SnippetRole)
        if snippet:  # a search hit: the matching message's words, the match highlighted
            top = painter.fontMetrics().height() + 4
            snippet_rect = text_rect.adjusted(0, top + 2, 0, 0)
            paint_snippet(
                painter, snippet_rect, snippet, font=small, color=QColor(colors.text_secondary)
            )
            painter.restore()
            return
        painter.drawText(
            text_rect,
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom,
            str(index.data(SubtitleRole) or ""),
        )
        painter.restore()


def _header_height(index: QModelIndex) -> int:
    return GROUP_HEADER_HEIGHT if index.data(GroupRole) else 0


class ConversationListView(QListView):
    """The list: moving with the keys opens the chat moved to; Return opens, Delete deletes."""

    openRequested = Signal(QModelIndex)
    deleteRequested = Signal(QModelIndex)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        current = self.currentIndex()
        if self.state() != QAbstractItemView.State.EditingState and current.isValid():
            if event.key() in OPEN_KEYS:
                self.openRequested.emit(current)
                return
            if event.key() in DELETE_KEYS and not event.modifiers():
                self.deleteRequested.emit(current)
                return
        super().keyPressEvent(event)
        moved_to = self.currentIndex()
        if moved_to.isValid() and moved_to != current:
            self.openRequested.emit(moved_to)


class SearchField(QLineEdit):
    """Esc clears the search (and a second Esc gives the focus back); it never stops an answer.
    ↓ and Return hand over to the results."""

    escapePressed = Signal()
    downPressed = Signal()
    openPressed = Signal()

    def event(self, event: Any) -> bool:
        if claims_escape(event):
            return True
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape and not event.modifiers():
            if self.text():
                self.clear()
            else:
                self.escapePressed.emit()
            return
        if event.key() == Qt.Key.Key_Down and not event.modifiers():
            self.downPressed.emit()
            return
        if event.key() in OPEN_KEYS and not event.modifiers():
            self.openPressed.emit()
            return
        super().keyPressEvent(event)


class Sidebar(QWidget):
    newRequested = Signal()
    conversationSelected = Signal(str)
    searchHitChosen = Signal(str, int, list)  # conversation id, matched message, matched words
    deleteRequested = Signal(str)
    settingsRequested = Signal()

    def __init__(self, model: ConversationListModel, parent: Any = None) -> None:
        super().__init__(parent)
        self.setObjectName("sidebar")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setMinimumWidth(200)
        self.resize(SIDEBAR_WIDTH, self.height())
        self.model = model
        self._selected: str | None = None  # kept while a search hides it; shown again after

        header = QHBoxLayout()
        header.setContentsMargins(12, 12, 8, 4)
        header.addWidget(QLabel("Chats", objectName="sidebarTitle"))
        header.addStretch(1)
        self.new_button = QToolButton(objectName="iconButton")
        self.new_button.setText("✎")
        self.new_button.setToolTip(with_shortcut("New chat", QKeySequence.StandardKey.New))
        self.new_button.setAccessibleName("New chat")
        self.new_button.clicked.connect(self.newRequested)
        header.addWidget(self.new_button)

        self.search = SearchField(objectName="searchField")
        self.search.setPlaceholderText("Search chats")
        self.search.setAccessibleName("Search chats")
        self.search.escapePressed.connect(lambda: self.list.setFocus())
        self.search.downPressed.connect(self._enter_results)
        self.search.openPressed.connect(self._open_first_result)
        self._open_when_found = False  # Return came before the search's hits
        self.search.setClearButtonEnabled(True)
        self.search.setMaxLength(MAX_QUERY_CHARS)  # what a search reads; a paste is cut here
        self.search.textChanged.connect(self._on_search)

        self.list = ConversationListView(objectName="conversationList")
        self.list.setAccessibleName("Chats")
        self.list.setModel(model)
        self.list.setItemDelegate(ConversationDelegate(self.list))
        self.list.setMouseTracking(True)
        self.list.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
        )
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._show_menu)
        self.list.clicked.connect(self._on_clicked)
        self.list.openRequested.connect(self._on_clicked)
        self.list.deleteRequested.connect(
            lambda index: self.confirm_delete(index.data(ConversationIdRole))
        )
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.empty_label = QLabel(
            "No chats yet", alignment=Qt.AlignmentFlag.AlignCenter, objectName="sidebarEmpty"
        )

        self.settings_button = QPushButton("⚙  Settings", objectName="sidebarFooterButton")
        self.settings_button.setToolTip(with_shortcut("Settings", "Ctrl+,"))
        self.settings_button.clicked.connect(self.settingsRequested)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 8)
        layout.setSpacing(6)
        layout.addLayout(header)
        search_row = QHBoxLayout()
        search_row.setContentsMargins(10, 0, 10, 4)
        search_row.addWidget(self.search)
        layout.addLayout(search_row)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.empty_label)
        footer = QHBoxLayout()
        footer.setContentsMargins(8, 0, 8, 0)
        footer.addWidget(self.settings_button)
        layout.addLayout(footer)
        model.modelReset.connect(self._update_empty)
        model.modelReset.connect(self._show_selected)  # a search's hits arrive later
        model.searchFinished.connect(self._on_search_finished)
        self._update_empty()

    def _update_empty(self) -> None:
        empty = self.model.rowCount() == 0
        self.empty_label.setText("No matches" if self.model.search_text else "No chats yet")
        self.empty_label.setVisible(empty)

    def _on_search(self, text: str) -> None:
        self._open_when_found = False
        self.model.set_search(text)

    def _enter_results(self) -> None:
        """↓ in the search field: the first result (or the current one) gets the focus, opened."""
        if self.model.rowCount() == 0:
            return
        index = self.list.currentIndex()
        if not index.isValid():
            index = self.model.index(0)
            self.list.setCurrentIndex(index)
            self._on_clicked(index)
        self.list.setFocus(Qt.FocusReason.OtherFocusReason)

    def _open_first_result(self) -> None:
        """Return in the search field: open the first result (when the search is still running,
        as soon as its hits arrive)."""
        if self.model.searching:
            self._open_when_found = True
            return
        if self.model.rowCount() == 0:
            return
        index = self.model.index(0)
        self.list.setCurrentIndex(index)
        self._on_clicked(index)
        self.list.setFocus(Qt.FocusReason.OtherFocusReason)

    def _on_search_finished(self, _text: str) -> None:
        if self._open_when_found:
            self._open_when_found = False
            self._open_first_result()

    def _on_clicked(self, index: QModelIndex) -> None:
        conversation_id = index.data(ConversationIdRole)
        if conversation_id:
            self._selected = conversation_id
            self.conversationSelected.emit(conversation_id)
            message_id = index.data(MatchedMessageRole)
            if message_id is not None:
                words = matched_words(index.data(SnippetRole) or "")
                self.searchHitChosen.emit(conversation_id, message_id, words)

    def selected_id(self) -> str | None:
        index = self.list.currentIndex()
        return index.data(ConversationIdRole) if index.isValid() else None

    def select(self, conversation_id: str | None) -> None:
        self._selected = conversation_id
        self._show_selected()

    def _show_selected(self) -> None:
        row = self.model.row_of(self._selected) if self._selected else -1
        if row < 0:
            self.list.clearSelection()
            self.list.setCurrentIndex(QModelIndex())
        else:
            self.list.setCurrentIndex(self.model.index(row))

    def refresh(self, *, current: str | None) -> None:
        self.model.refresh()
        self.select(current)

    def confirm_delete(self, conversation_id: str) -> None:
        row = self.model.row_of(conversation_id)
        title = self.model.conversation_at(row).title if row >= 0 else "this chat"
        answer = QMessageBox.question(
            self,
            "Delete chat",
            f"Delete “{title}”? This cannot be undone.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.deleteRequested.emit(conversation_id)

    def set_pinned(self, index: QModelIndex, pinned: bool) -> None:
        self.model.set_pinned(index.row(), pinned)

    def _show_menu(self, position: Any) -> None:
        index = self.list.indexAt(position)
        if not index.isValid():
            return
        conversation_id = index.data(ConversationIdRole)
        menu = QMenu(self)
        menu.addAction("Rename", lambda: self.list.edit(index))
        pinned = bool(index.data(PinnedRole))
        menu.addAction("Unpin" if pinned else "Pin", lambda: self.set_pinned(index, not pinned))
        menu.addSeparator()
        menu.addAction("Delete…", lambda: self.confirm_delete(conversation_id))
        menu.exec(self.list.viewport().mapToGlobal(position))
