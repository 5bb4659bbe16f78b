"""The cost of constrained decoding per token, at vocab 49152 (SmolLM2) and 32768 (Mistral v3).

Goal: at most 0.5 ms median on the sampling critical path. Real tokenizers, a JSON schema like a
tool call's arguments (an enum, a bounded integer, a boolean, a free string, an array), random
peaked logits (a model that knows nothing: its free strings are long, the hard case for the
lexer). Per token, the time inside the grammar's logits processor (wait for the mask, unpack it,
-inf the refused tokens) is measured, with the mask computed inline and with it computed on the
mask thread while the "model" runs (a 3 ms sleep standing in for a decode step, which releases
the GIL as llguidance's mask computation does). Medians within one run; prints one JSON object.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # make bench runs files

from benchmarks._models import REPO, _Folders, _unwrap
from engine.generation.grammar import GrammarConstraint, grammar_tokenizer, json_schema_grammar
from engine.generation.sampling import make_sampler
from engine.messages import GenerationConfig
from engine.text.tokenizer import ChatTokenizer

TOKENS = 400
MODEL_STEP_SECONDS = 0.003
SCHEMA = {
    "type": "object",
    "properties": {
        "location": {"type": "string", "maxLength": 40},
        "unit": {"enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 14},
        "hourly": {"type": "boolean"},
        "fields": {"type": "array", "items": {"enum": ["rain", "wind", "sun"]}, "maxItems": 3},
    },
    "required": ["location", "unit", "days", "hourly", "fields"],
    "additionalProperties": False,
}


def _tokenizers(scratch: Path) -> dict[int, ChatTokenizer]:
    from converter.demo_model import fetch_demo_gguf
    from tests import conftest

    folders = _Folders(scratch)
    smollm2 = _unwrap(conftest.smollm2_tokenizer_dir)(fetch_demo_gguf(REPO / ".cache" / "tests"))
    mistral = _unwrap(conftest.mistral_v3_tokenizer_dir)(folders)
    found = {}
    for folder in (smollm2, mistral):
        tokenizer = ChatTokenizer.from_folder(folder, {})
        found[tokenizer.vocab_size] = tokenizer
    return found


def _run(tokenizer: ChatTokenizer, *, overlap: bool) -> dict[str, float]:
    llg_tokenizer = grammar_tokenizer(
        tokenizer.tokenizer.to_str(),
        vocab_size=tokenizer.vocab_size,
        eos_ids=tokenizer.eos_token_ids,
    )
    grammar = json_schema_grammar(json.dumps(SCHEMA))
    rng = np.random.default_rng(0)
    config = GenerationConfig(temperature=0.8, seed=0)
    spent: list[float] = []
    answers = 0
    while len(spent) < TOKENS:
        answers += 1
        constraint = GrammarConstraint(llg_tokenizer, grammar, overlap=overlap)

        def timed(logits: np.ndarray, history: list[int], step: GrammarConstraint = constraint):
            started = time.perf_counter()
            result = step(logits, history)
            spent.append(time.perf_counter() - started)
            return result

        sampler = make_sampler(config, processors=[timed])
        history: list[int] = []
        while not constraint.finished and len(history) < 200 and len(spent) < TOKENS:
            logits = (rng.standard_normal(tokenizer.vocab_size) * 3).astype(np.float16)
            token = sampler(logits, history)
            constraint.accept(token)
            history.append(token)
            time.sleep(MODEL_STEP_SECONDS)  # the model runs the token meanwhile
        constraint.close()
    ordered = sorted(spent)
    return {
        "median_ms": round(statistics.median(spent) * 1e3, 4),
        "p90_ms": round(ordered[int(len(ordered) * 0.9)] * 1e3, 4),
        "answers": answers,
    }


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-grammar-") as scratch:
        tokenizers = _tokenizers(Path(scratch))
        report: dict[str, object] = {"tokens": TOKENS, "goal_median_ms": 0.5}
        for vocab, tokenizer in sorted(tokenizers.items(), reverse=True):
            inline = _run(tokenizer, overlap=False)
            overlapped = _run(tokenizer, overlap=True)
            report[f"vocab_{vocab}"] = {
                "inline": inline,
                "overlapped": overlapped,
                "meets_goal": overlapped["median_ms"] <= 0.5,
            }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
