"""Tokenizer files for a package that came without them (the blog's model is downloaded alone).

They are fetched for the model id in the package's metadata (``co.huggingface.exporters.name``)
through huggingface_hub, with a token for gated repositories, into the app's cache folder
(``cache_dir()/tokenizers/<owner>--<name>``). A fetch goes to a temporary folder renamed into place
when both files are there, so a failed fetch leaves nothing behind.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from pathlib import Path

from engine import package_metadata as meta
from engine.model_package import ModelLoadError
from engine.paths import cache_dir

logger = logging.getLogger(__name__)

FILES = (meta.TOKENIZER_FILE, meta.TOKENIZER_CONFIG_FILE)
# A Hugging Face Hub repository id: "name" or "owner/name".
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def has_tokenizer_files(folder: Path) -> bool:
    return all((folder / name).is_file() for name in FILES)


def cached_tokenizer_folder(model_id: str) -> Path:
    """Where the fetched tokenizer files of ``model_id`` are kept."""
    return cache_dir() / "tokenizers" / model_id.replace("/", "--")


def _check_model_id(model_id: str, package: Path) -> None:
    if not model_id:
        raise ModelLoadError(
            f"{package.name} has no tokenizer.json/tokenizer_config.json beside it and its metadata "
            f"names no source model ({meta.SOURCE_MODEL_ID}) to fetch them for: put the tokenizer "
            "files in the model folder"
        )
    if not _REPO_ID.match(model_id) or model_id.endswith((".gguf", ".safetensors", ".bin")):
        raise ModelLoadError(
            f"{package.name} has no tokenizer files beside it, and its source model {model_id!r} is "
            "not a Hugging Face model id (expected owner/name): put tokenizer.json and "
            "tokenizer_config.json in the model folder"
        )


def tokenizer_folder(package: Path, metadata: dict[str, str], *, token: str | None = None) -> Path:
    """The folder holding the tokenizer files: beside the package, or fetched and cached."""
    package = Path(package)
    for folder in (package.parent, package):
        if has_tokenizer_files(folder):
            return folder
    model_id = metadata.get(meta.SOURCE_MODEL_ID, "").strip()
    _check_model_id(model_id, package)
    cached = cached_tokenizer_folder(model_id)
    if has_tokenizer_files(cached):
        return cached
    return fetch_tokenizer_files(model_id, cached, token=token)


def fetch_tokenizer_files(model_id: str, destination: Path, *, token: str | None = None) -> Path:
    """Download tokenizer.json and tokenizer_config.json of ``model_id`` into ``destination``."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
    )

    destination.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".fetch-", dir=destination.parent))
    try:
        for name in FILES:
            logger.info("fetching %s of %s", name, model_id)
            hf_hub_download(model_id, name, token=token, local_dir=str(scratch))
        for name in FILES:  # huggingface_hub's own bookkeeping stays behind
            (scratch / name).replace(_ready(destination) / name)
        return destination
    except GatedRepoError as error:
        raise ModelLoadError(
            f"the tokenizer of {model_id} is gated: accept its license on huggingface.co and add "
            "an access token in Settings"
        ) from error
    except RepositoryNotFoundError as error:
        raise ModelLoadError(
            f"no model {model_id} on the Hugging Face Hub (or it is private: add an access token)"
        ) from error
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as error:
        raise ModelLoadError(
            f"cannot fetch the tokenizer of {model_id}: offline, and it is not in the cache; put "
            "tokenizer.json and tokenizer_config.json beside the package"
        ) from error
    except (HfHubHTTPError, OSError) as error:
        raise ModelLoadError(
            f"cannot fetch the tokenizer of {model_id} ({type(error).__name__}: {error}); put "
            "tokenizer.json and tokenizer_config.json beside the package"
        ) from error
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if not has_tokenizer_files(destination):
            shutil.rmtree(destination, ignore_errors=True)


def _ready(destination: Path) -> Path:
    destination.mkdir(parents=True, exist_ok=True)
    return destination
