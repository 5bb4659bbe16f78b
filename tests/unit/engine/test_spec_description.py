"""The coremltools-free reader of a package's description: its messages are Core ML's (names and
field numbers, checked against coremltools' own ``Model_pb2``). That it describes a converted
package as coremltools' full parse does is in ``tests/integration/app/test_model_library.py``."""

from __future__ import annotations

import pytest

from engine.package.description import _MANY, MESSAGES


def _core_ml_message(name: str):
    from coremltools.proto import Model_pb2

    pool = Model_pb2.DESCRIPTOR.pool
    return pool.FindMessageTypeByName(f"CoreML.Specification.{name}")


@pytest.mark.parametrize("message", sorted(MESSAGES))
def test_each_declared_field_is_core_mls(message: str) -> None:
    theirs = _core_ml_message(message)
    for name, number, label, kind in MESSAGES[message]:
        field = theirs.fields_by_name[name]
        assert field.number == number, f"{message}.{name}"
        assert field.is_repeated == (label == _MANY), f"{message}.{name}"
        if isinstance(kind, str):
            assert field.message_type.full_name == f"CoreML.Specification.{kind}"
        else:  # a scalar: the same wire type (an enum is read as its number)
            assert field.message_type is None
            assert field.type == kind or (field.type == field.TYPE_ENUM and name == "dataType")
