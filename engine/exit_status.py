"""How a child process ended, in words: shared by the app (the engine process) and the engine (its
template-render child)."""

from __future__ import annotations

import signal


def describe_exit(returncode: int | None) -> str:
    """``-9`` → "killed by SIGKILL"; ``1`` → "exit status 1"; ``None`` → "still running"."""
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"
