"""The converter's stage reporter: one list of stages (``stages_for``), overall fractions that
fill 0..1 over the stages a request runs, and a stage that ends at 100% with a cancel point."""

from __future__ import annotations

from pathlib import Path

import pytest

from converter.options import ConversionRequest, stages_for
from converter.progress import CancelToken, ConversionCancelled, ProgressEvent, StageReporter


def test_the_overall_fraction_fills_the_stages_a_request_runs() -> None:
    for verify in (False, True):
        events: list[ProgressEvent] = []
        stages = stages_for(ConversionRequest("a/b", Path("out"), verify=verify))
        assert ("verify" in stages) is verify
        reporter = StageReporter(events.append, stages)
        for name in stages:
            with reporter.in_stage(name, f"{name}…", done=f"{name} done", cancel=CancelToken()):
                reporter.report(0.5)
        overall = [e.overall for e in events]
        assert overall == sorted(overall) and overall[-1] == pytest.approx(1.0)
        assert [e.stage for e in events if e.stage_fraction == 1.0] == list(stages)


def test_a_stage_ends_with_a_cancel_point() -> None:
    cancel = CancelToken()
    reporter = StageReporter(None, ["resolve", "load"])
    stage = reporter.in_stage("resolve", "resolving", done="resolved", cancel=cancel)
    with pytest.raises(ConversionCancelled), stage:
        cancel.cancel()
    assert reporter.overall == pytest.approx(reporter.shares["resolve"])


def test_an_unknown_stage_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown stages \\['export'\\]"):
        StageReporter(None, ["resolve", "export"])
