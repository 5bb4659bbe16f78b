"""Download a Core ML model package from the Hugging Face Hub: progress in bytes, cancel, resume.

A repository may hold several packages (``apple/mistral-coreml`` has one per quantization): the user
picks one, and only its files plus the tokenizer files beside it are fetched. Files go into a hidden
folder ``.<name>.download`` in the models folder; each file is streamed into ``<file>.part`` with
``huggingface_hub``'s ``http_get`` (``Range`` requests, so a cancelled or broken download resumes
where it stopped) and renamed when complete; when every file is there the folder is renamed to
``<name>``. ``HF_ENDPOINT`` (or ``endpoint=``) points it at another server, as the tests do.

``download_files`` is the blocking, Qt-free part (tested against a local HTTP server); ``HubDownload``
runs it on a thread and reports on the GUI thread.
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from PySide6.QtCore import QObject, Signal, Slot

from engine import package_metadata as meta
from engine import paths

logger = logging.getLogger(__name__)

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
TOKENIZER_FILES = (meta.TOKENIZER_FILE, meta.TOKENIZER_CONFIG_FILE, "chat_template.jinja")
PART_SUFFIX = ".part"
PROGRESS_INTERVAL = 0.1  # seconds between progress reports


class HubError(Exception):
    """A download cannot go on; the message is one line that says what to do."""


class DownloadCancelled(Exception):
    pass


@dataclass(frozen=True)
class RepoFile:
    path: str
    size: int


@dataclass(frozen=True)
class RepoListing:
    repo_id: str
    sha: str
    files: tuple[RepoFile, ...]

    @property
    def packages(self) -> tuple[str, ...]:
        """The ``.mlpackage`` folders in the repository (any depth), sorted."""
        found = set()
        for file in self.files:
            parts = PurePosixPath(file.path).parts
            for index, part in enumerate(parts[:-1]):
                if part.endswith(".mlpackage"):
                    found.add("/".join(parts[: index + 1]))
                    break
        return tuple(sorted(found))


@dataclass(frozen=True)
class DownloadProgress:
    done_bytes: int
    total_bytes: int
    current_file: str
    files_done: int
    files_total: int


@dataclass(frozen=True)
class DownloadOutcome:
    status: Literal["done", "error", "cancelled"]
    message: str
    folder: str = ""  # the model folder, when done


def check_repo_id(repo_id: str) -> str:
    repo_id = repo_id.strip()
    if not REPO_ID.match(repo_id):
        raise HubError(f"expected a Hub repository id like apple/mistral-coreml, found {repo_id!r}")
    return repo_id


def _hub_error(error: Exception, repo_id: str, endpoint: str | None) -> HubError:
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(error, GatedRepoError):
        return HubError(
            f"{repo_id} is gated: accept its license on huggingface.co, then paste an access token"
        )
    if isinstance(error, RepositoryNotFoundError):
        return HubError(f"no repository {repo_id} on the Hub (a private one needs an access token)")
    if isinstance(error, RevisionNotFoundError):
        return HubError(f"{repo_id} has no such revision")
    if isinstance(error, HfHubHTTPError):
        status = error.response.status_code if error.response is not None else "?"
        return HubError(
            f"the Hub answered HTTP {status} for {repo_id}: {str(error).splitlines()[0]}"
        )
    where = endpoint or "huggingface.co"
    return HubError(f"cannot reach {where} ({type(error).__name__}); check the network and retry")


def list_repo(repo_id: str, *, token: str = "", endpoint: str | None = None) -> RepoListing:
    """The repository's files with their sizes, at its current commit."""
    from huggingface_hub import HfApi

    repo_id = check_repo_id(repo_id)
    api = HfApi(endpoint=endpoint, token=token or False)
    try:
        info = api.model_info(repo_id, files_metadata=True)
    except Exception as error:  # huggingface_hub's HTTP errors and the transport's
        raise _hub_error(error, repo_id, endpoint) from error
    files = tuple(
        RepoFile(sibling.rfilename, int(sibling.size or 0)) for sibling in info.siblings or ()
    )
    return RepoListing(repo_id, info.sha or "main", files)


def plan_files(listing: RepoListing, package: str | None = None) -> tuple[RepoFile, ...]:
    """The files to fetch: one package (``package``, or the only one) plus the tokenizer files."""
    packages = listing.packages
    if not packages:
        raise HubError(
            f"{listing.repo_id} holds no Core ML package (.mlpackage); to use a Hugging Face "
            "model, convert it in the Converter tab"
        )
    if package is None:
        if len(packages) > 1:
            raise HubError(
                f"{listing.repo_id} holds several packages; choose one of: {', '.join(packages)}"
            )
        package = packages[0]
    if package not in packages:
        raise HubError(
            f"{listing.repo_id} has no package {package!r} (it has {', '.join(packages)})"
        )
    parent = str(PurePosixPath(package).parent)
    wanted = []
    for file in listing.files:
        in_package = file.path.startswith(package + "/")
        beside = str(PurePosixPath(file.path).parent) == parent
        if in_package or (beside and PurePosixPath(file.path).name in TOKENIZER_FILES):
            wanted.append(file)
    return tuple(wanted)


def model_folder_name(listing: RepoListing, package: str) -> str:
    return PurePosixPath(package).stem or listing.repo_id.split("/")[-1]


def staging_folder_for(destination: Path) -> Path:
    return destination.parent / f".{destination.name}.download"


def _make_progress_class(report: Callable[[int], None], cancel: threading.Event) -> type:
    from tqdm.auto import tqdm

    class ReportingProgress(tqdm):
        """huggingface_hub's progress bar hook: bytes to ``report``, and the place to cancel."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            kwargs.pop("name", None)
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            if cancel.is_set():
                raise DownloadCancelled("download cancelled")
            report(int(n or 0))
            return None

    return ReportingProgress


def download_files(
    listing: RepoListing,
    files: tuple[RepoFile, ...],
    destination: Path,
    *,
    token: str = "",
    endpoint: str | None = None,
    cancel: threading.Event | None = None,
    on_progress: Callable[[DownloadProgress], None] | None = None,
) -> Path:
    """Fetch ``files`` of ``listing`` into ``destination`` (resuming a previous attempt).

    Raises ``DownloadCancelled`` (the partial files stay, for the next attempt) or ``HubError``.
    """
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    cancel = cancel or threading.Event()
    if destination.exists():
        raise HubError(f"{destination} already exists; remove it or open it as a local model")
    staging = staging_folder_for(destination)
    staging.mkdir(parents=True, exist_ok=True)
    endpoint = endpoint or constants.ENDPOINT
    total = sum(f.size for f in files)
    state = {"done": 0, "file": "", "files_done": 0, "last": 0.0}

    def report(delta: int, *, force: bool = False) -> None:
        state["done"] += delta
        now = time.monotonic()
        if on_progress and (force or now - state["last"] >= PROGRESS_INTERVAL):
            state["last"] = now
            on_progress(
                DownloadProgress(
                    state["done"], total, state["file"], state["files_done"], len(files)
                )
            )

    progress_class = _make_progress_class(report, cancel)
    headers = build_hf_headers(token=token or False)
    for file in files:
        if cancel.is_set():
            raise DownloadCancelled("download cancelled")
        target = staging / file.path
        partial = target.with_name(target.name + PART_SUFFIX)
        state["file"] = file.path
        if target.is_file() and target.stat().st_size == file.size:
            state["files_done"] += 1
            report(file.size, force=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        resume_size = partial.stat().st_size if partial.is_file() else 0
        if resume_size > file.size:
            partial.unlink()
            resume_size = 0
        report(resume_size, force=True)
        url = hf_hub_url(listing.repo_id, file.path, revision=listing.sha, endpoint=endpoint)
        try:
            metadata = get_hf_file_metadata(url, token=token or False, endpoint=endpoint)
            with partial.open("ab") as handle:
                http_get(
                    metadata.location,
                    handle,
                    resume_size=resume_size,
                    headers=headers,
                    expected_size=file.size or metadata.size,
                    displayed_filename=file.path,
                    tqdm_class=progress_class,
                )
        except DownloadCancelled:
            raise
        except Exception as error:  # huggingface_hub's HTTP errors, the transport's, OSError
            if isinstance(error, OSError) and "Consistency check failed" in str(error):
                partial.unlink(missing_ok=True)
                raise HubError(
                    f"{file.path} arrived with the wrong size; it was discarded, retry the download"
                ) from error
            raise _hub_error(error, listing.repo_id, endpoint) from error
        partial.replace(target)
        state["files_done"] += 1
        report(0, force=True)
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging.replace(destination)
    logger.info("downloaded %s into %s", listing.repo_id, destination)
    return destination


def discard_partial_download(destination: Path) -> None:
    shutil.rmtree(staging_folder_for(destination), ignore_errors=True)


# --- The Qt side ---------------------------------------------------------------------------------


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
                    "cancelled", "download cancelled; starting it again resumes where it stopped"
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
