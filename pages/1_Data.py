"""Data: import from any source, then explore a dataset — balance, quality, gallery."""

import streamlit as st

from core.data.catalog import dataset_info, list_datasets
from core.data.quality import distributions, import_history, quality_report
from core.data.samples import SAMPLES, import_sample
from core.labels.versions import VERSION_HELP, label_version_info
from dashboard.data_sources import import_panel, import_report, run_import
from dashboard.figures import class_balance_figure
from dashboard.gallery import paged_gallery
from dashboard.page import page_setup
from dashboard.quality import distributions_figure, quality_section, split_composition_figure
from dashboard.semantic_duplicates import semantic_duplicates_section

ws = page_setup("Data", "🗂️")
st.title("Data")

with st.sidebar:
    st.subheader("Add a built-in sample")
    sample_key = st.selectbox("Sample", list(SAMPLES), format_func=lambda k: f"sample:{k}",
                              key="sample_kind")
    st.caption(SAMPLES[sample_key].description)
    new_name = st.text_input("Dataset name", value=f"{SAMPLES[sample_key].default_name}-copy",
                             key=f"sample_name_{sample_key}")
    if st.button("Import sample", type="primary", key="sample_go"):
        # the same progress bar and report as every other source (dashboard.data_sources)
        run_import(lambda progress: import_sample(ws, f"sample:{sample_key}", new_name,
                                                  progress=progress))

datasets = list_datasets(ws)
names = [d.name for d in datasets]
with st.expander("Import images", expanded=not datasets):
    import_panel(ws, names)
if "data_last_report" in st.session_state:
    import_report(st.session_state["data_last_report"])
    datasets = list_datasets(ws)
    names = [d.name for d in datasets]

if not datasets:
    st.info("No datasets yet: import images above, or a built-in sample from the sidebar.")
    st.stop()

if st.session_state.get("data_dataset") not in names:
    st.session_state["data_dataset"] = names[0]
name = st.selectbox("Dataset", names, key="data_dataset")
info = dataset_info(ws, name)

c1, c2, c3, c4 = st.columns(4)
c1.metric("Images", f"{info.num_images:,}")
c2.metric("Classes", len(info.classes))
c3.metric("Unlabelled", sum(info.unlabelled.values()))
labels_now = label_version_info(ws, name)
c4.metric("Label version", labels_now.name, labels_now.since_run, delta_color="off",
          delta_arrow="off", help=VERSION_HELP)
b1, b2 = st.columns([2, 1])
b1.plotly_chart(class_balance_figure(info.per_class), key="balance")
b2.plotly_chart(split_composition_figure(info.splits, info.unlabelled), key="splits")

st.subheader("Gallery")
paged_gallery(ws, name, info.classes)

st.subheader("Quality")
quality_section(quality_report(ws, name))
semantic_duplicates_section(ws, name)
st.plotly_chart(distributions_figure(distributions(ws, name)), key="distributions")
history = import_history(ws, name)
if history:
    with st.expander(f"Import history ({len(history)})"):
        st.table([{"source": h["source"], "added": h["added"], "skipped": len(h["skipped"]),
                   "notes": len(h["notes"])} for h in history])
