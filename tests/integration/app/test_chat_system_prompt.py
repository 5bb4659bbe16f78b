"""A chat's own system prompt: stored with the chat, edited from its header, sent to the engine
first; chats without one follow the global prompt."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from PySide6.QtCore import Qt

from app.chat.system_prompt_dialog import describe_prompt
from app.conversations.store import MIGRATIONS, ConversationStore

ANSWER_TIMEOUT_MS = 120_000


def _spy_requests(window) -> list:
    """Every request the window's (real, in-process) engine worker receives, passed on as is."""
    requests: list = []
    worker = window.bridge.worker
    submit = worker.submit
    worker.submit = lambda request: (requests.append(request), submit(request))[1]
    return requests


def test_the_store_keeps_a_chat_prompt_and_old_databases_follow_the_global_one(
    tmp_path: Path,
) -> None:
    database = tmp_path / "old.sqlite3"
    old = sqlite3.connect(database, isolation_level=None)
    for number, script in enumerate(MIGRATIONS[:4], start=1):
        old.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
    old.execute("INSERT INTO conversations VALUES ('c1', 'Old chat', 1.0, 1.0)")
    old.close()
    store = ConversationStore(database)
    assert store.conversation("c1").system_prompt is None
    store.set_system_prompt("c1", "Answer in French.")
    store.close()
    assert ConversationStore(database).conversation("c1").system_prompt == "Answer in French."
    assert describe_prompt(None, "Be brief.") == "System prompt: global"
    assert describe_prompt("", "Be brief.") == "System prompt: none (this chat)"
    assert describe_prompt("Answer in French.", "") == "System prompt: “Answer in French.”"


def test_a_chat_prompt_set_in_its_dialog_reaches_the_engine_first(
    qtbot, make_window, tiny_chat_model: Path
) -> None:
    window = make_window(
        tiny_chat_model, max_new_tokens=3, system_prompt="Be brief.", in_process=True
    )
    requests = _spy_requests(window)
    window.controller.send("First chat")
    qtbot.waitUntil(lambda: not window.controller.busy, timeout=ANSWER_TIMEOUT_MS)
    first_chat = window.controller.current_conversation_id
    assert requests[-1].messages[0].role == "system"
    assert requests[-1].messages[0].content == "Be brief."  # the global one
    assert window.system_prompt.button.text() == "System prompt: global"

    window.system_prompt_action.trigger()  # Chat → System Prompt…
    dialog = window.system_prompt.dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.follow_global.isChecked() and dialog.editor.isReadOnly()
    assert dialog.editor.toPlainText() == "Be brief."
    qtbot.mouseClick(dialog.follow_global, Qt.MouseButton.LeftButton)
    dialog.editor.setPlainText("  Answer in French.  ")
    dialog.follow_global.setChecked(True)  # a look at the global one keeps the draft
    assert dialog.editor.toPlainText() == "Be brief." and dialog.prompt() is None
    dialog.follow_global.setChecked(False)
    qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    assert window.store.conversation(first_chat).system_prompt == "Answer in French."
    assert window.system_prompt.button.text() == "System prompt: “Answer in French.”"

    window.controller.send("Bonjour")
    qtbot.waitUntil(lambda: not window.controller.busy, timeout=ANSWER_TIMEOUT_MS)
    generate = requests[-1]
    assert generate.conversation_id == first_chat
    assert generate.messages[0].role == "system"
    assert generate.messages[0].content == "Answer in French."
    assert [m.role for m in generate.messages[1:]] == ["user", "assistant", "user"]

    window.new_chat()  # another chat still follows the global prompt
    assert window.system_prompt.button.text() == "System prompt: global"
    window.controller.send("Second chat")
    qtbot.waitUntil(lambda: not window.controller.busy, timeout=ANSWER_TIMEOUT_MS)
    assert requests[-1].messages[0].content == "Be brief."
    window.settings_store.update(system_prompt="Be kind.")  # the global one changes: not chat 1's
    assert window.controller.system_prompt(first_chat) == "Answer in French."
    window.open_conversation(first_chat)
    assert window.system_prompt.button.text() == "System prompt: “Answer in French.”"

    dialog = window.system_prompt.open_dialog()  # back to the global one
    dialog.follow_global.setChecked(True)
    dialog.accept()
    assert window.store.conversation(first_chat).system_prompt is None
    assert window.controller.system_prompt(first_chat) == "Be kind."
