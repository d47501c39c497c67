"""Sizes in one unit system: every limit is a power of two, so every message says MiB or
GiB (1 MiB = 2**20 bytes), never a decimal MB next to a binary limit."""

from __future__ import annotations

MIB = 1024 ** 2
GIB = 1024 ** 3


def format_size(n_bytes: float) -> str:
    """``n_bytes`` for people: ``"512 KiB"``, ``"50 MiB"``, ``"2.0 GiB"`` (binary units)."""
    n = float(n_bytes)
    if n >= GIB:
        return f"{n / GIB:.1f} GiB"
    if n >= MIB:
        return f"{n / MIB:.1f} MiB".replace(".0 MiB", " MiB")
    if n >= 1024:
        return f"{n / 1024:.0f} KiB"
    return f"{int(n)} bytes"
