"""The conversation database (with its -wal and -shm files) and the log file hold conversations:
created 0600 (readable by the user alone), whatever the umask."""

from __future__ import annotations

import logging
import os
import stat
import sys
from pathlib import Path

import pytest

from app.conversations.store import ConversationStore
from app.main import log_handlers


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def open_umask():
    previous = os.umask(0o022)  # the usual umask: files 0644 unless made private
    yield
    os.umask(previous)


def test_the_database_and_its_wal_files_are_private(tmp_path):
    path = tmp_path / "conversations.sqlite3"
    store = ConversationStore(path)
    conversation = store.create_conversation("a secret")
    store.append_message(conversation.id, "user", "my bank password is …")
    files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
    assert all(f.exists() for f in files)
    assert [_mode(f) for f in files] == [0o600] * 3
    store.close()


def test_an_older_readable_database_is_made_private(tmp_path):
    path = tmp_path / "conversations.sqlite3"
    ConversationStore(path).close()
    for name in (path.name, path.name + "-wal"):
        target = path.with_name(name)
        target.touch()
        target.chmod(0o644)
    ConversationStore(path).close()
    assert _mode(path) == 0o600


def test_the_log_file_is_private_and_on_macos_in_library_logs(tmp_path, monkeypatch):
    monkeypatch.delenv("COREML_CHAT_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(sys, "platform", "darwin")
    handlers, log_file = log_handlers()
    try:
        assert log_file == tmp_path / "Library" / "Logs" / "coreml-chat" / "coreml-chat.log"
        (file_handler,) = [h for h in handlers if isinstance(h, logging.FileHandler)]
        file_handler.emit(logging.makeLogRecord({"msg": "an answer about my health"}))
        assert _mode(log_file) == 0o600
        file_handler.doRollover()  # the next file too
        file_handler.emit(logging.makeLogRecord({"msg": "more"}))
        assert _mode(log_file) == 0o600
        assert _mode(log_file.with_name("coreml-chat.log.1")) == 0o600
    finally:
        for handler in handlers:
            if isinstance(handler, logging.FileHandler):
                handler.close()
