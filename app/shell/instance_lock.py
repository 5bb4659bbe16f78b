"""One app instance per data folder: a ``QLockFile`` taken before the window is built.

Two instances on one data folder would interleave a conversation's turns in one SQLite file and
fight over the settings. The lock lives as long as the GUI runs. A lock left by a process that died
(crash, kill -9) does not block: QLockFile sees that its process is gone (same host). The stale
time is 0 because the lock is held for the whole session: a positive stale time would let a second
launch take the lock of a first instance that is simply running longer than that.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QLockFile, Qt
from PySide6.QtWidgets import QMessageBox

from engine import paths

logger = logging.getLogger(__name__)

LOCK_FILE_NAME = "coreml-chat.lock"


class InstanceLockError(Exception):
    """Another instance holds the data folder (or it cannot be locked); one line for the user."""


def acquire_instance_lock(folder: Path | None = None) -> QLockFile:
    """Lock ``folder`` (the data folder by default) for this process; keep the returned object
    alive for as long as the app runs. Raises ``InstanceLockError`` when it is taken."""
    folder = folder or paths.data_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InstanceLockError(f"cannot create the data folder {folder}: {error}") from error
    lock = QLockFile(str(folder / LOCK_FILE_NAME))
    lock.setStaleLockTime(0)
    if lock.tryLock(0):
        return lock
    if lock.error() == QLockFile.LockError.LockFailedError:
        pid, host, _app = lock.getLockInfo() or (0, "", "")
        raise InstanceLockError(
            f"coreml-chat is already running on the data folder {folder} (process {pid} on "
            f"{host or 'this computer'}); switch to that window, or quit it and start again"
        )
    raise InstanceLockError(
        f"cannot lock the data folder {folder} ({lock.error().name}); check its permissions"
    )


def tell_already_running(message: str, *, interactive: bool = True) -> None:
    """Say why this launch stops: in the log, and in a message box unless headless."""
    logger.error("%s", message)
    if interactive:
        box = QMessageBox(QMessageBox.Icon.Warning, "coreml-chat is already running", message)
        box.setTextFormat(Qt.TextFormat.PlainText)  # the message holds a folder name
        box.exec()
