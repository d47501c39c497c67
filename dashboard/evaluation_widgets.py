"""Evaluate page widgets: the split picker, the headline metrics, the per-class table, cell
selection, fixing images, Grad-CAM."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from PIL import Image

from core.data.image_rows import rows_by_id
from core.evaluation.evaluate import SPLIT_CHOICES, opening_split, split_counts
from core.evaluation.gradcam import explain
from core.evaluation.metrics import informative_top_k
from core.labels.relabel import relabel, set_excluded
from core.store.run_paths import checkpoint_text
from dashboard.label_actions import edit_button, run_edit
from dashboard.models import loaded_model
from dashboard.similar import more_like_this_expander


def split_picker(ws, dataset: str, column) -> str:
    """The split to evaluate, in ``column``: it opens on one that has images (test, else val,
    else train) and says so when that is not the test split; each option shows its count."""
    counts = split_counts(ws, dataset)
    first = opening_split(counts)
    splits = list(SPLIT_CHOICES)
    split = column.selectbox("Split", splits, index=splits.index(first), key=f"eval_split_{dataset}",
                             format_func=lambda s: f"{s} ({counts[s]:,} images)")
    if split == first and first != "test":
        column.caption(f"Opened on the {first} split: {dataset} has no labelled test images.")
    return split


def headline_metrics(report: dict) -> None:
    """Accuracy, the top-k accuracies below the class count, macro F1, ECE and the image
    count, then which checkpoint and split they come from."""
    top_k = informative_top_k(report["top_k_accuracy"], len(report["confusion_matrix"]["labels"]))
    cells = [("Accuracy", f"{report['accuracy']:.3f}", None),
             *[(f"Top-{k}", f"{v:.3f}", f"share of images whose true class is among the {k} "
                "most probable") for k, v in top_k.items()],
             ("Macro F1", f"{report['macro']['f1']:.3f}", None),
             ("ECE", f"{report['calibration']['ece']:.3f}", f"after temperature scaling "
              f"(T = {report['temperature']:.2f}, fitted on the run's validation split)"),
             ("Images", f"{report['num_samples']:,}", None)]
    for col, (label, value, help_) in zip(st.columns(len(cells)), cells):
        col.metric(label, value, help=help_)
    st.caption(f"Checkpoint {checkpoint_text(report['checkpoint'], report.get('checkpoint_epoch'))}"
               f", on the {report['split']} split of {report['dataset']}.")


def per_class_table(report: dict) -> None:
    df = pd.DataFrame(report["per_class"]).sort_values("f1")
    st.dataframe(df, hide_index=True, key="per_class", column_config={
        "precision": st.column_config.ProgressColumn("precision", min_value=0, max_value=1,
                                                     format="%.3f"),
        "recall": st.column_config.ProgressColumn("recall", min_value=0, max_value=1,
                                                  format="%.3f"),
        "f1": st.column_config.ProgressColumn("F1", min_value=0, max_value=1, format="%.3f"),
    })


def selected_cell(event, pairs: list[dict], labels: list[str]) -> tuple[str, str] | None:
    """The clicked confusion cell, else the pair picked from the most-confused list."""
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    if points and points[0].get("customdata"):
        true, predicted = points[0]["customdata"][:2]
        return str(true), str(predicted)
    options = [None] + [(p["true"], p["predicted"]) for p in pairs]
    choice = st.selectbox("…or pick a confused pair", options, key="cm_pair",
                          format_func=lambda o: "—" if o is None else
                          f"true {o[0]} → predicted {o[1]} "
                          f"({next(p['count'] for p in pairs if (p['true'], p['predicted']) == o)})")
    return choice


def fix_images_panel(ws, dataset: str, rows: list[dict], labels: list[str], key: str) -> None:
    """Thumbnails with their probabilities, and relabel / exclude for the chosen ones.

    "Relabel" carries the chosen images with the labels shown for them as the
    expected labels, so images relabelled meanwhile in another tab are a conflict.
    Outcomes are flashed: the page draws them with ``show_flash``."""
    if not rows:
        st.caption("No images in this cell.")
        return
    records = rows_by_id(ws, [r["image_id"] for r in rows])
    cols = st.columns(8)
    for k, r in enumerate(rows):
        rec = records.get(r["image_id"])
        with cols[k % 8]:
            if rec and rec.thumb.exists():
                st.image(str(rec.thumb), width="stretch")
            st.caption(f"#{r['image_id']} · label {rec.label if rec else '?'} · "
                       f"p({r['predicted']})={r['p_predicted']:.2f}")
    chosen = st.multiselect("Images to fix", [r["image_id"] for r in rows], key=f"{key}-ids",
                            format_func=lambda i: f"#{i}")
    shown = {i: records[i].label for i in chosen if i in records}   # the labels drawn above
    c1, c2, c3 = st.columns([2, 1, 1])
    c1.selectbox("New label", labels, key=f"{key}-label", index=labels.index(rows[0]["predicted"]))
    c2.button("Relabel", key=f"{key}-relabel", disabled=not shown, on_click=_relabel,
              args=(ws, dataset, shown, f"{key}-label"))
    edit_button(c3, "Exclude from training", set_excluded, ws, dataset, tuple(shown), True,
                key=f"{key}-exclude", disabled=not shown,
                ok=f"Excluded {len(shown)} image(s) from training")
    more_like_this_expander(ws, dataset, key=f"{key}-mlt", choices=[r["image_id"] for r in rows],
                            label="More like one of these images")


def _relabel(ws, dataset: str, shown: dict[int, str | None], label_key: str) -> None:
    """Give the images ``shown`` (id → the label drawn) the label picked under ``label_key``."""
    new = st.session_state[label_key]
    run_edit(relabel, ws, dataset, [(i, old, new) for i, old in shown.items()],
             ok=f"Relabelled {len(shown)} image(s) as {new}. Retrain to learn from the fix")


def gradcam_gallery(ws, run_id: str, rows: list[dict], labels: list[str]) -> None:
    if not rows:
        st.caption("Nothing to show.")
        return
    opacity = st.slider("Overlay opacity", 0.0, 1.0, 0.5, 0.05, key="cam_opacity")
    show = st.toggle("Show Grad-CAM (what the model looked at, for its predicted class)",
                     key="cam_on", value=True)
    lm = loaded_model(ws, run_id)
    records = rows_by_id(ws, [r["image_id"] for r in rows])
    cols = st.columns(6)
    for k, r in enumerate(rows):
        rec = records.get(r["image_id"])
        if rec is None:
            continue
        with cols[k % 6]:
            img = Image.open(rec.file)
            img.load()
            if show:
                shown, _ = explain(lm, img, labels.index(r["predicted"]), opacity)
                st.image(shown, width="stretch")
            else:
                st.image(str(rec.thumb), width="stretch")
            st.caption(f"true {r['true']} · pred {r['predicted']} ({r['p_predicted']:.2f}) · "
                       f"loss {r['loss']:.2f}")


def compare_runs_picker(runs: list, run) -> list[str]:
    """Pick the runs to overlay: the open run by default, one click adds the previous
    run (same dataset first), and any finished run can be added by name."""
    ids = [r.id for r in runs]
    key = "compare_runs"
    if not st.session_state.get(key) or any(i not in ids for i in st.session_state[key]):
        st.session_state[key] = [run.id]
    here = ids.index(run.id)
    others = runs[here + 1:] + runs[:here][::-1]        # older runs first (newest-first list)
    previous = next((r for r in others if r.dataset == run.dataset), others[0] if others else None)
    if previous is not None and st.button(f"Compare with the previous run ({previous.id})",
                                          key="cmp_previous", icon=":material/compare:"):
        st.session_state[key] = [run.id, previous.id]
    chosen = st.multiselect("Runs", ids, key=key)
    if len(chosen) > 1:
        st.caption(f"Comparing {len(chosen)} runs: {', '.join(chosen)} — settings that differ "
                   "are highlighted.")
    return chosen
