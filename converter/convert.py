"""The conversion pipeline: resolve → load → trace → convert → quantize → save → verify.

Every stage reports its progress; the cancel token is checked between stages and inside
coremltools' loops; the model folder is assembled in a hidden temporary folder beside the output
and renamed into place at the end, so a failed or cancelled conversion leaves nothing behind.
"""

from __future__ import annotations

import errno
import gc
import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from converter.errors import ConversionError
from converter.progress import STAGES, CancelToken, ProgressCallback, ProgressEvent
from converter.verify import VerificationReport
from engine import package_metadata as meta

logger = logging.getLogger(__name__)

CONVERTER_VERSION = "0.1.0"
GIB = 1024**3


@dataclass(frozen=True)
class ConversionOptions:
    context_length: int = 2048
    # "auto": "exact" for a GGUF source (its own blocks, see converter.gguf_import), else "int4".
    quantize: Literal["auto", "exact", "int4", "int8", "none"] = "auto"
    block_size: int = 32
    last_logits_only: bool = False
    verify: bool = False
    force: bool = False
    token: str | None = None
    name: str | None = None  # package name; default from the model's name


@dataclass(frozen=True)
class ConversionResult:
    output_dir: Path
    package_path: Path
    verification: VerificationReport | None
    seconds: float


class StageReporter:
    """Turns (stage, fraction) into ProgressEvents with an overall fraction over the stages run."""

    def __init__(self, callback: ProgressCallback | None, stages: list[str]) -> None:
        self.callback = callback
        weights = dict(STAGES)
        total = sum(weights[name] for name in stages)
        self.starts: dict[str, float] = {}
        self.shares: dict[str, float] = {}
        offset = 0.0
        for name in stages:
            self.starts[name] = offset
            self.shares[name] = weights[name] / total
            offset += self.shares[name]
        self.stage = ""
        self.overall = 0.0

    def begin(self, stage: str, message: str = "") -> None:
        self.stage = stage
        self.report(0.0, message or stage)

    def report(self, fraction: float, message: str = "") -> None:
        fraction = min(1.0, max(0.0, fraction))
        overall = self.starts[self.stage] + self.shares[self.stage] * fraction
        self.overall = max(self.overall, min(1.0, overall))
        if self.callback is not None:
            self.callback(
                ProgressEvent(
                    event="progress",
                    stage=self.stage,
                    stage_fraction=round(fraction, 4),
                    overall=round(self.overall, 4),
                    message=message,
                )
            )

    def log(self, message: str, *, level: str = "info") -> None:
        logger.log(logging.WARNING if level == "warning" else logging.INFO, "%s", message)
        if self.callback is not None:
            self.callback(ProgressEvent(event="log", level=level, message=message))


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"converter": CONVERTER_VERSION}
    for name in ("coremltools", "torch", "transformers"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = ""
    return found


def resolve_exact(quantize: str, *, gguf_file: str | None) -> bool:
    """Whether the GGUF's own blocks are kept: the default for GGUF sources, or asked for."""
    if quantize == "exact" and gguf_file is None:
        raise ConversionError(
            "--quantize exact keeps a GGUF file's own quantized blocks; this source is not a "
            "GGUF file (use int4, int8 or none)"
        )
    return gguf_file is not None and quantize in ("auto", "exact")


def estimate_package_bytes(parameters: int, quantize: str, block_size: int) -> int:
    # exact: at most 8-bit data plus float16 scale and offset per 16 weights (Q6_K).
    bits = {"int4": 4 + 16 / block_size, "int8": 8.0, "none": 16.0, "exact": 10.0}[quantize]
    return int(parameters * bits / 8)


def _check_output(output_dir: Path, *, force: bool) -> None:
    if output_dir.exists() and not force:
        raise ConversionError(f"{output_dir} already exists; choose another folder or use --force")
    if output_dir.exists() and not output_dir.is_dir():
        raise ConversionError(f"{output_dir} exists and is not a folder")
    parent = output_dir.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConversionError(f"cannot create {parent}: {error.strerror}") from error
    if not os.access(parent, os.W_OK):
        raise ConversionError(f"cannot write to {parent}: permission denied; choose another folder")


def _check_disk_space(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise ConversionError(
            f"not enough disk space in {folder}: the conversion needs about {needed / GIB:.1f} GB, "
            f"{free / GIB:.1f} GB is free"
        )


@contextmanager
def _staging_folder(output_dir: Path) -> Iterator[Path]:
    """A hidden folder beside the output; removed unless the caller moved it into place."""
    staging = output_dir.parent / f".{output_dir.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def convert(
    source: str | Path,
    output_dir: str | Path,
    options: ConversionOptions = ConversionOptions(),
    *,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> ConversionResult:
    """Convert ``source`` (Hub id, HF folder or .gguf) into the model folder ``output_dir``."""
    started = time.monotonic()
    cancel = cancel or CancelToken()
    output_dir = Path(output_dir).expanduser().resolve()
    if options.quantize not in ("auto", "exact", "int4", "int8", "none"):
        raise ConversionError(
            f"--quantize must be auto, exact, int4, int8 or none, not {options.quantize!r}"
        )
    if options.block_size < 1 or options.context_length < 1:
        raise ConversionError("--block-size and --context-length must be positive")
    stages = [name for name, _ in STAGES if name != "verify" or options.verify]
    reporter = StageReporter(progress, stages)
    _check_output(output_dir, force=options.force)
    try:
        with _staging_folder(output_dir) as staging:
            package, verification = _run_stages(
                source, staging, output_dir, options, reporter=reporter, cancel=cancel
            )
            cancel.raise_if_cancelled()
            if output_dir.exists():
                shutil.rmtree(output_dir)
            os.replace(staging, output_dir)
    except OSError as error:
        if error.errno == errno.ENOSPC:
            raise ConversionError(
                f"the disk filled up while writing {output_dir}; free some space and try again"
            ) from error
        if isinstance(error, PermissionError):
            raise ConversionError(f"permission denied: {error.filename}") from error
        raise
    return ConversionResult(
        output_dir=output_dir,
        package_path=output_dir / package.name,
        verification=verification,
        seconds=time.monotonic() - started,
    )


def _run_stages(
    source: str | Path,
    staging: Path,
    output_dir: Path,
    options: ConversionOptions,
    *,
    reporter: StageReporter,
    cancel: CancelToken,
) -> tuple[Path, VerificationReport | None]:
    from converter import coreml_export, gguf_import, verify
    from converter.source import resolve_source
    from converter.torch_model import build_stateful_model
    from converter.weights import export_tokenizer, load_weights, special_token_ids

    reporter.begin("resolve", f"resolving {source}")
    resolved = resolve_source(source, token=options.token, download_report=reporter.report)
    spec = resolved.spec
    exact = resolve_exact(options.quantize, gguf_file=resolved.gguf_file)
    if exact:
        options = replace(options, quantize="exact")
    elif options.quantize == "auto":
        options = replace(options, quantize="int4")
    if options.context_length > spec.max_position_embeddings:
        raise ConversionError(
            f"--context-length {options.context_length} is above the model's maximum "
            f"{spec.max_position_embeddings}"
        )
    estimate = estimate_package_bytes(spec.parameter_count, options.quantize, options.block_size)
    # The package, plus coremltools' float16 temporary package while converting.
    _check_disk_space(output_dir.parent, estimate + spec.parameter_count * 2)
    reporter.log(
        f"{resolved.source_id}: {spec.architecture}, {spec.parameter_count / 1e6:.0f}M parameters, "
        f"{spec.num_layers} layers, vocab {spec.vocab_size}"
    )
    export_tokenizer(resolved, staging)
    reporter.report(1.0, "resolved")
    cancel.raise_if_cancelled()

    reporter.begin("load", "reading the GGUF's blocks" if exact else "loading weights in float16")
    imported = None
    if exact:
        imported = gguf_import.read_gguf(resolved.folder / resolved.gguf_file, spec)
        gguf_import.log_recipes(imported, reporter.log)
        weights = gguf_import.module_weights(imported)
    else:
        weights = load_weights(resolved, report=reporter.report)
    cancel.raise_if_cancelled()
    module = build_stateful_model(
        spec,
        weights,
        context_length=options.context_length,
        last_logits_only=options.last_logits_only,
    )
    del weights
    gc.collect()
    module = module.half()
    bos, eos = special_token_ids(resolved)
    reporter.report(1.0, "weights loaded")
    cancel.raise_if_cancelled()

    reporter.begin("trace", "tracing the stateful module")
    reference = None
    if options.verify:
        tokens = verify.verification_tokens(staging / meta.TOKENIZER_FILE, spec.vocab_size)
        reference = (
            gguf_import.reference_logits(imported, tokens, context_length=options.context_length)
            if imported is not None
            else verify.reference_logits(module, tokens)
        )
    traced = coreml_export.trace(module)
    reporter.report(1.0, "traced")
    cancel.raise_if_cancelled()

    reporter.begin("convert", "converting to a Core ML program")
    program = coreml_export.to_mil_program(traced, module, report=reporter.report, cancel=cancel)
    del traced, module
    gc.collect()
    reporter.report(1.0, "converted")
    cancel.raise_if_cancelled()

    label = coreml_export.quantization_label(options.quantize, options.block_size)
    reporter.begin("quantize", f"quantizing weights: {label}")
    if imported is not None:
        gguf_import.attach_blocks(program, imported, report=reporter.report)
    mlmodel = coreml_export.compress_and_build(
        program,
        mode="none" if exact else options.quantize,
        block_size=options.block_size,
        report=reporter.report,
        cancel=cancel,
    )
    del program
    gc.collect()
    reporter.report(1.0, "quantized")
    cancel.raise_if_cancelled()

    reporter.begin("save", "saving the package")
    coreml_export.describe(
        mlmodel,
        coreml_export.PackageFacts(
            source_id=resolved.source_id,
            architecture=spec.architecture,
            context_length=options.context_length,
            quantization=label,
            bos_token_id=bos,
            eos_token_ids=eos,
            last_logits_only=options.last_logits_only,
            versions=_versions(),
            recipes=imported.recipes() if imported is not None else {},
        ),
    )
    name = options.name or resolved.default_name
    package = staging / f"{name}.mlpackage"
    mlmodel.save(str(package))
    del mlmodel
    gc.collect()
    reporter.report(1.0, f"saved {package.name}")
    cancel.raise_if_cancelled()

    verification = None
    if reference is not None:
        reporter.begin("verify", "running the package against torch")
        verification = verify.verify_package(package, reference, quantize=options.quantize)
        reporter.log(
            f"verification on the {verification.runtime} runtime: top-1 agreement "
            f"{verification.top1_agreement:.0%}, max |logit difference| "
            f"{verification.max_abs_difference:.3f}",
            level="info" if verification.passed else "warning",
        )
        reporter.report(1.0, "verified")
    return package, verification
