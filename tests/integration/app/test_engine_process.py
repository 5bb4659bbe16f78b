"""The engine in its own process, driven through the real window: the GUI keeps running while the
engine holds its GIL, a killed engine loses nothing and comes back, quit ends the engine even in
the middle of a load, and an answer cut by a quit or SIGTERM is kept, marked interrupted.

The engine process runs the real reference runtime; where a Mac's behaviour matters (coremltools
holding the GIL through loads and predicts) it runs behind ``engine/runtime/coreml_standin.py``, the named
Core ML stand-in, selected through its environment variable."""

from __future__ import annotations

import itertools
import os
import signal
import time
from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QTimer

from engine.runtime.coreml_standin import STANDIN_ENV

ANSWER_TIMEOUT_MS = 120_000


def _send(qtbot, window, text: str) -> None:
    window.composer.input.setFocus()
    window.composer.input.setPlainText(text)
    qtbot.keyClick(window.composer.input, Qt.Key.Key_Return)


def _messages(window):
    return window.store.messages(window.controller.current_conversation_id)


def test_the_window_keeps_ticking_while_the_engine_holds_its_gil_through_a_load(
    qtbot, make_window, tiny_chat_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In the GUI's process a GIL-holding load of 1 s stops every Python slot for that second."""
    monkeypatch.setenv(STANDIN_ENV, "load_seconds=1.5,predict_seconds=0")
    ticks: list[float] = []
    timer = QTimer(interval=10)
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    window = make_window(tiny_chat_model)  # waits for ModelLoaded, pumping the event loop
    timer.stop()
    assert window.bridge.model_info is not None
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert len(ticks) > 50  # the loop kept running through the load
    assert max(gaps) < 1.0  # never frozen for the stand-in's GIL-holding 1.5 s


def test_a_killed_engine_keeps_the_partial_answer_and_a_new_engine_answers_next(
    qtbot, make_window, tiny_chat_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STANDIN_ENV, "load_seconds=0,predict_seconds=0.05")  # a slow answer
    window = make_window(tiny_chat_model, max_new_tokens=200)
    client = window.bridge.worker
    old_pid = client.pid
    loads: list[object] = []
    window.bridge.modelLoaded.connect(loads.append)
    seen: list[str] = []
    window.controller.answerText.connect(seen.append)
    _send(qtbot, window, "Tell me a long story")
    qtbot.waitUntil(lambda: len(seen) >= 3, timeout=ANSWER_TIMEOUT_MS)
    (user, streaming) = _messages(window)
    assert streaming.role == "assistant" and streaming.interrupted  # written while it streams
    os.kill(old_pid, signal.SIGKILL)
    qtbot.waitUntil(lambda: not window.controller.busy, timeout=10_000)

    user_after, answer = _messages(window)
    assert user_after == user and user.content == "Tell me a long story"
    assert answer.id == streaming.id and answer.content.startswith(seen[2])
    assert answer.interrupted and answer.finish_reason == "interrupted"
    assert "engine stopped unexpectedly" in window.banner.text
    assert "SIGKILL" in window.banner.text
    assert window.chat_view.rows[-1].finish_note.text() == "(interrupted)"
    assert not window.composer.busy

    qtbot.waitUntil(lambda: len(loads) == 1, timeout=ANSWER_TIMEOUT_MS)  # reloaded by itself
    assert client.pid != old_pid and client.restarts == 1
    finished: list[object] = []
    window.bridge.generationFinished.connect(finished.append)
    generation = replace(window.settings.generation, max_new_tokens=3)
    window.settings_store.update(generation=generation)
    _send(qtbot, window, "Go on")
    qtbot.waitUntil(lambda: bool(finished), timeout=ANSWER_TIMEOUT_MS)
    stats = finished[0].stats
    assert stats.finish_reason in ("max_tokens", "eos")
    assert stats.tokens_fed == stats.prompt_tokens  # a new engine: the history is prefilled again
    roles = [(m.role, m.interrupted) for m in _messages(window)]
    assert roles == [("user", False), ("assistant", True), ("user", False), ("assistant", False)]


def test_quitting_during_a_load_ends_the_engine_process(
    qtbot, make_window, tiny_chat_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STANDIN_ENV, "load_seconds=60,predict_seconds=0")
    window = make_window(tiny_chat_model, loaded=False)
    client = window.bridge.worker
    popen = client._process.popen
    qtbot.wait(1500)  # the engine is inside its GIL-holding load now
    assert window.bridge.loading_request is not None and popen.poll() is None
    window.close()
    assert popen.poll() is not None  # gone (and reaped) when close returns, not after the load
    with pytest.raises(ProcessLookupError):
        os.kill(popen.pid, 0)


def test_a_quit_or_sigterm_mid_answer_keeps_it_marked_interrupted(
    qtbot, make_window, tiny_chat_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.shell.quit_signals import quit_on_sigterm

    monkeypatch.setenv(STANDIN_ENV, "load_seconds=0,predict_seconds=0.05")
    window = make_window(tiny_chat_model, max_new_tokens=200)
    conversation_path = window.store.path
    previous = signal.getsignal(signal.SIGTERM)
    try:
        quit_on_sigterm(window)
        seen: list[str] = []
        window.controller.answerText.connect(seen.append)
        _send(qtbot, window, "Tell me a long story")
        qtbot.waitUntil(lambda: len(seen) >= 2, timeout=ANSWER_TIMEOUT_MS)
        conversation_id = window.controller.current_conversation_id
        os.kill(os.getpid(), signal.SIGTERM)
        qtbot.waitUntil(lambda: not window.isVisible(), timeout=10_000)
    finally:
        signal.signal(signal.SIGTERM, previous)
    from app.conversations.store import ConversationStore

    store = ConversationStore(conversation_path)
    _user, answer = store.messages(conversation_id)
    assert answer.interrupted and answer.finish_reason == "interrupted"
    assert answer.content.startswith(seen[-1])
    store.close()
