"""Shared pieces for benchmarks: the result record and a timer."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable


@dataclass
class Result:
    issue: int            # the issue whose target this checks
    name: str             # what is measured, in words
    value: float          # the figure (usually a ratio against a baseline)
    unit: str             # "×", "s", "img/s", ...
    target: str = ""      # e.g. ">= 2.5", "< 2 s"; empty when informative only
    passed: bool | None = None
    detail: dict = field(default_factory=dict)  # raw measurements behind the figure

    def to_dict(self) -> dict:
        return asdict(self)


def check(value: float, target: str) -> bool | None:
    """Evaluate ``value`` against a target like '>= 2.5' or '< 45'."""
    if not target:
        return None
    op, _, num = target.partition(" ")
    limit = float(num.split()[0])
    return {">=": value >= limit, ">": value > limit, "<=": value <= limit,
            "<": value < limit}[op]


def best_time(fn: Callable[[], object], repeat: int = 3) -> float:
    """The fastest of ``repeat`` wall-clock timings of ``fn()``, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best
