"""Live views of training runs, drawn from the run folder and the database only.

Nothing lives in the session: a reload (or another tab) finds the same runs. The views are
fragments that rerun every second or two, and each rerun first lets ``jobs.refresh`` mark
dead processes as failed and start queued jobs.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.errors import ImageLabError
from core.store.run_paths import best_val_text, checkpoint_text
from core.training import jobs
from core.training.runs import get_run, list_runs, read_log, read_metrics, read_status
from dashboard.figures import training_curves_figure
from dashboard.label_actions import show_error
from dashboard.run_columns import run_columns

ACTIVE = ("queued", "running")


def default_run(ws) -> str | None:
    """The run to watch when nothing is chosen: the newest active run, else the newest."""
    runs = list_runs(ws, limit=50)
    for r in runs:
        if r.status in ACTIVE:
            return r.id
    return runs[0].id if runs else None


def run_label(run) -> str:
    """A run as the picker names it, with its status as it is now and, once it has one, the
    validation accuracy of its ``best.pt``."""
    label = f"{run.id} · {run.dataset} · {run.config.get('arch')} · {run.status}"
    return label + (f" · {best_val_text(run.metrics)}" if run.metrics.get("best_val_accuracy")
                    is not None else "")


def run_picker(ws) -> str | None:
    """The run to watch (``train_watch``), its options labelled with their current status."""
    runs = list_runs(ws, limit=50)
    if not runs:
        return None
    ids = [r.id for r in runs]
    labels = {r.id: run_label(r) for r in runs}
    if st.session_state.get("train_watch") not in ids:
        st.session_state["train_watch"] = default_run(ws)
    return st.selectbox("Run", ids, key="train_watch", format_func=lambda i: labels[i])


@st.fragment(run_every="1s")
def watch_runs(ws) -> None:
    """The run picker and the chosen run's live view, redrawn together every second, so the
    picker's labels follow each run's status (a picker drawn once kept saying "running"
    after the run had finished)."""
    jobs.refresh(ws)
    run_id = run_picker(ws)
    if run_id:
        _live(ws, run_id)
    else:
        st.caption("No runs yet. Press **Train** to start one.")


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(seconds)
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


@st.fragment(run_every="1s")
def live_run(ws, run_id: str) -> None:
    """Progress bar with ETA and images/s, curves, Stop/Resume, and the run's log."""
    jobs.refresh(ws)
    _live(ws, run_id)


def _live(ws, run_id: str) -> None:
    try:
        run = get_run(ws, run_id)
    except ImageLabError as exc:
        st.warning(str(exc))
        return
    status = read_status(run.folder)
    records = read_metrics(run.folder)
    steps = [r for r in records if r.get("type") == "step"]
    epochs = [r for r in records if r.get("type") == "epoch"]
    cfg = run.config
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Status", run.status)
    done = epochs[-1]["epoch"] + 1 if epochs else 0
    c2.metric("Epoch", f"{done}/{cfg.get('epochs')}")
    best, last = run.metrics.get("best_val_accuracy"), run.metrics.get("val_accuracy")
    c3.metric("Val accuracy · best.pt", f"{best:.2%}" if best is not None and best >= 0 else "–",
              help=checkpoint_text("best", run.metrics.get("best_epoch"))
              + (f"; final epoch, last.pt: {last:.2%}" if last is not None else ""))
    ips = status.get("images_per_sec")
    c4.metric("Images/s", f"{ips:,.0f}" if ips else "–")
    progress = float(status.get("progress") or (1.0 if run.status == "finished" else 0.0))
    text = (f"{progress:.0%} · epoch {min(status.get('epoch', 0) + 1, cfg.get('epochs', 1))} "
            f"step {status.get('step', 0)} · ETA {_fmt_eta(status.get('eta_s'))}"
            if run.status == "running" else f"{run.status}")
    st.progress(min(max(progress, 0.0), 1.0), text=text)
    # always present (empty without a message), so that the buttons below keep their place
    # when a message comes or goes between two runs of this fragment: a moved element
    # would leave its old copy on screen, stale, until the run ends (two "Stop" buttons)
    message = st.container()
    if run.message:
        (message.error if run.status == "failed" else message.info)(run.message.splitlines()[0])
    b1, b2, _ = st.columns([1, 1, 4])
    if run.status in ACTIVE and b1.button("Stop", key=f"stop_{run.id}", type="secondary"):
        jobs.stop_run(ws, run.id)
        st.toast("Stop requested: the run saves a checkpoint at its next step.")
    if run.status in ("stopped", "failed") and run.paths.last.exists() and \
            b2.button("Resume", key=f"resume_{run.id}", type="primary"):
        try:
            jobs.resume_run(ws, run.id)
        except ImageLabError as exc:
            show_error(exc)
    if steps or epochs:
        st.plotly_chart(training_curves_figure(epochs, steps), key=f"curves_{run.id}")
    else:
        st.caption("Curves appear after the first steps.")
    with st.expander("Log", expanded=run.status == "failed"):
        st.code(read_log(run.folder, 30) or "(empty)", language="text")
    if records.skipped:    # last, so that nothing above moves when it appears
        st.caption(f"{records.skipped} unreadable line{'s' if records.skipped != 1 else ''} "
                   "in metrics.jsonl (torn or damaged) left out of these figures.")


@st.fragment(run_every="2s")
def runs_table(ws, limit: int = 20) -> None:
    """The newest runs as a live table: one ``summary_row`` each."""
    runs = list_runs(ws, limit=limit)
    if not runs:
        st.caption("No runs yet: choose options and press Train.")
        return
    rows = [r.summary() for r in runs]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
                 column_config=run_columns())
