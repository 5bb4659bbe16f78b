"""The sidebar's item model: conversations from the store, most recent first, with a search filter.

Without a search the rows are grouped: pinned chats first, then Today, Yesterday, Previous 7
Days, Previous 30 Days and older chats by month (``GroupRole`` holds a group's name on its first
row; the delegate draws it above that row, so every row is a chat and the keys move over chats
only). A search runs off the GUI thread (``BackgroundSearch``); the rows change when its hits
arrive (``searchFinished``), and a search replaced before it ends is dropped.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt, Signal

from app.conversations.background_search import BackgroundSearch
from app.conversations.store import Conversation, ConversationStore, SearchHit

logger = logging.getLogger(__name__)

ConversationIdRole = Qt.ItemDataRole.UserRole + 1
UpdatedAtRole = Qt.ItemDataRole.UserRole + 2
SubtitleRole = Qt.ItemDataRole.UserRole + 3
SnippetRole = Qt.ItemDataRole.UserRole + 4  # a search hit's snippet ("" without a search)
MatchedMessageRole = Qt.ItemDataRole.UserRole + 5  # the message a search matched, or None
GroupRole = Qt.ItemDataRole.UserRole + 6  # the group this row starts ("" inside a group)
PinnedRole = Qt.ItemDataRole.UserRole + 7

PINNED = "Pinned"


def date_group(timestamp: float, *, now: float) -> str:
    """The sidebar group of a chat last updated at ``timestamp`` (local calendar days): Today,
    Yesterday, Previous 7 Days, Previous 30 Days, else its month ("March 2026")."""
    today = datetime.datetime.fromtimestamp(now).date()
    try:
        day = datetime.datetime.fromtimestamp(timestamp).date()
    except (OverflowError, OSError, ValueError):
        return "Earlier"
    days = (today - day).days
    if days <= 0:
        return "Today"
    if days == 1:
        return "Yesterday"
    if days <= 7:
        return "Previous 7 Days"
    if days <= 30:
        return "Previous 30 Days"
    return day.strftime("%B %Y")


def relative_time(timestamp: float, *, now: float | None = None) -> str:
    """ "just now", "5 min ago", "3 h ago", "yesterday", or the date."""
    now = time.time() if now is None else now
    seconds = max(0.0, now - timestamp)
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    if seconds < 2 * 86400:
        return "yesterday"
    return time.strftime("%d %b %Y", time.localtime(timestamp))


class ConversationListModel(QAbstractListModel):
    """Rows are ``Conversation`` dataclasses; ``set_search`` filters by title and message text."""

    searchFinished = Signal(str)  # the text whose hits are now the rows
    searchFailed = Signal(str)  # one line for the window

    def __init__(
        self,
        store: ConversationStore,
        parent: Any = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(parent)
        self._store = store
        self._clock = clock
        self._search = ""
        self._rows: list[Conversation] = []
        self._groups: list[str] = []  # per row: the group it starts, or ""
        self._hits: dict[str, SearchHit] = {}
        self._searcher = BackgroundSearch(store.path, self)
        self._searcher.finished.connect(self._show_hits)
        self._searcher.failed.connect(lambda _text, message: self.searchFailed.emit(message))
        self.refresh()

    @property
    def searching(self) -> bool:
        """A search is running; the rows are still the previous search's."""
        return self._searcher.busy

    @property
    def search_text(self) -> str:
        return self._search

    def set_search(self, text: str) -> None:
        if text != self._search:
            self._search = text
            self.refresh()

    def refresh(self) -> None:
        """The rows again from the store: at once without a search, when its hits arrive with."""
        if self._search.strip():
            self._searcher.start(self._search)
            return
        self._searcher.cancel()
        self.beginResetModel()
        self._hits = {}
        conversations = self._store.conversations()
        self._rows = [c for c in conversations if c.pinned] + [
            c for c in conversations if not c.pinned
        ]
        self._groups = self._group_starts(self._rows)
        self.endResetModel()

    def _group_starts(self, rows: list[Conversation]) -> list[str]:
        now = self._clock()
        by_day: dict[datetime.date, str] = {}  # strftime per row cost 0.7 s for 50,000 chats
        starts, previous = [], None
        for conversation in rows:
            if conversation.pinned:
                group = PINNED
            else:
                try:
                    day = datetime.date.fromtimestamp(conversation.updated_at)
                except (OverflowError, OSError, ValueError):
                    day = datetime.date.min
                group = by_day.get(day) or by_day.setdefault(
                    day, date_group(conversation.updated_at, now=now)
                )
            starts.append(group if group != previous else "")
            previous = group
        return starts

    def set_pinned(self, row: int, pinned: bool) -> None:
        """Pin the chat at ``row`` to the top (or unpin it); the rows are regrouped."""
        self._store.set_pinned(self._rows[row].id, pinned)
        self.refresh()

    def _show_hits(self, text: str, hits: list[SearchHit]) -> None:
        if text != self._search:
            return  # the field changed meanwhile; its own search is on its way
        self.beginResetModel()
        self._hits = {hit.conversation.id: hit for hit in hits}
        self._rows = [hit.conversation for hit in hits]
        self._groups = [""] * len(self._rows)  # hits are ranked, not grouped
        self.endResetModel()
        self.searchFinished.emit(text)

    def conversation_at(self, row: int) -> Conversation:
        return self._rows[row]

    def row_of(self, conversation_id: str) -> int:
        """The row showing ``conversation_id``, or -1 when it is filtered out or unknown."""
        for row, conversation in enumerate(self._rows):
            if conversation.id == conversation_id:
                return row
        return -1

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = 0) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        conversation = self._rows[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            return conversation.title
        if role == Qt.ItemDataRole.ToolTipRole:
            return conversation.title
        if role == ConversationIdRole:
            return conversation.id
        if role == UpdatedAtRole:
            return conversation.updated_at
        if role == SubtitleRole:
            return relative_time(conversation.updated_at, now=self._clock())
        if role == GroupRole:
            return self._groups[index.row()] if index.row() < len(self._groups) else ""
        if role == PinnedRole:
            return conversation.pinned
        if role in (SnippetRole, MatchedMessageRole):
            hit = self._hits.get(conversation.id)
            if role == SnippetRole:
                return hit.snippet if hit else ""
            return hit.message_id if hit else None
        return None

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        base = super().flags(index)
        return base | Qt.ItemFlag.ItemIsEditable if index.isValid() else base

    def setData(
        self, index: QModelIndex | QPersistentModelIndex, value: Any, role: int = 2
    ) -> bool:
        if role != Qt.ItemDataRole.EditRole or not index.isValid():
            return False
        title = " ".join(str(value).split())
        if not title:
            return False
        conversation = self._rows[index.row()]
        self._store.rename_conversation(conversation.id, title)
        self._rows[index.row()] = replace(conversation, title=title)
        self.dataChanged.emit(index, index, [Qt.ItemDataRole.DisplayRole])
        return True
