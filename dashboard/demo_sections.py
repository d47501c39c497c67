"""The Demo page's sections below the predictions: the model card, the calibration and
threshold settings, the feedback popover, batch prediction and monitoring (the export
section is ``dashboard/export_panel.py``).

Each is one call from ``pages/6_Demo.py``; the work behind them lives in
``core.inference`` (cards, batch prediction, exports, monitoring).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.errors import ImageLabError
from core.evaluation.evaluate import evaluate_run
from core.inference.batch import predict_uploads, rows_to_csv
from core.inference.feedback import send_feedback
from core.inference.monitoring import monitoring_summary
from core.inference.predictor import LoadedModel
from core.inference.registry import ModelCard, accuracy_coverage_for, set_champion, set_name
from core.labels.versions import version_numbers
from core.store.run_paths import best_val_text
from dashboard.auth import current_user
from dashboard.demo import coverage_figure, monitoring_section
from dashboard.label_actions import show_error

MONITORING_WINDOWS = {300: "5 min", 3600: "1 hour", 86400: "1 day", 7 * 86400: "1 week"}


def card_table(card: ModelCard, labels: str) -> pd.DataFrame:
    """The model card as a one-column table: what a stakeholder asks about a model;
    ``labels`` names the label version it trained on (``v12``)."""
    return pd.DataFrame({"": {
        "dataset": str(card.dataset), "label version": labels,
        "classes": ", ".join(card.classes), "architecture": card.arch,
        "input": f"{card.channels}×{card.image_size}×{card.image_size}",
        "parameters": f"{card.num_parameters:,}", "weights": f"{card.weights_mb:.2f} MiB",
        "CPU latency": f"{card.cpu_latency_ms:.2f} ms",
        "validation accuracy": best_val_text(card.metrics),
        **{f"{k} accuracy (best.pt)": f"{v['accuracy']:.4f}" for k, v in card.evaluation.items()}}})


def trained_labels(ws, card: ModelCard) -> str:
    """The label version ``card``'s run trained on, as people read it (``v12``)."""
    if card.label_version is None or card.dataset is None:
        return "–"
    return f"v{version_numbers(ws, card.dataset, [card.label_version])[card.label_version]}"


def model_card_panel(ws, card: ModelCard) -> None:
    """The card in an expander, with the model's name and the champion switch."""
    with st.expander(f"Model card: {card.title}"):
        st.table(card_table(card, trained_labels(ws, card)))
        n1, n2 = st.columns(2)
        new_name = n1.text_input("Name", value=card.name, key="card_name")
        if n1.button("Save name", key="card_save"):
            set_name(ws, card.run_id, new_name)
            st.rerun()
        if n2.button("Make champion", disabled=card.champion, key="card_champion"):
            set_champion(ws, card.run_id)
            st.rerun()


def answer_settings(ws, run_id: str) -> tuple[float, float, bool]:
    """The "unknown" threshold and Grad-CAM opacity sliders beside the run's
    accuracy–coverage curve: (threshold, opacity, calibrated_now).

    A run shown for the first time is evaluated on its validation split once (stored),
    which also fits the temperature behind the calibrated probabilities; ``calibrated_now``
    tells the caller to reload its models to pick that temperature up.
    """
    s1, s2 = st.columns(2)
    threshold = s1.slider("Answer \"unknown\" below this confidence", 0.0, 1.0, 0.5, 0.05,
                          key="threshold")
    opacity = s2.slider("Grad-CAM opacity", 0.0, 1.0, 0.5, 0.05, key="cam_opacity")
    curve, calibrated_now = accuracy_coverage_for(ws, run_id), False
    if curve is None:
        try:
            with st.spinner("Calibrating on the validation split (once per run)…"):
                evaluate_run(ws, run_id, split="val")
            curve, calibrated_now = accuracy_coverage_for(ws, run_id), True
        except ImageLabError as exc:
            st.caption(f"No calibration: {exc}")
    if curve:
        s1.plotly_chart(coverage_figure(curve, threshold), key="coverage")
    else:
        s1.caption("Evaluate this run to see accuracy against coverage for the threshold.")
    return threshold, opacity, calibrated_now


def feedback_popover(ws, *, key: str, data: bytes, classes: list[str], dataset: str | None,
                     predicted: str, run_id: str) -> None:
    """"Wrong? Tell us the right class": the image goes into a dataset with that label."""
    with st.popover("Wrong? Tell us the right class"):
        right = st.selectbox("The right class", classes, key=f"fb-class-{key}")
        target = st.text_input("Add it to dataset", value=dataset or "", key=f"fb-ds-{key}")
        if st.button("Send", key=f"fb-send-{key}"):
            try:
                send_feedback(ws, target, data, right, user=current_user(),
                              predicted=predicted, run_id=run_id)
                st.success(f"Added to {target!r} as {right!r}; it is in the next training run.")
            except ImageLabError as exc:
                show_error(exc)


def batch_prediction(lm: LoadedModel, threshold: float) -> None:
    """Upload a zip or several images, predict them all, download a CSV. Uploads are
    predicted from memory (``predict_uploads``): no file is written for them."""
    st.header("Batch prediction")
    batch = st.file_uploader("A zip of images, or several images", accept_multiple_files=True,
                             key="batch_upload",
                             type=["zip", "png", "jpg", "jpeg", "bmp", "gif", "webp"])
    if not (batch and st.button("Predict all", key="batch_go")):
        return
    try:
        rows = predict_uploads(lm, [(f.name, f.getvalue()) for f in batch], threshold=threshold)
    except ImageLabError as exc:
        show_error(exc)
        return
    st.dataframe(pd.DataFrame(rows)[["path", "prediction", "confidence", "error"]],
                 hide_index=True)
    st.download_button("Download predictions (CSV)", rows_to_csv(rows, lm.classes),
                       "predictions.csv", "text/csv", key="batch_csv")


def monitoring(ws, run_id: str) -> None:
    """The prediction service's log for this run, over a chosen window."""
    st.header("Monitoring")
    st.caption(f"From the prediction service's log. Start it with "
               f"`python -m core serve {run_id}` and send it images.")
    window = st.select_slider("Window", list(MONITORING_WINDOWS), value=3600, key="mon_window",
                              format_func=MONITORING_WINDOWS.get)
    summary = monitoring_summary(ws, run_id, window_s=window)
    if summary["requests"]:
        monitoring_section(summary)
    else:
        st.caption("No requests in this window yet.")
