"""The Data page's exploration pieces: quality report, distributions, image detail."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from core.data.gallery import image_detail
from core.data.quality import QualityReport
from core.labels.relabel import relabel_image
from dashboard.label_actions import NO_LABEL, chosen_label, run_edit, show_label
from dashboard.similar import more_like_this_expander


def quality_section(q: QualityReport) -> None:
    c = st.columns(8)
    for col, (label, key) in zip(c, (("Corrupt / skipped", "skipped"), ("Duplicates", "duplicates"),
                                    ("Two labels", "label_conflicts"), ("Leakage", "leakage"),
                                    ("Near-duplicates", "near_duplicates"), ("Dark", "dark"),
                                    ("Bright", "bright"), ("Blurry", "blurry"))):
        col.metric(label, q.counts.get(key, 0))
    if q.channel_mean:
        names = ["R", "G", "B"] if len(q.channel_mean) == 3 else ["L"]
        st.caption("Per-channel mean / std (0–1): " + ", ".join(
            f"{n} {m:.3f} / {s:.3f}" for n, m, s in zip(names, q.channel_mean, q.channel_std)))
    if q.skipped:
        with st.expander(f"Corrupt or skipped files ({q.counts['skipped']})"):
            st.table([{"file": s["path"], "reason": s["reason"]} for s in q.skipped[:200]])
    for key, title in (("duplicates", "Exact duplicates"), ("label_conflicts", "Same image, two labels"),
                       ("leakage", "Same image in two splits"),
                       ("near_duplicates", "Near-duplicates (perceptual hash)")):
        rows = getattr(q, key)
        if rows:
            with st.expander(f"{title} ({q.counts[key]})"):
                st.table([{k: ", ".join(map(str, v)) if isinstance(v, list) else v
                           for k, v in r.items() if k != "sha256"} for r in rows[:200]])
    flagged = {k: getattr(q, k) for k in ("dark", "bright", "blurry") if getattr(q, k)}
    if flagged:
        with st.expander("Very dark, very bright or blurry images (ids)"):
            for k, ids in flagged.items():
                st.write(f"**{k}**: " + ", ".join(f"#{i}" for i in ids[:200]))


def distributions_figure(dist: dict) -> go.Figure:
    from plotly.subplots import make_subplots
    fig = make_subplots(rows=1, cols=4, subplot_titles=("width (px)", "height (px)",
                                                        "aspect ratio (w/h)", "brightness (0–255)"))
    for k, key in enumerate(("width", "height", "aspect", "brightness"), start=1):
        fig.add_histogram(x=dist[key], nbinsx=30, row=1, col=k, showlegend=False,
                          marker_color="#4C78A8")
    fig.update_layout(height=260, margin=dict(l=10, r=10, t=40, b=10), title="Distributions")
    return fig


def split_composition_figure(splits: dict, unlabelled: dict) -> go.Figure:
    fig = go.Figure()
    fig.add_bar(x=list(splits), y=[splits[s] - unlabelled.get(s, 0) for s in splits], name="labelled")
    fig.add_bar(x=list(splits), y=[unlabelled.get(s, 0) for s in splits], name="unlabelled")
    fig.update_layout(barmode="stack", height=320, title="Split composition",
                      margin=dict(l=10, r=10, t=40, b=10), yaxis_title="images")
    return fig


def image_detail_view(ws, image_id: int, *, dataset: str | None = None,
                      classes: list[str] | None = None) -> None:
    d = image_detail(ws, image_id)
    c1, c2 = st.columns([1, 2])
    c1.image(d["file"], caption=f"#{d['id']} {d['original_name']}", width="stretch")
    c2.table([{"field": k, "value": str(v)} for k, v in (
        ("label", show_label(d["label"])), ("split", d["split"]),
        ("size", f"{d['width']}×{d['height']}"), ("mode", d["mode"]), ("format", d["format"]),
        ("bytes", f"{d['num_bytes']:,}"), ("brightness", f"{d['brightness'] or 0:.1f}"),
        ("sharpness", f"{d['sharpness'] or 0:.1f}"), ("flags", ", ".join(d["flag_names"]) or "none"),
        ("sha256", d["sha256"][:16] + "…"), ("from", d["original_name"]))])
    if dataset and classes:
        fix_label(ws, dataset, d["id"], d["label"], classes)
    if dataset:
        more_like_this_expander(ws, dataset, key=f"data_mlt_{d['id']}", image_id=d["id"])


def fix_label(ws, dataset: str, image_id: int, current: str | None, classes: list[str]) -> None:
    """Relabel the image shown. "Save label" carries ``current``, the label drawn with
    it, as the expected label: a change made meanwhile in another tab is a conflict."""
    options = classes + [NO_LABEL]
    c1, c2 = st.columns([2, 1])
    c1.selectbox("Fix this image's label", options, key=f"data_fix_{image_id}",
                 index=options.index(current) if current in options else len(classes))
    c2.button("Save label", key=f"data_fix_save_{image_id}", on_click=_save_fix,
              args=(ws, dataset, image_id, current))


def _save_fix(ws, dataset: str, image_id: int, expected: str | None) -> None:
    new = chosen_label(f"data_fix_{image_id}")
    run_edit(relabel_image, ws, dataset, image_id, new, expected=expected,
             ok=f"Saved: image #{image_id} is now {show_label(new)}")
