"""The order of the Label page's queue: a strategy over a finished run's predictions.

The ranking (``core.active.queue.active_queue``) is computed once per (strategy, run,
re-rank) and kept in the session, so pressing a class key never predicts again. The queue
walks it in order, skipping images labelled meanwhile; when it is used up, or when a
retraining run finishes (``dashboard.labelling.retrain_loop``), it is ranked again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import streamlit as st

from core.active.queue import active_queue
from core.active.strategies import DEFAULT_STRATEGY, STRATEGIES
from core.data.image_rows import rows_by_id
from core.errors import ImageLabError
from core.training.runs import list_runs
from dashboard.label_actions import show_error

STRATEGY_NAMES = {"random": "Random", "least-confidence": "Least confidence", "margin": "Margin",
                  "entropy": "Entropy", "diverse": "Diverse (margin over k-center)"}
STRATEGY_HELP = ("Which unlabelled image to label next. **Margin**: the model is torn between "
                 "its two best classes; **least confidence**: its best class is least sure; "
                 "**entropy**: its probabilities are most spread; **diverse**: uncertain images "
                 "spread over the embedding space; **random**: the baseline. "
                 "See *Does the queue pay?* below for how each does on this data.")
NEXT_RUN = "queue_next_run_{}"     # a run to rank with on the next full run (set by retraining)


@dataclass
class Ranking:
    """The queue's order: image ids most wanted first, each one's ``QueueItem``.
    ``strategy`` and ``run_id`` are what was asked for; ``applied`` the strategy the engine
    applied (random without a run) and ``used_run`` the run that predicted (None: none)."""
    strategy: str
    run_id: str | None
    applied: str
    used_run: str | None
    message: str
    ids: list[int] = field(default_factory=list)
    items: dict = field(default_factory=dict)


def finished_runs(ws, dataset: str) -> list:
    """The dataset's finished runs, newest first (those a ranking can use)."""
    return [r for r in list_runs(ws, limit=200, dataset=dataset) if r.status == "finished"]


def order_controls(ws, dataset: str) -> Ranking | None:
    """Draw the strategy and run pickers and return the ranking they give (None when the
    engine refused, with its message shown)."""
    runs = finished_runs(ws, dataset)
    run_ids = [r.id for r in runs]
    pending = st.session_state.pop(NEXT_RUN.format(dataset), None)
    if pending in run_ids:
        st.session_state["queue_run"] = pending
    if st.session_state.get("queue_run") not in run_ids:
        st.session_state["queue_run"] = run_ids[0] if run_ids else None
    labels = {r.id: f"{r.id} · {r.config.get('arch')} · {_accuracy(r.metrics)}" for r in runs}
    left, mid, right = st.columns([2, 3, 1], vertical_alignment="bottom")
    strategy = left.selectbox("Order", STRATEGIES, index=STRATEGIES.index(DEFAULT_STRATEGY),
                              key="queue_strategy", format_func=STRATEGY_NAMES.get,
                              help=STRATEGY_HELP)
    run_id = mid.selectbox("Ranked by run", run_ids, key="queue_run", disabled=not run_ids,
                           format_func=labels.get, placeholder="no finished run",
                           help="The finished run whose predictions rank the images "
                                "(default: the newest).")
    state_key = f"queue_rank_{dataset}"
    if right.button("Re-rank", key="queue_rerank", width="stretch",
                    help="Rank the unlabelled images again with the run's predictions."):
        st.session_state.pop(state_key, None)
    ranking = st.session_state.get(state_key)
    if ranking is None or (ranking.strategy, ranking.run_id) != (strategy, run_id):
        ranking = rank(ws, dataset, strategy, run_id)
        if ranking is None:
            return None
        st.session_state[state_key] = ranking
        st.session_state.pop(f"queue_cur_{dataset}", None)   # a new order starts at its top
    return ranking


def rank(ws, dataset: str, strategy: str, run_id: str | None) -> Ranking | None:
    """Rank the unlabelled images of ``dataset`` now (None, with the error shown, on failure)."""
    try:
        with st.spinner("Ranking the unlabelled images…"):
            queue = active_queue(ws, dataset, strategy=strategy, run_id=run_id,
                                 compute_missing=False)   # never embed in the script thread
    except ImageLabError as exc:
        show_error(exc)
        return None
    return Ranking(strategy, run_id, queue.strategy, queue.run_id, queue.message or "",
                   [int(i.image_id) for i in queue.items], {int(i.image_id): i for i in queue.items})


def forget_ranking(dataset: str) -> None:
    """Drop the session's ranking, so the next run ranks again."""
    st.session_state.pop(f"queue_rank_{dataset}", None)


def ranked_neighbour(ws, dataset: str, ranking: Ranking, current: int | None, *, forward: bool,
                     also: set[int] = frozenset()) -> int | None:
    """The next (or previous) image of the ranking after ``current`` (None: from the start)
    that is still unlabelled, or among ``also`` (labelled here, so "previous" goes back)."""
    ids = ranking.ids
    pos = ids.index(current) if current in ids else (-1 if forward else len(ids))
    rest = ids[pos + 1:] if forward else list(reversed(ids[:max(pos, 0)]))
    rows = rows_by_id(ws, rest, dataset) if rest else {}
    for i in rest:
        if i in rows and (rows[i].label is None or i in also):
            return i
    return None


def why_text(item, strategy: str) -> str:
    """Why the image is next, in words: the strategy's score and the model's two best guesses."""
    guesses = " · ".join(f"{name} {p:.0%}" for name, p in list(item.probabilities)[:3])
    if strategy == "random":
        return f"Random order (the baseline). The model says: {guesses}"
    return (f"Next by {STRATEGY_NAMES[strategy].lower()}: score {item.score:.3f} "
            f"(higher = more worth labelling). The model says: {guesses}")


def _accuracy(metrics: dict) -> str:
    acc = metrics.get("best_val_accuracy")
    return "no accuracy yet" if acc is None else f"val {acc:.1%}"
