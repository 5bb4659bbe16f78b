"""The conversion contract: what a request is, how it is checked, how it travels as a command line.

Standard library only: the app imports it (without torch) to check the Converter pane's form and to
build the converter's command line; the CLI parses that command line back into the same request;
``converter.convert.convert`` refuses a request with ``problems()`` before doing any work. One
definition of each rule lives here: the quantization choices, the Hub-id pattern, the request's
validation, which folders ``--force`` may replace, and the names of the staging folders a run
leaves beside its output (with the sweep that removes those of dead processes).

Progress lines and exit codes are the other half of the contract (``converter.progress``).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from converter.errors import ConversionError
from converter.naming import name_problem
from converter.progress import STAGES, ConversionCancelled

__all__ = [
    "GGUF_FORMS",
    "HUB_ID",
    "INT4_RECIPES",
    "QUANTIZATIONS",
    "ConversionCancelled",
    "ConversionError",
    "ConversionRequest",
    "build_parser",
    "model_folder_problem",
    "problems",
    "staging_folder",
    "sweep_staging",
]

logger = logging.getLogger(__name__)

# "auto": "exact" for a GGUF source (its own quantized blocks, see converter.gguf.exact_import), else
# "int4". "exact" only for a GGUF source.
Quantization = Literal["auto", "exact", "int4", "int8", "none"]
QUANTIZATIONS: tuple[Quantization, ...] = ("auto", "exact", "int4", "int8", "none")
# How int4 weights are made (``--quantize int4``, or ``auto`` on a full-precision source):
# "searched": per block the scale and a uint4 zero point of least squared error (4.625 bits per
# weight at block 32); "searched-symmetric": the searched scale alone (int4, 4.5 bits);
# "linear-symmetric": coremltools' max-abs scale (int4, 4.5 bits). See converter.quantization.block_quantizer.
Int4Recipe = Literal["searched", "searched-symmetric", "linear-symmetric"]
INT4_RECIPES: tuple[Int4Recipe, ...] = ("searched", "searched-symmetric", "linear-symmetric")
# How a GGUF's blocks are kept (``auto``/``exact`` quantization of a GGUF source): "exact", llama.cpp's
# own integers (a float16 offset for blocks with a minimum); "native", only forms coremltools itself
# writes and tests on devices (int4/int8 symmetric, or uint4/uint8 with an integer zero point,
# re-fitted by the searched recipe where the offset is not whole). converter.quantization.native_form.
GGUFForm = Literal["exact", "native"]
GGUF_FORMS: tuple[GGUFForm, ...] = ("exact", "native")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# Below 16 the trace (three cached tokens plus two new ones) and any chat are impossible.
MIN_CONTEXT_LENGTH = 16
MAX_CONTEXT_LENGTH = 131072
# Weights per int4 scale: below 8 the scales cost more than the weights; above 1024 a block spans
# more than most models' rows hold.
MIN_BLOCK_SIZE = 8
MAX_BLOCK_SIZE = 1024
# What a model folder holds besides its one NAME.mlpackage: the files the converter writes, and
# the Finder's .DS_Store. Anything else is the user's, and --force will not delete it.
MODEL_FOLDER_FILES = frozenset(
    {"tokenizer.json", "tokenizer_config.json", "generation_config.json", ".DS_Store"}
)
# ".<output name>.partial-<pid>": the folder a run assembles the model in;
# ".<output name>.replaced-<pid>": the old model moved aside while --force swaps the new one in.
STAGING_NAME = re.compile(r"^\.(?P<output>.+)\.(?P<kind>partial|replaced)-(?P<pid>\d+)$")


@dataclass(frozen=True)
class ConversionRequest:
    """One conversion, as the pane builds it, the CLI parses it and ``convert()`` runs it."""

    source: str  # Hub id, Hugging Face folder, or .gguf file
    output_dir: Path  # the model folder to create
    context_length: int = 2048
    quantize: Quantization = "auto"
    block_size: int = 32
    int4_recipe: Int4Recipe = "searched"
    int8_embeddings: bool = False  # the embedding and lm_head at 8 bits (int4 recipes only)
    gguf_form: GGUFForm = "exact"  # a GGUF's blocks kept exactly, or in coremltools' own forms
    last_logits_only: bool = False
    verify: bool = False
    force: bool = False  # replace an existing output, if it is one of our model folders
    name: str = ""  # the package's name; empty: the model's own name
    token: str = field(default="", repr=False)  # never on a command line: HF_TOKEN carries it

    def to_argv(self) -> list[str]:
        """The converter's arguments for this request (without the token; see ``token``)."""
        args = [
            self.source.strip(),
            "-o",
            str(Path(self.output_dir).expanduser()),
            "--context-length",
            str(self.context_length),
            "--quantize",
            self.quantize,
        ]
        if self.quantize in ("int4", "auto"):
            args += ["--block-size", str(self.block_size), "--int4-recipe", self.int4_recipe]
        if self.int8_embeddings:
            args.append("--int8-embeddings")
        if self.gguf_form != "exact":
            args += ["--gguf-form", self.gguf_form]
        if self.last_logits_only:
            args.append("--last-logits-only")
        if self.verify:
            args.append("--verify")
        if self.force:
            args.append("--force")
        if self.name:
            args += ["--name", self.name]
        return args

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ConversionRequest:
        """The request ``build_parser()`` parsed (the token from ``--token`` or ``HF_TOKEN``)."""
        return cls(
            source=args.source,
            output_dir=args.output,
            context_length=args.context_length,
            quantize=args.quantize,
            block_size=args.block_size,
            int4_recipe=args.int4_recipe,
            int8_embeddings=args.int8_embeddings,
            gguf_form=args.gguf_form,
            last_logits_only=args.last_logits_only,
            verify=args.verify,
            force=args.force,
            name=args.name or "",
            token=args.token or os.environ.get("HF_TOKEN", ""),
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coreml-chat-convert",
        description="Convert a Hugging Face Mistral or Llama model into a stateful Core ML model folder.",
    )
    parser.add_argument("source", help="Hub model id, local Hugging Face folder, or .gguf file")
    parser.add_argument(
        "-o", "--output", required=True, type=Path, help="the model folder to create"
    )
    parser.add_argument("--context-length", type=int, default=2048, help="default 2048")
    parser.add_argument(
        "--quantize",
        choices=QUANTIZATIONS,
        default="auto",
        help="auto (default): exact for a .gguf source (its own quantized blocks), int4 otherwise",
    )
    parser.add_argument("--block-size", type=int, default=32, help="int4 block size (default 32)")
    parser.add_argument(
        "--int4-recipe",
        choices=INT4_RECIPES,
        default="searched",
        help="how int4 blocks are made: searched (default: least-squares scale and uint4 zero "
        "point per block), searched-symmetric (scale only), linear-symmetric (coremltools' "
        "max-abs scale)",
    )
    parser.add_argument(
        "--int8-embeddings",
        action="store_true",
        help="keep the embedding and lm_head at 8 bits (int4 only; bigger, closer to the source)",
    )
    parser.add_argument(
        "--gguf-form",
        choices=GGUF_FORMS,
        default="exact",
        help="a GGUF source's blocks: exact (default: llama.cpp's own integers and offsets) or "
        "native (only forms coremltools itself writes and tests on devices: offsets re-fitted "
        "to integer zero points by the searched recipe)",
    )
    parser.add_argument(
        "--last-logits-only",
        action="store_true",
        help="logits of the last position only: (1, 1, vocab)",
    )
    parser.add_argument(
        "--verify", action="store_true", help="run the package against the source model"
    )
    parser.add_argument("--json-progress", action="store_true", help="JSON lines on stdout")
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an existing output folder (only a coreml-chat model folder)",
    )
    parser.add_argument("--token", default=None, help="Hugging Face access token (gated models)")
    parser.add_argument("--name", default=None, help="package name (default: the model's name)")
    return parser


# --- Validation ---------------------------------------------------------------------------------


def stages_for(request: ConversionRequest) -> tuple[str, ...]:
    """The stages ``request`` runs, in order: what the converter reports and the app shows."""
    return tuple(name for name, _ in STAGES if name != "verify" or request.verify)


def problems(request: ConversionRequest) -> list[str]:
    """What is wrong with ``request`` before starting, one line each (empty: ready to start)."""
    found = [*_source_problems(request.source)]
    if request.quantize not in QUANTIZATIONS:
        found.append(
            f"quantization: expected {', '.join(QUANTIZATIONS)}, found {request.quantize!r}"
        )
    if not MIN_CONTEXT_LENGTH <= request.context_length <= MAX_CONTEXT_LENGTH:
        found.append(
            f"context length: expected {MIN_CONTEXT_LENGTH} to {MAX_CONTEXT_LENGTH}, "
            f"found {request.context_length}"
        )
    if request.quantize in ("int4", "auto") and not (
        MIN_BLOCK_SIZE <= request.block_size <= MAX_BLOCK_SIZE
    ):
        found.append(
            f"block size: expected {MIN_BLOCK_SIZE} to {MAX_BLOCK_SIZE}, found {request.block_size}"
        )
    if request.int4_recipe not in INT4_RECIPES:
        found.append(
            f"int4 recipe: expected {', '.join(INT4_RECIPES)}, found {request.int4_recipe!r}"
        )
    if request.gguf_form not in GGUF_FORMS:
        found.append(f"GGUF form: expected {', '.join(GGUF_FORMS)}, found {request.gguf_form!r}")
    elif request.gguf_form != "exact" and request.quantize not in ("auto", "exact"):
        found.append(
            f"GGUF form {request.gguf_form}: applies to a GGUF source kept in its own blocks, "
            f"found quantization {request.quantize}"
        )
    if request.int8_embeddings and request.quantize not in ("int4", "auto"):
        found.append(
            f"int8 embeddings: only with int4 quantization, found quantization {request.quantize}"
        )
    if request.name:
        problem = name_problem(request.name, what="package name")
        if problem:
            found.append(problem)
    found.extend(_output_problems(request))
    return found


def _source_problems(text: str) -> list[str]:
    source = text.strip()
    if not source:
        return ["source: expected a Hub id (owner/name), a model folder or a .gguf file"]
    path = Path(source).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            return [f"source: {path} is a file but not a .gguf model"]
        return []
    if path.is_dir():
        if not (path / "config.json").is_file() and len(list(path.glob("*.gguf"))) != 1:
            return [
                f"source: {path} has no config.json (nor a single .gguf); "
                "is it a Hugging Face model folder?"
            ]
        return []
    if source.lower().endswith(".gguf"):
        return [f"source: no such .gguf file: {path}"]
    if path.is_absolute() or source.startswith((".", "~")):
        return [f"source: no such file or folder: {path}"]
    if not HUB_ID.match(source):
        return [f"source: expected a Hub id like owner/name, found {source!r}"]
    return []


def _output_problems(request: ConversionRequest) -> list[str]:
    output = Path(request.output_dir).expanduser().resolve()
    source = Path(request.source.strip()).expanduser()
    if request.source.strip() and source.exists():
        overlap = overlap_problem(output, source)
        if overlap:
            return [overlap]
    if output.exists() or output.is_symlink():
        if not output.is_dir():
            return [f"output: {output} exists and is not a folder"]
        if not request.force:
            return [f"output: {output} already exists; choose another name or tick Replace"]
        problem = model_folder_problem(output)
        if problem:
            return [f"output: {problem}; Replace only replaces a coreml-chat model folder"]
    return []


def overlap_problem(output: Path, source: Path) -> str | None:
    """The output may not be the source, lie inside it, or hold it (the source's parent)."""
    output = output.expanduser().resolve()
    source = source.expanduser().resolve()
    if output == source or source in output.parents:
        return f"output: {output} lies in the source {source}; choose a folder outside it"
    if output in source.parents:
        return f"output: {output} holds the source {source}; choose a folder beside it"
    return None


def model_folder_problem(folder: Path) -> str | None:
    """Why ``folder`` is not a model folder the converter may replace (None: it is one).

    A model folder holds exactly one ``NAME.mlpackage`` (with its ``Manifest.json``) and nothing
    but the files the converter writes beside it. A folder holding anything else holds something
    of the user's, and replacing it would delete that.
    """
    try:
        entries = list(folder.iterdir())
    except OSError as error:
        return f"cannot read {folder}: {error.strerror}"
    packages = [
        e for e in entries if e.suffix == ".mlpackage" and e.is_dir() and not e.is_symlink()
    ]
    others = sorted(
        e.name for e in entries if e not in packages and e.name not in MODEL_FOLDER_FILES
    )
    if others:
        return f"{folder} is not a model folder (it holds {others[0]!r})"
    if len(packages) != 1:
        return f"{folder} is not a model folder (expected one .mlpackage, found {len(packages)})"
    if not (packages[0] / "Manifest.json").is_file():
        return f"{folder} is not a model folder ({packages[0].name} has no Manifest.json)"
    return None


# --- Staging folders ----------------------------------------------------------------------------


def staging_folder(output_dir: Path, pid: int) -> Path:
    """Where the run with process id ``pid`` assembles the model before renaming it into place."""
    output_dir = Path(output_dir).expanduser().resolve()
    return output_dir.parent / f".{output_dir.name}.partial-{pid}"


def aside_folder(output_dir: Path, pid: int) -> Path:
    """Where the run ``pid`` moves the model it replaces (``--force``) while it swaps."""
    output_dir = Path(output_dir).expanduser().resolve()
    return output_dir.parent / f".{output_dir.name}.replaced-{pid}"


def process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def sweep_staging(parent: Path, *, pids: Iterable[int] | None = None) -> list[Path]:
    """Remove the staging folders in ``parent`` left by dead processes (or only those of ``pids``,
    once they have ended); return what was swept.

    A ``.replaced-`` folder whose model folder is missing is the only copy of a model a run was
    swapping when it died: it is renamed back, not deleted. Only names that match the staging rule
    are touched, and only when their process is gone.
    """
    wanted = set(pids) if pids is not None else None
    swept: list[Path] = []
    try:
        entries = list(Path(parent).iterdir())
    except OSError:
        return swept
    for entry in entries:
        match = STAGING_NAME.match(entry.name)
        if match is None or entry.is_symlink() or not entry.is_dir():
            continue
        pid = int(match["pid"])
        if (wanted is not None and pid not in wanted) or process_alive(pid):
            continue
        target = entry.parent / match["output"]
        if match["kind"] == "replaced" and not target.exists():
            logger.warning("restoring %s, which a dead conversion had moved aside", target)
            os.rename(entry, target)
        else:
            logger.info("removing %s, left by a conversion that ended (pid %d)", entry, pid)
            shutil.rmtree(entry, ignore_errors=True)
        swept.append(entry)
    return swept
