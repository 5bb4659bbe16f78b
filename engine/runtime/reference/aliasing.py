"""Which state writes the reference runtime may do in place, proved at load from the op list.

``read_state`` hands out the state's array itself, and a ``slice_update`` of it writes into that
array, so a decode step does not copy the kv-cache. That is only right when no later op reads the
state's old contents, directly or through a view (NumPy's reshape, transpose, slicing... return views
of their input). This module follows every var back to the buffer it may share memory with, and a
version of that buffer's contents that each in-place write or ``coreml_update_state`` copy bumps:

- a ``slice_update`` of a state's current contents writes in place when no op after it reads a var
  holding those contents;
- a ``read_state`` hands out a copy when the state is overwritten (``coreml_update_state`` with a
  value that is not already the state's array) while an op after that still reads the old contents;
- an output that shares memory with a state is copied when ``predict`` returns it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# Ops whose NumPy result may be a view of their input ``x`` (or, for read_state, of the state).
VIEW_OPS = frozenset(
    {
        "identity",
        "reshape",
        "transpose",
        "expand_dims",
        "squeeze",
        "slice_by_index",
        "slice_by_size",
        "split",
    }
)


@dataclass(frozen=True)
class StatePlan:
    in_place_updates: frozenset[str]  # names of slice_update ops that write into their source
    copied_reads: frozenset[str]  # names of read_state ops that must hand out a copy
    copied_outputs: frozenset[str]  # names of outputs that share memory with a state


def _input_vars(op: Any) -> Iterable[Any]:
    for value in op.inputs.values():
        yield from value if isinstance(value, (list, tuple)) else (value,)


def plan_state_writes(operations: list[Any], outputs: list[Any]) -> StatePlan:
    """Decide in-place writes and defensive copies for ``operations`` (pymil ops, in order)."""
    last_read: dict[str, int] = {}
    for position, op in enumerate(operations):
        for var in _input_vars(op):
            last_read[var.name] = position
    for var in outputs:
        last_read[var.name] = len(operations)
    copied: set[str] = set()
    while True:
        in_place, violations, state_vars = _walk(operations, last_read, copied)
        if not violations - copied:
            break
        copied |= violations
    copied_outputs = frozenset(var.name for var in outputs if var.name in state_vars)
    return StatePlan(frozenset(in_place), frozenset(copied), copied_outputs)


def _walk(
    operations: list[Any], last_read: dict[str, int], copied: set[str]
) -> tuple[set[str], set[str], set[str]]:
    buffer_of: dict[str, tuple[str, int]] = {}  # var → (buffer, version of its contents)
    version: dict[str, int] = {}
    holders: dict[tuple[str, int], list[str]] = {}  # (buffer, version) → vars holding it
    made_by: dict[str, str] = {}  # var aliasing a state → the read_state op it comes from
    in_place: set[str] = set()
    violations: set[str] = set()

    def hold(var_name: str, key: tuple[str, int], source: str | None) -> None:
        buffer_of[var_name] = key
        holders.setdefault(key, []).append(var_name)
        if source is not None:
            made_by[var_name] = source

    def read_after(key: tuple[str, int], position: int) -> list[str]:
        return [name for name in holders.get(key, []) if last_read.get(name, -1) > position]

    for position, op in enumerate(operations):
        kind = op.op_type
        if kind == "read_state":
            buffer = "state:" + op.inputs["input"].name
            output = op.outputs[0].name
            if op.name in copied:
                hold(output, (output, 0), None)
            else:
                hold(output, (buffer, version.setdefault(buffer, 0)), op.name)
        elif kind == "coreml_update_state":
            buffer = "state:" + op.inputs["state"].name
            current = (buffer, version.setdefault(buffer, 0))
            value = op.inputs["value"].name
            if buffer_of.get(value) != current:  # the state's array is overwritten here
                violations.update(
                    made_by[name] for name in read_after(current, position) if name in made_by
                )
                version[buffer] += 1
            hold(op.outputs[0].name, (buffer, version[buffer]), made_by.get(value))
        elif kind == "slice_update" and op.inputs["x"].name in buffer_of:
            source = op.inputs["x"].name
            buffer, contents = buffer_of[source]
            output = op.outputs[0].name
            safe = (
                buffer.startswith("state:")
                and contents == version[buffer]
                and not read_after((buffer, contents), position)
            )
            if safe:
                in_place.add(op.name)
                version[buffer] += 1
                hold(output, (buffer, version[buffer]), made_by.get(source))
            else:
                hold(output, (output, 0), None)
        elif kind in VIEW_OPS and "x" in op.inputs and op.inputs["x"].name in buffer_of:
            source = op.inputs["x"].name
            for var in op.outputs:
                hold(var.name, buffer_of[source], made_by.get(source))
        else:
            for var in op.outputs:
                hold(var.name, (var.name, 0), None)
    state_vars = {name for name, (buffer, _) in buffer_of.items() if buffer.startswith("state:")}
    return in_place, violations, state_vars
