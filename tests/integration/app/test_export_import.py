"""Export (Markdown, JSON) and import (our JSON, validated, all or nothing), and the File menu."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QTimer

from app.conversations.export import (
    ExportFileError,
    export_json,
    export_markdown,
    import_json,
)
from app.conversations.store import ConversationStore


def _fill(store: ConversationStore) -> list[str]:
    """Two chats with everything a JSON export must keep."""
    first = store.create_conversation()
    store.append_message(first.id, "user", "Name a colour")
    red = store.append_message(
        first.id,
        "assistant",
        "Red",
        finish_reason="eos",
        model="TinyMistral",
        generation=json.dumps({"temperature": 0.7, "stop_strings": ["END"]}, sort_keys=True),
    )
    store.append_message(
        first.id, "assistant", "Blu", finish_reason="interrupted", interrupted=True,
        replaces=red.id, model="SmolLM2-135M-Instruct",
    )  # fmt: skip
    store.show_version(red.id)  # the earlier version is the shown one
    store.set_system_prompt(first.id, "Answer in French.\nAlways.")
    second = store.create_conversation()
    store.append_message(second.id, "user", 'Ünïcödé and "quotes"\n\n```py\nx = 1\n```')
    return [first.id, second.id]


def test_export_import_export_gives_byte_identical_json(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "a.sqlite3")
    ids = _fill(store)
    exported = export_json(store, ids)
    document = json.loads(exported)
    first = document["conversations"][0]
    assert first["system_prompt"] == "Answer in French.\nAlways."
    assert [(m["version"], m["shown"], m["model"]) for m in first["messages"][1:]] == [
        (0, True, "TinyMistral"),
        (1, False, "SmolLM2-135M-Instruct"),
    ]
    assert first["messages"][2]["interrupted"] is True
    assert first["messages"][1]["generation"] == {"stop_strings": ["END"], "temperature": 0.7}
    assert document["conversations"][1]["system_prompt"] is None

    other = ConversationStore(tmp_path / "b.sqlite3")
    imported = import_json(other, exported)
    assert imported == ids  # free ids are kept
    assert export_json(other, imported) == exported  # byte for byte
    assert [m.content for m in other.messages(ids[0])] == ["Name a colour", "Red"]
    again = import_json(other, exported)  # the same file twice: copies with new ids
    assert set(again).isdisjoint(ids) and len(other.conversations()) == 4
    assert (
        json.loads(export_json(other, again))["conversations"][0]["messages"] == (first["messages"])
    )


def test_markdown_shows_the_chat_as_it_is_shown(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "a.sqlite3")
    ids = _fill(store)
    text = export_markdown(store, ids)
    assert text.startswith("# Name a colour\n")
    assert "> **System prompt (this chat):** Answer in French.\n> Always." in text
    assert "**TinyMistral** · " in text and "version 1 of 2" in text
    assert "Blu" not in text  # hidden versions are in the JSON only
    assert "```py\nx = 1\n```" in text and "\n---\n" in text


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: "not json {", "not JSON"),
        (lambda d: json.dumps([1]), "the file: expected a JSON object"),
        (lambda d: json.dumps({**d, "format": "other"}), "format: expected"),
        (lambda d: json.dumps({**d, "version": 99}), "version: expected 1"),
        (
            lambda d: json.dumps(_set(d, 1, 0, "role", "robot")),
            "conversations[1].messages[0].role: expected system or user or assistant, "
            "found 'robot'",
        ),
        (
            lambda d: json.dumps(_set(d, 1, 0, "created_at", "yesterday")),
            "created_at: expected a number",
        ),
        (
            lambda d: json.dumps(_set(d, 0, 2, "shown", True)),
            "conversations[0] position 1: expected exactly one shown version, found 2",
        ),
    ],
)
def test_a_bad_file_is_refused_clearly_and_imports_nothing(
    tmp_path: Path, mutate, message: str
) -> None:
    source = ConversationStore(tmp_path / "a.sqlite3")
    document = json.loads(export_json(source, _fill(source)))
    target = ConversationStore(tmp_path / "b.sqlite3")
    with pytest.raises(ExportFileError, match=_literal(message)):
        import_json(target, mutate(document))
    assert target.conversations() == []  # the first (valid) chat was not imported either


def _set(document: dict, chat: int, message: int, key: str, value: object) -> dict:
    copy = json.loads(json.dumps(document))
    copy["conversations"][chat]["messages"][message][key] = value
    return copy


def _literal(text: str) -> str:
    import re

    return re.escape(text)


def test_the_file_menu_exports_and_imports(qtbot, make_window, tmp_path: Path) -> None:
    window = make_window()
    ids = _fill(window.store)
    window.open_conversation(ids[0])
    assert window.export_action.shortcut().toString() == "Ctrl+Shift+E"
    window.export_action.trigger()
    dialog = window.transfer.dialog
    assert dialog is not None and dialog.isVisible() and dialog.current_chat.isChecked()
    assert dialog.path_edit.text().endswith("Name a colour.md")
    dialog.all_chats.setChecked(True)
    dialog.json.setChecked(True)
    target = tmp_path / "out" / "all.json"
    dialog.path_edit.setText(str(target))
    qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    assert target.read_text(encoding="utf-8") == export_json(window.store, ids)
    assert [p.name for p in target.parent.iterdir()] == ["all.json"]  # no temporary left
    assert "Exported to" in window.status_line.notice

    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "coreml-chat conversations", "version": 1, "conversations": 3}')
    with qtbot.waitSignal(window.transfer.failed, timeout=10_000):
        window.transfer.import_file(bad)
    assert "Could not import bad.json: conversations: expected a list, found 3" in (
        window.banner.text
    )
    for conversation_id in ids:
        window.controller.delete_conversation(conversation_id)
    with qtbot.waitSignal(window.transfer.imported, timeout=10_000) as imported:
        window.transfer.import_file(target)
    assert imported.args == [ids]
    assert window.sidebar.model.rowCount() == 2
    assert window.controller.current_conversation_id == ids[0]
    assert [r.text for r in window.chat_view.rows] == ["Name a colour", "Red"]


def _answer_when_asked(qtbot, transfer, button: str, shots: list[str]) -> None:
    """Click ``button`` of the duplicates question once it is open (it runs its own loop)."""

    def click() -> None:
        box = transfer.question
        if box is None or not box.isVisible():
            QTimer.singleShot(20, click)
            return
        if not shots:
            shot = "/tmp/store-import-duplicates.png"
            box.grab().save(shot)
            shots.append(shot)
        chosen = next(b for b in box.buttons() if b.text().replace("&", "") == button)
        chosen.click()

    QTimer.singleShot(20, click)


def test_importing_the_same_file_twice_asks_to_skip_or_copy(qtbot, tmp_path: Path) -> None:
    from app.conversations.export_dialog import ConversationTransfer

    store = ConversationStore(tmp_path / "a.sqlite3")
    ids = _fill(store)
    path = tmp_path / "all.json"
    path.write_text(export_json(store, ids), encoding="utf-8")
    transfer = ConversationTransfer(store)
    shots: list[str] = []

    _answer_when_asked(qtbot, transfer, "Skip All", shots)
    with qtbot.waitSignal(transfer.imported, timeout=10_000) as imported:
        transfer.import_file(path)
    assert imported.args == [[]] and len(store.conversations()) == 2  # nothing duplicated
    assert "2 of the 2 chats in “all.json” are already here" in transfer.question.text()

    _answer_when_asked(qtbot, transfer, "Import as Copies", shots)
    with qtbot.waitSignal(transfer.imported, timeout=10_000) as imported:
        transfer.import_file(path)
    copies = imported.args[0]
    assert len(copies) == 2 and set(copies).isdisjoint(ids) and len(store.conversations()) == 4

    store.delete_conversation(ids[1])  # one of the two is gone: only the other is asked about
    _answer_when_asked(qtbot, transfer, "Skip Those", shots)
    with qtbot.waitSignal(transfer.imported, timeout=10_000) as imported:
        transfer.import_file(path)
    assert imported.args == [[ids[1]]]
    assert "1 of the 2 chats in “all.json” is already here" in transfer.question.text()

    _answer_when_asked(qtbot, transfer, "Cancel", shots)
    with qtbot.waitSignal(transfer.failed, timeout=10_000) as failed:
        transfer.import_file(path)
    assert failed.args == ["Import of all.json cancelled: nothing was imported"]
    assert len(store.conversations()) == 4


def test_a_cancelled_import_imports_nothing(qtbot, tmp_path: Path) -> None:
    from app.conversations.export_dialog import ConversationTransfer

    source = ConversationStore(tmp_path / "a.sqlite3")
    ids = [source.create_conversation(f"Chat {n}").id for n in range(300)]
    for conversation_id in ids:
        source.append_message(conversation_id, "user", "hello")
    path = tmp_path / "many.json"
    path.write_text(export_json(source, ids), encoding="utf-8")
    store = ConversationStore(tmp_path / "b.sqlite3")
    transfer = ConversationTransfer(store)
    with qtbot.waitSignal(transfer.failed, timeout=30_000) as failed:
        transfer.import_file(path)
        transfer.cancel_import()  # the progress dialog's Cancel
    assert failed.args == ["Import of many.json cancelled: nothing was imported"]
    assert store.conversations() == [] and not transfer.importing
