"""States on the reference runtime: read_state / slice_update / coreml_update_state, written in place
when that is safe, copied when a later op still reads the old contents."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch  # noqa: F401  # coremltools is imported after torch in the test suite

from engine.runtime.reference.aliasing import plan_state_writes
from engine.runtime.reference.runtime import load_reference_model

ROW = np.array([[1.0, 2.0, 3.0, 4.0]], dtype=np.float16)


def _stateful(tmp_path: Path, body, name: str):
    """A program with input ``x`` (1, 4) float16 and state ``cache`` (3, 4) float16, saved and
    loaded on the reference runtime; also returns the program's ops, for the plan."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    @mb.program(
        input_specs=[
            mb.TensorSpec((1, 4), dtype=types.fp16),
            mb.StateTensorSpec((3, 4), dtype=types.fp16),
        ],
        opset_version=ct.target.iOS18,
    )
    def program(x, cache):
        return body(mb, x, cache)

    operations = list(program.functions["main"].operations)
    outputs = list(program.functions["main"].outputs)
    plan = plan_state_writes(operations, outputs)
    model = ct.convert(
        program,
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS18,
        compute_precision=ct.precision.FLOAT16,
        pass_pipeline=ct.PassPipeline.EMPTY,
        skip_model_load=True,
    )
    package = tmp_path / f"{name}.mlpackage"
    model.save(str(package))
    return load_reference_model(package), plan


def test_accumulating_state_is_updated_in_place(tmp_path):
    def body(mb, x, cache):
        old = mb.read_state(input=cache)
        row = mb.slice_by_index(x=old, begin=[1, 0], end=[2, 4])
        new = mb.slice_update(x=old, update=mb.add(x=row, y=x), begin=[1, 0], end=[2, 4])
        mb.coreml_update_state(state=cache, value=new)
        return mb.reduce_sum(x=new, axes=[0], keep_dims=True, name="total")

    model, plan = _stateful(tmp_path, body, "accumulate")
    assert len(plan.in_place_updates) == 1 and not plan.copied_reads
    assert model.description.states[0].shape == (3, 4)
    state = model.make_state()
    array = state.arrays["cache"]
    for step in (1, 2, 3):
        out = model.predict({"x": ROW}, state)
        np.testing.assert_array_equal(out["total"], ROW * step)
    assert state.arrays["cache"] is array  # the same buffer, written in place
    np.testing.assert_array_equal(array[1], ROW[0] * 3)
    assert not array[0].any() and not array[2].any()
    other = model.make_state()
    np.testing.assert_array_equal(model.predict({"x": ROW}, other)["total"], ROW)


def test_a_view_of_the_old_contents_read_later_prevents_the_in_place_write(tmp_path):
    def body(mb, x, cache):
        old = mb.read_state(input=cache)
        before = mb.slice_by_index(x=old, begin=[0, 0], end=[1, 4])  # a NumPy view of the state
        new = mb.slice_update(x=old, update=x, begin=[0, 0], end=[1, 4])
        mb.coreml_update_state(state=cache, value=new)
        after = mb.slice_by_index(x=new, begin=[0, 0], end=[1, 4])
        return mb.concat(values=[before, after], axis=0, name="rows")

    model, plan = _stateful(tmp_path, body, "view")
    assert not plan.in_place_updates
    state = model.make_state()
    first = model.predict({"x": ROW}, state)["rows"]
    np.testing.assert_array_equal(first, np.concatenate([np.zeros_like(ROW), ROW]))
    second = model.predict({"x": ROW * 2}, state)["rows"]
    np.testing.assert_array_equal(second, np.concatenate([ROW, ROW * 2]))


def test_old_contents_read_after_the_state_is_overwritten_come_from_a_copy(tmp_path):
    def body(mb, x, cache):
        old = mb.read_state(input=cache)
        mb.coreml_update_state(state=cache, value=mb.add(x=old, y=x))
        return mb.reduce_sum(x=old, axes=[0], keep_dims=True, name="before")

    model, plan = _stateful(tmp_path, body, "copy")
    assert len(plan.copied_reads) == 1
    state = model.make_state()
    np.testing.assert_array_equal(model.predict({"x": ROW}, state)["before"], ROW * 0)
    np.testing.assert_array_equal(model.predict({"x": ROW}, state)["before"], ROW * 3)
    np.testing.assert_array_equal(state.arrays["cache"], np.repeat(ROW * 2, 3, axis=0))


def test_an_output_sharing_memory_with_the_state_is_copied(tmp_path):
    def body(mb, x, cache):
        old = mb.read_state(input=cache)
        new = mb.slice_update(x=old, update=x, begin=[2, 0], end=[3, 4])
        mb.coreml_update_state(state=cache, value=new)
        return mb.reshape(x=new, shape=[12], name="flat")

    model, plan = _stateful(tmp_path, body, "output")
    assert plan.copied_outputs == {"flat"}
    state = model.make_state()
    first = model.predict({"x": ROW}, state)["flat"]
    model.predict({"x": ROW * 5}, state)
    np.testing.assert_array_equal(first[8:], ROW[0])  # not changed by the second call
    np.testing.assert_array_equal(state.arrays["cache"][2], ROW[0] * 5)
