"""The chat window driven like a user would, offscreen, on the real engine with a tiny model."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication

from app.conversations.store import ConversationStore

ANSWER_TIMEOUT_MS = 120_000


def _send(qtbot, window, text: str) -> None:
    window.composer.input.setFocus()
    window.composer.input.setPlainText(text)
    qtbot.keyClick(window.composer.input, Qt.Key.Key_Return)


def _wait_idle(qtbot, window) -> None:
    qtbot.waitUntil(lambda: not window.controller.busy, timeout=ANSWER_TIMEOUT_MS)


def test_a_sent_message_is_saved_first_and_tokens_stream_into_the_view(
    qtbot, make_window, tiny_chat_model: Path
) -> None:
    window = make_window(tiny_chat_model, max_new_tokens=24)
    seen: list[str] = []
    window.controller.answerText.connect(seen.append)
    saved_before_answer: list[list[str]] = []
    window.controller.answerStarted.connect(
        lambda: saved_before_answer.append(
            [m.role for m in window.store.messages(window.controller.current_conversation_id)]
        )
    )
    _send(qtbot, window, "Hello there")
    assert window.composer.input.toPlainText() == ""  # Enter sent it
    assert saved_before_answer == [["user"]]  # committed before the engine was asked
    assert window.controller.busy and window.composer.busy
    qtbot.waitUntil(lambda: len(seen) >= 3, timeout=ANSWER_TIMEOUT_MS)
    assert window.controller.busy  # tokens arrived while the answer was still running
    _wait_idle(qtbot, window)

    assert len(seen) >= 3 and all(b.startswith(a) for a, b in itertools.pairwise(seen))
    messages = window.store.messages(window.controller.current_conversation_id)
    assert [m.role for m in messages] == ["user", "assistant"]
    assert messages[1].content == seen[-1] and messages[1].finish_reason in ("max_tokens", "eos")
    rows = window.chat_view.rows
    assert [r.role for r in rows] == ["user", "assistant"]
    assert rows[1].text == messages[1].content
    assert rows[1].regenerate_button.isVisibleTo(window)
    status = window.status_line.stats_label.text()
    assert "First token" in status and "tok/s" in status
    assert window.status_line.context_label.text().endswith("/ 256 tokens")
    assert window.status_line.gauge.value() > 0
    # the sidebar shows the conversation, titled from the first message
    assert window.sidebar.model.conversation_at(0).title == "Hello there"


def test_shift_enter_makes_a_new_line_instead_of_sending(
    qtbot, make_window, tiny_chat_model: Path
) -> None:
    window = make_window(tiny_chat_model)
    window.composer.input.setFocus()
    qtbot.keyClicks(window.composer.input, "line one")
    qtbot.keyClick(window.composer.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(window.composer.input, "line two")
    assert window.composer.input.toPlainText() == "line one\nline two"
    assert window.store.conversations() == []


def test_stop_mid_answer_keeps_the_partial_text(qtbot, make_window, tiny_chat_model: Path) -> None:
    window = make_window(tiny_chat_model, max_new_tokens=200)
    seen: list[str] = []
    window.controller.answerText.connect(seen.append)
    _send(qtbot, window, "Tell me a long story")
    qtbot.waitUntil(lambda: len(seen) >= 2, timeout=ANSWER_TIMEOUT_MS)
    qtbot.mouseClick(window.composer.button, Qt.MouseButton.LeftButton)  # the Stop button
    _wait_idle(qtbot, window)
    messages = window.store.messages(window.controller.current_conversation_id)
    assert [m.role for m in messages] == ["user", "assistant"]
    assert messages[1].finish_reason == "cancelled"
    assert messages[1].content.startswith(seen[1]) and len(messages[1].content) > 0
    assert window.chat_view.rows[-1].finish_note.text() == "Stopped"
    assert not window.composer.busy and window.composer.button.text() == "↑"


def test_regenerate_replaces_the_last_answer_and_reuses_the_cache(
    qtbot, make_window, tiny_chat_model: Path
) -> None:
    window = make_window(tiny_chat_model, max_new_tokens=12)
    finished = []
    window.bridge.generationFinished.connect(finished.append)
    _send(qtbot, window, "Name a colour")
    _wait_idle(qtbot, window)
    first = window.store.messages(window.controller.current_conversation_id)[-1]
    qtbot.mouseClick(window.chat_view.rows[-1].regenerate_button, Qt.MouseButton.LeftButton)
    assert window.controller.busy
    _wait_idle(qtbot, window)
    messages = window.store.messages(window.controller.current_conversation_id)
    assert [m.role for m in messages] == ["user", "assistant"]
    assert messages[1].id != first.id and messages[1].content == first.content  # greedy
    assert len(window.chat_view.rows) == 2
    second = finished[-1].stats
    assert second.tokens_fed < second.prompt_tokens  # the engine rewound instead of re-feeding


def test_editing_a_user_message_drops_what_followed_and_answers_again(
    qtbot, make_window, tiny_chat_model: Path
) -> None:
    window = make_window(tiny_chat_model, max_new_tokens=8)
    finished = []
    window.bridge.generationFinished.connect(finished.append)
    _send(qtbot, window, "First question")
    _wait_idle(qtbot, window)
    _send(qtbot, window, "Second question")
    _wait_idle(qtbot, window)
    first_answer = window.store.messages(window.controller.current_conversation_id)[1]
    user_row = window.chat_view.rows[2]
    qtbot.mouseClick(user_row.edit_button, Qt.MouseButton.LeftButton)
    assert user_row.editor is not None and user_row.editor.toPlainText() == "Second question"
    user_row.editor.setPlainText("Edited question")
    user_row._submit_edit()
    assert window.controller.busy
    _wait_idle(qtbot, window)
    messages = window.store.messages(window.controller.current_conversation_id)
    assert [m.role for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[1].id == first_answer.id  # what came before the edit is untouched
    assert messages[2].content == "Edited question"
    assert [r.text for r in window.chat_view.rows] == [m.content for m in messages]
    stats = finished[-1].stats
    assert stats.tokens_fed < stats.prompt_tokens  # the cache was rewound, not re-fed


def test_switching_conversations_mid_answer_saves_it_where_it_belongs(
    qtbot, make_window, tiny_chat_model: Path
) -> None:
    window = make_window(tiny_chat_model, max_new_tokens=200)
    _send(qtbot, window, "Conversation A")
    first_id = window.controller.current_conversation_id
    _wait_idle(qtbot, window)
    window.composer.input.clear()
    window.new_chat()
    seen: list[str] = []
    window.controller.answerText.connect(seen.append)
    _send(qtbot, window, "Conversation B")
    second_id = window.controller.current_conversation_id
    qtbot.waitUntil(lambda: len(seen) >= 1, timeout=ANSWER_TIMEOUT_MS)
    window.sidebar.conversationSelected.emit(first_id)  # as a click in the sidebar does
    assert window.controller.current_conversation_id == first_id
    assert window.chat_view.rows[0].text == "Conversation A"
    _wait_idle(qtbot, window)
    assert len(window.chat_view.rows) == 2  # B's answer did not land in A's view
    second = window.store.messages(second_id)
    assert [m.role for m in second] == ["user", "assistant"]
    assert second[1].finish_reason == "cancelled"
    window.sidebar.conversationSelected.emit(second_id)
    assert [r.text for r in window.chat_view.rows] == [m.content for m in second]
    assert window.title_label.text() == "Conversation B"


def test_a_restarted_app_finds_the_conversation(qtbot, make_window, tiny_chat_model: Path) -> None:
    window = make_window(tiny_chat_model, max_new_tokens=6)
    _send(qtbot, window, "Remember me")
    _wait_idle(qtbot, window)
    conversation_id = window.controller.current_conversation_id
    answer = window.store.messages(conversation_id)[-1].content
    window.close()  # closes the store and the engine

    again = make_window(tiny_chat_model)
    assert again.sidebar.model.rowCount() == 1
    assert again.controller.current_conversation_id == conversation_id  # reopened on load
    assert [r.text for r in again.chat_view.rows] == ["Remember me", answer]


def test_sidebar_new_search_rename_delete(qtbot, make_window, tiny_chat_model: Path) -> None:
    window = make_window(tiny_chat_model, max_new_tokens=4)
    qtbot.keyClick(window, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)  # ⌘N on macOS
    assert window.controller.current_conversation_id is None  # stored at its first message
    _send(qtbot, window, "apples and pears")
    _wait_idle(qtbot, window)
    window.new_chat()
    _send(qtbot, window, "oranges")
    _wait_idle(qtbot, window)
    sidebar = window.sidebar
    assert sidebar.model.rowCount() == 2  # the ⌘N chat took the first message
    with qtbot.waitSignal(sidebar.model.searchFinished, timeout=10_000):
        qtbot.keyClicks(sidebar.search, "PEARS")
    assert sidebar.model.rowCount() == 1
    assert sidebar.model.conversation_at(0).title == "apples and pears"
    sidebar.search.clear()
    oranges = window.controller.current_conversation_id
    window.controller.rename_conversation(oranges, "Citrus")
    assert sidebar.model.conversation_at(sidebar.model.row_of(oranges)).title == "Citrus"
    assert window.title_label.text() == "Citrus"
    sidebar.deleteRequested.emit(oranges)
    assert sidebar.model.row_of(oranges) == -1
    assert window.controller.current_conversation_id is None and window.chat_view.rows == []
    assert ConversationStore(window.store.path).conversation(oranges) is None


def test_malicious_markdown_is_shown_as_text_and_nothing_is_loaded(qtbot, make_window) -> None:
    window = make_window()
    store = window.store
    conversation = store.create_conversation()
    store.append_message(conversation.id, "user", "<b>hi</b>")
    evil = (
        "Look: <img src=http://evil.example/x.png> <script>alert(1)</script>\n\n"
        "![pixel](http://evil.example/pixel.gif)\n\n```sh\nrm -rf /tmp/x\n```"
    )
    store.append_message(conversation.id, "assistant", evil)
    window.open_conversation(conversation.id)
    user_row, answer_row = window.chat_view.rows
    assert user_row.body.toPlainText() == "<b>hi</b>"
    text = answer_row.body.toPlainText()
    assert "<img src=http://evil.example/x.png>" in text
    assert "<script>alert(1)</script>" in text
    assert "[image: pixel] (http://evil.example/pixel.gif)" in text
    assert "evil.example" not in "".join(answer_row.body.refused_resources)
    assert answer_row.body.loadResource(2, "http://evil.example/x.png") is None
    # the code block's Copy copies the code only
    answer_row.body.code_views[0].copy_button.click()
    assert QGuiApplication.clipboard().text() == "rm -rf /tmp/x"


def test_without_a_model_the_welcome_screen_offers_four_ways(qtbot, make_window) -> None:
    window = make_window()
    assert window.current_page == "welcome"
    assert set(window.welcome.buttons) == {"demo", "open", "hub", "convert"}
    assert not window.composer.button.isEnabled()
    window.controller.new_conversation()
    assert not window.controller.send("hello")  # refused clearly, nothing saved
    assert "no model is loaded" in window.banner.text
    assert window.store.messages(window.controller.current_conversation_id) == []


def test_a_missing_model_folder_is_reported_and_the_welcome_screen_shown(
    qtbot, make_window, tmp_path: Path
) -> None:
    window = make_window(tmp_path / "gone", loaded=False)
    assert window.current_page == "welcome"
    assert "expected a model folder" in window.banner.text


@pytest.mark.slow
def test_the_demo_model_answers_in_the_window(qtbot, make_window, smollm2_exact_dir: Path) -> None:
    window = make_window(smollm2_exact_dir, max_new_tokens=12)
    _send(qtbot, window, "What is the capital of France?")
    _wait_idle(qtbot, window)
    answer = window.store.messages(window.controller.current_conversation_id)[-1]
    assert "Paris" in answer.content
    assert window.chat_view.rows[-1].text == answer.content


def test_the_status_line_says_when_the_context_policy_trimmed(
    qtbot, make_window, tiny_chat_model: Path
) -> None:
    window = make_window(tiny_chat_model, max_new_tokens=4)
    store = window.store
    conversation = store.create_conversation()
    for number in range(3):
        store.append_message(conversation.id, "user", f"question {number} " + "lorem " * 60)
        store.append_message(conversation.id, "assistant", "answer " * 20)
    window.open_conversation(conversation.id)
    notices: list[str] = []
    window.controller.notice.connect(notices.append)
    _send(qtbot, window, "and now?")
    _wait_idle(qtbot, window)
    assert notices and "oldest" in notices[0]
    assert window.status_line.notice == notices[0]
    used = window.controller.stats.context_used
    assert used is not None and used <= 256


def test_a_loaded_model_is_remembered_and_settings_open_on_the_asked_tab(
    qtbot, tiny_chat_model: Path
) -> None:
    from app.chat.engine_bridge import EngineBridge
    from app.settings.app_settings import load_settings
    from app.settings.settings_store import SettingsStore
    from app.shell.main_window import MainWindow

    window = MainWindow(store=ConversationStore(), bridge=EngineBridge(), settings=SettingsStore())
    qtbot.addWidget(window)
    window.show()
    window.start()
    assert window.current_page == "welcome"
    window.load_model(str(tiny_chat_model))
    qtbot.waitUntil(lambda: window.bridge.model_info is not None, timeout=ANSWER_TIMEOUT_MS)
    assert window.current_page == "chat"
    assert load_settings().model_path == str(tiny_chat_model)
    chip = window.model_chip  # the folder's name; the package's in its tooltip
    assert chip.text().startswith(f"{tiny_chat_model.name} · ") and "256" in chip.text()
    assert "TinyMistral" in chip.toolTip()

    window.settings_action.trigger()
    dialog = window.settings_dialog
    assert dialog is not None and dialog.isVisible()
    window.open_settings("converter")
    assert dialog.pages.currentIndex() == 2
    dialog.generation_pane.system_prompt.setPlainText("Answer in French.")
    assert window._chat_options().system_prompt == "Answer in French."
    dialog.accept()
    saved = load_settings()  # one writer: the dialog's change and the window's model, together
    assert (saved.system_prompt, saved.model_path) == ("Answer in French.", str(tiny_chat_model))
    window.close()


def test_the_demo_card_loads_the_demo_model_when_it_is_in_place(
    qtbot, make_window, tiny_chat_model: Path
) -> None:
    import shutil

    from app.conversion.demo_setup import demo_model_dir

    shutil.copytree(tiny_chat_model, demo_model_dir())  # as `make run` would have left it
    window = make_window()
    assert window.current_page == "welcome"
    qtbot.mouseClick(window.welcome.buttons["demo"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.bridge.model_info is not None, timeout=ANSWER_TIMEOUT_MS)
    assert window.current_page == "chat"
    assert window.bridge.model_info.path == str(demo_model_dir())


def test_a_new_hub_token_takes_effect_at_the_next_model_load(
    qtbot, make_window, tiny_chat_model: Path
) -> None:
    window = make_window(tiny_chat_model)
    old_worker = window.bridge.worker
    window.settings_store.update(hf_token="hf_new")
    assert window.bridge.worker is old_worker  # the loaded model stays until the next load
    window.load_model(str(tiny_chat_model))
    assert window.bridge.worker is not old_worker
    assert window.bridge.worker._hf_token == "hf_new"
    qtbot.waitUntil(lambda: window.bridge.model_info is not None, timeout=ANSWER_TIMEOUT_MS)


def test_escape_stops_and_an_empty_chat_shows_its_hint(
    qtbot, make_window, tiny_chat_model: Path
) -> None:
    window = make_window(tiny_chat_model, max_new_tokens=200)
    window.new_chat()
    assert window.chat_view.empty_state.isVisibleTo(window)
    assert tiny_chat_model.name in window.chat_view.empty_state.text()
    seen: list[str] = []
    window.controller.answerText.connect(seen.append)
    _send(qtbot, window, "Go on and on")
    assert not window.chat_view.empty_state.isVisibleTo(window)
    qtbot.waitUntil(lambda: len(seen) >= 1, timeout=ANSWER_TIMEOUT_MS)
    qtbot.keyClick(window.composer.input, Qt.Key.Key_Escape)
    _wait_idle(qtbot, window)
    answer = window.store.messages(window.controller.current_conversation_id)[-1]
    assert answer.finish_reason == "cancelled"


def test_a_full_context_under_the_stop_policy_keeps_the_answer_and_says_why(
    qtbot, make_window, tiny_chat_model: Path
) -> None:
    window = make_window(tiny_chat_model, max_new_tokens=400, context_policy="stop")
    _send(qtbot, window, "Fill the context")
    _wait_idle(qtbot, window)
    answer = window.store.messages(window.controller.current_conversation_id)[-1]
    assert answer.role == "assistant" and answer.content
    assert answer.finish_reason == "context_full"
    assert window.chat_view.rows[-1].finish_note.text() == "The context is full"
    assert window.banner.text  # the engine's reason is shown
    assert window.controller.stats.context_used == 256


def test_an_engine_failure_ends_the_answer_and_keeps_the_window_usable(
    qtbot, make_window, tiny_chat_model: Path
) -> None:
    from engine.messages import EngineError

    window = make_window(tiny_chat_model, max_new_tokens=200)
    seen: list[str] = []
    window.controller.answerText.connect(seen.append)
    _send(qtbot, window, "Hello")
    qtbot.waitUntil(lambda: len(seen) >= 1, timeout=ANSWER_TIMEOUT_MS)
    active = window.controller._active
    window.controller.bridge.cancel()  # the real answer stops; its finish is ignored below
    window.bridge.generationFinished.disconnect(window.controller._on_finished)
    window.bridge.engineError.emit(EngineError(active.request_id, "out of memory"))
    qtbot.waitUntil(lambda: not window.controller.busy, timeout=5000)
    answer = window.store.messages(window.controller.current_conversation_id)[-1]
    assert answer.finish_reason == "error" and answer.content.startswith(seen[0])
    assert window.banner.text == "out of memory"
    assert not window.composer.busy
