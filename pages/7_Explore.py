"""Explore: the dataset as a model sees it — a map of its embeddings, and more like this."""

import streamlit as st

from core.data.catalog import list_datasets
from core.embeddings.jobs import embedding_job_status
from core.labels import classes as label_classes
from dashboard.embedding_map import (
    embedder_choice,
    job_panel,
    map_caption,
    map_figure,
    map_frame,
    shown_points,
)
from dashboard.label_actions import show_flash, show_label
from dashboard.map_colours import COLOUR_BY, colour_column
from dashboard.map_hover import hover_thumbnails
from dashboard.map_selection import selection_gallery, take_selection, undo_button
from dashboard.page import page_setup
from dashboard.similar import job_running, more_like_this

ws = page_setup("Explore", "🧭")
st.title("Explore")
st.caption("Each point is an image, placed by what a model sees in it: clusters, outliers "
           "and islands of wrong labels show at a glance. Draw a box or a lasso round a "
           "group to fix it in bulk, or find more images like one.")

datasets = [d.name for d in list_datasets(ws)]
if not datasets:
    st.info("No datasets yet: import images on the Data page first.")
    st.page_link("pages/1_Data.py", label="Import data", icon=":material/photo_library:")
    st.stop()

c1, c2 = st.columns([1, 2])
dataset = c1.selectbox("Dataset", datasets, key="explore_dataset")
with c2:
    embedder = embedder_choice(ws, dataset)
points = map_frame(ws, dataset, embedder)
job_panel(ws, dataset, embedder, computed=points is not None)
show_flash()
if points is None:
    st.info(f"No map of {dataset} from these embeddings yet. Press **Compute embeddings**: "
            "they are computed in the background (the map appears as soon as the instant PCA "
            "view is ready, and UMAP replaces it when done).")
    st.stop()

colour_by = st.radio("Colour by", COLOUR_BY, horizontal=True, key="explore_colour_by")
points["colour"] = colour_column(ws, points, dataset, colour_by, key="explore_colour").to_numpy()
shown = shown_points(points)
running = job_running(embedding_job_status(ws, dataset))
st.caption(map_caption(points, shown, running))
event = st.plotly_chart(map_figure(shown, f"{dataset} · {embedder}",
                                   counts=points["colour"].value_counts()),
                        key=f"explore_map_{dataset}_{embedder}", on_select="rerun",
                        selection_mode=("points", "box", "lasso"),
                        config={"scrollZoom": True, "displaylogo": False})
hover_thumbnails(ws, dataset)
known = set(points["image_id"].tolist())
selected = [i for i in take_selection(event, points) if i in known]
labels = {int(i): (lab if isinstance(lab, str) else None)
          for i, lab in zip(points["image_id"], points["label"])}

st.subheader("Selection")
undo_button(ws, dataset)
if selected:
    classes = [c.name for c in label_classes.list_classes(ws, dataset)]
    page_ids = selection_gallery(ws, dataset, selected, labels, classes)
else:
    page_ids = []
    st.caption("Draw a box or a lasso round a group of points (the lasso is the map's default "
               "tool; switch in its toolbar), or click a point: its images appear here.")

st.subheader("More like this")
by_image, by_file = st.tabs(["An image on the map", "An image file"])
with by_image:
    if page_ids:
        focus = st.selectbox("Image", page_ids, key="explore_focus",
                             format_func=lambda i: f"#{i} · {show_label(labels.get(i))}")
        left, right = st.columns([1, 5])
        row = points.loc[points["image_id"] == focus].iloc[0]
        left.caption(f"#{focus} {row['name']}\n\n{show_label(labels.get(focus))} · "
                     f"{row['split']}")
        with right:
            more_like_this(ws, dataset, image_id=focus, embedder=embedder, key="explore_mlt")
    else:
        st.caption("Select a point on the map (or a group) to search from one of its images.")
with by_file:
    upload = st.file_uploader("Find images like this file", key="explore_upload",
                              type=["png", "jpg", "jpeg", "gif", "bmp", "tif", "tiff", "webp"])
    if upload is not None:
        left, right = st.columns([1, 5])
        left.image(upload.getvalue(), caption=upload.name, width="stretch")
        with right:
            more_like_this(ws, dataset, image_bytes=upload.getvalue(), embedder=embedder,
                           key="explore_mlt_file")
