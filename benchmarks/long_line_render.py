"""Long unbroken lines in the chat view: seconds to show one message holding a line without spaces.

    .venv/bin/python benchmarks/long_line_render.py [--sizes 100000 200000]

Qt's text layout finds line breaks with a cost that grows with the square of a word's length, so a
1 MB line without a space froze the window for about 35 s. The view now inserts break
opportunities into very long words for display (the stored text is untouched). For each size this
shows a user message and an assistant answer (a fresh ``MessageRow`` each, laid out at 700 px) and
prints one JSON object with the seconds each took. Goal: ≤ 1 s for 1 MB. Runs offscreen unless
QT_QPA_PLATFORM says otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks._goals import at_most, report  # noqa: E402

GOAL_SECONDS = 1.0


def show_seconds(role: str, text: str) -> float:
    from PySide6.QtWidgets import QApplication

    from app.chat.markdown_render import MarkdownRenderer
    from app.chat.message_row import MessageRow

    row = MessageRow(role, renderer=MarkdownRenderer())
    row.resize(700, 400)
    row.show()
    QApplication.processEvents()
    started = time.perf_counter()
    row.set_text(text)
    for browser in (row.body, *(b for _, b in row.frozen)):
        browser.document().size()  # force the layout
    QApplication.processEvents()
    elapsed = time.perf_counter() - started
    row.close()
    row.deleteLater()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    args = parser.parse_args()
    # No window is needed to lay text out: without a display (make bench on a headless machine)
    # Qt would find no platform plugin and abort.
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    figures = {}
    for size in args.sizes:
        text = "x" * size
        for role in ("user", "assistant"):
            figures[f"{role}_seconds_{size}_characters"] = at_most(
                show_seconds(role, text), GOAL_SECONDS, "s"
            )
    report("long_line_render", figures)
    app.quit()


if __name__ == "__main__":
    main()
