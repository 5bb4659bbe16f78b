"""--verify's reference dtype: float32 where it fits in half the memory, bfloat16 beyond."""

from __future__ import annotations

import torch

from converter.verify import physical_memory_bytes, reference_dtype

GB = 10**9
MISTRAL_7B_PARAMETERS = 7_248_023_552


def test_a_7b_model_is_verified_in_bfloat16_on_a_24_gb_machine() -> None:
    assert reference_dtype(MISTRAL_7B_PARAMETERS, physical_bytes=24 * GB) == torch.bfloat16
    assert reference_dtype(MISTRAL_7B_PARAMETERS, physical_bytes=16 * GB) == torch.bfloat16


def test_small_models_and_big_machines_keep_float32() -> None:
    assert reference_dtype(135_000_000, physical_bytes=8 * GB) == torch.float32
    assert reference_dtype(MISTRAL_7B_PARAMETERS, physical_bytes=64 * GB) == torch.float32


def test_this_machine_reports_its_memory() -> None:
    assert 1 * GB < physical_memory_bytes() < 10**15
