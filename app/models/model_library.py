"""The Model tab's logic, without widgets: check a model folder before loading it, describe models,
list the ones already in the app's models folder, delete one of them, name the compute units.

Checking reads only the package's spec (a small protobuf), never its weights, and without
coremltools (``engine.package.description``: the GUI process never imports it), so it is quick enough
to run when the user picks a folder; the engine worker still does the real load.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from converter.naming import family_label
from engine import paths
from engine.messages import ModelInfo
from engine.package import metadata as meta
from engine.package.coreml_support import (
    coreml_available,
    cpu_only_memory_warning,
    physical_memory_bytes,
)
from engine.package.description import read_description
from engine.package.model import (
    ModelLoadError,
    check_chat_model,
    describe_spec,
    find_package,
)
from engine.text.tokenizer_files import has_tokenizer_files

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
    "cpu_only": "Slowest: rules out a GPU problem. Core ML expands the weights to float16 in memory "
    "(about 3.5× the package: ~14 GB for a 7B model).",
    "cpu_and_ne": "The Neural Engine where it can: some stateful models are refused, others run on the CPU.",
}

RUNTIME_LABELS = {"coreml": "Core ML", "reference": "Reference runtime (NumPy)"}
# Core ML (and so the compute units, Metal and the Neural Engine) runs stateful models on macOS 15+
# only; elsewhere (macOS 14 too) the engine runs the reference runtime on the CPU and the app does
# not offer those choices. The engine's loader asks the same function.
CORE_ML_PLATFORM = coreml_available()


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

    @property
    def display_name(self) -> str:
        """What the user calls it: its folder's name (two copies of one model differ there)."""
        return display_name(self.folder)


def display_name(path: str | Path) -> str:
    """The name the window shows for the model at ``path``: the folder's name, which the user
    chose (the package's own name is the same for every copy of a model); a package opened
    alone, its name without ``.mlpackage``."""
    location = Path(path)
    return location.stem if location.suffix == ".mlpackage" else location.name


def library_row_text(summary: ModelSummary, *, loaded: bool) -> str:
    """A model's line in the Model tab's list: its folder's name, then what tells copies apart."""
    package = f" ({summary.name})" if summary.name != summary.display_name else ""
    return (
        f"{'● ' if loaded else ''}{summary.display_name}{package}    {summary.quantization} · "
        f"{summary.context_length:,} tokens · {format_size(summary.size_bytes)}"
        + ("    · loaded" if loaded else "")
    )


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
    description, _ = describe_spec(read_description(package))  # no coremltools in the GUI
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


class ModelDeleteError(Exception):
    """A model was not deleted: the message says why (and what was expected)."""


def is_same_or_inside(path: str | Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or lies in it (links resolved): the loaded model may be the
    folder or the package inside it."""
    resolved, container = Path(path).resolve(), folder.resolve()
    return resolved == container or container in resolved.parents


def delete_model(folder: str | Path, *, loaded: str = "", models: Path | None = None) -> int:
    """Delete a model folder of the app's models folder and its compiled Core ML copy; return the
    bytes freed.

    Refuses (``ModelDeleteError``) anything but a usable model folder directly inside ``models``
    (default: the app's models folder), a link, and the model that is ``loaded`` (load another one
    first: the engine has its files open). The folder is first renamed to a hidden name, so a crash
    half-way never leaves something that looks like a whole model; the compiled copy is only ever
    looked for in the app's cache folder.
    """
    models = (models or paths.models_dir()).resolve()
    target = Path(folder).expanduser()
    if target.is_symlink():
        raise ModelDeleteError(f"{target} is a link: expected a model folder in {models}")
    resolved = target.resolve()
    if resolved.parent != models or not resolved.is_dir():
        raise ModelDeleteError(f"only a model folder in {models} can be deleted, found {target}")
    if loaded and is_same_or_inside(loaded, resolved):
        raise ModelDeleteError(f"{resolved.name} is loaded: load another model before deleting it")
    try:
        summary = inspect_model(resolved)
    except ModelLoadError as error:
        raise ModelDeleteError(
            f"{resolved.name} is not a model folder ({error}); not deleted"
        ) from None
    # Compiled copies are named by the package's location too: another folder's copy of the same
    # model has its own, which this never touches.
    compiled = paths.compiled_model_path(summary.package)
    freed = _folder_size(resolved)
    trash = models / f".{resolved.name}.deleting-{os.getpid()}"
    os.replace(resolved, trash)
    shutil.rmtree(trash)
    if (
        compiled.is_dir()
        and compiled.parent == paths.compiled_cache_dir()
        and not compiled.is_symlink()
    ):
        freed += _folder_size(compiled)
        shutil.rmtree(compiled)
    logger.info("deleted the model %s (%d bytes)", resolved, freed)
    return freed


def format_size(size_bytes: int) -> str:
    value = float(size_bytes)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def compute_unit_tip(units: str, info: ModelInfo | None) -> str:
    """The hint under the compute-unit choice; for "CPU only", a warning when the loaded model's
    weights, expanded to float16 on the CPU, would not fit in this Mac's memory."""
    tip = COMPUTE_UNIT_TIPS.get(units, "")
    if units != "cpu_only" or info is None:
        return tip
    try:
        package_bytes = _folder_size(find_package(Path(info.path)))
    except (ModelLoadError, OSError):
        return tip
    warning = cpu_only_memory_warning(package_bytes, info.quantization, physical_memory_bytes())
    return warning or tip


def model_info_rows(info: ModelInfo | None) -> list[tuple[str, str]]:
    """(label, value) rows describing the loaded model, for the Model tab."""
    if info is None:
        return [("Model", "No model loaded")]
    rows = [("Model", display_name(info.path))]
    if info.name != rows[0][1]:
        rows.append(("Package", info.name))
    rows += [
        ("Context", f"{info.context_length:,} tokens"),
        ("Quantization", info.quantization or "unknown"),
        ("Architecture", family_label(info.architecture)),
        ("Runtime", RUNTIME_LABELS.get(info.runtime_name, info.runtime_name)),
    ]
    if info.runtime_name == "coreml":
        rows.append(
            ("Compute units", COMPUTE_UNIT_LABELS.get(info.compute_units, info.compute_units))
        )
    if info.source_model_id:
        rows.append(("Source", info.source_model_id))
    rows.append(("Location", info.path))
    return rows
