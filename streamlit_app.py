"""Home: the workspace at a glance, and the way to the next step."""

import pandas as pd
import streamlit as st

from core.data.catalog import list_datasets
from core.runs_overview import count_runs, recent_runs
from dashboard.page import device_info, page_setup
from dashboard.run_columns import run_columns

ws = page_setup("Home", "🏠")

st.title("ImageLab")
st.caption("Build an image classifier end to end on your own machine: "
           "acquire → explore → label → train → fine-tune → evaluate → demo.")

datasets = list_datasets(ws)
runs = recent_runs(ws, limit=10)
device = device_info()

c1, c2, c3, c4 = st.columns(4)
c1.metric("Datasets", len(datasets))
c2.metric("Images", f"{sum(d.num_images for d in datasets):,}")
c3.metric("Runs", count_runs(ws))
c4.metric("Device", device.type.upper(), help=f"{device.name}, {device.threads} threads, "
          f"torch {device.torch_version}")

st.subheader("Datasets")
if datasets:
    # st.table renders real HTML text (st.dataframe draws on a canvas): few rows, always readable.
    st.table(pd.DataFrame([{
        "dataset": d.name, "images": d.num_images, "labelled": d.num_labelled,
        "classes": len(d.classes), "class names": ", ".join(d.classes), "source": d.source,
    } for d in datasets]).set_index("dataset"))
else:
    st.info("The workspace has no datasets yet. Prepare the built-in samples with "
            "`python -m core samples ensure`, or import your own on the Data page.")

st.subheader("Recent runs")
if runs:
    st.dataframe(pd.DataFrame(runs), hide_index=True, width="stretch", column_config=run_columns())
else:
    st.caption("No training runs yet.")

st.subheader("Next step")
n1, n2, n3 = st.columns(3)
n1.page_link("pages/1_Data.py", label="Import or explore data", icon=":material/photo_library:")
n2.page_link("pages/2_Label.py", label="Fix labels", icon=":material/label:")
n3.page_link("pages/3_Train.py", label="Train a model", icon=":material/model_training:")
