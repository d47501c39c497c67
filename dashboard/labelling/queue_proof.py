"""The Label page's "Does the queue pay?": the simulated-oracle experiment on this dataset.

It runs in the background (``dashboard.labelling.proof_job``: ``python -m core al-bench``),
so the page never waits and a reload finds it again. Its answer is drawn as the accuracy on
held-out images against the labels used, each strategy against random (mean of the seeds),
with the labels each strategy needed to reach the target accuracy, its ratio to random's,
and the experiment's own sentence per strategy, which says plainly when one does not beat
random on this data.
"""

from __future__ import annotations

import time

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.active.defaults import (
    DEFAULT_ROUNDS,
    DEFAULT_SEEDS,
    DEFAULT_START_PER_CLASS,
    DEFAULT_TARGET,
)
from core.active.strategies import STRATEGIES
from core.errors import ImageLabError
from dashboard.label_actions import show_error
from dashboard.labelling.active_order import STRATEGY_NAMES
from dashboard.labelling.proof_job import proof_state, start_proof, stop_proof

EXPLAIN = ("A simulated labeller: the labelled training images are the pool, their labels "
           "hidden. Starting from a few labels per class, each strategy picks images to label "
           "round after round, a classifier on fixed image embeddings is retrained, and its "
           "accuracy on the held-out images is recorded against the labels used, on several seeds; "
           "random labelling is the baseline. Nothing is written to your labels.")


def queue_proof(ws, dataset: str) -> None:
    """The expander with the experiment's controls and, once it has run, its findings."""
    with st.expander("Does the queue pay? Strategies against random on this dataset"):
        st.caption(EXPLAIN)
        _proof(ws, dataset)


def _proof(ws, dataset: str) -> None:
    state = proof_state(ws, dataset)
    if state.status != "running":
        label = "Run the experiment" if state.status == "none" else "Run it again"
        with st.form("proof_settings", border=False):
            options = proof_options()
            go_on = st.form_submit_button(label, key="proof_start",
                                          help="Runs in the background: keep labelling.")
        if go_on:
            try:
                start_proof(ws, dataset, options)
            except ImageLabError as exc:
                show_error(exc)
                return
            state = proof_state(ws, dataset)
    if state.status == "running":
        _running(ws, dataset)
    elif state.status == "stopped":
        st.info("The experiment was stopped before it finished.")
    elif state.status == "failed":
        st.error("The experiment failed:")
        st.code(state.error, language=None)
    elif state.status == "done":
        st.caption(f"Measured {time.strftime('%Y-%m-%d %H:%M', time.localtime(state.finished))}.")
        proof_findings(state.result)


def proof_options() -> list[str]:
    """The experiment's settings (the CLI's defaults), as ``al-bench`` options."""
    c1, c2, c3, c4, c5 = st.columns(5)
    seeds = c1.number_input("Seeds", 1, 10, DEFAULT_SEEDS, key="proof_seeds",
                            help="Each seed draws other starting labels; curves are their mean.")
    rounds = c2.number_input("Rounds", 1, 200, DEFAULT_ROUNDS, key="proof_rounds")
    batch = c3.number_input("Labels per round", 0, 500, 0, key="proof_batch",
                            help="0: about a seventieth of the pool (5 to 200).")
    start = c4.number_input("Labels per class to start", 1, 50, DEFAULT_START_PER_CLASS,
                            key="proof_start_per_class")
    target = c5.slider("Target accuracy", 0.50, 0.99, DEFAULT_TARGET, 0.01, key="proof_target")
    picked = st.multiselect("Strategies against random", [s for s in STRATEGIES if s != "random"],
                            default=[s for s in STRATEGIES if s != "random"],
                            format_func=lambda s: STRATEGY_NAMES.get(s, s), key="proof_strategies")
    options = ["--seeds", str(seeds), "--rounds", str(rounds), "--start", str(start),
               "--target", f"{target:.2f}"]
    options += ["--batch", str(batch)] if batch else []
    return options + ["--strategies", *(picked or ["random"])]


@st.fragment(run_every="3s")
def _running(ws, dataset: str) -> None:
    """While it runs: say so (with a Stop button); when it ends, draw the answer."""
    state = proof_state(ws, dataset)
    if state.status != "running":
        st.rerun(scope="app")
    st.info(f"The experiment is running in the background (for {time.time() - state.started:.0f} s): "
            "it takes minutes; keep labelling, this part updates by itself.")
    if st.button("Stop the experiment", key="proof_stop"):
        stop_proof(ws, dataset)


def proof_findings(result: dict) -> None:
    """The curves, the labels-to-target table and the verdicts of one experiment."""
    target = result["target"]
    st.plotly_chart(curves_figure(result), key="proof_curves", width="stretch")
    rows = []
    for s in result["strategies"]:
        per_seed = result["labels_to_target"][s]
        reached = [n for n in per_seed if n is not None]
        ratio = result["ratio_to_random"].get(s)
        rows.append({"strategy": STRATEGY_NAMES.get(s, s),
                     f"labels to {target:.0%} (mean of seeds)":
                         round(sum(reached) / len(reached)) if len(reached) == len(per_seed) else None,
                     "seeds that reached it": f"{len(reached)} of {len(per_seed)}",
                     "× random's labels": None if ratio is None else round(ratio, 2),
                     "rounds ahead of random": _pct(result["rounds_won"].get(s))})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    for s in result["strategies"]:
        text = result["verdicts"][s]
        if "does not beat random" in text:
            st.warning(text[0].upper() + text[1:] + ".")
        else:
            st.markdown(f"- {text[0].upper() + text[1:]}.")
    st.caption(f"Pool {result['pool_size']:,} images, held out {result['heldout_size']:,} "
               f"({result['heldout_split']}); {result['start']} labels to start, "
               f"{result['batch']} per round; {result['learner']} on `{result['embedder']}` "
               f"embeddings; {result['seeds']} seeds; {result['seconds']:.0f} s.")


def curves_figure(result: dict) -> go.Figure:
    """Accuracy against labels used, mean of the seeds: random dashed, the others solid."""
    fig = go.Figure()
    for s in result["strategies"]:
        curve = result["mean_curves"][s]
        fig.add_trace(go.Scatter(x=curve["labels"], y=curve["accuracy"], mode="lines+markers",
                                 name=STRATEGY_NAMES.get(s, s),
                                 line={"dash": "dash" if s == "random" else "solid",
                                       "color": "gray" if s == "random" else None}))
    fig.add_hline(y=result["target"], line={"dash": "dot", "color": "green"},
                  annotation_text=f"target {result['target']:.0%}")
    fig.update_layout(xaxis_title="labels used", yaxis_title="held-out accuracy",
                      yaxis_tickformat=".0%", height=380, margin={"t": 30, "b": 40},
                      legend={"orientation": "h", "y": -0.2})
    return fig


def _pct(x: float | None) -> str:
    return "" if x is None else f"{x:.0%}"
