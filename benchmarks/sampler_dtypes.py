"""Per-token sampler time with float16 and with float32 logits (vocab 32768).

The reference runtime hands the sampler float16 logits; coremltools hands it float32 (it converts
every float16 output). Neither may take a slow path: greedy, top-p (the binned draw) and top-k with
a repetition penalty, median over 400 tokens each, random logits of a peaked spread.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # make bench runs files

from benchmarks._goals import at_most, report
from engine.generation.sampling import make_sampler
from engine.messages import GenerationConfig

VOCAB = 32768
# The engine's whole overhead per token (benchmarks/engine_overhead.py) is to stay within 0.3 ms;
# the sampler is one part of it.
GOAL_MS = 0.3
CONFIGS = {
    "greedy": GenerationConfig(temperature=0.0),
    "top_p_0.9": GenerationConfig(temperature=0.8, top_p=0.9, seed=0),
    "top_k_40_penalty_1.1": GenerationConfig(
        temperature=0.8, top_k=40, repetition_penalty=1.1, seed=0
    ),
}


def per_token_ms(config: GenerationConfig, logits: np.ndarray, *, tokens: int = 400) -> float:
    sampler = make_sampler(config)
    history = list(range(64))
    view = logits[0, -1]  # as the session hands it over: a view of predict's output
    for _ in range(20):
        sampler(view, history)
    times = []
    for _ in range(tokens):
        started = time.perf_counter()
        sampler(view, history)
        times.append(time.perf_counter() - started)
    return round(float(np.median(times)) * 1000, 4)


def main() -> int:
    rng = np.random.default_rng(0)
    logits = (rng.standard_normal((1, 1, VOCAB)) * 3).astype(np.float32)
    figures = {
        f"{name}_{dtype.__name__}_ms_per_token": at_most(
            per_token_ms(config, logits.astype(dtype)), GOAL_MS, "ms"
        )
        for name, config in CONFIGS.items()
        for dtype in (np.float16, np.float32)
    }
    report("sampler_dtypes", figures, {"vocab": VOCAB})
    return 0


if __name__ == "__main__":
    sys.exit(main())
