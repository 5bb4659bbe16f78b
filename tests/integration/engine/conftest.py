"""Fixtures of the engine's integration tests: chat sessions on converted tiny models."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def mistral_session(converted_package):
    """A chat session on the tiny random Mistral converted without quantization (logits (1, q, V))."""
    from engine.generation.open_chat import open_chat

    return open_chat(converted_package("mistral", "none"))
