"""The doctor's pure parts: the task_vm_info layout phys_footprint is read from, the float16
weight estimate and its "CPU only" warning, the comparison of two runtimes' logits."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from engine.diagnostics import footprint
from engine.diagnostics.fidelity import compare, tokens_of_length
from engine.package.coreml_support import cpu_only_memory_warning, float16_weight_bytes


def test_phys_footprint_is_read_where_the_kernel_writes_it() -> None:
    """<mach/task_info.h>: virtual_size, region_count, page_size, then 16 64-bit counters up to
    compressed_lifetime (TASK_VM_INFO_REV0_COUNT = 36 natural_t); phys_footprint follows, ending
    revision 1 (TASK_VM_INFO_REV1_COUNT = 38): the count we pass."""
    natural = ctypes.sizeof(ctypes.c_uint32)
    assert footprint.TaskVMInfo.phys_footprint.offset == 36 * natural
    assert ctypes.sizeof(footprint.TaskVMInfo) == 38 * natural


def test_there_is_no_footprint_off_macos(monkeypatch) -> None:
    monkeypatch.setattr(footprint.sys, "platform", "linux")
    assert footprint.phys_footprint() is None


GB = 1_000_000_000


def test_cpu_only_warns_when_float16_weights_would_not_fit() -> None:
    """A 7B int4 package (~3.8 GB) expands to ~13.5 GB of float16 weights: too much beside the
    system on a 16 GB Mac, fine on 32 GB; the 98 MB demo fits anywhere."""
    seven_b = int(3.8 * GB)
    assert 13 * GB < float16_weight_bytes(seven_b, "int4-searched-block32") < 15 * GB
    warning = cpu_only_memory_warning(seven_b, "int4-searched-block32", 16 * 2**30)
    assert warning is not None and "13.5 GB" in warning and "CPU and GPU" in warning
    assert cpu_only_memory_warning(seven_b, "int4-searched-block32", 32 * 2**30) is None
    assert cpu_only_memory_warning(98_000_000, "gguf-exact", 8 * 2**30) is None
    assert cpu_only_memory_warning(seven_b, "int4", None) is None  # memory unknown: no guess
    assert float16_weight_bytes(GB, "fp16") == GB  # already float16: nothing to expand


def test_compare_measures_agreement_kl_and_the_largest_difference() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(6, 50)).astype(np.float32)
    same = compare(reference, reference.copy())
    assert same["top1_agreement"] == 1.0 and same["mean_kl"] == 0.0
    assert same["max_abs_logit_difference"] == 0.0 and same["positions"] == 6
    other = reference.copy()
    other[0, int(reference[0].argmax())] -= 100.0  # the first position's winner loses
    found = compare(reference, other)
    assert found["top1_agreement"] == pytest.approx(5 / 6, abs=1e-4)
    assert found["mean_kl"] > 0 and found["max_abs_logit_difference"] == pytest.approx(100.0)
    with pytest.raises(ValueError, match=r"same shape.*\(6, 50\).*\(5, 50\)"):
        compare(reference, reference[:5])


def test_prose_tokens_are_repeated_to_any_length() -> None:
    assert tokens_of_length([1, 2, 3], 7) == [1, 2, 3, 1, 2, 3, 1]
    with pytest.raises(ValueError, match="found none"):
        tokens_of_length([], 4)
