"""Issue 16, defect 5: "Try the demo model" shows progress and Cancel, and quitting stops it.

The real demo downloads 93 MB with pip and converts SmolLM2 for minutes: the two ends are replaced
by stand-ins (a fetch that returns a local .gguf file, and a converter script that speaks the
converter's JSON lines and stages its output the way ``converter.convert`` does). Everything in
between is the app's: the window, the welcome page, ``DemoConversion`` and ``ConverterProcess``.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.conversion.demo_conversion import DemoConversion
from app.conversion.demo_setup import demo_model_dir
from converter.demo_model import _run_cancellable
from converter.progress import ConversionCancelled

LOAD_TIMEOUT_MS = 120_000

# A converter stand-in: stages its output as ".<name>.partial-<pid>" beside it, reports progress,
# then either waits (to be cancelled) or copies MODEL into place and reports done. On SIGTERM it
# does what the real CLI does: removes its staging folder and exits 130 with a "cancelled" line.
STANDIN_CONVERTER = """
import json, os, shutil, signal, sys, time
from pathlib import Path
MODEL = {model!r}
GATE = Path({gate!r}) if {gate!r} else None  # wait for this file before finishing
output = Path(sys.argv[sys.argv.index("-o") + 1]).resolve()
staging = output.parent / f".{{output.name}}.partial-{{os.getpid()}}"
staging.mkdir(parents=True)
(staging / "weight.bin").write_bytes(b"x" * 1000)

def cancelled(*_):
    shutil.rmtree(staging, ignore_errors=True)
    print(json.dumps({{"event": "cancelled", "message": "conversion cancelled"}}), flush=True)
    sys.exit(130)

signal.signal(signal.SIGTERM, cancelled)
for stage, overall in (("resolve", 0.05), ("load", 0.12), ("convert", 0.4)):
    print(json.dumps({{"event": "progress", "stage": stage, "stage_fraction": 0.5,
                      "overall": overall, "message": "working"}}), flush=True)
if not MODEL:
    time.sleep(120)
while GATE is not None and not GATE.exists():
    time.sleep(0.05)
shutil.rmtree(staging)
shutil.copytree(MODEL, staging)
os.replace(staging, output)
print(json.dumps({{"event": "done", "output": str(output), "overall": 1.0}}), flush=True)
"""


def _standin(tmp_path: Path, *, model: Path | None, gate: Path | None = None) -> str:
    script = tmp_path / "standin_converter.py"
    script.write_text(
        STANDIN_CONVERTER.format(model=str(model) if model else "", gate=str(gate) if gate else "")
    )
    launcher = tmp_path / "standin-converter"
    launcher.write_text(f'#!/bin/sh\nexec {sys.executable} {script} "$@"\n')
    launcher.chmod(0o755)
    return str(launcher)


@pytest.fixture
def demo_source(tmp_path: Path) -> Path:
    source = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    source.write_bytes(b"GGUF stand-in")
    return source


def _use_standins(
    window, tmp_path: Path, source: Path, *, model: Path | None, gate: Path | None = None
) -> None:
    window.demo.fetch = lambda _cancelled: source
    window.demo.process.executable = _standin(tmp_path, model=model, gate=gate)


def _staging_pids() -> list[int]:
    parent = demo_model_dir().parent
    if not parent.is_dir():
        return []
    return [int(p.name.rsplit("-", 1)[1]) for p in parent.iterdir() if ".partial-" in p.name]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _start_demo(qtbot, window) -> int:
    """Click the demo card; wait for the converter's first progress; return its pid."""
    assert window.current_page == "welcome"
    qtbot.mouseClick(window.welcome.buttons["demo"], Qt.MouseButton.LeftButton)
    panel = window.welcome.demo_progress
    assert panel.isVisible() and panel.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: (panel.fraction or 0) > 0.3, timeout=30_000)
    assert "Converting SmolLM2-135M-Instruct · Building the Core ML program… " in panel.label.text()
    assert not window.welcome.buttons["demo"].isEnabled()  # one set-up at a time
    pids = _staging_pids()
    assert len(pids) == 1 and _alive(pids[0])
    return pids[0]


def test_the_demo_shows_progress_and_cancel_leaves_nothing(
    qtbot, make_window, tmp_path: Path, demo_source: Path
) -> None:
    window = make_window()
    _use_standins(window, tmp_path, demo_source, model=None)
    pid = _start_demo(qtbot, window)
    window.grab().save("/tmp/i16-demo-progress.png")
    with qtbot.waitSignal(window.demo.finished, timeout=20_000) as finished:
        qtbot.mouseClick(window.welcome.demo_progress.cancel_button, Qt.MouseButton.LeftButton)
    assert finished.args[0].status == "cancelled"
    assert window.welcome.status.text() == "Cancelled; nothing was written."
    assert not window.welcome.demo_progress.isVisible()
    assert window.welcome.buttons["demo"].isEnabled()
    assert not _alive(pid)
    assert list(demo_model_dir().parent.iterdir()) == []  # no model, no staging folder


def test_closing_the_window_ends_the_demo_converter(
    qtbot, make_window, tmp_path: Path, demo_source: Path
) -> None:
    window = make_window()
    _use_standins(window, tmp_path, demo_source, model=None)
    pid = _start_demo(qtbot, window)
    window.close()
    assert not window.demo.is_running()
    assert not _alive(pid)
    assert list(demo_model_dir().parent.iterdir()) == []


def test_the_converted_demo_model_is_loaded(
    qtbot, make_window, tmp_path: Path, demo_source: Path, tiny_chat_model: Path
) -> None:
    window = make_window()
    _use_standins(window, tmp_path, demo_source, model=tiny_chat_model)
    qtbot.mouseClick(window.welcome.buttons["demo"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.bridge.model_info is not None, timeout=LOAD_TIMEOUT_MS)
    assert window.bridge.model_info.path == str(demo_model_dir())
    assert window.current_page == "chat"
    assert not window.welcome.demo_progress.isVisible()
    assert [p.name for p in demo_model_dir().parent.iterdir()] == [demo_model_dir().name]


def test_a_model_opened_meanwhile_stays_loaded(
    qtbot, make_window, tmp_path: Path, demo_source: Path, tiny_chat_model: Path
) -> None:
    window = make_window()
    gate = tmp_path / "finish-now"
    _use_standins(window, tmp_path, demo_source, model=tiny_chat_model, gate=gate)
    _start_demo(qtbot, window)
    window.load_model(str(tiny_chat_model))  # the user opened another model meanwhile
    qtbot.waitUntil(lambda: window.bridge.model_info is not None, timeout=LOAD_TIMEOUT_MS)
    with qtbot.waitSignal(window.demo.finished, timeout=20_000) as finished:
        gate.touch()
    assert finished.args[0].status == "done"
    assert window.bridge.model_info.path == str(tiny_chat_model)
    ready = "The demo model is ready: open it in Settings → Model."
    assert window.welcome.status.text() == ready and window.status_line.notice == ready


def test_cancelling_the_download_stops_it(qtbot) -> None:
    started = threading.Event()

    def slow_fetch(cancelled: threading.Event) -> Path:
        started.set()
        if cancelled.wait(timeout=60):
            raise ConversionCancelled("the demo model's download was cancelled")
        raise AssertionError("not cancelled")

    demo = DemoConversion(fetch=slow_fetch)
    progress = []
    demo.progressChanged.connect(progress.append)
    assert demo.start()
    assert not demo.start()  # already running
    assert progress[0].phase == "fetch" and progress[0].fraction is None
    assert started.wait(10)
    with qtbot.waitSignal(demo.finished, timeout=10_000) as finished:
        demo.cancel()
    assert finished.args[0].status == "cancelled"
    assert not demo.is_running() and not demo.process.is_running()


def test_a_failed_download_says_why(qtbot) -> None:
    def failing_fetch(_cancelled: threading.Event) -> Path:
        raise RuntimeError("could not download the demo model package with pip: offline")

    demo = DemoConversion(fetch=failing_fetch)
    with qtbot.waitSignal(demo.finished, timeout=10_000) as finished:
        demo.start()
    outcome = finished.args[0]
    assert outcome.status == "error"
    assert outcome.message == (
        "The demo model could not be downloaded: could not download the demo model package "
        "with pip: offline"
    )


def test_the_download_command_ends_when_cancelled() -> None:
    cancelled = threading.Event()
    threading.Timer(0.3, cancelled.set).start()
    with pytest.raises(ConversionCancelled, match="download was cancelled"):
        _run_cancellable([sys.executable, "-c", "import time; time.sleep(60)"], cancelled)
    assert _run_cancellable([sys.executable, "-c", "print('ok')"], None) == (0, "")


def test_an_offline_demo_download_says_the_index_cannot_be_reached(
    qtbot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 24: offline, the Hub's Look Up said so at once; the demo's download ended in pip's
    own words ("No matching distribution found"). The real pip here, against an index nothing
    listens on."""
    for name, value in {
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
        "PIP_EXTRA_INDEX_URL": "",
        "PIP_FIND_LINKS": "",
        "PIP_RETRIES": "0",
        "PIP_TIMEOUT": "2",
    }.items():
        monkeypatch.setenv(name, value)
    demo = DemoConversion()
    with qtbot.waitSignal(demo.finished, timeout=60_000) as finished:
        demo.start()
    outcome = finished.args[0]
    assert outcome.status == "error"
    assert "cannot be reached from this computer" in outcome.message, outcome.message
    assert "Check the network connection" in outcome.message
