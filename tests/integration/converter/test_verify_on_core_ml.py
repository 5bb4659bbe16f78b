"""``--verify`` on a Mac, at the Core ML boundary (the named stand-in,
``engine/runtime/coreml_standin.py``, in the framework's place): the package is compiled into a
folder of its own that goes with the verification, never into the app's compiled cache, where a
copy named after the staging folder would never be found again (and a 7B's copy is GBs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import engine.runtime
from converter import verify
from engine.package import metadata as meta
from engine.paths import compiled_cache_dir
from engine.runtime import coreml as coreml_runtime
from engine.runtime.coreml_standin import StandinCoreMLTools, StandinTimings


class CompileRecord(StandinCoreMLTools):
    def __init__(self) -> None:
        super().__init__(StandinTimings(compile_seconds=0))
        self.outputs: list[Path] = []

    def compile_model(self, model: str, destination_path: str | None = None) -> str:
        output = super().compile_model(model, destination_path)
        self.outputs.append(Path(output))
        return output


def test_verify_on_core_ml_leaves_no_compiled_copy_behind(converted_package, monkeypatch):
    folder = converted_package("mistral", "int4")
    (package,) = folder.glob("*.mlpackage")
    reference_model = engine.runtime.load_model(package, runtime="reference")
    tokens = [1, 5, 9, 2]
    state = reference_model.make_state()
    rows = []
    for position, token in enumerate(tokens):
        inputs = {
            meta.INPUT_IDS: np.array([[token]], np.int32),
            meta.CAUSAL_MASK: np.zeros((1, 1, 1, position + 1), np.float16),
        }
        rows.append(reference_model.predict(inputs, state)[meta.LOGITS][0, -1].astype(np.float32))
    reference = verify.ReferenceLogits(token_ids=tokens, logits=np.stack(rows))

    framework = CompileRecord()
    monkeypatch.setattr(engine.runtime, "coreml_available", lambda: True)
    monkeypatch.setattr(coreml_runtime, "import_coremltools", lambda: framework)
    report = verify.verify_package(package, reference, quantize="int4")

    assert report.runtime == "coreml" and report.top1_agreement == 1.0
    assert len(framework.outputs) == 1  # it was compiled, once
    assert not framework.outputs[0].exists()  # and that copy went with the verification
    cached = list(compiled_cache_dir().glob("*")) if compiled_cache_dir().is_dir() else []
    assert cached == []
