"""Demo: show a model to people, feed their corrections back, export and watch it."""

import streamlit as st

from core.errors import ImageLabError
from core.inference.registry import champion, finished_run_ids, model_card
from dashboard.demo import collect_inputs, decode_or_warn, prediction_card
from dashboard.demo_sections import (
    answer_settings,
    batch_prediction,
    feedback_popover,
    model_card_panel,
    monitoring,
)
from dashboard.export_panel import export_section
from dashboard.label_actions import show_error
from dashboard.models import loaded_model
from dashboard.page import page_setup
from dashboard.similar import more_like_this_expander

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
    show_error(exc)
    st.stop()

if not presenter:
    model_card_panel(ws, cards[0])
    threshold, opacity, calibrated_now = answer_settings(ws, run_a)
    if calibrated_now:                    # reload, to pick up the temperature just fitted
        models = [(r, loaded_model(ws, r)) for r, _ in models]
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
        feedback_popover(ws, key=str(k), data=data, classes=models[0][1].classes,
                         dataset=cards[0].dataset, predicted=preds[0].top[0][0], run_id=run_a)
        if cards[0].dataset:
            more_like_this_expander(ws, cards[0].dataset, key=f"demo_mlt_{k}", image_bytes=data,
                                    label=f"More like this in {cards[0].dataset}")

if presenter:
    st.stop()

batch_prediction(models[0][1], threshold)
export_section(ws, run_a)
monitoring(ws, run_a)
