"""Small builders the window tests share (not fixtures: plain functions)."""

from __future__ import annotations

import sys
from pathlib import Path

from app.conversations.store import StoredMessage


def stored_message(number: int, role: str, content: str) -> StoredMessage:
    """A message as the store hands it out, for rows shown without a conversation behind them."""
    return StoredMessage(
        id=number,
        conversation_id="c",
        position=number,
        role=role,  # type: ignore[arg-type]
        content=content,
        created_at=0.0,
        finish_reason="eos" if role == "assistant" else "",
    )


def stand_in_converter(tmp_path: Path, script_text: str) -> str:
    """An executable that runs ``script_text`` with this interpreter: a converter stand-in for
    ``ConverterProcess(executable=...)``, which starts ``<executable> --convert ...``."""
    script = tmp_path / "stand_in_converter.py"
    script.write_text(script_text)
    launcher = tmp_path / "launcher"
    launcher.write_text(f'#!/bin/sh\nexec {sys.executable} {script} "$@"\n')
    launcher.chmod(0o755)
    return str(launcher)
