"""The coremltools half of a conversion: trace, convert to a stateful ML Program, quantize, describe.

One function per stage (as apple/ml-stable-diffusion's torch2coreml does), so the pipeline in
``converter.convert`` can free each stage's inputs before the next one runs.
"""

from __future__ import annotations

import gc
import json
import logging
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from converter.coremltools_progress import report_coremltools_progress
from converter.errors import ConversionError
from converter.progress import CancelToken
from converter.torch_model import StatefulCausalLM, causal_mask
from engine.package import metadata as meta

logger = logging.getLogger(__name__)

FractionReport = Callable[[float, str], None]


def trace(module: StatefulCausalLM) -> torch.jit.ScriptModule:
    """Trace with two new tokens after three cached ones, so both shapes stay symbolic.

    The example reads and writes only the caches' first five positions: only those are zeroed
    (the rest of a freshly built module's cache is never written, so never made resident).
    """
    module.reset_cache(end=5)
    input_ids = torch.zeros((1, 2), dtype=torch.int32)
    mask = causal_mask(3, 2, dtype=torch.float16)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(module, (input_ids, mask), check_trace=False)
    module.reset_cache(end=5)
    return traced


def to_mil_program(
    traced: torch.jit.ScriptModule,
    module: StatefulCausalLM,
    *,
    report: FractionReport,
    cancel: CancelToken | None,
):
    """The torch frontend and the main pass pipeline: a stateful MIL program, not yet serialized.

    Stopping at the program (instead of a saved ML Program) lets the quantizer work on the weights
    while they are still the torch tensors' own memory: no serialized copy is re-read.
    """
    import coremltools as ct

    spec = module.spec
    context = module.context_length
    query_length = ct.RangeDim(lower_bound=1, upper_bound=context, default=1)
    end_length = ct.RangeDim(lower_bound=1, upper_bound=context, default=1)
    cache_shape = tuple(module.keyCache.shape)
    inputs = [
        ct.TensorType(name=meta.INPUT_IDS, shape=(1, query_length), dtype=np.int32),
        ct.TensorType(
            name=meta.CAUSAL_MASK, shape=(1, 1, query_length, end_length), dtype=np.float16
        ),
    ]
    states = [
        ct.StateType(wrapped_type=ct.TensorType(shape=cache_shape, dtype=np.float16), name=name)
        for name in (meta.KEY_CACHE, meta.VALUE_CACHE)
    ]
    outputs = [ct.TensorType(name=meta.LOGITS, dtype=np.float16)]
    logger.info(
        "converting %s: %d layers, vocab %d, context %d",
        spec.architecture,
        spec.num_layers,
        spec.vocab_size,
        context,
    )
    # Bars: the torch frontend's op loop, then the frontend and main pass pipelines.
    with (
        report_coremltools_progress(report, cancel=cancel, expected_bars=3),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        program = ct.convert(
            traced,
            inputs=inputs,
            outputs=outputs,
            states=states,
            minimum_deployment_target=ct.target.iOS18,
            compute_precision=ct.precision.FLOAT16,
            convert_to="milinternal",
        )
    return program


def weight_groups(program, *, last: int = 2) -> list[list[str]]:
    """Names of the weight constants of linear and gather ops: all but the ``last`` largest, then
    those largest."""
    sizes: dict[str, int] = {}
    for function in program.functions.values():
        for op in function.operations:
            source = {"linear": "weight", "gather": "x"}.get(op.op_type)
            var = op.inputs.get(source) if source else None
            if var is None or var.op is None or var.op.op_type != "const" or var.val is None:
                continue
            if np.size(var.val) > 2048:  # coremltools' own threshold: smaller ones stay float16
                sizes[var.op.name] = int(np.size(var.val))
    ordered = sorted(sizes, key=sizes.__getitem__)
    groups = [ordered[:-last], ordered[-last:]]
    return [group for group in groups if group]


def check_quantized(program, *, expected: int, mode: str) -> None:
    """Every weight meant to be quantized is: coremltools only warns when it skips one (a block
    size that does not divide it), which would label a float16 package int4."""
    left = [name for group in weight_groups(program) for name in group]
    constexpr = sum(
        op.op_type.startswith("constexpr_")
        for function in program.functions.values()
        for op in function.operations
    )
    if left or constexpr < expected:
        raise ConversionError(
            f"{mode} quantization left {len(left)} of {expected} weights in float16 "
            f"({constexpr} quantized; first left: {left[0] if left else 'unknown'})"
        )


def compress_and_build(
    program,
    *,
    mode: str,
    block_size: int,
    report: FractionReport,
    cancel: CancelToken | None,
    int4_recipe: str = "linear-symmetric",
    int8_embeddings: bool = False,
) -> tuple[Any, dict[str, str]]:
    """int4 per-block or int8 per-channel weights (``none`` keeps float16), then the ML Program
    backend: returns an MLModel whose weights are already in a temporary package, and the recipe
    per tensor group for the metadata (empty for ``none``).

    int4 is coremltools' ``linear_symmetric`` (``int4_recipe="linear-symmetric"``) or our searched
    blocks (``searched``, ``searched-symmetric``: ``converter.quantization.searched``)."""
    import coremltools as ct

    from converter.quantization import searched as searched_quantization

    if mode not in ("int4", "int8", "none"):
        raise ValueError(f"quantize must be int4, int8 or none here, not {mode!r}")
    recipes: dict[str, str] = {}
    with (
        report_coremltools_progress(report, cancel=cancel, expected_bars=3),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        # Only the weights of linear layers and the embedding (the rotary tables are constants
        # too; quantizing them would cost accuracy for nothing), the largest ones last: each
        # float16 weight is freed as soon as it is quantized, so the big temporaries of the
        # embedding and lm_head come when most memory is free again.
        groups = weight_groups(program)
        names = [name for group in groups for name in group]
        if mode == "int4" and int4_recipe != "linear-symmetric":
            recipes = searched_quantization.quantize_program(
                program,
                names,
                form=searched_quantization.recipe_form(int4_recipe),
                block_size=block_size,
                int8_embeddings=int8_embeddings,
                report=report,
            )
            check_quantized(program, expected=len(names), mode=mode)
        elif mode != "none":
            int4_config = ct.optimize.coreml.OpLinearQuantizerConfig(
                mode="linear_symmetric",
                dtype="int4",
                granularity="per_block",
                block_size=block_size,
            )
            int8_config = ct.optimize.coreml.OpLinearQuantizerConfig(
                mode="linear_symmetric", dtype="int8", granularity="per_channel"
            )
            for group in groups:
                configs = {
                    name: int8_config
                    if mode == "int8"
                    or (int8_embeddings and searched_quantization.is_embedding(name))
                    else int4_config
                    for name in group
                }
                _linear_quantize(program, configs)
            check_quantized(program, expected=len(names), mode=mode)
            if mode == "int4":
                recipes = searched_quantization.linear_symmetric_recipes(
                    names, block_size=block_size, int8_embeddings=int8_embeddings
                )
        mlmodel = ct.convert(
            program,
            convert_to="mlprogram",
            minimum_deployment_target=ct.target.iOS18,
            compute_precision=ct.precision.FLOAT16,
            skip_model_load=True,
        )
    # The MLModel keeps the whole MIL program alive otherwise; its package on disk is enough.
    mlmodel._mil_program = None
    gc.collect()
    return mlmodel, recipes


def _linear_quantize(program, configs: dict[str, Any]) -> None:
    """coremltools' ``linear_quantize_weights`` pass on the consts named in ``configs``."""
    import coremltools as ct
    from coremltools.converters.mil.mil.passes.graph_pass import PassOption
    from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY

    # The torch frontend marks every op with its torch module; ops the quantizer adds have none,
    # which the next pipeline's validation would refuse.
    for function in program.functions.values():
        function._essential_scope_sources = []
    quantizer = PASS_REGISTRY["compression::linear_quantize_weights"]
    config = ct.optimize.coreml.OptimizationConfig(op_name_configs=configs)
    quantizer.set_options([PassOption("config", config), PassOption("joint_compression", False)])
    quantizer.apply(program)
    gc.collect()


INPUT_DESCRIPTIONS = {
    meta.INPUT_IDS: "Token ids of the new tokens, int32 (1, q).",
    meta.CAUSAL_MASK: (
        "Additive attention mask float16 (1, 1, q, end): 0 where new token i may attend to "
        "position j, -inf where j > end - q + i. end = tokens in the cache after this call."
    ),
}
OUTPUT_DESCRIPTION = "Next-token logits, float16 (1, q, vocab)."
OUTPUT_DESCRIPTION_LAST = "Next-token logits of the last new token only, float16 (1, 1, vocab)."
STATE_DESCRIPTIONS = {
    meta.KEY_CACHE: "Key cache float16 (layers, 1, kv_heads, context, head_dim), written in place.",
    meta.VALUE_CACHE: "Value cache float16 (layers, 1, kv_heads, context, head_dim), in place.",
}


@dataclass(frozen=True)
class PackageFacts:
    source_id: str
    architecture: str
    context_length: int
    quantization: str
    bos_token_id: int | None
    eos_token_ids: tuple[int, ...]
    last_logits_only: bool
    versions: Mapping[str, str]
    # Tensor group → recipe (exact GGUF import: {"Q4_1": "210 tensors exact: uint4 block 32, ..."}).
    recipes: Mapping[str, str] = field(default_factory=dict)


def describe(mlmodel, facts: PackageFacts) -> None:
    """Descriptions on every input, output and state; user metadata; author/license/version."""
    for name, text in INPUT_DESCRIPTIONS.items():
        mlmodel.input_description[name] = text
    mlmodel.output_description[meta.LOGITS] = (
        OUTPUT_DESCRIPTION_LAST if facts.last_logits_only else OUTPUT_DESCRIPTION
    )
    for state in mlmodel._spec.description.state:
        state.shortDescription = STATE_DESCRIPTIONS.get(state.name, "")
    mlmodel.short_description = (
        f"{facts.source_id} ({facts.architecture}), stateful kv-cache, "
        f"{facts.quantization}, context {facts.context_length}. Converted by coreml-chat."
    )
    mlmodel.author = f"Converted from {facts.source_id} by coreml-chat"
    mlmodel.license = "See the license of the source model."
    mlmodel.version = facts.versions.get("converter", "")
    metadata = {
        meta.SOURCE_MODEL_ID: facts.source_id,
        meta.CONTEXT_LENGTH: str(facts.context_length),
        meta.ARCHITECTURE: facts.architecture,
        meta.QUANTIZATION: facts.quantization,
        meta.CONVERTER_VERSION: facts.versions.get("converter", ""),
        meta.COREMLTOOLS_VERSION: facts.versions.get("coremltools", ""),
        meta.TORCH_VERSION: facts.versions.get("torch", ""),
        meta.TRANSFORMERS_VERSION: facts.versions.get("transformers", ""),
        meta.EOS_TOKEN_IDS: ",".join(str(i) for i in facts.eos_token_ids),
        meta.LAST_LOGITS_ONLY: "true" if facts.last_logits_only else "false",
    }
    if facts.bos_token_id is not None:
        metadata[meta.BOS_TOKEN_ID] = str(facts.bos_token_id)
    if facts.recipes:
        metadata[meta.QUANTIZATION_RECIPES] = json.dumps(dict(facts.recipes))
    for key, value in metadata.items():
        mlmodel.user_defined_metadata[key] = value
