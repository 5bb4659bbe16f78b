"""The CLI end to end on the real SmolLM2-135M-Instruct, and its error paths. Cancelling (SIGINT and
SIGTERM share one handler) is tested from the Converter pane and in tests/adversarial."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from converter.progress import EXIT_ERROR, STAGES, ProgressEvent
from engine.package import metadata as meta
from tests.conftest import progress_log

STAGE_ORDER = [name for name, _ in STAGES]


def test_smollm2_converts_from_the_cli_with_well_formed_progress(smollm2_int4_dir: Path):
    lines = progress_log(smollm2_int4_dir).read_text().splitlines()
    events = [ProgressEvent.from_json(line) for line in lines]  # every stdout line is JSON
    progress = [e for e in events if e.event == "progress"]
    stages = list(dict.fromkeys(e.stage for e in progress))
    assert stages == STAGE_ORDER  # every stage, in order (--verify was given)
    overall = [e.overall for e in progress]
    assert overall == sorted(overall) and overall[-1] == 1.0
    assert all(0.0 <= e.stage_fraction <= 1.0 for e in progress)
    # coremltools' own bars are hooked: fractions inside the convert stage, not just 0 and 1.
    assert len({e.stage_fraction for e in progress if e.stage == "convert"}) > 5
    done = events[-1]
    assert done.event == "done" and Path(done.output) == smollm2_int4_dir.resolve()
    assert done.verification["passed"] and done.verification["top1_agreement"] >= 0.5
    assert (smollm2_int4_dir / "SmolLM2-135M-Instruct.mlpackage").is_dir()
    config = json.loads((smollm2_int4_dir / meta.TOKENIZER_CONFIG_FILE).read_text())
    assert "<|im_start|>" in config["chat_template"]


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "converter.cli", *args, "--json-progress"]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)


def _last_event(result: subprocess.CompletedProcess[str]) -> ProgressEvent:
    return ProgressEvent.from_json(result.stdout.strip().splitlines()[-1])


def test_missing_source_is_one_clear_error(tmp_path: Path):
    result = _run_cli(str(tmp_path / "nowhere"), "-o", str(tmp_path / "out"))
    assert result.returncode == EXIT_ERROR
    event = _last_event(result)
    assert event.event == "error" and "no such file or folder" in event.message
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_existing_output_is_refused_without_force(tmp_path: Path, tiny_llama_dir: Path):
    output = tmp_path / "out"
    output.mkdir()
    (output / "keep.txt").write_text("mine")
    result = _run_cli(str(tiny_llama_dir), "-o", str(output))
    assert result.returncode == EXIT_ERROR
    assert "already exists" in _last_event(result).message
    assert (output / "keep.txt").read_text() == "mine"


def test_a_hub_id_missing_from_the_offline_cache_is_one_clear_error(tmp_path: Path):
    # A cached Hub id converting through the converter process: test_converter_pane.py.
    import os

    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    missing = [sys.executable, "-m", "converter.cli", "example/not-cached", "-o", str(tmp_path / "x"),
               "--json-progress"]  # fmt: skip
    result = subprocess.run(missing, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == EXIT_ERROR
    assert "not in the local cache" in _last_event(result).message
