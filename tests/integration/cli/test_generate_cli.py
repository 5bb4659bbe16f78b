"""coreml-chat-generate on converted models: one JSON object, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from engine.generation.cli import main
from engine.generation.generate import generate
from engine.generation.session import ChatSession
from engine.messages import ChatMessage, GenerationConfig
from engine.runtime import load_model
from engine.text.tokenizer import ChatTokenizer


def test_generate_cli_json(converted_package):
    folder = converted_package("llama", "int4")
    command = [sys.executable, "-m", "engine.generation.cli", str(folder), "--prompt", "Hi there",
               "--max-new-tokens", "5", "--json"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=300)
    output = json.loads(result.stdout)
    assert output["runtime"] == "reference"
    assert 1 <= len(output["token_ids"]) <= 5 and output["finish_reason"] in ("eos", "max_tokens")
    assert output["time_to_first_token"] > 0 and "torch" not in result.stderr
    tokenizer = ChatTokenizer.from_folder(folder)
    assert tokenizer.decode(output["token_ids"]) == output["text"]
    session = ChatSession(load_model(folder), tokenizer)
    config = GenerationConfig(temperature=0.0, max_new_tokens=5)
    expected, _ = generate(session, (ChatMessage("user", "Hi there"),), config)
    assert output["text"] == expected  # greedy: the same answer in and out of process


def test_generate_cli_system_prompt_and_plain_output(converted_package, capsys):
    folder = converted_package("llama", "int4")
    argv = [str(folder), "--prompt", "Hi", "--system", "Be brief.", "--max-new-tokens", "3"]
    assert main([*argv, "--json"]) == 0
    output = json.loads(capsys.readouterr().out)
    tokenizer = ChatTokenizer.from_folder(folder)
    messages = [ChatMessage("system", "Be brief."), ChatMessage("user", "Hi")]
    assert output["prompt_tokens"] == len(tokenizer.encode_chat(messages))
    assert main(argv) == 0
    assert capsys.readouterr().out == output["text"] + "\n"


def test_generate_cli_bad_options_are_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["model", "--prompt", "x", "--max-new-tokens", "0"])
    assert exit_info.value.code == 2
    assert (
        "--max-new-tokens must be a whole number from 1 to 32768, not 0" in capsys.readouterr().err
    )


def test_generate_cli_says_paris_on_smollm2(smollm2_exact_dir):
    command = [sys.executable, "-m", "engine.generation.cli", str(smollm2_exact_dir),
               "--prompt", "What is the capital of France?", "--max-new-tokens", "12", "--json"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=300)
    assert "Paris" in json.loads(result.stdout)["text"]


def test_generate_cli_missing_model_is_one_line(tmp_path):
    command = [
        sys.executable,
        "-m",
        "engine.generation.cli",
        str(tmp_path / "nope"),
        "--prompt",
        "x",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and result.stderr.startswith("error: no such model")
