"""Scoped control of NumPy's BLAS thread count, for the reference runtime's calls.

A decode step multiplies one row by each weight matrix (a matrix-vector product bound by memory
bandwidth). Splitting that over OpenBLAS threads gains little, and when the cores are busy (other
processes, the app's own threads) the threads wait for each other: on a loaded 2-core machine a
decode step ran 2-40× slower with two BLAS threads than with one, and a prefill chunk of 64 tokens
8× slower. So calls run on one BLAS thread, through OpenBLAS's thread-local
``openblas_set_num_threads_local`` (OpenBLAS ≥ 0.3.27, which NumPy ≥ 2 wheels bundle), restored
afterwards.

Where NumPy does not use OpenBLAS (Accelerate on macOS, MKL builds), this does nothing.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from functools import cache
from pathlib import Path

logger = logging.getLogger(__name__)

_SET_LOCAL = "openblas_set_num_threads_local"


@cache
def _set_threads_local() -> Callable[[int], int] | None:
    """OpenBLAS's thread-local setter from the library NumPy loaded, or None."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    paths = sorted({line.split()[-1] for line in maps.splitlines() if "openblas" in line.lower()})
    for path in paths:
        if not path.startswith("/"):
            continue
        try:
            library = ctypes.CDLL(path)
            function = getattr(library, _SET_LOCAL)
        except (OSError, AttributeError):
            continue
        function.restype = ctypes.c_int
        function.argtypes = [ctypes.c_int]
        logger.debug("BLAS thread control through %s", path)
        return function
    return None


class _BlasThreads(AbstractContextManager):
    def __init__(self, setter: Callable[[int], int], threads: int) -> None:
        self._setter = setter
        self._threads = threads
        self._previous = 0

    def __enter__(self) -> _BlasThreads:
        self._previous = self._setter(self._threads)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._setter(self._previous)


def blas_threads(threads: int) -> AbstractContextManager:
    """Run the block with ``threads`` BLAS threads in this thread (no-op without OpenBLAS)."""
    import numpy  # noqa: F401  # loads the BLAS library, so that /proc/self/maps lists it

    setter = _set_threads_local()
    if setter is None:
        return nullcontext()
    return _BlasThreads(setter, threads)


def blas_threads_available() -> bool:
    import numpy  # noqa: F401

    return _set_threads_local() is not None
