"""Reference runtime decode speed on SmolLM2-135M-Instruct int4 vs transformers eager, same run.

Both decode greedily from the same chat prompt, one token at a time: ours with its kv-cache state,
transformers (float32, the GGUF loaded with ``gguf_file=``) with its DynamicCache. Goal: ours ≥ 0.5×.
Also reports the reference runtime's load time and the process RSS after loading.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from benchmarks._models import demo_model_folder
from engine import package_metadata as meta
from engine.messages import ChatMessage
from engine.runtime import load_model
from engine.session import causal_mask
from engine.tokenizer import ChatTokenizer

TOKENS = 48


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


def transformers_eager(prompt: list[int]) -> tuple[float, list[int]]:
    import torch
    from transformers import AutoModelForCausalLM, DynamicCache

    from converter.demo_model import fetch_demo_gguf

    gguf = fetch_demo_gguf()
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    cache = DynamicCache()
    tokens = []
    with torch.no_grad():
        out = model(torch.tensor([prompt]), past_key_values=cache, use_cache=True)
        started = time.perf_counter()
        for _ in range(TOKENS):
            token = int(out.logits[0, -1].argmax())
            tokens.append(token)
            out = model(
                torch.tensor([[token]]), past_key_values=out.past_key_values, use_cache=True
            )
    return TOKENS / (time.perf_counter() - started), tokens


def main() -> int:
    import psutil

    folder = demo_model_folder()
    tokenizer = ChatTokenizer.from_folder(folder)
    prompt = tokenizer.encode_chat([ChatMessage("user", "Tell me about the history of Paris.")])
    ours_tps, load_seconds, our_tokens = ours(folder, prompt)
    rss = psutil.Process().memory_info().rss
    theirs_tps, their_tokens = transformers_eager(prompt)
    agree = sum(a == b for a, b in zip(our_tokens, their_tokens, strict=True)) / TOKENS
    print(
        json.dumps(
            {
                "benchmark": "reference_decode",
                "model": "SmolLM2-135M-Instruct int4 (ours) / GGUF float32 (transformers)",
                "reference_tokens_per_second": round(ours_tps, 2),
                "transformers_eager_tokens_per_second": round(theirs_tps, 2),
                "ratio": round(ours_tps / theirs_tps, 3),
                "goal_ratio": 0.5,
                "reference_load_seconds": round(load_seconds, 2),
                "rss_after_reference_load_bytes": rss,
                "greedy_token_agreement": round(agree, 3),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
