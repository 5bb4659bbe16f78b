"""The database's health at start-up, and the two ways on from a damaged one.

``check_database`` runs ``PRAGMA quick_check`` (seconds at most: it reads every page once,
without checking that indexes match their tables) on a read-only connection. A damaged file is
never written to: both remedies first rename it (with its -wal and -shm, which hold committed
data) to ``<name>.damaged-<time>``, byte for byte as it was, then
- ``rebuild_database`` copies every chat and message that can still be read from a scratch copy
  into a new database (whose full-text index is built anew from them), or
- ``start_new_database`` leaves a new, empty database in its place.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from app.conversations.store.conversation_store import ConversationStore, connect

logger = logging.getLogger(__name__)

COMPANIONS = ("", "-wal", "-shm")
MAX_PROBES = 2_000_000  # rows tried one by one past a damaged page (each a b-tree lookup)


@dataclass(frozen=True)
class DatabaseHealth:
    path: Path
    problems: tuple[str, ...]  # quick_check's findings (empty: healthy)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Recovery:
    kept: Path  # the damaged file, renamed, as it was
    conversations: int  # what the new database holds
    messages: int
    lost_rows: int  # rows that could not be read


def check_database(path: Path) -> DatabaseHealth:
    """``PRAGMA quick_check`` on ``path`` (a missing file is healthy: it will be created).

    Nothing is created beside the file: without a -wal the file is read alone (immutable); with
    one (after a crash; it holds committed data) a scratch copy of both is checked, since
    reading a WAL database needs its -shm, which may be missing."""
    if not path.exists():
        return DatabaseHealth(path, ())
    if not path.with_name(path.name + "-wal").exists():
        return _quick_check(path.resolve().as_uri() + "?immutable=1", path)
    with tempfile.TemporaryDirectory(prefix="coreml-chat-check-") as scratch:
        copy = _scratch_copy(path, Path(scratch))
        return _quick_check(str(copy), path)


def _quick_check(target: str, path: Path) -> DatabaseHealth:
    try:
        db = sqlite3.connect(target, uri=target.startswith("file:"))
        try:
            rows = db.execute("PRAGMA quick_check").fetchall()
        finally:
            db.close()
    except sqlite3.DatabaseError as error:  # quick_check itself stops at some damage
        return DatabaseHealth(path, (str(error),))
    return DatabaseHealth(path, tuple(str(row[0]) for row in rows if row[0] != "ok"))


def _scratch_copy(path: Path, folder: Path) -> Path:
    """``path`` and its -wal/-shm copied into ``folder`` (SQLite may write while reading)."""
    copy = folder / path.name
    for companion in COMPANIONS:
        source = path.with_name(path.name + companion)
        if source.exists():
            shutil.copyfile(source, copy.with_name(copy.name + companion))
    return copy


def keep_damaged(path: Path) -> Path:
    """Rename ``path`` and its companions to ``<name>.damaged-<time>``; the kept path."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    kept = path.with_name(f"{path.name}.damaged-{stamp}")
    number = 1
    while kept.exists():
        number += 1
        kept = path.with_name(f"{path.name}.damaged-{stamp}-{number}")
    for companion in COMPANIONS:
        source = path.with_name(path.name + companion)
        if source.exists():
            source.rename(kept.with_name(kept.name + companion))
    logger.warning("kept the damaged conversation database as %s", kept)
    return kept


def start_new_database(path: Path) -> Path:
    """Keep the damaged file aside (renamed) and leave ``path`` free for a new database."""
    return keep_damaged(path)


def rebuild_database(path: Path) -> Recovery:
    """Keep the damaged file aside, then copy what can be read into a new database at ``path``."""
    kept = keep_damaged(path)
    with tempfile.TemporaryDirectory(prefix="coreml-chat-recover-") as scratch:
        copy = _scratch_copy(kept, Path(scratch))
        old = sqlite3.connect(str(copy), isolation_level=None)
        old.row_factory = sqlite3.Row
        store = ConversationStore(path)  # a new database at the current schema
        new = connect(path)
        try:
            conversations, lost_conversations = _salvage(old, "conversations")
            messages, lost_messages = _salvage(old, "messages")
            columns = _columns(new, "conversations")
            message_columns = _columns(new, "messages")
            new.execute("BEGIN IMMEDIATE")
            for row in conversations:
                _insert(new, "conversations", columns, row)
            known = {row["id"] for row in conversations}
            kept_messages = 0
            for row in messages:
                if row["conversation_id"] in known:
                    kept_messages += _insert(new, "messages", message_columns, row)
            new.execute("COMMIT")
        finally:
            new.close()
            store.close()
            old.close()
    lost = lost_conversations + lost_messages + len(messages) - kept_messages
    logger.warning(
        "rebuilt %s: %d chats and %d messages kept, %d rows unreadable",
        path,
        len(conversations),
        kept_messages,
        lost,
    )
    return Recovery(kept, len(conversations), kept_messages, lost)


def _columns(db: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


def _insert(db: sqlite3.Connection, table: str, columns: list[str], row: sqlite3.Row) -> int:
    present = set(row.keys())
    names = [name for name in columns if name in present]
    marks = ", ".join("?" * len(names))
    try:
        db.execute(
            f"INSERT OR IGNORE INTO {table} ({', '.join(names)}) VALUES ({marks})",
            [row[name] for name in names],
        )
    except sqlite3.Error as error:  # a row whose values the schema refuses: it stays in the copy
        logger.warning("%s row not kept: %s", table, error)
        return 0
    return 1


def _salvage(db: sqlite3.Connection, table: str) -> tuple[list[sqlite3.Row], int]:
    """Every readable row of ``table``: all at once, or row by row past damaged pages."""
    try:
        return db.execute(f"SELECT rowid AS _rowid, * FROM {table}").fetchall(), 0
    except sqlite3.DatabaseError as error:
        logger.warning("reading %s stopped (%s); trying its rows one by one", table, error)
    try:
        last = db.execute(f"SELECT max(rowid) FROM {table}").fetchone()[0] or 0
    except sqlite3.DatabaseError:
        return [], 0
    rows: list[sqlite3.Row] = []
    lost = 0
    for rowid in range(1, min(last, MAX_PROBES) + 1):
        try:
            row = db.execute(
                f"SELECT rowid AS _rowid, * FROM {table} WHERE rowid = ?", (rowid,)
            ).fetchone()
        except sqlite3.DatabaseError:
            lost += 1
            continue
        if row is not None:
            rows.append(row)
    return rows, lost
