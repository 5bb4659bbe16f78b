"""Screenshots of the chat window, saved under the names README uses (``--out docs/screenshots``
replaces them): the welcome screen and the main window mid-answer, each in the light and the dark
look, and the window at its minimum size.

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/screenshots.py [--model FOLDER] [--out DIR]

Runs against a private, temporary app home (your conversations and settings are never touched).
The mid-answer shots stream a real answer from a converted model (default: the demo model, or the
test suite's cached SmolLM2 conversion, under .cache/tests or $COREML_CHAT_TEST_CACHE). The chat
shots (chat.png, chat-dark.png, chat-small.png, model-switcher.png) load that model and show a
code block with a line longer than the block, the actions of the message under the pointer, the
sidebar's date groups and a pinned chat (chats from past days, imported through the store), a
preset, a text file attached in the composer with its token cost, and the model menu open
(``--features-only`` takes just these). The small-window shots show the welcome page and a chat
whose answer holds a table, a quote and a long code line, at the window's minimum size. Then calls
``scripts/screenshots_settings.capture`` (the settings dialog's tabs and the converter pane mid-run)
when that script is present, in the light look.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
logger = logging.getLogger("screenshots")

EARLIER_QUESTION = "Show me how to reverse a list in Python."
EARLIER_ANSWER = """There are two common ways:

```python
numbers = [1, 2, 3]
numbers.reverse()          # in place
backwards = numbers[::-1]  # a reversed copy
```

Use `reverse()` when you no longer need the original order, and slicing when you do."""
QUESTION = "Give me three tips for writing clear commit messages."
FORMATTED_QUESTION = "Compare Python and Rust in a small table, with a quote and an example."
FORMATTED_ANSWER = """| Language | Typing | Memory |
|:--|:--|:--|
| Python | dynamic | garbage collected |
| Rust | static | ownership |

> Simple is better than complex.

```python
def describe(language: str, typing: str) -> str:
    return f"{language} checks its types {'before running' if typing == 'static' else 'while running'}, which matters for large programs"
```"""


def find_model() -> Path | None:
    from app.conversion.demo_setup import demo_model_dir, is_model_folder

    caches = [
        REPO / ".cache/tests",
        Path(os.environ.get("COREML_CHAT_TEST_CACHE", REPO / ".cache/tests")),
    ]
    cached = [m for cache in caches for m in sorted((cache / "converted").glob("SmolLM2*"))]
    candidates = [demo_model_dir(), *cached]
    return next((c for c in candidates if is_model_folder(c)), None)


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    from PySide6.QtWidgets import QApplication

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        QApplication.processEvents()
        if predicate():
            return True
        time.sleep(0.01)
    return False


def use_look(mode: str) -> None:
    """Switch the running app to the light or dark look."""
    from PySide6.QtWidgets import QApplication

    from app.ui.palette import PALETTES
    from app.ui.theme import apply_palette

    apply_palette(QApplication.instance(), PALETTES[mode])


def fresh_home() -> None:
    """A new private app home: each shot starts with no conversations but its own."""
    os.environ["COREML_CHAT_HOME"] = tempfile.mkdtemp(prefix="coreml-chat-shots-")


def make_window(settings_model_path: str = ""):
    """A window in a fresh private home; a model given is linked into its models folder under its
    plain name (what the window calls it, not the test cache's folder name) and loaded from there."""
    fresh_home()
    if settings_model_path:
        settings_model_path = str(link_models(Path(settings_model_path)))
    from app.chat.engine_bridge import EngineBridge
    from app.conversations.store import ConversationStore
    from app.settings.app_settings import AppSettings
    from app.settings.settings_store import SettingsStore
    from app.shell.main_window import MainWindow
    from engine.messages import GenerationConfig

    settings = AppSettings(
        model_path=settings_model_path,
        generation=GenerationConfig(max_new_tokens=160, temperature=0.0, seed=0),
    )
    window = MainWindow(
        store=ConversationStore(),
        bridge=EngineBridge(),
        settings=SettingsStore(settings, save=None),
    )
    window.resize(1180, 760)
    return window


def capture_welcome(out_dir: Path, name: str = "welcome.png", *, smallest: bool = False) -> Path:
    window = make_window()
    window.show()
    if smallest:
        window.resize(window.minimumSize())
    wait_until(lambda: False, 0.3)
    path = out_dir / name
    window.grab().save(str(path))
    window.close()
    return path


def capture_settings(out_dir: Path, tab: str, name: str) -> Path:
    """The Settings dialog on ``tab`` (spin boxes, combo boxes, check boxes in the current look)."""
    window = make_window()
    window.show()
    window.open_settings(tab)
    dialog = window.settings_dialog
    wait_until(lambda: False, 0.3)
    path = out_dir / name
    dialog.grab().save(str(path))
    dialog.close()
    window.close()
    return path


def capture_small_chat(out_dir: Path) -> Path:
    """The window at its minimum size on a chat whose answer has a table, a quote and long code."""
    window = make_window()
    store = window.store
    chat = store.create_conversation("Python and Rust")
    store.append_message(chat.id, "user", FORMATTED_QUESTION)
    store.append_message(chat.id, "assistant", FORMATTED_ANSWER, finish_reason="eos")
    window.sidebar.refresh(current=None)
    window.show()
    window.resize(window.minimumSize())
    window.open_conversation(chat.id)
    wait_until(lambda: False, 0.3)
    window.chat_view.scroll_to_bottom()
    wait_until(lambda: False, 0.2)
    path = out_dir / "main-window-small.png"
    window.grab().save(str(path))
    window.close()
    return path


def capture_mid_answer(out_dir: Path, model: Path, name: str = "main-window.png") -> Path:
    window = make_window(str(model))
    store = window.store
    earlier = store.create_conversation("Trip to Lisbon")
    store.append_message(earlier.id, "user", "Plan a weekend in Lisbon")
    store.append_message(earlier.id, "assistant", "Day 1: Alfama and the castle…")
    code = store.create_conversation()
    store.append_message(code.id, "user", EARLIER_QUESTION)
    store.append_message(code.id, "assistant", EARLIER_ANSWER, finish_reason="eos")
    window.show()
    window.start()
    if not wait_until(lambda: window.bridge.model_info is not None, 120):
        raise RuntimeError(f"the model at {model} did not load within 120 s")
    window.open_conversation(code.id)
    window.composer.input.setPlainText(QUESTION)
    window.composer._on_submit()
    if not wait_until(lambda: len(window.chat_view.streaming_text) > 120, 120):
        raise RuntimeError("no streaming answer within 120 s")
    wait_until(lambda: False, 0.1)
    path = out_dir / name
    window.grab().save(str(path))
    window.controller.stop()
    wait_until(lambda: not window.controller.busy, 30)
    window.close()
    return path


# --- answer versions and the export dialog (issue 16, conversation features) -------------------

VERSIONS_QUESTION = "Suggest a name for a small coffee shop by the sea."


def capture_answer_versions(out_dir: Path, model: Path) -> list[Path]:
    """A real answer regenerated twice (sampled, fixed seeds), the second of three versions
    shown (‹ 2/3 ›); then the export dialog over the same window."""
    from engine.messages import GenerationConfig

    window = make_window(str(model))
    window.show()
    window.start()
    if not wait_until(lambda: window.bridge.model_info is not None, 120):
        raise RuntimeError(f"the model at {model} did not load within 120 s")
    window.controller.send(VERSIONS_QUESTION)
    for seed in (None, 1, 2):
        if seed is not None:
            window.settings_store.update(
                generation=GenerationConfig(
                    max_new_tokens=48, temperature=0.7, top_p=0.9, seed=seed
                )
            )
            window.controller.regenerate()
        if not wait_until(lambda: not window.controller.busy, 300):
            raise RuntimeError("no answer within 300 s")
    last = window.store.messages(window.controller.current_conversation_id)[-1]
    window.controller.show_version(last.id, -1)  # ‹: version 2 of 3
    wait_until(lambda: False, 0.3)
    versions = out_dir / "answer-versions.png"
    window.grab().save(str(versions))

    dialog = window.transfer.open_export(window.controller.current_conversation_id, window)
    dialog.path_edit.setText(str(Path.home() / "Documents" / "Coffee shop names.md"))
    wait_until(lambda: False, 0.3)
    export = out_dir / "export-dialog.png"
    dialog.grab().save(str(export))
    dialog.reject()
    window.close()
    return [versions, export]


# --- the window of issue 24: switcher, hover actions, code blocks, date groups, attachments -----

LOG_QUESTION = "Count the requests per status code in an nginx access log like this one."
LOG_ANSWER = """Read the file line by line and count the ninth field, the status code:

```python
from collections import Counter

def count_statuses(path: str) -> Counter[str]:
    with open(path, encoding="utf-8") as log:
        return Counter(line.split()[8] for line in log if len(line.split()) > 8)  # field 9: the status code, e.g. 200, 404 or 502

print(count_statuses("access.log").most_common(3))
```

`most_common(3)` lists the three most frequent codes first."""
LOG_FOLLOW_UP = "And in yesterday's log: which client gets the most 404s?"
ACCESS_LOG = "\n".join(
    f'10.0.0.{ip} - - [08/Dec/2026:06:{minute:02d}:00 +0000] "GET /{page} HTTP/1.1" {code} 512'
    for ip, minute, page, code in [
        (4, 1, "index.html", 200), (7, 2, "missing.png", 404), (4, 3, "api/items", 200),
        (9, 4, "old/page", 404), (7, 5, "favicon.ico", 404), (12, 6, "api/items", 502),
    ]
)  # fmt: skip


def _coding_preset():
    from app.settings.presets import Preset
    from engine.messages import GenerationConfig

    return Preset(
        "Coding",
        system_prompt="You review Python code: short answers, working examples.",
        generation=GenerationConfig(max_new_tokens=400, temperature=0.2, seed=0),
    )


DAY = 24 * 3600
# Earlier chats (title, days ago, pinned): the sidebar's date groups and a pin.
EARLIER_CHATS = [
    ("Release checklist", 12, True),
    ("Trip to Lisbon", 1, False),
    ("Sourdough starter schedule", 3, False),
    ("Birthday message for Ana", 5, False),
    ("Explain Core ML states", 18, False),
    ("Reverse a list in Python", 40, False),
]


def link_models(model: Path) -> Path:
    """Show ``model`` (and the test cache's Gemma conversion, when there) in the private home's
    models folder under plain names, as the library lists them; returns the linked demo model."""
    from engine import paths

    models = paths.models_dir()
    models.mkdir(parents=True, exist_ok=True)
    linked = models / "SmolLM2-135M-Instruct"
    linked.symlink_to(model.resolve(), target_is_directory=True)
    gemma = sorted(model.resolve().parent.glob("gemma-3-270m*"))
    gemma = [g for g in gemma if g.is_dir()]
    if gemma:
        (models / "gemma-3-270m-it").symlink_to(gemma[0], target_is_directory=True)
    return linked


def add_earlier_chats(store) -> None:
    """Chats from past days, written through the store's import (which keeps their times)."""
    from app.conversations.store.records import Conversation, StoredMessage

    now = time.time()
    records = []
    for index, (title, days, pinned) in enumerate(EARLIER_CHATS):
        when = now - days * DAY - 3600
        chat = Conversation(f"earlier{index}", title, when, when, pinned=pinned)
        question = StoredMessage(0, chat.id, 0, "user", title, when)
        answer = StoredMessage(0, chat.id, 1, "assistant", "…", when, finish_reason="eos")
        records.append((chat, [question, answer]))
    store.import_conversations(records)
    for chat, _messages in records:
        if chat.pinned:  # the import keeps times, not pins
            store.set_pinned(chat.id, True)


def hover(widget) -> None:
    """The pointer over ``widget`` (its hover-only actions show)."""
    from PySide6.QtCore import QPointF
    from PySide6.QtGui import QEnterEvent
    from PySide6.QtWidgets import QApplication

    point = QPointF(8, 8)
    QApplication.sendEvent(widget, QEnterEvent(point, point, widget.mapToGlobal(point)))


def grab_with_popup(window, popup, at):
    """The window with an open menu drawn over it at ``at`` (global): a menu is a window of its
    own, which the offscreen screen (800 × 600) would push left of where it opens."""
    from PySide6.QtGui import QPainter

    image = window.grab()
    painter = QPainter(image)
    painter.drawPixmap(window.mapFromGlobal(at), popup.grab())
    painter.end()
    return image


def capture_window_features(
    out_dir: Path, model: Path, name: str, *, smallest: bool = False, switcher: str = ""
) -> list[Path]:
    """A chat with a code block (its long line scrolled sideways) and the actions of the message
    under the pointer, the sidebar's date groups with a pinned chat, a text file attached in the
    composer with its token cost (and one sent, folded in the question); with ``switcher``, a second shot with the model menu open."""
    from app.chat.attachments import Attachment, message_with_attachments

    window = make_window(str(model))
    store = window.store
    add_earlier_chats(store)
    chat = store.create_conversation("Status codes in an access log")
    sent = Attachment("access.log", ACCESS_LOG)  # shown folded to a line in the question
    store.append_message(chat.id, "user", message_with_attachments(LOG_QUESTION, [sent]))
    store.append_message(chat.id, "assistant", LOG_ANSWER, finish_reason="eos")
    window.show()
    if smallest:
        window.resize(window.minimumSize())
    window.start()
    if not wait_until(lambda: window.bridge.model_info is not None, 120):
        raise RuntimeError(f"the model at {model} did not load within 120 s")
    window.sidebar.refresh(current=chat.id)
    window.open_conversation(chat.id)
    coding = _coding_preset()
    window.settings_store.update(presets=(coding,))
    window.choose_preset(coding.name)  # the header names it, and the prompt it brings
    sample = Path(tempfile.mkdtemp(prefix="coreml-chat-shots-file-")) / "access-2026-12-07.log"
    sample.write_text(ACCESS_LOG.replace("08/Dec", "07/Dec") + "\n", encoding="utf-8")
    window.composer.attach_files([str(sample)])
    window.composer.input.setPlainText(LOG_FOLLOW_UP)
    wait_until(lambda: False, 0.3)
    window.chat_view.scroll_to_bottom()
    wait_until(lambda: False, 0.2)
    hover(window.chat_view.rows[0])  # the question: Copy and Edit show under the pointer
    wait_until(lambda: False, 0.2)
    path = out_dir / name
    window.grab().save(str(path))
    saved = [path]
    if switcher:
        from PySide6.QtCore import QPoint

        chip = window.model_chip
        menu = chip.menu()
        at = chip.mapToGlobal(chip.rect().bottomLeft()) + QPoint(0, 1)  # where a click opens it
        menu.popup(at)
        wait_until(lambda: menu.isVisible(), 5)
        wait_until(lambda: False, 0.3)
        path = out_dir / switcher
        grab_with_popup(window, menu, at).save(str(path))
        menu.hide()
        saved.append(path)
    window.close()
    return saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a converted model folder")
    parser.add_argument("--out", type=Path, default=REPO / "screenshots")
    parser.add_argument(
        "--no-settings", action="store_true", help="skip scripts/screenshots_settings.py's shots"
    )
    parser.add_argument(
        "--features-only",
        action="store_true",
        help="only the chat shots of the window's features (light, dark, smallest, model menu)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    out_dir = args.out.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    model = args.model or find_model()  # looked up before the private home hides the demo model
    os.environ["COREML_CHAT_HOME"] = tempfile.mkdtemp(prefix="coreml-chat-shots-")

    from PySide6.QtWidgets import QApplication

    from app.ui.theme import apply_theme

    app = QApplication.instance() or QApplication([])
    apply_theme(app, mode="light")
    if args.features_only:
        if model is None:
            parser.error("no converted model found (use --model)")
        saved = capture_window_features(out_dir, model, "chat.png", switcher="model-switcher.png")
        use_look("dark")
        saved += capture_window_features(out_dir, model, "chat-dark.png")
        use_look("light")
        saved += capture_window_features(out_dir, model, "chat-small.png", smallest=True)
        print(*saved, sep="\n")
        return 0
    saved = [capture_welcome(out_dir)]
    if model is None:
        logger.warning("no converted model found: skipping the mid-answer shots (use --model)")
    else:
        saved.append(capture_mid_answer(out_dir, model))
        saved.extend(capture_answer_versions(out_dir, model))
        saved.extend(
            capture_window_features(out_dir, model, "chat.png", switcher="model-switcher.png")
        )
    use_look("dark")
    if model is not None:
        saved.extend(capture_window_features(out_dir, model, "chat-dark.png"))
    saved.append(capture_welcome(out_dir, "welcome-dark.png"))
    saved.append(capture_settings(out_dir, "generation", "settings-generation-dark.png"))
    saved.append(capture_settings(out_dir, "general", "settings-general-dark.png"))
    if model is not None:
        saved.append(capture_mid_answer(out_dir, model, "main-window-dark.png"))
    use_look("light")
    saved.append(capture_welcome(out_dir, "welcome-small.png", smallest=True))
    saved.append(capture_small_chat(out_dir))
    if model is not None:
        saved.extend(capture_window_features(out_dir, model, "chat-small.png", smallest=True))
    settings_script = REPO / "scripts" / "screenshots_settings.py"
    if settings_script.is_file() and not args.no_settings:
        spec = importlib.util.spec_from_file_location("screenshots_settings", settings_script)
        if spec is not None and spec.loader is not None:
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            saved.extend(module.capture(out_dir))
    for path in saved:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
