"""BackgroundCall: work runs off the GUI thread; its result, its error and its progress arrive on it."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import QThread
from PySide6.QtWidgets import QApplication

from app.shell.background import BackgroundCall


def test_result_and_progress_arrive_on_the_gui_thread(qtbot) -> None:
    worker_threads: list[str] = []
    delivered_on: list[QThread] = []

    def work() -> int:
        worker_threads.append(threading.current_thread().name)
        call.report_progress(0.5)
        return 42

    call = BackgroundCall(work, name="answer-finder")
    call.progress.connect(lambda _value: delivered_on.append(QThread.currentThread()))
    call.succeeded.connect(lambda _value: delivered_on.append(QThread.currentThread()))
    with qtbot.waitSignal(call.succeeded, timeout=10_000) as succeeded:
        call.start()
        assert call.is_running()
    assert succeeded.args == [42]
    assert worker_threads == ["answer-finder"]
    gui = QApplication.instance().thread()
    assert len(delivered_on) == 2 and all(thread == gui for thread in delivered_on)
    assert not call.is_running()


def test_an_error_arrives_as_failed_and_the_call_can_run_again(qtbot) -> None:
    attempts: list[int] = []

    def work() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("disk full")
        return "done"

    call = BackgroundCall(work, name="flaky")
    with qtbot.waitSignal(call.failed, timeout=10_000) as failed:
        call.start()
    assert isinstance(failed.args[0], OSError) and "disk full" in str(failed.args[0])
    with qtbot.waitSignal(call.succeeded, timeout=10_000) as succeeded:
        call.start()
    assert succeeded.args == ["done"]


def test_a_second_start_while_running_is_refused(qtbot) -> None:
    release = threading.Event()
    call = BackgroundCall(lambda: release.wait(10), name="slow")
    call.start()
    with pytest.raises(RuntimeError, match="slow is already running"):
        call.start()
    with qtbot.waitSignal(call.succeeded, timeout=10_000):
        release.set()
