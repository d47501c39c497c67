"""The quality report's semantic near-duplicates: pairs of images whose embeddings are
close (``core.embeddings.duplicates``), beside the exact and dHash duplicates. A pair whose
two images are in different splits is marked as leakage: a test image the model has, in
effect, already seen in training."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.data.image_rows import rows_by_id
from core.embeddings.duplicates import semantic_duplicates
from core.embeddings.store import load_embeddings
from core.errors import ImageLabError
from core.labels.history import list_actions
from dashboard.label_actions import show_error, show_label

SHOW_PAIRS = 6


def semantic_duplicates_section(ws, dataset: str) -> None:
    """An expander with the pairs (cross-split ones first), and the closest pairs as
    thumbnails; without embeddings, a pointer to the Explore page."""
    try:
        stored = load_embeddings(ws, dataset)
    except ImageLabError as exc:
        show_error(exc)
        return
    if stored is None:
        st.caption("Semantic near-duplicates (images that look alike to a model, not only "
                   "pixel for pixel) need the dataset's embeddings: compute them on Explore.")
        st.page_link("pages/7_Explore.py", label="Explore", icon=":material/scatter_plot:")
        return
    try:
        actions = list_actions(ws, dataset, limit=1)
        pairs = _pairs(ws, dataset, stored.embedder, str(stored.folder),
                       actions[0].id if actions else 0)
    except ImageLabError as exc:
        show_error(exc)
        return
    leaks = sum(1 for p in pairs if p["leakage"])
    title = (f"Semantic near-duplicates by embedding distance ({len(pairs):,} pairs, "
             f"{leaks:,} across splits)")
    with st.expander(title, expanded=bool(leaks)):
        if not pairs:
            st.caption(f"No two images are that close in the {stored.embedder} embeddings.")
            return
        pairs = sorted(pairs, key=lambda p: (not p["leakage"], p["distance"]))
        st.caption(f"From the {stored.embedder} embeddings ({stored.model}); distance is "
                   "cosine distance, 0 for the same direction. Leakage: the two images are in "
                   "different splits.")
        st.dataframe(pd.DataFrame([{
            "image a": f"#{p['a']}", "image b": f"#{p['b']}", "distance": round(p["distance"], 4),
            "labels": f"{show_label(p['label_a'])} / {show_label(p['label_b'])}",
            "splits": f"{p['split_a']} / {p['split_b']}",
            "leakage": "leakage" if p["leakage"] else ""} for p in pairs[:500]]),
            hide_index=True, key=f"semantic_pairs_{dataset}")
        _pair_thumbnails(ws, pairs[:SHOW_PAIRS])


@st.cache_data(show_spinner="Looking for near-duplicates in the embeddings…", max_entries=32)
def _pairs(_ws, dataset: str, embedder: str, version: str, last_action: int) -> list[dict]:
    """The pairs, computed once per embeddings version and label action (the pairs carry
    labels and splits); the key names the workspace through ``version``, its folder."""
    return semantic_duplicates(_ws, dataset, embedder=embedder)


def _pair_thumbnails(ws, pairs: list[dict]) -> None:
    rows = rows_by_id(ws, [i for p in pairs for i in (p["a"], p["b"])])
    cols = st.columns(len(pairs) * 2 or 1)
    for n, pair in enumerate(pairs):
        for m, side in enumerate(("a", "b")):
            row = rows.get(pair[side])
            with cols[2 * n + m]:
                if row is not None and row.thumb.exists():
                    st.image(str(row.thumb), width="stretch")
                st.caption(f"#{pair[side]} · {show_label(pair['label_' + side])} · "
                           f"{pair['split_' + side]}"
                           + (f" · d={pair['distance']:.3f}" if side == "a" else ""))
