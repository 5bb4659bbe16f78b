"""The Model tab: checking model folders from their spec, local models, labels, and opening a
converted model from the Settings dialog."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.models.model_library import (
    COMPUTE_UNIT_LABELS,
    COMPUTE_UNIT_TIPS,
    format_size,
    inspect_model,
    local_models,
    model_info_rows,
)
from engine import paths
from engine.messages import ModelInfo
from engine.package.description import read_description
from engine.package.model import COMPUTE_UNITS, ModelLoadError, describe_spec, read_spec

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def tiny_model(converted_package) -> Path:
    return converted_package("mistral", "int4")


def test_inspects_a_converted_model_without_loading_it(tiny_model: Path) -> None:
    summary = inspect_model(tiny_model)
    assert summary.name == "TinyMistral"
    assert summary.folder == tiny_model
    assert summary.package == tiny_model / "TinyMistral.mlpackage"
    assert summary.context_length == 256
    assert summary.quantization.startswith("int4")
    assert summary.architecture == "MistralForCausalLM"
    assert summary.has_tokenizer
    assert summary.size_bytes > 10_000
    package_only = inspect_model(tiny_model / "TinyMistral.mlpackage")
    assert package_only.folder == package_only.package


def test_bad_model_paths_say_what_was_expected(tiny_model: Path, tmp_path: Path) -> None:
    cases: dict[str, str] = {
        "": "expected a model folder or an .mlpackage",
        str(tmp_path / "missing"): "no such model",
    }
    empty = tmp_path / "empty"
    empty.mkdir()
    cases[str(empty)] = "holds no .mlpackage"
    two = tmp_path / "two"
    for name in ("A.mlpackage", "B.mlpackage"):
        shutil.copytree(tiny_model / "TinyMistral.mlpackage", two / name)
    cases[str(two)] = "holds several packages (A.mlpackage, B.mlpackage)"
    hollow = tmp_path / "hollow" / "Hollow.mlpackage"
    hollow.mkdir(parents=True)
    cases[str(hollow.parent)] = "lacks Data/com.apple.CoreML/model.mlmodel"
    corrupt = tmp_path / "corrupt" / "Corrupt.mlpackage" / "Data" / "com.apple.CoreML"
    corrupt.mkdir(parents=True)
    (corrupt / "model.mlmodel").write_bytes(b"\xff" * 64)
    cases[str(tmp_path / "corrupt")] = "is corrupt"
    for path, expected in cases.items():
        with pytest.raises(ModelLoadError, match=expected.replace("(", r"\(").replace(")", r"\)")):
            inspect_model(path)


def test_local_models_lists_usable_folders_only(tiny_model: Path) -> None:
    models = paths.models_dir()
    shutil.copytree(tiny_model, models / "TinyMistral-int4")
    (models / "not-a-model").mkdir()
    shutil.copytree(tiny_model, models / ".TinyMistral.download")  # an unfinished download
    found = local_models()
    assert [m.folder.name for m in found] == ["TinyMistral-int4"]
    assert local_models(models / "missing") == []


def test_describing_models_leaves_coremltools_out_of_the_gui_process(
    tiny_model: Path, tmp_path: Path
) -> None:
    """The GUI process never imports coremltools (DESIGN.md: Processes), not even inside a
    function: checking a folder and listing the models folder read the spec without it. A fresh
    interpreter, since this one imported coremltools for the fixtures."""
    models = tmp_path / "models"
    shutil.copytree(tiny_model, models / "TinyMistral")
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from app.models.model_library import inspect_model, local_models\n"
        f"summary = inspect_model({str(tiny_model)!r})\n"
        f"listed = local_models(Path({str(models)!r}))\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('coremltools', 'torch'))\n"
        "print(json.dumps([summary.context_length, [m.name for m in listed], heavy]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False
    )
    assert result.returncode == 0, result.stderr
    context, listed, heavy = json.loads(result.stdout.strip().splitlines()[-1])
    assert (context, listed) == (256, ["TinyMistral"])
    assert heavy == []


def test_the_light_reader_describes_a_package_as_coremltools_does(tiny_model: Path) -> None:
    package = tiny_model / "TinyMistral.mlpackage"
    ours = describe_spec(read_description(package))
    theirs = describe_spec(read_spec(package)[0])
    assert ours == theirs
    assert ours[0].states and ours[0].metadata and ours[0].context_length == 256


def test_labels_and_rows() -> None:
    assert set(COMPUTE_UNIT_LABELS) == set(COMPUTE_UNITS) == set(COMPUTE_UNIT_TIPS)
    assert model_info_rows(None) == [("Model", "No model loaded")]
    info = ModelInfo("M", "/m", 4096, "int4-block32", "MistralForCausalLM", "coreml", "all", "a/b")
    rows = dict(model_info_rows(info))
    assert rows["Context"] == "4,096 tokens"
    assert rows["Runtime"] == "Core ML"
    assert rows["Compute units"] == "All (CPU, GPU and Neural Engine)"
    assert rows["Source"] == "a/b"
    assert [format_size(n) for n in (512, 1_500_000, 4_100_000_000)] == [
        "512 bytes",
        "1.5 MB",
        "4.1 GB",
    ]


def test_open_refuses_a_bad_folder_and_loads_a_good_one(
    qtbot, tmp_path: Path, tiny_model: Path
) -> None:
    from app.settings.app_settings import AppSettings, load_settings
    from app.settings.settings_store import SettingsStore
    from app.shell.settings_dialog import SettingsDialog

    dialog = SettingsDialog(SettingsStore(AppSettings()))
    qtbot.addWidget(dialog)
    chosen: list[str] = []
    dialog.modelChosen.connect(chosen.append)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not dialog.model_pane.choose_path(str(empty))
    assert "holds no .mlpackage" in dialog.model_pane.open_error.text()
    assert chosen == []
    folder = tiny_model
    assert dialog.model_pane.choose_path(str(folder))
    assert chosen == [str(folder)]
    assert dialog.model_pane.open_error.isHidden()
    assert dialog.settings().model_path == str(folder)
    dialog.accept()
    assert load_settings().model_path == str(folder)
