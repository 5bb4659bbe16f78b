"""Search over the stored chats: titles (LIKE) and the shown messages (the FTS5 index).

A function of a connection, not a method of the store, so a search can run on a connection of its
own off the GUI thread (WAL lets it read while the window writes).

A query is bounded before SQLite sees it: its first MAX_QUERY_CHARS characters, control
characters and lone surrogates as spaces (FTS5 ends a query at NUL; SQLite cannot encode a lone
surrogate), each word once (any case), at most MAX_QUERY_WORDS words. FTS5's cost grows faster
than linearly with the phrases of a query (a 10,000-character query of 5,000 one-letter words took
83 s), so the bound is what keeps a search short, whatever is typed or pasted.
"""

from __future__ import annotations

import logging
import sqlite3
import unicodedata

from app.conversations.store.records import SearchHit
from app.conversations.store.rows import conversation_from_row

logger = logging.getLogger(__name__)

SNIPPET_TOKENS = 10  # words around a search match in its snippet
MATCH_START, MATCH_END = "\x02", "\x03"  # how a snippet marks the matched words
MAX_QUERY_CHARS = 200  # the search field holds no more; a longer text is cut here too
MAX_QUERY_WORDS = 16


def query_text(text: str) -> str:
    """``text`` as searched: its first MAX_QUERY_CHARS characters, control characters and lone
    surrogates replaced by spaces."""
    return "".join(
        " " if unicodedata.category(c) in ("Cc", "Cs") else c for c in text[:MAX_QUERY_CHARS]
    )


def query_words(text: str) -> list[str]:
    """The distinct words of ``query_text(text)`` (any case), at most MAX_QUERY_WORDS."""
    words: dict[str, str] = {}
    for word in query_text(text).split():
        if word.strip('"'):
            words.setdefault(word.casefold(), word)
        if len(words) == MAX_QUERY_WORDS:
            break
    return list(words.values())


def fts_query(text: str) -> str:
    """The user's words as an FTS5 query: each word a quoted prefix, all of them required (no
    FTS syntax from the user is interpreted: quotes are doubled inside each phrase)."""
    return " ".join('"' + word.replace('"', '""') + '"*' for word in query_words(text))


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
    pattern = "%" + _escape_like(query_text(text).strip()) + "%"
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
