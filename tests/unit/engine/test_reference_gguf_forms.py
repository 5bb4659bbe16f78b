"""Every weight form the exact GGUF import writes (int4, uint4 with float16 offsets, int8, uint8;
blocks of 32 and 16), run by the reference runtime against coremltools' own dequantization."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch  # noqa: F401  # coremltools is imported after torch in the test suite

from converter.gguf.blocks import decode_blocks
from engine.runtime.reference.dequantize import CONSTEXPR_OPS
from engine.runtime.reference.runtime import _load_program, load_reference_model, read_spec
from tests.unit.converter.gguf_synthetic import synthetic_blocks

ROWS, COLUMNS = 8, 256
X = np.random.default_rng(1).standard_normal((2, COLUMNS)).astype(np.float32)


def _package(tmp_path: Path, gguf_type: str) -> tuple[Path, np.ndarray]:
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    raw, _reference = synthetic_blocks(gguf_type, (ROWS, COLUMNS))
    blocks = decode_blocks(raw, gguf_type, (ROWS, COLUMNS))
    dtypes = {"int4": types.np_int4_dtype, "uint4": types.np_uint4_dtype}
    data = blocks.data.astype(dtypes.get(blocks.data_type, blocks.data.dtype))
    arguments = {"data": data, "scale": blocks.scale}
    if blocks.offset is not None:
        arguments["offset"] = blocks.offset

    @mb.program(input_specs=[mb.TensorSpec((2, COLUMNS))], opset_version=ct.target.iOS18)
    def program(x):
        weight = mb.constexpr_blockwise_shift_scale(**arguments)
        return mb.linear(x=x, weight=weight, name="y")

    model = ct.convert(
        program,
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS18,
        compute_precision=ct.precision.FLOAT16,
        skip_model_load=True,
    )
    package = tmp_path / f"{gguf_type}.mlpackage"
    model.save(str(package))
    return package, blocks.dequantize()


@pytest.mark.parametrize("gguf_type", ["Q4_0", "Q4_1", "Q8_0", "Q5_0", "Q5_1", "Q4_K", "Q6_K"])
def test_gguf_form_runs_as_coremltools_dequantizes_it(tmp_path: Path, gguf_type: str) -> None:
    package, blocks_weight = _package(tmp_path, gguf_type)
    spec, weights_dir = read_spec(package)
    operations = list(_load_program(package, spec, weights_dir).functions["main"].operations)
    (op,) = [op for op in operations if op.op_type == "constexpr_blockwise_shift_scale"]
    expected = op.materialized_val_inference()  # coremltools' own dequantization
    ours = CONSTEXPR_OPS[op.op_type](**{name: var.val for name, var in op.inputs.items()})
    np.testing.assert_array_equal(ours, expected)
    np.testing.assert_array_equal(expected, blocks_weight)

    got = load_reference_model(package).predict({"x": X})["y"].astype(np.float32)
    want = X @ expected.astype(np.float32).T
    np.testing.assert_allclose(got, want, rtol=2e-2, atol=2e-2 * np.abs(want).max())
