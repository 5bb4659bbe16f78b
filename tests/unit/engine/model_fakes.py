"""A small fake of the ``Model`` protocol for pure engine logic (planning, sampling, grammars)."""

from __future__ import annotations

import numpy as np

from engine.package import metadata as meta
from engine.package.model import ModelDescription, TensorSpec


class RandomModel:
    """A stateful model of ``context`` tokens whose logits are random but fixed by the token fed
    and the seed (the same prompt gives the same answer): a model that knows nothing, so any
    structure in its answers comes from the sampler."""

    def __init__(self, *, vocab: int, context: int = 512, seed: int = 0) -> None:
        self.vocab, self.seed = vocab, seed
        self.description = ModelDescription(
            inputs=(
                TensorSpec(meta.INPUT_IDS, "int32", (1, None)),
                TensorSpec(meta.CAUSAL_MASK, "float16", (1, 1, None, None)),
            ),
            outputs=(TensorSpec(meta.LOGITS, "float16", (1, None, vocab)),),
            states=(TensorSpec("keyCache", "float16", (1, 1, 1, context, 1)),),
            context_length=context,
            runtime_name="fake",
        )

    def make_state(self) -> object:
        return object()

    def predict(self, inputs: dict, state: object) -> dict:
        ids = inputs[meta.INPUT_IDS][0]
        last = np.random.default_rng((self.seed, int(ids[-1]))).standard_normal(self.vocab) * 3
        logits = np.zeros((1, len(ids), self.vocab), dtype=np.float16)
        logits[0, -1] = last
        return {meta.LOGITS: logits}
