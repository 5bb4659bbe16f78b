"""Weights decoded only when coremltools writes them: the same bytes as writing them eagerly, no
decoded array outlives its write, placeholders never merged, unknown coremltools internals refused."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import numpy as np
import pytest

from converter.errors import ConversionError
from converter.quantization.lazy_blob_weights import LazyWeights, writing_lazy_weights

ROWS, COLUMNS = 64, 96


def _weights() -> list[tuple[str, np.ndarray, str]]:
    """Two uint4 weights of the same shape and one int8: (name, integers, Core ML type)."""
    generator = np.random.default_rng(0)
    return [
        ("first", generator.integers(0, 16, (ROWS, COLUMNS), dtype=np.uint8), "uint4"),
        ("second", generator.integers(0, 16, (ROWS, COLUMNS), dtype=np.uint8), "uint4"),
        ("third", generator.integers(-128, 128, (ROWS, COLUMNS), dtype=np.int8), "int8"),
    ]


def _build(folder: Path, data_for) -> bytes:
    """A program with one ``constexpr_blockwise_shift_scale`` per weight (all with the same scale
    and offset, so only their data tells them apart), written; returns weight.bin."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    scale = np.full((ROWS, COLUMNS // 32), 0.5, dtype=np.float16)
    offset = np.full((ROWS, COLUMNS // 32), 3.0, dtype=np.float16)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, COLUMNS))], opset_version=ct.target.iOS18)
    def program(x):
        outputs = []
        for name, values, data_type in _weights():
            weight = mb.constexpr_blockwise_shift_scale(
                data=data_for(name, values, data_type), scale=scale, offset=offset, name=name
            )
            outputs.append(mb.linear(x=x, weight=weight))
        return mb.concat(values=outputs, axis=-1)

    model = ct.convert(
        program,
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS18,
        skip_model_load=True,
    )
    model.save(str(folder / "model.mlpackage"))
    (weights,) = (folder / "model.mlpackage").rglob("weight.bin")
    return weights.read_bytes()


def _core_ml_dtype(data_type: str) -> np.dtype:
    from coremltools.converters.mil.mil import types

    return {"uint4": types.np_uint4_dtype, "int8": np.dtype(np.int8)}[data_type]


def test_lazy_weights_write_the_same_bytes_as_eager_ones(tmp_path: Path) -> None:
    eager_dir, lazy_dir = tmp_path / "eager", tmp_path / "lazy"
    eager_dir.mkdir()
    lazy_dir.mkdir()
    eager = _build(eager_dir, lambda _, values, data_type: values.astype(_core_ml_dtype(data_type)))

    lazy = LazyWeights()
    decoded: list[weakref.ref] = []
    calls: list[str] = []

    def placeholder(name: str, values: np.ndarray, data_type: str) -> np.ndarray:
        def decode() -> np.ndarray:
            calls.append(name)
            array = values.copy()  # a fresh array per write, as decoding the GGUF gives
            decoded.append(weakref.ref(array))
            return array

        return lazy.placeholder(values.shape, _core_ml_dtype(data_type), name=name, decode=decode)

    with writing_lazy_weights(lazy):
        written = _build(lazy_dir, placeholder)
    assert sorted(calls) == ["first", "second", "third"]  # each decoded once, none merged
    assert written == eager  # coremltools' own 4-bit packing, the same offsets
    gc.collect()
    assert decoded and all(ref() is None for ref in decoded)  # no decoded array kept alive


def test_a_placeholder_never_written_is_an_error(
    tmp_path: Path,
) -> None:
    lazy = LazyWeights()
    lazy.placeholder((ROWS, COLUMNS), np.dtype(np.uint8), name="never", decode=lambda: None)
    with (
        pytest.raises(ConversionError, match=r"1 of 1 weights were not written .* never"),
        writing_lazy_weights(lazy),
    ):
        pass  # nothing written: the program holding the placeholder was never saved


def test_a_placeholder_decoding_to_the_wrong_shape_is_refused(tmp_path: Path) -> None:
    lazy = LazyWeights()

    def placeholder(name: str, values: np.ndarray, data_type: str) -> np.ndarray:
        return lazy.placeholder(
            values.shape, _core_ml_dtype(data_type), name=name, decode=lambda: values[:1]
        )

    with (
        pytest.raises(ConversionError, match=r"weight first: decoded \(1, 96\), the program"),
        writing_lazy_weights(lazy),
    ):
        _build(tmp_path, placeholder)


def test_an_untested_coremltools_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import coremltools

    monkeypatch.setattr(coremltools, "__version__", "9.1")
    with (
        pytest.raises(ConversionError, match=r"coremltools 9\.0's MIL blob writer; found .* 9\.1"),
        writing_lazy_weights(LazyWeights()),
    ):
        pass


def test_a_coremltools_without_the_weight_writer_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from coremltools.converters.mil.backend.mil import helper

    monkeypatch.delattr(helper, "_get_offset_by_writing_data")
    with (
        pytest.raises(ConversionError, match=r"no MIL backend helper\._get_offset_by_writing_data"),
        writing_lazy_weights(LazyWeights()),
    ):
        pass


def test_the_hook_is_removed_even_when_the_build_fails() -> None:
    from coremltools.converters.mil.backend.mil import helper

    original = helper._get_offset_by_writing_data
    with (
        pytest.raises(RuntimeError, match="build failed"),
        writing_lazy_weights(LazyWeights()),
    ):
        assert helper._get_offset_by_writing_data is not original
        raise RuntimeError("build failed")
    assert helper._get_offset_by_writing_data is original
