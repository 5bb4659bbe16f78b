"""Hostile input aimed at the app: names from a Hub server, text shown in labels, huge lines.

The Hub cases run against the stand-in Hub of ``tests/integration/app/test_hub_download.py`` (a
real HTTP server on 127.0.0.1) and check that nothing is written outside the staging folder.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from app.models.hub_download import (
    HubError,
    RepoFile,
    RepoListing,
    download_files,
    list_repo,
    plan_files,
    staging_folder_for,
)
from tests.fixtures.fake_hub import SHA, FakeHub

HOSTILE_NAMES = (
    "X.mlpackage/../../../canary.txt",
    "X.mlpackage/Data/../../../../canary.txt",
    "/tmp/canary.txt",
    "X.mlpackage\\..\\..\\..\\canary.txt",
    "X.mlpackage//Manifest.json",
    "X.mlpackage/./Manifest.json",
    "C:/canary.txt",
)


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    canary = tmp_path / "canary.txt"
    canary.write_bytes(b"the user's file")
    return canary


def _file_gets(hub: FakeHub) -> list[str]:
    return [path for method, path, _ in hub.requests if "/resolve/" in path]


@pytest.mark.parametrize("name", HOSTILE_NAMES[:2])
def test_a_hostile_listing_is_refused_before_anything_is_written(
    fake_hub: FakeHub, tmp_path: Path, canary: Path, name: str
) -> None:
    fake_hub.repos["evil/repo"] = {
        "X.mlpackage/Manifest.json": b"{}",
        name: b"overwritten",
        "tokenizer.json": b"{}",
    }
    listing = list_repo("evil/repo", endpoint=fake_hub.url)
    with pytest.raises(HubError, match=r"refusing the repository file name .*expected a relative"):
        plan_files(listing, "X.mlpackage")
    # Even a caller that skips the plan cannot get the file written outside.
    destination = tmp_path / "models" / "X"
    with pytest.raises(HubError, match="refusing the repository file name"):
        download_files(listing, listing.files, destination, endpoint=fake_hub.url)
    assert canary.read_bytes() == b"the user's file"
    assert not destination.exists() and not staging_folder_for(destination).exists()
    assert _file_gets(fake_hub) == []


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_every_hostile_name_is_refused(
    fake_hub: FakeHub, tmp_path: Path, canary: Path, name: str
) -> None:
    listing = RepoListing("evil/repo", SHA, (RepoFile("tokenizer.json", 2), RepoFile(name, 11)))
    destination = tmp_path / "models" / "X"
    with pytest.raises(HubError, match="refusing the repository file name"):
        download_files(listing, listing.files, destination, endpoint=fake_hub.url)
    assert canary.read_bytes() == b"the user's file"
    assert not (tmp_path / "models").exists()
    assert _file_gets(fake_hub) == []


def test_a_link_in_the_staging_folder_does_not_lead_outside(
    fake_hub: FakeHub, tmp_path: Path, canary: Path
) -> None:
    """A staging folder left behind with a link in it (the name checks alone would pass)."""
    fake_hub.repos["evil/repo"] = {
        "X.mlpackage/Manifest.json": b"{}",
        "X.mlpackage/canary.txt": b"overwritten",
    }
    listing = list_repo("evil/repo", endpoint=fake_hub.url)
    destination = tmp_path / "models" / "X"
    staging = staging_folder_for(destination)
    staging.mkdir(parents=True)
    (staging / "X.mlpackage").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(HubError, match="resolves outside"):
        download_files(
            listing, plan_files(listing, "X.mlpackage"), destination, endpoint=fake_hub.url
        )
    assert canary.read_bytes() == b"the user's file"
    assert _file_gets(fake_hub) == []


MARKUP = "<b>x</b> <img src=http://127.0.0.1:9/p.png> <a href='http://evil.example'>y</a>"


def _assert_literal(label, text: str) -> None:
    from PySide6.QtCore import Qt

    assert label.textFormat() == Qt.TextFormat.PlainText
    assert label.text() == text


def test_labels_show_untrusted_text_as_text(qapp) -> None:
    from app.chat.markdown_render import MarkdownRenderer
    from app.chat.message_row import MessageRow
    from app.chat.status_line import StatusLine
    from app.shell.main_window import ErrorBanner
    from app.shell.welcome_view import WelcomeView
    from app.ui.pane_widgets import hint, label

    banner = ErrorBanner()
    banner.show_message(f"Could not load the model: {MARKUP}")
    _assert_literal(banner.label, f"Could not load the model: {MARKUP}")
    row = MessageRow("assistant", renderer=MarkdownRenderer(), assistant_name=MARKUP)
    _assert_literal(row.author_label, MARKUP)
    status = StatusLine()
    status.show_notice(MARKUP)
    _assert_literal(status.notice_label, MARKUP)
    status.set_model(None, loading=f"Loading {MARKUP}…")
    _assert_literal(status.stats_label, f"Loading {MARKUP}…")
    welcome = WelcomeView()
    welcome.set_status(MARKUP)
    _assert_literal(welcome.status, MARKUP)
    _assert_literal(label(MARKUP), MARKUP)  # model names, paths and errors in the settings
    _assert_literal(hint(MARKUP), MARKUP)


def test_the_model_chip_and_title_show_names_as_text(make_window, tmp_path: Path) -> None:
    window = make_window(loaded=False)
    folder = tmp_path / "<b>x<i>"
    folder.mkdir()
    window.load_model(str(folder))
    _assert_literal(window.model_chip, "Loading <b>x<i>…")
    assert window.title_label.textFormat().name == "PlainText"
    window.grab().save("/tmp/i10-labels-plain.png")


# --- Issue 21: the app's end of the engine pipe, and Stop as a promise ---------------------------

FAKE_ENGINE_DEEP_LINE = (
    "import sys\n"
    "from engine import wire\n"
    "from engine.messages import EngineError\n"
    "out = sys.stdout.buffer\n"
    "out.write(b'[' * 100000 + b'\\n' + wire.encode(EngineError(None, 'still here')))\n"
    "out.flush()\n"
    "sys.stdin.read()\n"
)
# An engine whose reader never gets to a Cancel (as when a C call holds its GIL): reads, never answers.
FAKE_ENGINE_DEAF = "import sys\nsys.stdin.buffer.read()\n"


def _client(script: str, events: list):
    from app.chat.engine_process import EngineProcessClient

    return EngineProcessClient(events.append, command=[sys.executable, "-c", script])


def test_the_app_reads_on_after_a_deeply_nested_event_line(qtbot) -> None:
    from engine.messages import EngineError

    events: list = []
    client = _client(FAKE_ENGINE_DEEP_LINE, events)
    try:
        qtbot.waitUntil(lambda: bool(events), timeout=30_000)  # nothing came before the fix
        assert events == [EngineError(None, "still here")] and client.restarts == 0
    finally:
        client.close()


def test_an_engine_that_does_not_hear_stop_is_restarted_and_the_answer_ends(qtbot) -> None:
    from engine.messages import ChatMessage, EngineError, Generate, GenerationFinished

    events: list = []
    client = _client(FAKE_ENGINE_DEAF, events)
    try:
        old_pid = client.pid
        client.submit(Generate(5, "c", (ChatMessage("user", "hi"),)))
        time.sleep(0.2)
        stopped = time.monotonic()
        client.cancel()
        qtbot.waitUntil(
            lambda: any(isinstance(e, GenerationFinished) for e in events), timeout=10_000
        )
        assert time.monotonic() - stopped < 2.0
        error, finished = events[:2]
        assert isinstance(error, EngineError) and error.request_id == 5
        assert "did not stop within 1.5 s" in error.message and "\n" not in error.message
        assert finished.request_id == 5 and finished.stats.finish_reason == "cancelled"
        assert client.restarts == 1 and client.pid != old_pid
    finally:
        client.close()


def _send(qtbot, window, text: str) -> None:
    from PySide6.QtCore import Qt

    window.composer.input.setFocus()
    window.composer.input.setPlainText(text)
    qtbot.keyClick(window.composer.input, Qt.Key.Key_Return)


def _stop(qtbot, window) -> float:
    """Press Stop; the seconds until the window is idle again."""
    from PySide6.QtCore import Qt

    pressed = time.monotonic()
    qtbot.mouseClick(window.composer.button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.controller.busy, timeout=30_000)
    return time.monotonic() - pressed


def _answers_next(qtbot, window) -> None:
    window.new_chat()  # Mistral's template refuses two user messages in a row
    _send(qtbot, window, "Hello")
    qtbot.waitUntil(lambda: not window.controller.busy, timeout=120_000)
    messages = window.store.messages(window.controller.current_conversation_id)
    assert messages[-1].role == "assistant", [
        (m.role, m.content, m.finish_reason) for m in messages
    ]
    assert messages[-1].finish_reason in ("eos", "max_tokens")


def test_stop_ends_a_template_render_that_holds_the_engines_gil(
    qtbot, make_window, converted_package, tmp_path: Path
) -> None:
    from tests.adversarial.test_engine_inputs import (
        SELF_NESTED_LIST,
        _model_with_template,
        _when_asked,
    )

    model = _model_with_template(
        converted_package("mistral", "int4"), tmp_path / "gil", _when_asked(SELF_NESTED_LIST)
    )
    window = make_window(model)
    _send(qtbot, window, "hang")
    time.sleep(1.0)  # inside the render (the engine's time limit is 5 s)
    assert window.controller.busy
    assert _stop(qtbot, window) < 2.0  # 45 s later it was still busy before the fix
    _answers_next(qtbot, window)


def test_stop_restarts_an_engine_stuck_in_a_gil_holding_call_and_keeps_the_answer(
    qtbot, make_window, converted_package, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.runtime.coreml_standin import STANDIN_ENV

    monkeypatch.setenv(STANDIN_ENV, "load_seconds=0,predict_seconds=4")  # Core ML-like: GIL held
    window = make_window(converted_package("mistral", "int4"), max_new_tokens=200)
    old_pid = window.bridge.worker.pid
    seen: list[str] = []
    window.controller.answerText.connect(seen.append)
    _send(qtbot, window, "Tell me a long story")
    qtbot.waitUntil(lambda: bool(seen), timeout=120_000)
    time.sleep(0.5)  # inside the next 4 s predict
    assert _stop(qtbot, window) < 2.0
    answer = window.store.messages(window.controller.current_conversation_id)[-1]
    assert answer.role == "assistant" and answer.finish_reason == "cancelled"
    assert answer.content.startswith(seen[0]) and answer.content
    assert window.bridge.worker.pid != old_pid


def test_the_server_pane_says_who_can_reach_a_server_on_another_address(qtbot) -> None:
    from app.settings.app_settings import AppSettings
    from app.settings.server_pane import ServerSettingsPane
    from engine.messages import ServerState

    pane = ServerSettingsPane(AppSettings())
    qtbot.addWidget(pane)
    pane.set_state(ServerState(True, "http://127.0.0.1:8080/v1", 0))
    assert "exposed" not in pane.status.text()
    pane.set_state(ServerState(True, "http://[::]:8080/v1", 0))
    assert (
        pane.status.text()
        .splitlines()[1]
        .startswith("exposed: listening on ::: any device on any network this machine is on")
    )


# --- Issue 21: a listing whose package files have absolute names ---------------------------------


def test_a_listing_of_absolute_names_is_refused_and_leaves_no_model_folder(
    fake_hub: FakeHub, tmp_path: Path
) -> None:
    """Before: the package ('//X.mlpackage') matched no file, nothing was fetched, no error was
    shown, and an empty model folder was renamed into place."""
    listing = RepoListing(
        "evil/repo",
        SHA,
        (RepoFile("/X.mlpackage/Manifest.json", 2), RepoFile("/X.mlpackage/Data/w.bin", 4)),
    )
    with pytest.raises(HubError, match=r"refusing the repository file name '//?X\.mlpackage"):
        plan_files(listing)
    destination = tmp_path / "models" / "X"
    with pytest.raises(HubError, match=r"expected a \.mlpackage/Manifest\.json among the files"):
        download_files(listing, (), destination, endpoint=fake_hub.url)  # a caller without a plan
    assert not destination.exists() and not staging_folder_for(destination).exists()
    assert _file_gets(fake_hub) == []


def test_a_download_that_brings_no_package_leaves_no_model_folder(
    fake_hub: FakeHub, tmp_path: Path
) -> None:
    fake_hub.repos["odd/repo"] = {"X.mlpackage/Data/w.bin": b"abcd", "tokenizer.json": b"{}"}
    listing = list_repo("odd/repo", endpoint=fake_hub.url)
    destination = tmp_path / "models" / "X"
    with pytest.raises(HubError, match=r"expected X\.mlpackage/Manifest\.json .*found none"):
        download_files(listing, plan_files(listing), destination, endpoint=fake_hub.url)
    assert not destination.exists() and not staging_folder_for(destination).exists()
