"""Model folders the benchmarks run on (a helper, not a benchmark: it prints nothing).

The demo model (SmolLM2-135M-Instruct int4) where ``make run`` installed it, else converted once into
``.cache/bench``; a random 2-layer Mistral with Mistral's real v3 tokenizer (vocab 32768), converted
once into the same folder. Both are reused across runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as ``python benchmarks/NAME.py`` (make bench)
    sys.path.insert(0, str(REPO))

BENCH_CACHE = REPO / ".cache" / "bench"
DEMO_NAME = "SmolLM2-135M-Instruct"


def demo_model_folder(context_length: int = 1024) -> Path:
    """The SmolLM2-135M-Instruct int4 model folder: the app's copy if installed, else our own."""
    from converter.demo_model import DEMO_MODEL_FOLDER_NAME, fetch_demo_gguf
    from engine.paths import models_dir

    installed = models_dir() / DEMO_MODEL_FOLDER_NAME
    if installed.is_dir():
        return installed
    folder = BENCH_CACHE / f"{DEMO_NAME}-int4-ctx{context_length}"
    if folder.is_dir():
        return folder
    from converter.convert import convert
    from converter.options import ConversionRequest

    request = ConversionRequest(
        str(fetch_demo_gguf(REPO / ".cache" / "tests")),
        folder,
        context_length=context_length,
        quantize="int4",
        name=DEMO_NAME,
    )
    return convert(request).output_dir


class _Folders:
    """Stands in for pytest's tmp_path_factory when the test fixtures' helpers build models."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def mktemp(self, name: str) -> Path:
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder


def tiny_mistral_folder(context_length: int = 1024) -> Path:
    """A random 2-layer Mistral with Mistral's real v3 tokenizer (vocab 32768), converted int4."""
    folder = BENCH_CACHE / f"TinyMistral-int4-ctx{context_length}"
    if folder.is_dir():
        return folder
    import tempfile

    from converter.convert import convert
    from converter.options import ConversionRequest
    from tests import conftest

    with tempfile.TemporaryDirectory(prefix="bench-tiny-") as scratch:
        folders = _Folders(Path(scratch))
        tokenizer_dir = _unwrap(conftest.mistral_v3_tokenizer_dir)(folders)
        source = conftest._save_tiny_model(
            folders.mktemp("source"), tokenizer_dir, architecture="mistral"
        )
        request = ConversionRequest(
            str(source), folder, context_length=context_length, quantize="int4", name="TinyMistral"
        )
        return convert(request).output_dir


def _unwrap(fixture):
    """The plain function behind a pytest fixture (pytest 8 wraps it)."""
    return getattr(fixture, "__wrapped__", fixture)
