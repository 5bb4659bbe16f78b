"""--verify: the saved package, run by the engine's runtime, agrees with the torch module.

The verification stage runs here on the session's converted packages (what ``convert()`` runs after
saving, on the same files); that ``--verify`` reaches it and reports is checked on SmolLM2, whose
conversion runs with ``--verify`` (``tests/integration/cli/test_convert_cli.py``)."""

from __future__ import annotations

import platform
import sys

import pytest

from converter import verify
from converter.source import resolve_source
from engine.package import metadata as meta
from engine.package.model import find_package

# The runtime that must run the package on this machine: Core ML on macOS 15+, the reference
# runtime elsewhere (worked out here, not by asking the engine, so a wrong choice shows).
_MAC = platform.mac_ver()[0]
EXPECTED_RUNTIME = (
    "coreml" if sys.platform == "darwin" and _MAC and int(_MAC.split(".")[0]) >= 15 else "reference"
)


@pytest.mark.parametrize(("arch", "quantize"), [("mistral", "none"), ("llama", "int4")])
def test_verification_runs_the_package_and_agrees_with_torch(
    request, converted_package, arch, quantize
):
    folder = converted_package(arch, quantize)
    resolved = resolve_source(request.getfixturevalue(f"tiny_{arch}_dir"))
    tokens = verify.verification_tokens(folder / meta.TOKENIZER_FILE, resolved.spec.vocab_size)
    reference = verify.source_logits(resolved, tokens)
    report = verify.verify_package(find_package(folder), reference, quantize=quantize)
    assert report.tokens == 16
    assert report.runtime == EXPECTED_RUNTIME
    assert report.passed, report
    assert report.top1_agreement >= 0.9
    tolerance = 0.05 if quantize == "none" else 0.5
    assert report.max_abs_difference < tolerance, report
