"""Evaluate: where does the model fail, what do the mistakes look like, and fix them."""

import pandas as pd
import streamlit as st

from core.data.catalog import list_datasets
from core.errors import ImageLabError
from core.evaluation.analysis import cell_images, compare_runs, most_confused_pairs, top_losses
from core.evaluation.evaluate import evaluate_run, stored_predictions
from core.store.run_paths import best_val_text
from core.training.runs import list_runs, read_metrics
from dashboard.evaluation import confusion_figure, curve_figure, reliability_figure, run_curves_figure
from dashboard.evaluation_widgets import (
    compare_runs_picker,
    fix_images_panel,
    gradcam_gallery,
    headline_metrics,
    per_class_table,
    selected_cell,
    split_picker,
)
from dashboard.label_actions import show_error, show_flash
from dashboard.page import page_setup

ws = page_setup("Evaluate", "📊")
st.title("Evaluate")

runs = [r for r in list_runs(ws, limit=200) if r.status == "finished"]
if not runs:
    st.info("No finished runs yet. Train a model first, then come back to see where it fails.")
    st.page_link("pages/3_Train.py", label="Train a model", icon=":material/model_training:")
    st.stop()

c1, c2, c3 = st.columns([2, 1, 1])
run = c1.selectbox("Run", runs, key="eval_run", format_func=lambda r: (
    f"{r.id} · {r.dataset} · {r.config.get('arch')} · {best_val_text(r.metrics)}"))
datasets = [d.name for d in list_datasets(ws)]
dataset = c2.selectbox("Dataset", datasets, key="eval_dataset",
                       index=datasets.index(run.dataset) if run.dataset in datasets else 0)
split = split_picker(ws, dataset, c3)

try:
    with st.spinner("Evaluating (once per run, split and label version)…"):
        report = evaluate_run(ws, run.id, dataset, split)
except ImageLabError as exc:
    show_error(exc)
    st.stop()
labels = report["confusion_matrix"]["labels"]
preds = stored_predictions(ws, run.id, dataset, split)

headline_metrics(report)

st.subheader("Per class (weakest first)")
per_class_table(report)

st.subheader("Confusion matrix")
st.caption("Rows are the true class. Click a cell to see its images, or pick a pair below.")
o1, o2 = st.columns(2)
normalised = o1.toggle("Normalise by row", key="cm_norm")
pairs = most_confused_pairs(report["confusion_matrix"]["matrix"], labels, n=30)
focus = o2.toggle("Only classes in the most confused pairs", key="cm_focus",
                  value=len(labels) > 25)
order = None
if focus and pairs:
    keep = list(dict.fromkeys(c for p in pairs[:15] for c in (p["true"], p["predicted"])))
    order = [labels.index(c) for c in keep]
event = st.plotly_chart(confusion_figure(report["confusion_matrix"]["matrix"], labels, normalised,
                                         order), key="cm", on_select="rerun",
                        selection_mode="points", width="content")
cell = selected_cell(event, pairs, labels)
show_flash()     # what "Relabel" / "Exclude from training" of the cell's images did
if cell:
    true, predicted = cell
    rows = cell_images(preds, labels, true, predicted)
    st.markdown(f"**{len(rows)} images** of true class `{true}` predicted as `{predicted}`")
    fix_images_panel(ws, dataset, rows, labels, key=f"cell-{true}-{predicted}")

tabs = st.tabs(["Top losses + Grad-CAM", "ROC", "Precision–recall", "Calibration"])
with tabs[0]:
    gradcam_gallery(ws, run.id, top_losses(preds, labels, n=12), labels)
with tabs[1]:
    st.plotly_chart(curve_figure(report["roc"], "fpr", "tpr", "ROC, one class vs the rest",
                                 "false positive rate", "true positive rate", "auc",
                                 diagonal=True), key="roc")
with tabs[2]:
    st.plotly_chart(curve_figure(report["pr"], "recall", "precision", "Precision–recall",
                                 "recall", "precision", "average_precision"), key="pr")
with tabs[3]:
    st.plotly_chart(reliability_figure(report["calibration"],
                                       report.get("calibration_uncalibrated")), key="rel")

st.subheader("Compare runs")
chosen = compare_runs_picker(runs, run)
if chosen:
    histories = {rid: [r for r in read_metrics(ws.runs_dir / rid) if r.get("type") == "epoch"]
                 for rid in chosen}
    c1, c2 = st.columns(2)
    c1.plotly_chart(run_curves_figure(histories, "val_accuracy", "Validation accuracy"),
                    key="cmp_acc")
    c2.plotly_chart(run_curves_figure(histories, "val_loss", "Validation loss"), key="cmp_loss")
    comparison = compare_runs(ws, chosen)
    df = pd.DataFrame(comparison["rows"], columns=comparison["columns"])
    st.dataframe(df.style.apply(lambda col: ["background-color: #fff3bf"
                                             if col.name in comparison["differs"] else ""
                                             for _ in col]), hide_index=True, key="cmp_table")
    st.download_button("Download comparison (CSV)", df.to_csv(index=False), "run-comparison.csv",
                       "text/csv", key="cmp_csv")
