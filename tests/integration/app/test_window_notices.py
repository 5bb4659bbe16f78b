"""Issue 16, defect 6: the error banner clears after a later success; a long status notice does not
widen the page (or squeeze the sidebar)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication

from engine.messages import EngineError

ANSWER_TIMEOUT_MS = 120_000


def test_the_error_banner_clears_after_the_next_answer(
    qtbot, make_window, tiny_chat_model: Path
) -> None:
    window = make_window(tiny_chat_model, max_new_tokens=4)
    # What the engine bridge says after the engine process died and came back (no request).
    window.bridge.engineError.emit(EngineError(None, "The engine stopped unexpectedly"))
    assert window.banner.text == "The engine stopped unexpectedly"
    window.composer.input.setPlainText("Hello")
    qtbot.keyClick(window.composer.input, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not window.controller.busy, timeout=ANSWER_TIMEOUT_MS)
    answer = window.store.messages(window.controller.current_conversation_id)[-1]
    assert answer.role == "assistant" and answer.finish_reason == "max_tokens"
    assert window.banner.text == ""


def test_a_failed_answer_keeps_the_banner(qtbot, make_window, tiny_chat_model: Path) -> None:
    window = make_window(tiny_chat_model, max_new_tokens=200)
    seen: list[str] = []
    window.controller.answerText.connect(seen.append)
    window.composer.input.setPlainText("Hello")
    qtbot.keyClick(window.composer.input, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: len(seen) >= 1, timeout=ANSWER_TIMEOUT_MS)
    active = window.controller._active
    window.controller.bridge.cancel()
    window.bridge.generationFinished.disconnect(window.controller._on_finished)
    window.bridge.engineError.emit(EngineError(active.request_id, "out of memory"))
    qtbot.waitUntil(lambda: not window.controller.busy, timeout=5000)
    assert window.banner.text == "out of memory"


def test_a_long_notice_neither_widens_the_page_nor_squeezes_the_sidebar(qtbot, make_window) -> None:
    window = make_window()
    window.resize(window.minimumSize())
    window.show_page("chat")
    QApplication.processEvents()
    width, sidebar_width = window.width(), window.sidebar.width()
    minimum = window.minimumSizeHint().width()
    notice = "The conversation no longer fit the context: " + "dropped an old turn, " * 40
    window.status_line.show_notice(notice)
    QApplication.processEvents()
    qtbot.wait(50)
    window.grab().save("/tmp/i16-long-notice.png")
    assert (window.width(), window.sidebar.width()) == (width, sidebar_width)
    assert window.minimumSizeHint().width() == minimum  # a window manager would not widen it
    line = window.status_line
    assert line.mapTo(window, QPoint(line.width(), 0)).x() <= width  # nothing drawn off-window
    label = window.status_line.notice_label
    assert window.status_line.notice == notice  # the whole text is kept (and in the tooltip)
    assert label.toolTip() == notice
    assert label.geometry().right() <= window.status_line.width()
    shown = label.shown_text()
    assert shown.endswith("…") and len(shown) < len(notice)
