"""NumPy implementations of the MIL ops the reference runtime executes.

Each op is a function of its named inputs (NumPy arrays or Python values) returning one array, or a
tuple for ops with several outputs. Storage follows the program: a float16 tensor stays float16, so
an overflow becomes ``inf`` as it would on a Mac. Matrix products, softmax, attention and
reductions compute in float32 and round the result, as Core ML's GPU does; the runtime casts every
result to its output's declared dtype.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Array = np.ndarray
OpFunction = Callable[..., Any]

MIL_DTYPES: dict[str, Any] = {
    "fp16": np.float16,
    "fp32": np.float32,
    "fp64": np.float64,
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "uint16": np.uint16,
    "int32": np.int32,
    "uint32": np.uint32,
    "int64": np.int64,
    "bool": np.bool_,
}


def _f32(x: Array) -> Array:
    return x if x.dtype == np.float32 else x.astype(np.float32)


def _axes(axes: Any, rank: int) -> tuple[int, ...] | None:
    if axes is None:
        return None
    return tuple(int(a) % rank for a in np.atleast_1d(axes))


# --- elementwise ------------------------------------------------------------------------------


def _binary(function: Callable[[Array, Array], Array]) -> OpFunction:
    def op(x: Array, y: Array) -> Array:
        return function(x, y)

    return op


def _unary(function: Callable[[Array], Array]) -> OpFunction:
    def op(x: Array) -> Array:
        return function(x)

    return op


def real_div(x: Array, y: Array) -> Array:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.true_divide(x, y)


def floor_div(x: Array, y: Array) -> Array:
    return np.floor_divide(x, y)


def pow_(x: Array, y: Array) -> Array:
    with np.errstate(over="ignore", invalid="ignore"):
        return np.power(x, y)


def inverse(x: Array, epsilon: float = 1e-4) -> Array:
    with np.errstate(divide="ignore", over="ignore"):
        return 1.0 / (x + np.asarray(epsilon, dtype=x.dtype))


def rsqrt(x: Array, epsilon: float = 1e-12) -> Array:
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 / np.sqrt(x + np.asarray(epsilon, dtype=x.dtype))


def sqrt(x: Array) -> Array:
    with np.errstate(invalid="ignore"):
        return np.sqrt(x)


def log(x: Array, epsilon: float = 1e-45) -> Array:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(x + np.asarray(epsilon, dtype=x.dtype))


def exp(x: Array) -> Array:
    with np.errstate(over="ignore"):
        return np.exp(x)


def silu(x: Array) -> Array:
    x32 = _f32(x)
    with np.errstate(over="ignore"):
        return (x32 / (1.0 + np.exp(-x32))).astype(x.dtype)


def sigmoid(x: Array) -> Array:
    x32 = _f32(x)
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-x32))).astype(x.dtype)


def gelu(x: Array, mode: str = "EXACT") -> Array:
    x32 = _f32(x)
    if mode == "EXACT":
        from math import erf
        from math import sqrt as msqrt

        result = 0.5 * x32 * (1.0 + np.vectorize(erf)(x32 / msqrt(2.0)))
    else:
        result = 0.5 * x32 * (1.0 + np.tanh(0.7978845608 * (x32 + 0.044715 * x32**3)))
    return result.astype(x.dtype)


def relu(x: Array) -> Array:
    return np.maximum(x, np.zeros((), dtype=x.dtype))


def clip(x: Array, alpha: float, beta: float) -> Array:
    return np.clip(x, alpha, beta).astype(x.dtype)


def select(cond: Array, a: Array, b: Array) -> Array:
    return np.where(cond, a, b)


def cast(x: Array, dtype: str) -> Array:
    target = MIL_DTYPES[dtype]
    if np.issubdtype(target, np.integer) and np.issubdtype(np.asarray(x).dtype, np.floating):
        x = np.trunc(x)
    return np.asarray(x).astype(target)


# --- reductions -------------------------------------------------------------------------------


def _reduction(function: Callable[..., Array], *, compute_f32: bool) -> OpFunction:
    def op(x: Array, axes: Any = None, keep_dims: bool = False) -> Array:
        data = _f32(x) if compute_f32 and x.dtype == np.float16 else x
        result = function(data, axis=_axes(axes, x.ndim), keepdims=bool(keep_dims))
        return np.asarray(result).astype(x.dtype)

    return op


def reduce_log_sum_exp(x: Array, axes: Any = None, keep_dims: bool = False) -> Array:
    data = _f32(x)
    axis = _axes(axes, x.ndim)
    peak = np.max(data, axis=axis, keepdims=True)
    result = np.log(np.sum(np.exp(data - peak), axis=axis, keepdims=True)) + peak
    if not keep_dims:
        result = np.squeeze(result, axis=axis)
    return result.astype(x.dtype)


def _arg_reduction(function: Callable[..., Array]) -> OpFunction:
    def op(x: Array, axis: int = -1, keep_dims: bool = False, output_dtype: str = "int32") -> Array:
        result = function(x, axis=int(axis))
        if keep_dims:
            result = np.expand_dims(result, int(axis))
        return result.astype(MIL_DTYPES[output_dtype])

    return op


def softmax(x: Array, axis: int = -1) -> Array:
    data = _f32(x)
    shifted = data - np.max(data, axis=int(axis), keepdims=True)
    with np.errstate(over="ignore", invalid="ignore"):
        weights = np.exp(shifted)
        result = weights / np.sum(weights, axis=int(axis), keepdims=True)
    return result.astype(x.dtype)


# --- linear algebra ---------------------------------------------------------------------------


def linear(x: Array, weight: Array, bias: Array | None = None) -> Array:
    """``x @ weight.T + bias``; the runtime passes pre-transposed float32 weights (``weight_t``)."""
    result = _f32(x) @ _f32(weight).T
    if bias is not None:
        result += bias
    return result.astype(x.dtype)


def linear_pretransposed(x: Array, weight_t: Array, bias: Array | None) -> Array:
    result = _f32(x) @ weight_t
    if bias is not None:
        result += bias
    return result.astype(x.dtype)


def matmul(x: Array, y: Array, transpose_x: bool = False, transpose_y: bool = False) -> Array:
    a, b = _f32(x), _f32(y)
    if transpose_x:
        a = np.swapaxes(a, -1, -2)
    if transpose_y:
        b = np.swapaxes(b, -1, -2)
    out_dtype = np.result_type(x.dtype, y.dtype)
    return np.matmul(a, b).astype(out_dtype)


def scaled_dot_product_attention(
    query: Array, key: Array, value: Array, attn_mask: Array | None = None
) -> Array:
    q, k, v = _f32(query), _f32(key), _f32(value)
    scores = (q @ np.swapaxes(k, -1, -2)) / np.float32(np.sqrt(q.shape[-1]))
    if attn_mask is not None:
        if attn_mask.dtype == np.bool_:
            scores = np.where(attn_mask, scores, -np.inf)
        else:
            scores = scores + _f32(attn_mask)
    peak = np.max(scores, axis=-1, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    weights = np.exp(scores - peak)
    weights /= np.sum(weights, axis=-1, keepdims=True)
    return (weights @ v).astype(query.dtype)


# --- shapes and indexing ----------------------------------------------------------------------


def shape(x: Array) -> Array:
    return np.array(x.shape, dtype=np.int32)


def reshape(x: Array, shape: Array) -> Array:
    target = [int(s) for s in np.atleast_1d(shape)]
    target = [x.shape[i] if s == 0 else s for i, s in enumerate(target)]
    return x.reshape(target)


def transpose(x: Array, perm: Array) -> Array:
    return np.transpose(x, [int(p) for p in perm])


def expand_dims(x: Array, axes: Array) -> Array:
    rank = x.ndim + len(np.atleast_1d(axes))
    result = x
    for axis in sorted(int(a) % rank for a in np.atleast_1d(axes)):
        result = np.expand_dims(result, axis)
    return result


def squeeze(x: Array, axes: Array | None = None) -> Array:
    if axes is None:
        return np.squeeze(x)
    return np.squeeze(x, axis=tuple(int(a) % x.ndim for a in np.atleast_1d(axes)))


def concat(values: list[Array], axis: int, interleave: bool = False) -> Array:
    if interleave:
        raise NotImplementedError("concat with interleave=True")
    arrays = [np.atleast_1d(v) if np.ndim(v) == 0 else v for v in values]
    return np.concatenate(arrays, axis=int(axis))


def tile(x: Array, reps: Array) -> Array:
    return np.tile(x, [int(r) for r in np.atleast_1d(reps)])


def split(
    x: Array, axis: int, num_splits: int | None = None, split_sizes: Array | None = None
) -> tuple[Array, ...]:
    axis = int(axis)
    if split_sizes is not None:
        bounds = np.cumsum([int(s) for s in split_sizes])[:-1]
        return tuple(np.split(x, bounds, axis=axis))
    return tuple(np.split(x, int(num_splits), axis=axis))


def stack(values: list[Array], axis: int) -> Array:
    return np.stack(values, axis=int(axis))


def gather(
    x: Array,
    indices: Array,
    axis: int = 0,
    batch_dims: int = 0,
    validate_indices: bool = False,
) -> Array:
    if int(batch_dims) != 0:
        raise NotImplementedError("gather with batch_dims != 0")
    indices = np.asarray(indices).astype(np.int64)
    size = x.shape[int(axis)]
    if validate_indices and ((indices < -size) | (indices >= size)).any():
        raise IndexError(f"gather index out of range for an axis of size {size}")
    return np.take(x, indices, axis=int(axis), mode="wrap")


def gather_along_axis(
    x: Array, indices: Array, axis: int = 0, validate_indices: bool = False
) -> Array:
    return np.take_along_axis(x, np.asarray(indices).astype(np.int64), axis=int(axis))


def _slices(
    shape_: tuple[int, ...],
    begin: Array,
    end: Array,
    stride: Array | None,
    begin_mask: Array | None,
    end_mask: Array | None,
    squeeze_mask: Array | None,
) -> tuple[tuple[Any, ...], list[int]]:
    rank = len(shape_)
    stride = np.ones(rank, dtype=np.int64) if stride is None else np.asarray(stride)
    begin_mask = np.zeros(rank, bool) if begin_mask is None else np.asarray(begin_mask)
    end_mask = np.zeros(rank, bool) if end_mask is None else np.asarray(end_mask)
    squeeze_mask = np.zeros(rank, bool) if squeeze_mask is None else np.asarray(squeeze_mask)
    index: list[Any] = []
    squeezed: list[int] = []
    for axis in range(rank):
        if squeeze_mask[axis]:
            index.append(
                slice(int(begin[axis]), None if int(begin[axis]) == -1 else int(begin[axis]) + 1)
            )
            squeezed.append(axis)
            continue
        step = int(stride[axis])
        start = None if begin_mask[axis] else int(begin[axis])
        stop = None if end_mask[axis] else int(end[axis])
        index.append(slice(start, stop, step))
    return tuple(index), squeezed


def slice_by_index(
    x: Array,
    begin: Array,
    end: Array,
    stride: Array | None = None,
    begin_mask: Array | None = None,
    end_mask: Array | None = None,
    squeeze_mask: Array | None = None,
) -> Array:
    index, squeezed = _slices(x.shape, begin, end, stride, begin_mask, end_mask, squeeze_mask)
    result = x[index]
    if squeezed:
        result = np.squeeze(result, axis=tuple(squeezed))
    return result


def slice_by_size(x: Array, begin: Array, size: Array) -> Array:
    index = tuple(
        slice(int(b), None if int(s) == -1 else int(b) + int(s))
        for b, s in zip(begin, size, strict=True)
    )
    return x[index]


def slice_update(
    x: Array,
    update: Array,
    begin: Array,
    end: Array,
    stride: Array | None = None,
    begin_mask: Array | None = None,
    end_mask: Array | None = None,
    squeeze_mask: Array | None = None,
    *,
    in_place: bool = False,
) -> Array:
    """``x`` with the slice replaced; written into ``x`` itself when the runtime proved that safe."""
    result = x if in_place else x.copy()
    index, _ = _slices(x.shape, begin, end, stride, begin_mask, end_mask, squeeze_mask)
    target_shape = result[index].shape
    result[index] = np.reshape(update, target_shape)
    return result


def range_1d(start: Any, end: Any, step: Any) -> Array:
    dtype = np.result_type(np.asarray(start).dtype, np.asarray(end).dtype, np.asarray(step).dtype)
    return np.arange(start, end, step).astype(dtype)


def fill(shape: Array, value: Any = 0.0) -> Array:
    value = np.asarray(value)
    return np.full([int(s) for s in np.atleast_1d(shape)], value, dtype=value.dtype)


def fill_like(ref_tensor: Array, value: Any = 0.0) -> Array:
    value = np.asarray(value)
    return np.full(ref_tensor.shape, value, dtype=value.dtype)


def band_part(x: Array, lower: int = -1, upper: int = -1) -> Array:
    rows, cols = x.shape[-2], x.shape[-1]
    i = np.arange(rows)[:, None]
    j = np.arange(cols)[None, :]
    keep = np.ones((rows, cols), dtype=bool)
    if int(lower) >= 0:
        keep &= (i - j) <= int(lower)
    if int(upper) >= 0:
        keep &= (j - i) <= int(upper)
    return np.where(keep, x, np.zeros((), dtype=x.dtype))


def layer_norm(x: Array, axes: Array, gamma: Array | None = None, beta: Array | None = None,
               epsilon: float = 1e-5) -> Array:  # fmt: skip
    data = _f32(x)
    axis = _axes(axes, x.ndim)
    mean = data.mean(axis=axis, keepdims=True)
    variance = ((data - mean) ** 2).mean(axis=axis, keepdims=True)
    result = (data - mean) / np.sqrt(variance + epsilon)
    if gamma is not None:
        result = result * gamma
    if beta is not None:
        result = result + beta
    return result.astype(x.dtype)


def identity(x: Array) -> Array:
    return x


OPS: dict[str, OpFunction] = {
    "add": _binary(np.add),
    "sub": _binary(np.subtract),
    "mul": _binary(np.multiply),
    "real_div": real_div,
    "floor_div": floor_div,
    "pow": pow_,
    "maximum": _binary(np.maximum),
    "minimum": _binary(np.minimum),
    "mod": _binary(np.mod),
    "equal": _binary(np.equal),
    "not_equal": _binary(np.not_equal),
    "greater": _binary(np.greater),
    "greater_equal": _binary(np.greater_equal),
    "less": _binary(np.less),
    "less_equal": _binary(np.less_equal),
    "logical_and": _binary(np.logical_and),
    "logical_or": _binary(np.logical_or),
    "logical_xor": _binary(np.logical_xor),
    "logical_not": _unary(np.logical_not),
    "abs": _unary(np.abs),
    "sign": _unary(np.sign),
    "floor": _unary(np.floor),
    "ceil": _unary(np.ceil),
    "round": _unary(np.round),
    "cos": _unary(np.cos),
    "sin": _unary(np.sin),
    "tanh": _unary(np.tanh),
    "square": _unary(np.square),
    "exp": exp,
    "log": log,
    "sqrt": sqrt,
    "rsqrt": rsqrt,
    "inverse": inverse,
    "silu": silu,
    "sigmoid": sigmoid,
    "gelu": gelu,
    "relu": relu,
    "clip": clip,
    "select": select,
    "cast": cast,
    "reduce_sum": _reduction(np.sum, compute_f32=True),
    "reduce_mean": _reduction(np.mean, compute_f32=True),
    "reduce_max": _reduction(np.max, compute_f32=False),
    "reduce_min": _reduction(np.min, compute_f32=False),
    "reduce_prod": _reduction(np.prod, compute_f32=True),
    "reduce_log_sum_exp": reduce_log_sum_exp,
    "reduce_argmax": _arg_reduction(np.argmax),
    "reduce_argmin": _arg_reduction(np.argmin),
    "softmax": softmax,
    "linear": linear,
    "matmul": matmul,
    "scaled_dot_product_attention": scaled_dot_product_attention,
    "shape": shape,
    "reshape": reshape,
    "transpose": transpose,
    "expand_dims": expand_dims,
    "squeeze": squeeze,
    "concat": concat,
    "tile": tile,
    "split": split,
    "stack": stack,
    "gather": gather,
    "gather_along_axis": gather_along_axis,
    "slice_by_index": slice_by_index,
    "slice_by_size": slice_by_size,
    "slice_update": slice_update,
    "range_1d": range_1d,
    "fill": fill,
    "fill_like": fill_like,
    "band_part": band_part,
    "layer_norm": layer_norm,
    "identity": identity,
}

# Handled by the runtime itself (they touch states or are constants).
RUNTIME_OPS = frozenset({"const", "read_state", "coreml_update_state"})
