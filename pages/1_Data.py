"""Data: pick a dataset, see its balance and a gallery; prepare built-in samples."""

import streamlit as st

from core.data.catalog import dataset_info, list_datasets
from core.data.gallery import image_page
from core.data.samples import SAMPLES, import_sample
from core.errors import ImageLabError
from dashboard.figures import class_balance_figure
from dashboard.gallery import thumbnail_grid
from dashboard.setup import page_setup

ws = page_setup("Data", "🗂️")
st.title("Data")

with st.sidebar:
    st.subheader("Add a built-in sample")
    sample_key = st.selectbox("Sample", list(SAMPLES), format_func=lambda k: f"sample:{k}")
    st.caption(SAMPLES[sample_key].description)
    new_name = st.text_input("Dataset name", value=f"{SAMPLES[sample_key].default_name}-copy")
    if st.button("Import sample", type="primary"):
        bar = st.progress(0.0, text="Importing…")
        try:
            report = import_sample(ws, f"sample:{sample_key}", new_name,
                                   progress=lambda d, t, m: bar.progress(min(d / t, 1.0) if t else 0.5,
                                                                         text=m))
            bar.progress(1.0, text="Done")
            st.success(f"Imported {report.added} images into {report.name!r}.")
        except ImageLabError as exc:
            st.error(str(exc))
    st.caption("Import from folders, archives, URLs, SQL, torchvision datasets, uploads "
               "and the webcam is not built yet.")

datasets = list_datasets(ws)
if not datasets:
    st.info("No datasets yet: import a built-in sample from the sidebar.")
    st.stop()

names = [d.name for d in datasets]
name = st.selectbox("Dataset", names, key="data_dataset")
info = dataset_info(ws, name)

c1, c2, c3, c4 = st.columns(4)
c1.metric("Images", f"{info.num_images:,}")
c2.metric("Classes", len(info.classes))
c3.metric("Unlabelled", sum(info.unlabelled.values()))
c4.metric("Label version", info.label_version)
st.plotly_chart(class_balance_figure(info.per_class), key="balance")

st.subheader("Gallery")
f1, f2 = st.columns(2)
label = f1.selectbox("Class", ["(all)"] + info.classes, key="gallery_class")
split = f2.selectbox("Split", ["(all)", "train", "val", "test"], key="gallery_split")
rows = image_page(ws, name, label=None if label == "(all)" else label,
                  split=None if split == "(all)" else split, limit=32)
thumbnail_grid(rows)
