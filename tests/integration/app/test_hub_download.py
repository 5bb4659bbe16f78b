"""Hub downloads against a stand-in Hub: a local HTTP server on 127.0.0.1 speaking the few endpoints
huggingface_hub uses (model info, HEAD/GET resolve with Range). No traffic leaves the machine."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QThread
from PySide6.QtWidgets import QApplication

from app.models.hub_download import (
    DownloadCancelled,
    HubError,
    RepoFile,
    RepoListing,
    check_repo_id,
    download_files,
    list_repo,
    partial_downloads,
    plan_files,
    remove_partial_downloads,
    staging_folder_for,
)
from app.models.hub_jobs import HubDownload
from engine import paths
from tests.fixtures.fake_hub import PACKAGE, SHA, FakeHub


def test_repo_ids_are_checked() -> None:
    assert check_repo_id(" apple/mistral-coreml ") == "apple/mistral-coreml"
    for bad in ("", "mistral", "https://huggingface.co/apple/x", "a/b/c"):
        with pytest.raises(HubError, match="expected a Hub repository id"):
            check_repo_id(bad)


def test_listing_finds_packages_and_plans_one(fake_hub: FakeHub) -> None:
    listing = list_repo("apple/tiny-coreml", endpoint=fake_hub.url)
    assert listing.sha == SHA
    assert listing.packages == (PACKAGE, "StatefulTinyInt8.mlpackage")
    with pytest.raises(HubError, match="several packages"):
        plan_files(listing)
    planned = {f.path for f in plan_files(listing, PACKAGE)}
    assert planned == {
        "tokenizer.json",
        "tokenizer_config.json",
        f"{PACKAGE}/Manifest.json",
        f"{PACKAGE}/Data/com.apple.CoreML/model.mlmodel",
        f"{PACKAGE}/Data/com.apple.CoreML/weights/weight.bin",
    }
    plain = list_repo("someone/plain-model", endpoint=fake_hub.url)
    with pytest.raises(HubError, match=r"no Core ML package.*Converter tab"):
        plan_files(plain)


def test_hub_errors_are_one_clear_line(fake_hub: FakeHub) -> None:
    with pytest.raises(HubError, match="no repository nobody/nothing"):
        list_repo("nobody/nothing", endpoint=fake_hub.url)
    with pytest.raises(HubError, match="gated: accept its license"):
        list_repo("gated/model", endpoint=fake_hub.url)
    listing = list_repo("gated/model", token="hf_test", endpoint=fake_hub.url)
    assert listing.packages == (PACKAGE,)
    assert fake_hub.requests[-1][2].get("authorization") == "Bearer hf_test"
    with pytest.raises(HubError, match=r"cannot reach http://127\.0\.0\.1:9 "):
        list_repo("apple/tiny-coreml", endpoint="http://127.0.0.1:9")


def test_download_completes_into_the_models_folder(fake_hub: FakeHub, tmp_path: Path) -> None:
    listing = list_repo("apple/tiny-coreml", endpoint=fake_hub.url)
    files = plan_files(listing, PACKAGE)
    reports = []
    destination = tmp_path / "StatefulTinyInt4"
    folder = download_files(
        listing, files, destination, endpoint=fake_hub.url, on_progress=reports.append
    )
    assert folder == destination
    repo = fake_hub.repos["apple/tiny-coreml"]
    for file in files:
        assert (destination / file.path).read_bytes() == repo[file.path]
    assert not list(destination.rglob("*.part"))
    assert not staging_folder_for(destination).exists()
    assert reports[-1].done_bytes == reports[-1].total_bytes == sum(f.size for f in files)
    assert reports[-1].files_done == len(files)
    assert [p.name for p in tmp_path.iterdir()] == ["StatefulTinyInt4"]


def _cancelled_midway(hub: FakeHub, listing: RepoListing, destination: Path) -> None:
    """Start the whole plan and cancel once 60 kB of the last (large) file arrived."""
    cancel = threading.Event()
    hub.chunk_delay = 0.01

    def cancel_midway(progress) -> None:
        if progress.done_bytes >= 60_000:
            cancel.set()

    with pytest.raises(DownloadCancelled):
        download_files(
            listing,
            plan_files(listing, PACKAGE),
            destination,
            endpoint=hub.url,
            cancel=cancel,
            on_progress=cancel_midway,
        )
    hub.chunk_delay = 0.0


def _resolve_gets(hub: FakeHub) -> list[str]:
    return [path for method, path, _ in hub.requests if method == "GET" and "/resolve/" in path]


def test_cancel_leaves_no_partial_file_and_a_retry_fetches_only_what_is_missing(
    fake_hub: FakeHub, tmp_path: Path
) -> None:
    listing = list_repo("apple/tiny-coreml", endpoint=fake_hub.url)
    big = f"{PACKAGE}/Data/com.apple.CoreML/weights/weight.bin"
    destination = tmp_path / "model"
    _cancelled_midway(fake_hub, listing, destination)
    staging = staging_folder_for(destination)
    assert not destination.exists()
    assert not (staging / big).exists()
    assert not [p for p in staging.rglob("*") if p.name.endswith((".incomplete", ".part"))]
    assert (staging / "tokenizer.json").is_file()  # complete files stay for the next attempt
    fake_hub.requests.clear()
    reports = []
    download_files(
        listing,
        plan_files(listing, PACKAGE),
        destination,
        endpoint=fake_hub.url,
        on_progress=reports.append,
    )
    repo = fake_hub.repos["apple/tiny-coreml"]
    for file in plan_files(listing, PACKAGE):
        assert (destination / file.path).read_bytes() == repo[file.path]
    assert _resolve_gets(fake_hub) == [f"/apple/tiny-coreml/resolve/{SHA}/{big}"]
    assert reports[-1].done_bytes == reports[-1].total_bytes
    assert sorted(p.name for p in destination.iterdir()) == [
        PACKAGE,
        "tokenizer.json",
        "tokenizer_config.json",
    ]  # huggingface_hub's .cache bookkeeping is not left in the model folder
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_a_retry_after_the_repository_moved_on_does_not_splice_two_revisions(
    fake_hub: FakeHub, tmp_path: Path
) -> None:
    repo = fake_hub.repos["apple/tiny-coreml"]
    destination = tmp_path / "model"
    _cancelled_midway(fake_hub, list_repo("apple/tiny-coreml", endpoint=fake_hub.url), destination)
    # A new commit changes the tokenizer without changing its size, and the weights.
    fake_hub.sha = "f" * 40
    repo["tokenizer.json"] = b'{"model": []}'
    big = f"{PACKAGE}/Data/com.apple.CoreML/weights/weight.bin"
    repo[big] = os.urandom(200_000)
    listing = list_repo("apple/tiny-coreml", endpoint=fake_hub.url)
    assert listing.sha == fake_hub.sha
    download_files(listing, plan_files(listing, PACKAGE), destination, endpoint=fake_hub.url)
    for file in plan_files(listing, PACKAGE):
        assert (destination / file.path).read_bytes() == repo[file.path], file.path


def test_the_token_goes_to_the_hub_and_never_to_a_redirect_target(
    fake_hub: FakeHub, tmp_path: Path
) -> None:
    fake_hub.repos["gated/model"] = dict(fake_hub.repos["apple/tiny-coreml"])
    big = f"{PACKAGE}/Data/com.apple.CoreML/weights/weight.bin"
    fake_hub.redirected = {big}
    listing = list_repo("gated/model", token="hf_secret", endpoint=fake_hub.url)
    destination = tmp_path / "model"
    download_files(
        listing, plan_files(listing, PACKAGE), destination, token="hf_secret", endpoint=fake_hub.url
    )
    assert (destination / big).read_bytes() == fake_hub.repos["gated/model"][big]
    cdn = [headers for _, path, headers in fake_hub.requests if path.startswith("/cdn/")]
    hub = [headers for _, path, headers in fake_hub.requests if "/resolve/" in path]
    assert cdn and all("authorization" not in headers for headers in cdn)
    assert hub and all(h.get("authorization") == "Bearer hf_secret" for h in hub)


def test_download_errors_are_one_clear_line(fake_hub: FakeHub, tmp_path: Path) -> None:
    listing = list_repo("apple/tiny-coreml", endpoint=fake_hub.url)
    missing = RepoListing(listing.repo_id, SHA, (RepoFile(f"{PACKAGE}/gone.bin", 5),))
    with pytest.raises(HubError, match=rf"has no file {PACKAGE}/gone.bin at commit 0123456789ab"):
        download_files(missing, missing.files, tmp_path / "a", endpoint=fake_hub.url)
    gated = RepoListing("gated/model", SHA, (RepoFile(f"{PACKAGE}/Manifest.json", 2),))
    with pytest.raises(HubError, match=r"gated: accept its license.*access token"):
        download_files(gated, gated.files, tmp_path / "b", endpoint=fake_hub.url)
    with pytest.raises(HubError, match=r"cannot reach http://127\.0\.0\.1:9 .*check the network"):
        download_files(listing, listing.files[:1], tmp_path / "c", endpoint="http://127.0.0.1:9")
    huge = RepoListing(listing.repo_id, SHA, (RepoFile(f"{PACKAGE}/weight.bin", 10**18),))
    with pytest.raises(
        HubError, match=r"not enough free space in .*needs 1,000,000,000,000,000,000 bytes"
    ):
        download_files(huge, huge.files, tmp_path / "d", endpoint=fake_hub.url)
    assert list(tmp_path.iterdir()) == []  # no staging folder left with nothing in it


def test_abandoned_downloads_are_found_and_removed_only_in_our_staging_folders(
    fake_hub: FakeHub, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    listing = list_repo("apple/tiny-coreml", endpoint=fake_hub.url)
    _cancelled_midway(fake_hub, listing, models / "StatefulTinyInt4")
    staging = staging_folder_for(models / "StatefulTinyInt4")
    (models / "MyModel").mkdir()  # a model, a hidden folder and a link: none of them are ours
    (models / "MyModel" / "weights.bin").write_bytes(b"keep")
    (models / ".notes").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_bytes(b"keep")
    (models / ".linked.download").symlink_to(outside, target_is_directory=True)
    found = partial_downloads(models)
    assert [p.folder for p in found] == [staging]
    expected = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file())
    assert found[0].size_bytes == expected > 0
    assert partial_downloads(models, keep=(staging,)) == []  # the running download's is kept
    assert remove_partial_downloads(models) == expected
    assert not staging.exists() and partial_downloads(models) == []
    assert (models / "MyModel" / "weights.bin").read_bytes() == b"keep"
    assert (outside / "keep.txt").read_bytes() == b"keep" and (models / ".notes").is_dir()


def test_existing_destination_is_refused(fake_hub: FakeHub, tmp_path: Path) -> None:
    listing = RepoListing("apple/tiny-coreml", SHA, (RepoFile("tokenizer.json", 13),))
    (tmp_path / "model").mkdir()
    with pytest.raises(HubError, match="already exists"):
        download_files(listing, listing.files, tmp_path / "model", endpoint=fake_hub.url)


def test_qt_download_reports_on_the_gui_thread(qtbot, fake_hub: FakeHub, tmp_path: Path) -> None:
    listing = list_repo("apple/tiny-coreml", endpoint=fake_hub.url)
    download = HubDownload(endpoint=fake_hub.url)
    threads = []
    download.progress.connect(lambda _p: threads.append(QThread.currentThread()))
    with qtbot.waitSignal(download.finished, timeout=20000) as finished:
        destination = download.start(listing, PACKAGE, models_folder=tmp_path)
    outcome = finished.args[0]
    assert outcome.status == "done", outcome.message
    assert Path(outcome.folder) == destination == tmp_path / "StatefulTinyInt4"
    assert threads and all(t == QApplication.instance().thread() for t in threads)
    assert not download.is_running()


def test_qt_download_cancel(qtbot, fake_hub: FakeHub, tmp_path: Path) -> None:
    fake_hub.chunk_delay = 0.01
    listing = list_repo("apple/tiny-coreml", endpoint=fake_hub.url)
    download = HubDownload(endpoint=fake_hub.url)
    download.progress.connect(lambda p: download.cancel() if p.done_bytes > 8000 else None)
    with qtbot.waitSignal(download.finished, timeout=20000) as finished:
        download.start(listing, PACKAGE, models_folder=tmp_path)
    assert finished.args[0].status == "cancelled"
    assert "resumes" in finished.args[0].message
    assert not (tmp_path / "StatefulTinyInt4").exists()


def test_dialog_looks_up_downloads_and_chooses_a_real_package(
    qtbot, fake_hub: FakeHub, converted_package
) -> None:
    """The Model tab end to end: a converted tiny model served by the stand-in Hub is looked up,
    downloaded into the models folder, checked, and offered to the chat window."""
    from app.settings.settings_store import SettingsStore
    from app.shell.settings_dialog import SettingsDialog

    folder = converted_package("mistral", "int4")
    served = {
        str(path.relative_to(folder)): path.read_bytes()
        for path in folder.rglob("*")
        if path.is_file()
    }
    fake_hub.repos["apple/tiny-mistral-coreml"] = served
    dialog = SettingsDialog(SettingsStore(), hub_endpoint=fake_hub.url)
    qtbot.addWidget(dialog)
    pane = dialog.model_pane
    pane.hub.repo_field.setText("apple/tiny-mistral-coreml")
    with qtbot.waitSignal(pane.hub.lookup.finished, timeout=20000):
        pane.hub.lookup_button.click()
    assert pane.hub.package_box.count() == 1 and pane.hub.download_button.isEnabled()
    assert pane.hub.package_box.currentData() == "TinyMistral.mlpackage"
    chosen: list[str] = []
    dialog.modelChosen.connect(chosen.append)
    with qtbot.waitSignal(pane.hub.download.finished, timeout=30000) as finished:
        pane.hub.download_button.click()
    assert finished.args[0].status == "done", finished.args[0].message
    destination = paths.models_dir() / "TinyMistral"
    assert chosen == [str(destination)]
    assert (destination / "tokenizer.json").read_bytes() == served["tokenizer.json"]
    assert pane.local_list.item(0).data(Qt.ItemDataRole.UserRole) == str(destination)
    assert dialog.settings().model_path == str(destination)


def test_dialog_reports_a_bad_repository(qtbot, fake_hub: FakeHub) -> None:
    from app.settings.settings_store import SettingsStore
    from app.shell.settings_dialog import SettingsDialog

    dialog = SettingsDialog(SettingsStore(), hub_endpoint=fake_hub.url)
    qtbot.addWidget(dialog)
    pane = dialog.model_pane
    pane.hub.repo_field.setText("not a repo")
    pane.hub.lookup_button.click()
    assert "expected a Hub repository id" in pane.hub.download_status.text()
    pane.hub.repo_field.setText("someone/plain-model")
    with qtbot.waitSignal(pane.hub.lookup.finished, timeout=20000):
        pane.hub.lookup_button.click()
    assert "holds no Core ML package" in pane.hub.download_status.text()
    assert not pane.hub.download_button.isEnabled()


def test_model_library_offers_to_remove_unfinished_downloads(qtbot, fake_hub: FakeHub) -> None:
    from app.models.model_library import format_size
    from app.settings.settings_store import SettingsStore
    from app.shell.settings_dialog import SettingsDialog

    listing = list_repo("apple/tiny-coreml", endpoint=fake_hub.url)
    _cancelled_midway(fake_hub, listing, paths.models_dir() / "StatefulTinyInt4")
    staging = staging_folder_for(paths.models_dir() / "StatefulTinyInt4")
    dialog = SettingsDialog(SettingsStore(), hub_endpoint=fake_hub.url)
    qtbot.addWidget(dialog)
    pane = dialog.model_pane
    dialog.show()
    button = pane.clean_partials_button
    assert button.isVisible()
    size = format_size(sum(p.stat().st_size for p in staging.rglob("*") if p.is_file()))
    assert button.text() == f"Remove 1 unfinished download ({size})"
    pane.grab().save("/tmp/i10-partials-offered.png")
    button.click()
    assert not staging.exists()
    assert not button.isVisible()
    assert pane.hub.download_status.text() == f"Removed unfinished downloads: {size} freed"
