"""The Explore page's map: the embedder choice, the background embedding job with its live
progress, and the 2-D map of the embeddings as a plotly ``Scattergl``.

The coordinates are precomputed by the job (PCA at once, UMAP when it is done); the map
reads them, joins the images' label, split and flags, and draws at most ``MAX_POINTS``
points (``display_points`` decimates for display only; a box or lasso still selects every
point inside it, see ``dashboard.map_selection``). Each category is one trace, so the
legend names it with its count and a click hides it.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.data.image_table import image_table
from core.embeddings.embedders import available_embedders
from core.embeddings.jobs import embedding_job_status
from core.embeddings.projection import display_points, map_points
from core.embeddings.store import list_embeddings
from core.errors import ImageLabError
from dashboard.label_actions import NO_LABEL
from dashboard.similar import job_running, start_job

MAX_POINTS = 20_000
PROGRESS_SECONDS = 1.0

MAP_META = "imagelab-embedding-map"   # how the hover component finds the map (map_hover)


def embedder_choice(ws, dataset: str) -> str:
    """Pick the embedder (the default first, with the reason each one is offered)."""
    choices = available_embedders(ws, dataset)
    by_key = {c.key: c for c in choices}
    stored = {m["embedder"]: m for m in list_embeddings(ws, dataset)}
    key = st.selectbox("Embeddings from", list(by_key), key=f"explore_embedder_{dataset}",
                       format_func=lambda k: by_key[k].label
                       + (" · computed" if k in stored else ""))
    note = "Default: " if key == choices[0].key else ""
    st.caption(f"{note}{by_key[key].reason}."
               + (f" Computed {stored[key]['computed_at']} for {stored[key]['count']:,} "
                  f"images ({stored[key]['model']})." if key in stored else ""))
    return key


def job_panel(ws, dataset: str, embedder: str, computed: bool) -> None:
    """The compute button and, while the job runs, its progress (redrawn every second)."""
    status = embedding_job_status(ws, dataset)
    running = job_running(status)
    label = "Update embeddings (new or changed images only)" if computed else "Compute embeddings"
    st.button(label, key="explore_compute", on_click=start_job, args=(ws, dataset, embedder),
              disabled=running, type="secondary" if computed else "primary",
              icon=":material/hub:")
    if running:
        job_progress(ws, dataset, embedder, computed)
    elif status and status.get("state") == "failed":
        st.error(f"The last embedding job failed: {status.get('message') or 'no message'}")


@st.fragment(run_every=PROGRESS_SECONDS)
def job_progress(ws, dataset: str, embedder: str, computed: bool) -> None:
    """Live progress of the embedding job. The whole page runs again when there is a map to
    show that it lacks: as soon as the vectors are stored (the instant PCA view, while UMAP
    runs) and when the job ends (the UMAP map)."""
    status = embedding_job_status(ws, dataset)
    if not job_running(status) or (not computed and _stored(ws, dataset, embedder)):
        st.rerun()
    total = max(int(status.get("total") or 0), 1)
    done = min(int(status.get("done") or 0), total)
    stage = status.get("stage") or status.get("state")
    st.progress(done / total, text=f"{status.get('embedder', '')}: {stage} · {done:,} of "
                f"{total:,} · {status.get('message') or ''}")


def _stored(ws, dataset: str, embedder: str) -> bool:
    return any(m["embedder"] == embedder for m in list_embeddings(ws, dataset))


def map_frame(ws, dataset: str, embedder: str) -> pd.DataFrame | None:
    """Every point of the map with its image's name, label, split, exclusion and flag, or
    None when the embedder has no map yet."""
    try:
        points = map_points(ws, dataset, embedder)
    except ImageLabError:
        return None
    if points is None or not len(points):
        return None
    table = pd.DataFrame(image_table(ws, dataset))
    return points.merge(table, on="image_id", how="inner")


def map_caption(df: pd.DataFrame, shown: pd.DataFrame, running: bool) -> str:
    """What the map shows: its method, the points drawn of all, and what a selection takes."""
    method = str(df["method"].iloc[0]).upper() if len(df) else ""
    text = f"{method} map of {len(df):,} images."
    if len(shown) < len(df):
        text += (f" Showing {len(shown):,} of {len(df):,} points (for display only: a box or "
                 "lasso selects every image inside it).")
    if method == "PCA":
        text += (" This is the instant PCA view; the UMAP map replaces it when it is ready."
                 if running else " UMAP has not been computed for these embeddings.")
    return text


def shown_points(df: pd.DataFrame) -> pd.DataFrame:
    """The points to draw: all of them up to ``MAX_POINTS``, else a decimated subset."""
    return df if len(df) <= MAX_POINTS else display_points(df, MAX_POINTS)


def map_figure(shown: pd.DataFrame, title: str, counts: pd.Series | None = None) -> go.Figure:
    """A ``Scattergl`` trace per category of ``shown["colour"]``; each point's
    ``customdata`` is its image id, its hover text the name, label and split. The legend
    gives each category's number of images from ``counts`` (all points, not only the drawn
    ones), else the number drawn."""
    fig = go.Figure()
    hover = ("#" + shown["image_id"].astype(str) + " " + shown["name"].astype(str) + "<br>"
             + shown["label"].fillna(NO_LABEL).astype(str) + " · " + shown["split"].astype(str))
    size = 6 if len(shown) <= 2_000 else 4 if len(shown) <= 10_000 else 3
    for value in sorted(shown["colour"].unique(), key=str):
        part = (shown["colour"] == value).to_numpy()
        fig.add_trace(go.Scattergl(
            x=shown["x"].to_numpy()[part], y=shown["y"].to_numpy()[part], mode="markers",
            name=f"{value} ({int(part.sum() if counts is None else counts.get(value, 0)):,})",
            marker={"size": size, "opacity": 0.8},
            customdata=shown[["image_id"]].to_numpy()[part], hovertext=hover.to_numpy()[part],
            hoverinfo="text"))
    fig.update_layout(title=title, meta=MAP_META, height=640, dragmode="lasso",
                      legend={"itemsizing": "constant"},
                      margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      xaxis={"showticklabels": False, "zeroline": False},
                      yaxis={"showticklabels": False, "zeroline": False})
    return fig
