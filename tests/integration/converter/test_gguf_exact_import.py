"""Exact GGUF import end to end: the demo model keeps its own Q4_1/Q8_0 blocks, says so, answers;
a tensor type with no exact form is refused with its name and type."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app import self_test
from tests.conftest import progress_log
from tests.unit.converter.gguf_synthetic import SMALL_LLAMA_CONFIG


@pytest.mark.slow
def test_exact_import_of_the_demo_model_answers_paris(smollm2_exact_dir: Path) -> None:
    report = self_test.run_self_test(smollm2_exact_dir)
    assert "Paris" in report["answer"] and report["runtime"] == "reference"


@pytest.mark.slow
def test_exact_import_keeps_the_gguf_blocks_and_says_so(
    smollm2_exact_dir: Path, smollm2_gguf: Path
) -> None:
    from engine.package import metadata as meta
    from engine.runtime.reference.runtime import _load_program, read_spec

    (package,) = smollm2_exact_dir.glob("*.mlpackage")
    spec, weights_dir = read_spec(package)
    metadata = dict(spec.description.metadata.userDefined)
    assert metadata[meta.QUANTIZATION] == "gguf-exact"
    recipes = json.loads(metadata[meta.QUANTIZATION_RECIPES])
    assert recipes["Q4_1"].startswith("210 tensors exact: uint4 block 32")
    assert recipes["Q8_0"].startswith("1 tensors exact: int8 block 32")
    lines = [json.loads(line) for line in progress_log(smollm2_exact_dir).read_text().splitlines()]
    messages = [line.get("message", "") for line in lines]
    assert any(text.startswith("Q4_1: 210 tensors exact") for text in messages)
    assert any("top-1 agreement 100%" in text for text in messages)
    # No bigger than the GGUF file (goal: 1.1x).
    size = sum(path.stat().st_size for path in package.rglob("*") if path.is_file())
    assert size <= 1.1 * smollm2_gguf.stat().st_size

    # One layer's q_proj equals gguf's own dequantization (after llama.cpp's q/k row permutation
    # is undone) within float16 rounding.
    from gguf import GGUFReader
    from gguf.quants import dequantize

    program = _load_program(package, spec, weights_dir)
    (op,) = [
        op
        for op in program.functions["main"].operations
        if op.op_type == "constexpr_blockwise_shift_scale"
        and op.name == "model_layers_3_self_attn_q_proj_weight_Q4_1"  # dots become _ on save
    ]
    got = op.materialized_val_inference().astype(np.float32)
    (tensor,) = [
        t for t in GGUFReader(str(smollm2_gguf)).tensors if t.name == "blk.3.attn_q.weight"
    ]
    want = dequantize(tensor.data, tensor.tensor_type).reshape(576, 576)
    want = want.reshape(9, 32, 2, 576).swapaxes(2, 1).reshape(576, 576)
    # Within float16 rounding: each block's error below two float16 steps of its largest weight.
    largest = np.abs(want).reshape(576, 18, 32).max(axis=-1, keepdims=True)
    step = np.spacing(largest.astype(np.float16)).astype(np.float32)
    assert (np.abs(got - want).reshape(576, 18, 32) <= 2 * step).all()


def test_unsupported_tensor_type_is_refused_naming_it(tmp_path: Path) -> None:
    import gguf

    from converter.errors import ConversionError
    from converter.gguf.exact_import import read_gguf
    from converter.torch_model import ModelSpec

    path = tmp_path / "q2k.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    q2k_bytes = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.Q2_K][1]
    writer.add_tensor(
        "blk.0.attn_q.weight",
        np.zeros((8, q2k_bytes), dtype=np.uint8),
        raw_dtype=gguf.GGMLQuantizationType.Q2_K,
    )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    spec = ModelSpec.from_config(SMALL_LLAMA_CONFIG)
    with pytest.raises(ConversionError, match=r"GGUF tensor blk\.0\.attn_q\.weight has type Q2_K"):
        read_gguf(path, spec)
