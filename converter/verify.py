"""The numerical gate after a conversion: run the saved package and compare it with the source.

The reference is the source model itself, run by transformers in float32 (``source_logits``; in
bfloat16 when a float32 copy would not fit in half the machine's memory: 29 GB for a 7B model),
not our own torch module: a gate that compares the package with the module it was traced from cannot see
what the module got wrong (a dropped bias once verified as 100% while agreeing 0% with the source).
The package runs through ``engine.runtime.load_model`` (Core ML on a Mac, the reference runtime
elsewhere) on the same tokens, one at a time.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from converter.source import ResolvedSource
from engine.package import metadata as meta

logger = logging.getLogger(__name__)

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
    logits: np.ndarray  # (q, vocab) float32: one row per position


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


def physical_memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def reference_dtype(parameters: int, *, physical_bytes: int) -> torch.dtype:
    """float32 when the source fits in half the machine's memory that way, else bfloat16 (the
    dtype most full-precision sources are published in, so nothing is rounded on loading)."""
    return torch.float32 if parameters * 4 <= physical_bytes // 2 else torch.bfloat16


def source_logits(source: ResolvedSource, tokens: np.ndarray) -> ReferenceLogits:
    """The source model's logits for ``tokens``: transformers' own implementation, in float32 (or
    bfloat16 for a model too big for float32 here: see ``reference_dtype``)."""
    import gc

    from transformers import AutoModelForCausalLM

    from converter.errors import ConversionError

    dtype = reference_dtype(source.spec.parameter_count, physical_bytes=physical_memory_bytes())
    if dtype != torch.float32:
        logger.info(
            "verifying against the source in %s: %.0f GB of float32 would not fit in memory",
            str(dtype).removeprefix("torch."),
            source.spec.parameter_count * 4 / 1e9,
        )
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(source.folder), gguf_file=source.gguf_file, dtype=dtype
        )
    except (OSError, ValueError, RuntimeError, KeyError) as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ConversionError(
            f"cannot load {source.source_id} in transformers to verify against: {first_line}"
        ) from error
    model.eval()
    with torch.no_grad():
        ids = torch.tensor(np.asarray(tokens, dtype=np.int64)[None, :])
        logits = model(input_ids=ids).logits[0].float().numpy()
    del model
    gc.collect()
    return ReferenceLogits(token_ids=tokens, logits=logits)


def verify_package(
    package: Path,
    reference: ReferenceLogits,
    *,
    quantize: str,
    compute_units: str = "cpu_and_gpu",
) -> VerificationReport:
    with tempfile.TemporaryDirectory(prefix="coreml-chat-verify-") as compiled:
        # On a Mac, Core ML compiles the package here, not into the app's cache: it sits in the
        # staging folder, so a cached copy would be named after a place it is about to leave (the
        # app would compile it again after the move, and the first copy, GBs, would stay).
        return _run_teacher_forced(
            package, reference, quantize=quantize, compute_units=compute_units,
            compile_into=Path(compiled),
        )  # fmt: skip


def _run_teacher_forced(
    package: Path,
    reference: ReferenceLogits,
    *,
    quantize: str,
    compute_units: str,
    compile_into: Path,
) -> VerificationReport:
    from engine.runtime import load_model

    model = load_model(package, compute_units=compute_units, compile_into=compile_into)
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
