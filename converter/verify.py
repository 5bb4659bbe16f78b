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

VERIFY_TOKENS = 16
# The gate: a broken conversion agrees on almost no token; quantization alone costs some agreement
# (SmolLM2-135M int4 measured 67%, float16 100%), more for small models than for 7B ones.
MIN_TOP1_AGREEMENT = {"none": 0.9, "int8": 0.8, "int4": 0.5, "exact": 0.9}
# Natural text: its next-token distributions are peaked, as in a chat, so top-1 agreement measures
# the conversion and not how a quantized model breaks ties between random tokens.
VERIFY_TEXT = "The capital of France is Paris. The quick brown fox jumps over the lazy dog."


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


def verification_tokens(tokenizer_file: Path, vocab_size: int) -> np.ndarray:
    """``VERIFY_TEXT`` tokenized, or pseudo-random ids when the tokenizer cannot be read."""
    try:
        from tokenizers import Tokenizer

        ids = Tokenizer.from_file(str(tokenizer_file)).encode(VERIFY_TEXT).ids
    except Exception:  # any tokenizer problem: random ids still check the numerics
        ids = []
    ids = [i for i in ids if 0 <= i < vocab_size][:VERIFY_TOKENS]
    if len(ids) < VERIFY_TOKENS:
        ids = np.random.default_rng(0).integers(0, vocab_size, size=VERIFY_TOKENS).tolist()
    return np.asarray(ids, dtype=np.int32)


def reference_logits(module: StatefulCausalLM, tokens: np.ndarray) -> ReferenceLogits:
    """Logits of the torch module for ``tokens``, computed token by token."""
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
    package: Path,
    reference: ReferenceLogits,
    *,
    quantize: str,
    compute_units: str = "cpu_and_gpu",
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
        passed=agreement >= MIN_TOP1_AGREEMENT[quantize] and bool(np.isfinite(got).all()),
    )
