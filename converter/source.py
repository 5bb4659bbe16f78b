"""Where a model comes from: a Hub id, a local Hugging Face folder, or a GGUF file.

Resolving reads only the config (and, for the Hub, downloads only ``config.json`` first), so an
unsupported architecture or a gated repository is refused before any weights are fetched or loaded.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from converter.errors import ConversionError
from converter.model_spec import MODEL_TYPES, ModelSpec
from converter.naming import gguf_model_name, safe_name
from converter.options import HUB_ID

logger = logging.getLogger(__name__)

HUB_WEIGHT_PATTERNS = [
    "*.json",
    "*.safetensors",
    "tokenizer.model",
    "*.jinja",
]


@dataclass(frozen=True)
class ResolvedSource:
    """A model ready to load: its folder, the GGUF file inside it if any, and its config."""

    source_id: str  # what the user named: Hub id, folder name or GGUF file name
    folder: Path
    gguf_file: str | None
    config: dict[str, Any] = field(repr=False)
    spec: ModelSpec

    @property
    def default_name(self) -> str:
        base = gguf_model_name(self.gguf_file) if self.gguf_file else self.source_id
        return safe_name(base.rstrip("/").split("/")[-1])


def resolve_source(
    source: str | Path,
    *,
    token: str | None = None,
    download_report: Callable[[float, str], None] | None = None,
) -> ResolvedSource:
    path = Path(source).expanduser()
    if path.exists():
        if path.is_file():
            if path.suffix.lower() != ".gguf":
                raise ConversionError(
                    f"{path} is a file but not a .gguf model; give a Hugging Face model folder, "
                    "a .gguf file, or a Hub id such as mistralai/Mistral-7B-Instruct-v0.3"
                )
            return _resolve_gguf(path)
        return _resolve_folder(path, source_id=path.name)
    text = str(source)
    if text.endswith(".gguf") or text.startswith((".", "/", "~")) or not HUB_ID.match(text):
        raise ConversionError(
            f"no such file or folder: {text} (and it is not a Hub id like owner/model)"
        )
    folder = _download_from_hub(text, token=token, report=download_report)
    return _resolve_folder(folder, source_id=text)


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConversionError(f"cannot read {path}: {error}") from error
    if not isinstance(config, dict):
        raise ConversionError(f"{path} is not a model config (expected a JSON object)")
    return config


def _resolve_folder(folder: Path, *, source_id: str) -> ResolvedSource:
    config_path = folder / "config.json"
    if not config_path.is_file():
        ggufs = sorted(folder.glob("*.gguf"))
        if len(ggufs) == 1:
            return _resolve_gguf(ggufs[0])
        raise ConversionError(
            f"{folder} is not a Hugging Face model folder: it has no config.json "
            "(give the folder with config.json and *.safetensors, or a .gguf file)"
        )
    config = _read_config(config_path)
    spec = ModelSpec.from_config(config)
    return ResolvedSource(
        source_id=source_id, folder=folder, gguf_file=None, config=config, spec=spec
    )


def _resolve_gguf(path: Path) -> ResolvedSource:
    try:
        from transformers import AutoConfig

        config_object = AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name)
    except ValueError as error:
        raise ConversionError(f"cannot read GGUF file {path}: {error}") from error
    except Exception as error:  # gguf's reader raises a variety of errors on corrupt files
        raise ConversionError(f"{path} is not a readable GGUF model: {error}") from error
    config = config_object.to_dict()
    if not config.get("architectures"):
        model_type = str(config.get("model_type", ""))
        if model_type in MODEL_TYPES:
            config["architectures"] = [MODEL_TYPES[model_type]]
    spec = ModelSpec.from_config(config)
    return ResolvedSource(
        source_id=path.name, folder=path.parent, gguf_file=path.name, config=config, spec=spec
    )


def _download_from_hub(
    repo_id: str, *, token: str | None, report: Callable[[float, str], None] | None
) -> Path:
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    try:
        config_path = Path(hf_hub_download(repo_id, "config.json", token=token))
        # Refuse an unsupported architecture before downloading gigabytes of weights.
        ModelSpec.from_config(_read_config(config_path))
        if report is not None:
            report(0.1, f"downloading {repo_id}")
        folder = snapshot_download(repo_id, token=token, allow_patterns=HUB_WEIGHT_PATTERNS)
    except GatedRepoError as error:
        raise ConversionError(
            f"{repo_id} is gated: accept its license on huggingface.co, then give an access "
            "token (--token or HF_TOKEN)"
        ) from error
    except RepositoryNotFoundError as error:
        raise ConversionError(
            f"no Hub repository {repo_id} (or it is private: give an access token)"
        ) from error
    except LocalEntryNotFoundError as error:
        raise ConversionError(
            f"cannot download {repo_id}: the Hub is unreachable and it is not in the local cache"
        ) from error
    return Path(folder)
