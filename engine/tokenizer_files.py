"""Tokenizer files for a package that came without them (the blog's model is downloaded alone).

They are fetched for the model id in the package's metadata (``co.huggingface.exporters.name``)
through huggingface_hub, with a token for gated repositories, into the app's cache folder.
"""

from __future__ import annotations

import logging
from pathlib import Path

from engine import package_metadata as meta
from engine.paths import cache_dir
from engine.runtime import ModelLoadError

logger = logging.getLogger(__name__)

FILES = (meta.TOKENIZER_FILE, meta.TOKENIZER_CONFIG_FILE)


def has_tokenizer_files(folder: Path) -> bool:
    return all((folder / name).is_file() for name in FILES)


def tokenizer_folder(package: Path, metadata: dict[str, str], *, token: str | None = None) -> Path:
    """The folder holding the tokenizer files: beside the package, or fetched and cached."""
    for folder in (package.parent, package):
        if has_tokenizer_files(folder):
            return folder
    model_id = metadata.get(meta.SOURCE_MODEL_ID, "").strip()
    if not model_id:
        raise ModelLoadError(
            f"{package.name} has no tokenizer.json/tokenizer_config.json beside it and names no "
            "source model to fetch them for: put the tokenizer files in the model folder"
        )
    cached = cache_dir() / "tokenizers" / model_id.replace("/", "--")
    if has_tokenizer_files(cached):
        return cached
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError

    cached.mkdir(parents=True, exist_ok=True)
    try:
        for name in FILES:
            hf_hub_download(model_id, name, token=token, local_dir=str(cached))
    except GatedRepoError as error:
        raise ModelLoadError(
            f"the tokenizer of {model_id} is gated: accept its license on huggingface.co and add "
            "an access token in Settings → Model"
        ) from error
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as error:
        raise ModelLoadError(
            f"cannot fetch the tokenizer of {model_id} (offline?): put tokenizer.json and "
            "tokenizer_config.json beside the package"
        ) from error
    return cached
