"""Each op of the reference runtime, in a one-op Core ML program, against NumPy or torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.runtime.reference.runtime import load_reference_model


def _run(tmp_path: Path, build, inputs: dict[str, np.ndarray], *, fp16: bool = False) -> np.ndarray:
    """Convert the MIL function ``build`` (inputs declared by ``inputs``) and run it."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    specs = [
        mb.TensorSpec(shape=value.shape, dtype=ct.converters.mil.mil.types.numpy_type_to_builtin_type(value.dtype))
        for value in inputs.values()
    ]  # fmt: skip

    # mb.program reads the function's parameters: give it one per input.
    arity = {
        1: lambda a: build(a),
        2: lambda a, b: build(a, b),
        3: lambda a, b, c: build(a, b, c),
        4: lambda a, b, c, d: build(a, b, c, d),
    }[len(specs)]
    program = mb.program(input_specs=specs, opset_version=ct.target.iOS18)(arity)

    precision = ct.precision.FLOAT16 if fp16 else ct.precision.FLOAT32
    model = ct.convert(
        program,
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS18,
        compute_precision=precision,
        pass_pipeline=ct.PassPipeline.EMPTY if not fp16 else None,
        skip_model_load=True,
    )
    package = tmp_path / "op.mlpackage"
    model.save(str(package))
    runtime = load_reference_model(package)
    names = [spec.name for spec in runtime.description.inputs]
    outputs = runtime.predict(dict(zip(names, inputs.values(), strict=True)))
    (result,) = outputs.values()
    return result


RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 3, 8)).astype(np.float32)
Y = RNG.standard_normal((2, 3, 8)).astype(np.float32)
P = np.abs(X) + 0.5


# (name, MIL builder, inputs, expected NumPy result)
OP_CASES = [
    ("add", lambda mb, x, y: mb.add(x=x, y=y), (X, Y), X + Y),
    ("sub", lambda mb, x, y: mb.sub(x=x, y=y), (X, Y), X - Y),
    ("mul", lambda mb, x, y: mb.mul(x=x, y=y), (X, Y), X * Y),
    ("real_div", lambda mb, x, y: mb.real_div(x=x, y=y), (X, P), X / P),
    ("pow", lambda mb, x: mb.pow(x=x, y=2.0), (X,), X**2),
    ("rsqrt", lambda mb, x: mb.rsqrt(x=x, epsilon=1e-6), (P,), 1 / np.sqrt(P + 1e-6)),
    ("sqrt", lambda mb, x: mb.sqrt(x=x), (P,), np.sqrt(P)),
    ("inverse", lambda mb, x: mb.inverse(x=x, epsilon=1e-4), (P,), 1 / (P + 1e-4)),
    ("abs", lambda mb, x: mb.abs(x=x), (X,), np.abs(X)),
    ("cos", lambda mb, x: mb.cos(x=x), (X,), np.cos(X)),
    ("sin", lambda mb, x: mb.sin(x=x), (X,), np.sin(X)),
    (
        "silu",
        lambda mb, x: mb.silu(x=x),
        (X,),
        torch.nn.functional.silu(torch.tensor(X)).numpy(),
    ),
    (
        "softmax",
        lambda mb, x: mb.softmax(x=x, axis=-1),
        (X,),
        torch.softmax(torch.tensor(X), -1).numpy(),
    ),
    (
        "reduce_mean",
        lambda mb, x: mb.reduce_mean(x=x, axes=[-1], keep_dims=True),
        (X,),
        X.mean(-1, keepdims=True),
    ),
    ("reduce_sum", lambda mb, x: mb.reduce_sum(x=x, axes=[1], keep_dims=False), (X,), X.sum(1)),
    (
        "reduce_max",
        lambda mb, x: mb.reduce_max(x=x, axes=[-1], keep_dims=True),
        (X,),
        X.max(-1, keepdims=True),
    ),
    ("clip", lambda mb, x: mb.clip(x=x, alpha=-0.5, beta=0.5), (X,), np.clip(X, -0.5, 0.5)),
    ("transpose", lambda mb, x: mb.transpose(x=x, perm=[2, 0, 1]), (X,), X.transpose(2, 0, 1)),
    ("reshape", lambda mb, x: mb.reshape(x=x, shape=[6, -1]), (X,), X.reshape(6, -1)),
    ("expand_dims", lambda mb, x: mb.expand_dims(x=x, axes=[0, -1]), (X,), X[None, ..., None]),
    ("squeeze", lambda mb, x: mb.squeeze(x=mb.expand_dims(x=x, axes=[1]), axes=[1]), (X,), X),
    (
        "concat",
        lambda mb, x, y: mb.concat(values=[x, y], axis=1),
        (X, Y),
        np.concatenate([X, Y], 1),
    ),
    ("tile", lambda mb, x: mb.tile(x=x, reps=[1, 2, 1]), (X,), np.tile(X, (1, 2, 1))),
    (
        "matmul",
        lambda mb, x, y: mb.matmul(x=x, y=y, transpose_y=True),
        (X, Y),
        X @ Y.transpose(0, 2, 1),
    ),
    (
        "select",
        lambda mb, x, y: mb.select(cond=mb.greater(x=x, y=0.0), a=x, b=y),
        (X, Y),
        np.where(X > 0, X, Y),
    ),
    (
        "slice_by_index",
        lambda mb, x: mb.slice_by_index(x=x, begin=[0, 1, -4], end=[2, 3, -1], stride=[1, 1, 2]),
        (X,),
        X[0:2, 1:3, -4:-1:2],
    ),
    (
        "slice_by_index_masks",
        lambda mb, x: mb.slice_by_index(
            x=x,
            begin=[1, 0, 2],
            end=[0, 0, 5],
            begin_mask=[False, True, False],
            end_mask=[True, True, False],
            squeeze_mask=[True, False, False],
        ),
        (X,),
        X[1, :, 2:5],
    ),
    (
        "gather",
        lambda mb, x: mb.gather(x=x, indices=np.array([2, 0], dtype=np.int32), axis=1),
        (X,),
        X[:, [2, 0]],
    ),
    ("shape", lambda mb, x: mb.shape(x=x), (X,), np.array([2, 3, 8])),
    (
        "cast",
        lambda mb, x: mb.cast(x=x, dtype="int32"),
        (X * 4,),
        np.trunc(X * 4).astype(np.int32),
    ),
]


def test_linear_and_scaled_dot_product_attention_match_torch(tmp_path):
    from coremltools.converters.mil import Builder as mb

    weight = RNG.standard_normal((5, 8)).astype(np.float32)
    bias = RNG.standard_normal(5).astype(np.float32)
    got = _run(tmp_path, lambda x: mb.linear(x=x, weight=weight, bias=bias), {"x": X})
    expected = torch.nn.functional.linear(torch.tensor(X), torch.tensor(weight), torch.tensor(bias))
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-5, atol=1e-5)

    q, k, v = (RNG.standard_normal((1, 2, 4, 8)).astype(np.float32) for _ in range(3))
    mask = np.triu(np.full((4, 4), -np.inf, dtype=np.float32), 1)[None, None]
    got = _run(
        tmp_path,
        lambda q_, k_, v_, m_: mb.scaled_dot_product_attention(
            query=q_, key=k_, value=v_, attn_mask=m_
        ),
        {"q": q, "k": k, "v": v, "m": mask},
    )
    expected = torch.nn.functional.scaled_dot_product_attention(
        torch.tensor(q), torch.tensor(k), torch.tensor(v), attn_mask=torch.tensor(mask)
    )
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-5, atol=1e-5)


def test_float16_storage_overflows_to_inf_as_on_a_mac(tmp_path):
    from coremltools.converters.mil import Builder as mb

    x = np.array([[300.0, 1.0]], dtype=np.float16)
    got = _run(tmp_path, lambda x_: mb.mul(x=x_, y=x_), {"x": x}, fp16=True)
    assert got.dtype == np.float16
    assert np.isinf(got[0, 0]) and got[0, 1] == 1.0  # 90000 > 65504: float16 overflows


def test_slice_update_writes_the_slice(tmp_path):
    from coremltools.converters.mil import Builder as mb

    update = np.ones((2, 1, 3), dtype=np.float32)
    got = _run(
        tmp_path,
        lambda x: mb.slice_update(x=x, update=update, begin=[0, 1, 2], end=[2, 2, 5]),
        {"x": X},
    )
    expected = X.copy()
    expected[0:2, 1:2, 2:5] = 1.0
    np.testing.assert_array_equal(got, expected)


B = (RNG.standard_normal((2, 3, 8)) > 0).astype(np.float32)


MORE_OP_CASES = [
    ("equal", lambda mb, x, b: mb.cast(x=mb.equal(x=x, y=b), dtype="fp32"), (B, B * 0), B == 0),
    ("less", lambda mb, x: mb.cast(x=mb.less(x=x, y=0.0), dtype="fp32"), (X,), X < 0),
    (
        "greater_equal",
        lambda mb, x: mb.cast(x=mb.greater_equal(x=x, y=0.5), dtype="fp32"),
        (X,),
        X >= 0.5,
    ),
    ("exp", lambda mb, x: mb.exp(x=x), (X,), np.exp(X)),
    ("log", lambda mb, x: mb.log(x=x), (P,), np.log(P)),
    ("tanh", lambda mb, x: mb.tanh(x=x), (X,), np.tanh(X)),
    (
        "sigmoid",
        lambda mb, x: mb.sigmoid(x=x),
        (X,),
        torch.sigmoid(torch.tensor(X)).numpy(),
    ),
    (
        "gelu",
        lambda mb, x: mb.gelu(x=x),
        (X,),
        torch.nn.functional.gelu(torch.tensor(X)).numpy(),
    ),
    ("relu", lambda mb, x: mb.relu(x=x), (X,), np.maximum(X, 0)),
    ("maximum", lambda mb, x, y: mb.maximum(x=x, y=y), (X, Y), np.maximum(X, Y)),
    ("minimum", lambda mb, x, y: mb.minimum(x=x, y=y), (X, Y), np.minimum(X, Y)),
    ("reduce_min", lambda mb, x: mb.reduce_min(x=x, axes=[0]), (X,), X.min(0)),
    (
        "reduce_argmax",
        lambda mb, x: mb.reduce_argmax(x=x, axis=-1),
        (X,),
        X.argmax(-1),
    ),
    (
        "split",
        lambda mb, x: mb.concat(values=mb.split(x=x, num_splits=2, axis=-1)[::-1], axis=-1),
        (X,),
        np.concatenate([X[..., 4:], X[..., :4]], -1),
    ),
    (
        "split_sizes",
        lambda mb, x: mb.split(x=x, split_sizes=[1, 2], axis=1)[1],
        (X,),
        X[:, 1:],
    ),
    ("stack", lambda mb, x, y: mb.stack(values=[x, y], axis=1), (X, Y), np.stack([X, Y], 1)),
    (
        "range_1d",
        lambda mb, x: mb.range_1d(
            start=0, end=mb.reduce_argmax(x=mb.shape(x=x), axis=0, keep_dims=False), step=1
        ),
        (X,),
        np.arange(2),
    ),
    (
        "fill",
        lambda mb, x: mb.fill(shape=mb.shape(x=x), value=2.5),
        (X,),
        np.full(X.shape, 2.5),
    ),
    (
        "gather_along_axis",
        lambda mb, x: mb.gather_along_axis(
            x=x, indices=np.zeros((2, 1, 8), dtype=np.int32) + 2, axis=1
        ),
        (X,),
        X[:, 2:3],
    ),
    (
        "slice_by_size",
        lambda mb, x: mb.slice_by_size(x=x, begin=[1, 0, 2], size=[1, -1, 3]),
        (X,),
        X[1:2, :, 2:5],
    ),
    (
        "band_part",
        lambda mb, x: mb.band_part(x=x, lower=0, upper=-1),
        (X,),
        np.triu(X),
    ),
    (
        "layer_norm",
        lambda mb, x: mb.layer_norm(x=x, axes=[-1], epsilon=1e-5),
        (X,),
        torch.nn.functional.layer_norm(torch.tensor(X), (8,), eps=1e-5).numpy(),
    ),
    (
        "floor_div",
        lambda mb, x, p: mb.floor_div(x=x, y=p),
        (X * 4, P),
        np.floor_divide(X * 4, P),
    ),
]


@pytest.mark.parametrize(
    ("name", "build", "args", "expected"),
    OP_CASES + MORE_OP_CASES,
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_op_matches_numpy(tmp_path, name, build, args, expected):
    from coremltools.converters.mil import Builder as mb

    inputs = {f"in{i}": a for i, a in enumerate(args)}
    got = _run(tmp_path, lambda *xs: build(mb, *xs), inputs)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_attention_with_a_boolean_mask_and_float16_storage(tmp_path):
    from coremltools.converters.mil import Builder as mb

    q, k, v = (RNG.standard_normal((1, 2, 4, 8)).astype(np.float16) for _ in range(3))
    keep = np.tril(np.ones((4, 4), dtype=bool))[None, None]
    got = _run(
        tmp_path,
        lambda q_, k_, v_: mb.scaled_dot_product_attention(
            query=q_, key=k_, value=v_, attn_mask=keep
        ),
        {"q": q, "k": k, "v": v},
        fp16=True,
    )
    assert got.dtype == np.float16
    expected = torch.nn.functional.scaled_dot_product_attention(
        *(torch.tensor(a, dtype=torch.float32) for a in (q, k, v)), attn_mask=torch.tensor(keep)
    )
    np.testing.assert_allclose(got.astype(np.float32), expected.numpy(), atol=2e-3)


def test_float16_sum_rounds_once_and_keeps_overflow(tmp_path):
    from coremltools.converters.mil import Builder as mb

    x = np.full((1, 4096), 20.0, dtype=np.float16)
    got = _run(
        tmp_path, lambda x_: mb.reduce_sum(x=x_, axes=[-1], keep_dims=False), {"x": x}, fp16=True
    )
    assert got.dtype == np.float16 and np.isinf(got[0])  # 81920 > 65504
    half = _run(
        tmp_path,
        lambda x_: mb.reduce_mean(x=x_, axes=[-1], keep_dims=False),
        {"x": x},
        fp16=True,
    )
    assert half[0] == np.float16(20.0)  # accumulated in float32: the mean does not overflow
