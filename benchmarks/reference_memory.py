"""Resident memory of the reference runtime's weights, and its decode speed, on the demo model.

The reference runtime used to dequantize every weight at load and keep linear weights as float32
(8 bytes per int4 value: ~28 GB for a 7B int4 package). Goal: weights held ≤ 1.3× the package's
size, decode no more than 20% slower than that. Prints the package's size, the bytes the loaded
model's steps hold (weights, compressed or not, each counted once), the process RSS added by the
load, and greedy decode tokens/s (median of 3 runs of 24 tokens after the same prompt), for three
budgets of dequantized float32 copies (``COREML_CHAT_REFERENCE_WEIGHT_CACHE_MB``), each in a
process of its own: the default (a quarter of the machine's memory: all of the demo's weights),
0.3× the package (the goal's memory) and 0 (every weight dequantized per use).
"""

from __future__ import annotations

import gc
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # make bench runs files

from benchmarks._goals import at_least, at_most, report
from benchmarks._models import demo_model_folder
from engine.generation.session import causal_mask
from engine.messages import ChatMessage
from engine.package import metadata as meta
from engine.package.model import find_package
from engine.text.tokenizer import ChatTokenizer

TOKENS = 24
RUNS = 3


def decode_tokens_per_second(model, prompt: list[int]) -> float:
    state = model.make_state()
    inputs = {
        meta.INPUT_IDS: np.array([prompt], np.int32),
        meta.CAUSAL_MASK: causal_mask(0, len(prompt)),
    }
    logits = model.predict(inputs, state)[meta.LOGITS]
    length = len(prompt)
    started = time.perf_counter()
    for _ in range(TOKENS):
        token = int(logits[0, -1].argmax())
        inputs = {
            meta.INPUT_IDS: np.array([[token]], np.int32),
            meta.CAUSAL_MASK: causal_mask(length, 1),
        }
        logits = model.predict(inputs, state)[meta.LOGITS]
        length += 1
    return TOKENS / (time.perf_counter() - started)


def main() -> int:
    if sys.argv[1:2] == ["--one"]:
        return measure_one(None if sys.argv[2] == "default" else float(sys.argv[2]))
    import os
    import subprocess

    package = find_package(demo_model_folder())
    package_bytes = sum(p.stat().st_size for p in package.rglob("*") if p.is_file())
    results: dict = {"model": "SmolLM2-135M-Instruct int4"}
    budgets = {"default": "default", "0.3x_package": package_bytes * 0.3 / (1 << 20), "none": 0}
    for label, megabytes in budgets.items():
        output = subprocess.run(
            [sys.executable, __file__, "--one", str(megabytes)],
            capture_output=True,
            text=True,
            check=True,
            env=os.environ.copy(),
        ).stdout
        results[label] = json.loads(output.strip().splitlines()[-1])
    budget, default = results["0.3x_package"], results["default"]
    speed = "decode_tokens_per_second_median"
    figures = {
        "weights_held_over_package_at_0.3x_budget": at_most(
            budget["weights_held_over_package"], 1.3
        ),
        "decode_at_0.3x_budget_over_default": at_least(budget[speed] / default[speed], 0.8),
    }
    report("reference_memory", figures, results)
    return 0


def measure_one(cache_megabytes: float | None) -> int:
    import psutil

    from engine.runtime.reference.runtime import load_reference_model

    folder = demo_model_folder()
    package = find_package(folder)
    package_bytes = sum(p.stat().st_size for p in package.rglob("*") if p.is_file())
    tokenizer = ChatTokenizer.from_folder(folder)
    prompt = tokenizer.encode_chat([ChatMessage("user", "Tell me about the history of Paris.")])
    import coremltools  # noqa: F401  (its import is not the model's memory)

    gc.collect()
    before = psutil.Process().memory_info().rss
    budget = None if cache_megabytes is None else int(cache_megabytes * (1 << 20))
    model = load_reference_model(package, weight_cache_bytes=budget)
    gc.collect()
    after = psutil.Process().memory_info().rss
    speeds = sorted(decode_tokens_per_second(model, prompt) for _ in range(RUNS))
    held = model.held_bytes()  # with the float32 copies made while decoding
    print(
        json.dumps(
            {
                "cache_megabytes": cache_megabytes,
                "package_bytes": package_bytes,
                "weights_held_bytes": held,
                "weights_held_over_package": round(held / package_bytes, 3),
                "rss_added_by_load_bytes": after - before,
                "rss_added_over_package": round((after - before) / package_bytes, 3),
                "rss_added_after_decode_bytes": psutil.Process().memory_info().rss - before,
                "decode_tokens_per_second_median": round(speeds[len(speeds) // 2], 3),
                "decode_tokens_per_second_runs": [round(s, 3) for s in speeds],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
