"""The Label page's Review mode: images whose label a finished run doubts
(ranked from held-out predictions), with accept / keep / exclude, and groups
of identical or near-identical images that carry different labels.

"Accept" carries the label the ranking showed as the edit's expected label.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.errors import ImageLabError
from core.labels import quality as label_quality
from core.labels.selection import get_image
from core.store.workspace import Workspace
from dashboard.label_actions import edit_button, show_error, show_label
from dashboard.labelling.common import md_escape

SHOWN = 10


def review_queue(ws: Workspace, dataset: str) -> None:
    """Suspected label errors of a run's held-out predictions, then conflicting duplicates."""
    st.subheader("Suspected label errors")
    runs = label_quality.prediction_runs(ws, dataset)
    if not runs:
        st.info("Ranking suspected label errors needs a finished training run of this dataset "
                "with held-out predictions (runs/<run id>/predictions_val.npz). Train a model "
                "on the Train page, then come back.")
    else:
        _suspects(ws, dataset, runs)
    st.subheader("Duplicates with different labels")
    groups = label_quality.conflicting_duplicates(ws, dataset)
    if not groups:
        st.caption("No identical or nearly identical images carry different labels.")
        return
    st.table(pd.DataFrame([{"kind": "identical" if g.exact else "near-identical",
                            "images": ", ".join(f"#{i}" for i in g.image_ids),
                            "labels": ", ".join(show_label(x) for x in g.labels)} for g in groups[:50]]))
    st.caption("Open an image in the gallery's detail view to fix its label.")


def _suspects(ws, dataset, runs) -> None:
    run_ids = [r for r, _ in runs]
    run_id = st.selectbox("Run", run_ids, key="review_run")
    path = dict(runs)[run_id]
    order = st.radio("Rank by", ["self_confidence", "margin"], horizontal=True, key="review_order",
                     format_func=lambda o: {"self_confidence": "p(given label)",
                                            "margin": "margin"}[o])
    try:
        ranking = label_quality.rank_run(ws, dataset, run_id, path, order=order)
    except ImageLabError as exc:
        show_error(exc)
        return
    st.caption(f"Predictions from {label_quality.SOURCES[ranking.source]}: images the model did "
               f"not train on. {ranking.num_scored:,} scored, {len(ranking.suspects):,} suspected.")
    for s in ranking.suspects[:SHOWN]:
        img = get_image(ws, dataset, s.image_id)
        if img is None:
            continue
        a, b = st.columns([1, 3])
        if img.thumb.exists():
            a.image(str(img.thumb), width=96)
        b.text(f"#{s.image_id}  given: {s.given}  suggested: {s.suggested}\n"
               f"p(given) {s.self_confidence:.3f} · margin {s.margin:+.3f} · "
               f"p(suggested) {s.suggested_confidence:.3f}")
        x, y, z = b.columns(3)
        edit_button(x, f"Accept {md_escape(s.suggested)}", label_quality.accept_suggestion,
                    ws, dataset, s.image_id, s.suggested,
                    kwargs={"expected": s.given, "run_id": run_id},
                    key=f"rv_acc_{s.image_id}", ok=f"Saved: #{s.image_id} is now {s.suggested}")
        edit_button(y, "Keep current label", label_quality.keep_label, ws, dataset, s.image_id,
                    kwargs={"run_id": run_id}, key=f"rv_keep_{s.image_id}", ok=f"Kept #{s.image_id}")
        edit_button(z, "Exclude from training", label_quality.exclude_from_training, ws, dataset,
                    s.image_id, kwargs={"run_id": run_id}, key=f"rv_exc_{s.image_id}",
                    ok=f"Excluded #{s.image_id}")
