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

``--gguf-layers N`` first writes (once, cached under ``.cache/bench``) a deeper GGUF derived from
FILE: the same metadata and tokenizer, ``<arch>.block_count`` = N, and ``blk.i`` = FILE's
``blk.(i % layers)`` byte for byte. It answers whether the import's peak above its baseline is a
fixed cost or grows with the weights. For a GGUF the peak is also reported per conversion stage
(the stage named by the last ``--json-progress`` event when the sample was taken).
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
from pathlib import Path

import torch

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


def deeper_gguf(source: Path, *, layers: int, cache: Path = BENCH_CACHE) -> Path:
    """``source`` with ``layers`` transformer blocks, its own blocks repeated (cached by name).

    Tensors are copied as raw bytes from the reader's memory map, one at a time, so writing a large
    file needs little memory. The file appears under its final name only once it is complete.
    """
    from gguf import GGUFReader, GGUFValueType, GGUFWriter, Keys

    target = cache / f"{source.stem}.{layers}-layers.gguf"
    if target.exists() and target.stat().st_mtime >= source.stat().st_mtime:
        return target
    reader = GGUFReader(str(source))
    arch = reader.fields[Keys.General.ARCHITECTURE].contents()
    block_key = Keys.LLM.BLOCK_COUNT.format(arch=arch)
    if block_key not in reader.fields:
        raise SystemExit(f"--gguf-layers: expected {block_key} in {source}, found no such key")
    source_layers = int(reader.fields[block_key].contents())
    blocks: dict[tuple[int, str], object] = {}
    head, tail = [], []  # tensors before and after the blocks, in the source's order
    for tensor in reader.tensors:
        match = _BLOCK_TENSOR.fullmatch(tensor.name)
        if match:
            blocks[int(match[1]), match[2]] = tensor
        else:
            (tail if blocks else head).append(tensor)
    suffixes = [suffix for index, suffix in blocks if index == 0]
    tensors = [(t.name, t) for t in head]
    for i in range(layers):
        tensors += [(f"blk.{i}.{suffix}", blocks[i % source_layers, suffix]) for suffix in suffixes]
    tensors += [(t.name, t) for t in tail]

    cache.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".partial-{os.getpid()}")
    try:
        writer = GGUFWriter(str(partial), arch)
        for field in reader.fields.values():
            if field.name == Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
                continue  # the writer adds these itself
            kind = field.types[0]
            sub_type = field.types[-1] if kind == GGUFValueType.ARRAY else None
            value = layers if field.name == block_key else field.contents()
            writer.add_key_value(field.name, value, kind, sub_type=sub_type)
        for name, tensor in tensors:
            data = tensor.data
            writer.add_tensor_info(name, data.shape, data.dtype, data.nbytes, tensor.tensor_type)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for _, tensor in tensors:
            writer.write_tensor_data(tensor.data, tensor_endianess=reader.endianess)
        writer.close()
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
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
    print(
        json.dumps(
            {
                "benchmark": "convert_memory",
                "source": gguf.name,
                "context_length": context,
                "quantize": quantize,
                "gguf_bytes": gguf_bytes,
                "peak_rss_bytes": peak,
                "peak_anonymous_rss_bytes": peak_anonymous,
                "import_baseline_rss_bytes": baseline,
                "import_baseline_anonymous_rss_bytes": baseline_anonymous,
                "peak_above_baseline_over_gguf": round((peak - baseline) / gguf_bytes, 3),
                "peak_anonymous_above_baseline_over_gguf": round(
                    (peak_anonymous - baseline_anonymous) / gguf_bytes, 3
                ),
                "goal_peak_above_baseline_over_gguf": 1.5,
                "peak_rss_above_baseline_by_stage_bytes": {
                    name: value - baseline for name, value in stage_peaks.items()
                },
                "seconds": round(seconds, 1),
                "exit_code": code,
            }
        )
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
    args = parser.parse_args()
    if args.gguf_layers is not None and (args.gguf is None or args.gguf_layers < 1):
        parser.error(f"--gguf-layers expects --gguf FILE and N >= 1, found N={args.gguf_layers}")
    if args.gguf is not None:
        gguf = args.gguf
        if args.gguf_layers is not None:
            gguf = deeper_gguf(gguf, layers=args.gguf_layers)
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
    print(
        json.dumps(
            {
                "benchmark": "convert_memory",
                "layers": args.layers,
                "hidden": args.hidden,
                "quantize": args.quantize,
                "fp16_weight_bytes": weight_bytes,
                "peak_rss_bytes": peak,
                "peak_rss_over_fp16_weights": round(peak / weight_bytes, 3),
                "peak_anonymous_rss_bytes": peak_anonymous,
                "peak_anonymous_rss_over_fp16_weights": round(peak_anonymous / weight_bytes, 3),
                "import_baseline_rss_bytes": baseline,
                "import_baseline_anonymous_rss_bytes": baseline_anonymous,
                "peak_above_baseline_over_fp16_weights": round((peak - baseline) / weight_bytes, 3),
                "goal_peak_rss_over_fp16_weights": 1.5,
                "seconds": round(seconds, 1),
                "package_bytes": package_bytes,
                "exit_code": code,
            }
        )
    )
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
