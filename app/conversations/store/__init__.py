"""The conversation database (SQLite, WAL): the store and the seams beside it.

- ``conversation_store``: ``ConversationStore``, the one owner of the database (open, migrate,
  every read and write of chats and messages on the GUI thread's connection).
- ``records``: the dataclasses it hands out; ``rows``: rows → records.
- ``migrations``: the schema as ``user_version`` steps.
- ``search``: titles and the FTS5 index, a function of a connection (runs on its own off the GUI
  thread).
- ``importing``: whole chats written in one transaction.

Views and controllers import from here, never from the modules inside.
"""

from app.conversations.store.conversation_store import (
    DATABASE_NAME,
    ConversationStore,
    default_database_path,
)
from app.conversations.store.migrations import MIGRATIONS
from app.conversations.store.records import (
    DEFAULT_TITLE,
    TITLE_LENGTH,
    Conversation,
    SearchHit,
    StorageError,
    StoredMessage,
    title_from_text,
)
from app.conversations.store.search import MATCH_END, MATCH_START, SNIPPET_TOKENS, fts_query

__all__ = [
    "DATABASE_NAME",
    "DEFAULT_TITLE",
    "MATCH_END",
    "MATCH_START",
    "MIGRATIONS",
    "SNIPPET_TOKENS",
    "TITLE_LENGTH",
    "Conversation",
    "ConversationStore",
    "SearchHit",
    "StorageError",
    "StoredMessage",
    "default_database_path",
    "fts_query",
    "title_from_text",
]
