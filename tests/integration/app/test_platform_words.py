"""Words that fit the platform: key names, Core ML choices only where Core ML runs, a quiet log."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QLabel

from app.conversion.converter_process import ConverterProcess, LibraryNoiseFilter
from converter.options import ConversionRequest
from engine.messages import ModelInfo
from tests.integration.app.window_helpers import stand_in_converter

NOISE = [
    "Fetching 3 files:  33%|███▎      | 1/3 [00:01<00:02,  1.20s/it]",
    "\rRunning MIL passes:  40%|████      | 4/10 [00:00<00:00, 31.2 passes/s]",
    "/venv/lib/python3.11/site-packages/transformers/utils/generic.py:311: FutureWarning: "
    "`torch.utils._pytree._register_pytree_node` is deprecated.",
    "  torch.utils._pytree._register_pytree_node(",
    "Torch version 2.13.0+cpu has not been tested with coremltools. You may run into unexpected "
    "errors. Torch 2.7.0 is the most recent version that has been tested.",
    "Failed to load _MLModelProxy: No module named 'coremltools.libcoremlpython'",
]
KEPT = [
    "Traceback (most recent call last):",
    '  File "converter/convert.py", line 3, in convert',  # indented, but not under a warning
    "ValueError: the checkpoint has no lm_head weight",
    "warning: tokenizer.json has no chat template",
]


def test_tooltips_and_messages_name_keys_as_this_platform_does(qtbot) -> None:
    from app.conversations.conversation_list_model import ConversationListModel
    from app.conversations.sidebar import Sidebar
    from app.conversations.store import ConversationStore

    store = ConversationStore()
    sidebar = Sidebar(ConversationListModel(store))
    qtbot.addWidget(sidebar)
    new_chat = QKeySequence(QKeySequence.StandardKey.New)
    expected = new_chat.toString(QKeySequence.SequenceFormat.NativeText)
    assert sidebar.new_button.toolTip() == f"New chat ({expected})"
    tips = sidebar.new_button.toolTip() + sidebar.settings_button.toolTip()
    if sys.platform != "darwin":
        assert "⌘" not in tips and "Ctrl+," in tips
    store.close()


def test_the_no_model_message_names_the_settings_key_of_this_platform(qtbot, make_window) -> None:
    window = make_window()
    errors: list[str] = []
    window.controller.errorOccurred.connect(errors.append)
    window.controller.send("hello")
    assert errors and "Settings (" in errors[-1]
    if sys.platform != "darwin":
        assert "⌘" not in errors[-1] and "Ctrl+," in errors[-1]


def _info(runtime: str) -> ModelInfo:
    return ModelInfo(
        path="/models/tiny",
        name="Tiny",
        context_length=256,
        runtime_name=runtime,
        compute_units="cpu_and_gpu",
        quantization="int4",
        architecture="mistral",
    )


def test_compute_units_and_metal_hints_only_where_core_ml_runs(qtbot, monkeypatch) -> None:
    from app.models import model_pane
    from app.models.model_library import model_info_rows

    assert "Compute units" not in dict(model_info_rows(_info("reference")))
    assert "Compute units" in dict(model_info_rows(_info("coreml")))

    monkeypatch.setattr(model_pane, "CORE_ML_PLATFORM", False)
    pane = model_pane.ModelPane(compute_units="cpu_and_gpu", token="")
    qtbot.addWidget(pane)
    pane.show()
    assert not pane.compute_units_box.isVisibleTo(pane)
    shown = " ".join(label.text() for label in pane.findChildren(QLabel) if label.isVisibleTo(pane))
    assert "Metal" not in shown and "Neural Engine" not in shown

    monkeypatch.setattr(model_pane, "CORE_ML_PLATFORM", True)
    on_a_mac = model_pane.ModelPane(compute_units="cpu_and_gpu", token="")
    qtbot.addWidget(on_a_mac)
    on_a_mac.show()
    assert on_a_mac.compute_units_box.isVisibleTo(on_a_mac)
    assert "Metal" in on_a_mac.compute_units_tip.text()


def test_library_noise_is_told_apart_from_real_problems() -> None:
    noise = LibraryNoiseFilter()
    assert [line for line in NOISE + KEPT if not noise.is_noise(line)] == KEPT


def test_the_converter_log_keeps_library_noise_out(qtbot, tmp_path: Path) -> None:
    """A stand-in converter that prints what torch, transformers, tqdm and coremltools print."""
    lines = NOISE + KEPT
    launcher = stand_in_converter(
        tmp_path,
        "import json, os, sys\n"
        f"for line in {lines!r}:\n"
        "    print(line, file=sys.stderr, flush=True)\n"
        "print('quiet: ' + os.environ.get('TRANSFORMERS_VERBOSITY', '') + ' '"
        " + os.environ.get('HF_HUB_DISABLE_PROGRESS_BARS', ''), file=sys.stderr, flush=True)\n"
        "print(json.dumps({'event': 'error', 'message': 'no weights'}), flush=True)\n"
        "sys.exit(1)\n",
    )
    process = ConverterProcess(executable=launcher)
    logged: list[str] = []
    process.logLine.connect(logged.append)
    with qtbot.waitSignal(process.finished, timeout=20000):
        process.start(ConversionRequest("owner/model", tmp_path / "out"))
    stderr_lines = [line for line in logged if line in NOISE + KEPT or line.startswith("quiet:")]
    assert stderr_lines == [*KEPT, "quiet: error 1"]
