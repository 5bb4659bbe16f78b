"""UI latency: the event loop's stalls while an answer streams, and launch → window shown.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/ui_latency.py [--model FOLDER]

Stalls: a 5 ms precise QTimer ticks on the GUI thread while the real engine streams an answer from
the model (default: the demo model, SmolLM2-135M-Instruct int4); a stall is how late a tick came
(gap minus the interval). Goal: p99 ≤ 50 ms. Launch: ``python -m app`` with the startup probe, run
several times; the app reports the time from its first line to ``window.show()`` returning, and
this script the wall-clock time from spawning the process to that report. Goal: ≤ 1 s.

Core ML stand-in (``--standin``, default ``load_seconds=4,predict_seconds=0.25``): the engine process
runs ``engine/runtime/coreml_standin.py``, which holds the GIL the way coremltools does on a Mac (a 4 s load
and 250 ms per predict, on top of the reference runtime); the ticks are measured from before the
window is shown through the load, the prefill and the streaming. Goal: p99 ≤ 50 ms, max ≤ 150 ms.
The engine runs in its own process, so none of that GIL time reaches the GUI thread.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks._goals import Figure, at_most, report  # noqa: E402

TICK_MS = 5
GOAL_STALL_P99_MS = 50.0
GOAL_STALL_MAX_MS = 150.0
DEFAULT_STANDIN = "load_seconds=4,predict_seconds=0.25"
GOAL_LAUNCH_SECONDS = 1.0
PROMPT = "Explain in a few sentences why the sky is blue."


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def find_model() -> Path:
    """The demo model through benchmarks/_models.py, in a subprocess (it may convert: torch)."""
    code = "import sys; sys.path.insert(0, 'benchmarks'); import _models; print(_models.demo_model_folder())"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"error: no demo model (pass --model FOLDER): {result.stderr[-500:]}")
    return Path(result.stdout.strip().splitlines()[-1])


def measure_launch(runs: int) -> dict[str, object]:
    shown: list[float] = []
    wall: list[float] = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="coreml-chat-launch-") as home:
            env = {
                **os.environ,
                "COREML_CHAT_HOME": home,
                "COREML_CHAT_STARTUP_PROBE": "1",
                "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen"),
            }
            started = time.perf_counter()
            process = subprocess.Popen(
                [sys.executable, "-m", "app"],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            assert process.stdout is not None
            for line in process.stdout:
                if line.startswith("{"):
                    wall.append(time.perf_counter() - started)
                    shown.append(float(json.loads(line)["window_shown_seconds"]))
                    break
            process.wait(timeout=60)
    return {
        "runs": runs,
        "in_app_seconds_median": round(statistics.median(shown), 3),
        "spawn_to_shown_seconds_median": round(statistics.median(wall), 3),
        "spawn_to_shown_seconds_max": round(max(wall), 3),
    }


def _stall_figures(ticks: list[float]) -> dict[str, object]:
    gaps = [(b - a) * 1000 for a, b in itertools.pairwise(ticks)]
    stalls = [max(0.0, gap - TICK_MS) for gap in gaps]
    return {
        "ticks": len(gaps),
        "stall_ms_p50": round(percentile(stalls, 0.50), 2),
        "stall_ms_p99": round(percentile(stalls, 0.99), 2),
        "stall_ms_max": round(max(stalls, default=0.0), 2),
    }


def _in_process_factory(on_event):
    """Yesterday's set-up, for comparison: the engine worker as a thread of the GUI's process."""
    from engine.runtime.coreml_standin import loader_from_environment
    from engine.worker import EngineWorker

    return EngineWorker(on_event, load=loader_from_environment())


def measure_stalls(
    model: Path, *, max_new_tokens: int, standin: str = "", in_process: bool = False
) -> dict[str, object]:
    """Ticks from before the window shows, through the model's load, prefill and streaming."""
    from engine.runtime.coreml_standin import STANDIN_ENV

    os.environ["COREML_CHAT_HOME"] = tempfile.mkdtemp(prefix="coreml-chat-bench-")
    if standin:
        os.environ[STANDIN_ENV] = standin  # the engine process inherits it
    else:
        os.environ.pop(STANDIN_ENV, None)
    from PySide6.QtCore import Qt, QTimer
    from PySide6.QtWidgets import QApplication

    from app.chat.engine_bridge import EngineBridge
    from app.conversations.store import ConversationStore
    from app.settings.app_settings import AppSettings
    from app.settings.settings_store import SettingsStore
    from app.shell.main_window import MainWindow
    from app.ui.theme import apply_theme
    from engine.messages import GenerationConfig

    app = QApplication.instance() or QApplication([])
    apply_theme(app)
    settings = AppSettings(
        model_path=str(model),
        generation=GenerationConfig(max_new_tokens=max_new_tokens, temperature=0.0, seed=0),
    )
    started = time.perf_counter()
    bridge = EngineBridge(_in_process_factory if in_process else None)
    window = MainWindow(
        store=ConversationStore(), bridge=bridge, settings=SettingsStore(settings, save=None)
    )
    window.show()
    shown = time.perf_counter()  # building the window is the launch figure; the loop runs now
    ticks: list[float] = []
    timer = QTimer(interval=TICK_MS)
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    window.start()  # the engine starts and loads the model: the ticks go on through all of it

    def pump_until(predicate, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise SystemExit("error: timed out waiting for the engine")
            app.processEvents()
            time.sleep(0.005)

    pump_until(lambda: window.bridge.model_info is not None, 600)
    loaded = time.perf_counter()
    tokens: list[float] = []
    window.controller.answerText.connect(lambda _text: tokens.append(time.perf_counter()))
    finished = []
    window.bridge.generationFinished.connect(finished.append)
    window.composer.input.setPlainText(PROMPT)
    window.composer._on_submit()
    pump_until(lambda: bool(finished), 600)
    timer.stop()
    first_token = tokens[0] if tokens else ticks[-1]
    stats = finished[0].stats
    runtime = window.bridge.model_info.runtime_name if window.bridge.model_info else ""
    window.close()
    whole = _stall_figures(ticks)
    return {
        "model": str(model),
        "runtime": runtime,
        "engine": "in-process thread" if in_process else "process",
        "core_ml_standin": standin or None,
        "window_shown_seconds": round(shown - started, 3),
        "load_seconds": round(loaded - shown, 2),
        "generated_tokens": stats.generated_tokens,
        "decode_tokens_per_second": round(stats.decode_tokens_per_second, 2),
        "launch_to_finish": whole,
        "during_load": _stall_figures([t for t in ticks if t <= loaded]),
        "prefill_and_streaming": _stall_figures([t for t in ticks if t >= loaded]),
        "streaming": _stall_figures([t for t in ticks if t >= first_token]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a converted model folder")
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument(
        "--standin",
        default=DEFAULT_STANDIN,
        help="the Core ML stand-in's timings for the second run ('' skips it)",
    )
    parser.add_argument("--skip-reference", action="store_true", help="only the stand-in run")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run the engine as a thread of the GUI's process (the set-up before issue 12)",
    )
    parser.add_argument("--launch-runs", type=int, default=5)
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    model = args.model or find_model()
    details: dict[str, dict] = {}
    figures: dict[str, Figure] = {}
    if args.launch_runs > 0:
        details["launch"] = launch = measure_launch(args.launch_runs)
        figures["launch_spawn_to_shown_seconds_median"] = at_most(
            launch["spawn_to_shown_seconds_median"], GOAL_LAUNCH_SECONDS, "s"
        )
    if not args.skip_reference:
        details["streaming"] = measure_stalls(
            model, max_new_tokens=args.max_new_tokens, in_process=args.in_process
        )
    if args.standin:
        details["core_ml_standin"] = measure_stalls(
            model,
            max_new_tokens=args.max_new_tokens,
            standin=args.standin,
            in_process=args.in_process,
        )
    for run in ("streaming", "core_ml_standin"):
        if run in details:
            whole = details[run]["launch_to_finish"]
            figures[f"{run}_stall_ms_p99"] = at_most(whole["stall_ms_p99"], GOAL_STALL_P99_MS, "ms")
            figures[f"{run}_stall_ms_max"] = at_most(whole["stall_ms_max"], GOAL_STALL_MAX_MS, "ms")
    report("ui_latency", figures, details, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
