"""Run the benchmarks, print a readable table, write bench/results.json.

    python -m bench              # every bench/bench_*.py
    python -m bench training     # only modules whose name contains "training"
"""

from __future__ import annotations

import importlib
import json
import platform
import sys
import time
import traceback
from pathlib import Path

from bench.harness import Result, check

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    modules = sorted(p.stem for p in HERE.glob("bench_*.py"))
    if argv:
        modules = [m for m in modules if any(a in m for a in argv)]
    if not modules:
        print("no benchmarks found" + (f" matching {argv}" if argv else ""))
        return 1
    results: list[Result] = []
    failures: list[str] = []
    for name in modules:
        print(f"running {name} …", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            for r in importlib.import_module(f"bench.{name}").run():
                if r.passed is None:
                    r.passed = check(r.value, r.target)
                results.append(r)
        except Exception:  # a broken benchmark is reported, the others still run
            failures.append(f"{name}: {traceback.format_exc()}")
        print(f"  {name} took {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
    print(render(results))
    for f in failures:
        print(f"\nBENCHMARK FAILED TO RUN: {f}", file=sys.stderr)
    out = {"machine": {"platform": platform.platform(), "python": platform.python_version(),
                       "processor": platform.processor()},
           "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "results": [r.to_dict() for r in results], "failures": failures}
    (HERE / "results.json").write_text(json.dumps(out, indent=2))
    print(f"\nwritten to {HERE / 'results.json'}")
    return 1 if failures else 0


def render(results: list[Result]) -> str:
    rows = [("issue", "benchmark", "value", "target", "ok")]
    for r in results:
        ok = "" if r.passed is None else ("yes" if r.passed else "NO")
        rows.append((f"#{r.issue}", r.name, f"{r.value:,.3g} {r.unit}".strip(), r.target, ok))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
