"""The converter as an attacker or an unlucky user drives it: it deletes nothing that is not one of
its own model folders, writes nothing outside the folder it was given, and two runs into one folder
cannot silently replace each other. User folders here are real folders with real files, and every
test checks that they survive."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from converter.convert import convert
from converter.errors import ConversionError
from converter.options import (
    ConversionRequest,
    aside_folder,
    problems,
    staging_folder,
    sweep_staging,
)
from converter.output_folder import move_into_place
from converter.progress import ProgressEvent


def _user_folder(folder: Path) -> dict[str, bytes]:
    """A folder of the user's: files and a subfolder; returns what must survive."""
    (folder / "photos").mkdir(parents=True)
    files = {"notes.txt": b"my notes", "photos/cat.jpg": b"\xff\xd8 a cat"}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


def _assert_survives(folder: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        assert (folder / name).read_bytes() == data, name


def _fake_model_folder(folder: Path, package: str = "Old") -> Path:
    """What the converter writes, without the weights: a package with its manifest, tokenizer."""
    (folder / f"{package}.mlpackage" / "Data").mkdir(parents=True)
    (folder / f"{package}.mlpackage" / "Manifest.json").write_text("{}")
    (folder / "tokenizer.json").write_text("{}")
    (folder / "tokenizer_config.json").write_text("{}")
    return folder


@pytest.fixture
def source(tmp_path: Path, tiny_llama_dir: Path) -> Path:
    return Path(shutil.copytree(tiny_llama_dir, tmp_path / "models" / "source"))


def _source_files(source: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in source.iterdir() if p.is_file()}


# --- --force and Replace delete only our own model folders --------------------------------------


def test_force_refuses_a_folder_of_user_files(tmp_path: Path, source: Path) -> None:
    documents = tmp_path / "Documents"
    files = _user_folder(documents)
    request = ConversionRequest(str(source), documents, context_length=16, force=True)
    with pytest.raises(ConversionError, match="not a model folder"):
        convert(request)
    _assert_survives(documents, files)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Documents", "models"]


def test_force_refuses_a_model_folder_holding_a_user_file(tmp_path: Path, source: Path) -> None:
    model = _fake_model_folder(tmp_path / "model")
    (model / "thesis.docx").write_bytes(b"years of work")
    with pytest.raises(ConversionError, match=r"thesis\.docx"):
        convert(ConversionRequest(str(source), model, context_length=16, force=True))
    assert (model / "thesis.docx").read_bytes() == b"years of work"


@pytest.mark.parametrize("where", ["source", "parent", "inside"])
def test_output_overlapping_the_source_is_refused(tmp_path: Path, source: Path, where: str) -> None:
    """The source itself, the source's parent (which holds it), or a folder inside the source."""
    sibling_files = _user_folder(source.parent / "other")
    before = _source_files(source)
    output = {"source": source, "parent": source.parent, "inside": source / "converted"}[where]
    request = ConversionRequest(str(source), output, context_length=16, force=True)
    with pytest.raises(ConversionError, match="the source"):
        convert(request)
    assert _source_files(source) == before
    assert not (source / "converted").exists()
    _assert_survives(source.parent / "other", sibling_files)


@pytest.mark.parametrize("name", [".", "..", "../escaped", "a/b", "/tmp/abs", ".hidden", "-x"])
def test_package_names_that_leave_the_folder_are_refused(
    tmp_path: Path, source: Path, name: str
) -> None:
    output = tmp_path / "out"
    with pytest.raises(ConversionError, match="package name"):
        convert(ConversionRequest(str(source), output, context_length=16, name=name))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models"]


def test_cli_name_is_checked_before_anything_is_written(tmp_path: Path, source: Path) -> None:
    output = tmp_path / "out"
    command = [sys.executable, "-m", "converter.cli", str(source), "-o", str(output),
               "--name", "../../escaped", "--json-progress", "--context-length", "16"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 1
    event = ProgressEvent.from_json(result.stdout.strip().splitlines()[-1])
    assert event.event == "error" and "package name" in event.message
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models"]


def test_force_replaces_a_model_folder_by_swapping(tmp_path: Path, source: Path) -> None:
    """A real conversion over an existing model folder: the new model is in, the old one and
    every staging folder gone, the user's folder beside it untouched."""
    parent = tmp_path / "converted"
    old = _fake_model_folder(parent / "model", package="Old")
    files = _user_folder(parent / "mine")
    request = ConversionRequest(
        str(source), old, context_length=16, quantize="none", force=True, name="New"
    )
    result = convert(request)
    assert sorted(p.name for p in result.output_dir.iterdir()) == [
        "New.mlpackage", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
    ]  # fmt: skip
    assert sorted(p.name for p in parent.iterdir()) == ["mine", "model"]
    _assert_survives(parent / "mine", files)


def test_a_folder_that_appears_while_converting_is_not_replaced(
    tmp_path: Path, source: Path
) -> None:
    """Two conversions into one new folder: the one that finishes second must fail, not replace
    the first one's model (stood in for here by a folder made while this one saves)."""
    output = tmp_path / "out"

    def another_run_finishes_first(event: ProgressEvent) -> None:
        if event.stage == "save" and not output.exists():
            _fake_model_folder(output, package="First")

    request = ConversionRequest(str(source), output, context_length=16, quantize="none")
    with pytest.raises(ConversionError, match="appeared while converting"):
        convert(request, progress=another_run_finishes_first)
    assert sorted(p.name for p in output.iterdir()) == [
        "First.mlpackage", "tokenizer.json", "tokenizer_config.json",
    ]  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models", "out"]  # no staging left


# --- The swap and the sweep on their own ---------------------------------------------------------


def _staging_with_model(output: Path) -> Path:
    staging = staging_folder(output, os.getpid())
    _fake_model_folder(staging, package="New")
    return staging


def test_an_empty_folder_that_appeared_is_not_replaced_either(tmp_path: Path) -> None:
    """``os.rename`` replaces an empty folder silently; the exclusive rename must not."""
    output = tmp_path / "out"
    staging = _staging_with_model(output)
    output.mkdir()
    with pytest.raises(ConversionError, match="appeared while converting"):
        move_into_place(staging, output, replace=False)
    assert list(output.iterdir()) == []


def test_a_failed_swap_puts_the_old_model_back(tmp_path: Path) -> None:
    output = _fake_model_folder(tmp_path / "model", package="Old")
    missing_staging = staging_folder(output, os.getpid())  # the rename in cannot succeed
    with pytest.raises(FileNotFoundError):
        move_into_place(missing_staging, output, replace=True)
    assert (output / "Old.mlpackage" / "Manifest.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_swap_rechecks_that_the_old_folder_is_a_model_folder(tmp_path: Path) -> None:
    output = tmp_path / "model"
    files = _user_folder(output)  # it became the user's between the check and the swap
    staging = _staging_with_model(output)
    with pytest.raises(ConversionError, match="not a model folder"):
        move_into_place(staging, output, replace=True)
    _assert_survives(output, files)


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_sweep_removes_only_staging_folders_of_dead_processes(tmp_path: Path) -> None:
    dead = _dead_pid()
    output = tmp_path / "model"
    dead_staging = staging_folder(output, dead)
    _fake_model_folder(dead_staging)
    live_staging = staging_folder(output, os.getpid())
    live_staging.mkdir()
    kept = [".git", ".model.partial-abc", f"model.partial-{dead}", f".model.partial-{dead}.bak"]
    for name in kept:
        _user_folder(tmp_path / name)
    swept = sweep_staging(tmp_path)
    assert swept == [dead_staging]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*kept, live_staging.name])


def test_sweep_restores_a_model_a_dead_swap_had_moved_aside(tmp_path: Path) -> None:
    dead = _dead_pid()
    restored = tmp_path / "restored"
    _fake_model_folder(aside_folder(restored, dead))  # died between move-aside and rename-in
    replaced = tmp_path / "replaced"
    _fake_model_folder(replaced, package="New")
    _fake_model_folder(aside_folder(replaced, dead), package="Old")  # died before deleting it
    sweep_staging(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["replaced", "restored"]
    assert (restored / "Old.mlpackage").is_dir() and (replaced / "New.mlpackage").is_dir()


# --- The Converter pane -------------------------------------------------------------------------


@pytest.mark.parametrize("name", [".", "..", "../x", "a/b", ".hidden"])
def test_pane_refuses_names_that_are_not_a_folder_name(qtbot, tmp_path: Path, name: str) -> None:
    """Name "." with Replace ticked used to make the output the models folder itself."""
    from app.settings.app_settings import AppSettings
    from app.settings.settings_store import SettingsStore
    from app.shell.settings_dialog import SettingsDialog

    models = tmp_path / "models"
    first = _fake_model_folder(models / "First")
    second = _fake_model_folder(models / "Second")
    dialog = SettingsDialog(SettingsStore(AppSettings(converter_output_dir=str(models))))
    qtbot.addWidget(dialog)
    pane = dialog.converter_pane
    pane.source_field.setText("owner/model")
    pane.name_field.setText(name)
    pane.force_check.setChecked(True)
    assert not pane.start()
    assert "name:" in pane.status_label.text()
    assert not pane.is_running()
    assert sorted(p.name for p in models.iterdir()) == ["First", "Second"]
    assert (first / "Old.mlpackage").is_dir() and (second / "tokenizer.json").is_file()


def test_app_keeps_an_output_it_did_not_write(qtbot, tmp_path: Path) -> None:
    """A converter that fails while the output folder exists (another run's model): the app
    removes its staging folder, never the output."""
    from app.conversion.converter_process import ConverterProcess

    script = tmp_path / "fails_late.py"
    script.write_text(
        "import json, os, sys\n"
        "from pathlib import Path\n"
        "out = Path(sys.argv[sys.argv.index('-o') + 1])\n"
        "staging = out.parent / f'.{out.name}.partial-{os.getpid()}'\n"
        "staging.mkdir(parents=True)\n"
        f"import shutil; shutil.copytree({str(tmp_path / 'other')!r}, out)\n"
        "print(json.dumps({'event': 'error', 'message': 'appeared while converting'}))\n"
        "sys.exit(1)\n"
    )
    _fake_model_folder(tmp_path / "other", package="Other")
    launcher = tmp_path / "launcher"
    launcher.write_text(f'#!/bin/sh\nexec {sys.executable} {script} "$@"\n')
    launcher.chmod(0o755)
    process = ConverterProcess(executable=str(launcher))
    output = tmp_path / "models" / "model"
    with qtbot.waitSignal(process.finished, timeout=20000) as finished:
        process.start(ConversionRequest("owner/model", output))
    assert finished.args[0].status == "error" and finished.args[0].leftovers == ()
    assert (output / "Other.mlpackage" / "Manifest.json").is_file()
    assert sorted(p.name for p in output.parent.iterdir()) == ["model"]


def test_problems_of_a_request_are_one_line_each(tmp_path: Path) -> None:
    request = ConversionRequest("", tmp_path, context_length=2, quantize="int3", name="..")  # type: ignore[arg-type]
    found = problems(request)
    assert len(found) >= 4 and all("\n" not in line for line in found)
    assert json.dumps(found)  # plain strings


# --- Bad input fails in one line, in bounded time, inside the staging folder (item 10) ----------


def _edit_config(source: Path, **changes) -> None:
    config = json.loads((source / "config.json").read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    (source / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"hidden_size": None}, "lacks 'hidden_size'"),
        ({"num_attention_heads": None}, "lacks 'num_attention_heads'"),
        ({"num_hidden_layers": "two"}, "expected a non-negative whole number"),
        ({"rms_norm_eps": -1}, "expected a positive number for 'rms_norm_eps'"),
    ],
)
def test_broken_configs_are_one_line_errors(
    tmp_path: Path, source: Path, changes: dict, expected: str
) -> None:
    _edit_config(source, **changes)
    with pytest.raises(ConversionError, match=expected):
        convert(ConversionRequest(str(source), tmp_path / "out", context_length=16))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models"]


@pytest.mark.parametrize("length", [1, 4, 15])
def test_tiny_context_lengths_are_refused(tmp_path: Path, source: Path, length: int) -> None:
    with pytest.raises(ConversionError, match=f"expected 16 to 131072, found {length}"):
        convert(ConversionRequest(str(source), tmp_path / "out", context_length=length))


def test_cli_context_length_4_is_one_line(tmp_path: Path, source: Path) -> None:
    command = [sys.executable, "-m", "converter.cli", str(source), "-o", str(tmp_path / "out"),
               "--json-progress", "--context-length", "4"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "context length" in ProgressEvent.from_json(result.stdout.splitlines()[-1]).message


def test_kill_leaves_nothing_outside_the_staging_folder_and_the_next_run_sweeps_it(
    tmp_path: Path, source: Path
) -> None:
    """kill -9 while coremltools writes its temporary package: nothing lands in TMPDIR, one staging
    folder of a dead process is left, and the next conversion into that folder removes it."""
    import signal

    temporary = tmp_path / "tmpdir"
    temporary.mkdir()
    parent = tmp_path / "converted"
    files = _user_folder(parent / "mine")
    command = [sys.executable, "-m", "converter.cli", str(source), "-o", str(parent / "m"),
               "--json-progress", "--context-length", "16", "--quantize", "int8"]  # fmt: skip
    env = {**os.environ, "TMPDIR": str(temporary)}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, env=env)  # fmt: skip
    assert process.stdout is not None
    for line in process.stdout:
        event = ProgressEvent.from_json(line)
        if event.stage == "save":  # coremltools' temporary package is written by now
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert list(temporary.iterdir()) == []
    left = sorted(p.name for p in parent.iterdir())
    assert left == [f".m.partial-{process.pid}", "mine"]
    _assert_survives(parent / "mine", files)

    _edit_config(source, architectures=["GraniteForCausalLM"])  # the next run fails early
    with pytest.raises(ConversionError, match="GraniteForCausalLM"):
        convert(ConversionRequest(str(source), parent / "other", context_length=16))
    assert sorted(p.name for p in parent.iterdir()) == ["mine"]
    _assert_survives(parent / "mine", files)


DISK_FULL_DRIVER = """
import json, os, sys
from pathlib import Path
import torch  # noqa: F401  (coremltools must see torch first)
from converter.convert import convert
from converter.errors import ConversionError
from converter.options import ConversionRequest

disk = Path(sys.argv[2])

def fill(event):
    if event.stage == "convert" and not (disk / "filler").exists():
        stats = os.statvfs(disk)
        with open(disk / "filler", "wb") as handle:
            handle.write(b"\\0" * (stats.f_bavail * stats.f_frsize - 64 * 1024))

try:
    convert(ConversionRequest(sys.argv[1], disk / "out", context_length=16, quantize="none"),
            progress=fill)
    message = "converted"
except ConversionError as error:
    message = str(error)
print(json.dumps({"message": message, "left": sorted(os.listdir(disk))}))
"""


def test_a_full_disk_says_so_and_leaves_nothing(tmp_path: Path, source: Path) -> None:
    """A real small file system (tmpfs in a user namespace) filled up mid-conversion."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux) to mount a small tmpfs")
    disk = tmp_path / "disk"
    disk.mkdir()
    driver = tmp_path / "driver.py"
    driver.write_text(DISK_FULL_DRIVER)
    script = (
        f"mount -t tmpfs -o size=64m tmpfs {disk} && exec {sys.executable} {driver} {source} {disk}"
    )
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("user namespaces are not available here")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    result = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True,
                            text=True, env=env, timeout=600, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert "the disk filled up" in outcome["message"], outcome
    assert outcome["left"] == ["filler"]  # no output, no staging folder


def test_sigterm_while_loading_weights_stops_inside_the_load(
    tmp_path: Path, smollm2_gguf: Path
) -> None:
    """The GGUF load is one long call; SIGTERM must stop it there, not after it has finished."""
    import signal

    command = [sys.executable, "-m", "converter.cli", str(smollm2_gguf), "-o",
               str(tmp_path / "out"), "--json-progress", "--context-length", "64"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    events = []
    for line in process.stdout:
        events.append(ProgressEvent.from_json(line))
        if events[-1].stage == "load":
            process.send_signal(signal.SIGTERM)
            break
    remaining, _ = process.communicate(timeout=300)
    events += [ProgressEvent.from_json(line) for line in remaining.splitlines()]
    assert process.returncode == 130 and events[-1].event == "cancelled"
    load = [e.stage_fraction for e in events if e.event == "progress" and e.stage == "load"]
    assert max(load) < 1.0, load  # the load never finished
    assert list(tmp_path.iterdir()) == []


# --- Conversions that lie (items 11, 12) ---------------------------------------------------------


def test_verify_compares_with_the_source_model_not_our_module(
    tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A converter bug in our torch module (stood in for by a negated MLP weight) goes into the
    package too; only a comparison with transformers' own model of the source can see it."""
    from converter import torch_model

    build = torch_model.build_stateful_model

    def broken_build(*args, **kwargs):
        module = build(*args, **kwargs)
        for layer in module.model.layers:
            layer.mlp.down_proj.weight.data.mul_(-4)
        return module

    monkeypatch.setattr(torch_model, "build_stateful_model", broken_build)
    request = ConversionRequest(
        str(source), tmp_path / "out", context_length=32, quantize="none", verify=True
    )
    report = convert(request).verification
    assert report is not None and not report.passed, report
    assert report.top1_agreement < 0.9


# --- Issue 21: two --force conversions finishing together over one model folder -----------------


def test_the_second_of_two_forced_swaps_says_so_and_strands_nothing(tmp_path, monkeypatch):
    """The interleaving that lost the race in 6 of 15 rounds: A moves the old model aside, B (which
    found no folder to move) renames its model in, then A's rename in finds B's model there."""
    from converter import output_folder

    output = _fake_model_folder(tmp_path / "model", package="Old")
    staging_a = _fake_model_folder(tmp_path / ".model.partial-a", package="A")
    staging_b = _fake_model_folder(tmp_path / ".model.partial-b", package="B")
    real_rename = output_folder.rename_no_replace

    def b_finishes_first(source, destination):
        if source == staging_a:
            real_rename(staging_b, destination)  # run B, whose check found the folder gone
        real_rename(source, destination)

    monkeypatch.setattr(output_folder, "rename_no_replace", b_finishes_first)
    with pytest.raises(ConversionError, match=r"another conversion replaced .*model first"):
        move_into_place(staging_a, output, replace=True)
    assert sorted(p.name for p in output.iterdir())[0] == "B.mlpackage"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".model.partial-a", "model"]


RACE = """
import shutil
import sys
from pathlib import Path
from converter.errors import ConversionError
from converter.output_folder import move_into_place
staging, output, go = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
while not go.exists():
    pass
try:
    move_into_place(staging, output, replace=True)
    print("replaced")
except ConversionError as error:
    print("error:", error)
finally:  # as staging_area does
    shutil.rmtree(staging, ignore_errors=True)
"""


def test_two_forced_conversions_finishing_together_leave_one_model_and_one_clear_error(tmp_path):
    for round_ in range(15):
        folder = tmp_path / str(round_)
        output = _fake_model_folder(folder / "model", package="Old")
        go = folder / "go"
        runs = []
        for name in ("A", "B"):
            staging = _fake_model_folder(folder / f".model.partial-{name}", package=name)
            command = [sys.executable, "-c", RACE, str(staging), str(output), str(go)]
            runs.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        go.touch()
        outcomes = [run.communicate(timeout=120) for run in runs]
        said = sorted(out.decode().strip() for out, _ in outcomes)
        assert all(not err for _, err in outcomes), outcomes  # no traceback, no raw OSError
        assert said[-1] == "replaced" and said[0] in ("replaced", f"error: another conversion "
            f"replaced {output} first; this conversion's model was discarded (convert again to "
            "replace it with this one)"), said  # fmt: skip
        packages = [p.name for p in output.iterdir() if p.suffix == ".mlpackage"]
        assert packages in (["A.mlpackage"], ["B.mlpackage"])
        assert sorted(p.name for p in folder.iterdir()) == ["go", "model"]  # nothing stranded


# --- Issue 21: a GGUF whose tensor headers lie is refused naming the tensor ----------------------


@pytest.mark.parametrize(
    ("gguf_name", "rows", "expected"),
    [
        ("blk.0.attn_k.weight", 4, r"blk\.0\.attn_k\.weight has 4 rows: expected 256 \(4 key-va"),
        ("blk.0.attn_q.weight", 0, r"blk\.0\.attn_q\.weight has shape \(0, 256\): expected every"),
        ("token_embd.weight", 0, r"token_embd\.weight has shape \(0, 256\): expected every"),
    ],
)
def test_a_gguf_tensor_of_the_wrong_shape_is_refused_by_name(tmp_path, gguf_name, rows, expected):
    import gguf

    from converter.gguf.exact_import import read_gguf
    from converter.torch_model import ModelSpec
    from tests.unit.converter.gguf_synthetic import SMALL_LLAMA_CONFIG, synthetic_blocks

    raw, _ = synthetic_blocks("Q8_0", (256, 256))
    path = tmp_path / "lying.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tensor(gguf_name, raw[:rows], raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    # Before: "cannot reshape array of size 4 into shape (4,0,2)", "integer division or modulo
    # by zero", or nothing until the module's weights were loaded.
    with pytest.raises(ConversionError, match=expected):
        imported = read_gguf(path, ModelSpec.from_config(SMALL_LLAMA_CONFIG))
        for name in imported.quantized:
            imported.blocks(name)
