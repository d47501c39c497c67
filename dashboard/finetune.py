"""The Fine-tune page's pieces: the form's defaults per source, the preview, the layer-group
tree, LR finder plot, the comparison with training from scratch and the quick head-only/full
probe (the source picker is ``dashboard.finetune_source``).

Everything that trains for long runs as a background job (``core.finetune.setup``);
the LR finder and the probe are short in-memory runs in the script thread.
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.errors import ImageLabError
from core.evaluation.evaluate import evaluate_run
from core.finetune.groups import HEAD, resolve_freeze, resolve_lr_mults
from core.finetune.setup import FinetuneConfig, prepare_finetune
from core.finetune.sources import is_imagenet_spec
from core.training.config import TrainConfig
from core.training.runs import get_run
from dashboard.run_view import live_run

PRESETS = ("Head only (linear probe)", "Last N groups", "Everything",
           "Everything, discriminative rates")


def follow_source(source: str) -> None:
    """On a new source, the form's defaults follow it: the preset matches ``freeze=auto``
    (head only from ImageNet weights, everything from a run or a file), and the epochs,
    learning rate and range test come again from the new source."""
    if st.session_state.get("ft_source_shown") == source:
        return
    st.session_state["ft_source_shown"] = source
    st.session_state["ft_preset"] = PRESETS[0] if is_imagenet_spec(source) else PRESETS[2]
    for key in ("ft_epochs", "ft_lr", "ft_lr_result"):
        st.session_state.pop(key, None)


def _preset_freeze() -> str:
    """The freeze spec of the preset chosen (before the tree draws it)."""
    preset = st.session_state.get("ft_preset", PRESETS[0])
    if preset == PRESETS[1]:
        return f"last:{int(st.session_state.get('ft_last_n', 2))}"
    return "head" if preset == PRESETS[0] else "none"


def preview(ws, dataset: str, source: str, arch: str | None):
    """Resolve the source against the dataset for the chosen preset and unfreezing (cached
    per source, dataset and both): groups, head, sizes and what the app chose. A new
    source first resets the form's defaults (``follow_source``)."""
    follow_source(source)
    freeze, unfreeze = _preset_freeze(), int(st.session_state.get("ft_unfreeze", 0))
    key = ("ft_prep", source, dataset, arch, freeze, unfreeze)
    cache = st.session_state.setdefault("ft_prep_cache", {})
    if key not in cache:
        cfg = TrainConfig(dataset=dataset, arch=arch or "auto")
        p = prepare_finetune(ws, cfg, FinetuneConfig(source, freeze=freeze,
                                                     unfreeze_after=unfreeze))
        cache.clear()
        cache[key] = {"groups": [(g.name, g.num_params) for g in p.groups], "head": p.head,
                      "arch": p.cfg.arch, "image_size": p.cfg.image_size, "epochs": p.cfg.epochs,
                      "batch_size": p.cfg.batch_size, "lr": p.cfg.lr, "label": p.source.label,
                      **{k: p.cfg.finetune[k] for k in ("resolution", "augmentation", "origin",
                                                        "freeze")}}
    return cache[key]


def finetune_configs(info: dict, *, dataset: str, source: str, epochs: int, lr: float,
                     frozen: list[str], unfreeze_after: int,
                     lr_mults: dict[str, float]) -> tuple[TrainConfig, FinetuneConfig]:
    """The page's form as typed configs: the run's ``TrainConfig`` (architecture and batch
    from the resolved source in ``info``; the image size left to ``prepare_finetune``, which
    chooses the one shown, ``info["image_size"]``, and records its rule with the run) and the
    ``FinetuneConfig``, by keyword."""
    cfg = TrainConfig(dataset=dataset, arch=info["arch"], image_size=None,
                      epochs=int(epochs), batch_size=info["batch_size"], lr=float(lr))
    ft = FinetuneConfig(source=source, freeze=list(frozen), unfreeze_after=int(unfreeze_after),
                        lr_mults=dict(lr_mults))
    return cfg, ft


def head_report(info: dict) -> None:
    kept, new = info["head"]["kept"], info["head"]["new"]
    if kept:
        st.success(f"New head: {len(kept)} classes keep their rows from the source "
                   f"({', '.join(kept)})" + (f"; fresh rows for {', '.join(new)}" if new else ""))
    else:
        st.info("New head: no class names are shared with the source, so every row is fresh.")
    for note in info["head"]["adapted"]:
        st.caption(note)


def group_tree(info: dict) -> tuple[list[str], dict[str, float]]:
    """The layer-group tree with a train toggle and an LR multiplier per group; presets."""
    names = [n for n, _ in info["groups"]]
    c1, c2 = st.columns([3, 1])
    preset = c1.radio("Preset", PRESETS, key="ft_preset", horizontal=True)
    last_n = c2.number_input("N", 1, len(names), min(2, len(names)), key="ft_last_n",
                             disabled=preset != PRESETS[1])
    spec = {PRESETS[0]: "head", PRESETS[1]: f"last:{int(last_n)}"}.get(preset, "none")
    frozen = set(resolve_freeze(spec, names))
    mults = resolve_lr_mults("discriminative:0.1" if preset == PRESETS[3] else "", names)
    rows = [{"group": ("└ " if i == len(names) - 1 else "├ ") + n, "parameters": p,
             "train": n not in frozen, "lr ×": mults[n]}
            for i, (n, p) in enumerate(info["groups"])]
    st.caption(f"{info['arch']} — layer groups, input to output. A frozen group keeps its "
               "weights and its BatchNorm statistics.")
    edited = st.data_editor(
        pd.DataFrame(rows), key=f"ft_tree_{preset}_{int(last_n)}_{info['arch']}",
        hide_index=True, width="stretch", disabled=["group", "parameters"],
        column_config={"train": st.column_config.CheckboxColumn("train"),
                       "lr ×": st.column_config.NumberColumn("lr ×", min_value=0.0,
                                                             max_value=100.0, step=0.05,
                                                             format="%.3g")})
    frozen_now = [n for n, row in zip(names, edited.to_dict("records")) if not row["train"]]
    mults_now = {n: float(row["lr ×"]) for n, row in zip(names, edited.to_dict("records"))}
    if len(frozen_now) == len(names):
        st.warning("Every group is frozen: nothing would train. Train at least the head.")
    elif frozen_now and HEAD in frozen_now:
        st.caption("The head is frozen: its fresh rows stay random for the frozen epochs.")
    return frozen_now, mults_now


def lr_finder_figure(res: dict) -> go.Figure:
    fig = go.Figure(go.Scatter(x=res["lrs"], y=res["losses"], mode="lines", name="loss (smoothed)"))
    lr = res["suggested_lr"]
    k = min(range(len(res["lrs"])), key=lambda i: abs(math.log(res["lrs"][i] / lr)))
    fig.add_trace(go.Scatter(x=[lr], y=[res["losses"][k]], mode="markers+text",
                             marker={"size": 12, "color": "red"}, text=[f"suggested {lr:.2g}"],
                             textposition="top right", name="suggestion"))
    fig.update_layout(xaxis={"type": "log", "title": "learning rate"},
                      yaxis={"title": "training loss"}, height=300,
                      margin={"l": 10, "r": 10, "t": 30, "b": 10}, showlegend=False,
                      title="Learning-rate range test")
    return fig


def comparison_view(ws, pair: dict) -> None:
    """Both runs' live views side by side, then their test accuracies."""
    cols = st.columns(2)
    runs = {}
    for col, (label, key) in zip(cols, (("From the pretrained start", "finetune_run"),
                                        ("From scratch", "scratch_run"))):
        with col:
            st.markdown(f"**{label}** · `{pair[key]}`")
            live_run(ws, pair[key])
            runs[label] = get_run(ws, pair[key])
    if all(r.status == "finished" for r in runs.values()):
        rows = []
        for label, r in runs.items():
            try:
                rep = evaluate_run(ws, r.id, split="test")
                rows.append({"start": label, "run": r.id, "test accuracy": rep["accuracy"],
                             "best val accuracy": (r.metrics or {}).get("best_val_accuracy"),
                             "seconds": (r.metrics or {}).get("seconds")})
            except ImageLabError as exc:
                st.warning(str(exc))
        if len(rows) == 2:
            gain = rows[0]["test accuracy"] - rows[1]["test accuracy"]
            st.metric("Gain from the pretrained start (test accuracy)", f"{gain * 100:+.1f} points")
            st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", column_config={
                "test accuracy": st.column_config.NumberColumn(format="percent"),
                "best val accuracy": st.column_config.NumberColumn(format="percent")})
    else:
        st.caption("Test accuracies appear here when both runs have finished.")
