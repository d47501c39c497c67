"""Speed benchmarks: ``make bench`` (``python -m bench``).

Each ``bench/bench_*.py`` module defines ``run() -> list[Result]``. Every figure
is measured in the same run as its baseline and reported as a ratio against it,
so results compare across machines. Nothing here is hard-coded.
"""
