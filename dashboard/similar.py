""""More like this": the k most similar images of a dataset, one widget for every page.

``more_like_this`` searches by an image of the dataset (``image_id``) or by a file's bytes
(``image_bytes``: an upload, the Demo's input) and shows the neighbours as thumbnails with
their distance, label and split. Without stored embeddings it says so and offers to compute
them (the background job of the Explore page). ``more_like_this_expander`` is the small hook
the gallery detail, the Evaluate page's cell images and the Demo use: the search runs only
while the expander is open, so a page with many hooks costs nothing until one is opened.
"""

from __future__ import annotations

import streamlit as st

from core.data.image_rows import rows_by_id
from core.embeddings.jobs import embedding_job_status, start_embedding_job
from core.embeddings.search import similar_to_file, similar_to_image
from core.embeddings.store import load_embeddings
from core.errors import ImageLabError
from dashboard.label_actions import flash, show_error, show_flash, show_label

DEFAULT_K = 12
RUNNING = ("queued", "starting", "running")


def job_running(status: dict | None) -> bool:
    """Whether an embedding job status (``embedding_job_status``) describes a live job."""
    return bool(status) and status.get("state") in RUNNING


def start_job(ws, dataset: str, embedder: str | None = None) -> None:
    """Start the background embedding job (a widget callback) and flash the outcome."""
    try:
        start_embedding_job(ws, dataset, embedder)
    except ImageLabError as exc:
        flash("error", str(exc))
        return
    flash("info", f"Computing the embeddings of {dataset} in the background. The map and "
                  "the search appear when they are ready; you can leave this page meanwhile.")


def no_embeddings(ws, dataset: str, key: str, embedder: str | None = None) -> None:
    """Say that ``dataset`` has no embeddings yet, and offer to compute them."""
    status = embedding_job_status(ws, dataset)
    if job_running(status):
        total = max(int(status.get("total") or 0), 1)
        st.info(f"The embeddings of {dataset} are being computed: "
                f"{int(status.get('done') or 0):,} of {total:,} images "
                f"({status.get('stage') or status.get('state')}).")
        return
    st.info(f"{dataset} has no embeddings yet. They are computed once, in the background, "
            "and only for new or changed images after that.")
    st.button("Compute embeddings", key=f"{key}_compute", on_click=start_job,
              args=(ws, dataset, embedder), icon=":material/hub:")


def more_like_this(ws, dataset: str, *, image_id: int | None = None,
                   image_bytes: bytes | None = None, k: int = DEFAULT_K, key: str,
                   embedder: str | None = None, columns: int = 6) -> list:
    """Show the ``k`` images of ``dataset`` most like ``image_id`` or ``image_bytes``, nearest
    first, with distance, label and split; return the neighbours (empty when none)."""
    show_flash()
    try:
        stored = load_embeddings(ws, dataset, embedder)
    except ImageLabError as exc:           # a dataset deleted since, an unknown embedder
        show_error(exc)
        return []
    if stored is None:
        no_embeddings(ws, dataset, key, embedder)
        return []
    try:
        if image_id is not None:
            hits = similar_to_image(ws, dataset, int(image_id), k=k, embedder=embedder)
        elif image_bytes is not None:
            hits = similar_to_file(ws, dataset, image_bytes, k=k, embedder=embedder)
        else:
            raise ImageLabError("choose an image to search with")
    except ImageLabError as exc:
        show_error(exc)
        return []
    if not hits:
        st.caption("No similar images found.")
        return []
    rows = rows_by_id(ws, [h.image_id for h in hits])
    st.caption(f"The {len(hits)} images of {dataset} most like "
               + (f"#{image_id}" if image_id is not None else "this image")
               + " (cosine distance: 0 is the same direction, smaller is more alike)")
    cols = st.columns(columns)
    for n, hit in enumerate(hits):
        row = rows.get(hit.image_id)
        with cols[n % columns]:
            if row is not None and row.thumb.exists():
                st.image(str(row.thumb), width="stretch")
            st.caption(f"#{hit.image_id} · {show_label(hit.label)} · {hit.split} · "
                       f"d={hit.distance:.3f}")
    return hits


def more_like_this_expander(ws, dataset: str, *, key: str, image_id: int | None = None,
                            image_bytes: bytes | None = None, choices: list[int] | None = None,
                            k: int = DEFAULT_K, label: str = "More like this") -> None:
    """An expander that runs ``more_like_this`` only while it is open; with ``choices`` (image
    ids) it first asks which of them to search from."""
    box = st.expander(label, key=key, on_change="rerun", icon=":material/image_search:")
    with box:
        if not box.open:
            return
        if choices:
            image_id = st.selectbox("Search from image", choices, key=f"{key}_pick",
                                    format_func=lambda i: f"#{i}")
        more_like_this(ws, dataset, image_id=image_id, image_bytes=image_bytes, k=k,
                       key=f"{key}_mlt")
