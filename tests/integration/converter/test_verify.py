"""--verify: the saved package, run by the engine's runtime, agrees with the torch module."""

from __future__ import annotations

import platform
import sys

import pytest

from converter.convert import convert
from converter.options import ConversionRequest

# The runtime that must run the package on this machine: Core ML on macOS 15+, the reference
# runtime elsewhere (worked out here, not by asking the engine, so a wrong choice shows).
_MAC = platform.mac_ver()[0]
EXPECTED_RUNTIME = (
    "coreml" if sys.platform == "darwin" and _MAC and int(_MAC.split(".")[0]) >= 15 else "reference"
)


@pytest.mark.parametrize(("arch", "quantize"), [("mistral", "none"), ("llama", "int4")])
def test_verification_runs_the_package_and_agrees_with_torch(tmp_path, request, arch, quantize):
    source = request.getfixturevalue(f"tiny_{arch}_dir")
    request_ = ConversionRequest(
        str(source), tmp_path / "out", context_length=64, quantize=quantize, verify=True
    )
    result = convert(request_)
    report = result.verification
    assert report is not None and report.tokens == 16
    assert report.runtime == EXPECTED_RUNTIME
    assert report.passed, report
    assert report.top1_agreement >= 0.9
    tolerance = 0.05 if quantize == "none" else 0.5
    assert report.max_abs_difference < tolerance, report
