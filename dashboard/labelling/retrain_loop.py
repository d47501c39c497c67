"""The queue's "Retrain every N labels": a normal background run, then a new ranking.

When N labels have been saved since the run that ranks the queue, ``start_retrain`` starts
an ordinary run (same model settings, the labels as they are now), listed on the Train page
like any other; nothing is trained out of sight. A fragment polls it; once it has finished,
the queue is ranked again by it. While any run of the dataset is queued or running, no
second one is started (a reload, which forgets the session, cannot pile runs up).
"""

from __future__ import annotations

import streamlit as st

from core.active.retrain import RETRAIN_EVERY, labels_since, start_retrain
from core.errors import ImageLabError
from core.training import jobs
from core.training.runs import get_run, list_runs
from dashboard.label_actions import show_error
from dashboard.labelling.active_order import NEXT_RUN, Ranking, forget_ranking

ACTIVE = ("queued", "running")
RETRAIN_RUN = "queue_retrain_run_{}"   # the retraining run this session started, per dataset
FAILED_RUN = "queue_retrain_failed_{}"  # one that did not finish: no new one until "Try again"


def retrain_controls(ws, dataset: str, ranking: Ranking) -> None:
    """The toggle, N, and (when on) the live retraining status."""
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    on = left.toggle("Retrain every N labels", key="queue_retrain",
                     help="After N new labels, train a new run in the background (shown on "
                          "the Train page) and rank the queue again with it.")
    n = right.number_input("N", min_value=1, max_value=10_000, value=RETRAIN_EVERY, step=5,
                           key="queue_retrain_n") if on else RETRAIN_EVERY
    if on or st.session_state.get(RETRAIN_RUN.format(dataset)):
        _retrain_status(ws, dataset, ranking.used_run, int(n), on)


@st.fragment(run_every="2s")
def _retrain_status(ws, dataset: str, run_id: str | None, n: int, on: bool) -> None:
    """Every 2 s: follow this session's retraining run, or start one when N labels are in."""
    jobs.refresh(ws)
    key = RETRAIN_RUN.format(dataset)
    started = st.session_state.get(key)
    if started:
        _follow(ws, dataset, started, key)
        return
    failed = st.session_state.get(FAILED_RUN.format(dataset))
    if failed:
        st.warning(f"Retraining run {failed} did not finish (see it on the Train page); the "
                   "queue keeps its ranking.")
        if st.button("Try again", key="queue_retrain_again"):
            st.session_state.pop(FAILED_RUN.format(dataset), None)
        return
    if run_id is None:
        st.caption("Retraining starts from a finished run: train one on the Train page first.")
        return
    new = labels_since(ws, dataset, run_id)
    busy = [r.id for r in list_runs(ws, limit=20, dataset=dataset) if r.status in ACTIVE]
    if on and new >= n and not busy:
        try:
            st.session_state[key] = start_retrain(ws, dataset, run_id)
        except ImageLabError as exc:
            show_error(exc)
            return
        _follow(ws, dataset, st.session_state[key], key)
    elif busy:
        st.caption(f"{new} of {n} new labels since run {run_id} · run {busy[0]} of this "
                   "dataset is training; the next retraining waits for it.")
    else:
        st.caption(f"{new} of {n} new labels since run {run_id}.")


def _follow(ws, dataset: str, run_id: str, key: str) -> None:
    """Show the retraining run; once it has finished, rank the queue by it."""
    try:
        run = get_run(ws, run_id)
    except ImageLabError:
        st.session_state.pop(key, None)
        return
    if run.status == "finished":
        st.session_state.pop(key, None)
        st.session_state[NEXT_RUN.format(dataset)] = run_id
        forget_ranking(dataset)
        st.toast(f"Run {run_id} finished: the queue is ranked by it now.")
        st.rerun(scope="app")
    if run.status in ACTIVE:
        st.info(f"Retraining: run **{run_id}** is {run.status}. The queue is ranked again by "
                "it when it finishes.")
    else:
        st.session_state.pop(key, None)
        st.session_state[FAILED_RUN.format(dataset)] = run_id
        st.warning(f"Retraining run {run_id} {run.status}: {run.message or 'see its log'}. "
                   "The queue keeps its ranking.")
    st.page_link("pages/3_Train.py", label=f"Watch run {run_id} on the Train page",
                 icon=":material/model_training:")
