"""Fixtures of the engine's unit tests: real tokenizers."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module", params=["mistral_v3", "smollm2"])
def real_tokenizer_dir(request: pytest.FixtureRequest) -> Path:
    """A folder with a real model's tokenizer.json + tokenizer_config.json (chat template): Mistral's
    v3 SentencePiece tokenizer (byte fallback) and SmolLM2's byte-level BPE."""
    if request.param == "mistral_v3":
        return request.getfixturevalue("mistral_v3_tokenizer_dir")
    return request.getfixturevalue("smollm2_tokenizer_dir")
