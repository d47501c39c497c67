"""Fine-tune: start from a pretrained model, choose what trains, find the learning rate,
start a background run, and see what the pretrained start bought over training from scratch.
"""

import streamlit as st

from core.data.catalog import list_datasets
from core.errors import ImageLabError
from core.finetune.compare import latest_comparison, quick_probe, start_comparison
from core.finetune.lr_finder import lr_find
from core.finetune.setup import prepare_finetune, start_finetune
from dashboard.finetune import (
    comparison_view,
    finetune_configs,
    group_tree,
    head_report,
    lr_finder_figure,
    preview,
)
from dashboard.finetune_source import choice_report, source_picker
from dashboard.label_actions import show_error
from dashboard.page import page_setup
from dashboard.run_view import live_run

ws = page_setup("Fine-tune", "🎯")
st.title("Fine-tune")
st.caption("Start from a model trained before — here, or on ImageNet — and adapt it to a new "
           "dataset. Fine-tuning runs are ordinary runs: they keep going when you close the tab.")

datasets = [d.name for d in list_datasets(ws)]
if not datasets:
    st.info("The workspace has no datasets yet: import one on the Data page.")
    st.stop()

link = st.query_params.get("source")    # e.g. the Train page's photo hint: the start to open on
if link and st.session_state.get("ft_source_link") != link:    # once per tab, and on a reload
    st.session_state["ft_source_request"] = st.session_state["ft_source_link"] = link

left, right = st.columns([3, 2], gap="large")
with left:
    st.subheader("1 · Pretrained start")
    dataset = st.selectbox("Fine-tune on dataset", datasets, key="ft_dataset")
    source, arch = source_picker(ws, dataset)
    if not source:
        st.stop()
    try:
        info = preview(ws, dataset, source, arch)
    except ImageLabError as exc:
        show_error(exc)
        st.stop()
    choice_report(info)
    head_report(info)
    st.subheader("2 · What trains")
    frozen, mults = group_tree(info)
    c1, c2, c3 = st.columns(3)
    epochs = c1.number_input("Epochs", 1, 500, int(info["epochs"]), key="ft_epochs")
    unfreeze = c2.number_input("Unfreeze all after epoch (0: never)", 0, 500, 0,
                               key="ft_unfreeze", help="Gradual unfreezing, as fastai's "
                               "fine_tune: train the unfrozen groups first, then everything.")
    st.session_state.setdefault("ft_lr", float(info["lr"]))
    lr = c3.number_input("Learning rate", 1e-6, 10.0, key="ft_lr", format="%.5f")

cfg, ft = finetune_configs(info, dataset=dataset, source=source, epochs=epochs, lr=lr,
                           frozen=frozen, unfreeze_after=unfreeze, lr_mults=mults)

with right:
    st.subheader("3 · Learning rate")
    if st.button("Find the learning rate", key="ft_lr_find"):
        with st.spinner("Range test: a short training with a growing learning rate…"):
            try:
                st.session_state["ft_lr_result"] = lr_find(ws, prepare_finetune(ws, cfg, ft).cfg,
                                                           steps=60)
            except ImageLabError as exc:
                show_error(exc)
    res = st.session_state.get("ft_lr_result")
    if res:
        st.plotly_chart(lr_finder_figure(res), key="ft_lr_plot")
        st.button(f"Use this rate: {res['suggested_lr']:.3g}", key="ft_lr_use",
                  on_click=lambda v=float(res["suggested_lr"]): st.session_state.update(ft_lr=v))
    st.subheader("4 · Head only or everything?")
    st.caption("Freezing is cheap and safe when the new images look like the old ones; when "
               "the domain differs (blurry 8×8 digits after MNIST), training everything wins.")
    if st.button("Quick probe: head only vs full", key="ft_probe"):
        with st.spinner("Training both for a few dozen steps…"):
            try:
                st.session_state["ft_probe_rows"] = quick_probe(ws, cfg, source)
            except ImageLabError as exc:
                show_error(exc)
    if st.session_state.get("ft_probe_rows"):
        st.dataframe(st.session_state["ft_probe_rows"], hide_index=True, key="ft_probe_table",
                     column_config={"val_accuracy": st.column_config.NumberColumn(
                         "val accuracy", format="percent")})

st.subheader("5 · Train")
b1, b2, _ = st.columns([1, 2, 3])
if b1.button("Start fine-tuning", type="primary", key="ft_start"):
    try:
        st.session_state["ft_watch"] = start_finetune(ws, cfg, ft).id
    except ImageLabError as exc:
        show_error(exc)
if b2.button("Compare with training from scratch", key="ft_compare"):
    try:
        start_comparison(ws, cfg, ft)
        st.session_state["ft_watch"] = None
    except ImageLabError as exc:
        show_error(exc)
pair = latest_comparison(ws)
if st.session_state.get("ft_watch"):
    live_run(ws, st.session_state["ft_watch"])
elif pair:
    st.markdown("**Same budget, same data: pretrained start vs from scratch**")
    comparison_view(ws, pair)
