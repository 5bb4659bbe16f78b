"""A fixed prose text and the teacher-forced comparison of two runtimes' logits over it.

The doctor compares Core ML with the reference runtime, ``benchmarks/fidelity.py`` a package with
its source in transformers: the same text and the same figures (top-1 agreement, mean KL of the
candidate from the reference, max absolute logit difference) for both. The session (model code)
is imported only where logits are made: ``app/doctor.py`` imports ``compare`` without it.
"""

from __future__ import annotations

import numpy as np

from engine.package import metadata as meta
from engine.package.model import Model

PROSE = (
    "The history of the city begins on a small island in the middle of a wide river. Fishermen "
    "and traders settled there more than two thousand years ago, because the water protected them "
    "and the river carried their boats to the sea. Over the centuries the settlement grew beyond "
    "the island, bridges were built, and markets filled the banks on both sides. Kings chose the "
    "city as their seat, and with them came churches, palaces, schools and libraries. Scholars "
    "travelled from distant countries to study there, and printers set up their presses near the "
    "university. In the nineteenth century engineers rebuilt much of the centre: narrow lanes "
    "gave way to broad avenues lined with trees, sewers and fresh water reached every district, "
    "and railway stations connected the capital to the rest of the country. Artists were drawn "
    "by the light and the cafés, and many of the paintings now hanging in the great museums were "
    "made in its studios. Today the city is home to millions of people. Visitors come to walk "
    "along the river, climb the towers, taste the bread and cheese sold in the markets, and sit "
    "for hours in parks where children sail small wooden boats on the ponds. Yet the island "
    "where it all started is still there, and the old cathedral still stands on it, its bells "
    "ringing every hour as they have for more than eight hundred years. Historians say that the "
    "secret of the city has always been its river: it brought food, trade and ideas, and it "
    "taught the people who lived beside it to look outward, toward the rest of the world."
)


def tokens_of_length(prose_tokens: list[int], length: int) -> list[int]:
    """``length`` tokens: the prose's, repeated as often as needed."""
    if not prose_tokens:
        raise ValueError("expected the prose's tokens, found none")
    repeats = -(-length // len(prose_tokens))
    return (prose_tokens * repeats)[:length]


def teacher_forced_logits(model: Model, tokens: list[int]) -> np.ndarray:
    """Logits (positions, vocab) float32 at every position of ``tokens``, from a fresh state: one
    call, or one call per token for a package converted with last-position logits only."""
    from engine.generation.session import causal_mask  # model code: never in the GUI's process

    state = model.make_state()
    inputs = {
        meta.INPUT_IDS: np.array([tokens], np.int32),
        meta.CAUSAL_MASK: causal_mask(0, len(tokens)),
    }
    logits = np.asarray(model.predict(inputs, state)[meta.LOGITS])[0]
    if logits.shape[0] == len(tokens):
        return logits.astype(np.float32)
    state, rows = model.make_state(), []
    for position, token in enumerate(tokens):
        step = {
            meta.INPUT_IDS: np.array([[token]], np.int32),
            meta.CAUSAL_MASK: causal_mask(position, 1),
        }
        rows.append(np.asarray(model.predict(step, state)[meta.LOGITS])[0, -1])
    return np.stack(rows).astype(np.float32)


def compare(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float | int]:
    """Top-1 agreement, mean KL(reference || candidate) per position in nats, max |difference|."""
    if reference.shape != candidate.shape:
        raise ValueError(
            f"expected logits of the same shape, found {reference.shape} and {candidate.shape}"
        )

    def log_softmax(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float64) - x.max(axis=-1, keepdims=True)
        return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))

    p, q = log_softmax(reference), log_softmax(candidate)
    kl = (np.exp(p) * (p - q)).sum(axis=-1)
    return {
        "positions": int(reference.shape[0]),
        "top1_agreement": round(float((reference.argmax(-1) == candidate.argmax(-1)).mean()), 4),
        "mean_kl": round(float(kl.mean()), 6),
        "max_abs_logit_difference": round(float(np.abs(reference - candidate).max()), 4),
    }
