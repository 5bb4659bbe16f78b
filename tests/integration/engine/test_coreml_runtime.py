"""The Core ML path at its boundary. Core ML cannot run on Linux: the named Core ML stand-in
(``engine/runtime/coreml_standin.py``: coremltools' ``ComputeUnit``, ``compile_model`` and
``CompiledMLModel`` on the reference runtime, holding the GIL, float16 in and out as coremltools
converts them) takes the macOS framework's place; ``RecordingCoreML`` adds a record of what our
code asks of it. Everything on our side of that boundary is real."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.package import metadata as meta
from engine.package.model import ModelLoadError
from engine.paths import package_key
from engine.runtime import coreml as coreml_runtime
from engine.runtime.coreml_standin import (
    StandinCompiledModel,
    StandinCoreMLTools,
    StandinTimings,
    hold_gil,
)


class RecordingCoreML(StandinCoreMLTools):
    """The stand-in, recording compiles, loads and predict inputs; ``fail_units`` fail to load
    with Core ML's own kind of message (as a stateful int4 model on the Neural Engine does)."""

    def __init__(self, timings: StandinTimings | None = None) -> None:
        super().__init__(timings or StandinTimings())
        self.compiled: list[str] = []
        self.loaded: list[tuple[str, Any]] = []
        self.predictions: list[dict] = []
        self.fail_units: tuple[Any, ...] = ()

    def compile_model(self, model: str, destination_path: str | None = None) -> str:
        self.compiled.append(model)
        return super().compile_model(model, destination_path)

    def compiled_ml_model(self, path: str, compute_units: Any = None) -> StandinCompiledModel:
        self.loaded.append((path, compute_units))
        if compute_units in self.fail_units:
            raise RuntimeError("Error computing NN outputs")
        return RecordedModel(super().compiled_ml_model(path, compute_units), self.predictions)


class RecordedModel:
    """A stand-in compiled model whose ``predict`` inputs are kept in ``record``."""

    def __init__(self, model: StandinCompiledModel, record: list[dict]) -> None:
        self._model = model
        self._record = record

    def make_state(self) -> Any:
        return self._model.make_state()

    def predict(self, data: dict, state: Any = None) -> dict:
        self._record.append(data)
        return self._model.predict(data, state)


@pytest.fixture
def framework(monkeypatch) -> RecordingCoreML:
    fake = RecordingCoreML()
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
    units = framework.ComputeUnit
    assert (unit_a, unit_b) == (units.CPU_AND_GPU, units.CPU_ONLY)  # members, not strings
    assert first.description.runtime_name == "coreml"
    assert second.description.context_length == 256


def test_changed_package_is_compiled_again(framework, converted_package, tmp_path):
    import shutil

    package = Path(shutil.copytree(_package(converted_package), tmp_path / "Copy.mlpackage"))
    key = package_key(package)
    coreml_runtime.load_coreml_model(package)
    weights = package / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    stat = weights.stat()  # saved again: same bytes, a new date (the stand-in loads the weights)
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert package_key(package) != key
    coreml_runtime.load_coreml_model(package)
    assert len(framework.compiled) == 2
    # the first copy is gone: each changed 7B package would leave another ~3.8 GB otherwise
    assert _compiled_copies() == [coreml_runtime.compiled_model_path(package).name]


def _compiled_copies() -> list[str]:
    from engine.paths import cache_dir

    return sorted(path.name for path in (cache_dir() / "compiled").iterdir())


def test_older_copies_of_other_packages_stay(framework, converted_package, tmp_path):
    import shutil

    original = _package(converted_package)
    same_name = Path(shutil.copytree(original, tmp_path / "elsewhere" / original.name))
    coreml_runtime.load_coreml_model(original)
    coreml_runtime.load_coreml_model(same_name)  # same file name, another folder
    expected = sorted(coreml_runtime.compiled_model_path(p).name for p in (original, same_name))
    assert _compiled_copies() == expected
    coreml_runtime.load_coreml_model(original)
    assert len(framework.compiled) == 2


def test_a_copy_named_the_old_way_and_a_dead_partial_are_removed(
    framework, converted_package, tmp_path
):
    import shutil

    package = Path(shutil.copytree(_package(converted_package), tmp_path / "Old.mlpackage"))
    folder = coreml_runtime.compiled_model_path(package).parent
    legacy = folder / f"Old-{'0' * 32}.mlmodelc"  # before the folder's location was in the name
    dead = folder / f"{coreml_runtime.compiled_model_path(package).name}.partial-999999999"
    other = folder / f"Older-{'0' * 32}.mlmodelc"  # another package's: kept
    for path in (legacy, dead, other):
        path.mkdir(parents=True)
    coreml_runtime.load_coreml_model(package)
    assert _compiled_copies() == sorted(
        [coreml_runtime.compiled_model_path(package).name, other.name]
    )


def test_a_second_process_finishing_its_compile_uses_the_first_ones_copy(
    framework, converted_package, monkeypatch
):
    """Two processes compile the same package at once: the second to finish finds the target in
    place (``os.replace`` of a folder onto a non-empty one failed here) and drops its own copy."""
    import shutil

    package = _package(converted_package)
    target = coreml_runtime.compiled_model_path(package)
    compile_model = framework.compile_model
    outputs: list[Path] = []

    def compile_while_another_process_finishes(model: str, destination_path=None) -> str:
        output = compile_model(model, destination_path)
        shutil.copytree(output, target)  # the other process's rename lands while we compile
        (target / "theirs").write_text("compiled by the other process")
        outputs.append(Path(output))
        return output

    framework.utils.compile_model = compile_while_another_process_finishes
    model = coreml_runtime.load_coreml_model(package)
    assert model.description.runtime_name == "coreml"
    assert (target / "theirs").is_file()  # theirs is used, not replaced
    assert _compiled_copies() == [target.name]  # our copy dropped, no partial left
    assert not outputs[0].exists()


def test_a_failed_compile_or_move_leaves_nothing_behind(framework, converted_package, monkeypatch):
    package = _package(converted_package)
    outputs: list[Path] = []
    compile_model = framework.compile_model

    def failing_compile(model: str, destination_path=None) -> str:
        raise RuntimeError("compiler error: unsupported op")

    framework.utils.compile_model = failing_compile
    with pytest.raises(ModelLoadError, match=r"could not compile .*unsupported op"):
        coreml_runtime.load_coreml_model(package)

    def compile_then_remember(model: str, destination_path=None) -> str:
        outputs.append(Path(compile_model(model, destination_path)))
        return str(outputs[-1])

    def move_half_then_fail(source: str, destination) -> None:
        Path(destination).mkdir()
        (Path(destination) / "half").write_text("the disk filled up")
        raise OSError(28, "No space left on device")

    framework.utils.compile_model = compile_then_remember
    monkeypatch.setattr(coreml_runtime.shutil, "move", move_half_then_fail)
    with pytest.raises(ModelLoadError, match="No space left"):
        coreml_runtime.load_coreml_model(package)
    assert _compiled_copies() == []
    assert not outputs[0].exists()  # Core ML's output too


def test_neural_engine_failure_says_so_and_suggests_the_gpu(framework, converted_package):
    framework.fail_units = (framework.ComputeUnit.CPU_AND_NE,)
    with pytest.raises(ModelLoadError, match=r"Neural Engine.*CPU and GPU"):
        coreml_runtime.load_coreml_model(_package(converted_package), compute_units="cpu_and_ne")


def test_with_all_units_core_mls_own_error_is_shown(framework, converted_package):
    """With "all", Core ML chooses the units: its error is shown, the Neural Engine not blamed."""
    framework.fail_units = (framework.ComputeUnit.ALL,)
    with pytest.raises(ModelLoadError) as raised:
        coreml_runtime.load_coreml_model(_package(converted_package), compute_units="all")
    message = str(raised.value)
    assert message == "Core ML could not load TinyMistral.mlpackage: Error computing NN outputs"


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
    retention = coreml_runtime.InputRetention(clock=lambda: now[0])
    monkeypatch.setattr(coreml_runtime, "PROCESS_RETENTION", retention)
    model = coreml_runtime.load_coreml_model(_package(converted_package))
    state = model.make_state()

    def predict_once() -> list[weakref.ref]:
        ids = np.zeros((1, 1), np.int32)
        mask = np.zeros((1, 1, 1, 1), np.float16)
        model.predict({meta.INPUT_IDS: ids, meta.CAUSAL_MASK: mask}, state)
        sent = framework.predictions.pop()  # the stand-in lets go of them at once
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
    framework.release.wait_idle()  # and Core ML's queue let go of them too
    gc.collect()
    assert all(ref() is None for ref in first)
    assert all(ref() is not None for ref in second)


def test_the_standin_is_as_strict_as_coremltools(framework, converted_package):
    """Strings are not compute units; float16 inputs are replaced by float32 copies in the
    caller's dict; float16 outputs come back float32 (coremltools 9.0 on a Mac)."""
    package = _package(converted_package)
    compiled = framework.compile_model(str(package))
    with pytest.raises(TypeError, match=r"coremltools\.ComputeUnit"):
        framework.compiled_ml_model(compiled, "CPU_AND_GPU")
    model = framework.compiled_ml_model(compiled, framework.ComputeUnit.CPU_ONLY)
    mask = np.zeros((1, 1, 1, 1), np.float16)
    data = {meta.INPUT_IDS: np.zeros((1, 1), np.int32), meta.CAUSAL_MASK: mask}
    out = model.predict(data, model.make_state())
    assert data[meta.CAUSAL_MASK] is not mask and data[meta.CAUSAL_MASK].dtype == np.float32
    assert out[meta.LOGITS].dtype == np.float32


def test_a_chat_on_core_ml_float32_logits_answers_as_the_reference_runtime(
    framework, converted_package
):
    """Core ML hands back float32 logits where the reference runtime has float16: the same
    tokens, greedy and sampled (the sampler's float32 path is as exact as its float16 one)."""
    from engine.generation.generate import stream_generate
    from engine.generation.open_chat import open_chat
    from engine.messages import ChatMessage, GenerationConfig
    from engine.runtime.coreml_standin import StandinTimings, standin_loader

    folder = converted_package("mistral", "int4")
    messages = (ChatMessage("user", "Hello there"),)
    answers = []
    for load in (None, standin_loader(StandinTimings())):
        session = open_chat(folder, load=load, runtime="reference")
        for config in (
            GenerationConfig(temperature=0.0, max_new_tokens=6),
            GenerationConfig(temperature=0.9, top_p=0.9, seed=3, max_new_tokens=6),
            GenerationConfig(
                temperature=0.9, top_k=20, repetition_penalty=1.3, seed=3, max_new_tokens=6
            ),
        ):
            responses = stream_generate(session, session.new_cache(), messages, config)
            tokens = [response.token for response in responses if response.token >= 0]
            answers.append((session.model.description.runtime_name, tokens))
    reference, coreml = answers[:3], answers[3:]
    assert {name for name, _ in reference} == {"reference"}
    assert {name for name, _ in coreml} == {"coreml"}
    assert [ids for _, ids in coreml] == [ids for _, ids in reference]


def test_inputs_outlive_the_model_that_took_them(converted_package, monkeypatch):
    """A model unloaded (or swapped for another) within a second of its last predict: Core ML's
    queue still lets go of that predict's inputs later, without the GIL. Were the references kept
    by the model, that release would free them (a crash on a Mac); the stand-in records it."""
    import gc

    framework = RecordingCoreML(StandinTimings(release_seconds=0.5, compile_seconds=0))
    monkeypatch.setattr(coreml_runtime, "import_coremltools", lambda: framework)
    package = _package(converted_package)
    model = coreml_runtime.load_coreml_model(package)
    other = coreml_runtime.load_coreml_model(package, compute_units="cpu_only")
    ids, mask = np.zeros((1, 1), np.int32), np.zeros((1, 1, 1, 1), np.float16)
    model.predict({meta.INPUT_IDS: ids, meta.CAUSAL_MASK: mask}, model.make_state())
    model = other  # the swap, well within the second Core ML takes to let go of the inputs
    framework.predictions.clear()  # the recording's references: Core ML keeps none of its own
    del ids, mask
    gc.collect()
    framework.release.wait_idle()
    assert framework.freed_without_gil == []


def test_the_standin_is_as_unkind_as_coremltools(converted_package):
    """What coremltools 9.0 does on a Mac and a kinder stand-in would hide: dtypes beyond int32,
    float32 and float64 refused; compiling holds the GIL for a while; the first predict of a new
    shape is slower; Core ML's failures are RuntimeErrors; inputs the caller drops are freed late,
    on Core ML's queue."""
    import threading
    import time

    timings = StandinTimings(compile_seconds=0.4, new_shape_seconds=0.3, release_seconds=0.1)
    framework = StandinCoreMLTools(timings)
    package = _package(converted_package)
    ticks: list[float] = []
    stop = threading.Event()

    def tick() -> None:
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.01)

    ticker = threading.Thread(target=tick)
    ticker.start()
    try:
        hold_gil(0.05)  # let the ticker start
        compiled = framework.compile_model(str(package))
    finally:
        stop.set()
        ticker.join()
    assert max(np.diff(ticks)) >= 0.35  # no other thread ran while it compiled

    model = framework.compiled_ml_model(compiled, framework.ComputeUnit.CPU_ONLY)
    state = model.make_state()
    with pytest.raises(RuntimeError, match="int64"):
        model.predict(
            {meta.INPUT_IDS: np.zeros((1, 1), np.int64), meta.CAUSAL_MASK: np.zeros((1, 1, 1, 1))},
            state,
        )

    def timed(length: int) -> float:
        data = {
            meta.INPUT_IDS: np.zeros((1, length), np.int32),
            meta.CAUSAL_MASK: np.zeros((1, 1, length, length), np.float32),
        }
        started = time.perf_counter()
        model.predict(data, model.make_state())
        return time.perf_counter() - started

    first, again = timed(2), timed(2)
    assert first >= 0.3 > again
    with pytest.raises(RuntimeError, match="Error computing NN outputs"):
        model.predict(  # wider than the context: the reference runtime's ValueError, Core ML's type
            {
                meta.INPUT_IDS: np.zeros((1, 1), np.int32),
                meta.CAUSAL_MASK: np.zeros((1, 1, 1, 999), np.float32),
            },
            state,
        )
    framework.release.wait_idle()
    assert meta.INPUT_IDS in framework.freed_without_gil  # nobody kept the inputs: a Mac crashes
