"""Peak memory of a conversion, as a multiple of the model's float16 weight bytes.

Builds a synthetic Mistral-shaped model (random float16 weights written straight to safetensors, a
small word-level tokenizer), converts it int4 with the CLI in a child process, and reads the child's
peak RSS. The goal is ≤ 1.5× (a 7B model is 14.5 GB in float16: at 1.5× it converts on a 24 GB Mac).
The interpreter's fixed cost (torch, transformers and coremltools imported) is reported apart, and
so is the anonymous part of the peak: safetensors maps the checkpoint file, and those file pages
count in RSS while the OS can drop them under memory pressure.

    python benchmarks/convert_memory.py [--layers 8] [--hidden 2048] [--keep]
    python benchmarks/convert_memory.py --gguf FILE   # a GGUF, exact import: goal ≤ 1.5× its size
    python benchmarks/convert_memory.py --gguf FILE --gguf-layers 180   # the same, N layers deep
    python benchmarks/convert_memory.py --gguf FILE --gguf-7b   # the same, Mistral 7B's shape

``--gguf-layers N`` first writes (once, cached under ``.cache/bench``) a deeper GGUF derived from
FILE: the same metadata and tokenizer, ``<arch>.block_count`` = N, and ``blk.i`` = FILE's
``blk.(i % layers)`` byte for byte. It answers whether the import's peak above its baseline is a
fixed cost or grows with the weights. ``--gguf-7b`` instead writes (once, cached) a GGUF of
Mistral 7B's shape (hidden 4096, intermediate 14336, 32 layers, 32 heads, 8 kv heads, ~4.5 GB):
FILE's metadata and tokenizer, every weight Q4_1 of random bytes. For a GGUF the peak is also
reported per conversion stage (the stage named by the last ``--json-progress`` event when the
sample was taken).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # make bench runs files

from benchmarks._goals import at_most, report

VOCAB = 32768
BENCH_CACHE = Path(__file__).resolve().parents[1] / ".cache" / "bench"
_BLOCK_TENSOR = re.compile(r"blk\.(\d+)\.(.+)")


def write_synthetic_model(folder: Path, *, layers: int, hidden: int) -> int:
    """A random MistralForCausalLM checkpoint; returns its float16 weight bytes."""
    from safetensors.torch import save_file
    from tokenizers import Tokenizer, models, pre_tokenizers

    heads, kv_heads = hidden // 128, max(1, hidden // 512)
    intermediate = int(hidden * 2.75)
    config = {
        "architectures": ["MistralForCausalLM"],
        "model_type": "mistral",
        "vocab_size": VOCAB,
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": 128,
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-5,
        "rope_theta": 1000000.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "tie_word_embeddings": False,
        "torch_dtype": "float16",
    }
    generator = torch.Generator().manual_seed(0)

    def random(*shape: int) -> torch.Tensor:
        return (torch.randn(*shape, generator=generator) * 0.02).to(torch.float16)

    weights = {
        "model.embed_tokens.weight": random(VOCAB, hidden),
        "lm_head.weight": random(VOCAB, hidden),
    }
    weights["model.norm.weight"] = torch.ones(hidden, dtype=torch.float16)
    for i in range(layers):
        prefix = f"model.layers.{i}."
        weights[prefix + "self_attn.q_proj.weight"] = random(heads * 128, hidden)
        weights[prefix + "self_attn.k_proj.weight"] = random(kv_heads * 128, hidden)
        weights[prefix + "self_attn.v_proj.weight"] = random(kv_heads * 128, hidden)
        weights[prefix + "self_attn.o_proj.weight"] = random(hidden, heads * 128)
        weights[prefix + "mlp.gate_proj.weight"] = random(intermediate, hidden)
        weights[prefix + "mlp.up_proj.weight"] = random(intermediate, hidden)
        weights[prefix + "mlp.down_proj.weight"] = random(hidden, intermediate)
        weights[prefix + "input_layernorm.weight"] = torch.ones(hidden, dtype=torch.float16)
        weights[prefix + "post_attention_layernorm.weight"] = torch.ones(
            hidden, dtype=torch.float16
        )
    total = sum(t.numel() * t.element_size() for t in weights.values())
    save_file(weights, str(folder / "model.safetensors"))
    del weights
    (folder / "config.json").write_text(json.dumps(config))
    vocabulary = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"w{i}": i for i in range(3, VOCAB)}}
    tokenizer = Tokenizer(models.WordLevel(vocabulary, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(folder / "tokenizer.json"))
    template = "{% for m in messages %}{{ m['content'] }} {% endfor %}"
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "chat_template": template,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    return total


def _split_blocks(reader: object) -> tuple[list, dict[tuple[int, str], object], list]:
    """A GGUF's tensors: those before the blocks, ``(index, suffix) -> tensor``, those after."""
    blocks: dict[tuple[int, str], object] = {}
    head, tail = [], []  # tensors before and after the blocks, in the source's order
    for tensor in reader.tensors:
        match = _BLOCK_TENSOR.fullmatch(tensor.name)
        if match:
            blocks[int(match[1]), match[2]] = tensor
        else:
            (tail if blocks else head).append(tensor)
    return head, blocks, tail


def _write_gguf(
    target: Path,
    reader: object,
    *,
    overrides: dict[str, int],
    tensors: list[tuple[str, tuple[int, ...], object, object, Callable[[], object]]],
) -> None:
    """Write ``reader``'s metadata (``overrides`` replacing some values) and ``tensors``.

    ``tensors`` are ``(name, byte shape, numpy dtype, GGML type, make data)``: the data is made one
    tensor at a time while writing, so a large file needs little memory. The file appears under its
    final name only once it is complete.
    """
    from gguf import GGUFValueType, GGUFWriter, Keys

    arch = reader.fields[Keys.General.ARCHITECTURE].contents()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".partial-{os.getpid()}")
    try:
        writer = GGUFWriter(str(partial), arch)
        for field in reader.fields.values():
            if field.name == Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
                continue  # the writer adds these itself
            kind = field.types[0]
            sub_type = field.types[-1] if kind == GGUFValueType.ARRAY else None
            value = overrides.get(field.name, field.contents())
            writer.add_key_value(field.name, value, kind, sub_type=sub_type)
        for name, shape, dtype, tensor_type, _ in tensors:
            nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
            writer.add_tensor_info(name, shape, dtype, nbytes, tensor_type)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for *_, make in tensors:
            writer.write_tensor_data(make(), tensor_endianess=reader.endianess)
        writer.close()
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def _is_fresh(target: Path, source: Path) -> bool:
    return target.exists() and target.stat().st_mtime >= source.stat().st_mtime


def _llama_key(reader: object, key: str, option: str, source: Path) -> str:
    """``key`` formatted for the GGUF's architecture; exits with a clear error if it is missing."""
    from gguf import Keys

    name = key.format(arch=reader.fields[Keys.General.ARCHITECTURE].contents())
    if name not in reader.fields:
        raise SystemExit(f"{option}: expected {name} in {source}, found no such key")
    return name


def deeper_gguf(source: Path, *, layers: int, cache: Path = BENCH_CACHE) -> Path:
    """``source`` with ``layers`` transformer blocks, its own blocks repeated (cached by name).

    Tensors are copied as raw bytes from the reader's memory map, one at a time.
    """
    from gguf import GGUFReader, Keys

    target = cache / f"{source.stem}.{layers}-layers.gguf"
    if _is_fresh(target, source):
        return target
    reader = GGUFReader(str(source))
    block_key = _llama_key(reader, Keys.LLM.BLOCK_COUNT, "--gguf-layers", source)
    source_layers = int(reader.fields[block_key].contents())
    head, blocks, tail = _split_blocks(reader)
    suffixes = [suffix for index, suffix in blocks if index == 0]
    tensors = [(t.name, t) for t in head]
    for i in range(layers):
        tensors += [(f"blk.{i}.{suffix}", blocks[i % source_layers, suffix]) for suffix in suffixes]
    tensors += [(t.name, t) for t in tail]
    entries = [
        (name, t.data.shape, t.data.dtype, t.tensor_type, lambda t=t: t.data) for name, t in tensors
    ]
    _write_gguf(target, reader, overrides={block_key: layers}, tensors=entries)
    return target


@dataclass(frozen=True)
class LlamaShape:
    """The dimensions of a Llama-architecture model (Mistral 7B by default)."""

    hidden: int = 4096
    intermediate: int = 14336
    layers: int = 32
    heads: int = 32
    kv_heads: int = 8
    head_dim: int = 128


MISTRAL_7B = LlamaShape()
_Q4_1_BLOCK = 32  # weights per Q4_1 block: float16 d, float16 m, 16 bytes of nibbles


def _random_q4_1(rows: int, columns: int, generator: np.random.Generator) -> np.ndarray:
    """A ``rows x columns`` Q4_1 matrix as raw bytes: random nibbles and per-block ``d``, ``m``.

    ``d`` (0.005 to 0.02) and ``m`` (-6 to -10 times ``d``) differ from block to block as in a real
    GGUF: identical scales would let coremltools store one copy for every layer, and the measured
    memory would miss the ~0.9 GB a 7B's per-block scales and offsets take.
    """
    if columns % _Q4_1_BLOCK:
        raise SystemExit(f"--gguf-7b: expected a width divisible by 32, found {columns}")
    count = columns // _Q4_1_BLOCK
    blocks = np.empty((rows, count, 20), np.uint8)
    d = generator.uniform(0.005, 0.02, (rows, count)).astype(np.float16)
    m = (-d.astype(np.float32) * generator.uniform(6.0, 10.0, (rows, count))).astype(np.float16)
    blocks[..., 0:2] = d[..., None].view(np.uint8)
    blocks[..., 2:4] = m[..., None].view(np.uint8)
    nibbles = np.frombuffer(generator.bytes(rows * columns // 2), np.uint8)
    blocks[..., 4:] = nibbles.reshape(rows, count, 16)
    return blocks.reshape(rows, -1)


def wide_gguf(source: Path, *, shape: LlamaShape, cache: Path = BENCH_CACHE) -> Path:
    """A Llama GGUF of ``shape`` with ``source``'s metadata and tokenizer (cached by shape).

    Every 2-D weight is Q4_1 of random bytes (no floats are quantized, so writing 4 GB is quick),
    every norm float32 ones; the vocabulary and the tensor names stay ``source``'s. It answers how
    the exact import's peak compares to the file's size at a real model's width, where the weights
    outweigh the per-layer graph.
    """
    from gguf import GGMLQuantizationType, GGUFReader, Keys

    s = shape
    target = cache / (
        f"{source.stem}.{s.hidden}x{s.intermediate}x{s.layers}"
        f"-{s.heads}h{s.kv_heads}kv{s.head_dim}.gguf"
    )
    if _is_fresh(target, source):
        return target
    reader = GGUFReader(str(source))
    option = "--gguf-7b"
    overrides = {
        _llama_key(reader, Keys.LLM.EMBEDDING_LENGTH, option, source): s.hidden,
        _llama_key(reader, Keys.LLM.FEED_FORWARD_LENGTH, option, source): s.intermediate,
        _llama_key(reader, Keys.LLM.BLOCK_COUNT, option, source): s.layers,
        _llama_key(reader, Keys.Attention.HEAD_COUNT, option, source): s.heads,
        _llama_key(reader, Keys.Attention.HEAD_COUNT_KV, option, source): s.kv_heads,
        _llama_key(reader, Keys.Rope.DIMENSION_COUNT, option, source): s.head_dim,
    }
    head, blocks, tail = _split_blocks(reader)
    embedding = next((t for t in head if t.name == "token_embd.weight"), None)
    if embedding is None:
        raise SystemExit(f"{option}: expected token_embd.weight in {source}, found none")
    vocab = int(embedding.shape[-1])  # GGUF shapes run innermost first: (hidden, vocab)
    q, kv = s.heads * s.head_dim, s.kv_heads * s.head_dim
    matrices = {  # name or block suffix -> (rows, columns)
        "token_embd.weight": (vocab, s.hidden),
        "output.weight": (vocab, s.hidden),
        "attn_q.weight": (q, s.hidden),
        "attn_k.weight": (kv, s.hidden),
        "attn_v.weight": (kv, s.hidden),
        "attn_output.weight": (s.hidden, q),
        "ffn_gate.weight": (s.intermediate, s.hidden),
        "ffn_up.weight": (s.intermediate, s.hidden),
        "ffn_down.weight": (s.hidden, s.intermediate),
    }
    generator = np.random.default_rng(0)
    suffixes = [suffix for index, suffix in blocks if index == 0]
    names = [t.name for t in head]
    names += [f"blk.{i}.{suffix}" for i in range(s.layers) for suffix in suffixes]
    names += [t.name for t in tail]
    entries = []
    for name in names:
        key = _BLOCK_TENSOR.fullmatch(name)[2] if name.startswith("blk.") else name
        if key in matrices:
            rows, columns = matrices[key]
            entries.append((name, (rows, columns // _Q4_1_BLOCK * 20), np.uint8,
                            GGMLQuantizationType.Q4_1,
                            lambda r=rows, c=columns: _random_q4_1(r, c, generator)))  # fmt: skip
        elif key.endswith("norm.weight"):
            entries.append((name, (s.hidden,), np.float32, GGMLQuantizationType.F32,
                            lambda: np.ones(s.hidden, np.float32)))  # fmt: skip
        else:
            raise SystemExit(f"{option}: expected Llama tensors in {source}, found {name}")
    _write_gguf(target, reader, overrides=overrides, tensors=entries)
    return target


def _anonymous_rss(pid: int) -> int:
    """RssAnon: memory the process owns (not file pages it maps, which the OS can drop)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def child_peak_rss(
    command: list[str], *, stage_peaks: dict[str, int] | None = None
) -> tuple[int, int, float, int]:
    """Run ``command``, sampling it every 20 ms: (peak RSS, peak anonymous RSS, seconds, exit code).

    With ``stage_peaks`` the command must print ``--json-progress`` lines: each sample's RSS is
    also credited to the stage of the last progress event read, and the peak per stage (in the
    order the stages came) is filled in.
    """
    import psutil

    started = time.monotonic()
    stage = ["startup"]  # the interpreter importing, before the first progress event

    def follow_stages(lines: object) -> None:
        for line in lines:
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict) and event.get("event") == "progress":
                    stage[0] = event.get("stage") or stage[0]

    # stderr goes to a file, not a pipe: the progress bar writes more than a pipe holds, and an
    # unread pipe would stall the child. The progress lines' pipe is read by its own thread.
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8") as log:
        stdout = subprocess.DEVNULL if stage_peaks is None else subprocess.PIPE
        process = subprocess.Popen(command, stdout=stdout, stderr=log, text=True)
        reader = None
        if stage_peaks is not None:
            reader = threading.Thread(target=follow_stages, args=(process.stdout,), daemon=True)
            reader.start()
        watched = psutil.Process(process.pid)
        peak = peak_anonymous = 0
        while process.poll() is None:
            with contextlib.suppress(psutil.Error):
                rss = watched.memory_info().rss
                peak = max(peak, rss)
                if stage_peaks is not None:
                    stage_peaks[stage[0]] = max(stage_peaks.get(stage[0], 0), rss)
            peak_anonymous = max(peak_anonymous, _anonymous_rss(process.pid))
            time.sleep(0.02)
        seconds = time.monotonic() - started
        if reader is not None:
            reader.join()
        log.seek(0)
        stderr = log.read()
    if process.returncode != 0:
        sys.stderr.write(stderr[-2000:])
    return peak, peak_anonymous, seconds, process.returncode


def gguf_case(gguf: Path, *, quantize: str, context: int) -> int:
    """Peak RSS above the import baseline, as a multiple of the GGUF file's size (goal ≤ 1.5×)."""
    gguf_bytes = gguf.stat().st_size
    with tempfile.TemporaryDirectory(prefix="convert-memory-") as scratch:
        imports = [
            sys.executable,
            "-c",
            "import torch, transformers, coremltools, gguf, converter.convert",
        ]
        baseline, baseline_anonymous, _, _ = child_peak_rss(imports)
        command = [
            sys.executable, "-m", "converter.cli", str(gguf), "-o", str(Path(scratch) / "out"),
            "--context-length", str(context), "--quantize", quantize, "--json-progress",
        ]  # fmt: skip
        stage_peaks: dict[str, int] = {}
        peak, peak_anonymous, seconds, code = child_peak_rss(command, stage_peaks=stage_peaks)
    above = (peak - baseline) / gguf_bytes
    report(
        "convert_memory",
        {"peak_above_baseline_over_gguf": at_most(above, 1.5)},
        {
            "source": gguf.name,
            "context_length": context,
            "quantize": quantize,
            "gguf_bytes": gguf_bytes,
            "peak_rss_bytes": peak,
            "peak_anonymous_rss_bytes": peak_anonymous,
            "import_baseline_rss_bytes": baseline,
            "import_baseline_anonymous_rss_bytes": baseline_anonymous,
            "peak_anonymous_above_baseline_over_gguf": round(
                (peak_anonymous - baseline_anonymous) / gguf_bytes, 3
            ),
            "peak_rss_above_baseline_by_stage_bytes": {
                name: value - baseline for name, value in stage_peaks.items()
            },
            "seconds": round(seconds, 1),
            "exit_code": code,
        },
    )
    return 0 if code == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--context-length", type=int, default=2048)
    parser.add_argument("--quantize", default=None, help="default int4; auto for --gguf")
    parser.add_argument("--gguf", type=Path, default=None, help="convert this GGUF file instead")
    parser.add_argument(
        "--gguf-layers",
        type=int,
        default=None,
        metavar="N",
        help="convert --gguf deepened to N blocks (its own repeated; cached under .cache/bench)",
    )
    parser.add_argument(
        "--gguf-7b",
        action="store_true",
        help="convert --gguf widened to Mistral 7B's shape, random Q4_1 (cached in .cache/bench)",
    )
    args = parser.parse_args()
    if args.gguf_layers is not None and (args.gguf is None or args.gguf_layers < 1):
        parser.error(f"--gguf-layers expects --gguf FILE and N >= 1, found N={args.gguf_layers}")
    if args.gguf_7b and (args.gguf is None or args.gguf_layers is not None):
        parser.error("--gguf-7b expects --gguf FILE and no --gguf-layers, found otherwise")
    if args.gguf is not None:
        gguf = args.gguf
        if args.gguf_layers is not None:
            gguf = deeper_gguf(gguf, layers=args.gguf_layers)
        if args.gguf_7b:
            gguf = wide_gguf(gguf, shape=MISTRAL_7B)
        return gguf_case(gguf, quantize=args.quantize or "auto", context=args.context_length)
    args.quantize = args.quantize or "int4"
    with tempfile.TemporaryDirectory(prefix="convert-memory-") as scratch:
        source = Path(scratch) / "synthetic-mistral"
        source.mkdir()
        weight_bytes = write_synthetic_model(source, layers=args.layers, hidden=args.hidden)
        imports = [
            sys.executable,
            "-c",
            "import torch, transformers, coremltools, converter.convert",
        ]
        baseline, baseline_anonymous, _, _ = child_peak_rss(imports)
        command = [
            sys.executable, "-m", "converter.cli", str(source), "-o", str(Path(scratch) / "out"),
            "--context-length", str(args.context_length), "--quantize", args.quantize,
        ]  # fmt: skip
        peak, peak_anonymous, seconds, code = child_peak_rss(command)
        package_bytes = sum(
            p.stat().st_size for p in (Path(scratch) / "out").rglob("*") if p.is_file()
        )
    report(
        "convert_memory",
        {"peak_rss_over_fp16_weights": at_most(peak / weight_bytes, 1.5)},
        {
            "layers": args.layers,
            "hidden": args.hidden,
            "quantize": args.quantize,
            "fp16_weight_bytes": weight_bytes,
            "peak_rss_bytes": peak,
            "peak_anonymous_rss_bytes": peak_anonymous,
            "peak_anonymous_rss_over_fp16_weights": round(peak_anonymous / weight_bytes, 3),
            "import_baseline_rss_bytes": baseline,
            "import_baseline_anonymous_rss_bytes": baseline_anonymous,
            "peak_above_baseline_over_fp16_weights": round((peak - baseline) / weight_bytes, 3),
            "seconds": round(seconds, 1),
            "package_bytes": package_bytes,
            "exit_code": code,
        },
    )
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
