"""Exact GGUF import: the architecture from our torch module, the weights from the GGUF's blocks.

The torch module is traced and converted by coremltools as for any source, but every quantized
GGUF tensor enters it as a zero-stride placeholder (one float16 scalar expanded to the weight's
shape: no memory), so no float16 copy of the model is ever made. After conversion each
placeholder const (the torch frontend names it after the parameter, e.g.
``model.layers.0.self_attn.q_proj.weight``) is replaced by a ``constexpr_blockwise_shift_scale``
op built from that tensor's own GGUF blocks (``converter.gguf.blocks``): its float16 scales and
offsets at once, its integers (one byte per weight) only as placeholders that are decoded again,
one tensor at a time, while coremltools writes the package (``converter.quantization.lazy_blob_weights``).
Tensors are read from the file a few rows at a time, not mapped: mapped pages would stay resident.
Float tensors (F32, F16, BF16: the norms, sometimes an embedding) are read into the module as
float16, as today.

Each placeholder holds a different value: coremltools' const de-duplication pass would otherwise
merge placeholders of the same shape into one const and the names would be lost.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from converter.errors import ConversionError
from converter.gguf.blocks import DECODERS, FLOAT_TYPES, CoreMLBlocks, decode_blocks, permute_rows
from converter.gguf.tensor_names import NORMS_INCLUDE_OFFSET, PERMUTED_QK, torch_name
from converter.model_spec import ModelSpec
from converter.quantization.blockwise_consts import replace_with_blocks
from converter.quantization.lazy_blob_weights import LazyWeights
from converter.torch_model import fused_parts

logger = logging.getLogger(__name__)

FractionReport = Callable[[float, str], None]

# Data bits of each exact form, for the conversion log (the Q5/Q6 types take 8-bit data).
# Rows decoded per read: a few MB of file bytes and temporaries, not a whole embedding's.
ROWS_PER_READ = 2048
DATA_BITS = {"Q4_0": 4, "Q4_1": 4, "Q4_K": 4, "Q8_0": 8, "Q5_0": 8, "Q5_1": 8, "Q5_K": 8, "Q6_K": 8}


@dataclass(frozen=True)
class GGUFTensor:
    gguf_name: str
    torch_name: str
    gguf_type: str
    shape: tuple[int, ...]  # torch order
    raw: Any = field(repr=False)  # the reader's memory-mapped array
    data_offset: int = 0  # where its bytes start in the file
    n_bytes: int = 0


@dataclass
class GGUFImport:
    """The GGUF's tensors by torch parameter name, split into float and block-quantized ones."""

    path: Path
    spec: ModelSpec
    floats: dict[str, GGUFTensor]
    quantized: dict[str, GGUFTensor]
    form: str = "exact"  # or "native": converter.quantization.native_form
    architecture: str = "llama"  # the GGUF's general.architecture

    @property
    def norms_include_offset(self) -> bool:
        """Gemma's norms hold 1 + w in the file (``build_stateful_model`` adds it otherwise)."""
        return self.architecture in NORMS_INCLUDE_OFFSET

    def recipes(self) -> dict[str, str]:
        """Recipe per tensor group, for the metadata and the log: ``{"Q4_1": "210 tensors,
        uint4 block 32, float16 scale and offset", ...}``."""
        counts = Counter(tensor.gguf_type for tensor in self.quantized.values())
        described = {}
        for gguf_type, count in sorted(counts.items()):
            example = next(t for t in self.quantized.values() if t.gguf_type == gguf_type)
            form = decode_blocks(example.raw[:1], gguf_type, (1, example.shape[-1]))
            offset = "scale and offset" if form.offset is not None else "scale"
            described[gguf_type] = (
                f"{count} tensors exact: {form.data_type} block {form.block_size}, float16 {offset}"
            )
            if self.form == "native":
                from converter.quantization.native_form import describe_native

                described[gguf_type] = describe_native(gguf_type, count, form)
        floats = Counter(tensor.gguf_type for tensor in self.floats.values())
        for gguf_type, count in sorted(floats.items()):
            described[gguf_type] = f"{count} tensors float16"
        return described

    def read(self, tensor: GGUFTensor) -> np.ndarray:
        """The tensor's bytes, read (not mapped): mapped pages would stay in the process's
        resident memory until the whole file had been touched."""
        return np.fromfile(
            self.path, dtype=np.uint8, count=tensor.n_bytes, offset=tensor.data_offset
        )

    def blocks(self, name: str) -> CoreMLBlocks:
        """The tensor decoded ``ROWS_PER_READ`` rows at a time into arrays made once: beside the
        result, only one chunk of the file's bytes and its temporaries are alive."""
        tensor = self.quantized[name]
        rows, columns = tensor.shape
        row_bytes = tensor.n_bytes // rows
        whole: CoreMLBlocks | None = None
        for start in range(0, rows, ROWS_PER_READ):
            count = min(ROWS_PER_READ, rows - start)
            raw = np.fromfile(
                self.path,
                dtype=np.uint8,
                count=count * row_bytes,
                offset=tensor.data_offset + start * row_bytes,
            )
            try:
                part = decode_blocks(raw, tensor.gguf_type, (count, columns))
            except ValueError as error:
                raise ConversionError(f"GGUF tensor {tensor.gguf_name}: {error}") from error
            if whole is None:
                whole = CoreMLBlocks(
                    gguf_type=part.gguf_type,
                    data_type=part.data_type,
                    data=np.empty((rows, columns), dtype=part.data.dtype),
                    scale=np.empty((rows, part.scale.shape[1]), dtype=part.scale.dtype),
                    offset=None
                    if part.offset is None
                    else np.empty((rows, part.offset.shape[1]), dtype=part.offset.dtype),
                    block_size=part.block_size,
                )
            whole.data[start : start + count] = part.data
            whole.scale[start : start + count] = part.scale
            if whole.offset is not None:
                whole.offset[start : start + count] = part.offset
            del raw, part
        if whole is None:
            raise ConversionError(f"GGUF tensor {tensor.gguf_name} has no rows")
        order = self.row_order(tensor)
        whole = whole if order is None else permute_rows(whole, order)
        if self.form == "native":
            from converter.quantization.native_form import native_blocks

            return native_blocks(whole)
        return whole

    def float_tensor(self, name: str) -> torch.Tensor:
        from gguf import GGMLQuantizationType
        from gguf.quants import dequantize

        tensor = self.floats[name]
        values = dequantize(self.read(tensor), GGMLQuantizationType[tensor.gguf_type])
        values = values.reshape(tensor.shape)
        order = self.row_order(tensor)
        if order is not None:
            values = values[order]
        return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float16))

    def row_order(self, tensor: GGUFTensor) -> np.ndarray | None:
        """llama.cpp permutes Llama's q/k rows for its RoPE; transformers undoes it the same way.
        The NEOX-RoPE architectures (Qwen, Gemma, Phi) keep Hugging Face's order."""
        spec = self.spec
        if self.architecture not in PERMUTED_QK or tensor.gguf_name.endswith(".bias"):
            return None
        if ".attn_q." in tensor.gguf_name:
            heads = spec.num_heads
        elif ".attn_k." in tensor.gguf_name:
            heads = spec.num_kv_heads
        else:
            return None
        rows = tensor.shape[0]
        return np.arange(rows).reshape(heads, rows // heads // 2, 2).swapaxes(2, 1).reshape(-1)


def _check_shape(gguf_name: str, shape: tuple[int, ...], spec: ModelSpec) -> None:
    """A file's tensor header is checked before its bytes are used: an empty dimension, or q/k
    rows that are not heads x head_dim (llama.cpp's row permutation is undone per head), would
    otherwise fail deep in NumPy ("cannot reshape array of size 0 ...")."""
    if not shape or any(n <= 0 for n in shape):
        raise ConversionError(
            f"GGUF tensor {gguf_name} has shape {shape}: expected every dimension to be at "
            "least 1 (the file is damaged or not what its header says)"
        )
    for marker, heads, what in (
        (".attn_q.", spec.num_heads, "attention heads"),
        (".attn_k.", spec.num_kv_heads, "key-value heads"),
    ):
        expected = heads * spec.head_dim
        if marker in gguf_name and shape[0] != expected:
            raise ConversionError(
                f"GGUF tensor {gguf_name} has {shape[0]} rows: expected {expected} "
                f"({heads} {what} x head dimension {spec.head_dim}, from the model's config)"
            )


def read_gguf(path: Path, spec: ModelSpec, *, form: str = "exact") -> GGUFImport:
    """Map the file (nothing is read yet) and check every tensor's type before any work.
    ``form``: ``exact`` (the GGUF's own blocks) or ``native`` (``converter.quantization.native_form``)."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path))
    except (OSError, ValueError) as error:
        raise ConversionError(f"cannot read GGUF file {path}: {error}") from error
    field = reader.fields.get("general.architecture")
    architecture = str(field.contents()) if field is not None else "llama"
    floats: dict[str, GGUFTensor] = {}
    quantized: dict[str, GGUFTensor] = {}
    for item in reader.tensors:
        name = torch_name(item.name, architecture)
        if name is None:
            logger.info("not reading GGUF tensor %s (computed from the config)", item.name)
            continue
        gguf_type = item.tensor_type.name
        shape = tuple(int(n) for n in reversed(item.shape.tolist()))
        if not (gguf_type in FLOAT_TYPES or (gguf_type in DECODERS and len(shape) == 2)):
            raise ConversionError(
                f"GGUF tensor {item.name} has type {gguf_type}; exact import supports "
                f"{', '.join(FLOAT_TYPES + tuple(DECODERS))} (use --quantize int4, int8 or none "
                "to dequantize and re-quantize it instead)"
            )
        _check_shape(item.name, shape, spec)  # the type first: what the user can act on
        tensor = GGUFTensor(
            item.name, name, gguf_type, shape, item.data, int(item.data_offset), int(item.n_bytes)
        )
        kind = floats if gguf_type in FLOAT_TYPES else quantized
        for part in split_rows(tensor, spec):
            kind[part.torch_name] = part
    return GGUFImport(
        path=path,
        spec=spec,
        floats=floats,
        quantized=quantized,
        form=form,
        architecture=architecture,
    )


def split_rows(tensor: GGUFTensor, spec: ModelSpec) -> list[GGUFTensor]:
    """A fused tensor (Phi-3's attn_qkv, ffn_up holding gate and up) as the module's parts, by
    rows: each row is whole blocks, so every part keeps its own bytes exactly."""
    if not spec.fused_projections:
        return [tensor]
    layer, _, kind = tensor.torch_name.rpartition(".")
    parts = next((p for key, p in fused_parts(spec).items() if layer.endswith(key)), None)
    if parts is None:
        return [tensor]
    base = layer[: layer.rindex(".", 0, layer.rindex(".")) + 1]  # "model.layers.3."
    rows = tensor.shape[0]
    expected = sum(count for _, count in parts)
    if rows != expected:
        raise ConversionError(
            f"GGUF tensor {tensor.gguf_name} has {rows} rows, the config implies {expected}"
        )
    row_bytes = tensor.n_bytes // rows
    found, start = [], 0
    for part, count in parts:
        found.append(
            GGUFTensor(
                tensor.gguf_name,
                f"{base}{part}.{kind}",
                tensor.gguf_type,
                (count, *tensor.shape[1:]),
                tensor.raw[start : start + count],
                tensor.data_offset + start * row_bytes,
                count * row_bytes,
            )
        )
        start += count
    return found


def module_weights(imported: GGUFImport) -> dict[str, torch.Tensor]:
    """Float tensors as float16; quantized ones as distinct zero-stride placeholders."""
    weights = {name: imported.float_tensor(name) for name in imported.floats}
    for index, (name, tensor) in enumerate(sorted(imported.quantized.items())):
        # Integers up to 2048 are exact in float16: every placeholder differs from the others.
        value = float(index % 2048 + 1)
        weights[name] = torch.full((), value, dtype=torch.float16).expand(tensor.shape)
    return weights


def attach_blocks(
    program, imported: GGUFImport, *, report: FractionReport, lazy: LazyWeights
) -> int:
    """Replace each placeholder const by ``constexpr_blockwise_shift_scale`` from its blocks.

    The scales and offsets (1/8 byte per weight) go into the program now; the integers (one byte
    per weight) only as ``lazy`` placeholders, decoded again from the GGUF one tensor at a time
    while coremltools writes the package (``converter.quantization.lazy_blob_weights``).

    Returns the number of weights replaced. A placeholder not found by name (a tied lm_head is the
    embedding's const) is skipped only when the architecture ties it.
    """
    names = sorted(imported.quantized)
    if imported.spec.tie_word_embeddings and "lm_head.weight" in names:
        names.remove("lm_head.weight")
    return replace_with_blocks(
        program,
        names,
        lambda name, _placeholder: imported.blocks(name),
        report=report,
        what="GGUF blocks",
        lazy=lazy,
    )


def log_recipes(imported: GGUFImport, log: Callable[[str], None]) -> None:
    """One line per tensor group; the 8-bit forms say that they are exact but bigger."""
    for gguf_type, text in imported.recipes().items():
        note = ""
        if DATA_BITS.get(gguf_type) == 8 and gguf_type != "Q8_0":
            note = " (exact, stored as 8-bit data: bigger than the GGUF's own bits)"
        log(f"{gguf_type}: {text}{note}")
