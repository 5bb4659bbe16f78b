"""The converter process's logic without a process: its command line, the JSON-line tracker and its
outcomes, request problems, default names (``ConverterProcess`` on stand-in converters:
``tests/integration/app/test_converter_process.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.conversion.converter_process import (
    ConversionTracker,
    ConverterProcess,
    converter_command,
    stage_list,
)
from converter.naming import default_model_name
from converter.options import ConversionRequest
from converter.options import problems as request_problems
from converter.progress import EXIT_CANCELLED, EXIT_ERROR, EXIT_OK, ProgressEvent


def _line(**fields) -> str:
    return ProgressEvent(**fields).to_json()


def test_command_for_the_interpreter_and_for_the_frozen_app(tmp_path: Path) -> None:
    request = ConversionRequest(
        "owner/model",
        tmp_path / "out",
        context_length=512,
        quantize="int4",
        block_size=64,
        last_logits_only=True,
        verify=True,
        token="hf_secret",
    )
    command = converter_command(request, executable="/py", frozen=False)
    assert command[:3] == ["/py", "-m", "converter.cli"]
    assert command[3:6] == ["owner/model", "-o", str(tmp_path / "out")]
    for flag in ("--json-progress", "--last-logits-only", "--verify"):
        assert flag in command
    assert command[command.index("--block-size") + 1] == "64"
    assert command[command.index("--context-length") + 1] == "512"
    assert "hf_secret" not in " ".join(command)  # the token travels in the environment
    frozen = converter_command(request, executable="/Apps/coreml-chat", frozen=True)
    assert frozen[:2] == ["/Apps/coreml-chat", "--convert"] and frozen[2:] == command[3:]
    int8 = converter_command(ConversionRequest("a/b", tmp_path / "o", quantize="int8"))
    assert "--block-size" not in int8 and int8[int8.index("--quantize") + 1] == "int8"


def test_default_model_names() -> None:
    assert default_model_name("mistralai/Mistral-7B-v0.3", "int4") == "Mistral-7B-v0.3-int4"
    assert default_model_name("/models/SmolLM2.Q4_1.gguf", "none") == "SmolLM2-fp16"
    assert default_model_name("/m/Mistral-7B-v0.3-Q4_K_M.GGUF", "int4") == "Mistral-7B-v0.3-int4"
    assert default_model_name("/models/tiny/", "int8") == "tiny-int8"


def test_request_problems_say_what_was_expected(tmp_path: Path) -> None:
    existing = tmp_path / "exists"
    existing.mkdir()
    folder_without_config = tmp_path / "not-a-model"
    folder_without_config.mkdir()
    not_a_model_file = tmp_path / "notes.txt"
    not_a_model_file.write_text("hello")
    gguf_folder = tmp_path / "gguf-folder"
    gguf_folder.mkdir()
    (gguf_folder / "model.Q4_0.gguf").write_bytes(b"GGUF")
    cases = {
        "": "expected a Hub id",
        "not a hub id!": "expected a Hub id like owner/name",
        str(tmp_path / "missing.gguf"): "no such .gguf file",
        str(tmp_path / "missing-folder"): "no such file or folder",
        str(folder_without_config): "has no config.json (nor a single .gguf)",
        str(not_a_model_file): "is a file but not a .gguf model",
    }
    for source, expected in cases.items():
        problems = request_problems(ConversionRequest(source, tmp_path / "new"))
        assert any(expected in p for p in problems), (source, problems)
    problems = request_problems(
        ConversionRequest("a/b", existing, context_length=4, quantize="int3")  # type: ignore[arg-type]
    )
    assert any("already exists" in p for p in problems)
    assert any("expected 16 to 131072, found 4" in p for p in problems)
    assert any("found 'int3'" in p for p in problems)
    model_folder = tmp_path / "a-model"
    (model_folder / "M.mlpackage").mkdir(parents=True)
    (model_folder / "M.mlpackage" / "Manifest.json").write_text("{}")
    (model_folder / "tokenizer.json").write_text("{}")
    assert request_problems(ConversionRequest("a/b", model_folder, force=True)) == []
    assert any(
        "not a model folder" in p
        for p in request_problems(ConversionRequest("a/b", existing, force=True))
    )
    assert request_problems(ConversionRequest(str(gguf_folder), tmp_path / "new")) == []


def test_tracker_folds_progress_logs_and_non_json_lines() -> None:
    tracker = ConversionTracker(stages=stage_list(ConversionRequest("a/b", Path("out"))))
    assert [s.name for s in tracker.stages][-1] == "save"
    verifying = stage_list(ConversionRequest("a/b", Path("out"), verify=True))
    assert [s.name for s in verifying][-2:] == ["save", "verify"]
    tracker.handle_line(_line(event="progress", stage="resolve", stage_fraction=0.5, overall=0.02))
    tracker.handle_line("Loading something without JSON")
    tracker.handle_line(_line(event="log", level="warning", message="odd tokenizer"))
    tracker.handle_line(_line(event="progress", stage="convert", stage_fraction=0.25, overall=0.4))
    assert tracker.current_stage == "convert"
    assert tracker.stage("resolve").fraction == 1.0  # earlier stages are complete
    assert tracker.stage("trace").fraction == 1.0
    assert tracker.stage("convert").fraction == 0.25
    assert tracker.stage("quantize").fraction == 0.0
    assert tracker.overall == pytest.approx(0.4)
    assert tracker.log == ["Loading something without JSON", "Warning: Odd tokenizer."]
    tracker.handle_line(_line(event="done", message="converted in 3s", output="/m", overall=1.0))
    outcome = tracker.outcome(EXIT_OK, seconds=3.0, cancelled=False)
    assert outcome.status == "done" and outcome.output == "/m"
    assert all(s.fraction == 1.0 for s in tracker.stages)


def test_the_overall_bar_moves_in_every_stage_and_never_goes_back() -> None:
    """Issue 24: the overall bar sat at 0% for a minute in Resolve (a download reports nothing
    between "downloading" and its end)."""
    tracker = ConversionTracker(stages=stage_list(ConversionRequest("a/b", Path("out"))))
    tracker.handle_line(
        _line(event="progress", stage="resolve", stage_fraction=0.1, overall=0.005), now=100.0
    )
    at_start, stage_at_start = tracker.shown(100.0)
    assert (at_start, stage_at_start) == (pytest.approx(0.005, abs=1e-3), pytest.approx(0.1))
    after_a_minute, stage_after_a_minute = tracker.shown(160.0)
    assert stage_after_a_minute > 0.6  # the stage's bar moved most of the way
    assert after_a_minute > 0.03  # and so did the overall one: a few pixels at least
    assert stage_after_a_minute < 1.0 and after_a_minute < 0.05  # never past Resolve's end
    assert tracker.shown(161.0)[1] >= stage_after_a_minute
    tracker.handle_line(
        _line(event="progress", stage="resolve", stage_fraction=0.2, overall=0.01), now=162.0
    )
    assert tracker.shown(162.0)[1] >= stage_after_a_minute  # a report below it: no step back
    tracker.handle_line(
        _line(event="progress", stage="load", stage_fraction=0.0, overall=0.05), now=170.0
    )
    overall, stage = tracker.shown(170.0)
    assert stage == 0.0 and overall >= after_a_minute
    assert tracker.shown(200.0)[1] > 0.3  # Load moves too, before its first report


def test_stage_lines_and_the_log_are_in_the_users_words() -> None:
    """Issue 24: the stage line read "Converting PyTorch Frontend ==> MIL Ops" and the log showed
    raw logger lines."""
    from app.conversion.progress_words import log_sentence, stage_line

    line = stage_line("convert", 0.42, "Converting PyTorch Frontend ==> MIL Ops")
    assert line == "Building the Core ML program… 42%"
    assert stage_line("resolve", 0.1, "downloading owner/model") == (
        "Finding the model and its files… 10% · Downloading owner/model"
    )
    assert stage_line("quantize", 1.0, "Running compression pass linear_quantize_weights") == (
        "Compressing the weights… 100%"
    )
    assert log_sentence("INFO converter.convert: loaded 2 layers") == "Loaded 2 layers."
    assert log_sentence("WARNING converter.gguf_import: odd block size") == (
        "Warning: Odd block size."
    )
    assert log_sentence("DEBUG converter.convert: step 3") is None
    traceback = '  File "converter/convert.py", line 3, in convert'
    assert log_sentence(traceback) == traceback  # not a logger line: kept as written
    tracker = ConversionTracker()
    tracker.handle_line("INFO converter.source: resolved owner/model")
    tracker.handle_line(_line(event="error", message="no weights found in the folder"))
    assert tracker.log == ["Resolved owner/model.", "Error: No weights found in the folder."]


def test_tracker_outcomes_for_errors_cancel_and_crashes() -> None:
    failed = ConversionTracker()
    failed.handle_line(_line(event="error", message="unsupported architecture: GPT2"))
    assert failed.outcome(EXIT_ERROR, seconds=1, cancelled=False).message == (
        "unsupported architecture: GPT2"
    )
    cancelled = ConversionTracker()
    cancelled.handle_line(_line(event="cancelled", message="conversion cancelled"))
    assert cancelled.outcome(EXIT_CANCELLED, seconds=1, cancelled=True).status == "cancelled"
    silent = ConversionTracker()
    silent.handle_line("Traceback: boom")
    outcome = silent.outcome(3, seconds=1, cancelled=False)
    assert outcome.status == "error" and "exit code 3: Traceback: boom" in outcome.message
    assert "crashed" in ConversionTracker().outcome(None, seconds=1, cancelled=False).message


def test_bad_request_does_not_start(qtbot, tmp_path: Path) -> None:
    process = ConverterProcess()
    with pytest.raises(ValueError, match="expected a Hub id"):
        process.start(ConversionRequest("", tmp_path / "out"))
    assert not process.is_running() and not (tmp_path / "out").exists()


def test_an_existing_gguf_file_is_accepted(tmp_path: Path) -> None:
    """Settings → Converter → "GGUF…" picks a file; the pane must accept it (issue 16)."""
    gguf = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    gguf.write_bytes(b"GGUF")
    assert request_problems(ConversionRequest(str(gguf), tmp_path / "out")) == []
