"""What the converter writes: the model folder's interface, metadata and compressed weights."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest

from engine.package import metadata as meta


def _package(folder: Path) -> Path:
    (package,) = folder.glob("*.mlpackage")
    return package


def _load(folder: Path):
    import coremltools as ct
    from coremltools.converters.mil.frontend.milproto.load import load as load_program

    model = ct.models.MLModel(str(_package(folder)), skip_model_load=True)
    spec = model.get_spec()
    program = load_program(spec, spec.specificationVersion, file_weights_dir=model.weights_dir)
    ops = collections.Counter(op.op_type for op in program.functions["main"].operations)
    return spec, ops


def _ranges(feature) -> list[tuple[int, int]]:
    ranges = feature.type.multiArrayType.shapeRange.sizeRanges
    return [(r.lowerBound, r.upperBound) for r in ranges]


def _weight_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in _package(folder).rglob("weight.bin"))


def test_int4_package_has_the_interface_states_metadata_and_blockwise_weights(converted_package):
    folder = converted_package("mistral", "int4")
    spec, ops = _load(folder)
    description = spec.description
    inputs = {f.name: f for f in description.input}
    assert list(inputs) == [meta.INPUT_IDS, meta.CAUSAL_MASK]
    assert inputs[meta.INPUT_IDS].type.multiArrayType.dataType == 131104  # INT32
    assert inputs[meta.CAUSAL_MASK].type.multiArrayType.dataType == 65552  # FLOAT16
    assert _ranges(inputs[meta.INPUT_IDS]) == [(1, 1), (1, 256)]
    assert _ranges(inputs[meta.CAUSAL_MASK]) == [(1, 1), (1, 1), (1, 256), (1, 256)]
    assert [f.name for f in description.output] == [meta.LOGITS]
    assert description.output[0].type.multiArrayType.dataType == 65552
    states = {s.name: s for s in description.state}
    assert sorted(states) == [meta.KEY_CACHE, meta.VALUE_CACHE]
    for state in states.values():
        array = state.type.stateType.arrayType
        assert list(array.shape) == [2, 1, 2, 256, 16]  # layers, 1, kv heads, context, head dim
        assert array.dataType == 65552
        assert state.shortDescription
    assert all(f.shortDescription for f in [*description.input, *description.output])
    assert spec.specificationVersion >= 9  # iOS 18 / macOS 15: stateful models

    metadata = dict(description.metadata.userDefined)
    assert metadata[meta.SOURCE_MODEL_ID].startswith("tiny-mistral")  # the source folder's name
    assert metadata[meta.CONTEXT_LENGTH] == "256"
    assert metadata[meta.ARCHITECTURE] == "MistralForCausalLM"
    assert metadata[meta.QUANTIZATION] == "int4-searched-block32"
    assert metadata[meta.BOS_TOKEN_ID] == "1"
    assert metadata[meta.EOS_TOKEN_IDS] == "2"
    assert metadata[meta.LAST_LOGITS_ONLY] == "false"
    for key in (meta.CONVERTER_VERSION, meta.COREMLTOOLS_VERSION, meta.TORCH_VERSION):
        assert metadata[key]

    # q, o, gate, up, down of both layers, the embedding and lm_head; k and v (32x64 = 2048
    # values) are below coremltools' 2048-element threshold and stay float16 in this tiny model.
    assert ops["constexpr_blockwise_shift_scale"] == 2 * 5 + 2
    assert ops["read_state"] == 2 and ops["coreml_update_state"] >= 2
    assert ops["scaled_dot_product_attention"] == 2  # fused, one per layer


def test_model_folder_holds_tokenizer_files_with_the_chat_template(converted_package):
    folder = converted_package("mistral", "int4")
    assert (folder / meta.TOKENIZER_FILE).is_file()
    config = json.loads((folder / meta.TOKENIZER_CONFIG_FILE).read_text())
    assert "[INST]" in config["chat_template"]
    assert config["bos_token"] == "<s>" and config["eos_token"] == "</s>"
    assert not list(folder.parent.glob(".*partial*"))


def test_int4_weights_are_about_a_quarter_of_float16(converted_package):
    int4 = _weight_bytes(converted_package("mistral", "int4"))
    fp16 = _weight_bytes(converted_package("mistral", "none"))
    ratio = int4 / fp16
    # 4 bits plus a float16 scale per block of 32 = 4.5 bits of 16.
    assert 0.22 < ratio < 0.33, ratio


@pytest.mark.parametrize(
    ("quantize", "op", "label"),
    [("int8", "constexpr_blockwise_shift_scale", "int8"), ("none", None, "fp16")],
)
def test_int8_and_float16_packages(converted_package, quantize, op, label):
    folder = converted_package("llama", quantize)
    spec, ops = _load(folder)
    metadata = dict(spec.description.metadata.userDefined)
    assert metadata[meta.QUANTIZATION] == label
    assert metadata[meta.ARCHITECTURE] == "LlamaForCausalLM"
    if op is None:
        assert not [name for name in ops if name.startswith("constexpr_")]
    else:
        assert ops[op] > 0


def test_last_logits_only_is_recorded(converted_package):
    # The package test_session.py answers with (no conversion of its own); 256 is not the default.
    folder = converted_package("mistral", "none", last_logits_only=True)
    spec, _ = _load(folder)
    metadata = dict(spec.description.metadata.userDefined)
    assert metadata[meta.LAST_LOGITS_ONLY] == "true"
    assert metadata[meta.CONTEXT_LENGTH] == "256"
    assert "last new token" in spec.description.output[0].shortDescription
