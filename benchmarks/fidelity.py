"""Fidelity of a package to its source model: teacher-forced top-1 agreement, mean KL, max logit gap.

Three sources, each package measured against ITS OWN source in transformers (float32):

- ``gguf``: the demo GGUF, or ``--gguf FILE`` (Gemma 3 270M: tests/conftest.py's
  ``gemma3_270m_gguf``) (``gguf_file=``: transformers dequantizes it with gguf's own code, so it
  runs the weights llama.cpp runs); recipes exact GGUF import, ``native`` (the GGUF's blocks in
  coremltools' own forms: ``--gguf-form native``), int4 re-quantized, int8. A base model without
  a chat template is measured on the text alone.
- ``f32``: the same model dequantized by transformers and saved as float32 safetensors. Its
  weights lie exactly on a Q4_1 grid of block 32, so an asymmetric recipe can find that grid again
  almost exactly: its figures flatter the asymmetric recipes.
- ``f32-dither``: the honest full-precision stand-in: the same weights with seeded uniform noise of
  ± half each block's Q4_1 step on every Q4_1 weight (the layers' linears), so they lie on no
  4-bit grid.

The full-precision recipes: coremltools' ``linear-symmetric`` int4, the searched int4 recipes
(``searched``: uint4 + zero point, ``searched-symmetric``: int4), each also with ``+int8emb``
(embedding and lm_head at 8 bits). Each package runs on the reference runtime over the same tokens
in one call each: a fixed English text of about 300 tokens and a chat-formatted exchange. KL is
KL(source || package) per position, in nats. Prints one JSON object with each package's bytes and
its size and mean KL relative to the same source's ``linear-symmetric`` package. Sources and
packages are made once into ``.cache/bench`` (delete a folder there to remake it).

    python benchmarks/fidelity.py [--sources gguf,f32,f32-dither] [--recipes exact,int4,int8]
        [--fp-recipes linear-symmetric,searched,...] [--gguf FILE]

``--recipes exact,native`` compares the two forms a GGUF can be imported in.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # make bench runs files

from benchmarks._goals import Figure, at_least, at_most, report
from benchmarks._models import BENCH_CACHE, DEMO_NAME, REPO
from engine.diagnostics.fidelity import PROSE as TEXT  # the doctor compares on the same text
from engine.diagnostics.fidelity import compare

CONTEXT = 512
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


FP_RECIPES = (
    "linear-symmetric",
    "linear-symmetric+int8emb",
    "searched-symmetric",
    "searched-symmetric+int8emb",
    "searched",
    "searched+int8emb",
)
BASELINE = "linear-symmetric"
DITHER_SEED = 15


def package_folder(source: Path, recipe: str, *, source_name: str = "gguf") -> Path:
    """The package of ``recipe`` (a --quantize value on the GGUF, an int4 recipe with an optional
    ``+int8emb`` on a full-precision source), converted once."""
    prefix = DEMO_NAME if source_name == "gguf" else f"{DEMO_NAME}-{source_name}"
    folder = BENCH_CACHE / f"{prefix}-{recipe}-ctx{CONTEXT}"
    if not folder.is_dir():
        from converter.convert import convert
        from converter.options import ConversionRequest

        if source_name == "gguf" and recipe == "native":
            options = {"quantize": "exact", "gguf_form": "native"}
        elif source_name == "gguf":
            options = {"quantize": recipe}
        else:
            int4_recipe, _, extra = recipe.partition("+")
            options = {
                "quantize": "int4",
                "int4_recipe": int4_recipe,
                "int8_embeddings": extra == "int8emb",
            }
        convert(
            ConversionRequest(
                str(source), folder, context_length=CONTEXT, name=DEMO_NAME, **options
            )
        )
    return folder


def full_precision_source(gguf: Path, *, dither: bool) -> Path:
    """The GGUF dequantized by transformers, saved as float32 safetensors (with its tokenizer);
    ``dither``: plus uniform noise of ± half the block's Q4_1 step on each layer linear's weight.

    A Q4_1 block's step is ``(max - min) / 15`` of its 32 values (llama.cpp maps the block's min
    to 0 and its max to 15), so it is read off the dequantized weights themselves.
    """
    folder = BENCH_CACHE / f"{DEMO_NAME}-f32{'-dither' if dither else ''}"
    if folder.is_dir():
        return folder
    import shutil

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    # Dequantized already: a plain float32 model (transformers refuses to save a "gguf" one).
    model.hf_quantizer = None
    del model.config.quantization_config
    if dither:
        rng = np.random.default_rng(DITHER_SEED)
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if not (name.startswith("model.layers.") and parameter.ndim == 2):
                    continue
                blocks = parameter.detach().numpy().reshape(parameter.shape[0], -1, 32)
                step = (blocks.max(axis=-1) - blocks.min(axis=-1))[..., None] / 15
                noise = rng.uniform(-0.5, 0.5, size=blocks.shape).astype(np.float32) * step
                parameter.copy_(torch.from_numpy((blocks + noise).reshape(parameter.shape)))
    model.save_pretrained(str(partial), safe_serialization=True)
    AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(
        str(partial)
    )
    del model
    partial.rename(folder)
    return folder


def token_sets(gguf: Path) -> dict[str, list[int]]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if not tokenizer.chat_template:  # a base model (Gemma 3 270M): the text alone
        return {"text": tokenizer(TEXT)["input_ids"]}
    chat = tokenizer.apply_chat_template(CHAT, tokenize=True, add_generation_prompt=False)
    if isinstance(chat, dict) or hasattr(chat, "input_ids"):
        chat = chat["input_ids"]
    return {"text": tokenizer(TEXT)["input_ids"], "chat": list(chat)}


def source_logits(source: Path, sets: dict[str, list[int]]) -> dict[str, np.ndarray]:
    """The source's logits in transformers, float32 (a .gguf file or a safetensors folder)."""
    import torch
    from transformers import AutoModelForCausalLM

    if source.suffix == ".gguf":
        model = AutoModelForCausalLM.from_pretrained(
            str(source.parent), gguf_file=source.name, dtype=torch.float32
        )
    else:
        model = AutoModelForCausalLM.from_pretrained(str(source), dtype=torch.float32)
    with torch.no_grad():
        return {
            name: model(torch.tensor([tokens])).logits[0].numpy() for name, tokens in sets.items()
        }


def package_logits(folder: Path, sets: dict[str, list[int]]) -> dict[str, np.ndarray]:
    from engine.generation.session import causal_mask
    from engine.package import metadata as meta
    from engine.runtime import load_model

    model = load_model(folder)
    found = {}
    for name, tokens in sets.items():
        inputs = {
            meta.INPUT_IDS: np.array([tokens], np.int32),
            meta.CAUSAL_MASK: causal_mask(0, len(tokens)),
        }
        found[name] = model.predict(inputs, model.make_state())[meta.LOGITS][0].astype(np.float32)
    return found


def package_bytes(folder: Path) -> int:
    (package,) = folder.glob("*.mlpackage")
    return sum(path.stat().st_size for path in package.rglob("*") if path.is_file())


def measure(
    source: Path, recipes: list[str], sets: dict[str, list[int]], *, source_name: str
) -> dict:
    """Every recipe's package against ``source``'s own float32 logits."""
    reference = source_logits(source, sets)
    found: dict = {}
    for recipe in recipes:
        folder = package_folder(source, recipe, source_name=source_name)
        logits = package_logits(folder, sets)
        found[recipe] = {
            "package_bytes": package_bytes(folder),
            **{name: compare(reference[name], logits[name]) for name in sets},
        }
    baseline = found.get(BASELINE)
    for figures in found.values():
        if baseline is not None:
            figures["size_vs_linear_symmetric"] = round(
                figures["package_bytes"] / baseline["package_bytes"], 3
            )
            figures["mean_kl_vs_linear_symmetric"] = {
                name: round(figures[name]["mean_kl"] / baseline[name]["mean_kl"], 3)
                for name in sets
            }
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", default="gguf,f32,f32-dither")
    parser.add_argument("--recipes", default="exact,native,int4,int8", help="on the GGUF source")
    parser.add_argument(
        "--fp-recipes", default=",".join(FP_RECIPES), help="on the full-precision sources"
    )
    parser.add_argument("--gguf", type=Path, default=None)
    args = parser.parse_args()
    from converter.demo_model import fetch_demo_gguf

    gguf = args.gguf or fetch_demo_gguf(REPO / ".cache" / "tests")
    sets = token_sets(gguf)
    details: dict = {"source": gguf.name, "gguf_bytes": gguf.stat().st_size, "sources": {}}
    for source_name in args.sources.split(","):
        if source_name == "gguf":
            found = measure(gguf, args.recipes.split(","), sets, source_name="gguf")
            for figures in found.values():
                figures["size_vs_gguf"] = round(figures["package_bytes"] / details["gguf_bytes"], 3)
        elif source_name in ("f32", "f32-dither"):
            source = full_precision_source(gguf, dither=source_name == "f32-dither")
            found = measure(source, args.fp_recipes.split(","), sets, source_name=source_name)
        else:
            parser.error(f"--sources: expected gguf, f32 or f32-dither, found {source_name!r}")
        details["sources"][source_name] = found
        print(json.dumps({source_name: found}), file=sys.stderr, flush=True)  # partial results
    report("fidelity", goal_figures(details["sources"]), details, indent=2)


def goal_figures(sources: dict) -> dict[str, Figure]:
    """The GGUF's exact import and its default int4 re-quantization on the English text, against
    the goals tests/integration/engine/test_int4_fidelity.py holds int4 to (coremltools' max-abs
    recipe measured mean KL 0.53 and top-1 63% here; the searched recipe 0.30 and 72%)."""
    found = sources.get("gguf", {})
    figures: dict[str, Figure] = {}
    if "exact" in found:
        figures["gguf_exact_text_top1"] = at_least(found["exact"]["text"]["top1_agreement"], 0.99)
    if "int4" in found:
        text = found["int4"]["text"]
        figures["gguf_int4_text_mean_kl"] = at_most(text["mean_kl"], 0.42, "nats")
        figures["gguf_int4_text_top1"] = at_least(text["top1_agreement"], 0.68)
    return figures


if __name__ == "__main__":
    main()
