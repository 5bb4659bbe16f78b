"""Screenshots of the Settings dialog: its three tabs and the Converter pane mid-run.

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/screenshots_settings.py [--out DIR]

``capture(out_dir)`` is also called by ``scripts/screenshots.py``. The converter shot is real: a
tiny random Mistral model (made here, in a subprocess, with transformers) is being converted by
the converter subprocess when the picture is taken. Everything runs under a temporary app home.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
logger = logging.getLogger("screenshots_settings")

TINY_MODEL_FLAG = "--make-tiny-model"
WORDS = [
    "the",
    "a",
    "an",
    "is",
    "are",
    "was",
    "be",
    "to",
    "of",
    "and",
    "in",
    "that",
    "it",
    "for",
    "on",
    "with",
    "as",
    "you",
    "do",
    "at",
    "this",
    "but",
    "his",
    "by",
]


def make_tiny_model(folder: Path) -> None:
    """A random MistralForCausalLM with a small word-level tokenizer and a chat template."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import MistralConfig, MistralForCausalLM, PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>", "[INST]", "[/INST]"]
    vocab = {token: index for index, token in enumerate(specials + WORDS)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    tokenizer.chat_template = (
        "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] "
        "{{ m['content'] }} [/INST]{% else %}{{ m['content'] }}{{ eos_token }}{% endif %}"
        "{% endfor %}"
    )
    torch.manual_seed(0)
    config = MistralConfig(
        vocab_size=len(vocab),
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=8,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=1,
        eos_token_id=2,
    )
    folder.mkdir(parents=True, exist_ok=True)
    MistralForCausalLM(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    from PySide6.QtWidgets import QApplication

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        QApplication.processEvents()
        if predicate():
            return True
        time.sleep(0.02)
    return False


def capture(out_dir: Path) -> list[Path]:
    """Save settings-generation.png, settings-converter.png, converter.png (the converter pane
    mid-run) and
    settings-model.png (the model that conversion made, as loaded) in ``out_dir``."""
    from PySide6.QtWidgets import QApplication

    out_dir.mkdir(parents=True, exist_ok=True)
    previous_home = os.environ.get("COREML_CHAT_HOME")
    home = Path(tempfile.mkdtemp(prefix="coreml-chat-settings-shots-"))
    os.environ["COREML_CHAT_HOME"] = str(home)
    try:
        QApplication.instance() or QApplication([])
        return _capture_all(out_dir, home)
    finally:
        shutil.rmtree(home, ignore_errors=True)
        if previous_home is None:
            os.environ.pop("COREML_CHAT_HOME", None)
        else:
            os.environ["COREML_CHAT_HOME"] = previous_home


def _capture_all(out_dir: Path, home: Path) -> list[Path]:
    from app.settings.app_settings import AppSettings
    from app.settings.settings_store import SettingsStore
    from app.shell.settings_dialog import SettingsDialog
    from engine import paths
    from engine.messages import GenerationConfig, ModelInfo

    source = home / "sources" / "TinyMistral"
    subprocess.run([sys.executable, __file__, TINY_MODEL_FLAG, str(source)], check=True)
    settings = AppSettings(
        system_prompt="You are a concise assistant. Answer in plain English.",
        generation=GenerationConfig(temperature=0.6, top_p=0.95, min_p=0.05, seed=42),
    )
    dialog = SettingsDialog(SettingsStore(settings, save=None))  # no model loaded yet
    dialog.show()
    saved = []
    for tab in ("generation", "converter"):
        dialog.show_tab(tab)
        wait_until(lambda: False, 0.2)
        path = out_dir / f"settings-{tab}.png"
        dialog.grab().save(str(path))
        saved.append(path)
    pane = dialog.converter_pane
    pane.prefill(str(source), str(paths.models_dir()))
    pane.context_spin.setValue(512)
    pane.verify_check.setChecked(True)
    if not pane.start():
        raise RuntimeError(f"the conversion did not start: {pane.status_label.text()}")
    midway = wait_until(
        lambda: (
            pane.process.tracker.current_stage in ("convert", "quantize") or not pane.is_running()
        ),
        timeout=300,
    )
    if not midway or not pane.is_running():
        logger.warning("the conversion ended before the mid-run shot: %s", pane.status_label.text())
    wait_until(lambda: False, 0.3)
    path = out_dir / "converter.png"
    dialog.grab().save(str(path))
    saved.append(path)
    wait_until(lambda: not pane.is_running(), timeout=300)
    # The Model tab as it is once that conversion is loaded: the model's own description, as the
    # engine reports it on this machine (no made-up entry beside an empty list).
    from app.models.model_library import CORE_ML_PLATFORM, inspect_model, local_models

    dialog.model_pane.refresh_local_models()
    [summary] = local_models(paths.models_dir())
    dialog.set_model_info(
        ModelInfo(
            name=summary.name,
            path=str(summary.folder),
            context_length=summary.context_length,
            quantization=summary.quantization,
            architecture=summary.architecture,
            runtime_name="coreml" if CORE_ML_PLATFORM else "reference",
            compute_units="cpu_and_gpu",
            source_model_id=inspect_model(summary.folder).source_model_id,
        )
    )
    dialog.show_tab("model")
    wait_until(lambda: False, 0.2)
    path = out_dir / "settings-model.png"
    dialog.grab().save(str(path))
    saved.append(path)
    dialog.close()
    dialog.deleteLater()
    wait_until(lambda: False, 0.1)
    return saved


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [TINY_MODEL_FLAG]:
        make_tiny_model(Path(argv[1]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "screenshots")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for path in capture(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
