"""`coreml-chat --doctor`: what a first run on a Mac must tell us, in a few minutes, as one report.

Writes ``doctor-report.json`` (the schema is in README: "Running on a Mac for the first time") and a
readable summary beside it (``.txt``, also printed) to paste into a bug report. It describes the
machine, then measures models: the demo model in both of its weight forms (the exact GGUF import,
uint4 data with a float16 offset; the searched int4 re-quantization, uint4 with a uint4 zero point),
converted once if missing, and the user's model (``--model``, or the one the app opens). Each
model runs on the reference runtime (the correctness baseline) and, where Core ML runs (macOS
15+), on each compute unit: first and warm load, physical footprint, agreement with the
reference runtime on a fixed prose text, prompt and decode speed. Elsewhere the Core ML rows
say "not on this machine".

Every measurement runs in a probe process of its own (``engine/diagnostics/probe.py``), never in
this one or the GUI's: Core ML holds the GIL, may crash, and a footprint means something only in a
process that loaded one model. No Qt here: the Help menu runs this command in the background.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from engine.diagnostics.fidelity import compare
from engine.diagnostics.machine import describe_machine, folder_bytes
from engine.diagnostics.report import REPORT_SCHEMA, summary_text
from engine.package import metadata as meta
from engine.package.coreml_support import (
    cpu_only_memory_warning,
    float16_weight_bytes,
    physical_memory_bytes,
)
from engine.package.model import ModelLoadError, find_package, read_spec

logger = logging.getLogger(__name__)

COMPUTE_UNITS = ("cpu_only", "cpu_and_gpu", "all")
NOT_HERE = "not on this machine"
DEMO_INT4_FOLDER = "SmolLM2-135M-Instruct-int4"
PROBE_TIMEOUT_SECONDS = 3600.0  # a 7B's first compile takes minutes; a probe that hangs is a row


@dataclass(frozen=True)
class DoctorOptions:
    model: Path | None = None  # the user's model; None: the app's current one, if any
    json_path: Path = Path("doctor-report.json")
    fidelity_tokens: int = 256
    prompt_tokens: int = 512
    decode_depth: int = 1500
    decode_tokens: int = 32
    demo: bool = True
    demo_exact: Path | None = None  # None: the app's demo model (converted if missing)
    demo_int4: Path | None = None  # None: the doctor's own copy in the cache (converted if missing)
    coreml: bool | None = None  # None: where Core ML runs (or the test stand-in is named)
    probe_timeout: float = PROBE_TIMEOUT_SECONDS


def probe_command() -> list[str]:
    """How to start a probe: this interpreter, or the frozen app's own executable."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "--doctor-probe"]
    return [sys.executable, "-m", "engine.diagnostics.probe"]


def coreml_runs_here() -> bool:
    """Where Core ML runs (macOS 15+), or where a test named the Core ML stand-in."""
    from engine.package.coreml_support import STANDIN_ENV, coreml_available

    return coreml_available() or bool(os.environ.get(STANDIN_ENV, "").strip())


def run_probe(
    folder: Path,
    *,
    runtime: str,
    compute_units: str,
    options: DoctorOptions,
    workdir: Path,
    speed: bool,
) -> tuple[dict[str, Any], Path | None]:
    """Start a probe and wait for its result; (row, logits file or None)."""
    name = f"{runtime}-{compute_units}-{len(list(workdir.iterdir()))}"
    out, logits = workdir / f"{name}.json", workdir / f"{name}.npy"
    command = [
        *probe_command(),
        "--model", str(folder), "--runtime", runtime, "--compute-units", compute_units,
        "--out", str(out), "--logits", str(logits),
        "--fidelity-tokens", str(options.fidelity_tokens),
        "--prompt-tokens", str(options.prompt_tokens),
        "--decode-depth", str(options.decode_depth),
        "--decode-tokens", str(options.decode_tokens),
        *([] if speed else ["--no-speed"]),
    ]  # fmt: skip
    logger.info("probe: %s on %s (%s)", folder.name, runtime, compute_units)
    started = time.perf_counter()
    try:
        process = subprocess.run(
            command, capture_output=True, text=True, timeout=options.probe_timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return _failed(
            runtime, compute_units, f"no result within {options.probe_timeout:.0f} s"
        ), None
    if not out.is_file():
        tail = "\n".join(process.stderr.strip().splitlines()[-5:])
        how = (
            f"signal {-process.returncode}"
            if process.returncode < 0
            else f"exit code {process.returncode}"
        )
        return _failed(runtime, compute_units, f"the probe process ended ({how}): {tail}"), None
    row = json.loads(out.read_text())
    row["process_seconds"] = round(time.perf_counter() - started, 3)
    return row, logits if logits.is_file() else None


def _failed(runtime: str, compute_units: str, error: str) -> dict[str, Any]:
    return {
        "status": "error",
        "runtime": runtime,
        "compute_units": compute_units if runtime == "coreml" else None,
        "error": error,
    }


def measure_model(
    role: str, folder: Path, options: DoctorOptions, *, coreml: bool, workdir: Path
) -> dict[str, Any]:
    """One model's entry: what it is, the reference runtime's row, one row per compute unit."""
    try:
        package = find_package(folder)
        spec, _ = read_spec(package)
    except ModelLoadError as error:
        return {"role": role, "folder": str(folder), "status": "error", "error": str(error)}
    metadata = dict(spec.description.metadata.userDefined)
    package_bytes = folder_bytes(package)
    quantization = metadata.get(meta.QUANTIZATION, "unknown")
    entry: dict[str, Any] = {
        "role": role,
        "folder": str(folder),
        "name": package.stem,
        "status": "ok",
        "quantization": quantization,
        "package_bytes": package_bytes,
        "float16_weight_bytes_estimate": float16_weight_bytes(package_bytes, quantization),
        "rows": [],
    }
    too_big = cpu_only_memory_warning(package_bytes, quantization, physical_memory_bytes())
    # The baseline (its int4/int8 weights stay compressed: it fits where Core ML's CPU path would
    # not); its speed is measured only where it is what the app runs.
    reference, reference_logits = run_probe(
        folder, runtime="reference", compute_units="cpu_only", options=options,
        workdir=workdir, speed=not coreml,
    )  # fmt: skip
    entry["rows"].append(reference)
    for units in COMPUTE_UNITS:
        if not coreml:
            entry["rows"].append(
                {"status": NOT_HERE, "runtime": "coreml", "compute_units": units,
                 "error": "Core ML runs stateful models on macOS 15 or newer only"}
            )  # fmt: skip
            continue
        if units == "cpu_only" and too_big:
            entry["rows"].append(
                {"status": "skipped", "runtime": "coreml", "compute_units": units, "error": too_big}
            )
            continue
        row, logits = run_probe(
            folder, runtime="coreml", compute_units=units, options=options, workdir=workdir,
            speed=True,
        )  # fmt: skip
        footprint = row.get("footprint_after_load_bytes")
        if footprint:
            row["footprint_vs_package"] = round(footprint / package_bytes, 3)
        if logits is not None and reference_logits is not None:
            row["agreement"] = compare(np.load(reference_logits), np.load(logits))
        entry["rows"].append(row)
    return entry


def demo_forms(
    options: DoctorOptions, *, convert: Callable[[str, Path | None], Path]
) -> list[tuple[str, Path | str]]:
    """(role, folder) for each demo weight form, converted once if missing; (role, error) when it
    could not be made."""
    from engine.paths import cache_dir

    wanted = [
        ("demo-exact", options.demo_exact, "exact", None),
        ("demo-int4", options.demo_int4, "int4", cache_dir() / "doctor" / DEMO_INT4_FOLDER),
    ]
    forms: list[tuple[str, Path | str]] = []
    for role, given, quantize, target in wanted:
        if given is not None:
            forms.append((role, given))
            continue
        try:
            forms.append((role, convert(quantize, target)))
        except (RuntimeError, OSError) as error:
            forms.append((role, f"could not prepare the demo model ({quantize}): {error}"))
    return forms


def convert_demo(quantize: str, target: Path | None) -> Path:
    """The demo model in ``quantize``'s form: the app's own for ``exact``, else a copy of the
    doctor's in ``target``, converted by the converter process the first time."""
    from app.conversion.demo_setup import converter_command, ensure_demo_model, is_model_folder
    from converter.demo_model import fetch_demo_gguf
    from converter.options import ConversionRequest

    if quantize == "exact" or target is None:
        return ensure_demo_model(quiet=True)
    if is_model_folder(target):
        return target
    request = ConversionRequest(
        source=str(fetch_demo_gguf()), output_dir=target, context_length=2048,
        quantize=quantize, name="SmolLM2-135M-Instruct", force=True,
    )  # fmt: skip
    result = subprocess.run(
        [*converter_command(), *request.to_argv()], capture_output=True, text=True, check=False
    )
    if result.returncode != 0 or not is_model_folder(target):
        tail = result.stderr.strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"the converter failed (exit code {result.returncode}): {tail[0]}")
    return target


def users_model(options: DoctorOptions) -> Path | None:
    if options.model is not None:
        return options.model
    from app.settings.app_settings import load_settings

    chosen = load_settings().model_path
    return Path(chosen) if chosen and Path(chosen).exists() else None


def run_doctor(
    options: DoctorOptions, *, convert: Callable[[str, Path | None], Path] = convert_demo
) -> dict[str, Any]:
    """Measure, write the JSON report and its summary; the report."""
    started = time.perf_counter()
    coreml = coreml_runs_here() if options.coreml is None else options.coreml
    report: dict[str, Any] = {
        "schema": REPORT_SCHEMA,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
        "environment": describe_machine(),
        "coreml_measured": coreml,
        "models": [],
    }
    targets: list[tuple[str, Path | str]] = []
    if options.demo:
        targets += demo_forms(options, convert=convert)
    user = users_model(options)
    if user is not None and all(
        user.resolve() != Path(t).resolve() for _, t in targets if isinstance(t, Path)
    ):
        targets.append(("user", user))
    with tempfile.TemporaryDirectory(prefix="coreml-chat-doctor-") as work:
        for role, target in targets:
            if isinstance(target, str):
                report["models"].append({"role": role, "status": "error", "error": target})
                continue
            report["models"].append(
                measure_model(role, target, options, coreml=coreml, workdir=Path(work))
            )
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["ok"] = all(
        model["status"] == "ok"
        and all(row["status"] in ("ok", NOT_HERE, "skipped") for row in model["rows"])
        for model in report["models"]
    )
    write_report(report, options.json_path)
    return report


def write_report(report: dict[str, Any], path: Path) -> Path:
    """``path`` (JSON) and the summary beside it (``.txt``), each written whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for target, text in (
        (path, json.dumps(report, indent=2)),
        (path.with_suffix(".txt"), summary_text(report)),
    ):
        partial = target.with_name(target.name + ".partial")
        partial.write_text(text, encoding="utf-8")
        partial.replace(target)
    return path


def default_report_path() -> Path:
    """Where the Help menu's doctor writes (the command line's default is the current folder)."""
    from engine.paths import data_dir

    return data_dir() / "doctor" / "doctor-report.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="coreml-chat --doctor", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--model", type=Path, default=None, help="also measure this model folder")
    parser.add_argument(
        "--json",
        type=Path,
        default=Path("doctor-report.json"),
        dest="json_path",
        help="the report (default: ./doctor-report.json; the summary beside it, .txt)",
    )
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--decode-depth", type=int, default=1500)
    parser.add_argument("--decode-tokens", type=int, default=32)
    parser.add_argument("--fidelity-tokens", type=int, default=256)
    parser.add_argument("--no-demo", action="store_true", help="measure --model only")
    parser.add_argument("--demo-exact", type=Path, default=None, help=argparse.SUPPRESS)  # tests
    parser.add_argument("--demo-int4", type=Path, default=None, help=argparse.SUPPRESS)  # tests
    args = parser.parse_args(argv)
    for name in ("prompt_tokens", "decode_depth", "decode_tokens", "fidelity_tokens"):
        if getattr(args, name) < 1:
            parser.error(
                f"--{name.replace('_', '-')}: expected a positive number, "
                f"found {getattr(args, name)}"
            )
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    options = DoctorOptions(
        model=args.model, json_path=args.json_path, fidelity_tokens=args.fidelity_tokens,
        prompt_tokens=args.prompt_tokens, decode_depth=args.decode_depth,
        decode_tokens=args.decode_tokens, demo=not args.no_demo, demo_exact=args.demo_exact,
        demo_int4=args.demo_int4,
    )  # fmt: skip
    if options.model is not None and not options.model.exists():
        parser.error(
            f"--model: expected a model folder or an .mlpackage, found nothing at {options.model}"
        )
    report = run_doctor(options)
    print(summary_text(report))
    print(
        f"\nreport: {options.json_path.resolve()} "
        f"(summary beside it: {options.json_path.with_suffix('.txt').name})"
    )
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
