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


@pytest.fixture
def fake_session(tmp_path):
    """A ``ChatSession`` over the NumPy fake of the ``Model`` protocol (tests/fixtures/fake_model.py)
    and a word-level tokenizer: the session's logic in milliseconds, no converted package."""
    from engine.generation.session import ChatSession
    from engine.text.tokenizer import ChatTokenizer
    from tests.fixtures.fake_model import FakeCausalLM, vocab_size, write_tokenizer

    tokenizer = ChatTokenizer.from_folder(write_tokenizer(tmp_path / "tokenizer"))
    return ChatSession(FakeCausalLM(vocab=vocab_size()), tokenizer, chunk_size=8)
