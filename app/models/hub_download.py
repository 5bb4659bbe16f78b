"""Download a Core ML model package from the Hugging Face Hub: progress in bytes, cancel, resume.

A repository may hold several packages (``apple/mistral-coreml`` has one per quantization): the user
picks one, and only its files plus the tokenizer files beside it are fetched, at the commit the
listing was taken at. huggingface_hub's own ``hf_hub_download`` does the transfer (auth that stays
on the Hub, commit- and ETag-keyed bookkeeping, temporary files moved in when complete) into a
hidden staging folder ``.<name>.download`` in the models folder, which is renamed to ``<name>``
when every file is there. ``HF_ENDPOINT`` (or ``endpoint=``) points it at another server, as the
tests do. Every repository file name is checked before anything is written: a server may be hostile.

``download_files`` is the blocking, Qt-free part (tested against a local HTTP server);
``hub_jobs.HubDownload`` runs it on a thread and reports on the GUI thread. ``partial_downloads``
finds abandoned staging folders for the model library to offer their removal.
"""

from __future__ import annotations

import errno
import logging
import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from converter.options import HUB_ID
from engine import paths
from engine.package import metadata as meta

logger = logging.getLogger(__name__)

TOKENIZER_FILES = (meta.TOKENIZER_FILE, meta.TOKENIZER_CONFIG_FILE, "chat_template.jinja")
STAGING_NAME = re.compile(r"^\.[^/]+\.download$")  # staging_folder_for's shape
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
    if not HUB_ID.match(repo_id):
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
        if status in (401, 403):
            return HubError(
                f"the Hub refused access to {repo_id} (HTTP {status}): paste an access token "
                "that can read it (huggingface.co/settings/tokens)"
            )
        return HubError(
            f"the Hub answered HTTP {status} for {repo_id}: {str(error).splitlines()[0]}"
        )
    where = endpoint or "huggingface.co"
    return HubError(f"cannot reach {where} ({type(error).__name__}); check the network and retry")


def list_repo(
    repo_id: str, *, token: str = "", endpoint: str | None = None, revision: str | None = None
) -> RepoListing:
    """The repository's files with their sizes, at ``revision`` (a branch, tag or commit; the
    default branch when None). The listing's ``sha`` pins the download to that commit."""
    from huggingface_hub import HfApi

    repo_id = check_repo_id(repo_id)
    api = HfApi(endpoint=endpoint, token=token or False)
    try:
        info = api.model_info(repo_id, revision=revision, files_metadata=True)
    except Exception as error:  # huggingface_hub's HTTP errors and the transport's
        raise _hub_error(error, repo_id, endpoint) from error
    files = tuple(
        RepoFile(sibling.rfilename, int(sibling.size or 0)) for sibling in info.siblings or ()
    )
    return RepoListing(repo_id, info.sha or "main", files)


def check_repo_file_name(name: str) -> str:
    """``name`` if it is a plain relative path inside a repository, else ``HubError``.

    File names come from whatever server answers (a mirror, a proxy, ``HF_ENDPOINT``): a name such
    as ``X.mlpackage/../../../x`` would otherwise be written outside the models folder.
    """
    parts = name.split("/")
    if (
        not name
        or name.startswith("/")
        or "\\" in name
        or "\0" in name
        or any(part in ("", ".", "..") for part in parts)
        or PurePosixPath(name).is_absolute()
        or re.match(r"^[A-Za-z]:", name)
    ):
        raise HubError(
            f"refusing the repository file name {name!r}: expected a relative path inside the "
            "repository (no '..', no leading '/', no backslashes)"
        )
    return name


def target_inside(staging: Path, name: str) -> Path:
    """Where repository file ``name`` goes in ``staging``; ``HubError`` if it would land outside."""
    check_repo_file_name(name)
    root = staging.resolve()
    target = (root / name).resolve()
    if not target.is_relative_to(root) or target == root:
        raise HubError(f"refusing the repository file name {name!r}: it resolves outside {staging}")
    return target


def plan_files(listing: RepoListing, package: str | None = None) -> tuple[RepoFile, ...]:
    """The files to fetch: one package (``package``, or the only one) plus the tokenizer files.

    Every name is checked (``check_repo_file_name``) before anything is fetched.
    """
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
    check_repo_file_name(package)  # '//X.mlpackage' from absolute names would match no file
    parent = str(PurePosixPath(package).parent)
    wanted = []
    for file in listing.files:
        in_package = file.path.startswith(package + "/")
        beside = str(PurePosixPath(file.path).parent) == parent
        if in_package or (beside and PurePosixPath(file.path).name in TOKENIZER_FILES):
            check_repo_file_name(file.path)
            wanted.append(file)
    _check_has_manifest(tuple(wanted), listing.repo_id)
    return tuple(wanted)


def _manifests(files: tuple[RepoFile, ...]) -> list[str]:
    return [
        f.path
        for f in files
        if PurePosixPath(f.path).name == "Manifest.json"
        and PurePosixPath(f.path).parent.suffix == ".mlpackage"
    ]


def _check_has_manifest(files: tuple[RepoFile, ...], where: str) -> None:
    """A download without a package's Manifest.json would make a model folder that cannot open."""
    if not _manifests(files):
        packages = sorted({str(PurePosixPath(f.path).parent) for f in files} - {"."})
        expected = (
            f"{packages[0].split('.mlpackage')[0]}.mlpackage" if packages else "NAME.mlpackage"
        )
        raise HubError(
            f"expected {expected}/Manifest.json in {where}, found none: not a whole Core ML "
            "package, so nothing was downloaded"
        )


def model_folder_name(listing: RepoListing, package: str) -> str:
    return PurePosixPath(package).stem or listing.repo_id.split("/")[-1]


def staging_folder_for(destination: Path) -> Path:
    return destination.parent / f".{destination.name}.download"


def _make_progress_class(report: Callable[[int], None], cancel: threading.Event) -> type:
    from tqdm.auto import tqdm

    class ReportingProgress(tqdm):
        """huggingface_hub's progress bar hook: bytes to ``report``, and the place to cancel.

        Raising from ``update`` ends huggingface_hub's transfer; it then deletes its temporary file,
        so a cancelled file leaves nothing half-written behind.
        """

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


def _file_error(error: Exception, listing: RepoListing, file: RepoFile, endpoint: str | None):
    from huggingface_hub.errors import RemoteEntryNotFoundError

    if isinstance(error, RemoteEntryNotFoundError):
        return HubError(
            f"{listing.repo_id} has no file {file.path} at commit {listing.sha[:12]}; "
            "look the repository up again"
        )
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return HubError(f"the disk is full while writing {file.path}; free some space and retry")
    if isinstance(error, OSError) and "Consistency check failed" in str(error):
        return HubError(f"{file.path} arrived with the wrong size; it was discarded, retry")
    return _hub_error(error, listing.repo_id, endpoint)


def _remove_if_nothing_fetched(staging: Path) -> None:
    """A failed first attempt leaves no folder holding only huggingface_hub's bookkeeping."""
    bookkeeping = staging / ".cache"
    if not any(p.is_file() for p in staging.rglob("*") if bookkeeping not in p.parents):
        shutil.rmtree(staging, ignore_errors=True)


def _check_free_space(staging: Path, needed: int) -> None:
    """Refuse up front what cannot fit, rather than fail after gigabytes."""
    existing = next(p for p in (staging, *staging.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    if needed > free:
        raise HubError(
            f"not enough free space in {existing}: the download needs {needed:,} bytes, "
            f"{free:,} are free"
        )


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
    """Fetch ``files`` of ``listing`` at its commit into ``destination``, through huggingface_hub.

    Each file goes through ``hf_hub_download(local_dir=staging)``: huggingface_hub keys what it
    keeps by commit and ETag (no splicing of two revisions), strips the token from redirects off
    the Hub, writes each file to a temporary name and moves it in when complete. A later attempt
    keeps the files already complete (partial bytes of a cancelled file are discarded). When all
    are there, huggingface_hub's bookkeeping folder is removed and the staging folder renamed.
    Raises ``DownloadCancelled`` or ``HubError``.
    """
    from huggingface_hub import hf_hub_download

    cancel = cancel or threading.Event()
    if destination.exists():
        raise HubError(f"{destination} already exists; remove it or open it as a local model")
    staging = staging_folder_for(destination)
    targets = {file.path: target_inside(staging, file.path) for file in files}
    _check_free_space(staging, sum(f.size for f in files if not targets[f.path].is_file()))
    staging.mkdir(parents=True, exist_ok=True)
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
    completed = 0
    for file in files:
        if cancel.is_set():
            raise DownloadCancelled("download cancelled")
        state["file"] = file.path
        try:
            hf_hub_download(
                listing.repo_id,
                file.path,
                revision=listing.sha,
                local_dir=staging,
                token=token or False,
                endpoint=endpoint,
                tqdm_class=progress_class,
            )
        except DownloadCancelled:
            raise
        except Exception as error:  # huggingface_hub's HTTP errors, the transport's, OSError
            _remove_if_nothing_fetched(staging)
            raise _file_error(error, listing, file, endpoint) from error
        completed += file.size
        state["files_done"] += 1
        state["done"] = completed
        report(0, force=True)
    shutil.rmtree(staging / ".cache", ignore_errors=True)  # huggingface_hub's bookkeeping
    if not any((staging / name).is_file() for name in _manifests(files)):
        shutil.rmtree(staging, ignore_errors=True)
        raise HubError(
            f"expected a .mlpackage/Manifest.json among the files downloaded from "
            f"{listing.repo_id}, found none: the download was removed"
        )
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging.replace(destination)
    logger.info("downloaded %s at %s into %s", listing.repo_id, listing.sha, destination)
    return destination


@dataclass(frozen=True)
class PartialDownload:
    folder: Path
    size_bytes: int


def partial_downloads(
    models_folder: Path | None = None, *, keep: tuple[Path, ...] = ()
) -> list[PartialDownload]:
    """Abandoned downloads: our own ``.<name>.download`` staging folders in the models folder.

    ``keep`` names staging folders still in use (the running download). Only direct children of
    the models folder with that exact shape are ever offered, and links are never followed.
    """
    folder = models_folder or paths.models_dir()
    if not folder.is_dir():
        return []
    kept = {path.resolve() for path in keep}
    found = []
    for entry in sorted(folder.iterdir()):
        if not STAGING_NAME.match(entry.name) or entry.is_symlink() or not entry.is_dir():
            continue
        if entry.resolve() in kept:
            continue
        size = sum(
            path.lstat().st_size
            for path in entry.rglob("*")
            if path.is_file() and not path.is_symlink()
        )
        found.append(PartialDownload(entry, size))
    return found


def remove_partial_downloads(
    models_folder: Path | None = None, *, keep: tuple[Path, ...] = ()
) -> int:
    """Delete what ``partial_downloads`` finds; returns the bytes freed."""
    freed = 0
    for partial in partial_downloads(models_folder, keep=keep):
        shutil.rmtree(partial.folder)
        freed += partial.size_bytes
        logger.info("removed the abandoned download %s", partial.folder)
    return freed
