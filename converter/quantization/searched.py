"""The searched int4 recipe on a converted MIL program: every linear/embedding weight const becomes
``constexpr_blockwise_shift_scale`` blocks from ``converter.quantization.block_quantizer``.

The weights are those ``coreml_export.weight_groups`` names (the same ones coremltools' quantizer
gets in the ``linear-symmetric`` recipe), smaller ones first; each float16 weight is freed as soon
as its blocks replace it (``converter.quantization.blockwise_consts``). With ``int8_embeddings`` the embedding
and the lm_head (one const when tied) get 8-bit blocks instead: they are the weights whose error
reaches the logits most directly, and on a 7B model they are about 4% of the weights.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

import numpy as np

from converter.errors import ConversionError
from converter.gguf.blocks import CoreMLBlocks
from converter.quantization.block_quantizer import Form, describe, quantize_blocks
from converter.quantization.blockwise_consts import replace_with_blocks

logger = logging.getLogger(__name__)

FractionReport = Callable[[float, str], None]
# The torch frontend names each weight const after its parameter.
EMBEDDING_SUFFIXES = ("embed_tokens.weight", "lm_head.weight")


def is_embedding(name: str) -> bool:
    """The token embedding or the output projection (by the parameter's name)."""
    return name.endswith(EMBEDDING_SUFFIXES)


def quantize_program(
    program,
    names: list[str],
    *,
    form: Form,
    block_size: int,
    int8_embeddings: bool,
    report: FractionReport,
) -> dict[str, str]:
    """Replace the consts ``names`` by searched blocks; returns the recipe per tensor group for the
    metadata (``{"int4-searched-asymmetric": "210 tensors: uint4 block 32, ..."}``)."""
    groups: Counter[str] = Counter()
    forms: dict[str, str] = {}
    started = time.monotonic()

    def blocks_for(name: str, value: np.ndarray) -> CoreMLBlocks:
        eight = int8_embeddings and is_embedding(name)
        try:
            blocks = quantize_blocks(
                value,
                block_size=block_size,
                form="symmetric" if eight else form,
                bits=8 if eight else 4,
            )
        except ValueError as error:
            raise ConversionError(f"weight {name}: {error}") from error
        groups[blocks.gguf_type] += 1
        forms[blocks.gguf_type] = describe(blocks)
        if eight:
            forms[blocks.gguf_type] += f" ({', '.join(n for n in names if is_embedding(n))})"
        return blocks

    replace_with_blocks(program, names, blocks_for, report=report, what="searched blocks")
    logger.info(
        "searched quantization of %d weights in %.1fs", len(names), time.monotonic() - started
    )
    return {recipe: f"{count} tensors: {forms[recipe]}" for recipe, count in sorted(groups.items())}


def linear_symmetric_recipes(
    names: list[str], *, block_size: int, int8_embeddings: bool
) -> dict[str, str]:
    """The metadata's recipes of coremltools' ``linear_symmetric`` (the ``linear-symmetric``
    recipe): int4 per block, int8 per channel for the embeddings when asked."""
    eight = [name for name in names if int8_embeddings and is_embedding(name)]
    recipes = {
        "int4-linear-symmetric": f"{len(names) - len(eight)} tensors: int4 block {block_size}, "
        "float16 scale (max-abs, coremltools)"
    }
    if eight:
        recipes["int8-linear-symmetric"] = (
            f"{len(eight)} tensors: int8 per output channel, float16 scale ({', '.join(eight)})"
        )
    return recipes


def recipe_form(recipe: str) -> Form:
    """``searched`` → asymmetric (uint4 zero point), ``searched-symmetric`` → symmetric."""
    return "symmetric" if recipe == "searched-symmetric" else "asymmetric"
