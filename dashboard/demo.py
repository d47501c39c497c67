"""Demo page pieces: image inputs, prediction cards, the threshold view, export, batch."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st
from PIL import Image

from core.data.catalog import list_datasets
from core.data.gallery import image_page
from core.data.net import fetch_bytes
from core.data.url_guard import redact_url
from core.errors import ImageLabError
from core.evaluation.gradcam import explain
from core.inference.predictor import LoadedModel, Prediction, decode_for_prediction, predict_one
from core.inference.registry import ModelCard
from dashboard.label_actions import show_error


def collect_inputs(ws) -> list[tuple[str, bytes]]:
    """Images from uploads, the webcam, a dataset, or a URL, as (name, bytes)."""
    tabs = st.tabs(["Upload", "Webcam", "From a dataset", "URL"])
    images: list[tuple[str, bytes]] = []
    with tabs[0]:
        for f in st.file_uploader("Images", accept_multiple_files=True, key="demo_upload",
                                  type=["png", "jpg", "jpeg", "gif", "bmp", "tif", "tiff", "webp"])\
                or []:
            images.append((f.name, f.getvalue()))
    with tabs[1]:
        if st.toggle("Use the webcam", key="demo_cam_on"):
            shot = st.camera_input("Take a picture", key="demo_camera")
            if shot is not None:
                images.append(("webcam shot", shot.getvalue()))
    with tabs[2]:
        names = [d.name for d in list_datasets(ws)]
        if names:
            ds = st.selectbox("Dataset", names, key="demo_ds")
            rows = image_page(ws, ds, limit=48)
            if rows:
                pick = st.selectbox("Image", rows, key="demo_ds_image", format_func=lambda r: (
                    f"#{r.id} · {r.label or 'unlabelled'} · {r.split}"))
                if st.toggle("Predict this image", key="demo_ds_on"):
                    images.append((f"{ds} #{pick.id} (labelled {pick.label})",
                                   pick.file.read_bytes()))
    with tabs[3]:
        url = st.text_input("Image URL (http or https)", key="demo_url")
        if url:
            fetched = _fetched(url)
            if fetched is not None:
                images.append((redact_url(url), fetched))   # the caption hides user:pass@
    return images


def _fetched(url: str) -> bytes | None:
    """The image at ``url``, fetched once while the box holds that URL (not on every
    rerun); a refusal or failure is shown and tried again on the next run."""
    last = st.session_state.get("demo_url_fetched")
    if last is not None and last[0] == url:
        return last[1]
    try:
        data = fetch_bytes(url)
    except ImageLabError as exc:
        show_error(exc)
        return None
    st.session_state["demo_url_fetched"] = (url, data)
    return data


def topk_figure(pred: Prediction) -> go.Figure:
    names = [c for c, _ in pred.top][::-1]
    probs = [p for _, p in pred.top][::-1]
    fig = go.Figure(go.Bar(x=probs, y=names, orientation="h", text=[f"{p:.1%}" for p in probs],
                           textposition="auto"))
    fig.update_layout(height=60 + 32 * len(names), margin=dict(l=10, r=10, t=10, b=10),
                      xaxis=dict(range=[0, 1], tickformat=".0%"), yaxis=dict(type="category"))
    return fig


def prediction_card(lm: LoadedModel, card: ModelCard, img: Image.Image, *, threshold: float,
                    opacity: float, show_cam: bool, presenter: bool, key: str) -> Prediction:
    pred = predict_one(lm, img, top_k=min(5, len(lm.classes)), threshold=threshold)
    heading = pred.label if pred.confident else f"unknown (best guess {pred.top[0][0]})"
    if presenter:
        st.markdown(f"# {heading}")
        st.markdown(f"## {pred.top[0][1]:.0%} sure")
    else:
        st.markdown(f"**{card.title}**")
        st.subheader(heading)
        st.caption(f"{pred.top[0][1]:.1%} (calibrated, T = {lm.temperature:.2f}) · "
                   f"{pred.seconds * 1000:.1f} ms")
    st.plotly_chart(topk_figure(pred), key=f"{key}-bars")
    if show_cam:
        overlay, _ = explain(lm, img, lm.classes.index(pred.top[0][0]), opacity)
        st.image(overlay, caption=f"Grad-CAM for {pred.top[0][0]}", width=260)
    return pred


def coverage_figure(curve: dict, threshold: float) -> go.Figure:
    fig = go.Figure()
    fig.add_scatter(x=curve["threshold"], y=curve["accuracy"], name="accuracy on answered")
    fig.add_scatter(x=curve["threshold"], y=curve["coverage"], name="share answered")
    fig.add_vline(x=threshold, line_dash="dot", annotation_text="your threshold")
    fig.update_layout(height=260, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="threshold",
                      yaxis=dict(range=[0, 1.02]), title=f"Accuracy vs coverage ({curve['source']})")
    return fig


def decode_or_warn(name: str, data: bytes) -> Image.Image | None:
    try:
        return decode_for_prediction(data)
    except ImageLabError as exc:
        st.warning(f"{name}: {exc}")
        return None


def monitoring_section(summary: dict) -> None:
    """Request rate, latency percentiles, class distribution vs training, unknown share."""
    m = st.columns(5)
    lat = summary["latency_ms"]
    m[0].metric("Requests", summary["requests"])
    m[1].metric("Per minute", f"{summary['request_rate_per_min']:.1f}")
    m[2].metric("Latency p50 / p99", "—" if lat["p50"] is None else
                f"{lat['p50']:.1f} / {lat['p99']:.1f} ms")
    m[3].metric("Unknown answers", "—" if summary["unknown_share"] is None else
                f"{summary['unknown_share']:.0%}")
    m[4].metric("Errors", summary["errors"])
    classes = summary["classes"]
    dist = go.Figure()
    dist.add_bar(x=classes, y=[summary["predicted_share"].get(c, 0) for c in classes],
                 name="predicted (service)")
    dist.add_bar(x=classes, y=[summary["training_share"].get(c, 0) for c in classes],
                 name="training data")
    dist.update_layout(barmode="group", height=300, title="Predicted classes vs training",
                       yaxis_tickformat=".0%", xaxis=dict(type="category"),
                       margin=dict(l=10, r=10, t=40, b=10))
    over = go.Figure()
    import datetime as _dt
    times = [_dt.datetime.fromtimestamp(b["start"]) for b in summary["over_time"]]
    for c in classes:
        over.add_scatter(x=times, y=[b["counts"].get(c, 0) for b in summary["over_time"]],
                         stackgroup="one", name=c)
    over.add_scatter(x=times, y=[b["unknown"] for b in summary["over_time"]], name="unknown",
                     line=dict(dash="dot", color="black"))
    over.update_layout(height=300, title="Predictions over time", margin=dict(l=10, r=10, t=40, b=10))
    c1, c2 = st.columns(2)
    c1.plotly_chart(dist, key="mon_dist")
    c2.plotly_chart(over, key="mon_time")
