"""The conversion pipeline: resolve → load → trace → convert → quantize → save → verify.

Every stage reports its progress; the cancel token is checked between stages and inside
coremltools' loops; the model folder is assembled in a hidden staging folder beside the output
(every temporary file inside it) and renamed into place at the end, so a failed or cancelled
conversion leaves nothing behind, and a killed one leaves one folder the next run sweeps.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from converter.errors import ConversionError
from converter.options import ConversionRequest, overlap_problem, problems, sweep_staging
from converter.output_folder import is_disk_full, move_into_place, staging_area
from converter.progress import STAGES, CancelToken, ProgressCallback, ProgressEvent
from converter.verify import VerificationReport
from engine import package_metadata as meta

if TYPE_CHECKING:
    from converter.torch_model import ModelSpec

logger = logging.getLogger(__name__)

CONVERTER_VERSION = "0.1.0"
GIB = 1024**3


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
    # int4: a float16 scale and (searched recipe) a 4-bit zero point per block; exact: at most
    # 8-bit data plus float16 scale and offset per 16 weights (Q6_K).
    bits = {"int4": 4 + 20 / block_size, "int8": 8.0, "none": 16.0, "exact": 10.0}[quantize]
    return int(parameters * bits / 8)


def _check_output_parent(output_dir: Path) -> None:
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


def _check_against_model(request: ConversionRequest, spec: ModelSpec) -> None:
    """What only the model's config can refuse, before any weight is loaded."""
    if request.context_length > spec.max_position_embeddings:
        raise ConversionError(
            f"--context-length {request.context_length} is above the model's maximum "
            f"{spec.max_position_embeddings}"
        )
    if spec.sliding_window and request.context_length > spec.sliding_window:
        raise ConversionError(
            f"--context-length {request.context_length} is above the model's attention window "
            f"{spec.sliding_window} (sliding-window attention is not supported): use at most "
            f"{spec.sliding_window}"
        )
    if request.quantize == "int4":
        # Each int4 block spans input channels of one weight; coremltools leaves a weight whose
        # input size the block does not divide in float16 (with a warning only).
        inputs = {
            "hidden_size": spec.hidden_size,
            "intermediate_size": spec.intermediate_size,
            "attention width": spec.num_heads * spec.head_dim,
        }
        bad = {name: size for name, size in inputs.items() if size % request.block_size}
        if bad:
            name, size = next(iter(bad.items()))
            divisors = [b for b in (16, 32, 64, 128) if all(v % b == 0 for v in inputs.values())]
            raise ConversionError(
                f"--block-size {request.block_size} does not divide the model's {name} {size}; "
                f"expected a divisor of {', '.join(str(v) for v in sorted(set(inputs.values())))}"
                + (f" such as {divisors[-1]}" if divisors else "")
            )


def convert(
    request: ConversionRequest,
    *,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> ConversionResult:
    """Convert ``request.source`` (Hub id, HF folder or .gguf) into the model folder
    ``request.output_dir``; refuses the request's ``problems()`` before doing any work."""
    started = time.monotonic()
    cancel = cancel or CancelToken()
    found = problems(request)
    if found:
        raise ConversionError("; ".join(found))
    output_dir = Path(request.output_dir).expanduser().resolve()
    stages = [name for name, _ in STAGES if name != "verify" or request.verify]
    reporter = StageReporter(progress, stages)
    _check_output_parent(output_dir)
    sweep_staging(output_dir.parent)
    try:
        with staging_area(output_dir) as staging:
            package, verification = _run_stages(
                request, staging, output_dir, reporter=reporter, cancel=cancel
            )
            cancel.raise_if_cancelled()
            move_into_place(staging, output_dir, replace=request.force)
    except ConversionError:
        raise
    except (OSError, RuntimeError, ValueError) as error:
        if is_disk_full(error, folder=output_dir.parent):
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
    request: ConversionRequest,
    staging: Path,
    output_dir: Path,
    *,
    reporter: StageReporter,
    cancel: CancelToken,
) -> tuple[Path, VerificationReport | None]:
    from converter import coreml_export, gguf_import, verify
    from converter.lazy_blob_weights import LazyWeights, writing_lazy_weights
    from converter.source import resolve_source
    from converter.torch_model import build_stateful_model
    from converter.weights import export_tokenizer, load_weights, special_token_ids

    reporter.begin("resolve", f"resolving {request.source}")
    resolved = resolve_source(
        request.source, token=request.token or None, download_report=reporter.report
    )
    spec = resolved.spec
    overlap = overlap_problem(output_dir, resolved.folder)
    if overlap and resolved.gguf_file is None:  # a GGUF's folder may hold the output
        raise ConversionError(overlap)
    exact = resolve_exact(request.quantize, gguf_file=resolved.gguf_file)
    if exact and request.int8_embeddings:
        raise ConversionError(
            "--int8-embeddings applies to int4 re-quantization; a GGUF source keeps its own "
            "blocks by default (add --quantize int4 to re-quantize it)"
        )
    if exact:
        request = replace(request, quantize="exact")
    elif request.quantize == "auto":
        request = replace(request, quantize="int4")
    _check_against_model(request, spec)
    estimate = estimate_package_bytes(spec.parameter_count, request.quantize, request.block_size)
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
    with cancel.interruptible():  # a signal stops the load at once, not after it
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
        context_length=request.context_length,
        last_logits_only=request.last_logits_only,
    )
    del weights
    gc.collect()
    module = module.half()
    bos, eos = special_token_ids(resolved)
    reporter.report(1.0, "weights loaded")
    cancel.raise_if_cancelled()

    reporter.begin("trace", "tracing the stateful module")
    traced = coreml_export.trace(module)
    reporter.report(1.0, "traced")
    cancel.raise_if_cancelled()

    reporter.begin("convert", "converting to a Core ML program")
    program = coreml_export.to_mil_program(traced, module, report=reporter.report, cancel=cancel)
    del traced, module
    gc.collect()
    reporter.report(1.0, "converted")
    cancel.raise_if_cancelled()

    label = coreml_export.quantization_label(
        request.quantize,
        request.block_size,
        int4_recipe=request.int4_recipe,
        int8_embeddings=request.int8_embeddings,
    )
    reporter.begin("quantize", f"quantizing weights: {label}")
    lazy = LazyWeights()
    if imported is not None:
        gguf_import.attach_blocks(program, imported, report=reporter.report, lazy=lazy)
    # The GGUF's integers are decoded one tensor at a time as coremltools writes them.
    with writing_lazy_weights(lazy) if len(lazy) else contextlib.nullcontext():
        mlmodel, recipes = coreml_export.compress_and_build(
            program,
            mode="none" if exact else request.quantize,
            block_size=request.block_size,
            report=reporter.report,
            cancel=cancel,
            int4_recipe=request.int4_recipe,
            int8_embeddings=request.int8_embeddings,
        )
    for group, text in recipes.items():
        reporter.log(f"{group}: {text}")
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
            context_length=request.context_length,
            quantization=label,
            bos_token_id=bos,
            eos_token_ids=eos,
            last_logits_only=request.last_logits_only,
            versions=_versions(),
            recipes=imported.recipes() if imported is not None else recipes,
        ),
    )
    name = request.name or resolved.default_name
    package = staging / f"{name}.mlpackage"
    mlmodel.save(str(package))
    del mlmodel
    gc.collect()
    reporter.report(1.0, f"saved {package.name}")
    cancel.raise_if_cancelled()

    verification = None
    if request.verify:
        reporter.begin("verify", "running the source model in transformers (float32)")
        tokens = verify.verification_tokens(staging / meta.TOKENIZER_FILE, spec.vocab_size)
        reference = verify.source_logits(resolved, tokens)
        cancel.raise_if_cancelled()
        reporter.report(0.5, "running the package against the source model")
        verification = verify.verify_package(package, reference, quantize=request.quantize)
        reporter.log(
            f"verification of {label} on the {verification.runtime} runtime: top-1 agreement "
            f"{verification.top1_agreement:.0%}, max |logit difference| "
            f"{verification.max_abs_difference:.3f}",
            level="info" if verification.passed else "warning",
        )
        reporter.report(1.0, "verified")
    return package, verification
