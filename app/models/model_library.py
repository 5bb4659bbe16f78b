"""The Model tab's logic, without widgets: check a model folder before loading it, describe models,
list the ones already in the app's models folder, name the compute units.

Checking reads only the package's spec (a small protobuf), never its weights, so it is quick enough
to run when the user picks a folder; the engine worker still does the real load.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from engine import package_metadata as meta
from engine import paths
from engine.messages import ModelInfo
from engine.model_package import (
    ModelLoadError,
    check_chat_model,
    describe_spec,
    find_package,
    read_spec,
)
from engine.tokenizer_files import has_tokenizer_files

logger = logging.getLogger(__name__)

COMPUTE_UNIT_LABELS: dict[str, str] = {
    "cpu_and_gpu": "CPU and GPU",
    "all": "All (CPU, GPU and Neural Engine)",
    "cpu_only": "CPU only",
    "cpu_and_ne": "CPU and Neural Engine",
}
COMPUTE_UNIT_TIPS: dict[str, str] = {
    "cpu_and_gpu": "The GPU through Metal: the fastest choice for most chat models.",
    "all": "Core ML picks per layer, the Neural Engine included. Large stateful models may not fit it.",
    "cpu_only": "Slowest, but always works: useful to rule out a GPU problem.",
    "cpu_and_ne": "The Neural Engine where it can: some stateful models are refused, others run on the CPU.",
}

RUNTIME_LABELS = {"coreml": "Core ML", "reference": "Reference runtime (NumPy)"}


@dataclass(frozen=True)
class ModelSummary:
    """What a model folder holds, read from its package's spec (no weights loaded)."""

    name: str
    folder: Path  # the folder to load (the package's parent when it has the tokenizer files)
    package: Path
    context_length: int
    quantization: str
    architecture: str
    source_model_id: str
    size_bytes: int
    has_tokenizer: bool


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def inspect_model(path: str | Path) -> ModelSummary:
    """Check that ``path`` (a model folder or an ``.mlpackage``) is a chat model this app can run.

    Raises ``ModelLoadError`` with one line saying what was expected and what was found.
    """
    text = str(path).strip()
    if not text:
        raise ModelLoadError("no model chosen: expected a model folder or an .mlpackage")
    package = find_package(Path(text))
    spec, _ = read_spec(package)
    description, _ = describe_spec(spec)
    check_chat_model(description)
    metadata = description.metadata
    tokenizer_beside = has_tokenizer_files(package.parent) or has_tokenizer_files(package)
    source = metadata.get(meta.SOURCE_MODEL_ID, "").strip()
    if not tokenizer_beside and not source:
        raise ModelLoadError(
            f"{package.name} has no tokenizer.json/tokenizer_config.json beside it and names no "
            "source model to fetch them for: put the tokenizer files in the model folder"
        )
    folder = package.parent if Path(text).suffix != ".mlpackage" else package
    return ModelSummary(
        name=package.stem,
        folder=folder,
        package=package,
        context_length=description.context_length,
        quantization=metadata.get(meta.QUANTIZATION, "unknown"),
        architecture=metadata.get(meta.ARCHITECTURE, "unknown"),
        source_model_id=source,
        size_bytes=_folder_size(package),
        has_tokenizer=tokenizer_beside,
    )


def local_models(folder: Path | None = None) -> list[ModelSummary]:
    """The usable models in ``folder`` (default: the app's models folder), by name; others skipped."""
    folder = folder or paths.models_dir()
    if not folder.is_dir():
        return []
    found = []
    for child in sorted(folder.iterdir()):
        if child.name.startswith(".") or not child.is_dir():
            continue  # hidden: a conversion or download in progress
        try:
            found.append(inspect_model(child))
        except ModelLoadError as error:
            logger.info("skipping %s: %s", child, error)
    return found


def format_size(size_bytes: int) -> str:
    value = float(size_bytes)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def model_info_rows(info: ModelInfo | None) -> list[tuple[str, str]]:
    """(label, value) rows describing the loaded model, for the Model tab."""
    if info is None:
        return [("Model", "No model loaded")]
    rows = [
        ("Model", info.name),
        ("Context", f"{info.context_length:,} tokens"),
        ("Quantization", info.quantization or "unknown"),
        ("Architecture", info.architecture or "unknown"),
        ("Runtime", RUNTIME_LABELS.get(info.runtime_name, info.runtime_name)),
        ("Compute units", COMPUTE_UNIT_LABELS.get(info.compute_units, info.compute_units)),
    ]
    if info.source_model_id:
        rows.append(("Source", info.source_model_id))
    rows.append(("Location", info.path))
    return rows
