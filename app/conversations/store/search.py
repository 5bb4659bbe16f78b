"""Search over the stored chats: titles (LIKE) and the shown messages (the FTS5 index).

A function of a connection, not a method of the store, so a search can run on a connection of its
own off the GUI thread (WAL lets it read while the window writes).
"""

from __future__ import annotations

import logging
import sqlite3

from app.conversations.store.records import SearchHit
from app.conversations.store.rows import conversation_from_row

logger = logging.getLogger(__name__)

SNIPPET_TOKENS = 10  # words around a search match in its snippet
MATCH_START, MATCH_END = "\x02", "\x03"  # how a snippet marks the matched words


def fts_query(text: str) -> str:
    """The user's words as an FTS5 query: each word a quoted prefix, all of them required (no
    FTS syntax from the user is interpreted: quotes are doubled inside each phrase)."""
    words = [word.replace('"', '""') for word in text.split()]
    return " ".join(f'"{word}"*' for word in words if word.strip('"'))


def search(
    db: sqlite3.Connection, text: str, *, snippet_tokens: int = SNIPPET_TOKENS
) -> list[SearchHit]:
    """Chats whose title contains ``text`` or whose shown messages hold every word of it
    (word prefixes, any case or accent; the FTS5 index), most recently updated first; each
    with its best matching message and a snippet around the match."""
    query = fts_query(text)
    if not query:
        return []
    best: dict[str, tuple[int, str]] = {}
    rows = db.execute(
        "SELECT m.conversation_id, m.id, snippet(messages_fts, 0, char(2), char(3), '…', ?)"
        " AS snippet FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid"
        " WHERE messages_fts MATCH ? AND m.active = 1 ORDER BY bm25(messages_fts)",
        (snippet_tokens, query),
    ).fetchall()
    for row in rows:
        best.setdefault(row["conversation_id"], (row["id"], row["snippet"]))
    pattern = "%" + _escape_like(text.strip()) + "%"
    hits = []
    for row in db.execute(
        "SELECT *, title LIKE ? ESCAPE '\\' AS title_matches FROM conversations"
        " ORDER BY updated_at DESC",
        (pattern,),
    ).fetchall():
        found = best.get(row["id"])
        if found is not None:
            hits.append(SearchHit(conversation_from_row(row), found[0], " ".join(found[1].split())))
        elif row["title_matches"]:
            hits.append(SearchHit(conversation_from_row(row), None, ""))
    return hits


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
