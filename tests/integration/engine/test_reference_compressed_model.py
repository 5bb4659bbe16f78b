"""The reference runtime on a converted int4 package: weights kept compressed hold about the
package's size and answer as the fully dequantized model does."""

from __future__ import annotations

import numpy as np

from engine.package import metadata as meta
from engine.package.model import find_package
from engine.runtime.reference.runtime import load_reference_model


def test_an_int4_model_holds_about_its_package_size_and_answers_the_same(converted_package):
    """With no budget for dequantized copies the weights stay compressed (≤ 1.3× the package;
    float32 copies were 8× and more), and the logits match the fully dequantized model's."""
    from engine.generation.session import causal_mask

    package = find_package(converted_package("mistral", "int4"))
    weights = package / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    compressed = load_reference_model(package, weight_cache_bytes=0)
    dequantized = load_reference_model(package, weight_cache_bytes=1 << 30)
    ids = np.array([[1, 5, 9, 200, 33, 7]], np.int32)
    outputs = []
    for model in (compressed, dequantized):
        state = model.make_state()
        first = model.predict(
            {meta.INPUT_IDS: ids[:, :4], meta.CAUSAL_MASK: causal_mask(0, 4)}, state
        )
        second = model.predict(
            {meta.INPUT_IDS: ids[:, 4:], meta.CAUSAL_MASK: causal_mask(4, 2)}, state
        )
        outputs.append(np.concatenate([first[meta.LOGITS], second[meta.LOGITS]], axis=1))
    np.testing.assert_allclose(
        outputs[0].astype(np.float32), outputs[1].astype(np.float32), atol=1e-2
    )
    assert compressed.held_bytes() <= 1.3 * weights.stat().st_size
    assert dequantized.held_bytes() > 4 * weights.stat().st_size  # the copies were made and kept
