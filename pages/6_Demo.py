"""Demo: show a model to people, feed their corrections back, export and watch it."""

import pandas as pd
import streamlit as st

from core.errors import ImageLabError
from core.evaluation.evaluate import evaluate_run
from core.inference.batch import predict_paths, rows_to_csv
from core.inference.exporting import export_run
from core.inference.feedback import send_feedback
from core.inference.monitoring import monitoring_summary
from core.inference.registry import (accuracy_coverage_for, champion, finished_run_ids,
                                     model_card, set_champion, set_name)
from dashboard.auth import current_user
from dashboard.demo import (collect_inputs, coverage_figure, decode_or_warn, monitoring_section,
                            prediction_card)
from dashboard.models import loaded_model
from dashboard.setup import page_setup

presenter = st.query_params.get("presenter") == "1"
ws = page_setup("Demo", "🎬", sidebar="collapsed" if presenter else "auto")

run_ids = finished_run_ids(ws)
if not run_ids:
    st.title("Demo")
    st.info("No finished runs yet. Train a model first, then show it off here.")
    st.page_link("pages/3_Train.py", label="Train a model", icon=":material/model_training:")
    st.stop()

if not presenter:
    st.title("Demo")
    c1, c2, c3 = st.columns([2, 2, 1])
    default = champion(ws) or run_ids[0]
    run_a = c1.selectbox("Model", run_ids, index=run_ids.index(default), key="demo_run_a")
    compare = c3.toggle("Compare two models", key="demo_compare")
    run_b = c2.selectbox("Second model", [r for r in run_ids if r != run_a] or [run_a],
                         key="demo_run_b", disabled=not compare)
    if st.button("Presenter mode", icon=":material/co_present:", key="presenter_on"):
        st.query_params["presenter"] = "1"
        st.query_params["run"] = run_a
        st.rerun()
else:
    run_a = st.query_params.get("run") or champion(ws) or run_ids[0]
    run_b, compare = None, False
    if st.button("Leave presenter mode", key="presenter_off"):
        st.query_params.clear()
        st.rerun()

try:
    models = [(r, loaded_model(ws, r)) for r in ([run_a, run_b] if compare else [run_a])]
    cards = [model_card(ws, r, lm) for r, lm in models]
except ImageLabError as exc:
    st.error(str(exc))
    st.stop()

if not presenter:
    with st.expander(f"Model card: {cards[0].title}"):
        card = cards[0]
        st.table(pd.DataFrame({"": {
            "dataset": str(card.dataset), "label version": str(card.label_version), "classes": ", ".join(card.classes),
            "architecture": card.arch, "input": f"{card.channels}×{card.image_size}×{card.image_size}",
            "parameters": f"{card.num_parameters:,}", "weights": f"{card.weights_mb:.2f} MB",
            "CPU latency": f"{card.cpu_latency_ms:.2f} ms",
            "validation accuracy": f"{card.metrics.get('val_accuracy', float('nan')):.4f}",
            **{f"{k} accuracy": f"{v['accuracy']:.4f}" for k, v in card.evaluation.items()}}}))
        n1, n2 = st.columns(2)
        new_name = n1.text_input("Name", value=card.name, key="card_name")
        if n1.button("Save name", key="card_save"):
            set_name(ws, card.run_id, new_name)
            st.rerun()
        if n2.button("Make champion", disabled=card.champion, key="card_champion"):
            set_champion(ws, card.run_id)
            st.rerun()

    s1, s2 = st.columns(2)
    threshold = s1.slider("Answer \"unknown\" below this confidence", 0.0, 1.0, 0.5, 0.05,
                          key="threshold")
    opacity = s2.slider("Grad-CAM opacity", 0.0, 1.0, 0.5, 0.05, key="cam_opacity")
    curve = accuracy_coverage_for(ws, run_a)
    if curve is None:
        # First demo of this run: evaluate its validation split once (stored), which also
        # fits the temperature behind the calibrated probabilities.
        try:
            with st.spinner("Calibrating on the validation split (once per run)…"):
                evaluate_run(ws, run_a, split="val")
            curve = accuracy_coverage_for(ws, run_a)
            models = [(r, loaded_model(ws, r)) for r, _ in models]   # picks up the temperature
        except ImageLabError as exc:
            st.caption(f"No calibration: {exc}")
    if curve:
        s1.plotly_chart(coverage_figure(curve, threshold), key="coverage")
    else:
        s1.caption("Evaluate this run to see accuracy against coverage for the threshold.")
else:
    threshold, opacity = 0.5, 0.5

inputs = collect_inputs(ws)
for k, (name, data) in enumerate(inputs[:8]):
    img = decode_or_warn(name, data)
    if img is None:
        continue
    st.divider()
    cols = st.columns([1] + [2] * len(models))
    cols[0].image(img.convert("RGB"), caption=name, width="stretch")
    preds = []
    for (run_id, lm), card, col in zip(models, cards, cols[1:]):
        with col:
            preds.append(prediction_card(lm, card, img, threshold=threshold, opacity=opacity,
                                         show_cam=True, presenter=presenter, key=f"p{k}-{run_id}"))
    if not presenter:
        with st.popover("Wrong? Tell us the right class"):
            right = st.selectbox("The right class", models[0][1].classes, key=f"fb-class-{k}")
            target = st.text_input("Add it to dataset", value=cards[0].dataset or "", key=f"fb-ds-{k}")
            if st.button("Send", key=f"fb-send-{k}"):
                try:
                    send_feedback(ws, target, data, right, user=current_user(),
                                  predicted=preds[0].top[0][0], run_id=run_a)
                    st.success(f"Added to {target!r} as {right!r}; it is in the next training run.")
                except ImageLabError as exc:
                    st.error(str(exc))

if presenter:
    st.stop()

st.header("Batch prediction")
batch = st.file_uploader("A zip of images, or several images", accept_multiple_files=True,
                         key="batch_upload", type=["zip", "png", "jpg", "jpeg", "bmp", "gif", "webp"])
if batch and st.button("Predict all", key="batch_go"):
    tmp = ws.tmp_dir / f"batch-{st.session_state.get('_batch_n', 0)}"
    tmp.mkdir(parents=True, exist_ok=True)
    paths = []
    for f in batch:
        p = tmp / f.name.replace("/", "_")
        p.write_bytes(f.getvalue())
        paths.append(p)
    lm = models[0][1]
    rows = predict_paths(lm, paths, threshold=threshold)
    for r in rows:
        r["path"] = r["path"].replace(str(tmp) + "/", "")
    st.dataframe(pd.DataFrame(rows)[["path", "prediction", "confidence", "error"]], hide_index=True)
    st.download_button("Download predictions (CSV)", rows_to_csv(rows, lm.classes),
                       "predictions.csv", "text/csv", key="batch_csv")

st.header("Export")
e1, e2 = st.columns([1, 3])
fmt = e1.radio("Format", ["onnx", "pt2"], key="export_fmt",
               format_func=lambda f: {"onnx": "ONNX", "pt2": "torch.export (.pt2)"}[f])
if e1.button("Export and check", key="export_go", type="primary"):
    out = ws.root / "exports" / run_a / f"model.{fmt}"
    try:
        with st.spinner("Exporting and checking against PyTorch on real images…"):
            result = export_run(ws, run_a, fmt, out)
        e2.success(f"Checked on {result.num_images_checked} images: max |Δ logit| = "
                   f"{result.max_abs_diff:.2e} (tolerance {result.tolerance:g}).")
        e2.download_button("Download the bundle (model, classes, preprocessing, predict.py)",
                           open(result.bundle, "rb").read(), f"{run_a}-{fmt}-bundle.zip",
                           key="export_dl")
    except ImageLabError as exc:
        e2.error(str(exc))

st.header("Monitoring")
st.caption(f"From the prediction service's log. Start it with "
           f"`python -m core serve {run_a}` and send it images.")
window = st.select_slider("Window", [300, 3600, 86400, 7 * 86400], value=3600, key="mon_window",
                          format_func=lambda s: {300: "5 min", 3600: "1 hour", 86400: "1 day",
                                                 7 * 86400: "1 week"}[s])
summary = monitoring_summary(ws, run_a, window_s=window)
if summary["requests"]:
    monitoring_section(summary)
else:
    st.caption("No requests in this window yet.")
