"""``ConverterProcess`` on stand-in converters (a failing one, a stubborn one) in a subprocess; its
logic without a process is in ``tests/unit/app/test_conversion_tracker.py``. The real conversion
through ``ConverterProcess`` and its cancel run once, from the pane (``test_converter_pane.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.conversion.converter_process import (
    ConverterProcess,
)
from converter.options import ConversionRequest
from tests.integration.app.window_helpers import stand_in_converter


def test_non_json_stdout_and_failure_exit_reach_the_log(qtbot, tmp_path: Path) -> None:
    """A stand-in converter script (any executable works): prints a stray line, then fails."""
    launcher = stand_in_converter(
        tmp_path,
        "import json, sys, time\n"
        "print('a stray line')\n"
        "print(json.dumps({'event': 'log', 'message': 'loaded 2 layers'}), flush=True)\n"
        "time.sleep(0.3)\n"
        "print('INFO converter.convert: loaded 2 layers', file=sys.stderr, flush=True)\n"
        "print('Traceback: a real problem', file=sys.stderr, flush=True)\n"
        "print(json.dumps({'event': 'progress', 'stage': 'load', 'stage_fraction': 0.5, 'overall': 0.1}))\n"
        "print(json.dumps({'event': 'error', 'message': 'no weights found in the folder'}))\n"
        "sys.exit(1)\n",
    )
    process = ConverterProcess(executable=launcher)
    logged: list[str] = []
    process.logLine.connect(logged.append)
    with qtbot.waitSignal(process.finished, timeout=20000) as finished:
        process.start(ConversionRequest("owner/model", tmp_path / "out"))
    outcome = finished.args[0]
    assert outcome.status == "error" and outcome.message == "no weights found in the folder"
    assert "a stray line" in logged and "Traceback: a real problem" in logged  # as written
    assert logged.count("Loaded 2 layers.") == 1  # stderr's copy of a JSON log line is dropped
    assert not any(line.startswith("INFO ") for line in logged)
    assert process.tracker.stage("load").fraction == 0.5
    assert not (tmp_path / "out").exists()


STUBBORN_CONVERTER = """
import json, os, signal, sys, time
from pathlib import Path
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a converter stuck in native code
output = Path(sys.argv[sys.argv.index("-o") + 1]).resolve()
staging = output.parent / f".{output.name}.partial-{os.getpid()}"
staging.mkdir(parents=True)
(staging / "weight.bin").write_bytes(b"x" * 1000)
print(json.dumps({"event": "progress", "stage": "convert", "stage_fraction": 0.3}), flush=True)
time.sleep(60)
"""


@pytest.fixture
def stubborn_converter(tmp_path: Path) -> str:
    """A stand-in converter that ignores SIGTERM after writing a staging folder, as
    converter.convert names it (so only SIGKILL stops it and the app must clean up)."""
    return stand_in_converter(tmp_path, STUBBORN_CONVERTER)


def test_cancel_kills_a_stubborn_converter_and_removes_its_staging(
    qtbot, tmp_path: Path, stubborn_converter: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("app.conversion.converter_process.CANCEL_GRACE_MS", 300)
    process = ConverterProcess(executable=stubborn_converter)
    parent = tmp_path / "models"
    with qtbot.waitSignal(process.progressChanged, timeout=20000):
        process.start(ConversionRequest("owner/model", parent / "model-int4"))
    assert next(p.name for p in parent.iterdir()).startswith(".model-int4.partial-")
    with qtbot.waitSignal(process.finished, timeout=20000) as finished:
        process.cancel()
    outcome = finished.args[0]
    assert outcome.status == "cancelled" and outcome.leftovers == ()
    assert "The converter did not stop in time, so it was ended." in process.tracker.log
    assert list(parent.iterdir()) == []


def test_quitting_mid_conversion_leaves_nothing(
    qtbot, tmp_path: Path, stubborn_converter: str
) -> None:
    process = ConverterProcess(executable=stubborn_converter)
    parent = tmp_path / "models"
    outcomes = []
    process.finished.connect(outcomes.append)
    with qtbot.waitSignal(process.progressChanged, timeout=20000):
        process.start(ConversionRequest("owner/model", parent / "model-int4"))
    process.wait_closed(timeout_ms=300)
    assert not process.is_running()
    assert [o.status for o in outcomes] == ["cancelled"]
    assert list(parent.iterdir()) == []


SLOW_TO_EXIT_CONVERTER = """
import json, os, signal, sys, time
from pathlib import Path
output = Path(sys.argv[sys.argv.index("-o") + 1]).resolve()
staging = output.parent / f".{output.name}.partial-{os.getpid()}"
staging.mkdir(parents=True)

def on_term(signum, frame):
    print(json.dumps({"event": "cancelled", "message": "conversion cancelled"}), flush=True)
    time.sleep(0.6)  # freeing memory, as a real one does after it said so
    sys.exit(130)

signal.signal(signal.SIGTERM, on_term)
print(json.dumps({"event": "progress", "stage": "convert", "stage_fraction": 0.3}), flush=True)
time.sleep(60)
"""


def test_a_converter_that_said_cancelled_is_not_reported_as_stuck(
    qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 24: Cancel ended with "did not stop in time; killing it" after the converter had
    already said "cancelled"."""
    monkeypatch.setattr("app.conversion.converter_process.CANCEL_GRACE_MS", 400)
    process = ConverterProcess(executable=stand_in_converter(tmp_path, SLOW_TO_EXIT_CONVERTER))
    parent = tmp_path / "models"
    with qtbot.waitSignal(process.progressChanged, timeout=20000):
        process.start(ConversionRequest("owner/model", parent / "model-int4"))
    with qtbot.waitSignal(process.finished, timeout=20000) as finished:
        process.cancel()
    assert finished.args[0].status == "cancelled"
    log = process.tracker.log
    assert not any("did not stop" in line for line in log), log
    assert log[0] == "Cancelling…" and log[-1].startswith("Cancelled after ")
    assert list(parent.iterdir()) == []
