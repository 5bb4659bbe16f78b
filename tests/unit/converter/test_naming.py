"""Model names taken from GGUF file names."""

from __future__ import annotations

import pytest

from converter.naming import gguf_model_name


@pytest.mark.parametrize(
    ("file_name", "expected"),
    [
        ("SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2-135M-Instruct"),
        ("Mistral-7B-Instruct-v0.3-Q4_K_M.gguf", "Mistral-7B-Instruct-v0.3"),
        ("llama-3.2-1b-instruct.IQ3_XS.gguf", "llama-3.2-1b-instruct"),
        ("tinyllama.f16.GGUF", "tinyllama"),
        ("model-bf16.gguf", "model"),
        ("Qwen-7B.gguf", "Qwen-7B"),  # no tag: the name as it is
        ("v0.3.gguf", "v0.3"),
        ("Q4_0.gguf", "Q4_0"),  # nothing but a tag: kept rather than emptied
    ],
)
def test_the_source_files_quantization_tag_is_left_out(file_name: str, expected: str) -> None:
    assert gguf_model_name(file_name) == expected
