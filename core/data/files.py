"""Reading local files for import: the one size check before any bytes are read.

Below ``ingest``, ``prepare`` and every source, so each can read files without
importing a data source.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.data.decode import MAX_FILE_BYTES
from core.errors import ImageLabError


def read_file(path: Path) -> bytes:
    """Read one file for import, refusing files too large to be an image we accept."""
    size = os.stat(path).st_size
    if size > MAX_FILE_BYTES:
        raise ImageLabError(f"file too large ({size / 1e6:.0f} MB > {MAX_FILE_BYTES / 1e6:.0f} MB)")
    with open(path, "rb") as fh:
        return fh.read()
