"""Speed and memory of the searched block quantizer on one Mistral-7B-sized weight.

One 14336×4096 float16 matrix (an MLP weight of Mistral-7B; the model holds about 224 such
matrices' worth of weights), Gaussian values, quantized once per form at block 32. Prints JSON:
seconds per matrix, the projected minutes for a 7B model, and the peak memory NumPy allocated
beyond the input and the output (tracemalloc sees NumPy's buffers).

    python benchmarks/block_quantizer_speed.py [--rows 14336] [--columns 4096]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # make bench runs files

from benchmarks._goals import at_most, report
from converter.quantization.block_quantizer import FORMS, quantize_blocks

MATRICES_7B = 224
GOAL_SECONDS = 1.2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=14336)
    parser.add_argument("--columns", type=int, default=4096)
    args = parser.parse_args()
    weight = (np.random.default_rng(0).standard_normal((args.rows, args.columns)) * 0.02).astype(
        np.float16
    )
    share_of_7b = MATRICES_7B * 14336 * 4096 / (args.rows * args.columns)
    details: dict = {
        "shape": [args.rows, args.columns],
        "block_size": 32,
        "cores": os.cpu_count(),
        "forms": {},
    }
    for form in FORMS:
        tracemalloc.start()
        started = time.perf_counter()
        blocks = quantize_blocks(weight, block_size=32, form=form)
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        output = sum(a.nbytes for a in (blocks.data, blocks.scale, blocks.offset) if a is not None)
        details["forms"][form] = {
            "seconds": round(seconds, 2),
            "projected_7b_minutes": round(seconds * share_of_7b / 60, 1),
            "peak_mb_beyond_output": round((peak - output) / 2**20, 1),
            "output_mb": round(output / 2**20, 1),
        }
        del blocks
    # The goal is for one Mistral-7B MLP weight on an idle 2-core machine, the default form.
    seconds = (
        details["forms"]["asymmetric"]["seconds"] * (14336 * 4096) / (args.rows * args.columns)
    )
    report(
        "block_quantizer_speed",
        {"asymmetric_seconds_per_7b_mlp_weight": at_most(seconds, GOAL_SECONDS, "s")},
        details,
        indent=2,
    )


if __name__ == "__main__":
    main()
