"""Issue 16: the Model tab's library follows the models folder, marks the loaded model, reveals a
model in the file manager and deletes one (asking first; never the loaded one, never outside)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import QObject, Qt, QUrl, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QMessageBox

from app.models.model_library import ModelDeleteError, delete_model
from app.models.model_pane import ModelPane
from engine import paths
from engine.messages import ModelInfo

REFRESH_TIMEOUT_MS = 10_000


@pytest.fixture(scope="module")
def tiny_model(converted_package) -> Path:
    return converted_package("mistral", "int4")


def _install(model: Path, name: str) -> Path:
    """Put a copy of ``model`` into the app's models folder the way the converter does: staged
    under a hidden name, then renamed into place."""
    target = paths.models_dir() / name
    staging = target.with_name(f".{name}.partial-{os.getpid()}")
    shutil.copytree(model, staging)
    os.replace(staging, target)
    return target


def _listed(pane: ModelPane) -> list[str]:
    items = (pane.local_list.item(i) for i in range(pane.local_list.count()))
    return [
        item.data(Qt.ItemDataRole.UserRole) for item in items if item.data(Qt.ItemDataRole.UserRole)
    ]


def _pane(qtbot) -> ModelPane:
    pane = ModelPane(compute_units="cpu_and_gpu", token="")
    qtbot.addWidget(pane)
    pane.show()
    return pane


def _select(pane: ModelPane, folder: Path) -> None:
    for index in range(pane.local_list.count()):
        item = pane.local_list.item(index)
        if item.data(Qt.ItemDataRole.UserRole) == str(folder):
            pane.local_list.setCurrentItem(item)
            return
    raise AssertionError(f"{folder} is not listed")


def _info(folder: Path) -> ModelInfo:
    return ModelInfo(
        "TinyMistral",
        str(folder),
        256,
        "int4",
        "MistralForCausalLM",
        "reference",
        "cpu_and_gpu",
        "",
    )


def test_the_list_follows_the_models_folder(qtbot, tiny_model: Path) -> None:
    pane = _pane(qtbot)
    assert _listed(pane) == []
    first = _install(tiny_model, "First-int4")
    qtbot.waitUntil(lambda: _listed(pane) == [str(first)], timeout=REFRESH_TIMEOUT_MS)
    second = _install(tiny_model, "Second-int4")
    qtbot.waitUntil(lambda: _listed(pane) == [str(first), str(second)], timeout=REFRESH_TIMEOUT_MS)
    shutil.rmtree(first)  # deleted in the file manager
    qtbot.waitUntil(lambda: _listed(pane) == [str(second)], timeout=REFRESH_TIMEOUT_MS)
    (second / "tokenizer.json").unlink()  # no longer usable: no tokenizer, no source model id?
    shutil.rmtree(next(second.glob("*.mlpackage")))
    qtbot.waitUntil(lambda: _listed(pane) == [], timeout=REFRESH_TIMEOUT_MS)


def test_the_loaded_model_is_marked_and_cannot_be_deleted(qtbot, tiny_model: Path) -> None:
    loaded = _install(tiny_model, "Loaded-int4")
    other = _install(tiny_model, "Other-int4")
    pane = _pane(qtbot)
    pane.set_model_info(_info(loaded))
    texts = [pane.local_list.item(i).text() for i in range(pane.local_list.count())]
    assert texts[0].startswith("● Loaded-int4 (TinyMistral)") and texts[0].endswith("· loaded")
    assert "loaded" not in texts[1]
    # A long row: cut with "…" to the list's width, all of it in the tooltip.
    view, first = pane.local_list, pane.local_list.item(0)
    view.setFixedWidth(260)
    qtbot.waitUntil(lambda: view.viewport().width() < 260)
    assert view.horizontalScrollBar().maximum() == 0  # nothing hidden off to the side
    assert (
        first.toolTip().startswith("● Loaded-int4 (TinyMistral) int4")
        and str(loaded) in first.toolTip()
    )
    _select(pane, loaded)
    assert not pane.delete_button.isEnabled() and pane.reveal_button.isEnabled()
    assert "loaded" in pane.delete_button.toolTip()
    with pytest.raises(ModelDeleteError, match="Loaded-int4 is loaded: load another model"):
        delete_model(loaded, loaded=str(loaded / "TinyMistral.mlpackage"))
    _select(pane, other)
    assert pane.delete_button.isEnabled()


def test_delete_asks_first_then_frees_the_folder_and_its_compiled_copy(
    qtbot, tiny_model: Path
) -> None:
    kept = _install(tiny_model, "Kept-int4")
    manifest = kept / "TinyMistral.mlpackage" / "Manifest.json"
    os.utime(manifest, ns=(1, 1))  # another package date: another compiled copy
    doomed = _install(tiny_model, "Doomed-int4")
    compiled = paths.compiled_model_path(doomed / "TinyMistral.mlpackage")  # as a Mac leaves it
    kept_compiled = paths.compiled_model_path(kept / "TinyMistral.mlpackage")
    assert kept_compiled != compiled
    for folder in (compiled, kept_compiled):
        folder.mkdir(parents=True)
        (folder / "model.mil").write_bytes(b"x" * 4096)
    pane = _pane(qtbot)
    _select(pane, doomed)
    qtbot.mouseClick(pane.delete_button, Qt.MouseButton.LeftButton)
    box = pane.delete_box
    assert box is not None and box.isVisible()
    assert "Doomed-int4" in box.text() and "cannot be undone" in box.informativeText()
    assert str(doomed) in box.informativeText()
    box.button(QMessageBox.StandardButton.Cancel).click()  # asked, and said no
    assert doomed.is_dir() and compiled.is_dir()
    qtbot.mouseClick(pane.delete_button, Qt.MouseButton.LeftButton)
    delete = next(b for b in pane.delete_box.buttons() if b.text() == "Delete")
    delete.click()
    assert not doomed.exists() and not compiled.exists()
    assert kept.is_dir() and kept_compiled.is_dir()
    assert [p.name for p in paths.models_dir().iterdir()] == ["Kept-int4"]  # nothing hidden left
    assert pane.local_status.text().startswith("Deleted Doomed-int4: ")
    assert _listed(pane) == [str(kept)]


def test_an_identical_copy_keeps_its_own_compiled_copy(tiny_model: Path) -> None:
    first = _install(tiny_model, "First-int4")
    twin = _install(tiny_model, "Twin-int4")  # same files, sizes and dates
    compiled = paths.compiled_model_path(first / "TinyMistral.mlpackage")
    twin_compiled = paths.compiled_model_path(twin / "TinyMistral.mlpackage")
    assert compiled != twin_compiled  # named by location too
    compiled.mkdir(parents=True)
    twin_compiled.mkdir(parents=True)
    delete_model(first)
    assert not first.exists() and not compiled.exists() and twin_compiled.is_dir()
    delete_model(twin)
    assert not twin.exists() and not twin_compiled.exists()


def test_delete_refuses_anything_but_a_model_of_the_models_folder(
    tiny_model: Path, tmp_path: Path
) -> None:
    models = paths.models_dir()
    models.mkdir(parents=True)
    outside = shutil.copytree(tiny_model, tmp_path / "Outside-int4")
    with pytest.raises(ModelDeleteError, match=r"only a model folder in .* can be deleted"):
        delete_model(outside)
    link = models / "Link-int4"
    link.symlink_to(outside, target_is_directory=True)
    with pytest.raises(ModelDeleteError, match="is a link"):
        delete_model(link)
    papers = models / "Papers"
    papers.mkdir()
    (papers / "thesis.txt").write_text("mine")
    with pytest.raises(ModelDeleteError, match="Papers is not a model folder"):
        delete_model(papers)
    with pytest.raises(ModelDeleteError, match="only a model folder in"):
        delete_model(models / "..")
    assert (outside / "TinyMistral.mlpackage").is_dir() and link.is_symlink()
    assert (papers / "thesis.txt").read_text() == "mine"


class _UrlCatcher(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[QUrl] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.urls.append(url)


def test_reveal_opens_the_model_folder(qtbot, tiny_model: Path) -> None:
    folder = _install(tiny_model, "Shown-int4")
    pane = _pane(qtbot)
    assert not pane.reveal_button.isEnabled()  # nothing selected
    _select(pane, folder)
    catcher = _UrlCatcher()  # Qt's own hook for where file URLs go (the desktop is not here)
    QDesktopServices.setUrlHandler("file", catcher, "open")
    try:
        qtbot.mouseClick(pane.reveal_button, Qt.MouseButton.LeftButton)
    finally:
        QDesktopServices.unsetUrlHandler("file")
    assert [url.toLocalFile() for url in catcher.urls] == [str(folder)]
