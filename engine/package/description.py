"""A Core ML package's description (inputs, outputs, states, metadata), read without coremltools.

The GUI process describes model folders (the Model tab's list, the check when a folder is opened)
and must never import coremltools: it is model code (DESIGN.md: Processes), and importing it costs
seconds where torch is installed. ``from coremltools.proto import Model_pb2`` is no way around that:
it runs coremltools' package ``__init__`` first.

``model.mlmodel`` is a protobuf. This module declares the few messages of Core ML's ``Model.proto``
the description needs, with Core ML's names and field numbers, in a private descriptor pool, and
lets protobuf parse the file: every other field (the program, the weights' references) is skipped
as unknown. ``describe_spec`` takes the result as it takes coremltools' ``Model_pb2.Model``.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from engine.package.model import parse_model_file

_PACKAGE = "coreml_chat.spec"  # not CoreML.Specification: nothing to clash with coremltools' pool
_Field = descriptor_pb2.FieldDescriptorProto
_ONE, _MANY = _Field.LABEL_OPTIONAL, _Field.LABEL_REPEATED
_STRING, _INT32, _INT64, _UINT64 = (
    _Field.TYPE_STRING,
    _Field.TYPE_INT32,  # ArrayDataType: an enum on the wire, its number here
    _Field.TYPE_INT64,
    _Field.TYPE_UINT64,
)

# message: (field, number, label, scalar type or message name), as in Core ML's Model.proto,
# FeatureTypes.proto and Metadata; ``test_spec_description`` compares them with coremltools' own.
MESSAGES: dict[str, tuple[tuple[str, int, int, int | str], ...]] = {
    "Model": (("description", 2, _ONE, "ModelDescription"),),
    "ModelDescription": (
        ("input", 1, _MANY, "FeatureDescription"),
        ("output", 10, _MANY, "FeatureDescription"),
        ("state", 13, _MANY, "FeatureDescription"),
        ("metadata", 100, _ONE, "Metadata"),
    ),
    "Metadata": (("userDefined", 100, _MANY, "Metadata.UserDefinedEntry"),),
    "FeatureDescription": (
        ("name", 1, _ONE, _STRING),
        ("shortDescription", 2, _ONE, _STRING),
        ("type", 3, _ONE, "FeatureType"),
    ),
    "FeatureType": (
        ("multiArrayType", 5, _ONE, "ArrayFeatureType"),
        ("stateType", 8, _ONE, "StateFeatureType"),
    ),
    "ArrayFeatureType": (
        ("shape", 1, _MANY, _INT64),
        ("dataType", 2, _ONE, _INT32),
        ("shapeRange", 31, _ONE, "ArrayFeatureType.ShapeRange"),
    ),
    "ArrayFeatureType.ShapeRange": (("sizeRanges", 1, _MANY, "SizeRange"),),
    "SizeRange": (("lowerBound", 1, _ONE, _UINT64), ("upperBound", 2, _ONE, _INT64)),
    "StateFeatureType": (("arrayType", 1, _ONE, "ArrayFeatureType"),),
}


def _add_fields(message: descriptor_pb2.DescriptorProto, name: str) -> None:
    for field_name, number, label, kind in MESSAGES[name]:
        field = message.field.add(name=field_name, number=number, label=label)
        if isinstance(kind, str):
            field.type = _Field.TYPE_MESSAGE
            field.type_name = f".{_PACKAGE}.{kind}"
        else:
            field.type = kind  # type: ignore[assignment]


@functools.cache
def _model_class() -> type:
    """The ``Model`` message class, built once from ``MESSAGES`` in a pool of its own."""
    file = descriptor_pb2.FileDescriptorProto(
        name="coreml_chat_spec_description.proto", package=_PACKAGE, syntax="proto3"
    )
    for name in MESSAGES:
        if "." in name:
            continue  # nested: added with its parent below
        message = file.message_type.add(name=name)
        _add_fields(message, name)
        for nested in (n for n in MESSAGES if n.startswith(name + ".")):
            _add_fields(message.nested_type.add(name=nested.split(".", 1)[1]), nested)
    entry = next(m for m in file.message_type if m.name == "Metadata").nested_type.add(
        name="UserDefinedEntry"
    )
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, label=_ONE, type=_STRING)
    entry.field.add(name="value", number=2, label=_ONE, type=_STRING)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.Model"))


def read_description(package: Path) -> Any:
    """The spec of ``package`` with its description only (no coremltools, no weights): what
    ``describe_spec`` reads. Raises ``ModelLoadError`` for a missing or corrupt model.mlmodel."""
    return parse_model_file(package, _model_class()())
