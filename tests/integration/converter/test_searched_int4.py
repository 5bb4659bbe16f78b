"""The searched int4 recipe end to end on a tiny random Mistral (float32 safetensors source): its
weights are uint4 blocks with uint4 zero points, the package says so, and it runs on the reference
runtime closer to its source than coremltools' linear_symmetric int4 of the same model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from converter.convert import convert
from converter.errors import ConversionError
from converter.options import ConversionRequest
from engine.package import metadata as meta


def _convert(source: Path, output: Path, **options) -> Path:
    request = ConversionRequest(
        str(source), output, context_length=64, quantize="int4", name="Tiny", **options
    )
    (package,) = convert(request).output_dir.glob("*.mlpackage")
    return package


def _blockwise_ops(package: Path) -> tuple[dict[str, str], list]:
    from engine.runtime.reference.runtime import _load_program, read_spec

    spec, weights_dir = read_spec(package)
    metadata = dict(spec.description.metadata.userDefined)
    program = _load_program(package, spec, weights_dir)
    ops = [
        op
        for op in program.functions["main"].operations
        if op.op_type == "constexpr_blockwise_shift_scale"
    ]
    return metadata, ops


def _dtype(var) -> str:
    from coremltools.converters.mil.mil.types import builtin_to_string

    return builtin_to_string(var.dtype)


def _logit_errors(package: Path, source: Path, tokens: np.ndarray) -> tuple[float, float]:
    """(mean |logit difference|, top-1 agreement) of the package against transformers float32."""
    from converter import verify
    from converter.source import resolve_source

    reference = verify.source_logits(resolve_source(str(source)), tokens)
    from engine.generation.session import causal_mask
    from engine.runtime import load_model

    model = load_model(package.parent)
    inputs = {
        meta.INPUT_IDS: np.asarray([tokens], np.int32),
        meta.CAUSAL_MASK: causal_mask(0, len(tokens)),
    }
    got = model.predict(inputs, model.make_state())[meta.LOGITS][0].astype(np.float32)
    difference = float(np.abs(got - reference.logits).mean())
    agreement = float((got.argmax(-1) == reference.logits.argmax(-1)).mean())
    return difference, agreement


@pytest.mark.slow
def test_searched_int4_package_holds_uint4_blocks_names_its_recipe_and_beats_linear_symmetric(
    tiny_mistral_dir: Path, tmp_path: Path
) -> None:
    searched = _convert(tiny_mistral_dir, tmp_path / "searched")
    metadata, ops = _blockwise_ops(searched)
    assert metadata[meta.QUANTIZATION] == "int4-searched-block32"
    recipes = json.loads(metadata[meta.QUANTIZATION_RECIPES])
    # 2 layers × 5 linears (k/v_proj hold 2048 values: coremltools' threshold keeps them float16),
    # the embedding and the lm_head (untied).
    assert recipes == {
        "int4-searched-asymmetric": "12 tensors: uint4 block 32, float16 scale, uint4 zero point"
    }
    assert len(ops) == 12
    for op in ops:
        assert op.name.endswith("_int4_searched_asymmetric")  # "-" and "." become "_" on save
        assert (_dtype(op.data), _dtype(op.offset)) == ("uint4", "uint4")
        assert op.scale.val.dtype == np.float16
        assert op.scale.shape[-1] * 32 == op.data.shape[-1]

    linear = _convert(tiny_mistral_dir, tmp_path / "linear", int4_recipe="linear-symmetric")
    metadata, ops = _blockwise_ops(linear)
    assert metadata[meta.QUANTIZATION] == "int4-block32"
    assert "int4-linear-symmetric" in json.loads(metadata[meta.QUANTIZATION_RECIPES])
    assert {_dtype(op.data) for op in ops} == {"int4"} and all(op.offset is None for op in ops)

    tokens = np.random.default_rng(7).integers(0, 32768, size=24).astype(np.int32)
    searched_error, searched_agreement = _logit_errors(searched, tiny_mistral_dir, tokens)
    linear_error, linear_agreement = _logit_errors(linear, tiny_mistral_dir, tokens)
    # Measured: mean |logit difference| 0.016 against 0.020, top-1 75% against 71% (a random
    # model's logits are close together: agreement is low for both).
    assert searched_error < 0.9 * linear_error
    assert searched_agreement >= max(0.7, linear_agreement)


@pytest.mark.slow
def test_int8_embeddings_keep_embedding_and_lm_head_at_eight_bits(
    tiny_llama_dir: Path, tmp_path: Path
) -> None:
    package = _convert(tiny_llama_dir, tmp_path / "out", int8_embeddings=True)
    metadata, ops = _blockwise_ops(package)
    assert metadata[meta.QUANTIZATION] == "int4-searched-block32+int8-embeddings"
    recipes = json.loads(metadata[meta.QUANTIZATION_RECIPES])
    assert recipes["int8-searched"].startswith("1 tensors: int8 block 32, float16 scale")
    eight = [op for op in ops if _dtype(op.data) == "int8"]
    # Tied: one const serves the embedding's gather and the lm_head.
    assert [op.name for op in eight] == ["model_embed_tokens_weight_int8_searched"]


def test_int8_embeddings_on_an_exact_gguf_import_are_refused(smollm2_gguf: Path, tmp_path: Path):
    request = ConversionRequest(str(smollm2_gguf), tmp_path / "out", int8_embeddings=True)
    with pytest.raises(ConversionError, match="--int8-embeddings applies to int4"):
        convert(request)
    assert not (tmp_path / "out").exists()
