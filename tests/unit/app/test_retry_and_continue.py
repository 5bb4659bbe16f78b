"""Retry a question left unanswered; Continue an answer cut at the token limit (issue 24)."""

from __future__ import annotations

from app.chat.chat_controller import CONTINUE_PROMPT
from tests.unit.app.scripted_engine import scripted_window


def _send(qtbot, window, text: str) -> None:
    window.composer.input.setPlainText(text)
    window.composer.button.click()


def test_a_question_stopped_before_its_first_token_offers_retry(qtbot, tmp_path) -> None:
    window, engine = scripted_window(qtbot, tmp_path / "Model")
    engine.hold = True
    engine.answers.append([])
    _send(qtbot, window, "What is the capital of France?")
    qtbot.waitUntil(lambda: window.controller.busy)
    window.composer.button.click()  # Stop, before the first token
    qtbot.waitUntil(lambda: not window.controller.busy)
    question = window.chat_view.rows[-1]
    assert question.role == "user"
    assert question.retry_button.isVisible()
    window.grab().save("/tmp/shots/i24-retry.png")
    engine.hold = False
    engine.answers.append(["Paris."])
    question.retry_button.click()
    qtbot.waitUntil(lambda: not window.controller.busy)
    assert [m.content for m in window.controller.messages()] == [
        "What is the capital of France?",
        "Paris.",
    ]
    assert not any(row.retry_button.isVisible() for row in window.chat_view.rows)


def test_an_answer_cut_at_the_token_limit_offers_continue(qtbot, tmp_path) -> None:
    window, engine = scripted_window(qtbot, tmp_path / "Model")
    engine.finish_reason = "max_tokens"
    engine.answers.append(["Once upon", " a time"])
    _send(qtbot, window, "Tell me a story")
    qtbot.waitUntil(lambda: not window.controller.busy)
    answer = window.chat_view.rows[-1]
    assert answer.finish_note.text() == "Reached the token limit"
    assert answer.continue_button.isVisible()
    window.grab().save("/tmp/shots/i24-continue.png")
    engine.finish_reason = "eos"
    engine.answers.append(["there was", " a fox."])
    answer.continue_button.click()
    qtbot.waitUntil(lambda: not window.controller.busy)
    messages = window.controller.messages()
    assert [m.content for m in messages] == ["Tell me a story", "Once upon a time there was a fox."]
    assert messages[-1].finish_reason == "eos"
    request = engine.generates()[-1]
    assert [(m.role, m.content) for m in request.messages][-3:] == [
        ("user", "Tell me a story"),
        ("assistant", "Once upon a time"),
        ("user", CONTINUE_PROMPT),
    ]
    rows = window.chat_view.rows
    assert len(rows) == 2 and rows[-1].text == "Once upon a time there was a fox."
    assert not rows[-1].continue_button.isVisible()


def test_a_continue_stopped_before_its_first_token_leaves_the_answer_as_it_was(
    qtbot, tmp_path
) -> None:
    window, engine = scripted_window(qtbot, tmp_path / "Model")
    engine.finish_reason = "max_tokens"
    engine.answers.append(["Once upon a time"])
    _send(qtbot, window, "Tell me a story")
    qtbot.waitUntil(lambda: not window.controller.busy)
    engine.hold = True
    engine.answers.append([])
    window.chat_view.rows[-1].continue_button.click()
    qtbot.waitUntil(lambda: window.controller.busy)
    window.controller.stop()
    qtbot.waitUntil(lambda: not window.controller.busy)
    answer = window.controller.messages()[-1]
    assert (answer.content, answer.finish_reason) == ("Once upon a time", "max_tokens")
    assert window.chat_view.rows[-1].continue_button.isVisible()
