"""`coreml-chat --doctor` end to end, with a short prompt (its own options): on Linux the reference
runtime's rows run and the Core ML rows say "not on this machine"; with the named Core ML
stand-in (``engine/runtime/coreml_standin.py``, the macOS framework's place at its boundary) the
Mac path runs too: per compute unit, a first load that compiles and a warm one, agreement with
the reference runtime, speed. Every measurement comes from a probe process, never this one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from engine.package.coreml_support import STANDIN_ENV

REPO = Path(__file__).resolve().parents[3]
SHORT = [
    "--prompt-tokens", "24", "--decode-depth", "40", "--decode-tokens", "4",
    "--fidelity-tokens", "24",
]  # fmt: skip


def _doctor(args: list[str], *, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app", "--doctor", *SHORT, *args],
        capture_output=True, text=True, cwd=REPO, timeout=900, env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_on_linux_the_reference_rows_run_and_core_ml_is_not_here(
    smollm2_exact_dir, smollm2_int4_dir, tmp_path
):
    report_path = tmp_path / "report" / "doctor-report.json"
    env = {key: value for key, value in os.environ.items() if key != STANDIN_ENV}
    result = subprocess.run(
        [sys.executable, "-m", "app", "--doctor", *SHORT, "--json", str(report_path),
         "--demo-exact", str(smollm2_exact_dir), "--demo-int4", str(smollm2_int4_dir)],
        capture_output=True, text=True, cwd=REPO, timeout=900, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(report_path.read_text())
    assert report["schema"] == "coreml-chat-doctor/1" and report["ok"] is True
    environment = report["environment"]
    assert environment["coreml_available"] is False and environment["python"]
    assert environment["packages"]["numpy"] and environment["memory_bytes"] > 0
    assert [model["role"] for model in report["models"]] == ["demo-exact", "demo-int4"]
    quantizations = [model["quantization"] for model in report["models"]]
    assert quantizations[0] == "gguf-exact" and quantizations[1].startswith("int4-searched")
    for model in report["models"]:
        reference, *coreml = model["rows"]
        assert reference["status"] == "ok" and reference["runtime_name"] == "reference"
        assert reference["prompt"]["tokens"] == 24 and reference["prompt"]["tokens_per_second"] > 0
        assert [d["depth"] for d in reference["decode"]] == [0, 40]
        assert all(d["tokens_per_second"] > 0 for d in reference["decode"])
        assert reference["footprint_after_load_bytes"] is None  # phys_footprint: macOS only
        assert [(row["compute_units"], row["status"]) for row in coreml] == [
            ("cpu_only", "not on this machine"),
            ("cpu_and_gpu", "not on this machine"),
            ("all", "not on this machine"),
        ]
    summary = report_path.with_suffix(".txt").read_text()
    assert summary in result.stdout  # printed, and beside the JSON
    assert "not on this machine" in summary and "reference" in summary


def test_with_the_core_ml_standin_every_compute_unit_is_measured(converted_package, tmp_path):
    report_path = tmp_path / "doctor-report.json"
    model = converted_package("mistral", "int4")  # tiny: six loads of it stay quick
    standin = "compile_seconds=0.5,load_seconds=0.1,new_shape_seconds=0.02,release_seconds=0.5"
    result = _doctor(
        ["--json", str(report_path), "--no-demo", "--model", str(model)],
        env={STANDIN_ENV: standin},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(report_path.read_text())
    assert report["coreml_measured"] is True
    (model,) = report["models"]
    assert model["role"] == "user"
    reference, *coreml = model["rows"]
    assert "prompt" not in reference  # where Core ML runs, the reference runtime is the baseline
    assert [row["compute_units"] for row in coreml] == ["cpu_only", "cpu_and_gpu", "all"]
    for row in coreml:
        assert row["status"] == "ok", row
        assert row["runtime_name"] == "coreml"
        # the stand-in runs the reference runtime: Core ML's float32 copy of the same logits
        assert row["agreement"]["top1_agreement"] == 1.0
        assert row["agreement"]["max_abs_logit_difference"] == 0.0
        assert row["agreement"]["positions"] == 24
        assert row["prompt"]["tokens_per_second"] > 0 and len(row["decode"]) == 2
        assert row["warm_load_seconds"] > 0
    # one compile for the three units: the first probe compiled, the others found the cache
    assert [row["compiled_before"] for row in coreml] == [False, True, True]
    assert report["environment"]["compiled_cache"]["copies"] == []  # described before the run
    assert "[Core ML rows from the test stand-in]" in report_path.with_suffix(".txt").read_text()


def test_a_missing_model_is_refused_by_name(tmp_path):
    result = _doctor(["--json", str(tmp_path / "r.json"), "--model", str(tmp_path / "nothing")])
    assert result.returncode == 2 and "found nothing at" in result.stderr
    assert not (tmp_path / "r.json").exists()
