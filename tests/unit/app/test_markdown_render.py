"""Model output rendered safely: raw HTML as text, no images, no unsafe links; code blocks copyable."""

from __future__ import annotations

import re

from PySide6.QtCore import Qt

from app.chat.markdown_render import MarkdownRenderer, plain_text_html


def test_raw_html_from_the_model_is_escaped() -> None:
    rendered = MarkdownRenderer().render(
        'Hi <script>alert("x")</script> and <img src=http://evil.example/p.png onerror=x>'
    )
    assert "<script" not in rendered.html and "<img" not in rendered.html
    assert "&lt;script&gt;" in rendered.html
    assert "&lt;img src=http://evil.example/p.png onerror=x&gt;" in rendered.html


def test_markdown_images_become_text_and_unsafe_links_lose_their_target() -> None:
    rendered = MarkdownRenderer().render(
        "![tracker](http://evil.example/t.gif) [bad](javascript:alert(1)) "
        "[file](file:///etc/passwd) [good](https://example.org)"
    )
    assert "<img" not in rendered.html
    assert "[image: tracker] (http://evil.example/t.gif)" in rendered.html
    assert "javascript:" not in rendered.html.split("[bad]")[0]
    assert 'href="file:' not in rendered.html
    assert '<a href="https://example.org">good</a>' in rendered.html


def test_code_blocks_are_monospaced_with_a_copy_link() -> None:
    text = "Try:\n\n```python\nprint(1 < 2)\n```\n\nand\n\n    indented()\n"
    rendered = MarkdownRenderer().render(text)
    assert rendered.code_blocks == ["print(1 < 2)", "indented()"]
    assert 'href="copy:0"' in rendered.html and 'href="copy:1"' in rendered.html
    pres = re.findall(r"<pre[^>]*>(.*?)</pre>", rendered.html, re.S)
    assert [re.sub(r"<[^>]+>", "", pre) for pre in pres] == ["print(1 &lt; 2)", "indented()"]
    assert "monospace" in MarkdownRenderer().stylesheet()


def test_user_text_is_shown_exactly() -> None:
    assert plain_text_html("a <b>\nc") == "<p>a &lt;b&gt;<br>c</p>"


def test_a_long_answer_is_cut_only_between_blocks_outside_code_fences() -> None:
    from app.chat.markdown_render import last_stable_boundary

    text = "para one\n\n```\ncode\n\nmore code\n```\n\npara two\n\n    indented\n\npara three\n"
    cut = last_stable_boundary(text, 0, min_chunk=1)
    assert text[cut:] == "para three\n"  # not inside the fence, not before the indented block
    inside_fence = text.index("more code")
    assert last_stable_boundary(text, 0, min_chunk=1) != inside_fence
    assert last_stable_boundary(text, 0, min_chunk=len(text)) is None
    assert last_stable_boundary("growing\n\nlast line still grow", 0, min_chunk=1) is None


def test_a_long_streamed_answer_renders_in_parts_and_shows_everything(qapp) -> None:
    from app.chat.message_row import MessageRow

    row = MessageRow("assistant", renderer=MarkdownRenderer())
    block = "A paragraph with **bold** text. " * 8 + "\n\n```python\nx = 1\n```\n\n"
    text = block * 30
    for end in range(0, len(text) + 200, 200):
        row.set_text(text[:end])
    assert len(row.frozen) >= 3
    assert (
        "".join(part for part, _ in row.frozen) + text[len("".join(p for p, _ in row.frozen)) :]
        == text
    )
    shown = row.plain_text()
    assert shown.count("x = 1") == 30 and shown.count("A paragraph with bold text.") == 240
    row.set_text("a different answer")  # not a continuation: the parts are dropped
    assert row.frozen == [] and row.plain_text() == "a different answer"


def test_long_words_get_break_opportunities_in_the_html_only() -> None:
    from app.chat.markdown_render import WORD_BREAK_EVERY, ZERO_WIDTH_SPACE

    url = "https://example.org/" + "p" * 200
    text = "x" * 1000 + f" [link]({url}) `" + "c" * 300 + "` short words stay whole"
    rendered = MarkdownRenderer().render(text)
    assert (
        rendered.html.count(ZERO_WIDTH_SPACE) == 1000 // WORD_BREAK_EVERY + 300 // WORD_BREAK_EVERY
    )
    assert f'href="{url}"' in rendered.html  # a link's target is never touched
    assert rendered.html.replace(ZERO_WIDTH_SPACE, "") == MarkdownRenderer()._md.render(text)
    user = plain_text_html("&" * 200)
    assert user.replace(ZERO_WIDTH_SPACE, "") == "<p>" + "&amp;" * 200 + "</p>"
    assert ZERO_WIDTH_SPACE + "amp;" not in user  # never inside an entity


def test_a_long_unbroken_line_is_shown_with_breaks_and_stored_unchanged(qapp) -> None:
    from app.chat.markdown_render import ZERO_WIDTH_SPACE
    from app.chat.message_row import MAX_SHOWN_CHARS, MessageRow
    from app.conversations.store import StoredMessage

    for role in ("user", "assistant"):
        row = MessageRow(role, renderer=MarkdownRenderer())
        line = "x" * 50_000
        message = StoredMessage(1, "c", 0, role, line, 0.0)
        row.set_message(message)
        body = row.body if role == "user" else row.body.browsers[0]  # an answer's: its parts
        shown = body.document().toPlainText().strip()
        assert ZERO_WIDTH_SPACE in shown and shown.replace(ZERO_WIDTH_SPACE, "") == line
        assert message.content == line and row.text == line
        assert row.plain_text() == line
        body.selectAll()  # a copied selection has no break opportunities in it
        assert body.createMimeDataFromSelection().text().strip() == line
        assert row.more_note.isHidden()

    # A line past the display limit: the view shows the limit and says how much more there is;
    # growing further (streaming) re-renders nothing.
    row = MessageRow("assistant", renderer=MarkdownRenderer())
    huge = "y" * (MAX_SHOWN_CHARS + 5000)
    row.set_text(huge)
    (body,) = row.body.browsers
    shown = body.document().toPlainText().strip().replace(ZERO_WIDTH_SPACE, "")
    assert shown == huge[:MAX_SHOWN_CHARS] and row.text == huge
    assert not row.more_note.isHidden()
    assert row.more_note.text().startswith("… 5,000 more characters not shown")
    revision = body.document().revision()
    row.set_text(huge + "y" * 1000)
    assert body.document().revision() == revision
    assert row.more_note.text().startswith("… 6,000 more characters not shown")
    assert row.more_note.textFormat() == Qt.TextFormat.PlainText


def _document(html: str, renderer: MarkdownRenderer):
    from PySide6.QtGui import QTextDocument

    document = QTextDocument()
    document.setDefaultStyleSheet(renderer.stylesheet())
    document.setHtml(html)
    return document


def _tables(document) -> list:
    from PySide6.QtGui import QTextCursor

    found, cursor = [], QTextCursor(document)
    while True:
        table = cursor.currentTable()
        if table is not None and table not in found:
            found.append(table)
        if not cursor.movePosition(QTextCursor.MoveOperation.NextBlock):
            return found


def test_tables_get_borders_padding_and_a_header_shade(qapp) -> None:
    from app.ui.palette import DARK

    renderer = MarkdownRenderer(palette=DARK)
    text = "| Name | Year |\n|:--|--:|\n| Python | 1991 |\n| Rust | 2015 |\n"
    document = _document(renderer.render(text).html, renderer)
    [table] = _tables(document)
    table_format = table.format()
    assert (table.rows(), table.columns()) == (3, 2)
    assert table_format.border() >= 1 and table_format.cellPadding() >= 4
    assert table_format.borderBrush().color().name() == DARK.table_border
    header = table.cellAt(0, 0).format().background().color().name()
    assert header == DARK.table_header_background
    year = table.cellAt(1, 1).firstCursorPosition().blockFormat().alignment()
    assert year & Qt.AlignmentFlag.AlignRight  # the column's alignment is kept


def test_quotes_get_a_bar_and_their_own_colour(qapp) -> None:
    from app.ui.palette import LIGHT

    renderer = MarkdownRenderer(palette=LIGHT)
    document = _document(renderer.render("> Simple is better than complex.\n").html, renderer)
    [table] = _tables(document)
    cell = table.cellAt(0, 0)
    cell_format = cell.format().toTableCellFormat()
    assert cell_format.leftBorder() >= 2
    assert cell_format.leftBorderBrush().color().name() == LIGHT.quote_bar
    assert cell.firstCursorPosition().charFormat().foreground().color().name() == LIGHT.quote_text
    assert "Simple is better than complex." in document.toPlainText()


def test_code_is_syntax_coloured_from_the_palette_in_both_looks(qapp) -> None:
    from PySide6.QtGui import QTextDocument

    from app.ui.palette import DARK, LIGHT

    code = 'def greet(name):\n    return "hi " + name  # say hello\n'
    for colors in (LIGHT, DARK):
        renderer = MarkdownRenderer(palette=colors)
        rendered = renderer.render(f"```python\n{code}```\n")
        document = _document(rendered.html, renderer)
        assert rendered.code_blocks == [code.rstrip("\n")]

        def color_of(word: str, document: QTextDocument = document) -> str:
            cursor = document.find(word)
            assert not cursor.isNull(), word
            return cursor.charFormat().foreground().color().name()

        assert color_of("def") == colors.syntax_keyword
        assert color_of('"hi "') == colors.syntax_string
        assert color_of("# say hello") == colors.syntax_comment
        assert color_of("greet") == colors.syntax_function
    plain = MarkdownRenderer().render("```no-such-language\nx <y>\n```\n").html
    assert "x &lt;y&gt;" in plain and "<span" not in plain.split("<pre")[1]
