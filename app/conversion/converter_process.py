"""Run the converter as a subprocess and follow its JSON progress lines (the Converter pane's controller).

The app never imports ``converter.convert`` (it imports torch): it starts
``python -m converter.cli SOURCE -o OUT --json-progress …`` (or the frozen app's own executable with
``--convert``) through ``QProcess`` and reads ``converter.progress.ProgressEvent`` lines from its
stdout. ``ConversionTracker`` is the Qt-free part (per-stage and overall progress, log lines, the
outcome) and is tested on its own; ``ConverterProcess`` adds the process.

Cancel sends SIGTERM (the CLI cancels cleanly and removes its staging folder), then SIGKILL after a
grace period; either way its staging folders (``converter.options.staging_folder``) are swept
afterwards and the outcome says whether anything was left behind. The request, its validation and
its command line are the converter's torch-free contract, ``converter.options``.
"""

from __future__ import annotations

import logging
import math
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from PySide6.QtCore import QCoreApplication, QObject, QProcess, QProcessEnvironment, QTimer, Signal

from app.conversion.progress_words import log_sentence
from converter.options import ConversionRequest, problems, stages_for, sweep_staging
from converter.progress import EXIT_CANCELLED, EXIT_OK, STAGES, ProgressEvent

logger = logging.getLogger(__name__)

CANCEL_GRACE_MS = 5000
# Between two reports a stage's bar creeps on towards (never to) the stage's end, so every stage
# shows movement, also one that reports nothing for a minute (a download in Resolve): at most
# CREEP_CEILING of what is left, half of that after CREEP_SECONDS · ln 2.
CREEP_SECONDS = 30.0
CREEP_CEILING = 0.8
MIRRORED_LOG_LINE = re.compile(r"^(?:INFO|DEBUG) [\w.]+: (.*)$")
# What libraries print on stderr that tells the user nothing: progress bars (tqdm redraws with a
# carriage return, or "Fetching 3 files:  33%|███▎      | 1/3 [00:01<00:02, 1.2it/s]"), Python
# warnings (the "file.py:12: FutureWarning: …" line and the source line under it), coremltools'
# note about an untested torch version, and its Core ML bindings missing off macOS.
PROGRESS_BAR = re.compile(r"\d+%\|.*\|\s*[\d.]+\w?/[\d.?]+\w?\s*\[")
PYTHON_WARNING = re.compile(r"^\S.*:\d+: \w*Warning: ")
LIBRARY_NOTES = re.compile(
    r"Torch version [\w.+]+ has not been tested with coremltools|Failed to load _ML\w*Proxy"
)
# The same libraries, asked to be quiet from the start (their own switches).
QUIET_LIBRARIES_ENV = {
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TQDM_DISABLE": "1",  # coremltools' bars reach our progress through our own class, not tqdm
}


class LibraryNoiseFilter:
    """Decides which converter stderr lines are library noise (kept out of the log view)."""

    def __init__(self) -> None:
        self._after_warning = False

    def is_noise(self, line: str) -> bool:
        after_warning, self._after_warning = self._after_warning, False
        if "\r" in line or PROGRESS_BAR.search(line) or LIBRARY_NOTES.search(line):
            return True
        if PYTHON_WARNING.match(line):
            self._after_warning = True  # its source line follows, indented
            return True
        return after_warning and line[:1].isspace()


def converter_command(
    request: ConversionRequest, *, executable: str | None = None, frozen: bool | None = None
) -> list[str]:
    """The converter's command line: ``python -m converter.cli …`` or ``<app> --convert …``."""
    executable = executable or sys.executable
    frozen = getattr(sys, "frozen", False) if frozen is None else frozen
    head = [executable, "--convert"] if frozen else [executable, "-m", "converter.cli"]
    return [*head, *request.to_argv(), "--json-progress"]


# --- Qt-free tracking of one run ----------------------------------------------------------------


@dataclass
class StageProgress:
    name: str
    fraction: float = 0.0
    message: str = ""


@dataclass(frozen=True)
class ConversionOutcome:
    status: Literal["done", "error", "cancelled"]
    message: str
    exit_code: int | None
    output: str = ""  # the model folder, when done
    verification: dict[str, Any] | None = None
    seconds: float = 0.0
    leftovers: tuple[str, ...] = ()  # partial files that could not be removed (should be empty)


def outcome_sentence(outcome: ConversionOutcome) -> str:
    """The log's last line."""
    took = _duration(outcome.seconds)
    if outcome.status == "done":
        return f"Converted in {took}."
    if outcome.status == "cancelled":
        left = f" Could not remove: {', '.join(outcome.leftovers)}." if outcome.leftovers else ""
        return f"Cancelled after {took}; nothing of it was kept.{left}"
    return f"Stopped after {took} with an error."


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def stage_list(request: ConversionRequest) -> list[StageProgress]:
    """The stages ``request`` runs, as the converter reports them (``stages_for``)."""
    return [StageProgress(name) for name in stages_for(request)]


@dataclass
class ConversionTracker:
    """Folds the converter's stdout lines into per-stage progress, log sentences and a final
    event; ``shown`` is what the bars draw (the reported progress, crept on between reports)."""

    stages: list[StageProgress] = field(default_factory=list)  # stage_list(request)
    overall: float = 0.0
    current_stage: str = ""
    log: list[str] = field(default_factory=list)
    final_event: ProgressEvent | None = None
    reported_at: float = 0.0  # time.monotonic() of the last progress report
    _shown_stage: float = 0.0
    _shown_overall: float = 0.0

    def stage(self, name: str) -> StageProgress | None:
        return next((s for s in self.stages if s.name == name), None)

    def handle_line(self, line: str, *, now: float | None = None) -> ProgressEvent | None:
        """Fold one stdout line in; a non-JSON line becomes a log sentence (returns None)."""
        line = line.rstrip("\r\n")
        if not line.strip():
            return None
        try:
            event = ProgressEvent.from_json(line)
        except (ValueError, TypeError):
            self._log(log_sentence(line))
            return None
        if event.event == "progress":
            self._on_progress(event, time.monotonic() if now is None else now)
        elif event.event == "log":  # the converter's own words: as a sentence
            level = "WARNING" if event.level == "warning" else "INFO"
            self._log(log_sentence(f"{level} converter: {event.message}"))
        elif event.event in ("done", "error", "cancelled"):
            self.final_event = event
            if event.event == "done":
                self.overall = self._shown_overall = 1.0
                for stage in self.stages:
                    stage.fraction = 1.0
            elif event.event == "error" and event.message:
                self._log(log_sentence(f"ERROR converter: {event.message}"))
        else:
            self._log(log_sentence(line))
        return event

    def _log(self, sentence: str | None) -> None:
        if sentence:
            self.log.append(sentence)

    def shown(self, now: float | None = None) -> tuple[float, float]:
        """(overall, running stage) fractions for the bars: as reported, crept on towards the
        stage's end while no report comes; they never go back."""
        stage = self.stage(self.current_stage)
        if stage is None or self.final_event is not None:
            return self.overall, stage.fraction if stage else 0.0
        now = time.monotonic() if now is None else now
        waited = max(0.0, now - self.reported_at)
        creep = (1.0 - stage.fraction) * CREEP_CEILING * (1.0 - math.exp(-waited / CREEP_SECONDS))
        self._shown_stage = max(self._shown_stage, stage.fraction + creep)
        start, share = self._span(stage.name)
        self._shown_overall = max(
            self._shown_overall, self.overall, start + share * self._shown_stage
        )
        return self._shown_overall, self._shown_stage

    def _span(self, name: str) -> tuple[float, float]:
        """Where stage ``name`` starts in the overall fraction, and its share (as the converter
        weighs them, over the stages of this run)."""
        weights = dict(STAGES)
        total = sum(weights.get(s.name, 0.0) for s in self.stages) or 1.0
        start = 0.0
        for stage in self.stages:
            share = weights.get(stage.name, 0.0) / total
            if stage.name == name:
                return start, share
            start += share
        return start, 0.0

    def _on_progress(self, event: ProgressEvent, now: float) -> None:
        stage = self.stage(event.stage)
        if stage is None:  # a stage this app does not know: keep it, at the end
            stage = StageProgress(event.stage)
            self.stages.append(stage)
        names = [s.name for s in self.stages]
        for earlier in self.stages[: names.index(stage.name)]:
            earlier.fraction = 1.0  # stages run in order: the ones before are done
        stage.fraction = min(max(event.stage_fraction, 0.0), 1.0)
        stage.message = event.message
        if stage.name != self.current_stage:
            self._shown_stage = 0.0
        self.current_stage = stage.name
        self.reported_at = now
        self.overall = max(self.overall, min(max(event.overall, 0.0), 1.0))

    def outcome(
        self, exit_code: int | None, *, seconds: float, cancelled: bool
    ) -> ConversionOutcome:
        final = self.final_event
        if exit_code == EXIT_OK and final is not None and final.event == "done":
            return ConversionOutcome(
                "done",
                final.message or "converted",
                exit_code,
                output=final.output,
                verification=final.verification,
                seconds=seconds,
            )
        if cancelled or exit_code == EXIT_CANCELLED or (final and final.event == "cancelled"):
            return ConversionOutcome(
                "cancelled", "conversion cancelled", exit_code, seconds=seconds
            )
        if final is not None and final.event == "error":
            message = final.message
        elif exit_code is None:
            message = "the converter crashed (no exit code)"
        else:
            tail = next((line for line in reversed(self.log) if line.strip()), "")
            message = f"the converter stopped with exit code {exit_code}" + (
                f": {tail}" if tail else ""
            )
        return ConversionOutcome("error", message, exit_code, seconds=seconds)


# --- The process --------------------------------------------------------------------------------


class ConverterProcess(QObject):
    """One conversion at a time in a ``QProcess``; signals arrive on the GUI thread."""

    started = Signal()
    progressChanged = Signal()  # read ``tracker`` for stages and overall
    logLine = Signal(str)
    finished = Signal(object)  # ConversionOutcome

    def __init__(self, parent: QObject | None = None, *, executable: str | None = None) -> None:
        super().__init__(parent)
        self.executable = executable
        self.tracker = ConversionTracker()
        self.request: ConversionRequest | None = None
        self._process: QProcess | None = None
        self._stdout_buffer = b""
        self._stderr_buffer = b""
        self._noise = LibraryNoiseFilter()
        self._started_at = 0.0
        self._ended_at = 0.0
        self._cancelled = False
        self._pid = 0
        self._kill_timer = QTimer(self)
        self._kill_timer.setSingleShot(True)
        self._kill_timer.timeout.connect(self._kill)
        application = QCoreApplication.instance()
        if application is not None:  # quitting mid-conversion leaves nothing behind either
            application.aboutToQuit.connect(self.wait_closed)

    # state
    def is_running(self) -> bool:
        return self._process is not None

    def elapsed(self) -> float:
        if not self._started_at:
            return 0.0
        end = self._ended_at if self._ended_at else time.monotonic()
        return end - self._started_at

    # actions
    def start(self, request: ConversionRequest) -> None:
        """Start converting; raises ``ValueError`` (one line per problem) for a bad request."""
        if self._process is not None:
            raise RuntimeError("a conversion is already running; cancel it first")
        found = problems(request)
        if found:
            raise ValueError("; ".join(found))
        Path(request.output_dir).expanduser().parent.mkdir(parents=True, exist_ok=True)
        command = converter_command(request, executable=self.executable)
        self.request = request
        self.tracker = ConversionTracker(stages=stage_list(request))
        self._stdout_buffer = self._stderr_buffer = b""
        self._noise = LibraryNoiseFilter()
        self._cancelled = False
        self._ended_at = 0.0
        process = QProcess(self)
        environment = QProcessEnvironment.systemEnvironment()
        environment.insert("PYTHONUNBUFFERED", "1")
        environment.insert("PYTHONIOENCODING", "utf-8")
        for name, value in QUIET_LIBRARIES_ENV.items():
            environment.insert(name, value)
        if request.token:
            environment.insert("HF_TOKEN", request.token)
        process.setProcessEnvironment(environment)
        process.readyReadStandardOutput.connect(self._read_stdout)
        process.readyReadStandardError.connect(self._read_stderr)
        process.finished.connect(self._on_finished)
        process.errorOccurred.connect(self._on_error)
        self._process = process
        self._started_at = time.monotonic()
        logger.info("starting the converter: %s", " ".join(command))
        process.start(command[0], command[1:])
        self._pid = int(process.processId())
        self.started.emit()

    def cancel(self) -> None:
        """Ask the converter to stop (SIGTERM), and kill it if it has not stopped in a few seconds."""
        if self._process is None or self._cancelled:
            return
        self._cancelled = True
        self._emit_log("Cancelling…")
        self._process.terminate()
        self._kill_timer.start(CANCEL_GRACE_MS)

    def wait_closed(self, timeout_ms: int = 3000) -> None:
        """Stop a running conversion and wait for it (the app is quitting): SIGTERM, then SIGKILL
        after ``timeout_ms``; the partial output is removed before this returns."""
        if self._process is None:
            return
        self._cancelled = True
        process = self._process
        process.terminate()
        if not process.waitForFinished(timeout_ms):
            process.kill()
            process.waitForFinished(timeout_ms)
        if self._process is not None:  # finished was not delivered: finish by hand
            self._on_finished(-1, QProcess.ExitStatus.CrashExit)

    # process plumbing
    def _kill(self) -> None:
        if self._process is None:
            return
        if self.tracker.final_event is not None:  # it said it stopped, then did not exit
            logger.info("the converter reported its end but had not exited; killing it")
        else:
            logger.warning("the converter did not stop after SIGTERM; killing it")
            self._emit_log("The converter did not stop in time, so it was ended.")
        self._process.kill()

    def _emit_log(self, line: str) -> None:
        self.tracker.log.append(line)
        self.logLine.emit(line)

    def _read_stdout(self) -> None:
        if self._process is None:
            return
        self._stdout_buffer += bytes(self._process.readAllStandardOutput().data())
        *lines, self._stdout_buffer = self._stdout_buffer.split(b"\n")
        for raw in lines:
            self._handle_stdout_line(raw.decode("utf-8", errors="replace"))

    def _handle_stdout_line(self, line: str) -> None:
        logged = len(self.tracker.log)
        event = self.tracker.handle_line(line)
        for new_line in self.tracker.log[logged:]:
            self.logLine.emit(new_line)
        if event is not None and event.event == "progress":
            self.progressChanged.emit()
        elif (
            event is not None and event is self.tracker.final_event and self._kill_timer.isActive()
        ):
            # It stopped and is cleaning up (freeing memory, removing its staging folder): a
            # fresh grace period for that, rather than a kill in the middle of it.
            self._kill_timer.start(CANCEL_GRACE_MS)

    def _read_stderr(self) -> None:
        if self._process is None:
            return
        self._stderr_buffer += bytes(self._process.readAllStandardError().data())
        *lines, self._stderr_buffer = self._stderr_buffer.split(b"\n")
        for raw in lines:
            text = raw.decode("utf-8", errors="replace").rstrip()
            if self._noise.is_noise(text):
                logger.debug("converter (library noise): %s", text)
                continue
            sentence = log_sentence(text)
            if MIRRORED_LOG_LINE.match(text) and sentence in self.tracker.log:
                continue  # the CLI logs to stderr what its JSON "log" lines already said
            if sentence:
                self._emit_log(sentence)

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart and self._process is not None:
            message = f"cannot start the converter ({self._process.program()}): {self._process.errorString()}"
            self._finish(ConversionOutcome("error", message, None, seconds=self.elapsed()))

    def _on_finished(self, exit_code: int, exit_status: QProcess.ExitStatus) -> None:
        if self._process is None:
            return
        self._read_stdout()
        self._read_stderr()
        if self._stdout_buffer.strip():
            self._handle_stdout_line(self._stdout_buffer.decode("utf-8", errors="replace"))
        self._stdout_buffer = b""
        crashed = exit_status == QProcess.ExitStatus.CrashExit
        outcome = self.tracker.outcome(
            None if crashed else exit_code, seconds=self.elapsed(), cancelled=self._cancelled
        )
        self._finish(outcome)

    def _finish(self, outcome: ConversionOutcome) -> None:
        self._kill_timer.stop()
        self._ended_at = time.monotonic()
        process, self._process = self._process, None
        if outcome.status != "done":
            leftovers = self._remove_partial_output()
            outcome = ConversionOutcome(
                outcome.status,
                outcome.message,
                outcome.exit_code,
                seconds=outcome.seconds,
                leftovers=leftovers,
            )
        if process is not None:
            process.deleteLater()
        self._emit_log(outcome_sentence(outcome))
        self.finished.emit(outcome)

    def _remove_partial_output(self) -> tuple[str, ...]:
        """Remove the staging folders the ended converter may leave (a killed one cannot clean
        up); report what could not go. The output folder itself is never touched: the converter
        renames into it only at the very end, and what is there may be another run's model."""
        if self.request is None or not self._pid:
            return ()
        parent = Path(self.request.output_dir).expanduser().resolve().parent
        swept = sweep_staging(parent, pids=[self._pid])
        return tuple(str(path) for path in swept if path.exists())
