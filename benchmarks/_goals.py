"""What every benchmark prints, and the summary ``make bench`` ends with (a helper, not a benchmark).

A benchmark measures its figures and hands them to ``report``: one JSON object on stdout with each
figure beside its goal (``{"value": 0.41, "goal": "<= 0.3", "meets_goal": false}``) and the
benchmark's other measurements under ``details``. Under ``make bench`` (``COREML_CHAT_BENCH_SUMMARY``
names a file) the same object is appended to that file as one line, and

    python benchmarks/_goals.py summary FILE

prints every figure against its goal and then the ones that fall short (exit 0: a missed goal is a
finding, not a failure; a benchmark that crashed is, and ``make bench`` says so).
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

SUMMARY_VARIABLE = "COREML_CHAT_BENCH_SUMMARY"


@dataclass(frozen=True)
class Figure:
    """One measured figure and its goal: ``value <= goal`` (``at_most``) or ``value >= goal``."""

    value: float
    goal: float
    direction: Literal["at_most", "at_least"]
    unit: str = ""

    @property
    def meets_goal(self) -> bool:
        if math.isnan(self.value):
            return False
        return self.value <= self.goal if self.direction == "at_most" else self.value >= self.goal

    def as_json(self) -> dict:
        sign = "<=" if self.direction == "at_most" else ">="
        return {
            "value": round(self.value, 4),
            "goal": f"{sign} {self.goal:g}" + (f" {self.unit}" if self.unit else ""),
            "meets_goal": self.meets_goal,
        }


def at_most(value: float, goal: float, unit: str = "") -> Figure:
    """A figure whose goal is an upper bound (a time, a memory ratio)."""
    return Figure(float(value), goal, "at_most", unit)


def at_least(value: float, goal: float, unit: str = "") -> Figure:
    """A figure whose goal is a lower bound (a speed ratio, an agreement)."""
    return Figure(float(value), goal, "at_least", unit)


def report(
    benchmark: str, figures: dict[str, Figure], details: dict | None = None, *, indent=None
) -> dict:
    """Print the benchmark's JSON (figures beside their goals, then ``details``) and append it
    to the summary file ``make bench`` names; returns the object."""
    result = {
        "benchmark": benchmark,
        "figures": {name: figure.as_json() for name, figure in figures.items()},
        "details": details or {},
    }
    print(json.dumps(result, indent=indent), flush=True)
    summary = os.environ.get(SUMMARY_VARIABLE)
    if summary:
        with open(summary, "a", encoding="utf-8") as file:
            file.write(json.dumps(result) + "\n")
    return result


def summarize(path: Path, *, crashed: list[str] = ()) -> str:
    """The summary of a ``make bench`` run: each figure against its goal, then those that fall
    short and the benchmarks that crashed (named by ``crashed``)."""
    results = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    lines = ["== goals"]
    short = []
    for result in results:
        for name, figure in result["figures"].items():
            mark = "ok" if figure["meets_goal"] else "SHORT"
            lines.append(
                f"{mark:5}  {result['benchmark']}.{name}: {figure['value']} (goal {figure['goal']})"
            )
            if not figure["meets_goal"]:
                short.append(f"{result['benchmark']}.{name}")
    counted = sum(len(result["figures"]) for result in results)
    lines.append(f"{counted - len(short)} of {counted} figures meet their goal")
    if short:
        lines.append("short of the goal: " + ", ".join(short))
    if crashed:
        lines.append("crashed (no figures): " + ", ".join(crashed))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] != "summary":
        print("usage: python benchmarks/_goals.py summary FILE [CRASHED_BENCHMARK ...]")
        return 2
    print(summarize(Path(argv[1]), crashed=argv[2:]))
    return 1 if argv[2:] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
