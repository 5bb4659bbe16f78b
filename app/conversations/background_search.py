"""Searches off the GUI thread: each on a read-only connection of its own, the stale ones dropped.

The sidebar searches as the user types; a search of a large history (or a hostile query) must
never hold the window. Each ``start(text)`` runs ``store.search.search`` through a
``BackgroundCall`` on a connection of its own (WAL: it reads while the window writes), and
interrupts the search it replaces (``sqlite3.Connection.interrupt`` is safe from another thread).
Only the newest search's hits are delivered; an older one's result or error is dropped.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.conversations.store import search as searching
from app.conversations.store.conversation_store import connect
from app.conversations.store.records import SearchHit
from app.shell.background import BackgroundCall

logger = logging.getLogger(__name__)


class BackgroundSearch(QObject):
    """``start(text)``; ``finished(text, hits)`` for the newest search only."""

    finished = Signal(str, list)  # the searched text, its list[SearchHit]
    failed = Signal(str, str)  # the searched text, what went wrong (one line)

    def __init__(self, database: Path, parent: Any = None) -> None:
        super().__init__(parent)
        self._database = database
        self._generation = 0
        self._running: dict[int, BackgroundCall] = {}  # strong references while they run
        self._connections: dict[int, sqlite3.Connection] = {}
        self._lock = threading.Lock()

    @property
    def busy(self) -> bool:
        return bool(self._running)

    def start(self, text: str) -> None:
        self._generation += 1
        generation = self._generation
        self._interrupt_older(generation)
        call = BackgroundCall(lambda: self._search(generation, text), name="chat-search")
        call.succeeded.connect(lambda hits: self._deliver(generation, text, hits, None))
        call.failed.connect(lambda error: self._deliver(generation, text, None, error))
        self._running[generation] = call
        call.start()

    def cancel(self) -> None:
        """Drop whatever is running (a search that is no longer wanted)."""
        self._generation += 1
        self._interrupt_older(self._generation)

    def _search(self, generation: int, text: str) -> list[SearchHit]:
        db = connect(self._database, read_only=True)
        try:
            with self._lock:
                self._connections[generation] = db
            if generation != self._generation:
                return []  # replaced before it began
            return searching.search(db, text)
        finally:
            with self._lock:
                self._connections.pop(generation, None)
            db.close()

    def _interrupt_older(self, generation: int) -> None:
        with self._lock:
            for number, db in self._connections.items():
                if number < generation:
                    db.interrupt()

    def _deliver(
        self, generation: int, text: str, hits: list[SearchHit] | None, error: Any
    ) -> None:
        self._running.pop(generation, None)
        if generation != self._generation:
            logger.debug("dropping the stale search for %r", text)
            return
        if error is not None:
            logger.warning("searching for %r failed: %s", text, error)
            self.failed.emit(text, f"Search failed: {error}")
            return
        self.finished.emit(text, hits or [])
