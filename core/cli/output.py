"""CLI output rules: with ``--json`` stdout is exactly one JSON document;
progress and logs always go to stderr."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Callable


def emit(args, data: Any, human: Callable[[Any], str] | None = None) -> None:
    """Print a command's result on stdout: ``data`` as one JSON document with ``--json``, else
    ``human(data)`` (JSON when no formatter is given)."""
    if getattr(args, "json", False):
        json.dump(data, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        sys.stdout.write((human(data) if human else json.dumps(data, indent=2, default=str)) + "\n")
    sys.stdout.flush()


def log(message: str) -> None:
    """Print a progress or log line on stderr (never stdout, which ``--json`` keeps for the
    result)."""
    print(message, file=sys.stderr, flush=True)


class StderrProgress:
    """A ``Progress`` callback that prints at most every ``every`` seconds."""

    def __init__(self, every: float = 1.0):
        self.every, self._last = every, 0.0

    def __call__(self, done: int, total: int | None, message: str) -> None:
        now = time.monotonic()
        if now - self._last < self.every and (total is None or done < total):
            return
        self._last = now
        pct = f" ({100 * done / total:.0f}%)" if total else ""
        log(f"  {message}{pct}")


def table(rows: list[dict], columns: list[str]) -> str:
    """A plain fixed-width table for humans."""
    if not rows:
        return "(none)"
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]

    def line(vals: list[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(vals, widths)).rstrip()
    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells])
