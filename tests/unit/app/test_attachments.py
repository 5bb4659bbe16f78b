"""Attaching a text file to a message: checked, its token cost shown, sent with the message."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtGui import QGuiApplication

from app.chat.attachments import (
    MAX_ATTACHMENT_BYTES,
    Attachment,
    AttachmentError,
    message_with_attachments,
    read_attachment,
    split_attachments,
)
from tests.unit.app.scripted_engine import scripted_window


def test_only_text_files_are_attached_and_each_refusal_says_why(tmp_path: Path) -> None:
    notes = tmp_path / "notes.md"
    notes.write_text("# Plan\r\n\r\nShip it.\r\n")
    attachment = read_attachment(notes)
    assert (attachment.name, attachment.text) == ("notes.md", "# Plan\n\nShip it.\n")
    assert attachment.tokens > 0
    binary = tmp_path / "photo.png"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    latin = tmp_path / "old.txt"
    latin.write_bytes("café".encode("latin-1"))
    huge = tmp_path / "huge.log"
    huge.write_bytes(b"x" * (MAX_ATTACHMENT_BYTES + 1))
    for path, expected in (
        (binary, "photo.png: expected a text file, found binary data"),
        (latin, "old.txt: expected UTF-8 text, found another encoding"),
        (huge, "huge.log: expected a text file of at most 512 KB, found 512 KB"),
        (tmp_path / "gone.txt", "gone.txt: cannot be read"),
        (tmp_path, f"{tmp_path.name}: expected a file"),
    ):
        with pytest.raises(AttachmentError, match=expected.replace("(", r"\(")):
            read_attachment(path)
    typed = "Example:\n```py\nx = 1\n```"  # typed, not attached: never folded
    assert split_attachments(typed) == (typed, [])
    fenced = tmp_path / "README.md"
    fenced.write_text("Use:\n```sh\nmake\n```\n")
    markdown = read_attachment(fenced).as_markdown()
    assert markdown.startswith("README.md:\n````markdown\n")  # a fence its text cannot close
    assert markdown.endswith("\n````")
    empty = Attachment("empty file.txt", "")
    sent = message_with_attachments(typed, [read_attachment(fenced), empty])
    assert split_attachments(sent) == (
        typed,
        [Attachment("README.md", "Use:\n```sh\nmake\n```"), empty],
    )


def test_an_attached_file_shows_its_token_cost_and_goes_with_the_message(qtbot, tmp_path) -> None:
    window, engine = scripted_window(qtbot, tmp_path / "Model")
    source = tmp_path / "hello.py"
    source.write_text('def hello():\n    return "hi"\n')
    composer = window.composer
    assert composer.attachments_box.isHidden()
    composer.attach_files([str(source), str(tmp_path / "missing.txt")])
    assert window.banner.text.startswith("missing.txt: cannot be read")
    (chip,) = composer.chips()
    assert chip.label.text().startswith("hello.py · ≈ ")
    assert composer.tokens_label.text().endswith("tokens of the model's 256")
    assert composer.button.isEnabled()  # a file alone can be sent
    engine.answers.append(["It says hi."])
    composer.input.setPlainText("What does this do?")
    composer.button.click()
    qtbot.waitUntil(lambda: not window.controller.busy)
    question = window.controller.messages()[0].content
    assert (
        question == 'What does this do?\n\nhello.py:\n```python\ndef hello():\n    return "hi"\n```'
    )
    assert engine.generates()[-1].messages[-1].content == question
    bubble = window.chat_view.rows[0]  # the file folded to a line; Copy still takes it all
    assert bubble.plain_text() == "What does this do?\nAttached: hello.py · 2 lines"
    bubble.copy_text()
    assert QGuiApplication.clipboard().text() == question
    assert composer.attachments == [] and composer.attachments_box.isHidden()


def test_files_larger_than_the_context_are_flagged(qtbot, tmp_path) -> None:
    window, _engine = scripted_window(qtbot, tmp_path / "Model")  # context: 256 tokens
    big = tmp_path / "chapter.txt"
    big.write_text("word " * 2000)
    window.composer.attach_files([str(big)])
    assert window.composer.tokens_label.text().endswith(": more than fits")
    window.composer.chips()[0].remove_button.click()
    assert window.composer.attachments == []


def test_a_file_dropped_or_pasted_on_the_box_is_attached_not_typed(qtbot, tmp_path) -> None:
    from PySide6.QtCore import QMimeData, QUrl

    window, _engine = scripted_window(qtbot, tmp_path / "Model")
    notes = tmp_path / "notes.txt"
    notes.write_text("Buy milk.")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(notes))])
    box = window.composer.input
    assert box.canInsertFromMimeData(mime)
    box.insertFromMimeData(mime)  # what a drop and a paste of a Finder file both call
    assert box.toPlainText() == ""
    assert [a.name for a in window.composer.attachments] == ["notes.txt"]
    text = QMimeData()
    text.setText("just words")
    box.insertFromMimeData(text)
    assert box.toPlainText() == "just words"
