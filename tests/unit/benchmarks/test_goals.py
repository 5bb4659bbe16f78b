"""benchmarks/_goals.py: each figure printed beside its goal, the run's summary naming the figures
that fall short and the benchmarks that crashed."""

from __future__ import annotations

import json
import math

import pytest

from benchmarks._goals import SUMMARY_VARIABLE, at_least, at_most, main, report, summarize


def test_a_figure_meets_its_goal_in_the_direction_it_is_set() -> None:
    assert at_most(0.3, 0.3).meets_goal and not at_most(0.31, 0.3).meets_goal
    assert at_least(0.6, 0.6).meets_goal and not at_least(0.59, 0.6).meets_goal
    assert not at_most(math.nan, 1.0).meets_goal and not at_least(math.nan, 1.0).meets_goal


def test_report_prints_each_figure_beside_its_goal_and_appends_to_the_summary(
    tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = tmp_path / "summary.jsonl"
    monkeypatch.setenv(SUMMARY_VARIABLE, str(summary))
    report("engine_overhead", {"demo_ms": at_most(2.2, 0.3, "ms")}, {"vocab": 49152})
    report("reference_decode", {"prefill_ratio": at_least(0.65, 0.6)})
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert printed[0] == {
        "benchmark": "engine_overhead",
        "figures": {"demo_ms": {"value": 2.2, "goal": "<= 0.3 ms", "meets_goal": False}},
        "details": {"vocab": 49152},
    }
    assert [json.loads(line) for line in summary.read_text().splitlines()] == printed

    text = summarize(summary, crashed=["benchmarks/long_line_render.py"])
    assert "SHORT  engine_overhead.demo_ms: 2.2 (goal <= 0.3 ms)" in text
    assert "ok     reference_decode.prefill_ratio: 0.65 (goal >= 0.6)" in text
    assert "1 of 2 figures meet their goal" in text
    assert "short of the goal: engine_overhead.demo_ms" in text
    assert "crashed (no figures): benchmarks/long_line_render.py" in text


def test_the_summary_fails_only_when_a_benchmark_crashed(tmp_path, capsys) -> None:
    summary = tmp_path / "summary.jsonl"
    summary.write_text(json.dumps({"benchmark": "b", "figures": {}, "details": {}}) + "\n")
    assert main(["summary", str(summary)]) == 0
    assert main(["summary", str(summary), "benchmarks/x.py"]) == 1
    assert main([]) == 2
    assert "usage" in capsys.readouterr().out
