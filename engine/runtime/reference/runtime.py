"""The reference runtime: executes a Core ML ML Program in NumPy, wherever Core ML cannot run.

At load the program is read with coremltools' MIL proto loader (it works on Linux), and the op
list is planned into steps over numbered registers, so ``predict`` is a loop with no name lookups.
``constexpr_*`` (compressed) weights used by ``linear`` and ``gather`` stay compressed and are
dequantized per use (``engine.runtime.reference.compressed_weights``: resident memory near the package's
size, not 8 bytes per int4 value); other constexpr values are dequantized once; plain linear
weights are stored transposed in float32 for BLAS. An op this runtime does not implement is
refused at load, naming it.

States are float16 arrays owned by the object ``make_state()`` returns; ``read_state`` hands out the
array itself and a ``slice_update`` of it writes in place when no later op reads the old value,
so a decode step does not copy the kv-cache.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from engine.package.model import (
    InputCheck,
    ModelDescription,
    ModelLoadError,
    TensorSpec,
    check_input,
    describe_spec,
    read_spec,
)
from engine.runtime.reference.aliasing import plan_state_writes
from engine.runtime.reference.blas import blas_threads
from engine.runtime.reference.compressed_weights import (
    CompressedWeight,
    DequantizedCache,
    block_linear_or_none,
    default_cache_budget,
    gather_compressed,
    linear_compressed,
)
from engine.runtime.reference.dequantize import CONSTEXPR_OPS
from engine.runtime.reference.ops import MIL_DTYPES, OPS, RUNTIME_OPS, linear_pretransposed

logger = logging.getLogger(__name__)

# Every call runs its matrix products on one BLAS thread (see engine.runtime.reference.blas):
# decode steps always did; prefill chunks of 64 tokens ran 8× slower on OpenBLAS's default two
# threads than on one while other processes shared the 2 cores (3.5 vs 28.7 prompt tokens/s,
# benchmarks/reference_decode.py, one run).
BLAS_THREADS = 1


@dataclass
class _Step:
    op_type: str
    name: str
    function: Any
    constants: dict[str, Any]
    registers: tuple[tuple[str, int], ...]
    lists: tuple[tuple[str, tuple[tuple[bool, Any], ...]], ...]
    outputs: tuple[int, ...]
    dtypes: tuple[Any, ...]
    state: str = ""  # read_state / coreml_update_state: the state's name
    copy: bool = False  # read_state: hand out a copy (a later op reads the overwritten contents)


class ReferenceState:
    """The model's states (the kv-cache), as float16 arrays, zeroed."""

    def __init__(self, specs: tuple[TensorSpec, ...]) -> None:
        self.arrays: dict[str, np.ndarray] = {
            spec.name: np.zeros(tuple(int(d or 0) for d in spec.shape), dtype=np.float16)
            for spec in specs
        }

    def copy(self) -> ReferenceState:
        clone = object.__new__(ReferenceState)
        clone.arrays = {name: array.copy() for name, array in self.arrays.items()}
        return clone


class ReferenceModel:
    """Shaped like coremltools' MLModel: ``make_state()``, ``predict(inputs, state)``."""

    def __init__(
        self,
        description: ModelDescription,
        steps: list[_Step],
        input_slots: dict[str, int],
        output_slots: dict[str, int],
        register_count: int,
        checks: tuple[InputCheck, ...],
        *,
        copied_outputs: frozenset[str] = frozenset(),
    ) -> None:
        self._copied_outputs = copied_outputs
        self._description = description
        self._steps = steps
        self._input_slots = input_slots
        self._output_slots = output_slots
        self._register_count = register_count
        self._checks = checks

    @property
    def description(self) -> ModelDescription:
        return self._description

    def held_bytes(self) -> int:
        """Bytes of the arrays the program's steps hold: its weights, compressed or dequantized,
        and the dequantized copies kept so far (what the weight budget governs)."""
        seen: set[int] = set()
        total = 0

        def visit(value: Any, depth: int = 0) -> None:
            nonlocal total
            if id(value) in seen or depth > 8:
                return
            seen.add(id(value))
            if isinstance(value, np.ndarray):
                total += value.nbytes
            elif isinstance(value, dict):
                for item in value.values():
                    visit(item, depth + 1)
            elif isinstance(value, (list, tuple)):
                for item in value:
                    visit(item, depth + 1)
            elif hasattr(value, "__dict__"):
                for item in vars(value).values():
                    visit(item, depth + 1)

        for step in self._steps:
            visit(step.constants)
        return total

    def make_state(self) -> ReferenceState:
        return ReferenceState(self._description.states)

    def predict(
        self, inputs: dict[str, np.ndarray], state: ReferenceState | None = None
    ) -> dict[str, np.ndarray]:
        if self._description.states and state is None:
            raise ValueError("this model is stateful: pass the state from make_state()")
        registers: list[Any] = [None] * self._register_count
        for check in self._checks:
            value = check_input(check, inputs, self._checks)
            registers[self._input_slots[check.name]] = value
        # inf and NaN are what Core ML would produce too: reproduce them without warnings.
        with (
            np.errstate(over="ignore", invalid="ignore", divide="ignore"),
            blas_threads(BLAS_THREADS),
        ):
            return self._run(registers, state)

    def _run(self, registers: list[Any], state: ReferenceState | None) -> dict[str, np.ndarray]:
        arrays = state.arrays if state is not None else {}
        for step in self._steps:
            if step.state:
                registers[step.outputs[0]] = self._state_op(step, registers, arrays)
                continue
            arguments = dict(step.constants)
            for name, slot in step.registers:
                arguments[name] = registers[slot]
            for name, items in step.lists:
                arguments[name] = [registers[v] if is_slot else v for is_slot, v in items]
            try:
                result = step.function(**arguments)
            except Exception as error:
                raise RuntimeError(f"op {step.op_type} {step.name!r} failed: {error}") from error
            if len(step.outputs) == 1:
                result = (result,)
            for slot, dtype, value in zip(step.outputs, step.dtypes, result, strict=True):
                value = np.asarray(value)
                registers[slot] = value if value.dtype == dtype else value.astype(dtype)
        return {
            name: registers[slot].copy() if name in self._copied_outputs else registers[slot]
            for name, slot in self._output_slots.items()
        }

    @staticmethod
    def _state_op(step: _Step, registers: list[Any], arrays: dict[str, np.ndarray]) -> np.ndarray:
        target = arrays[step.state]
        if step.op_type == "read_state":
            return target.copy() if step.copy else target
        value = registers[step.registers[0][1]]
        if value is not target:
            np.copyto(target, value)
        return target


def load_reference_model(package: Path, *, weight_cache_bytes: int | None = None) -> ReferenceModel:
    """Load ``package``. ``weight_cache_bytes`` bounds the float32 copies of compressed weights
    kept (``engine.runtime.reference.compressed_weights.default_cache_budget`` when None)."""
    started = time.monotonic()
    spec, weights_dir = read_spec(package)
    if spec.WhichOneof("Type") != "mlProgram":
        raise ModelLoadError(
            f"{package.name} is a {spec.WhichOneof('Type')} model; coreml-chat runs ML Programs"
        )
    description, checks = describe_spec(spec)
    program = _load_program(package, spec, weights_dir)
    description = _with_output_shapes(description, program)
    budget = default_cache_budget() if weight_cache_bytes is None else weight_cache_bytes
    steps, input_slots, output_slots, count, copied_outputs = _plan(
        program, description, DequantizedCache(budget)
    )
    del program  # the loader's copies of the weights (one byte per int4 value): a cycle of
    gc.collect()  # objects, so returned to the system only by a collection
    _return_freed_memory()
    logger.info(
        "loaded %s on the reference runtime: %d ops in %.1fs",
        package.name,
        len(steps),
        time.monotonic() - started,
    )
    return ReferenceModel(
        description,
        steps,
        input_slots,
        output_slots,
        count,
        checks,
        copied_outputs=copied_outputs,
    )


def _with_output_shapes(description: ModelDescription, program: Any) -> ModelDescription:
    """The spec leaves output shapes out: take them from the program (None where flexible)."""
    function = program.functions.get("main")
    if function is None:
        return description
    shapes = {
        var.name: tuple(d if isinstance(d, (int, np.integer)) else None for d in var.shape)
        for var in function.outputs
    }
    outputs = tuple(
        replace(spec, shape=shapes[spec.name]) if spec.name in shapes else spec
        for spec in description.outputs
    )
    return replace(description, outputs=outputs)


def _load_program(package: Path, spec: Any, weights_dir: str) -> Any:
    from coremltools.converters.mil.frontend.milproto.load import load as load_program

    try:
        return load_program(spec, spec.specificationVersion, file_weights_dir=weights_dir)
    except Exception as error:  # the loader raises many kinds on a damaged weight file
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ModelLoadError(
            f"{package.name} cannot be read: {first} (is weights/weight.bin complete?)"
        ) from error


def _data_bits(op: Any) -> tuple[int | None, bool]:
    """(bits, signed) of a constexpr op's integer data (``data``, ``indices``, ``quantized_data``),
    or (None, False): 4-bit data is kept two values to a byte."""
    from coremltools.converters.mil.mil.types import builtin_to_string

    for key in ("data", "indices", "quantized_data"):
        var = op.inputs.get(key)
        if var is not None:
            name = builtin_to_string(var.dtype)
            if name in ("int4", "uint4"):
                return 4, name == "int4"
            return None, False
    return None, False


def _numpy_dtype(var: Any) -> Any:
    from coremltools.converters.mil.mil.types import builtin_to_string

    name = builtin_to_string(var.dtype)
    if name in ("int4", "uint4", "int2", "uint2", "int1", "uint1", "int3", "uint3", "int6"):
        return np.int8
    return MIL_DTYPES.get(name, np.float32)


def _return_freed_memory() -> None:
    """Hand the loader's freed heap back to the system (glibc keeps it otherwise: the RSS stayed
    3.5× the package's size after loading the demo model, for weights of 1×)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS): nothing to do
        pass


def _plan(
    program: Any, description: ModelDescription, cache: DequantizedCache
) -> tuple[list[_Step], dict[str, int], dict[str, int], int, frozenset[str]]:
    """The program as steps over numbered registers: (steps, input slots, output slots, register
    count, state reads whose outputs are copied). Constants are folded into the steps that read
    them; compressed weights stay compressed where linear and gather read them."""
    if "main" not in program.functions:
        raise ModelLoadError("the program has no main function")
    function = program.functions["main"]
    operations = list(function.operations)
    _refuse_unknown_ops(operations)
    planner = _Planner(cache, plan_state_writes(operations, list(function.outputs)))
    state_names = {spec.name for spec in description.states}
    for name in function.inputs:
        if name not in state_names:
            planner.slots[name] = len(planner.slots)
    for op in operations:
        planner.add(op)
    slots = planner.slots
    output_slots = {}
    for var in function.outputs:
        if var.name not in slots:
            raise ModelLoadError(
                f"output {var.name!r} is a constant; coreml-chat expects computed outputs"
            )
        output_slots[var.name] = slots[var.name]
    input_slots = {n: slots[n] for n in function.inputs if n in slots}
    copied = planner.state_plan.copied_outputs
    return planner.steps, input_slots, output_slots, len(slots), copied


def _refuse_unknown_ops(operations: list[Any]) -> None:
    unknown = Counter(
        op.op_type
        for op in operations
        if op.op_type not in OPS
        and op.op_type not in CONSTEXPR_OPS
        and op.op_type not in RUNTIME_OPS
    )
    if unknown:
        listed = ", ".join(f"{name} ({count}×)" for name, count in unknown.most_common())
        raise ModelLoadError(f"the reference runtime does not implement these ops: {listed}")


class _Planner:
    """Turns ops into ``_Step``s one at a time: constants folded, compressed weights kept."""

    def __init__(self, cache: DequantizedCache, state_plan: Any) -> None:
        self.cache = cache
        self.state_plan = state_plan
        self.slots: dict[str, int] = {}
        self.constants: dict[str, Any] = {}
        self.transposed: dict[str, np.ndarray] = {}
        self.blocks: dict[str, Any] = {}  # compressed linear weights: their block path or None
        self.steps: list[_Step] = []

    def add(self, op: Any) -> None:
        if op.op_type == "const":
            value = op.outputs[0].val
            self.constants[op.outputs[0].name] = (
                value if isinstance(value, str) else np.asarray(value)
            )
        elif op.op_type in CONSTEXPR_OPS:
            self._add_constexpr(op)
        elif op.op_type in ("read_state", "coreml_update_state"):
            self._add_state_op(op)
        else:
            self._add_compute(op)

    # --- constants ----------------------------------------------------------------------------

    def value_of(self, var: Any) -> Any:
        value = self.constants[var.name]
        if isinstance(value, CompressedWeight):  # an op other than linear/gather: dense, once
            value = self.constants[var.name] = value.dense()
        return value

    def compressed(self, var: Any) -> CompressedWeight | None:
        value = self.constants.get(var.name)
        return value if isinstance(value, CompressedWeight) else None

    def _add_constexpr(self, op: Any) -> None:
        arguments = {name: self.value_of(var) for name, var in op.inputs.items()}
        bits, signed = _data_bits(op)
        name = op.outputs[0].name
        self.constants[name] = CompressedWeight(
            name,
            CONSTEXPR_OPS[op.op_type],
            arguments,
            data_bits=bits,
            data_signed=signed,
            cache=self.cache,
        )
        if op.op_type == "constexpr_blockwise_shift_scale":
            self.blocks[name] = arguments

    # --- steps --------------------------------------------------------------------------------

    def _outputs(self, op: Any) -> tuple[tuple[int, ...], tuple[Any, ...]]:
        outputs = []
        for var in op.outputs:
            self.slots[var.name] = len(self.slots)
            outputs.append(self.slots[var.name])
        return tuple(outputs), tuple(_numpy_dtype(var) for var in op.outputs)

    def _add_state_op(self, op: Any) -> None:
        outputs, dtypes = self._outputs(op)
        reading = op.op_type == "read_state"
        state_var = op.inputs["input" if reading else "state"]
        registers = () if reading else (("value", self.slots[op.inputs["value"].name]),)
        self.steps.append(
            _Step(
                op.op_type,
                op.name,
                None,
                {},
                registers,
                (),
                outputs,
                dtypes,
                state_var.name,
                copy=op.name in self.state_plan.copied_reads,
            )
        )

    def _add_compute(self, op: Any) -> None:
        outputs, dtypes = self._outputs(op)
        fixed, registers, lists = self._arguments(op)
        function, fixed = self._specialised(op, OPS[op.op_type], fixed)
        if op.op_type == "slice_update" and op.name in self.state_plan.in_place_updates:
            fixed["in_place"] = True
        self.steps.append(
            _Step(op.op_type, op.name, function, fixed, registers, lists, outputs, dtypes)
        )

    def _arguments(self, op: Any) -> tuple[dict[str, Any], tuple, tuple]:
        """(constant arguments, register arguments, list arguments) of ``op``."""
        fixed: dict[str, Any] = {}
        registers: list[tuple[str, int]] = []
        lists: list[tuple[str, tuple[tuple[bool, Any], ...]]] = []
        kept_compressed = {"linear": "weight", "gather": "x"}.get(op.op_type)
        for name, value in op.inputs.items():
            if name == kept_compressed and self.compressed(value) is not None:
                fixed[name] = self.compressed(value)
            elif isinstance(value, (list, tuple)):
                items = tuple(
                    (False, self.value_of(v))
                    if v.name in self.constants
                    else (True, self.slots[v.name])
                    for v in value
                )
                lists.append((name, items))
            elif value.name in self.constants:
                fixed[name] = self.value_of(value)
            else:
                registers.append((name, self.slots[value.name]))
        return fixed, tuple(registers), tuple(lists)

    def _specialised(
        self, op: Any, function: Any, fixed: dict[str, Any]
    ) -> tuple[Any, dict[str, Any]]:
        """Linear on a compressed weight (blockwise where it can), gather on one, and linear on
        a dense weight transposed once: the faster function and its arguments."""
        if op.op_type == "linear" and isinstance(fixed.get("weight"), CompressedWeight):
            weight = fixed["weight"]
            if weight.name in self.blocks:  # decided once per weight, its arguments let go after
                self.blocks[weight.name] = block_linear_or_none(weight, self.blocks[weight.name])
            bias = fixed.get("bias")
            return linear_compressed, {
                "weight": self.blocks.get(weight.name) or weight,
                "bias": None if bias is None or not np.any(bias) else bias.astype(np.float32),
            }
        if op.op_type == "gather" and isinstance(fixed.get("x"), CompressedWeight):
            return gather_compressed, fixed
        if op.op_type == "linear" and "weight" in fixed:
            weight_name = op.inputs["weight"].name
            if weight_name not in self.transposed:
                self.transposed[weight_name] = np.ascontiguousarray(
                    fixed["weight"].astype(np.float32).T
                )
            bias = fixed.get("bias")
            if bias is not None and not np.any(bias):
                bias = None
            return linear_pretransposed, {
                "weight_t": self.transposed[weight_name],
                "bias": None if bias is None else bias.astype(np.float32),
            }
        return function, fixed
