"""The Core ML path at its boundary. Core ML cannot run on Linux: ``FakeCoreMLFramework`` is a
mock of the macOS framework (coremltools' compile_model / CompiledMLModel / ComputeUnit), recording
what our code asks of it. Everything on our side of that boundary is real."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest

from engine import coreml_runtime
from engine import package_metadata as meta
from engine.model_package import ModelLoadError
from engine.paths import package_key


class FakeCoreMLFramework:
    """Mock of the macOS Core ML framework as coremltools exposes it."""

    def __init__(self, *, fail_units: tuple[str, ...] = ()) -> None:
        self.compiled: list[str] = []
        self.loaded: list[tuple[str, str]] = []
        self.predictions: list[dict] = []
        self.fail_units = fail_units
        self.ComputeUnit = types.SimpleNamespace(
            CPU_AND_GPU="CPU_AND_GPU", ALL="ALL", CPU_ONLY="CPU_ONLY", CPU_AND_NE="CPU_AND_NE"
        )
        self.utils = types.SimpleNamespace(compile_model=self._compile)
        self.models = types.SimpleNamespace(CompiledMLModel=self._load)
        self.scratch: Path | None = None

    def _compile(self, package: str) -> str:
        self.compiled.append(package)
        assert self.scratch is not None
        output = self.scratch / f"compiled-{len(self.compiled)}.mlmodelc"
        output.mkdir(parents=True)
        (output / "model.mil").write_text("compiled")
        return str(output)

    def _load(self, path: str, compute_units: str):
        self.loaded.append((path, compute_units))
        if compute_units in self.fail_units:
            raise RuntimeError("Error computing NN outputs")
        framework = self

        class Compiled:
            def make_state(self):
                return {"fake": "state"}

            def predict(self, inputs, state=None):
                framework.predictions.append(inputs)
                return {meta.LOGITS: np.zeros((1, 1, 4), np.float16)}

        return Compiled()


@pytest.fixture
def framework(monkeypatch, tmp_path) -> FakeCoreMLFramework:
    fake = FakeCoreMLFramework()
    fake.scratch = tmp_path / "scratch"
    monkeypatch.setattr(coreml_runtime, "import_coremltools", lambda: fake)
    return fake


def _package(converted_package) -> Path:
    (package,) = converted_package("mistral", "int4").glob("*.mlpackage")
    return package


def test_compiles_once_and_reuses_the_cached_model(framework, converted_package):
    package = _package(converted_package)
    first = coreml_runtime.load_coreml_model(package, compute_units="cpu_and_gpu")
    second = coreml_runtime.load_coreml_model(package, compute_units="cpu_only")
    assert len(framework.compiled) == 1
    (path_a, unit_a), (path_b, unit_b) = framework.loaded
    assert path_a == path_b and Path(path_a).is_dir()
    assert (unit_a, unit_b) == ("CPU_AND_GPU", "CPU_ONLY")
    assert first.description.runtime_name == "coreml"
    assert second.description.context_length == 256


def test_changed_package_is_compiled_again(framework, converted_package, tmp_path):
    import shutil

    package = Path(shutil.copytree(_package(converted_package), tmp_path / "Copy.mlpackage"))
    key = package_key(package)
    coreml_runtime.load_coreml_model(package)
    (package / "Data" / "com.apple.CoreML" / "weights" / "weight.bin").write_bytes(b"changed")
    assert package_key(package) != key
    coreml_runtime.load_coreml_model(package)
    assert len(framework.compiled) == 2


def test_neural_engine_failure_says_so_and_suggests_the_gpu(framework, converted_package):
    framework.fail_units = ("CPU_AND_NE",)
    with pytest.raises(ModelLoadError, match=r"Neural Engine.*CPU and GPU"):
        coreml_runtime.load_coreml_model(_package(converted_package), compute_units="cpu_and_ne")


def test_inputs_are_checked_before_core_ml_sees_them(framework, converted_package):
    model = coreml_runtime.load_coreml_model(_package(converted_package))
    state = model.make_state()
    with pytest.raises(ValueError, match="missing input 'causalMask'"):
        model.predict({meta.INPUT_IDS: np.zeros((1, 1), np.int32)}, state)
    model.predict(
        {meta.INPUT_IDS: np.zeros((1, 2), np.int64), meta.CAUSAL_MASK: np.zeros((1, 1, 2, 2))},
        state,
    )
    (sent,) = framework.predictions
    # float16 inputs reach Core ML as float32 (the work-around for apple/coremltools #2827, #2829)
    assert sent[meta.INPUT_IDS].dtype == np.int32 and sent[meta.CAUSAL_MASK].dtype == np.float32


def test_inputs_handed_to_core_ml_stay_referenced_for_30_seconds(
    framework, converted_package, monkeypatch
):
    """Core ML drops its references to predict's inputs late, on its own queue, without the GIL
    (apple/coremltools PR #2827, #2829): ours must outlive that, and older ones must go."""
    import gc
    import weakref

    now = [1000.0]
    monkeypatch.setattr(coreml_runtime.time, "monotonic", lambda: now[0])
    model = coreml_runtime.load_coreml_model(_package(converted_package))
    state = model.make_state()

    def predict_once() -> list[weakref.ref]:
        ids = np.zeros((1, 1), np.int32)
        mask = np.zeros((1, 1, 1, 1), np.float16)
        model.predict({meta.INPUT_IDS: ids, meta.CAUSAL_MASK: mask}, state)
        sent = framework.predictions.pop()  # the framework mock lets go of them at once
        return [weakref.ref(array) for array in sent.values()]

    first = predict_once()
    gc.collect()
    assert all(ref() is not None for ref in first)  # the caller and Core ML let go: still held
    now[0] += 29.0
    second = predict_once()
    gc.collect()
    assert all(ref() is not None for ref in first + second)
    now[0] += 2.0  # the first call is now 31 s old, the second 2 s
    predict_once()
    gc.collect()
    assert all(ref() is None for ref in first)
    assert all(ref() is not None for ref in second)
