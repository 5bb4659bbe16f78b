"""The conversation database's schema, as ``user_version`` steps.

``ConversationStore`` runs the steps a database has not had yet, each in its own transaction
(``PRAGMA user_version`` is set inside it), so a database is always at one known version. Append
new steps at the end; never edit one that shipped.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: conversations and their messages
    """
    CREATE TABLE conversations (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
        content TEXT NOT NULL,
        created_at REAL NOT NULL,
        finish_reason TEXT NOT NULL DEFAULT '',
        UNIQUE (conversation_id, position)
    );
    CREATE INDEX messages_by_conversation ON messages(conversation_id, position);
    """,
    # 2: an answer cut by a quit, SIGTERM, a crash or kill -9 (written while it streams)
    """
    ALTER TABLE messages ADD COLUMN interrupted INTEGER NOT NULL DEFAULT 0;
    """,
    # 3: answer versions: a regenerate keeps the earlier answers at the same position; exactly one
    # version per position is shown (``active``) and it is what the next turn continues from.
    # SQLite cannot drop the old UNIQUE (conversation_id, position): the table is rebuilt.
    """
    CREATE TABLE messages_v3 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
        content TEXT NOT NULL,
        created_at REAL NOT NULL,
        finish_reason TEXT NOT NULL DEFAULT '',
        interrupted INTEGER NOT NULL DEFAULT 0,
        version INTEGER NOT NULL DEFAULT 0,
        active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
        UNIQUE (conversation_id, position, version)
    );
    INSERT INTO messages_v3 (id, conversation_id, position, role, content, created_at,
        finish_reason, interrupted)
        SELECT id, conversation_id, position, role, content, created_at, finish_reason, interrupted
        FROM messages;
    DROP TABLE messages;
    ALTER TABLE messages_v3 RENAME TO messages;
    CREATE INDEX messages_by_conversation ON messages(conversation_id, position);
    CREATE UNIQUE INDEX messages_shown ON messages(conversation_id, position) WHERE active = 1;
    """,
    # 4: what wrote each answer: the model's name and the generation settings (JSON), so an answer
    # is labelled with its own model, not the one loaded now
    """
    ALTER TABLE messages ADD COLUMN model TEXT NOT NULL DEFAULT '';
    ALTER TABLE messages ADD COLUMN generation TEXT NOT NULL DEFAULT '';
    """,
    # 5: a chat's own system prompt (NULL: the global one from the settings)
    """
    ALTER TABLE conversations ADD COLUMN system_prompt TEXT;
    """,
    # 6: full-text search over messages (FTS5, external content: the text is stored once), kept in
    # step by triggers (cascading deletes fire them too) and built here for existing messages
    """
    CREATE VIRTUAL TABLE messages_fts USING fts5(
        content, content='messages', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content);
    END;
    CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, content)
            VALUES ('delete', old.id, old.content);
    END;
    CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, content)
            VALUES ('delete', old.id, old.content);
        INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content);
    END;
    INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');
    """,
    # 7: pinned chats (kept at the top of the sidebar)
    """
    ALTER TABLE conversations ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;
    """,
)
