"""What the Explore map's points are coloured by: label, prediction, split, quality flag or
"likely mislabelled", each as one category per image (a legend entry per category).

Predictions come from the run's stored evaluations (``evaluate_run`` writes per-image
probabilities per split, the Evaluate page's own files), so colouring never runs a model in
the script thread: the page offers to evaluate the run on the splits that lack one.
"Likely mislabelled" is the label review's confident-learning ranking
(``core.labels.quality.rank_run``) of the newest run's held-out predictions.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.errors import ImageLabError
from core.evaluation.evaluate import evaluate_run, stored_predictions
from core.labels.quality import load_predictions, prediction_runs, rank_run
from core.training.runs import list_runs
from dashboard.label_actions import NO_LABEL, flash

COLOUR_BY = ("label", "prediction", "split", "quality flag", "likely mislabelled")
SPLITS = ("train", "val", "test")
NO_PREDICTION = "(no prediction)"


def colour_column(ws, df: pd.DataFrame, dataset: str, by: str, *, key: str) -> pd.Series:
    """One category per row of ``df`` (columns ``image_id``, ``label``, ``split``, ``flag``)
    for colouring ``by`` one of ``COLOUR_BY``; draws the choices that colouring needs."""
    if by == "label":
        return df["label"].fillna(NO_LABEL)
    if by == "split":
        return df["split"]
    if by == "quality flag":
        return df["flag"]
    if by == "prediction":
        return _predictions(ws, df, dataset, key)
    return _mislabelled(ws, df, dataset)


def _predictions(ws, df: pd.DataFrame, dataset: str, key: str) -> pd.Series:
    runs = [r for r in list_runs(ws, limit=200) if r.status == "finished"]
    if not runs:
        st.caption("No finished run yet: train one to colour the map by its predictions.")
        return pd.Series(NO_PREDICTION, index=df.index)
    own = [r for r in runs if r.dataset == dataset] + [r for r in runs if r.dataset != dataset]
    run = st.selectbox("Predictions of run", own, key=f"{key}_run",
                       format_func=lambda r: f"{r.id} · {r.dataset} · {r.config.get('arch')}")
    found = {s: stored_predictions(ws, run.id, dataset, s) for s in SPLITS}
    missing = [s for s, p in found.items() if p is None]
    if missing:
        st.caption(f"Run {run.id} has no stored predictions on the {', '.join(missing)} "
                   f"split(s) of {dataset}: those points show {NO_PREDICTION}.")
        st.button(f"Evaluate {run.id} on {', '.join(missing)}", key=f"{key}_evaluate",
                  on_click=_evaluate, args=(ws, run.id, dataset, tuple(missing)))
    predicted: dict[int, str] = {}
    for preds in found.values():
        if preds is not None:
            names = [str(c) for c in preds["class_names"].tolist()]
            best = preds["probs"].argmax(axis=1)
            predicted.update(zip(preds["image_ids"].tolist(), (names[b] for b in best)))
    return df["image_id"].map(predicted).astype(object).fillna(NO_PREDICTION)


def _evaluate(ws, run_id: str, dataset: str, splits: tuple[str, ...]) -> None:
    """Evaluate the run on each split (stored; the Evaluate page reuses them)."""
    for split in splits:
        try:
            evaluate_run(ws, run_id, dataset, split)
        except ImageLabError as exc:
            flash("warning", f"{split}: {exc}")


def _mislabelled(ws, df: pd.DataFrame, dataset: str) -> pd.Series:
    runs = prediction_runs(ws, dataset)
    if not runs:
        st.caption("No run of this dataset has held-out predictions yet: train one, and its "
                   "validation predictions rank the labels that look wrong.")
        return pd.Series("not scored", index=df.index)
    run_id, path = runs[0]
    try:
        ranking = rank_run(ws, dataset, run_id, path, include_reviewed=True)
    except ImageLabError as exc:
        st.caption(f"Run {run_id}'s predictions cannot be ranked: {exc}")
        return pd.Series("not scored", index=df.index)
    scored = set(load_predictions(path, run_id).image_ids.tolist())
    suspects = {s.image_id: f"likely mislabelled (looks like {s.suggested})"
                for s in ranking.suspects}
    st.caption(f"Confident learning on run {run_id}'s held-out (validation) predictions: "
               f"{len(suspects):,} of {ranking.num_scored:,} scored images look mislabelled.")
    out = df["image_id"].map(suspects).astype(object)
    looks_right = df["image_id"].isin(scored) & out.isna()
    return out.where(~looks_right, "looks right").fillna("not scored")

