""" "CPU only" is not "always works": Core ML's CPU path expands the weights to float16, ~14 GB
for a 7B int4 model. The hint under the choice warns when the loaded model would not fit."""

from __future__ import annotations

from app.models import model_library
from engine.messages import ModelInfo

GB = 1_000_000_000


def _loaded(tmp_path, size: int) -> ModelInfo:
    package = tmp_path / "Mistral7B" / "Mistral7B.mlpackage"
    weights = package / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    weights.parent.mkdir(parents=True)
    with open(weights, "wb") as file:
        file.truncate(size)  # sparse: the size of a 7B's weights, no disk used
    return ModelInfo(
        path=str(package.parent), name="Mistral7B", context_length=4096, runtime_name="coreml",
        compute_units="cpu_only", quantization="int4-searched-block32", architecture="mistral",
    )  # fmt: skip


def test_cpu_only_warns_when_a_7b_would_not_fit_in_memory(tmp_path, monkeypatch) -> None:
    info = _loaded(tmp_path, int(3.8 * GB))
    monkeypatch.setattr(model_library, "physical_memory_bytes", lambda: 16 * 2**30)
    tip = model_library.compute_unit_tip("cpu_only", info)
    assert "about 13.5 GB" in tip and "17 GB of memory" in tip and "CPU and GPU" in tip
    assert "always works" not in model_library.compute_unit_tip("cpu_only", None)
    # other choices, or enough memory: the plain hint
    assert (
        model_library.compute_unit_tip("cpu_and_gpu", info)
        == (model_library.COMPUTE_UNIT_TIPS["cpu_and_gpu"])
    )
    monkeypatch.setattr(model_library, "physical_memory_bytes", lambda: 64 * 2**30)
    assert (
        model_library.compute_unit_tip("cpu_only", info)
        == (model_library.COMPUTE_UNIT_TIPS["cpu_only"])
    )
