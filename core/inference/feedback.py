"""Demo feedback: "Wrong? Tell us the right class" adds the image to a dataset.

The image goes through the normal import path (``DatasetWriter``): decoded
safely, stored, thumbnailed, and labelled with the class the person gave,
recorded as an ``import`` action by that person with source ``demo feedback``.
It lands in the training split, so the next run learns from it, and it shows in
the gallery and the label history like any other image — the demo feeds the
data loop.
"""

from __future__ import annotations

import time

from core.data.import_rows import ImportReport
from core.data.ingest import DatasetWriter
from core.errors import ImageLabError
from core.store.workspace import Workspace


def send_feedback(ws: Workspace, dataset: str, image_bytes: bytes, correct_label: str, *,
                  user: str = "", predicted: str = "", run_id: str = "") -> ImportReport:
    """Add a Demo image to ``dataset``'s training split with the class the user says is right.

    Records who sent it and what was predicted in the import's file name; returns the import
    report. Raises ``ImageLabError`` when no class is given or the image cannot be added."""
    label = (correct_label or "").strip()
    if not label:
        raise ImageLabError("say which class is right")
    name = f"feedback/{run_id or 'demo'}/{time.strftime('%Y%m%d-%H%M%S')}-was-{predicted or 'x'}.img"
    with DatasetWriter(ws, dataset, "demo feedback", append=True, user=user,
                       fractions={"train": 1.0, "val": 0.0, "test": 0.0}) as writer:
        if not writer.add_bytes(image_bytes, original_name=name, label=label, split="train"):
            raise ImageLabError(f"the image could not be added: {writer.skipped[-1].reason}")
        return writer.commit()
