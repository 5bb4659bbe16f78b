"""The app's side of the engine process: the bridge's ``Worker``, backed by ``coreml-chat --engine``.

``EngineProcessClient(on_event)`` starts the engine process (the same interpreter with
``-m app --engine``, or the frozen app's own executable with ``--engine``: spawn/exec, never a
fork of the GUI process), writes requests to its stdin on a writer thread (a large request must not
block the GUI thread while the engine holds its GIL) and reads its events on a reader thread, which
calls ``on_event`` there (the bridge forwards them to the GUI thread). No model code runs in the GUI
process: the engine process owns the model, the kv-cache states and the generation loop.

When the engine process dies (a Core ML crash, kill -9, out of memory) the reader sees the end of
its output at once. Every answer still running then ends with ``EngineError`` (plain words: what
happened, that the engine restarts) and ``GenerationFinished`` with finish reason ``interrupted``
and the text received so far; a new engine process starts and reloads the last model. If the process
died while loading that model, it is not loaded again (it would likely die again): the load fails
with an ``EngineError`` instead.

Stop is a promise too: an engine that has not ended every answer Stop applies to within
``STOP_GRACE_SECONDS`` (a C call holding its GIL, so its reader never sees the ``Cancel``) is
killed and restarted the same way; those answers end as cancelled, with what was written so far.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from engine import wire
from engine.exit_status import describe_exit
from engine.messages import (
    Cancel,
    EngineError,
    Event,
    Generate,
    GenerationFinished,
    GenerationStats,
    LoadModel,
    ModelLoaded,
    Request,
    TokenText,
)

logger = logging.getLogger(__name__)

ENGINE_FLAG = "--engine"
HF_TOKEN_ENV = "COREML_CHAT_ENGINE_HF_TOKEN"  # engine.process reads it (not on the command line)
EOF_GRACE_SECONDS = 0.2  # after closing its input, how long the engine may take to exit by itself
TERMINATE_GRACE_SECONDS = 1.0  # after SIGTERM, before SIGKILL
MAX_SILENT_DEATHS = 3  # engine processes in a row that died before sending anything: give up
STOP_GRACE_SECONDS = 1.5  # after Stop, how long answers may run before the engine is restarted
_STOP = object()


def engine_command(*, executable: str | None = None, frozen: bool | None = None) -> list[str]:
    """``[python, -m, app, --engine]``, or the frozen app's ``[executable, --engine]``."""
    executable = executable or sys.executable
    frozen = getattr(sys, "frozen", False) if frozen is None else frozen
    return [executable, ENGINE_FLAG] if frozen else [executable, "-m", "app", ENGINE_FLAG]


def _engine_environment(hf_token: str) -> dict[str, str]:
    env = dict(os.environ)
    if not getattr(sys, "frozen", False):  # the child imports the same code as this process
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH", "")]))
    env.pop(HF_TOKEN_ENV, None)
    if hf_token:
        env[HF_TOKEN_ENV] = hf_token
    return env


@dataclass
class _Answer:
    """What the app has received of a generation still running (for a synthesized end)."""

    pieces: list[str] = field(default_factory=list)

    def finished(self, request_id: int, reason: str = "interrupted") -> GenerationFinished:
        stats = GenerationStats(
            prompt_tokens=0,
            tokens_fed=0,
            generated_tokens=len(self.pieces),
            time_to_first_token=0.0,
            prefill_tokens_per_second=0.0,
            decode_tokens_per_second=0.0,
            cache_length=0,
            context_length=0,
            finish_reason=reason,
        )
        return GenerationFinished(request_id, "".join(self.pieces), stats)


class _EngineProcess:
    """One running engine process with its writer thread."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.popen = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, bufsize=0
        )
        self.outbox: queue.Queue[object] = queue.Queue()
        self.writer = threading.Thread(target=self._write, name="engine-writer", daemon=True)
        self.writer.start()
        logger.info("engine process %d started", self.popen.pid)

    def send(self, data: bytes) -> None:
        self.outbox.put(data)

    def _write(self) -> None:
        stdin = self.popen.stdin
        assert stdin is not None
        while (data := self.outbox.get()) is not _STOP:
            try:
                stdin.write(data)  # type: ignore[arg-type]
            except OSError:  # the process is gone: the reader reports it
                break
        with contextlib.suppress(OSError):
            stdin.close()

    def stop(self, *, grace: float = TERMINATE_GRACE_SECONDS) -> int | None:
        """End of input, then SIGTERM, then SIGKILL: gone within about ``grace`` + 0.2 s."""
        self.outbox.put(_STOP)
        for step, wait in ((None, EOF_GRACE_SECONDS), (self.popen.terminate, grace)):
            if step is not None:
                step()
            try:
                return self.popen.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        self.popen.kill()
        return self.popen.wait()


class EngineProcessClient:
    """``Worker`` for ``EngineBridge``: ``submit``, ``cancel``, ``close``, over the engine process."""

    def __init__(
        self,
        on_event: Callable[[Event], None],
        *,
        hf_token: str = "",
        command: list[str] | None = None,
    ) -> None:
        self._on_event = on_event
        self._hf_token = hf_token
        self._command = command or engine_command()
        self._lock = threading.RLock()
        self._closed = False
        self._last_load: LoadModel | None = None
        self._loaded = False  # the last load's ModelLoaded arrived
        self._answers: dict[int, _Answer] = {}  # generations running in the engine process
        self._heard_from = False  # the current process sent an event
        self._silent_deaths = 0  # processes in a row that died without a word (cannot start?)
        self._broken = ""  # why no engine runs any more (after MAX_SILENT_DEATHS)
        self._stop_forced = False  # the current process was killed because Stop went unheard
        self.stop_grace = STOP_GRACE_SECONDS
        self.restarts = 0
        with self._lock:  # the reader thread waits for this assignment
            self._process = self._start()

    # --- the Worker protocol (GUI thread) ----------------------------------------------------

    @property
    def pid(self) -> int:
        return self._process.popen.pid

    def submit(self, request: Request) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the engine process client is closed: create a new one")
            if self._broken:
                if not isinstance(request, Cancel):
                    request_id = getattr(request, "request_id", None)
                    self._emit(EngineError(request_id, self._broken, kind="engine_stopped"))
                return
            if isinstance(request, LoadModel):
                if self._last_load is not None:  # the old model's memory goes back: new process
                    self._replace_process()
                self._last_load, self._loaded = request, False
            elif isinstance(request, Generate):
                self._answers[request.request_id] = _Answer()
            elif isinstance(request, Cancel):
                self._watch_stop(request)
            self._process.send(wire.encode(request))

    def cancel(self) -> None:
        self.submit(Cancel())

    def close(self, timeout: float = 10.0) -> None:
        """End the engine process: promptly, even in the middle of a load."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            process = self._process
        process.stop(grace=min(timeout, TERMINATE_GRACE_SECONDS))

    # --- processes ---------------------------------------------------------------------------

    def _watch_stop(self, request: Cancel) -> None:
        """Answers this Stop applies to must end within ``stop_grace``, or the engine is ended."""
        if request.request_id is None:
            stopping = set(self._answers)
        else:
            stopping = {request.request_id} & set(self._answers)
        if not stopping:
            return
        timer = threading.Timer(self.stop_grace, self._enforce_stop, args=(self._process, stopping))
        timer.daemon = True
        timer.start()

    def _enforce_stop(self, process: _EngineProcess, stopping: set[int]) -> None:
        with self._lock:
            if self._closed or process is not self._process:
                return
            still = stopping & set(self._answers)
            if not still:
                return
            logger.warning(
                "engine process %d did not stop %s within %.1f s: ending it",
                process.popen.pid,
                sorted(still),
                self.stop_grace,
            )
            self._stop_forced = True
            process.popen.kill()  # the reader sees the end of its output: _on_exit restarts

    def _start(self) -> _EngineProcess:
        self._heard_from = False
        self._stop_forced = False
        process = _EngineProcess(self._command, _engine_environment(self._hf_token))
        reader = threading.Thread(
            target=self._read, args=(process,), name="engine-reader", daemon=True
        )
        reader.start()
        return process

    def _replace_process(self) -> None:
        old, self._process = self._process, self._start()
        for request_id, answer in self._answers.items():
            self._emit(answer.finished(request_id))
        self._answers.clear()
        threading.Thread(target=old.stop, name="engine-stop", daemon=True).start()

    def _read(self, process: _EngineProcess) -> None:
        stdout: IO[bytes] | None = process.popen.stdout
        assert stdout is not None
        while True:
            try:
                line = wire.read_line(stdout)
                if not line:
                    break
                event = wire.decode(line)
            except wire.WireError as error:
                logger.error("engine process sent a line that is not an event: %s", error)
                continue
            with self._lock:
                if process is not self._process:
                    continue  # a replaced process: its late events mean nothing now
                self._heard_from, self._silent_deaths = True, 0
                self._track(event)
                self._emit(event)
        returncode = process.popen.wait()
        self._on_exit(process, returncode)

    def _track(self, event: Event) -> None:
        if isinstance(event, TokenText) and event.request_id in self._answers:
            self._answers[event.request_id].pieces.append(event.text)
        elif isinstance(event, GenerationFinished):
            self._answers.pop(event.request_id, None)
        elif isinstance(event, EngineError) and event.request_id is not None:
            self._answers.pop(event.request_id, None)
            if self._last_load is not None and event.request_id == self._last_load.request_id:
                self._last_load = None  # a failed load: nothing to reload after a crash
        elif isinstance(event, ModelLoaded) and self._last_load is not None:
            self._loaded = self._loaded or event.request_id == self._last_load.request_id

    def _on_exit(self, process: _EngineProcess, returncode: int) -> None:
        with self._lock:
            if self._closed or process is not self._process:
                logger.info(
                    "engine process %d ended (%s)", process.popen.pid, describe_exit(returncode)
                )
                return
            how = describe_exit(returncode)
            logger.error("engine process %d died (%s): restarting it", process.popen.pid, how)
            load = self._last_load
            died_loading = load is not None and not self._loaded
            answers, self._answers = self._answers, {}
            heard_from = self._heard_from or self._stop_forced
            stop_forced = self._stop_forced
            self._silent_deaths = 0 if heard_from else self._silent_deaths + 1
            if self._silent_deaths >= MAX_SILENT_DEATHS:
                self._broken = (
                    f"The engine process cannot start ({how}, {self._silent_deaths} times in a "
                    "row): see the log for why, then restart the app."
                )
                for request_id in answers:
                    self._emit(EngineError(request_id, self._broken, kind="engine_stopped"))
                self._emit(EngineError(None, self._broken, kind="engine_stopped"))
                return
            self.restarts += 1
            self._process = self._start()
            if died_loading:
                assert load is not None
                self._last_load = None
                self._emit(
                    EngineError(
                        load.request_id,
                        f"The engine stopped while loading {Path(load.path).name} ({how}). "
                        "It was restarted without the model: the model may need more memory "
                        "than is free. Try again, or choose another model.",
                        kind="engine_stopped",
                    )
                )
            elif load is not None:
                self._process.send(wire.encode(load))
            cause = (
                f"The engine did not stop within {self.stop_grace:g} s, so it was ended"
                if stop_forced
                else f"The engine stopped unexpectedly ({how})"
            )
            message = (
                f"{cause}. It was restarted"
                + (
                    f" and is loading {Path(load.path).name} again"
                    if load and not died_loading
                    else ""
                )
                + "; what was written so far is kept."
            )
            for request_id, answer in answers.items():
                self._emit(EngineError(request_id, message, kind="engine_stopped"))
                self._emit(
                    answer.finished(request_id, "cancelled" if stop_forced else "interrupted")
                )
            if not answers and not died_loading and (load is not None or heard_from):
                self._emit(EngineError(None, message, kind="engine_stopped"))

    def _emit(self, event: Event) -> None:
        try:
            self._on_event(event)
        except Exception:  # the receiver's bug must not stop the reader
            logger.exception("on_event raised for %s", type(event).__name__)
