"""Code blocks keep their shape: a long line stays one line and its block scrolls sideways; the
language is named; Copy copies the code and says so (issue 24)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication

from app.chat.markdown_render import Segment, split_code_blocks
from tests.integration.app.window_helpers import stored_message

LONG_LINE = "    result = compute(" + ", ".join(f"argument_{n}" for n in range(40)) + ")"
CODE = f"def run():\n{LONG_LINE}\n    print(result)"
CODE_ANSWER = f"Here:\n\n```python\n{CODE}\n```\n\nDone."


def test_top_level_code_blocks_are_cut_out_of_the_markdown() -> None:
    assert split_code_blocks(CODE_ANSWER) == [
        Segment("markdown", "Here:\n"),
        Segment("code", CODE, "python"),
        Segment("markdown", "\nDone."),
    ]
    assert split_code_blocks("Streaming:\n\n```sh\nls -") == [
        Segment("markdown", "Streaming:\n"),
        Segment("code", "ls -", "sh"),
    ]
    nested = "- a list\n\n  ```\n  inside\n  ```\n"
    assert split_code_blocks(nested) == [Segment("markdown", nested)]  # stays in its list


def test_a_long_code_line_scrolls_in_its_block_and_keeps_its_indentation(qtbot) -> None:
    from app.chat.chat_view import ChatView

    view = ChatView()
    qtbot.addWidget(view)
    view.resize(620, 500)
    view.show()
    qtbot.waitExposed(view)
    row = view.add_message(stored_message(1, "assistant", CODE_ANSWER))
    (block,) = row.body.code_views
    text = block.text_view
    qtbot.waitUntil(lambda: text.horizontalScrollBar().maximum() > 0)
    assert block.language_label.text() == "python"
    document = text.document()
    assert document.blockCount() == 3
    for number in range(3):  # one line each: nothing wrapped back to column 0
        assert document.findBlockByNumber(number).layout().lineCount() == 1
    qtbot.waitUntil(text.horizontalScrollBar().isVisible)
    assert view.horizontalScrollBar().maximum() == 0  # only the block scrolls, not the chat
    assert row.body.browsers[0].toPlainText().strip() == "Here:"
    assert text.height() >= document.size().height()  # every line shows, the bar below them
    view.grab().save("/tmp/shots/i24-code-block.png")

    QGuiApplication.clipboard().clear()
    qtbot.mouseClick(block.copy_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == CODE
    assert block.copy_button.text() == "Copied"
    qtbot.waitUntil(lambda: block.copy_button.text() == "Copy", timeout=5000)
    qtbot.mouseClick(row.copy_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == CODE_ANSWER


def test_a_streaming_answer_keeps_its_code_block_widget_as_it_grows(qtbot) -> None:
    from app.chat.chat_view import ChatView

    view = ChatView()
    qtbot.addWidget(view)
    view.show()
    view.begin_answer()
    row = view.streaming_row
    row.set_text("Here:\n\n```python\ndef run():")
    (block,) = row.body.code_views
    row.set_text("Here:\n\n```python\ndef run():\n    return 1\n```\n\nDone.")
    assert row.body.code_views == [block]  # the same widget, grown
    assert block.code == "def run():\n    return 1"
    assert row.body.toPlainText().endswith("Done.")
