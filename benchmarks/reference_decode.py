"""Reference runtime decode speed on SmolLM2-135M-Instruct int4 vs transformers eager, same run.

Both decode greedily from the same chat prompt, one token at a time: ours with its kv-cache state,
transformers (float32, the GGUF loaded with ``gguf_file=``) with its DynamicCache. Goal: ours ≥ 0.5×.
Prefill beside it: a prompt of a few hundred tokens fed to ours in the engine's chunks of 64, on one
BLAS thread (the runtime's setting) and on every core, and to transformers in one pass on one
thread. Goal: ours ≥ 0.6× with the same thread count.
Agreement is teacher-forced: transformers' argmax on our greedy sequence (int4 vs the GGUF's weights
costs some agreement; the converter measured 67% for this model). Also reports the reference runtime's load time and the process RSS after loading.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # make bench runs files

from benchmarks._goals import at_least, report
from benchmarks._models import demo_model_folder
from engine.generation.session import CHUNK_SIZE, causal_mask
from engine.messages import ChatMessage
from engine.package import metadata as meta
from engine.runtime import load_model
from engine.runtime.reference.blas import blas_threads_available
from engine.text.tokenizer import ChatTokenizer

TOKENS = 48
# Our decode steps run on one BLAS thread (engine.runtime.reference.blas); torch gets the same, which is
# also its faster setting on a busy 2-core machine (with 2 threads it measured 0.7 tokens/s there).
TORCH_THREADS = 1
# A prompt of a few hundred tokens, fed to ours in the engine's chunks (prefill).
PREFILL_TEXT = " ".join(
    ["Summarize the following notes about lighthouses, keepers, storms and ships."] * 24
)


def ours_prefill(model, prompt: list[int], *, threads: int) -> float:
    """Prompt tokens/s of the reference runtime fed in the engine's chunks (``CHUNK_SIZE``), its
    matrix products on ``threads`` BLAS threads (the runtime's own setting is one)."""
    from engine.runtime.reference import runtime

    state = model.make_state()
    setting, runtime.BLAS_THREADS = runtime.BLAS_THREADS, threads
    try:
        started = time.perf_counter()
        for start in range(0, len(prompt), CHUNK_SIZE):
            chunk = prompt[start : start + CHUNK_SIZE]
            model.predict(
                {
                    meta.INPUT_IDS: np.array([chunk], np.int32),
                    meta.CAUSAL_MASK: causal_mask(start, len(chunk)),
                },
                state,
            )
        return len(prompt) / (time.perf_counter() - started)
    finally:
        runtime.BLAS_THREADS = setting


def ours(folder, prompt: list[int]) -> tuple[float, float, list[int]]:
    started = time.perf_counter()
    model = load_model(folder)
    load_seconds = time.perf_counter() - started
    state = model.make_state()
    logits = model.predict(
        {
            meta.INPUT_IDS: np.array([prompt], np.int32),
            meta.CAUSAL_MASK: causal_mask(0, len(prompt)),
        },
        state,
    )[meta.LOGITS]
    tokens, length = [], len(prompt)
    started = time.perf_counter()
    for _ in range(TOKENS):
        token = int(logits[0, -1].argmax())
        tokens.append(token)
        logits = model.predict(
            {
                meta.INPUT_IDS: np.array([[token]], np.int32),
                meta.CAUSAL_MASK: causal_mask(length, 1),
            },
            state,
        )[meta.LOGITS]
        length += 1
    return TOKENS / (time.perf_counter() - started), load_seconds, tokens


def transformers_eager(
    prompt: list[int], our_tokens: list[int], long_prompt: list[int], *, threads: int
) -> tuple[float, float, int, float]:
    """Transformers' decode speed, how often its argmax agrees with our greedy tokens when fed
    our own sequence (teacher forcing: one divergence does not spoil the rest), and its prompt
    tokens/s on ``long_prompt`` (one forward pass, as transformers processes a prompt)."""
    import torch
    from transformers import AutoModelForCausalLM, DynamicCache

    from converter.demo_model import fetch_demo_gguf

    torch.set_num_threads(threads)
    gguf = fetch_demo_gguf()
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    with torch.no_grad():
        cache = DynamicCache()
        out = model(torch.tensor([prompt]), cache=cache, use_cache=True)
        started = time.perf_counter()
        for _ in range(TOKENS):
            token = int(out.logits[0, -1].argmax())
            out = model(torch.tensor([[token]]), cache=cache, use_cache=True)
        tokens_per_second = TOKENS / (time.perf_counter() - started)
        started = time.perf_counter()
        model(torch.tensor([long_prompt]), cache=DynamicCache(), use_cache=True)
        prefill_tokens_per_second = len(long_prompt) / (time.perf_counter() - started)
        forced = model(torch.tensor([prompt + our_tokens[:-1]])).logits[0, len(prompt) - 1 :]
    agreement = float((forced.argmax(-1).numpy() == np.array(our_tokens)).mean())
    return tokens_per_second, agreement, torch.get_num_threads(), prefill_tokens_per_second


def main() -> int:
    import psutil

    folder = demo_model_folder()
    tokenizer = ChatTokenizer.from_folder(folder)
    prompt = tokenizer.encode_chat([ChatMessage("user", "Tell me about the history of Paris.")])
    long_prompt = tokenizer.encode_chat([ChatMessage("user", PREFILL_TEXT)])
    ours_tps, load_seconds, our_tokens = ours(folder, prompt)
    rss = psutil.Process().memory_info().rss
    model = load_model(folder)
    prefill_one = ours_prefill(model, long_prompt, threads=TORCH_THREADS)
    prefill_all_cores = ours_prefill(model, long_prompt, threads=os.cpu_count() or 1)
    del model
    theirs_tps, agreement, torch_threads, theirs_prefill = transformers_eager(
        prompt, our_tokens, long_prompt, threads=TORCH_THREADS
    )
    report(
        "reference_decode",
        {
            "decode_ratio": at_least(ours_tps / theirs_tps, 0.5),
            "prefill_ratio_same_threads": at_least(prefill_one / theirs_prefill, 0.6),
        },
        {
            "prompt_tokens": len(long_prompt),
            "reference_prefill_tokens_per_second": round(prefill_one, 1),
            "reference_prefill_tokens_per_second_all_cores": round(prefill_all_cores, 1),
            "transformers_eager_prefill_tokens_per_second": round(theirs_prefill, 1),
            "model": "SmolLM2-135M-Instruct int4 (ours) / GGUF float32 (transformers)",
            "reference_tokens_per_second": round(ours_tps, 2),
            "transformers_eager_tokens_per_second": round(theirs_tps, 2),
            "reference_load_seconds": round(load_seconds, 2),
            "rss_after_reference_load_bytes": rss,
            "teacher_forced_top1_agreement": round(agreement, 3),
            "torch_threads": torch_threads,
            "reference_blas_single_thread_decode": blas_threads_available(),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
