"""The real Gemma 3 270M (Q4_K_M GGUF) imported exactly: teacher-forced against transformers'
reading of the same file over a prose text longer than its 512-token sliding window. Its residual
stream reaches 1.04e5, above float16's 65504: the first exact import gave NaN."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tokenizers import Tokenizer

from benchmarks.fidelity import TEXT, compare, source_logits
from engine.generation.session import causal_mask
from engine.package import metadata as meta
from engine.runtime import load_model

MIN_TOP1 = 0.99
MAX_MEAN_KL = 0.01
MAX_SIZE_VS_GGUF = 1.25
WINDOW = 512


@pytest.mark.slow
def test_gemma3_270m_exact_import_follows_transformers(gemma3_270m_exact_dir, gemma3_270m_gguf):
    tokens = Tokenizer.from_file(str(gemma3_270m_exact_dir / meta.TOKENIZER_FILE))
    ids = tokens.encode(f"{TEXT}\n\n{TEXT}").ids
    assert WINDOW < len(ids) <= 1024, len(ids)
    (package,) = gemma3_270m_exact_dir.glob("*.mlpackage")
    model = load_model(package)
    inputs = {meta.INPUT_IDS: np.array([ids], np.int32), meta.CAUSAL_MASK: causal_mask(0, len(ids))}
    got = model.predict(inputs, model.make_state())[meta.LOGITS][0].astype(np.float32)
    assert np.isfinite(got).all()
    want = source_logits(gemma3_270m_gguf, {"text": ids})["text"]
    found = compare(want, got)
    assert found["top1_agreement"] >= MIN_TOP1 and found["mean_kl"] <= MAX_MEAN_KL, found

    size = sum(path.stat().st_size for path in package.rglob("*") if path.is_file())
    assert size <= MAX_SIZE_VS_GGUF * gemma3_270m_gguf.stat().st_size, size
    metadata = dict(model.description.metadata)
    assert metadata[meta.QUANTIZATION] == "gguf-exact"
    # Its turns end with <end_of_turn>, which the GGUF's one eos id (<eos>) does not name.
    end_of_turn = tokens.token_to_id("<end_of_turn>")
    assert str(end_of_turn) in metadata[meta.EOS_TOKEN_IDS].split(",")
    assert json.loads(metadata[meta.QUANTIZATION_RECIPES])
