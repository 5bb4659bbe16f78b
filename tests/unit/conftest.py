"""Unit tests run in the test process on small inputs: no model conversion, no model run through
the engine, no converter or engine process. The shared fixtures that convert are refused here (by
name, so ``request.getfixturevalue`` is caught too): a test that needs one belongs under
``tests/integration/`` (see ``tests/README.md``)."""

from __future__ import annotations

import pytest


def _refuse(name: str) -> None:
    pytest.fail(
        f"{name} converts a model: this test belongs under tests/integration/, not tests/unit/",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def converted_package() -> None:
    _refuse("converted_package")


@pytest.fixture(scope="session")
def smollm2_int4_dir() -> None:
    _refuse("smollm2_int4_dir (use smollm2_tokenizer_dir for its tokenizer)")


@pytest.fixture(scope="session")
def smollm2_exact_dir() -> None:
    _refuse("smollm2_exact_dir (use smollm2_tokenizer_dir for its tokenizer)")
