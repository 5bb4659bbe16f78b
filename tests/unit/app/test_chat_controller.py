"""The chat controller against a scripted engine client: what it saves, when, and what it tells the
views, for every way an answer can end. No model and no engine process: ``ScriptedEngine`` speaks
the bridge's ``Worker`` protocol and answers each request with the events a real engine sends, so
the cases a real engine makes hard to reach (an error with or without its ``GenerationFinished``,
an event for an old request) are reached on purpose."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from app.chat.chat_controller import ERROR_GRACE_MS, ChatController, ChatOptions
from app.chat.engine_bridge import EngineBridge
from app.conversations.store import ConversationStore
from engine.messages import (
    ContextTrimmed,
    Event,
    GenerationConfig,
    GenerationFinished,
    GenerationStats,
    TokenText,
)
from tests.unit.app.scripted_engine import CONTEXT_LENGTH, INFO, ScriptedEngine, scripted_stats


@pytest.fixture
def chat(qtbot, tmp_path: Path):
    """``(controller, engine, store)`` with the scripted model loaded."""
    engines: list[ScriptedEngine] = []

    def factory(on_event: Callable[[Event], None]) -> ScriptedEngine:
        engines.append(ScriptedEngine(on_event))
        return engines[-1]

    bridge = EngineBridge(factory)
    store = ConversationStore(tmp_path / "chats.sqlite3")
    options = ChatOptions(system_prompt="Be brief.", generation=GenerationConfig(seed=0))
    controller = ChatController(store, bridge, options=lambda: options)
    with qtbot.waitSignal(bridge.modelLoaded):
        bridge.load_model(INFO.path)
    yield controller, engines[0], store
    bridge.close()
    store.close()


def _answer(qtbot, controller: ChatController, start: Callable[[], bool]):
    with qtbot.waitSignal(controller.answerFinished, timeout=5000) as finished:
        assert start()
    return finished.args[0]


def test_the_user_message_is_saved_before_the_engine_is_asked_and_the_answer_streams(qtbot, chat):
    controller, engine, store = chat
    engine.answers.append(["Par", "is", "."])
    shown: list[str] = []
    controller.answerText.connect(shown.append)
    busy: list[bool] = []
    controller.busyChanged.connect(busy.append)
    saved_when_asked: list[list[str]] = []
    submit = engine.submit
    engine.submit = lambda request: (  # type: ignore[method-assign]
        saved_when_asked.append([m.content for m in controller.messages()]),
        submit(request),
    )[-1]

    answer = _answer(qtbot, controller, lambda: controller.send("  Capital of France?  "))

    assert saved_when_asked == [["Capital of France?"]]
    (request,) = engine.generates()
    assert [(m.role, m.content) for m in request.messages] == [
        ("system", "Be brief."),
        ("user", "Capital of France?"),
    ]
    assert request.conversation_id == controller.current_conversation_id
    assert shown == ["Par", "Paris", "Paris."]
    assert busy == [True, False]
    assert (answer.role, answer.content, answer.finish_reason) == ("assistant", "Paris.", "eos")
    assert not answer.interrupted
    assert [m.content for m in store.messages(controller.current_conversation_id)] == [
        "Capital of France?",
        "Paris.",
    ]
    stats = controller.stats
    assert not stats.generating and stats.generated_tokens == 3
    assert (stats.context_used, stats.context_length) == (23, CONTEXT_LENGTH)


def test_an_answer_with_reasoning_is_saved_as_it_was_shown(qtbot, chat):
    """The engine sends reasoning pieces without their markers and a finished text without the
    reasoning; the answer is saved with its reasoning between the markers (the window folds it):
    nothing shown is lost."""
    controller, engine, store = chat
    engine.answers.append(["<think>", "Two and two.", "</think>", "Four."])
    answer = _answer(qtbot, controller, lambda: controller.send("2+2?"))
    assert answer.content == "<think>Two and two.</think>Four."
    assert store.messages(controller.current_conversation_id)[-1].content == answer.content


def test_without_a_model_or_while_answering_a_send_is_refused_and_nothing_is_saved(
    qtbot, tmp_path: Path
):
    bridge = EngineBridge(ScriptedEngine)
    store = ConversationStore(tmp_path / "chats.sqlite3")
    controller = ChatController(store, bridge)
    errors: list[str] = []
    controller.errorOccurred.connect(errors.append)
    assert not controller.send("Hello")
    from app.ui.keyboard import shortcut_text

    settings_key = "⌘," if sys.platform == "darwin" else "Ctrl+,"
    assert shortcut_text("Ctrl+,") == settings_key  # the platform's own words
    assert errors == [f"no model is loaded yet: open one in Settings ({settings_key})"]
    assert store.conversations() == []
    assert not controller.send("   ")  # blank text is not even an error
    assert len(errors) == 1
    store.close()


def test_a_second_send_while_answering_is_refused(qtbot, chat):
    controller, engine, _store = chat
    engine.hold = True
    engine.answers.append(["Thinking"])
    errors: list[str] = []
    controller.errorOccurred.connect(errors.append)
    assert controller.send("First")
    assert not controller.send("Second")
    assert errors == ["an answer is still being written: stop it first"]
    assert [m.content for m in controller.messages()] == ["First"]
    with qtbot.waitSignal(controller.answerFinished):
        controller.stop()


def test_stop_keeps_the_partial_answer_marked_cancelled(qtbot, chat):
    controller, engine, _store = chat
    engine.hold = True
    engine.answers.append(["Once", " upon"])
    with qtbot.waitSignal(controller.answerText):
        controller.send("Tell me a story")
    qtbot.waitUntil(lambda: controller.stats.generated_tokens == 2)
    # From its first token the answer is in the store, marked interrupted: a kill -9 keeps it.
    partial = controller.messages()[-1]
    assert (partial.role, partial.interrupted) == ("assistant", True)
    with qtbot.waitSignal(controller.answerFinished) as finished:
        controller.stop()
    answer = finished.args[0]
    assert (answer.id, answer.content, answer.finish_reason) == (
        partial.id,
        "Once upon",
        "cancelled",
    )
    assert not answer.interrupted
    assert not controller.busy


def test_no_first_token_time_is_shown_when_no_token_came(qtbot, chat):
    """Issue 24: "First token 0.00 s" after Esc before the first token, after an engine crash
    and after flipping versions: the engine's placeholder 0.0 was shown as a measurement."""
    from app.chat.status_line import describe_stats

    controller, engine, _store = chat
    engine.hold = True
    engine.answers.append([])
    controller.send("Tell me a story")
    with qtbot.waitSignal(controller.answerFinished):
        controller.stop()
    assert controller.stats.time_to_first_token is None
    assert "First token" not in describe_stats(controller.stats)

    engine.answers.append(["Once"])  # the engine dies after a token: the app makes up the end
    with qtbot.waitSignal(controller.answerText):
        controller.send("Again")
    request, _pieces = engine.open
    engine.open = None
    made_up = GenerationStats(0, 0, 1, 0.0, 0.0, 0.0, 0, 0, "interrupted")
    with qtbot.waitSignal(controller.answerFinished):
        engine.on_event(GenerationFinished(request.request_id, "Once", made_up))
    measured = controller.stats.time_to_first_token
    assert measured is not None and measured > 0  # the app's own measurement, not 0.00
    assert controller.stats.context_length == CONTEXT_LENGTH  # not the made-up 0

    engine.hold = False
    engine.answers.append(["Twice"])
    _answer(qtbot, controller, controller.regenerate)
    assert "First token 50 ms" in describe_stats(controller.stats)
    assert controller.show_version(controller.messages()[-1].id, -1)
    assert "First token" not in describe_stats(controller.stats)
    from app.chat.status_line import format_seconds

    # a real measurement never reads "0.00 s"
    assert [format_seconds(s) for s in (0.0004, 0.085, 1.4242)] == ["1 ms", "85 ms", "1.42 s"]


def test_switching_conversations_mid_answer_saves_it_where_it_belongs(qtbot, chat):
    controller, engine, store = chat
    engine.answers.append(["A's answer"])
    _answer(qtbot, controller, lambda: controller.send("Question A"))
    first = controller.current_conversation_id
    controller.new_conversation()  # stored at its first message (no empty "New chat" rows)
    engine.hold = True
    engine.answers.append(["B's", " answer"])
    shown: list[str] = []
    controller.answerText.connect(shown.append)
    finished: list[object] = []
    controller.answerFinished.connect(finished.append)
    with qtbot.waitSignal(controller.answerText):
        controller.send("Question B")
    second = controller.current_conversation_id
    assert second not in (None, first)
    with qtbot.waitSignal(controller.busyChanged):
        controller.open_conversation(first)  # stops B's answer
    assert controller.current_conversation_id == first
    assert [m.content for m in controller.messages()] == ["Question A", "A's answer"]
    assert finished == []  # B's end is not shown in A's view
    (answer,) = [m for m in store.messages(second) if m.role == "assistant"]
    assert (answer.content, answer.finish_reason) == ("B's answer", "cancelled")


def test_regenerate_and_edit_send_the_history_without_what_they_drop(qtbot, chat):
    controller, engine, _store = chat
    engine.answers += [["One"], ["Two"], ["Again"], ["Edited answer"]]
    _answer(qtbot, controller, lambda: controller.send("First question"))
    _answer(qtbot, controller, lambda: controller.send("Second question"))
    _answer(qtbot, controller, controller.regenerate)
    assert [m.content for m in controller.messages()] == [
        "First question",
        "One",
        "Second question",
        "Again",
    ]
    first_question = controller.messages()[0]
    _answer(qtbot, controller, lambda: controller.edit_message(first_question.id, "Edited"))
    assert [m.content for m in controller.messages()] == ["Edited", "Edited answer"]
    regenerate, edit = engine.generates()[2:]
    assert [m.content for m in regenerate.messages] == [
        "Be brief.",
        "First question",
        "One",
        "Second question",
    ]
    assert [m.content for m in edit.messages] == ["Be brief.", "Edited"]
    answer = controller.messages()[1]
    errors: list[str] = []
    controller.errorOccurred.connect(errors.append)
    assert not controller.edit_message(answer.id, "not mine")
    assert errors == [f"only a user message of this conversation can be edited (id {answer.id})"]


def test_editing_the_first_message_retitles_the_chat_unless_the_user_named_it(qtbot, chat):
    """Issue 24: the chat kept the old first message's title after it was edited."""
    controller, engine, store = chat
    engine.answers += [["One"], ["Two"], ["Three"], ["Four"], ["Five"]]
    _answer(qtbot, controller, lambda: controller.send("What is the capital of France?"))
    _answer(qtbot, controller, lambda: controller.send("And of Italy?"))
    conversation_id = controller.current_conversation_id
    first, _, second, _ = controller.messages()
    _answer(qtbot, controller, lambda: controller.edit_message(second.id, "And of Spain?"))
    assert store.conversation(conversation_id).title == "What is the capital of France?"
    changed: list[None] = []
    controller.conversationsChanged.connect(lambda: changed.append(None))
    _answer(qtbot, controller, lambda: controller.edit_message(first.id, "Capital of Peru?"))
    assert store.conversation(conversation_id).title == "Capital of Peru?"
    assert changed  # the sidebar and the header read it again
    controller.rename_conversation(conversation_id, "Capitals")
    first = controller.messages()[0]
    _answer(qtbot, controller, lambda: controller.edit_message(first.id, "Capital of Chile?"))
    assert store.conversation(conversation_id).title == "Capitals"


def test_an_engine_error_without_a_finish_ends_the_answer_as_failed(qtbot, chat):
    controller, engine, _store = chat
    engine.hold = True
    engine.answers.append(["Half"])
    errors: list[str] = []
    controller.errorOccurred.connect(errors.append)
    with qtbot.waitSignal(controller.answerText):
        controller.send("Hello")
    with qtbot.waitSignal(controller.answerFinished, timeout=5000) as finished:
        engine.fail("out of memory")
    answer = finished.args[0]
    assert errors == ["out of memory"]
    assert (answer.content, answer.finish_reason) == ("Half", "error")
    assert not controller.busy and not controller.stats.generating


def test_an_engine_error_followed_by_its_finish_keeps_the_engines_reason(qtbot, chat):
    controller, engine, _store = chat
    engine.hold = True
    engine.answers.append(["Full", " up"])
    with qtbot.waitSignal(controller.answerText):
        controller.send("Hello")
    with qtbot.waitSignal(controller.answerFinished) as finished:
        engine.fail("the context is full", then_finish="context_full")
    assert (finished.args[0].content, finished.args[0].finish_reason) == ("Full up", "context_full")
    qtbot.wait(ERROR_GRACE_MS + 100)  # the error's timer must not end the answer a second time
    assert [m.finish_reason for m in controller.messages()] == ["", "context_full"]


def test_events_of_another_request_are_ignored_and_a_trim_is_a_notice(qtbot, chat):
    controller, engine, _store = chat
    engine.hold = True
    engine.answers.append(["Mine"])
    notices: list[str] = []
    controller.notice.connect(notices.append)
    with qtbot.waitSignal(controller.answerText):
        controller.send("Hello")
    (request,) = engine.generates()
    stale = request.request_id - 1
    with qtbot.waitSignal(controller.notice):
        engine.on_event(TokenText(stale, " not mine", 7))
        engine.on_event(GenerationFinished(stale, "old", scripted_stats(request, 1, "eos")))
        engine.on_event(ContextTrimmed(request.request_id, 2, "dropped the 2 oldest messages"))
    assert controller.busy and notices == ["dropped the 2 oldest messages"]
    with qtbot.waitSignal(controller.answerFinished) as finished:
        controller.stop()
    assert finished.args[0].content == "Mine"


def test_a_quit_mid_answer_keeps_it_marked_interrupted(qtbot, chat):
    controller, engine, _store = chat
    engine.hold = True
    engine.answers.append(["Cut", " here"])
    with qtbot.waitSignal(controller.answerText):
        controller.send("Hello")
    qtbot.waitUntil(lambda: controller.stats.generated_tokens == 2)
    controller.save_interrupted()
    answer = controller.messages()[-1]
    assert (answer.content, answer.finish_reason, answer.interrupted) == (
        "Cut here",
        "interrupted",
        True,
    )
    assert not controller.busy


def test_deleting_the_answering_conversation_stops_it_and_forgets_its_cache(qtbot, chat):
    controller, engine, store = chat
    engine.hold = True
    engine.answers.append(["Soon gone"])
    with qtbot.waitSignal(controller.answerText):
        controller.send("Hello")
    conversation_id = controller.current_conversation_id
    with qtbot.waitSignal(controller.busyChanged):
        controller.delete_conversation(conversation_id)
    assert store.conversation(conversation_id) is None and controller.messages() == []
    assert [type(r).__name__ for r in engine.requests[-1:]] == ["ForgetConversation"]
    assert engine.requests[-1].conversation_id == conversation_id
