"""`coreml-chat --self-test` (what `make package` runs on the frozen build), here unfrozen."""

from __future__ import annotations

import json
import os

from app import self_test


def test_self_test_answers_paris_on_the_demo_model(smollm2_exact_dir):
    report = self_test.run_self_test(smollm2_exact_dir)
    assert "Paris" in report["answer"] and report["runtime"] == "reference"
    assert report["engine_pid"] != os.getpid()  # answered by the engine process, as in the window
    assert report["finish_reason"] in ("eos", "max_tokens")


def test_self_test_without_a_model_fails_with_a_clear_message(tmp_path, capsys):
    assert self_test.main(["--model", str(tmp_path / "missing")]) == 1
    output = json.loads(capsys.readouterr().out)
    assert output["ok"] is False and "make run" in output["error"]
