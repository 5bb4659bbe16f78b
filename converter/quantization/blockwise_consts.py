"""Weight constants of a MIL program replaced by ``constexpr_blockwise_shift_scale`` ops.

The one place that swaps a float16 weight const for its blocks: the exact GGUF import
(``converter.gguf.exact_import.attach_blocks``: the GGUF's own blocks) and the searched int4 recipe
(``converter.quantization.searched``: blocks chosen from the float16 weight) both go through it.
Each const is removed as soon as its replacement is in, and no reference to it is kept here, so a
float16 weight is freed once its blocks exist: memory does not grow with the model. With ``lazy``
(the exact GGUF import) the integers do not enter the program at all: each op gets a
``LazyWeights`` placeholder, and ``blocks_for`` is called again for the real integers while
coremltools writes the package (``converter.quantization.lazy_blob_weights``).
"""

from __future__ import annotations

import functools
import gc
import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from converter.errors import ConversionError
from converter.gguf.blocks import CoreMLBlocks
from converter.quantization.lazy_blob_weights import LazyWeights

logger = logging.getLogger(__name__)

FractionReport = Callable[[float, str], None]
# (name, the const's current value) → its blocks. The value is the float16 weight (a GGUF
# placeholder for the exact import, which ignores it; None when called again for lazy data).
BlocksFor = Callable[[str, np.ndarray | None], CoreMLBlocks]


def mil_dtypes() -> dict[str, Any]:
    from coremltools.converters.mil.mil import types

    return {
        "int4": types.np_int4_dtype,
        "uint4": types.np_uint4_dtype,
        "int8": np.int8,
        "uint8": np.uint8,
    }


def replace_with_blocks(
    program,
    names: Sequence[str],
    blocks_for: BlocksFor,
    *,
    report: FractionReport,
    what: str,
    lazy: LazyWeights | None = None,
) -> int:
    """Replace the consts ``names`` of every function by their blocks; returns how many.

    The new op is named ``{name}_{blocks.gguf_type}`` (the recipe: ``Q4_1``, ``int4-searched``).
    An integer zero point is stored in the data's own dtype, as the op requires.
    """
    from coremltools.converters.mil import Builder as mb

    dtypes = mil_dtypes()
    replaced = 0
    for function in program.functions.values():
        # Ops added here have no torch scope; the next pipeline's validation would refuse them.
        function._essential_scope_sources = []
        consts = {op.name: op for op in function.operations if op.op_type == "const"}
        missing = [name for name in names if name not in consts]
        if missing:
            raise ConversionError(
                f"the converted program has no weight named {missing[0]} "
                f"({len(missing)} of {len(names)} missing); the torch frontend renamed it"
            )
        with function:
            for index, name in enumerate(names):
                op = consts.pop(name)
                blocks = blocks_for(name, op.outputs[0].val)
                if tuple(op.outputs[0].shape) != blocks.data.shape:
                    raise ConversionError(
                        f"weight {name}: the program expects {tuple(op.outputs[0].shape)}, the "
                        f"blocks give {blocks.data.shape}"
                    )
                data_dtype = dtypes[blocks.data_type]
                if lazy is None:
                    data = blocks.data.astype(data_dtype)
                else:
                    data = lazy.placeholder(
                        blocks.data.shape,
                        data_dtype,
                        name=name,
                        decode=functools.partial(_data_again, blocks_for, name),
                    )
                arguments: dict[str, Any] = {"data": data, "scale": blocks.scale}
                if blocks.offset is not None:
                    floating = np.issubdtype(blocks.offset.dtype, np.floating)
                    arguments["offset"] = (
                        blocks.offset if floating else blocks.offset.astype(data_dtype)
                    )
                new_var = mb.constexpr_blockwise_shift_scale(
                    **arguments, before_op=op, name=f"{name}_{blocks.gguf_type}"
                )
                function.replace_uses_of_var_after_op(
                    anchor_op=op, old_var=op.outputs[0], new_var=new_var, no_check_var_types=True
                )
                function.remove_ops([op])
                del op, blocks, data, arguments, new_var
                replaced += 1
                report((index + 1) / len(names), f"{name}: {what}")
        gc.collect()
    return replaced


def _data_again(blocks_for: BlocksFor, name: str) -> np.ndarray:
    """A lazy weight's integers, decoded again when written (its scales are in the program)."""
    return blocks_for(name, None).data
