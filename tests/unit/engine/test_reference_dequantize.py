"""Compressed weights: a linear layer compressed by coremltools' own optimizer (the converter's path),
run by the reference runtime, against coremltools' own dequantization of the same constexpr op."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch  # noqa: F401  # coremltools is imported after torch in the test suite

from engine.package.model import read_spec
from engine.runtime.reference.dequantize import CONSTEXPR_OPS
from engine.runtime.reference.runtime import _load_program, load_reference_model

RNG = np.random.default_rng(0)
# Two blocks of 32 input channels with scales 1000× apart: a block or axis mix-up is obvious.
WEIGHT = RNG.standard_normal((64, 64)).astype(np.float32)
WEIGHT[:, :32] *= 0.01
WEIGHT[:, 32:] *= 10.0
X = RNG.standard_normal((2, 64)).astype(np.float32)


def _linear_model(target):
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    @mb.program(input_specs=[mb.TensorSpec((2, 64))], opset_version=target)
    def program(x):
        return mb.linear(x=x, weight=WEIGHT, name="y")

    return ct.convert(
        program,
        convert_to="mlprogram",
        minimum_deployment_target=target,
        compute_precision=ct.precision.FLOAT32,
        skip_model_load=True,
    )


def _compress(kind: str):
    import coremltools as ct
    import coremltools.optimize.coreml as cto

    quantizer = {
        "int4_per_block": dict(dtype="int4", granularity="per_block", block_size=32),
        "int8_per_channel": dict(dtype="int8", granularity="per_channel"),
        "uint8_per_tensor_offset": dict(mode="linear", dtype="uint8", granularity="per_tensor"),
    }
    if kind in quantizer:
        options = {"mode": "linear_symmetric", **quantizer[kind]}
        config = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(**options))
        return cto.linear_quantize_weights(_linear_model(ct.target.iOS18), config)
    if kind == "int8_ios16_affine":
        config = cto.OptimizationConfig(
            global_config=cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8")
        )
        return cto.linear_quantize_weights(_linear_model(ct.target.iOS16), config)
    group = {"lut4_per_tensor": {}, "lut4_grouped": dict(granularity="per_grouped_channel")}
    config = cto.OpPalettizerConfig(mode="uniform", nbits=4, group_size=16, **group[kind])
    return cto.palettize_weights(
        _linear_model(ct.target.iOS18), cto.OptimizationConfig(global_config=config)
    )


@pytest.mark.parametrize(
    ("kind", "op_type", "relative_error"),
    [
        ("int4_per_block", "constexpr_blockwise_shift_scale", 0.15),
        ("int8_per_channel", "constexpr_blockwise_shift_scale", 0.01),
        ("uint8_per_tensor_offset", "constexpr_blockwise_shift_scale", 0.02),
        ("int8_ios16_affine", "constexpr_affine_dequantize", 0.01),
        ("lut4_per_tensor", "constexpr_lut_to_dense", 0.3),
        ("lut4_grouped", "constexpr_lut_to_dense", 0.2),
    ],
)
def test_compressed_linear_matches_coremltools_dequantization(
    tmp_path: Path, kind: str, op_type: str, relative_error: float
):
    package = tmp_path / f"{kind}.mlpackage"
    _compress(kind).save(str(package))
    spec, weights_dir = read_spec(package)
    operations = list(_load_program(package, spec, weights_dir).functions["main"].operations)
    compressed = [op for op in operations if op.op_type.startswith("constexpr_")]
    assert Counter(op.op_type for op in compressed) == {op_type: 1}
    (op,) = compressed
    expected_weight = op.materialized_val_inference()  # coremltools' own dequantization
    ours = CONSTEXPR_OPS[op_type](**{name: var.val for name, var in op.inputs.items()})
    np.testing.assert_allclose(ours, expected_weight, rtol=1e-6, atol=1e-6)

    got = load_reference_model(package).predict({"x": X})["y"]
    np.testing.assert_allclose(got, X @ expected_weight.T, rtol=1e-4, atol=1e-3)
    # It really is compressed, and not broken: close to the float weights.
    error = np.linalg.norm(got - X @ WEIGHT.T) / np.linalg.norm(X @ WEIGHT.T)
    assert 0 < error < relative_error
