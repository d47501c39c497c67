"""Export a run's model: pick real check images from its dataset, export, verify, bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.data.tensor_cache import load_cache
from core.errors import ImageLabError
from core.inference.export_formats import DEFAULT_TOLERANCE, ExportResult, export_model, write_bundle
from core.store.workspace import Workspace
from core.training.run_model import load_run_model, run_dataset

CHECK_IMAGES = 32


def export_run(ws: Workspace, run_id: str, fmt: str, out: Path, *,
               tolerance: float = DEFAULT_TOLERANCE) -> ExportResult:
    """Export run ``run_id``'s model as ``fmt`` (``onnx``/``pt2``) to ``out``, checked and bundled.

    The export is compared with PyTorch on up to ``CHECK_IMAGES`` real images of the run's
    dataset and refused above ``tolerance`` (max absolute logit difference); the bundle
    ``<out stem>-bundle.zip`` (model, ``predict.py``, preprocessing) is written beside it.
    Raises ``ImageLabError`` when the run's dataset no longer exists or the check fails."""
    lm = load_run_model(ws, run_id)
    dataset = run_dataset(ws, run_id)
    if dataset is None:
        raise ImageLabError(f"run {run_id}'s dataset no longer exists: no real images to check "
                            "the export against")
    cache = load_cache(ws, dataset, lm.image_size)
    pick = np.linspace(0, len(cache) - 1, min(CHECK_IMAGES, len(cache))).astype(np.int64)
    inputs = lm.to_tensor(np.asarray(cache.pixels[pick]))
    import copy
    model = copy.deepcopy(lm.model)  # never touch the (possibly shared) loaded model
    result = export_model(model, fmt, Path(out), inputs, tolerance=tolerance)
    bundle = Path(out).with_name(Path(out).stem + "-bundle.zip")
    write_bundle(result, bundle, classes=lm.classes, preprocessing=lm.preprocessing)
    return result
