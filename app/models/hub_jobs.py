"""The Hub's lookups and downloads on a background thread, reported on the GUI thread: the Qt side
of ``hub_download`` (which does the blocking, Qt-free work)."""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from app.models.hub_download import (
    DownloadCancelled,
    DownloadOutcome,
    DownloadProgress,
    HubError,
    RepoListing,
    check_repo_id,
    download_files,
    list_repo,
    model_folder_name,
    plan_files,
    staging_folder_for,
)
from engine import paths


class _Bridge(QObject):
    """Emitted from the download thread; connected (queued) to ``HubDownload`` on the GUI thread."""

    progress = Signal(object)
    finished = Signal(object)


class HubDownload(QObject):
    """One download at a time on a background thread; signals arrive on the GUI thread."""

    progress = Signal(object)  # DownloadProgress
    finished = Signal(object)  # DownloadOutcome

    def __init__(self, parent: QObject | None = None, *, endpoint: str | None = None) -> None:
        super().__init__(parent)
        self.endpoint = endpoint
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self.staging: Path | None = None  # the running download's staging folder
        self._bridge = _Bridge()
        self._bridge.progress.connect(self._on_progress)
        self._bridge.finished.connect(self._on_finished)

    def is_running(self) -> bool:
        return self._thread is not None

    def start(
        self,
        listing: RepoListing,
        package: str,
        *,
        token: str = "",
        models_folder: Path | None = None,
    ) -> Path:
        """Start fetching ``package`` of ``listing``; returns the model folder it will create."""
        if self._thread is not None:
            raise RuntimeError("a download is already running; cancel it first")
        files = plan_files(listing, package)
        destination = (models_folder or paths.models_dir()) / model_folder_name(listing, package)
        if destination.exists():
            raise HubError(f"{destination} already exists; open it as a local model")
        self._cancel = threading.Event()
        self.staging = staging_folder_for(destination)
        bridge, cancel, endpoint = self._bridge, self._cancel, self.endpoint

        def run() -> None:
            try:
                folder = download_files(
                    listing,
                    files,
                    destination,
                    token=token,
                    endpoint=endpoint,
                    cancel=cancel,
                    on_progress=bridge.progress.emit,
                )
                outcome = DownloadOutcome("done", f"downloaded {listing.repo_id}", str(folder))
            except DownloadCancelled:
                outcome = DownloadOutcome(
                    "cancelled",
                    "download cancelled; starting it again resumes after the files already complete",
                )
            except HubError as error:
                outcome = DownloadOutcome("error", str(error))
            except OSError as error:
                outcome = DownloadOutcome("error", f"cannot write {destination}: {error.strerror}")
            bridge.finished.emit(outcome)

        self._thread = threading.Thread(target=run, name="hub-download", daemon=True)
        self._thread.start()
        return destination

    def cancel(self) -> None:
        self._cancel.set()

    @Slot(object)
    def _on_progress(self, progress: DownloadProgress) -> None:
        self.progress.emit(progress)

    @Slot(object)
    def _on_finished(self, outcome: DownloadOutcome) -> None:
        thread, self._thread = self._thread, None
        self.staging = None
        if thread is not None:
            thread.join(timeout=5)
        self.finished.emit(outcome)


class HubLookup(QObject):
    """Lists a repository on a background thread; ``finished`` carries a RepoListing or a HubError."""

    finished = Signal(object)

    def __init__(self, parent: QObject | None = None, *, endpoint: str | None = None) -> None:
        super().__init__(parent)
        self.endpoint = endpoint
        self._bridge = _Bridge()
        self._bridge.finished.connect(self._on_finished)
        self._running = False

    def is_running(self) -> bool:
        return self._running

    def start(self, repo_id: str, *, token: str = "") -> None:
        """Look ``repo_id`` up; a malformed id raises ``HubError`` at once (nothing starts)."""
        repo_id = check_repo_id(repo_id)
        bridge, endpoint = self._bridge, self.endpoint
        self._running = True

        def run() -> None:
            try:
                result: RepoListing | HubError = list_repo(repo_id, token=token, endpoint=endpoint)
            except HubError as error:
                result = error
            bridge.finished.emit(result)

        threading.Thread(target=run, name="hub-lookup", daemon=True).start()

    @Slot(object)
    def _on_finished(self, result: object) -> None:
        self._running = False
        self.finished.emit(result)
