"""A GGUF names one eos token; the tokens that end a chat turn are found by their text."""

from __future__ import annotations

import json
from pathlib import Path

from converter.weights import end_of_turn_ids


def _tokenizer(tmp_path: Path, added: list[dict]) -> Path:
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps({"added_tokens": added, "model": {"type": "BPE"}}))
    return path


def test_gemma_and_phi_turn_enders_are_found_by_text(tmp_path: Path) -> None:
    added = [
        {"id": 1, "content": "<eos>", "special": True},
        {"id": 106, "content": "<end_of_turn>", "special": True},
        {"id": 32007, "content": "<|end|>", "special": True},
    ]
    assert end_of_turn_ids(_tokenizer(tmp_path, added)) == [106, 32007]


def test_plain_text_and_unreadable_files_add_nothing(tmp_path: Path) -> None:
    added = [{"id": 5, "content": "<end_of_turn>", "special": False}]
    assert end_of_turn_ids(_tokenizer(tmp_path, added)) == []
    assert end_of_turn_ids(tmp_path / "missing.json") == []
