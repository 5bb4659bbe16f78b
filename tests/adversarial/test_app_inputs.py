"""Hostile input aimed at the app: names from a Hub server, text shown in labels, huge lines.

The Hub cases run against the stand-in Hub of ``tests/integration/app/test_hub_download.py`` (a
real HTTP server on 127.0.0.1) and check that nothing is written outside the staging folder.
"""

from __future__ import annotations

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
    fake_hub.repos["evil/repo"] = {"X.mlpackage/canary.txt": b"overwritten"}
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
