"""Tokenizer files for a package that came without them (the Hub's ``apple/mistral-coreml`` is a
package alone).

They are fetched for the Hub id in the package's metadata (``co.huggingface.exporters.name``)
through huggingface_hub, with a token for gated repositories, into the app's cache folder
(``cache_dir()/tokenizers/<owner>--<name>``): ``tokenizer.json``, ``tokenizer_config.json`` and,
when the repository has one, ``chat_template.jinja`` (transformers 5 keeps the template there).
All of them come from one commit, and that commit is recorded beside the package
(``tokenizer_source.json``): the same files are fetched again after the cache is cleared, not
whatever the repository holds by then. A fetch goes to a temporary folder renamed into place when
every file is there, so a failed fetch leaves nothing behind.

Only an ``owner/name`` id is fetched for: our converter writes the folder's or the GGUF file's name
when the source was local, and a bare name (``Mistral-7B``) can be an unrelated Hub repository.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

from engine.package import metadata as meta
from engine.package.model import ModelLoadError
from engine.paths import cache_dir

logger = logging.getLogger(__name__)

FILES = (meta.TOKENIZER_FILE, meta.TOKENIZER_CONFIG_FILE)
CHAT_TEMPLATE_FILE = "chat_template.jinja"
SOURCE_RECORD = "tokenizer_source.json"  # beside the package: {"model_id": …, "revision": …}
_REVISION_FILE = ".revision"  # inside a cached folder: the commit its files came from
# A Hugging Face Hub repository id, owner/name.
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")

# What to do for a gated or private repository, by who asks: the app has a token field in
# Settings, the command line reads HF_TOKEN (huggingface_hub's own variable).
SETTINGS_TOKEN_HINT = "add an access token in Settings → Model"
ENV_TOKEN_HINT = "set HF_TOKEN to an access token"


def has_tokenizer_files(folder: Path) -> bool:
    return all((folder / name).is_file() for name in FILES)


def cached_tokenizer_folder(model_id: str) -> Path:
    """Where the fetched tokenizer files of ``model_id`` are kept."""
    return cache_dir() / "tokenizers" / model_id.replace("/", "--")


def hub_model_id(metadata: dict[str, str]) -> str | None:
    """The package's source model when it is a Hub id (owner/name) to fetch files for, else None."""
    model_id = metadata.get(meta.SOURCE_MODEL_ID, "").strip()
    if _REPO_ID.match(model_id) and not model_id.endswith((".gguf", ".safetensors", ".bin")):
        return model_id
    return None


def _check_model_id(metadata: dict[str, str], package: Path) -> str:
    model_id = metadata.get(meta.SOURCE_MODEL_ID, "").strip()
    if not model_id:
        raise ModelLoadError(
            f"{package.name} has no tokenizer.json/tokenizer_config.json beside it and its metadata "
            f"names no source model ({meta.SOURCE_MODEL_ID}) to fetch them for: put the tokenizer "
            "files in the model folder"
        )
    found = hub_model_id(metadata)
    if found is None:
        raise ModelLoadError(
            f"{package.name} has no tokenizer files beside it, and its source model {model_id!r} is "
            "not a Hugging Face model id (expected owner/name; a local folder's or file's name is "
            "not fetched): put tokenizer.json and tokenizer_config.json in the model folder"
        )
    return found


def tokenizer_folder(
    package: Path,
    metadata: dict[str, str],
    *,
    token: str | None = None,
    token_hint: str = SETTINGS_TOKEN_HINT,
    endpoint: str | None = None,
) -> Path:
    """The folder holding the tokenizer files: beside the package, or fetched and cached.

    ``token_hint`` says how to give a token where one is missing (it depends on who asks);
    ``endpoint`` replaces the Hub's address (a mirror, or a local stand-in in tests)."""
    package = Path(package)
    for folder in (package.parent, package):
        if has_tokenizer_files(folder):
            return folder
    model_id = _check_model_id(metadata, package)
    pinned = _recorded_revision(package, model_id)
    cached = cached_tokenizer_folder(model_id)
    cached_revision = _cached_revision(cached)
    if has_tokenizer_files(cached) and pinned in (None, cached_revision):
        if pinned is None and cached_revision is not None:
            _record_revision(package, model_id, cached_revision)
        return cached
    revision = fetch_tokenizer_files(
        model_id, cached, token=token, revision=pinned, token_hint=token_hint, endpoint=endpoint
    )
    if pinned is None:
        _record_revision(package, model_id, revision)
    return cached


def _record_path(package: Path) -> Path:
    return package.parent / SOURCE_RECORD


def _recorded_revision(package: Path, model_id: str) -> str | None:
    """The commit recorded beside the package for ``model_id``, or None (none, or unreadable)."""
    try:
        record = json.loads(_record_path(package).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("model_id") != model_id:
        return None
    revision = record.get("revision")
    return revision if isinstance(revision, str) and _COMMIT.match(revision) else None


def _record_revision(package: Path, model_id: str, revision: str) -> None:
    """Write the record beside the package (atomically); a read-only folder only loses the pin."""
    path = _record_path(package)
    text = json.dumps({"model_id": model_id, "revision": revision}, indent=2) + "\n"
    try:
        partial = path.with_name(path.name + f".partial-{os.getpid()}")
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    except OSError as error:
        logger.warning("could not record the tokenizer's revision beside %s: %s", package, error)


def _cached_revision(folder: Path) -> str | None:
    try:
        revision = (folder / _REVISION_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return revision if _COMMIT.match(revision) else None


def single_hub_log_lines() -> None:
    """huggingface_hub adds a stderr handler of its own to its logger and lets records propagate:
    once our logging is configured (a handler on the root logger), every retry warning showed
    twice. Its handler goes then; the records reach ours."""
    if not logging.getLogger().handlers:
        return
    library = logging.getLogger("huggingface_hub")
    for handler in list(library.handlers):
        if type(handler) is logging.StreamHandler:
            library.removeHandler(handler)


def network_errors() -> tuple[type[BaseException], ...]:
    """The transport errors of the HTTP client huggingface_hub uses (``httpx2`` in 2.x, ``httpx``
    before): a refused connection or a time-out is not an ``OSError`` there."""
    found: list[type[BaseException]] = []
    for module_name in ("httpx2", "httpx"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        error = getattr(module, "TransportError", None)
        if isinstance(error, type) and issubclass(error, BaseException):
            found.append(error)
    return tuple(found)


def _download(
    model_id: str,
    scratch: Path,
    *,
    token: str | None,
    revision: str | None,
    endpoint: str | None,
) -> tuple[Path, str]:
    """The tokenizer files of ``model_id`` in a folder of ``scratch`` (with the commit they came
    from written beside them): (that folder, the commit). huggingface_hub's errors pass through."""
    from huggingface_hub import HfApi, hf_hub_download

    info = HfApi(endpoint=endpoint).model_info(model_id, revision=revision, token=token)
    commit = revision or info.sha  # a pinned commit is one already
    if not commit or not _COMMIT.match(commit):
        raise ModelLoadError(f"the Hub did not say which commit of {model_id} it serves")
    present = {sibling.rfilename for sibling in info.siblings or ()}
    names = [*FILES, *((CHAT_TEMPLATE_FILE,) if CHAT_TEMPLATE_FILE in present else ())]
    ready = scratch / "ready"
    ready.mkdir()
    for name in names:
        logger.info("fetching %s of %s at %s", name, model_id, commit[:12])
        hf_hub_download(
            model_id,
            name,
            revision=commit,
            token=token,
            local_dir=str(scratch / "download"),
            endpoint=endpoint,
        )
        (scratch / "download" / name).replace(ready / name)  # its bookkeeping stays behind
    (ready / _REVISION_FILE).write_text(commit + "\n", encoding="utf-8")
    return ready, commit


def fetch_tokenizer_files(
    model_id: str,
    destination: Path,
    *,
    token: str | None = None,
    revision: str | None = None,
    token_hint: str = SETTINGS_TOKEN_HINT,
    endpoint: str | None = None,
) -> str:
    """Download the tokenizer files of ``model_id`` (at ``revision``, else its latest commit) into
    ``destination``, replacing what was there; returns the commit they came from."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    single_hub_log_lines()
    destination.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".fetch-", dir=destination.parent))
    try:
        ready, commit = _download(
            model_id, scratch, token=token, revision=revision, endpoint=endpoint
        )
        shutil.rmtree(destination, ignore_errors=True)
        os.replace(ready, destination)
        return commit
    except GatedRepoError as error:
        raise ModelLoadError(
            f"the tokenizer of {model_id} is gated: accept its license on huggingface.co and "
            f"{token_hint}"
        ) from error
    except RepositoryNotFoundError as error:
        raise ModelLoadError(
            f"no model {model_id} on the Hugging Face Hub (or it is private: {token_hint})"
        ) from error
    except RevisionNotFoundError as error:
        raise ModelLoadError(
            f"{model_id} no longer has the commit {revision} recorded in {SOURCE_RECORD}: delete "
            "that file to fetch the latest tokenizer, or put the tokenizer files beside the package"
        ) from error
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as error:
        raise ModelLoadError(
            f"cannot fetch the tokenizer of {model_id}: offline, and it is not in the cache; put "
            "tokenizer.json and tokenizer_config.json beside the package"
        ) from error
    except EntryNotFoundError as error:
        raise ModelLoadError(
            f"{model_id} has no {getattr(error, 'filename', None) or 'tokenizer file'}: put "
            "tokenizer.json and tokenizer_config.json beside the package"
        ) from error
    except network_errors() as error:
        raise ModelLoadError(
            f"cannot reach the Hugging Face Hub to fetch the tokenizer of {model_id} "
            f"({type(error).__name__}); check the connection (or the Hub endpoint in Settings), "
            "or put tokenizer.json and tokenizer_config.json beside the package"
        ) from error
    except (HfHubHTTPError, OSError) as error:
        raise ModelLoadError(
            f"cannot fetch the tokenizer of {model_id} ({type(error).__name__}: {error}); put "
            "tokenizer.json and tokenizer_config.json beside the package"
        ) from error
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
