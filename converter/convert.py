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
from typing import TYPE_CHECKING, Any

from converter.errors import ConversionError
from converter.naming import quantization_label, resolved_quantization
from converter.options import (
    ConversionRequest,
    overlap_problem,
    problems,
    stages_for,
    sweep_staging,
)
from converter.output_folder import is_disk_full, move_into_place, staging_area
from converter.progress import CancelToken, ProgressCallback, StageReporter
from converter.verify import VerificationReport
from engine.package import metadata as meta

if TYPE_CHECKING:
    from converter.source import ResolvedSource
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
    return resolved_quantization(quantize, gguf=gguf_file is not None) == "exact"


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
    reporter = StageReporter(progress, stages_for(request))
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


@dataclass
class _Resolved:
    """What the resolve stage found: the source, its spec, and the request as it will run."""

    request: ConversionRequest
    source: ResolvedSource
    exact: bool


def _run_stages(
    request: ConversionRequest,
    staging: Path,
    output_dir: Path,
    *,
    reporter: StageReporter,
    cancel: CancelToken,
) -> tuple[Path, VerificationReport | None]:
    """resolve → load → trace → convert → quantize → save (→ verify), one function each, each
    inside its progress stage; memory is freed between stages (the module, the traced graph and
    the program are each dropped as soon as the next form exists)."""
    from converter import coreml_export  # torch and coremltools: imported when a conversion runs

    with reporter.in_stage(
        "resolve", f"resolving {request.source}", done="resolved", cancel=cancel
    ):
        resolved = _resolve(request, staging, output_dir, reporter=reporter)
    request = resolved.request
    loading = "reading the GGUF's blocks" if resolved.exact else "loading weights in float16"
    with reporter.in_stage("load", loading, done="weights loaded", cancel=cancel):
        module, imported = _load(resolved, reporter=reporter, cancel=cancel)
    with reporter.in_stage("trace", "tracing the stateful module", done="traced", cancel=cancel):
        traced = coreml_export.trace(module)
    with reporter.in_stage(
        "convert", "converting to a Core ML program", done="converted", cancel=cancel
    ):
        program = coreml_export.to_mil_program(
            traced, module, report=reporter.report, cancel=cancel
        )
        del traced, module
        gc.collect()
    label = quantization_label(
        request.quantize,
        request.block_size,
        int4_recipe=request.int4_recipe,
        int8_embeddings=request.int8_embeddings,
        gguf_form=request.gguf_form,
    )
    with reporter.in_stage(
        "quantize", f"quantizing weights: {label}", done="quantized", cancel=cancel
    ):
        mlmodel, recipes = _quantize(program, imported, resolved, reporter=reporter, cancel=cancel)
        del program
        gc.collect()
    if imported is not None:
        recipes = imported.recipes()
    name = request.name or resolved.source.default_name
    package = staging / f"{name}.mlpackage"
    with reporter.in_stage(
        "save", "saving the package", done=f"saved {package.name}", cancel=cancel
    ):
        _save(mlmodel, package, resolved, label=label, recipes=recipes)
        del mlmodel
        gc.collect()
    verification = None
    if request.verify:
        verifying = "running the source model in transformers (float32)"
        with reporter.in_stage("verify", verifying, done="verified", cancel=cancel):
            verification = _verify(package, staging, resolved, label=label, reporter=reporter)
    return package, verification


def _resolve(
    request: ConversionRequest, staging: Path, output_dir: Path, *, reporter: StageReporter
) -> _Resolved:
    """Find the source and its spec; refuse what the model's config can refuse; write its tokenizer."""
    from converter.source import resolve_source
    from converter.weights import export_tokenizer

    source = resolve_source(
        request.source, token=request.token or None, download_report=reporter.report
    )
    spec = source.spec
    overlap = overlap_problem(output_dir, source.folder)
    if overlap and source.gguf_file is None:  # a GGUF's folder may hold the output
        raise ConversionError(overlap)
    exact = resolve_exact(request.quantize, gguf_file=source.gguf_file)
    if exact and request.int8_embeddings:
        raise ConversionError(
            "--int8-embeddings applies to int4 re-quantization; a GGUF source keeps its own "
            "blocks by default (add --quantize int4 to re-quantize it)"
        )
    if request.gguf_form != "exact" and not exact:
        raise ConversionError(
            f"--gguf-form {request.gguf_form} applies to a GGUF source kept in its own blocks; "
            f"this one is re-quantized ({request.quantize}) or is not a GGUF file"
        )
    resolved = resolved_quantization(request.quantize, gguf=source.gguf_file is not None)
    request = replace(request, quantize=resolved)
    _check_against_model(request, spec)
    estimate = estimate_package_bytes(spec.parameter_count, request.quantize, request.block_size)
    # The package, plus coremltools' float16 temporary package while converting.
    _check_disk_space(output_dir.parent, estimate + spec.parameter_count * 2)
    reporter.log(
        f"{source.source_id}: {spec.architecture}, {spec.parameter_count / 1e6:.0f}M parameters, "
        f"{spec.num_layers} layers, vocab {spec.vocab_size}"
    )
    export_tokenizer(source, staging)
    return _Resolved(request=request, source=source, exact=exact)


def _load(resolved: _Resolved, *, reporter: StageReporter, cancel: CancelToken) -> tuple[Any, Any]:
    """The stateful torch module in float16, and (exact GGUF import) the GGUF's blocks."""
    from converter.gguf import exact_import as gguf_import
    from converter.torch_model import build_stateful_model
    from converter.weights import load_weights

    source, request = resolved.source, resolved.request
    imported = None
    with cancel.interruptible():  # a signal stops the load at once, not after it
        if resolved.exact:
            imported = gguf_import.read_gguf(
                source.folder / source.gguf_file, source.spec, form=request.gguf_form
            )
            gguf_import.log_recipes(imported, reporter.log)
            weights = gguf_import.module_weights(imported)
        else:
            weights = load_weights(source, report=reporter.report)
    cancel.raise_if_cancelled()
    module = build_stateful_model(
        source.spec,
        weights,
        context_length=request.context_length,
        last_logits_only=request.last_logits_only,
        norms_include_offset=imported is not None and imported.norms_include_offset,
    )
    del weights
    gc.collect()
    return module.half(), imported


def _quantize(
    program: Any,
    imported: Any,
    resolved: _Resolved,
    *,
    reporter: StageReporter,
    cancel: CancelToken,
) -> tuple[Any, dict[str, str]]:
    """Weights as blockwise constants: the GGUF's own blocks (decoded one tensor at a time as
    coremltools writes them), or searched int4 / int8 / none; then the ML Program is built."""
    from converter import coreml_export
    from converter.gguf import exact_import as gguf_import
    from converter.quantization.lazy_blob_weights import LazyWeights, writing_lazy_weights

    request = resolved.request
    lazy = LazyWeights()
    if imported is not None:
        gguf_import.attach_blocks(program, imported, report=reporter.report, lazy=lazy)
    with writing_lazy_weights(lazy) if len(lazy) else contextlib.nullcontext():
        mlmodel, recipes = coreml_export.compress_and_build(
            program,
            mode="none" if resolved.exact else request.quantize,
            block_size=request.block_size,
            report=reporter.report,
            cancel=cancel,
            int4_recipe=request.int4_recipe,
            int8_embeddings=request.int8_embeddings,
        )
    for group, text in recipes.items():
        reporter.log(f"{group}: {text}")
    return mlmodel, recipes


def _save(
    mlmodel: Any, package: Path, resolved: _Resolved, *, label: str, recipes: dict[str, str]
) -> None:
    """Describe the package (metadata, inputs, outputs) and write it into the staging folder."""
    from converter import coreml_export as export
    from converter.weights import special_token_ids

    source, request = resolved.source, resolved.request
    bos, eos = special_token_ids(source, tokenizer_file=package.parent / meta.TOKENIZER_FILE)
    export.describe(
        mlmodel,
        export.PackageFacts(
            source_id=source.source_id,
            architecture=source.spec.architecture,
            context_length=request.context_length,
            quantization=label,
            bos_token_id=bos,
            eos_token_ids=eos,
            last_logits_only=request.last_logits_only,
            versions=_versions(),
            recipes=recipes,
        ),
    )
    mlmodel.save(str(package))


def _verify(
    package: Path, staging: Path, resolved: _Resolved, *, label: str, reporter: StageReporter
) -> VerificationReport:
    """The numerical gate: the package against the source model in transformers."""
    from converter import verify

    tokens = verify.verification_tokens(
        staging / meta.TOKENIZER_FILE, resolved.source.spec.vocab_size
    )
    reference = verify.source_logits(resolved.source, tokens)
    reporter.report(0.5, "running the package against the source model")
    verification = verify.verify_package(package, reference, quantize=resolved.request.quantize)
    reporter.log(
        f"verification of {label} on the {verification.runtime} runtime: top-1 agreement "
        f"{verification.top1_agreement:.0%}, max |logit difference| "
        f"{verification.max_abs_difference:.3f}",
        level="info" if verification.passed else "warning",
    )
    return verification
