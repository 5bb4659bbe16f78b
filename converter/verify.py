"""The numerical gate after a conversion: run the saved package and compare it with torch.

The torch module's logits for a fixed prompt are computed before the module is freed (the
``ReferenceLogits``); afterwards the package runs through ``engine.runtime.load_model`` (Core ML on a
Mac, the reference runtime elsewhere) on the same prompt, fed whole and then token by token.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from converter.torch_model import StatefulCausalLM, causal_mask
from engine import package_metadata as meta

VERIFY_TOKENS = 12
MIN_TOP1_AGREEMENT = 0.9


@dataclass(frozen=True)
class ReferenceLogits:
    token_ids: np.ndarray  # (q,) int32
    logits: np.ndarray  # (q, vocab) float32, or (1, vocab) for last-logits-only


@dataclass(frozen=True)
class VerificationReport:
    runtime: str
    tokens: int
    top1_agreement: float
    max_abs_difference: float
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def reference_logits(module: StatefulCausalLM, *, seed: int = 0) -> ReferenceLogits:
    """Logits of the torch module for a fixed pseudo-random prompt, computed token by token."""
    generator = np.random.default_rng(seed)
    tokens = generator.integers(0, module.spec.vocab_size, size=VERIFY_TOKENS).astype(np.int32)
    module.reset_cache()
    rows = []
    with torch.no_grad():
        for position, token in enumerate(tokens):
            ids = torch.tensor([[int(token)]], dtype=torch.int32)
            logits = module(ids, causal_mask(position, 1, dtype=torch.float16))
            rows.append(logits[0, -1].float().numpy())
    module.reset_cache()
    return ReferenceLogits(token_ids=tokens, logits=np.stack(rows))


def verify_package(
    package: Path, reference: ReferenceLogits, *, compute_units: str = "cpu_and_gpu"
) -> VerificationReport:
    from engine.runtime import load_model

    model = load_model(package, compute_units=compute_units)
    state = model.make_state()
    rows = []
    for position, token in enumerate(reference.token_ids):
        outputs = model.predict(
            {
                meta.INPUT_IDS: np.array([[token]], dtype=np.int32),
                meta.CAUSAL_MASK: np.zeros((1, 1, 1, position + 1), dtype=np.float16),
            },
            state,
        )
        rows.append(np.asarray(outputs[meta.LOGITS], dtype=np.float32)[0, -1])
    got = np.stack(rows)
    want = reference.logits
    agreement = float(np.mean(got.argmax(-1) == want.argmax(-1)))
    difference = float(np.max(np.abs(got - want)))
    return VerificationReport(
        runtime=model.description.runtime_name,
        tokens=len(rows),
        top1_agreement=agreement,
        max_abs_difference=difference,
        passed=agreement >= MIN_TOP1_AGREEMENT and bool(np.isfinite(got).all()),
    )
