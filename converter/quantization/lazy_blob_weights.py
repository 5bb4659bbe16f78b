"""Weights decoded only when coremltools' blob writer writes them, one at a time.

The exact GGUF import gives every ``constexpr_blockwise_shift_scale`` op a *placeholder* ``data``
array: zeros in an anonymous memory map (whose pages the OS provides only when written) with the first few values made
distinct, so coremltools' const de-duplication, which hashes the first 100 values, never merges two
placeholders. The real integers (one byte per weight) would otherwise sit in the MIL program, all
of them at once, from ``attach_blocks`` until the package is written: 1.4x the GGUF's size.

``writing_lazy_weights`` is the one hook into coremltools internals: while it is active, the MIL
backend's ``helper._get_offset_by_writing_data`` (coremltools 9.0; the function every const's
value goes through on its way to ``weight.bin``) decodes a registered placeholder's real array,
hands it to the same blob writer method coremltools would have used (so the bytes, packed to 4
bits by coremltools, are identical), and drops it before the next weight. On leaving, every
placeholder must have been written exactly once: a pass that copied or changed one would
otherwise leave zeros in the package.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from converter.errors import ConversionError

logger = logging.getLogger(__name__)

# The coremltools release whose MIL backend internals the hook was written against and tested.
SUPPORTED_COREMLTOOLS = "9.0"
# Values 0-7 are valid in every data type used (int4, uint4, int8, uint8): base-8 digits.
_MARK_DIGITS = 8

Decoder = Callable[[], np.ndarray]


@dataclass
class _Pending:
    placeholder: np.ndarray
    decode: Decoder
    name: str
    written: int = 0


class LazyWeights:
    """Placeholder arrays and, for each, the function that decodes the real one when written."""

    def __init__(self) -> None:
        self._pending: dict[int, _Pending] = {}

    def placeholder(
        self, shape: tuple[int, ...], dtype: np.dtype, *, name: str, decode: Decoder
    ) -> np.ndarray:
        """A zero array of ``shape`` (one page of memory) that ``decode()`` replaces when written."""
        index = len(self._pending)
        size = int(np.prod(shape)) * np.dtype(dtype).itemsize
        # Private anonymous pages of our own: reading an untouched one maps the kernel's shared
        # zero page, so a pass that reads the placeholder costs nothing (np.zeros may take
        # recycled heap memory, which calloc clears page by page; a shared map is counted
        # in resident memory as soon as it is read).
        buffer = mmap.mmap(-1, max(size, 1), flags=mmap.MAP_PRIVATE)
        array = np.frombuffer(buffer, dtype=dtype, count=size // np.dtype(dtype).itemsize)
        array = array.reshape(shape)
        flat = array.reshape(-1)
        if flat.size < _MARK_DIGITS:
            raise ValueError(f"weight {name} is too small to be written lazily: shape {shape}")
        for position in range(_MARK_DIGITS):
            flat[position] = (index // 8**position) % 8
        self._pending[id(array)] = _Pending(array, decode, name)
        return array

    def take(self, value: object) -> _Pending | None:
        """The registration for ``value`` if it is one of the placeholders."""
        pending = self._pending.get(id(value))
        return pending if pending is not None and pending.placeholder is value else None

    def unwritten(self) -> list[str]:
        return [pending.name for pending in self._pending.values() if pending.written != 1]

    def __len__(self) -> int:
        return len(self._pending)


def _blob_internals():
    """coremltools' MIL backend helper module, refused unless it is the version we know."""
    import coremltools

    found = getattr(coremltools, "__version__", "unknown")
    if found != SUPPORTED_COREMLTOOLS:
        raise ConversionError(
            f"exact GGUF import writes weights through coremltools {SUPPORTED_COREMLTOOLS}'s MIL "
            f"blob writer; found coremltools {found} (install coremltools=={SUPPORTED_COREMLTOOLS} "
            "or use --quantize int4, int8 or none)"
        )
    from coremltools.converters.mil.backend.mil import helper, load

    writer = getattr(helper, "_get_offset_by_writing_data", None)
    if not callable(writer) or getattr(load, "helper", None) is not helper:
        raise ConversionError(
            f"coremltools {found} has no MIL backend helper._get_offset_by_writing_data used by "
            "its weight writer; exact GGUF import cannot write its weights lazily"
        )
    return helper


def _write(blob_writer, dtype, array: np.ndarray) -> int:
    """The blob writer method coremltools 9.0's ``_get_offset_by_writing_data`` picks for these
    data types (int4/uint4 packed by the writer itself), given the real integers."""
    from coremltools.converters.mil.mil import types

    flat = np.ascontiguousarray(array).reshape(-1)
    if dtype == types.int4:
        return blob_writer.write_int4_data(flat.astype(np.int8, copy=False))
    if dtype == types.uint4:
        return blob_writer.write_uint4_data(flat.astype(np.uint8, copy=False))
    if dtype == types.int8:
        return blob_writer.write_int8_data(flat.astype(np.int8, copy=False))
    if dtype == types.uint8:
        return blob_writer.write_uint8_data(flat.astype(np.uint8, copy=False))
    raise ConversionError(f"lazy weight of type {types.builtin_to_string(dtype)} is not supported")


@contextlib.contextmanager
def writing_lazy_weights(lazy: LazyWeights) -> Iterator[None]:
    """While active, coremltools writes each registered placeholder's decoded array instead.

    Raises ConversionError on entry for unknown coremltools internals, and on exit (only when
    the body succeeded) if a placeholder was not written exactly once.
    """
    helper = _blob_internals()
    original = helper._get_offset_by_writing_data

    def write(output_var, blob_writer):
        pending = lazy.take(output_var.val)
        if pending is None:
            return original(output_var, blob_writer)
        array = pending.decode()
        if array.shape != pending.placeholder.shape:
            raise ConversionError(
                f"weight {pending.name}: decoded {array.shape}, the program expects "
                f"{pending.placeholder.shape}"
            )
        offset = _write(blob_writer, output_var.dtype, array)
        del array
        pending.written += 1
        return offset

    helper._get_offset_by_writing_data = write
    try:
        yield
    finally:
        helper._get_offset_by_writing_data = original
    unwritten = lazy.unwritten()
    if unwritten:
        raise ConversionError(
            f"{len(unwritten)} of {len(lazy)} weights were not written exactly once by "
            f"coremltools (first: {unwritten[0]}); a conversion pass copied or merged them"
        )
