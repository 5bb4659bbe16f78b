"""Fidelity of a package to its source model: teacher-forced top-1 agreement, mean KL, max logit gap.

The source is the GGUF in transformers (float32, ``gguf_file=``: transformers dequantizes it with
gguf's own code, so it runs the weights llama.cpp runs). Each recipe's package (exact GGUF import,
int4 re-quantized, int8) runs on the reference runtime over the same tokens in one call each: a fixed
English text of about 300 tokens and a chat-formatted exchange. KL is KL(source || package) per
position, in nats. Prints one JSON object; packages are converted once into ``.cache/bench``.

    python benchmarks/fidelity.py [--recipes exact,int4,int8] [--gguf FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # make bench runs files

from benchmarks._models import BENCH_CACHE, DEMO_NAME, REPO

CONTEXT = 512
TEXT = (
    "The history of the city begins on a small island in the middle of a wide river. Fishermen "
    "and traders settled there more than two thousand years ago, because the water protected them "
    "and the river carried their boats to the sea. Over the centuries the settlement grew beyond "
    "the island, bridges were built, and markets filled the banks on both sides. Kings chose the "
    "city as their seat, and with them came churches, palaces, schools and libraries. Scholars "
    "travelled from distant countries to study there, and printers set up their presses near the "
    "university. In the nineteenth century engineers rebuilt much of the centre: narrow lanes "
    "gave way to broad avenues lined with trees, sewers and fresh water reached every district, "
    "and railway stations connected the capital to the rest of the country. Artists were drawn "
    "by the light and the cafés, and many of the paintings now hanging in the great museums were "
    "made in its studios. Today the city is home to millions of people. Visitors come to walk "
    "along the river, climb the towers, taste the bread and cheese sold in the markets, and sit "
    "for hours in parks where children sail small wooden boats on the ponds. Yet the island "
    "where it all started is still there, and the old cathedral still stands on it, its bells "
    "ringing every hour as they have for more than eight hundred years. Historians say that the "
    "secret of the city has always been its river: it brought food, trade and ideas, and it "
    "taught the people who lived beside it to look outward, toward the rest of the world."
)
CHAT = [
    {"role": "user", "content": "What is the capital of France, and what is it known for?"},
    {
        "role": "assistant",
        "content": "The capital of France is Paris. It is known for the Eiffel Tower, the Louvre "
        "museum, its cafés and its food, and for centuries of art, fashion and science.",
    },
    {"role": "user", "content": "List three primary colors."},
    {"role": "assistant", "content": "Red, yellow and blue are the three primary colors."},
]


def package_folder(gguf: Path, recipe: str) -> Path:
    folder = BENCH_CACHE / f"{DEMO_NAME}-{recipe}-ctx{CONTEXT}"
    if not folder.is_dir():
        from converter.convert import convert
        from converter.options import ConversionRequest

        convert(
            ConversionRequest(
                str(gguf), folder, context_length=CONTEXT, quantize=recipe, name=DEMO_NAME
            )
        )
    return folder


def token_sets(gguf: Path) -> dict[str, list[int]]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    chat = tokenizer.apply_chat_template(CHAT, tokenize=True, add_generation_prompt=False)
    if isinstance(chat, dict) or hasattr(chat, "input_ids"):
        chat = chat["input_ids"]
    return {"text": tokenizer(TEXT)["input_ids"], "chat": list(chat)}


def source_logits(gguf: Path, sets: dict[str, list[int]]) -> dict[str, np.ndarray]:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    with torch.no_grad():
        return {
            name: model(torch.tensor([tokens])).logits[0].numpy() for name, tokens in sets.items()
        }


def package_logits(folder: Path, sets: dict[str, list[int]]) -> dict[str, np.ndarray]:
    from engine import package_metadata as meta
    from engine.runtime import load_model
    from engine.session import causal_mask

    model = load_model(folder)
    found = {}
    for name, tokens in sets.items():
        inputs = {
            meta.INPUT_IDS: np.array([tokens], np.int32),
            meta.CAUSAL_MASK: causal_mask(0, len(tokens)),
        }
        found[name] = model.predict(inputs, model.make_state())[meta.LOGITS][0].astype(np.float32)
    return found


def compare(source: np.ndarray, package: np.ndarray) -> dict[str, float]:
    def log_softmax(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float64) - x.max(axis=-1, keepdims=True)
        return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))

    p, q = log_softmax(source), log_softmax(package)
    kl = (np.exp(p) * (p - q)).sum(axis=-1)
    return {
        "positions": int(source.shape[0]),
        "top1_agreement": round(float((source.argmax(-1) == package.argmax(-1)).mean()), 4),
        "mean_kl": round(float(kl.mean()), 5),
        "max_abs_logit_difference": round(float(np.abs(source - package).max()), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", default="exact,int4,int8")
    parser.add_argument("--gguf", type=Path, default=None)
    args = parser.parse_args()
    from converter.demo_model import fetch_demo_gguf

    gguf = args.gguf or fetch_demo_gguf(REPO / ".cache" / "tests")
    sets = token_sets(gguf)
    reference = source_logits(gguf, sets)
    report: dict = {"source": gguf.name, "gguf_bytes": gguf.stat().st_size, "recipes": {}}
    for recipe in args.recipes.split(","):
        folder = package_folder(gguf, recipe)
        (package,) = folder.glob("*.mlpackage")
        size = sum(path.stat().st_size for path in package.rglob("*") if path.is_file())
        logits = package_logits(folder, sets)
        report["recipes"][recipe] = {
            "package_bytes": size,
            "size_vs_gguf": round(size / report["gguf_bytes"], 3),
            **{name: compare(reference[name], logits[name]) for name in sets},
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
