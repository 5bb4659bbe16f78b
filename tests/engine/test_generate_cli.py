"""coreml-chat-generate on converted models: one JSON object, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys


def test_generate_cli_json(converted_package):
    folder = converted_package("llama", "int4")
    command = [sys.executable, "-m", "engine.generate_cli", str(folder), "--prompt", "Hi there",
               "--max-new-tokens", "5", "--json"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=300)
    output = json.loads(result.stdout)
    assert output["runtime"] == "reference"
    assert 1 <= len(output["token_ids"]) <= 5 and output["finish_reason"] in ("eos", "max_tokens")
    assert output["time_to_first_token"] > 0 and "torch" not in result.stderr


def test_generate_cli_says_paris_on_smollm2(smollm2_int4_dir):
    command = [sys.executable, "-m", "engine.generate_cli", str(smollm2_int4_dir),
               "--prompt", "What is the capital of France?", "--max-new-tokens", "12", "--json"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=300)
    assert "Paris" in json.loads(result.stdout)["text"]


def test_generate_cli_missing_model_is_one_line(tmp_path):
    command = [sys.executable, "-m", "engine.generate_cli", str(tmp_path / "nope"), "--prompt", "x"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and result.stderr.startswith("error: no such model")
